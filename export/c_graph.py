"""The bookkeeping under the C generator: tensors of static shape, where each one lives, and one scratch
buffer per element type planned from the tensors' lifetimes.

Shapes are fixed at generation time (batch 1), so every loop bound and stride in the emitted C is a
literal, and the scratch size is a number the linker can check against the part's RAM. Views (Reshape,
Squeeze, a contiguous Slice, a Cast read in place) cost no memory and no copy; a buffer is reused as
soon as its last reader has run.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import numpy as np

from ..runtime.errors import EcgaeError

CTYPES = {np.dtype(np.float32): "float", np.dtype(np.float64): "double", np.dtype(np.int8): "int8_t",
          np.dtype(np.uint8): "uint8_t", np.dtype(np.int32): "int32_t"}
SIZES = {"float": 4, "double": 8, "int8_t": 1, "uint8_t": 1, "int32_t": 4}
ARENAS = ("float", "double")  # activations the generated code computes on


class UnsupportedGraph(EcgaeError):
    """A graph holds an operator, attribute or shape the C generator cannot translate exactly."""


@dataclass
class Tensor:
    """One value of the graph: a constant (``value``), the entry's input, or (a view of) a scratch buffer."""

    name: str
    shape: tuple[int, ...]
    ctype: str
    value: np.ndarray | None = None
    pointer: str | None = None  # C expression of element 0 (input parameter, const array, buffer placeholder)
    buffer: int | None = None  # id of the scratch buffer it lives in (itself or as a view)
    read_as: str | None = None  # a Cast not materialised: readers convert each element on load
    scale: tuple[str, int, int] | None = None  # int8 weights read as float: (scale array, inner size, channels)

    @property
    def size(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64))

    @property
    def loaded_type(self) -> str:
        return "float" if self.scale else self.read_as or self.ctype

    def load(self, index: str) -> str:
        """C expression of element ``index`` as its readers see it."""
        expr = f"{self.pointer}[{index}]"
        if self.scale:
            name, inner, channels = self.scale
            channel = "0" if channels == 1 else f"(({index}) / {inner}) % {channels}"
            return f"((float){expr} * {name}[{channel}])"
        return f"(({self.read_as}){expr})" if self.read_as else expr


@dataclass
class Buffer:
    ctype: str
    size: int
    born: int
    last: int
    in_place_of: int | None = None  # a dying input whose block this output may take (same index, same size)
    offset: int = -1


@dataclass
class Plan:
    """Scratch buffers of one entry (or several sharing one scratch), planned after the code is emitted."""

    buffers: list[Buffer] = field(default_factory=list)

    def add(self, ctype: str, size: int, step: int, in_place_of: int | None = None) -> int:
        if ctype not in ARENAS:
            raise UnsupportedGraph(f"activations of C type {ctype}: expected one of {ARENAS}")
        self.buffers.append(Buffer(ctype, size, step, step, in_place_of))
        return len(self.buffers) - 1

    def use(self, buffer: int, step: int) -> None:
        self.buffers[buffer].last = max(self.buffers[buffer].last, step)

    def assign(self) -> dict[str, int]:
        """First-fit offsets per arena (buffers ordered by birth); returns each arena's size in elements."""
        sizes = dict.fromkeys(ARENAS, 0)
        for i, b in enumerate(self.buffers):
            live = [o for o in self.buffers[:i] if o.ctype == b.ctype and o.offset >= 0 and o.last >= b.born]
            partner = self.buffers[b.in_place_of] if b.in_place_of is not None else None
            if (partner is not None and partner.last == b.born and partner.size == b.size
                    and partner.ctype == b.ctype):
                others = [o for o in live if o is not partner]
                if not any(_overlaps(partner.offset, b.size, o) for o in others):
                    b.offset = partner.offset
            if b.offset < 0:
                b.offset = 0
                for o in sorted(live, key=lambda o: o.offset):
                    if _overlaps(b.offset, b.size, o):
                        b.offset = o.offset + o.size
            sizes[b.ctype] = max(sizes[b.ctype], b.offset + b.size)
        return sizes


def _overlaps(offset: int, size: int, other: Buffer) -> bool:
    return offset < other.offset + other.size and other.offset < offset + size


def placeholder(buffer: int) -> str:
    """Stands for a buffer's address in emitted code until the plan fixes its offset."""
    return f"@@{buffer}@@"


class Constants:
    """The const arrays (flash) of a translation unit, each distinct content written once: the score graph
    repeats the encoder's weights, and they are stored once."""

    def __init__(self, prefix: str):
        self.prefix = prefix
        self.arrays: dict[str, tuple[str, np.ndarray]] = {}  # digest -> (C name, values)

    def name_of(self, value: np.ndarray) -> str:
        value = np.ascontiguousarray(value)
        if value.dtype not in CTYPES:
            raise UnsupportedGraph(f"constant of dtype {value.dtype}: expected one of "
                                   f"{sorted(str(d) for d in CTYPES)}")
        if value.dtype.kind == "f" and not np.isfinite(value).all():
            raise UnsupportedGraph("a constant holds NaN or infinity")
        digest = hashlib.sha256(str(value.dtype).encode() + value.tobytes()).hexdigest()
        if digest not in self.arrays:
            self.arrays[digest] = (f"{self.prefix}{len(self.arrays)}", value.ravel())
        return self.arrays[digest][0]

    @property
    def nbytes(self) -> int:
        return sum(v.nbytes for _, v in self.arrays.values())

    @staticmethod
    def literals(values: np.ndarray) -> str:
        """The values as a comma-separated C initializer, each exact (float32 in its shortest round-trip form)."""
        ctype = CTYPES[values.dtype]
        return ",".join(_literal(v, ctype) for v in values.ravel())

    def definitions(self) -> str:
        out = []
        for name, values in self.arrays.values():
            ctype = CTYPES[values.dtype]
            body = self.literals(values)
            out.append(f"static const {ctype} {name}[{max(len(values), 1)}] = {{{body or '0'}}};")
        return "\n".join(out)


def _literal(v: np.generic, ctype: str) -> str:
    if ctype == "float":
        return np.format_float_scientific(np.float32(v), unique=True, trim="0") + "f"
    if ctype == "double":
        return repr(float(v))
    return str(int(v))


def strides(shape: tuple[int, ...]) -> list[int]:
    out, step = [], 1
    for dim in reversed(shape):
        out.append(step)
        step *= dim
    return out[::-1]


def broadcast_strides(shape: tuple[int, ...], out_shape: tuple[int, ...]) -> list[int]:
    """Strides to read a tensor of ``shape`` at the indices of ``out_shape`` (numpy broadcasting: 0 where it
    repeats)."""
    padded = (1,) * (len(out_shape) - len(shape)) + tuple(shape)
    return [0 if dim == 1 else s for dim, s in zip(padded, strides(padded))]


def nested_loops(shape: tuple[int, ...], var: str = "i") -> tuple[list[str], list[str], str]:
    """``for`` headers over the axes of ``shape`` longer than 1, their closing braces, and the names of the
    index of each axis ('0' for an axis of length 1)."""
    heads, names = [], []
    for axis, dim in enumerate(shape):
        if dim == 1:
            names.append("0")
        else:
            names.append(f"{var}{axis}")
            heads.append(f"for (int {var}{axis} = 0; {var}{axis} < {dim}; ++{var}{axis}) {{")
    return heads, ["}"] * len(heads), ",".join(names)


def index(names: str, steps: list[int]) -> str:
    """C expression sum(name * stride) over the axes, dropping zero terms."""
    terms = [n if s == 1 else f"{n}*{s}" for n, s in zip(names.split(","), steps) if n != "0" and s != 0]
    return " + ".join(terms) or "0"
