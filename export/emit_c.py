"""A bundle's ONNX graphs -> one C99 source and header for a microcontroller (``ecgae emit-c``).

The generator reads the bundle's own graph files (hash-checked against the manifest), so the C is the
bundle's arithmetic, not a second model: ``ecgae_encode`` is encoder.onnx, ``ecgae_decode`` decoder.onnx
and ``ecgae_score`` score.onnx, each specialised to one beat. Weights become ``const`` arrays (flash),
stored once when graphs share them; activations live in one static scratch buffer per element type,
sized here from the tensors' lifetimes (no malloc). A node the generator cannot translate exactly stops
it with an error naming the node and operator.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
from onnx import helper, numpy_helper
from onnx.reference import ReferenceEvaluator

from ..runtime import bundle as bundle_io
from ..runtime.errors import InputError
from ..runtime.io import atomic_write_bytes
from .c_graph import CTYPES, SIZES, Constants, Plan, Tensor, UnsupportedGraph, placeholder
from .c_int8 import int8_section, score_graph
from .c_ops import OPS

PREFIX = "ecgae"
SOURCE, HEADER, SUMMARY = "ecgae_model.c", "ecgae_model.h", "ecgae_model.json"
ARENA = {"float": "ecgae_scratch_f", "double": "ecgae_scratch_d"}
SHAPE_FREE = ("Shape",)  # operators answered from static shapes alone
INT8_MIN_WEIGHTS = 64  # smaller int8 tensors (tiny layers) are folded to float: their scales cost as much


@dataclass(frozen=True)
class Entry:
    """One C function: a graph of the bundle and which of its outputs the function returns."""

    function: str
    graph: str  # key in the manifest's ``graphs``
    input: str  # C parameter of the graph's input
    outputs: tuple[tuple[int, str, bool], ...]  # (graph output index, C parameter, may be NULL)


def entries(kind: str) -> tuple[Entry, ...]:
    """encode: beat -> z (mu for a VAE, as Model.encode); decode: z -> x_hat; score: beat -> per-beat MSE,
    with the latent and the reconstruction on request."""
    return (Entry("ecgae_encode", "encoder", "beat", ((0, "z", False),)),
            Entry("ecgae_decode", "decoder", "z", ((0, "x_hat", False),)),
            Entry("ecgae_score", "score", "beat", ((2, "score", False), (0, "z", True), (1, "x_hat", True))))


class Translation:
    """One graph translated into the body of one C function."""

    def __init__(self, model: onnx.ModelProto, label: str, constants: Constants):
        self.model, self.label, self.constants = model, label, constants
        self.tensors: dict[str, Tensor] = {}
        self.plan = Plan()
        self.lines: list[str] = []
        self.step = 0
        self.opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 17)
        for init in model.graph.initializer:
            value = numpy_helper.to_array(init)
            self.tensors[init.name] = Tensor(init.name, tuple(value.shape), _ctype(value.dtype), value=value)

    # -- the interface the operator emitters use --
    def input(self, node, i: int) -> Tensor | None:
        if i >= len(node.input) or not node.input[i]:
            return None
        t = self.tensors[node.input[i]]
        if t.value is not None and t.pointer is None:
            t.pointer = self.constants.name_of(t.value)
        if t.buffer is not None:
            self.plan.use(t.buffer, self.step)
        return t

    def constant(self, node, i: int) -> np.ndarray:
        t = self.tensors[node.input[i]]
        if t.value is None:
            raise UnsupportedGraph(f"{self.label}: node {node.name!r} ({node.op_type}): input {i} "
                                   f"({node.input[i]!r}) is computed at run time; expected a constant")
        return t.value

    def output(self, node, i: int, shape: tuple[int, ...], ctype: str, in_place_of: Tensor | None = None) -> Tensor:
        size = int(np.prod(shape, dtype=np.int64))
        partner = None
        if (in_place_of is not None and in_place_of.buffer is not None and in_place_of.read_as is None
                and in_place_of.pointer == placeholder(in_place_of.buffer) and in_place_of.size == size):
            partner = in_place_of.buffer
        buffer = self.plan.add(ctype, size, self.step, partner)
        t = Tensor(node.output[i], tuple(shape), ctype, pointer=placeholder(buffer), buffer=buffer)
        self.tensors[t.name] = t
        return t

    def alias(self, node, src: Tensor, shape: tuple[int, ...], offset: int = 0, read_as: str | None = None) -> None:
        name = node.output[0]
        size = int(np.prod(shape, dtype=np.int64))
        if src.value is not None:
            value = src.value.ravel()[offset : offset + size].reshape(shape)
            if read_as:
                value = value.astype({"float": np.float32, "double": np.float64}[read_as])
            self.tensors[name] = Tensor(name, tuple(shape), _ctype(value.dtype), value=value)
            return
        pointer = f"({src.pointer} + {offset})" if offset else src.pointer
        read = read_as or src.read_as
        self.tensors[name] = Tensor(name, tuple(shape), src.ctype, pointer=pointer, buffer=src.buffer,
                                    read_as=None if read == src.ctype else read)

    def emit(self, *lines: str) -> None:
        self.lines.extend("  " + line for line in lines)

    # -- translation --
    def function(self, entry: Entry) -> tuple[str, dict[str, int]]:
        """C text of ``entry`` and its scratch needs per element type (in elements)."""
        graph = self.model.graph
        x = graph.input[0]
        shape = _static_shape(x, self.label)
        ctype = _ctype(helper.tensor_dtype_to_np_dtype(x.type.tensor_type.elem_type))
        self.tensors[x.name] = Tensor(x.name, shape, ctype, pointer=entry.input)
        wanted = [graph.output[i].name for i, _, _ in entry.outputs]
        for node in _needed(graph, wanted):
            self.step += 1
            self._node(node)
        self.step += 1
        outputs = [(self.tensors[name], param, optional) for name, (_, param, optional) in zip(wanted, entry.outputs)]
        for t, _, _ in outputs:
            if t.buffer is not None:
                self.plan.use(t.buffer, self.step)
        sizes = self.plan.assign()
        body = "\n".join(self.lines)
        body = re.sub(r"@@(\d+)@@", lambda m: self._address(int(m.group(1))), body)
        params = [f"const {ctype} *{entry.input}"] + [f"{t.loaded_type} *{p}" for t, p, _ in outputs]
        required = [entry.input] + [p for _, p, optional in outputs if not optional]
        tail = []
        for t, param, optional in outputs:
            value = re.sub(r"@@(\d+)@@", lambda m: self._address(int(m.group(1))), t.load("i"))
            if t.value is not None:
                raise UnsupportedGraph(f"{self.label}: output {t.name!r} is a constant; expected a computed value")
            tail.append(f"  for (int i = 0; i < {t.size}; ++i) if (!isfinite({value})) return ECGAE_NONFINITE;")
            copy = f"for (int i = 0; i < {t.size}; ++i) {param}[i] = {value};"
            tail.append(f"  if ({param} != NULL) {copy}" if optional else f"  {copy}")
        text = "\n".join([
            f"int {entry.function}({', '.join(params)})",
            "{",
            f"  if ({' || '.join(f'{p} == NULL' for p in required)}) return ECGAE_NULL_ARGUMENT;",
            body, *tail,
            "  return ECGAE_OK;",
            "}",
        ])
        return text, sizes

    def _address(self, buffer: int) -> str:
        b = self.plan.buffers[buffer]
        return f"({ARENA[b.ctype]} + {b.offset})"

    def _node(self, node) -> None:
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        inputs = [self.tensors.get(name) for name in node.input if name]
        if any(t is None for t in inputs):
            raise UnsupportedGraph(f"{self.label}: node {node.name!r} ({node.op_type}) reads a value defined "
                                   "nowhere before it")
        if node.op_type in SHAPE_FREE and inputs:
            self._constant(node.output[0], np.array(inputs[0].shape, dtype=np.int64))
        elif all(t.value is not None for t in inputs) and not _int8_weights(node, inputs):
            self._fold(node, inputs)
        elif node.op_type in OPS:
            self.emit(f"/* {node.op_type} {node.name} */", "{")
            OPS[node.op_type](self, node, attrs)
            self.emit("}")
        else:
            raise UnsupportedGraph(f"{self.label}: node {node.name!r}: operator {node.op_type!r} is not supported "
                                   f"by the C generator (supported: {', '.join(sorted(OPS))})")

    def _fold(self, node, inputs: list[Tensor]) -> None:
        """A node whose inputs are all known runs here, once, in onnx's reference evaluator."""
        if node.domain not in ("", "ai.onnx"):
            raise UnsupportedGraph(f"{self.label}: node {node.name!r}: operator domain {node.domain!r} is not "
                                   "supported by the C generator")
        feeds = {name: t.value for name, t in zip([n for n in node.input if n], inputs)}
        try:
            values = ReferenceEvaluator(node, opsets={"": self.opset}).run(None, feeds)
        except Exception as e:  # the reference evaluator has no error type of its own
            raise UnsupportedGraph(f"{self.label}: node {node.name!r} ({node.op_type}) could not be evaluated at "
                                   f"generation time: {e}") from None
        for name, value in zip(node.output, values):
            self._constant(name, np.asarray(value))

    def _constant(self, name: str, value: np.ndarray) -> None:
        self.tensors[name] = Tensor(name, tuple(value.shape), _ctype(value.dtype), value=value)


def _int8_weights(node, inputs: list[Tensor]) -> bool:
    """A DequantizeLinear of int8 weights is not folded to float: the weights stay int8 in flash."""
    return node.op_type == "DequantizeLinear" and inputs[0].ctype == "int8_t" and inputs[0].size > INT8_MIN_WEIGHTS


def _ctype(dtype: np.dtype) -> str:
    return CTYPES.get(np.dtype(dtype), str(np.dtype(dtype)))


def _static_shape(value_info, label: str) -> tuple[int, ...]:
    """The input's shape with its batch axis set to 1; any other symbolic axis is refused."""
    dims = value_info.type.tensor_type.shape.dim
    shape = []
    for i, d in enumerate(dims):
        if d.HasField("dim_value"):
            shape.append(d.dim_value)
        elif i == 0:
            shape.append(1)
        else:
            raise UnsupportedGraph(f"{label}: input {value_info.name!r} axis {i} is symbolic ({d.dim_param!r}); "
                                   "expected a fixed length")
    return tuple(shape)


def _needed(graph, outputs: list[str]) -> list:
    """The nodes that ``outputs`` depend on, in graph order (a VAE's encode needs no logvar)."""
    wanted, keep = set(outputs), []
    for node in reversed(graph.node):
        if wanted & set(node.output):
            keep.append(node)
            wanted |= {n for n in node.input if n}
    return keep[::-1]


@dataclass
class CModel:
    """What ``emit_c`` wrote and what it costs."""

    source: Path
    header: Path
    const_bytes: int
    scratch_bytes: int
    functions: list[str]

    def as_dict(self) -> dict:
        return {"source": self.source.name, "header": self.header.name, "const_bytes": self.const_bytes,
                "scratch_bytes": self.scratch_bytes, "functions": self.functions}


def load_graph(bundle_dir: Path, manifest: dict, name: str, section: dict | None = None) -> onnx.ModelProto:
    """A graph of the bundle (of ``section``, a variant, when given), its sha256 checked against the manifest."""
    graphs = (manifest if section is None else section).get("graphs", {})
    if name not in graphs:
        raise InputError(f"bundle {bundle_dir}: expected graph {name!r} in the manifest, received "
                         f"{sorted(graphs)}; re-export the bundle with this version of ecgae")
    return onnx.load(bundle_io.verified_file(bundle_dir, graphs[name], f"graphs.{name}"))


def chosen(kind: str, functions: tuple[str, ...] | None) -> tuple[Entry, ...]:
    """The entries named in ``functions`` (all when None), refusing unknown names."""
    every = entries(kind)
    if functions is None:
        return every
    names = [e.function for e in every]
    unknown = [f for f in functions if f not in names]
    if unknown or not functions:
        raise InputError(f"functions: expected a non-empty subset of {names}, received {list(functions)}")
    return tuple(e for e in every if e.function in functions)


def translate(models: dict[str, onnx.ModelProto], kind: str,
              functions: tuple[str, ...] | None = None) -> tuple[str, Constants, dict[str, int]]:
    """C definitions of the entries (all, or those named), the constants they read and the scratch they need."""
    constants = Constants(f"{PREFIX}_w")
    texts, scratch = [], dict.fromkeys(ARENA, 0)
    for entry in chosen(kind, functions):
        text, sizes = Translation(models[entry.graph], f"{entry.graph}.onnx", constants).function(entry)
        texts.append(text)
        scratch = {k: max(scratch[k], sizes[k]) for k in scratch}
    return "\n\n".join(texts), constants, scratch


PROTOTYPES = {
    "ecgae_encode": ["/* beat[ECGAE_INPUT_LENGTH] -> z[ECGAE_LATENT_DIM] (a VAE's posterior mean) */",
                     "int ecgae_encode(const float *beat, float *z);"],
    "ecgae_decode": ["/* z[ECGAE_LATENT_DIM] -> x_hat[ECGAE_INPUT_LENGTH] */",
                     "int ecgae_decode(const float *z, float *x_hat);"],
    "ecgae_score": ["/* beat -> *score, the mean squared reconstruction error (computed in double, as the bundle's",
                    " * score graph does); z and x_hat receive the latent and reconstruction unless NULL */",
                    "int ecgae_score(const float *beat, double *score, float *z, float *x_hat);"],
}


def kind_arch(manifest: dict) -> str:
    return f"{manifest['model']['kind']} / {manifest['model']['arch']}"


def _header(manifest: dict, section: dict, precision: str, sizes: tuple[int, int], functions: list[str]) -> str:
    """The header; ``section`` is the manifest or its INT8 variant: the graphs and threshold of that precision."""
    model, (scratch_bytes, const_bytes) = manifest["model"], sizes
    threshold = (section.get("anomaly") or {}).get("threshold")
    graphs = "\n".join(f" *   {entry['file']}: sha256 {entry['sha256']}" for entry in section["graphs"].values())
    lines = [
        "/* Generated by 'ecgae emit-c' from an ecgae bundle; do not edit: regenerate from the bundle.",
        f" * model: {kind_arch(manifest)}, L = {model['input_length']}, latent = {model['latent_dim']}, {precision}",
        graphs,
        " * Beats must be preprocessed (filtered, windowed, z-scored) as the bundle's manifest says, as the",
        " * Python runtime does. The functions share one static scratch buffer: call them from one context",
        " * at a time (not re-entrant). Each returns ECGAE_OK, or a negative code and leaves outputs unset.",
        " */",
        "#ifndef ECGAE_MODEL_H",
        "#define ECGAE_MODEL_H",
        "",
        f"#define ECGAE_INPUT_LENGTH {model['input_length']}",
        f"#define ECGAE_LATENT_DIM {model['latent_dim']}",
        f"#define ECGAE_SCRATCH_BYTES {scratch_bytes}",
        f"#define ECGAE_CONST_BYTES {const_bytes}",
    ]
    if threshold is not None:
        lines.append(f"#define ECGAE_THRESHOLD {float(threshold)!r} /* score > threshold: anomalous */")
    lines += [
        "#define ECGAE_OK 0",
        "#define ECGAE_NULL_ARGUMENT (-1) /* a required pointer is NULL */",
        "#define ECGAE_NONFINITE (-2) /* an output overflowed to infinity or NaN */",
        "",
        *(line for f in functions for line in PROTOTYPES[f]),
        "",
        "#endif",
    ]
    return "\n".join(lines) + "\n"


def bundle_graphs(bundle_dir: Path, manifest: dict, precision: str) -> dict[str, onnx.ModelProto]:
    """encoder, decoder and score graphs of one precision: the FP32 ones, or the INT8 variant's."""
    if precision == "fp32":
        return {name: load_graph(bundle_dir, manifest, name) for name in ("encoder", "decoder", "score")}
    if precision != "int8":
        raise InputError(f"--precision: expected 'fp32' or 'int8', received {precision!r}")
    section = int8_section(bundle_dir, manifest)
    pair = {name: load_graph(bundle_dir, manifest, name, section) for name in ("encoder", "decoder")}
    return pair | {"score": score_graph(pair["encoder"], pair["decoder"])}


def emit_c(bundle_dir: str | Path, out_dir: str | Path, functions: tuple[str, ...] | None = None,
           precision: str = "fp32") -> CModel:
    """Write ecgae_model.c / .h (and a JSON summary of their cost) for the bundle's FP32 graphs, or its INT8
    variant's (int8 weights in flash, scaled on load): every entry, or only those named (a wearable that
    sends z needs ecgae_encode alone, and its weights and scratch)."""
    bundle_dir, out_dir = Path(bundle_dir), Path(out_dir)
    manifest = bundle_io.read_manifest(bundle_dir)
    kind = manifest["model"]["kind"]
    picked = chosen(kind, functions)
    models = bundle_graphs(bundle_dir, manifest, precision)
    functions, constants, scratch = translate(models, kind, tuple(e.function for e in picked))
    scratch_bytes = sum(n * SIZES[t] for t, n in scratch.items())
    arenas = "\n".join(f"static {t} {ARENA[t]}[{n}];" for t, n in scratch.items() if n)
    source = "\n".join([
        "/* Generated by 'ecgae emit-c'; see ecgae_model.h. */",
        "#include <math.h>",
        "#include <stddef.h>",
        "#include <stdint.h>",
        f'#include "{HEADER}"',
        "",
        constants.definitions(),
        "",
        f"/* scratch: {scratch_bytes} bytes, planned from the tensors' lifetimes */",
        arenas,
        "",
        functions,
        "",
    ])
    atomic_write_bytes(out_dir / SOURCE, source.encode())
    names = [e.function for e in picked]
    section = manifest if precision == "fp32" else int8_section(bundle_dir, manifest)
    header = _header(manifest, section, precision, (scratch_bytes, constants.nbytes), names)
    atomic_write_bytes(out_dir / HEADER, header.encode())
    result = CModel(out_dir / SOURCE, out_dir / HEADER, constants.nbytes, scratch_bytes, names)
    atomic_write_bytes(out_dir / SUMMARY, (json.dumps(result.as_dict(), indent=2) + "\n").encode())
    return result
