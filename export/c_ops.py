"""One C emitter per ONNX operator the bundle's graphs use, for batch 1 and static shapes.

Each emitter checks the attributes it relies on and refuses the rest by name (UnsupportedGraph), so a
graph either translates exactly or not at all. Loops are plain C: the layers are small (a few thousand
to a few hundred thousand multiply-adds per beat) and odd-shaped (stride 3, kernel 5, 16 channels), so
the loop nest is the kernel; see docs/mcu.md for the measured cost per beat.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from .c_graph import Tensor, UnsupportedGraph, broadcast_strides, index, nested_loops, strides

Emitter = Callable[["object", "object", dict], None]
OPS: dict[str, Emitter] = {}


def op(*names: str) -> Callable[[Emitter], Emitter]:
    def register(fn: Emitter) -> Emitter:
        for name in names:
            OPS[name] = fn
        return fn
    return register


def _refuse(node, what: str) -> None:
    raise UnsupportedGraph(f"node {node.name!r} ({node.op_type}): {what}")


def _spatial_1d(tr, node, x: Tensor) -> tuple[int, int]:
    """(channels, width) of an [1, C, W] or [1, C, 1, W] activation."""
    if len(x.shape) == 3 and x.shape[0] == 1:
        return x.shape[1], x.shape[2]
    if len(x.shape) == 4 and x.shape[0] == 1 and x.shape[2] == 1:
        return x.shape[1], x.shape[3]
    _refuse(node, f"input shape {list(x.shape)}: expected [1, C, W] or [1, C, 1, W]")
    raise AssertionError


def _window(node, attrs: dict, rank: int, kernel: int) -> tuple[int, int, int, int]:
    """(stride, dilation, pad_begin, pad_end) along the width of a 1-D or height-1 2-D window op."""
    if attrs.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET"):
        _refuse(node, f"auto_pad {attrs['auto_pad']!r}: expected explicit pads")
    spatial = rank - 2
    strides_ = list(attrs.get("strides", [1] * spatial))
    dil = list(attrs.get("dilations", [1] * spatial))
    pads = list(attrs.get("pads", [0] * 2 * spatial))
    if spatial == 2:
        if pads[0] or pads[2]:
            _refuse(node, f"pads {pads}: expected none along the height")
        strides_, dil, pads = strides_[1:], dil[1:], [pads[1], pads[3]]
    return strides_[0], dil[0], pads[0], pads[1]


UNROLL = 16  # a dot product this short is written out term by term (same order of additions as the loop)


def _dot(acc: str, n: int, term: Callable[[str], str], var: str = "k") -> list[str]:
    """``acc += term(0) + ... + term(n-1)``, one term at a time, unrolled when ``n`` is short: the loop
    counter and its branch cost as much as the multiply-add on a Cortex-M4."""
    if n <= UNROLL:
        return [f"{acc} += {term(str(i))};" for i in range(n)]
    return [f"for (int {var} = 0; {var} < {n}; ++{var}) {acc} += {term(var)};"]


@op("Conv")
def conv(tr, node, attrs: dict) -> None:
    x, w, b = tr.input(node, 0), tr.input(node, 1), tr.input(node, 2)
    c, width = _spatial_1d(tr, node, x)
    if attrs.get("group", 1) != 1:
        _refuse(node, f"group {attrs['group']}: expected 1")
    m, k = w.shape[0], w.shape[-1]
    if w.shape[1] != c or (len(w.shape) == 4 and w.shape[2] != 1):
        _refuse(node, f"weight shape {list(w.shape)}: expected [M, {c}, K] or [M, {c}, 1, K]")
    s, d, pb, pe = _window(node, attrs, len(x.shape), k)
    ow = (width + pb + pe - d * (k - 1) - 1) // s + 1
    y = tr.output(node, 0, (1, m, 1, ow) if len(x.shape) == 4 else (1, m, ow), x.loaded_type)
    # outputs whose window lies inside the input need no bounds test: only the edges keep it
    first = min(ow, -(-pb // s))
    last = max(first, min(ow, (width - 1 - d * (k - 1) + pb) // s + 1))

    def body(checked: bool) -> list[str]:
        taps = []
        for j in range(k):
            term = f"{w.load(f'(m*{c} + c)*{k} + {j}')} * {x.load(f'c*{width} + i + {j * d}')}"
            taps.append(f"if (i + {j * d} >= 0 && i + {j * d} < {width}) acc += {term};" if checked
                        else f"acc += {term};")
        return [f"  {y.ctype} acc = 0;", f"  int i = o*{s} - {pb};",
                f"  for (int c = 0; c < {c}; ++c) {{", *(f"    {t}" for t in taps), "  }",
                f"  {y.pointer}[m*{ow} + o] = acc{' + ' + b.load('m') if b else ''};"]

    tr.emit(f"for (int m = 0; m < {m}; ++m) {{")
    for lo, hi, checked in ((0, first, True), (first, last, False), (last, ow, True)):
        if hi > lo:
            tr.emit(f"for (int o = {lo}; o < {hi}; ++o) {{", *body(checked), "}")
    tr.emit("}")


@op("ConvTranspose")
def conv_transpose(tr, node, attrs: dict) -> None:
    x, w, b = tr.input(node, 0), tr.input(node, 1), tr.input(node, 2)
    c, width = _spatial_1d(tr, node, x)
    if len(x.shape) != 3:
        _refuse(node, f"input shape {list(x.shape)}: expected [1, C, W]")
    if attrs.get("group", 1) != 1 or any(attrs.get("output_padding", [0])) or "output_shape" in attrs:
        _refuse(node, "group, output_padding or output_shape set: expected group 1 and neither of the others")
    m, k = w.shape[1], w.shape[2]
    s, d, pb, pe = _window(node, attrs, 3, k)
    if d != 1:
        _refuse(node, f"dilations [{d}]: expected 1")
    ow = (width - 1) * s - pb - pe + (k - 1) + 1
    y = tr.output(node, 0, (1, m, ow), x.loaded_type)
    # gathered per output sample (one accumulator, written once). Output o = q*s + phase takes the taps
    # k = phase + pb (mod s) from input q + (phase + pb - k) / s: the phase split leaves no division at run time
    tr.emit(f"for (int m = 0; m < {m}; ++m) {{")
    for phase in range(min(s, ow)):
        tr.emit(f"  for (int q = 0; q < {len(range(phase, ow, s))}; ++q) {{", f"    {y.ctype} acc = 0;")
        for tap in range(k):
            if (phase + pb - tap) % s:
                continue
            tr.emit(f"    {{ int i = q + {(phase + pb - tap) // s};",
                    f"      if (i >= 0 && i < {width}) {{",
                    *(f"        {t}" for t in _dot("acc", c, lambda j, tap=tap: f"{x.load(f'i + {j}*{width}')} * "
                                                                 f"{w.load(f'({j}*{m} + m)*{k} + {tap}')}", "c")),
                    "    } }")
        tr.emit(f"    {y.pointer}[m*{ow} + q*{s} + {phase}] = acc{' + ' + b.load('m') if b else ''};", "  }")
    tr.emit("}")


@op("MaxPool")
def max_pool(tr, node, attrs: dict) -> None:
    x = tr.input(node, 0)
    if len(node.output) > 1 and node.output[1]:
        _refuse(node, "the Indices output: expected values only")
    if attrs.get("storage_order", 0):
        _refuse(node, "storage_order 1: expected 0")
    c, width = _spatial_1d(tr, node, x)
    kernel = list(attrs["kernel_shape"])
    if len(kernel) == 2 and kernel[0] != 1:
        _refuse(node, f"kernel_shape {kernel}: expected height 1")
    k = kernel[-1]
    s, d, pb, pe = _window(node, attrs, len(x.shape), k)
    span = width + pb + pe - d * (k - 1) - 1
    ow = (-(-span // s) if attrs.get("ceil_mode", 0) else span // s) + 1
    y = tr.output(node, 0, x.shape[:-1] + (ow,), x.loaded_type)
    tr.emit(f"for (int c = 0; c < {c}; ++c) {{",
            f"  for (int o = 0; o < {ow}; ++o) {{",
            f"    {y.ctype} best = -INFINITY;",
            f"    for (int k = 0; k < {k}; ++k) {{",
            f"      int i = o*{s} - {pb} + k*{d};",
            f"      if (i >= 0 && i < {width} && {x.load(f'c*{width} + i')} > best) best = {x.load(f'c*{width} + i')};",
            "    }",
            f"    {y.pointer}[c*{ow} + o] = best;",
            "  }", "}")


@op("GlobalAveragePool")
def global_average_pool(tr, node, attrs: dict) -> None:
    x = tr.input(node, 0)
    if len(x.shape) < 3 or x.shape[0] != 1:
        _refuse(node, f"input shape {list(x.shape)}: expected [1, C, ...]")
    c, n = x.shape[1], int(np.prod(x.shape[2:]))
    y = tr.output(node, 0, (1, c) + (1,) * (len(x.shape) - 2), x.loaded_type)
    tr.emit(f"for (int c = 0; c < {c}; ++c) {{",
            f"  {y.ctype} sum = 0;",
            f"  for (int i = 0; i < {n}; ++i) sum += {x.load(f'c*{n} + i')};",
            f"  {y.pointer}[c] = sum / {n};",
            "}")


@op("Gemm")
def gemm(tr, node, attrs: dict) -> None:
    a, b, c = tr.input(node, 0), tr.input(node, 1), tr.input(node, 2)
    if len(a.shape) != 2 or len(b.shape) != 2:
        _refuse(node, f"operand shapes {list(a.shape)}, {list(b.shape)}: expected 2-D")
    ta, tb = attrs.get("transA", 0), attrs.get("transB", 0)
    m, k = a.shape[::-1] if ta else a.shape
    n = b.shape[0] if tb else b.shape[1]
    alpha, beta = float(attrs.get("alpha", 1.0)), float(attrs.get("beta", 1.0))
    y = tr.output(node, 0, (m, n), a.loaded_type)
    a_at = (lambda i: f"{i}*{m} + r") if ta else (lambda i: f"r*{k} + {i}")
    b_at = (lambda i: f"j*{k} + {i}") if tb else (lambda i: f"{i}*{n} + j")
    value = "acc" if alpha == 1.0 else f"({alpha!r}f * acc)"
    if c is not None:
        term = c.load(index("r,j", broadcast_strides(c.shape, (m, n))))
        value += f" + {term}" if beta == 1.0 else f" + {beta!r}f * {term}"
    tr.emit(f"for (int r = 0; r < {m}; ++r) {{",
            f"  for (int j = 0; j < {n}; ++j) {{",
            f"    {y.ctype} acc = 0;",
            *(f"    {t}" for t in _dot("acc", k, lambda i: f"{a.load(a_at(i))} * {b.load(b_at(i))}")),
            f"    {y.pointer}[r*{n} + j] = {value};",
            "  }", "}")


@op("MatMul")
def matmul(tr, node, attrs: dict) -> None:
    a, b = tr.input(node, 0), tr.input(node, 1)
    if len(a.shape) < 2 or len(b.shape) < 2 or a.shape[-1] != b.shape[-2]:
        _refuse(node, f"operand shapes {list(a.shape)}, {list(b.shape)}: expected [..., M, K] @ [..., K, N]")
    m, k, n = a.shape[-2], a.shape[-1], b.shape[-1]
    batch = tuple(np.broadcast_shapes(a.shape[:-2], b.shape[:-2]))
    y = tr.output(node, 0, batch + (m, n), a.loaded_type)
    heads, tails, names = nested_loops(batch, "b")
    a_base = index(names, broadcast_strides(a.shape[:-2], batch)) if batch else "0"
    b_base = index(names, broadcast_strides(b.shape[:-2], batch)) if batch else "0"
    y_base = index(names, strides(batch)) if batch else "0"
    tr.emit(*heads,
            f"for (int r = 0; r < {m}; ++r) {{",
            f"  for (int j = 0; j < {n}; ++j) {{",
            f"    {y.ctype} acc = 0;",
            *(f"    {t}" for t in _dot("acc", k, lambda i: f"{a.load(f'({a_base})*{m * k} + r*{k} + {i}')} * "
                                                     f"{b.load(f'({b_base})*{k * n} + {i}*{n} + j')}")),
            f"    {y.pointer}[({y_base})*{m * n} + r*{n} + j] = acc;",
            "  }", "}", *tails)


BINARY = {"Add": "+", "Sub": "-", "Mul": "*", "Div": "/"}


@op(*BINARY)
def binary(tr, node, attrs: dict) -> None:
    a, b = tr.input(node, 0), tr.input(node, 1)
    shape = tuple(np.broadcast_shapes(a.shape, b.shape))
    if a.loaded_type != b.loaded_type:
        _refuse(node, f"operand types {a.loaded_type}, {b.loaded_type}: expected one type")
    same = a if a.shape == shape else b if b.shape == shape else None
    y = tr.output(node, 0, shape, a.loaded_type, in_place_of=same)
    heads, tails, names = nested_loops(shape)
    expr = (f"{a.load(index(names, broadcast_strides(a.shape, shape)))} {BINARY[node.op_type]} "
            f"{b.load(index(names, broadcast_strides(b.shape, shape)))}")
    tr.emit(*heads, f"{y.pointer}[{index(names, strides(shape))}] = {expr};", *tails)


@op("Relu")
def relu(tr, node, attrs: dict) -> None:
    x = tr.input(node, 0)
    y = tr.output(node, 0, x.shape, x.loaded_type, in_place_of=x)
    tr.emit(f"for (int i = 0; i < {x.size}; ++i) {{",
            f"  {y.ctype} v = {x.load('i')};",
            f"  {y.pointer}[i] = v > 0 ? v : 0;",
            "}")


@op("ReduceMean")
def reduce_mean(tr, node, attrs: dict) -> None:
    x = tr.input(node, 0)
    axes = attrs.get("axes")
    if axes is None and len(node.input) > 1 and node.input[1]:
        axes = tr.constant(node, 1).tolist()
    if axes is None:
        if attrs.get("noop_with_empty_axes", 0):
            _refuse(node, "noop_with_empty_axes 1: expected a reduction")
        axes = list(range(len(x.shape)))
    axes = sorted(a % len(x.shape) for a in axes)
    keep = attrs.get("keepdims", 1)
    kept = tuple(1 if i in axes else d for i, d in enumerate(x.shape))
    y = tr.output(node, 0, kept if keep else tuple(d for i, d in enumerate(x.shape) if i not in axes),
                  x.loaded_type)
    count = int(np.prod([x.shape[a] for a in axes]))
    heads, tails, names = nested_loops(x.shape)
    target = index(names, broadcast_strides(kept, x.shape))
    tr.emit(f"for (int i = 0; i < {y.size}; ++i) {y.pointer}[i] = 0;",
            *heads, f"{y.pointer}[{target}] += {x.load(index(names, strides(x.shape)))};", *tails,
            f"for (int i = 0; i < {y.size}; ++i) {y.pointer}[i] /= {count};")


@op("Transpose")
def transpose(tr, node, attrs: dict) -> None:
    x = tr.input(node, 0)
    perm = list(attrs["perm"]) if "perm" in attrs else list(range(len(x.shape)))[::-1]
    shape = tuple(x.shape[p] for p in perm)
    src = strides(x.shape)
    if _keeps_order(x.shape, perm):
        tr.alias(node, x, shape)  # only length-1 axes move: the same memory order
        return
    y = tr.output(node, 0, shape, x.loaded_type)
    heads, tails, names = nested_loops(shape)
    tr.emit(*heads, f"{y.pointer}[{index(names, strides(shape))}] = "
                    f"{x.load(index(names, [src[p] for p in perm]))};", *tails)


def _keeps_order(shape: tuple[int, ...], perm: list[int]) -> bool:
    moved = [p for p in perm if shape[p] > 1]
    return moved == sorted(moved)


@op("Slice")
def slice_(tr, node, attrs: dict) -> None:
    x = tr.input(node, 0)
    starts, ends = tr.constant(node, 1), tr.constant(node, 2)
    axes = tr.constant(node, 3) if len(node.input) > 3 and node.input[3] else np.arange(len(starts))
    steps = tr.constant(node, 4) if len(node.input) > 4 and node.input[4] else np.ones(len(starts), np.int64)
    begin, step, shape = [0] * len(x.shape), [1] * len(x.shape), list(x.shape)
    for start, end, axis, st in zip(starts.tolist(), ends.tolist(), axes.tolist(), steps.tolist()):
        axis %= len(x.shape)
        lo, hi, st = slice(start, end, st).indices(x.shape[axis])
        begin[axis], step[axis], shape[axis] = lo, st, len(range(lo, hi, st))
    src = strides(x.shape)
    offset = sum(b * s for b, s in zip(begin, src))
    if _contiguous(x.shape, shape, step):
        tr.alias(node, x, tuple(shape), offset)
        return
    y = tr.output(node, 0, tuple(shape), x.loaded_type)
    heads, tails, names = nested_loops(tuple(shape))
    tr.emit(*heads, f"{y.pointer}[{index(names, strides(tuple(shape)))}] = "
                    f"{x.load(f'{offset} + ' + index(names, [s * st for s, st in zip(src, step)]))};", *tails)


def _contiguous(full: tuple[int, ...], part: list[int], step: list[int]) -> bool:
    """True when the slice is one run of memory: after the first cut axis every axis is whole."""
    cut = [i for i, (f, p, s) in enumerate(zip(full, part, step)) if f != p or s != 1]
    if not cut:
        return True
    first = cut[0]
    return (all(s == 1 for s in step) and all(part[i] == 1 for i in range(first))
            and all(full[i] == part[i] for i in range(first + 1, len(full))))


@op("Tile")
def tile(tr, node, attrs: dict) -> None:
    x = tr.input(node, 0)
    repeats = tr.constant(node, 1).tolist()
    shape = tuple(d * r for d, r in zip(x.shape, repeats))
    y = tr.output(node, 0, shape, x.loaded_type)
    heads, tails, names = nested_loops(shape)
    src = [f"({n} % {d})" if d > 1 and n != "0" else n for n, d in zip(names.split(","), x.shape)]
    tr.emit(*heads, f"{y.pointer}[{index(names, strides(shape))}] = "
                    f"{x.load(index(','.join(src), [0 if d == 1 else s for d, s in zip(x.shape, strides(x.shape))]))};",
            *tails)


@op("Expand")
def expand(tr, node, attrs: dict) -> None:
    x = tr.input(node, 0)
    shape = tuple(np.broadcast_shapes(x.shape, tuple(tr.constant(node, 1).tolist())))
    if shape == x.shape:
        tr.alias(node, x, shape)
        return
    y = tr.output(node, 0, shape, x.loaded_type)
    heads, tails, names = nested_loops(shape)
    tr.emit(*heads, f"{y.pointer}[{index(names, strides(shape))}] = "
                    f"{x.load(index(names, broadcast_strides(x.shape, shape)))};", *tails)


@op("Reshape")
def reshape(tr, node, attrs: dict) -> None:
    x, target = tr.input(node, 0), tr.constant(node, 1).tolist()
    if attrs.get("allowzero", 0) and 0 in target:
        _refuse(node, "allowzero 1 with a zero in the shape")
    target = [x.shape[i] if d == 0 else d for i, d in enumerate(target)]
    if -1 in target:
        known = int(np.prod([d for d in target if d != -1]))
        target[target.index(-1)] = x.size // max(known, 1)
    if int(np.prod(target)) != x.size:
        _refuse(node, f"shape {target} for {x.size} elements")
    tr.alias(node, x, tuple(target))


@op("Flatten")
def flatten(tr, node, attrs: dict) -> None:
    x = tr.input(node, 0)
    axis = attrs.get("axis", 1) % (len(x.shape) + 1) if x.shape else 0
    tr.alias(node, x, (int(np.prod(x.shape[:axis])), int(np.prod(x.shape[axis:]))))


@op("Squeeze", "Unsqueeze")
def squeeze(tr, node, attrs: dict) -> None:
    x = tr.input(node, 0)
    axes = attrs.get("axes")
    if axes is None and len(node.input) > 1 and node.input[1]:
        axes = tr.constant(node, 1).tolist()
    if node.op_type == "Squeeze":
        axes = [a % len(x.shape) for a in axes] if axes is not None else [i for i, d in enumerate(x.shape) if d == 1]
        shape = tuple(d for i, d in enumerate(x.shape) if i not in axes)
    else:
        rank = len(x.shape) + len(axes)
        axes = sorted(a % rank for a in axes)
        dims = iter(x.shape)
        shape = tuple(1 if i in axes else next(dims) for i in range(rank))
    tr.alias(node, x, shape)


@op("Identity")
def identity(tr, node, attrs: dict) -> None:
    x = tr.input(node, 0)
    tr.alias(node, x, x.shape)


CAST_TYPES = {1: "float", 11: "double"}  # onnx.TensorProto.FLOAT, DOUBLE


@op("Cast")
def cast(tr, node, attrs: dict) -> None:
    x, to = tr.input(node, 0), attrs.get("to")
    if to not in CAST_TYPES:
        _refuse(node, f"to {to}: expected float (1) or double (11)")
    target = CAST_TYPES[to]
    tr.alias(node, x, x.shape, read_as=None if target == x.ctype else target)


QUANTIZED_RANGE = {np.dtype(np.uint8): (0, 255), np.dtype(np.int8): (-128, 127)}


@op("QuantizeLinear")
def quantize_linear(tr, node, attrs: dict) -> None:
    """x -> saturate(round_half_even(x / scale) + zero_point), kept as exact integers in float: the only reader
    is the DequantizeLinear of the same QDQ pair."""
    x, scale, zero = tr.input(node, 0), tr.constant(node, 1), tr.constant(node, 2)
    if scale.size != 1 or zero.size != 1 or zero.dtype not in QUANTIZED_RANGE:
        _refuse(node, f"scale {list(scale.shape)} / zero point {zero.dtype}{list(zero.shape)}: expected one "
                      "uint8 or int8 scale per tensor")
    lo, hi = QUANTIZED_RANGE[zero.dtype]
    y = tr.output(node, 0, x.shape, "float", in_place_of=x)
    tr.emit(f"for (int i = 0; i < {x.size}; ++i) {{",
            f"  float q = rintf({x.load('i')} / {_float(scale)}) + {int(zero.ravel()[0])}.0f;",
            f"  {y.pointer}[i] = q < {lo}.0f ? {lo}.0f : q > {hi}.0f ? {hi}.0f : q;",
            "}")


@op("DequantizeLinear")
def dequantize_linear(tr, node, attrs: dict) -> None:
    """Int8 weights stay int8 in flash and are scaled on load (per output channel); a quantized activation
    (from QuantizeLinear) becomes (q - zero_point) * scale."""
    x = tr.input(node, 0)
    scale = tr.constant(node, 1)
    zero = tr.constant(node, 2) if len(node.input) > 2 and node.input[2] else np.zeros(1, np.int8)
    if x.value is not None:  # weights
        if zero.any():
            _refuse(node, "weights with a non-zero zero point: expected symmetric int8")
        axis = attrs.get("axis", 1) % len(x.shape) if scale.size > 1 else 0
        inner = int(np.prod(x.shape[axis + 1:])) if scale.size > 1 else 1
        tr.tensors[node.output[0]] = Tensor(node.output[0], x.shape, "int8_t", pointer=x.pointer,
                                            scale=(tr.constants.name_of(scale.astype(np.float32)), inner,
                                                   scale.size))
        return
    if scale.size != 1:
        _refuse(node, "a per-axis scale on an activation: expected one per tensor")
    y = tr.output(node, 0, x.shape, "float", in_place_of=x)
    tr.emit(f"for (int i = 0; i < {x.size}; ++i) {y.pointer}[i] = ({x.load('i')} - {int(zero.ravel()[0])}.0f) * "
            f"{_float(scale)};")


def _float(value: np.ndarray) -> str:
    return np.format_float_scientific(np.float32(value.ravel()[0]), unique=True, trim="0") + "f"
