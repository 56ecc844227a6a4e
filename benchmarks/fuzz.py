"""Malformed-input campaign: named classes of broken files and arrays, each fed many random variants
through the runtime's real readers, counting outcomes. An input is *accepted* (it was valid after all),
*refused* with the project's own error (one printable line naming the input), or a *traceback*: any
other exception, the failure this campaign exists to find.

    python -m ecgae.benchmarks.fuzz BUNDLE --per-class 2000      # the README's figure (BUNDLE: L = 140 or any)
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import io
import json
import os
import shutil
import sys
import tempfile
import time
import traceback
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..cli import main as cli_main
from ..runtime import EcgaeError, Model
from ..runtime.bundle import SEAL
from ..runtime.cli import read_wfdb
from ..runtime.files import read_npz
from ..runtime.io import read_array
from ..runtime.seal import seal

Rng = np.random.Generator


@dataclass(frozen=True)
class Case:
    """One malformation class: ``make(rng, ctx)`` builds an input in ``ctx.tmp`` and returns a call that
    reads it the way ecgae does. ``always_refused``: no variant of this class is a valid input."""

    name: str
    make: Callable[[Rng, Context], Callable[[], object]]
    always_refused: bool = True
    weight: float = 1.0  # share of --per-class (slow readers run fewer variants)


class Context:
    """A scratch folder, the model under test and a pristine copy of its bundle."""

    def __init__(self, tmp: Path, bundle: Path):
        self.tmp, self.bundle, self.model = tmp, bundle, Model.load(bundle)
        self.length = self.model.input_length
        self.files = {p.name: p.read_bytes() for p in bundle.iterdir()}
        self.manifest = json.loads(self.files["manifest.json"])

    def path(self, name: str | bytes, data: bytes | None = None) -> Path:
        p = Path(os.fsdecode(os.path.join(os.fsencode(self.tmp), os.fsencode(name))))
        if data is not None:
            p.write_bytes(data)
        return p

    def bundle_with(self, **files: bytes) -> Path:
        """A copy of the bundle with some files replaced, in a fresh folder."""
        dst = Path(tempfile.mkdtemp(dir=self.tmp))
        for name, data in {**self.files, **files}.items():
            (dst / name).write_bytes(data)
        return dst


def _npy(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, arr, allow_pickle=True)
    return buf.getvalue()


def _npy_header(header: str, version: bytes = b"\x01\x00", data: bytes = b"") -> bytes:
    raw = header.encode("latin1")
    return b"\x93NUMPY" + version + len(raw).to_bytes(2, "little") + raw + data


def _flip(data: bytes, rng: Rng, count: int = 1) -> bytes:
    b = bytearray(data)
    for i in rng.integers(0, len(b), count):
        b[i] ^= int(rng.integers(1, 256))
    return bytes(b)


class ScoreFile:
    """What ``ecgae score`` does with a beats file: read it, then score it."""

    def __init__(self, ctx: Context, path: Path):
        self.model, self.path = ctx.model, path

    def __call__(self) -> object:
        return self.model.score(read_array(self.path, "INPUT"))



def _beats(ctx: Context, rng: Rng, rows: int | None = None) -> np.ndarray:
    return rng.standard_normal((rows or int(rng.integers(1, 5)), ctx.length)).astype(np.float32)


def _text(rng: Rng, n: int) -> bytes:
    return bytes(rng.integers(0, 256, n, dtype=np.uint8))


# --- .npy -------------------------------------------------------------------------------------------
def _npy_case(build: Callable[[Rng, Context], bytes]) -> Callable[[Rng, Context], Callable[[], object]]:
    return lambda rng, ctx: ScoreFile(ctx, ctx.path("in.npy", build(rng, ctx)))


def _shape_lies(rng: Rng, ctx: Context) -> bytes:
    rows = int(rng.integers(2, 60))
    claimed = int(rng.integers(rows + 1, 100_000_000))
    header = f"{{'descr': '<f4', 'fortran_order': False, 'shape': ({claimed}, {ctx.length}), }}"
    return _npy_header(header.ljust(118) + "\n", data=_beats(ctx, rng, rows).tobytes())


def _huge_dims(rng: Rng, ctx: Context) -> bytes:
    dims = ", ".join(str(int(d)) for d in rng.integers(2**40, 2**62, int(rng.integers(1, 4)), dtype=np.int64))
    return _npy_header(f"{{'descr': '<f8', 'fortran_order': False, 'shape': ({dims},), }}".ljust(118) + "\n")


def _negative_dim(rng: Rng, ctx: Context) -> bytes:
    return _npy_header(f"{{'descr': '<f4', 'fortran_order': False, 'shape': (-{int(rng.integers(1, 9))}, "
                       f"{ctx.length}), }}".ljust(118) + "\n")


def _header_garbage(rng: Rng, ctx: Context) -> bytes:
    return _npy_header(_text(rng, int(rng.integers(1, 200))).decode("latin1") + "\n", data=_text(rng, 64))


def _header_len_beyond(rng: Rng, ctx: Context) -> bytes:
    return b"\x93NUMPY\x01\x00" + int(rng.integers(200, 65535)).to_bytes(2, "little") + b"{'descr'"


def _header_not_dict(rng: Rng, ctx: Context) -> bytes:
    literal = ["[1, 2]", "'text'", "42", "None", "{'descr': '<f4'}", "{'shape': (1,)}", "(1, 2)"]
    return _npy_header(literal[int(rng.integers(len(literal)))].ljust(118) + "\n")


NPY = [
    Case("npy: empty file", _npy_case(lambda r, c: b"")),
    Case("npy: wrong magic", _npy_case(lambda r, c: bytes([int(r.integers(0, 0x93))]) + _npy(_beats(c, r))[1:])),
    Case("npy: truncated magic", _npy_case(lambda r, c: b"\x93NUMPY\x01\x00"[: int(r.integers(1, 8))])),
    Case("npy: unknown format version", _npy_case(lambda r, c: (d := _npy(_beats(c, r)))[:6]
                                                  + bytes([int(r.integers(4, 256)), 0]) + d[8:])),
    Case("npy: header length beyond the file", _npy_case(_header_len_beyond)),
    Case("npy: garbage header", _npy_case(_header_garbage)),
    Case("npy: header not an array description", _npy_case(_header_not_dict)),
    Case("npy: object array (pickle)", _npy_case(lambda r, c: _npy(np.array([{"a": 1}, None], dtype=object)))),
    Case("npy: text array", _npy_case(lambda r, c: _npy(np.array(["1.0"] * int(r.integers(1, 9)))))),
    Case("npy: structured dtype", _npy_case(lambda r, c: _npy(np.zeros(3, dtype=[("a", "<f4"), ("b", "<i2")])))),
    Case("npy: header promises more rows than the file holds", _npy_case(_shape_lies)),
    Case("npy: huge dimensions", _npy_case(_huge_dims)),
    Case("npy: negative dimension", _npy_case(_negative_dim)),
    Case("npy: truncated data", _npy_case(lambda r, c: (d := _npy(_beats(c, r, 3)))[: int(r.integers(1, len(d) - 1))])),
    Case("npy: random bytes", _npy_case(lambda r, c: _text(r, int(r.integers(1, 2000))))),
    Case("npy: random bytes after a valid magic", _npy_case(lambda r, c: b"\x93NUMPY\x01\x00" + _text(r, 300))),
    Case("npy: flipped bytes", _npy_case(lambda r, c: _flip(_npy(_beats(c, r)), r, int(r.integers(1, 4)))), False),
    Case("npy: NaN or Inf values", _npy_case(lambda r, c: _npy(np.where(r.random((2, c.length)) < 0.1,
                                                                          r.choice([np.nan, np.inf, -np.inf]), 0.0)))),
    Case("npy: wrong beat length", _npy_case(lambda r, c: _npy(np.zeros((2, c.length + int(r.integers(1, 50))))))),
    Case("npy: wrong rank", _npy_case(lambda r, c: _npy(np.zeros((1,) * int(r.integers(3, 7)))))),
    Case("npy: zero rows", _npy_case(lambda r, c: _npy(np.zeros((0, c.length), dtype=np.float32)))),
    Case("npy: complex or bool values", _npy_case(lambda r, c: _npy(np.zeros((2, c.length), dtype=r.choice(
        [np.complex64, np.bool_]))))),
    Case("npy: values beyond float32", _npy_case(lambda r, c: _npy(np.full((1, c.length), 1e300) * r.choice([-1, 1])))),
]


# --- .csv -------------------------------------------------------------------------------------------
def _csv_case(build: Callable[[Rng, Context], bytes]) -> Callable[[Rng, Context], Callable[[], object]]:
    return lambda rng, ctx: ScoreFile(ctx, ctx.path("in.csv", build(rng, ctx)))


def _csv(rows: np.ndarray) -> bytes:
    return ("\n".join(",".join(f"{v:.6g}" for v in row) for row in rows) + "\n").encode()


def _ragged(rng: Rng, ctx: Context) -> bytes:
    rows = [",".join(["0.5"] * int(n)) for n in rng.integers(1, ctx.length + 5, int(rng.integers(2, 6)))]
    rows[0] = ",".join(["0.5"] * (ctx.length + 1))
    return "\n".join(rows).encode()


def _text_cells(rng: Rng, ctx: Context) -> bytes:
    cells = ["0.1"] * ctx.length
    cells[int(rng.integers(ctx.length))] = ["x", "1..2", "--3", "0x10", "one", "1,5e"][int(rng.integers(6))]
    return ",".join(cells).encode()


CSV = [
    Case("csv: empty file", _csv_case(lambda r, c: b"")),
    Case("csv: binary garbage", _csv_case(lambda r, c: _text(r, int(r.integers(1, 3000))))),
    Case("csv: not UTF-8", _csv_case(lambda r, c: _csv(_beats(c, r, 1)).replace(b",", b"\xff,", 1))),
    Case("csv: ragged rows", _csv_case(_ragged)),
    Case("csv: text cells", _csv_case(_text_cells)),
    Case("csv: NaN or Inf cells", _csv_case(lambda r, c: ",".join(["0"] * (c.length - 1) + [r.choice(
        ["nan", "inf", "-inf", "1e999"])]).encode())),
    Case("csv: only separators", _csv_case(lambda r, c: b",\n" * int(r.integers(1, 50)))),
    Case("csv: wrong number of columns", _csv_case(lambda r, c: _csv(np.zeros((2, int(r.integers(1, c.length))))))),
    Case("csv: flipped bytes", _csv_case(lambda r, c: _flip(_csv(_beats(c, r)), r, int(r.integers(1, 4)))), False),
]


# --- bundle files -----------------------------------------------------------------------------------
def _load(ctx: Context, **files: bytes) -> Callable[[], object]:
    dst = ctx.bundle_with(**files)
    return lambda: Model.load(dst).check_parity()


def _resealed(rng: Rng, ctx: Context) -> bytes:
    """A manifest with a field damaged and sealed again: a forged or buggy export, checked field by field."""
    m = json.loads(json.dumps(ctx.manifest))
    node, path = m, []
    while isinstance(node, dict) and node and (not path or rng.random() < 0.6):
        key = list(node)[int(rng.integers(len(node)))]
        path.append(key)
        if not isinstance(node[key], dict) or key == SEAL:
            break
        node = node[key]
    parent = m
    for key in path[:-1]:
        parent = parent[key]
    values = [None, True, -1, 0, 2**70, 1e308, "x", "", [], {}, [1, "a"], float("nan")]
    if rng.random() < 0.2:
        parent.pop(path[-1], None)
    else:
        parent[path[-1]] = values[int(rng.integers(len(values)))]
    m.pop(SEAL, None)
    return seal(m, SEAL)


def _npz_entry_lies(rng: Rng, ctx: Context) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("x.npy", _shape_lies(rng, ctx))
    return buf.getvalue()


def _npz_not_npy(rng: Rng, ctx: Context) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr(["x.pkl", "x", "x.npy/"][int(rng.integers(3))], _text(rng, 50))
    return buf.getvalue()


def _npz_case(build: Callable[[Rng, Context], bytes]) -> Callable[[Rng, Context], Callable[[], object]]:
    def make(rng: Rng, ctx: Context) -> Callable[[], object]:
        path = ctx.path("reference.npz", build(rng, ctx))
        return lambda: read_npz(path, "reference")
    return make


def _rehashed_graph(rng: Rng, ctx: Context) -> Callable[[], object]:
    """A damaged decoder whose hash was updated in a resealed manifest: onnxruntime must refuse it cleanly."""
    graph = _flip(ctx.files["decoder.onnx"], rng, int(rng.integers(1, 20)))
    m = json.loads(json.dumps(ctx.manifest))
    m["graphs"]["decoder"]["sha256"] = hashlib.sha256(graph).hexdigest()
    m.pop(SEAL)
    return _load(ctx, **{"decoder.onnx": graph, "manifest.json": seal(m, SEAL)})


BUNDLE = [
    Case("manifest: empty", lambda r, c: _load(c, **{"manifest.json": b""})),
    Case("manifest: flipped byte", lambda r, c: _load(c, **{"manifest.json": _flip(c.files["manifest.json"], r)})),
    Case("manifest: truncated", lambda r, c: _load(c, **{"manifest.json": c.files["manifest.json"][
        : int(r.integers(1, len(c.files["manifest.json"])))]})),
    Case("manifest: deep nesting", lambda r, c: _load(c, **{"manifest.json": b"[" * int(r.integers(10**4, 10**5))})),
    Case("manifest: huge integer", lambda r, c: _load(c, **{"manifest.json": b"{\"format_version\": "
                                                          + b"9" * int(r.integers(5000, 20000)) + b"}"})),
    Case("manifest: not UTF-8", lambda r, c: _load(c, **{"manifest.json": b"\xff\xfe" + c.files["manifest.json"]})),
    Case("manifest: field damaged and resealed", lambda r, c: _load(c, **{"manifest.json": _resealed(r, c)}), False,
         0.1),
    Case("graph: flipped bytes", lambda r, c: _load(c, **{"encoder.onnx": _flip(c.files["encoder.onnx"], r)})),
    Case("graph: damaged and rehashed", _rehashed_graph, False, 0.1),
    Case("reference: flipped byte", lambda r, c: _load(c, **{"reference.npz": _flip(c.files["reference.npz"], r)})),
    Case("npz: random bytes", _npz_case(lambda r, c: _text(r, int(r.integers(1, 3000))))),
    Case("npz: truncated", _npz_case(lambda r, c: c.files["reference.npz"][: int(r.integers(1, len(
        c.files["reference.npz"]) - 1))])),
    Case("npz: entry header promises more than the entry holds", _npz_case(_npz_entry_lies)),
    Case("npz: entry that is not .npy", _npz_case(_npz_not_npy)),
]


# --- WFDB -------------------------------------------------------------------------------------------
def _wfdb(rng: Rng, ctx: Context, header: bytes, dat: bytes | None) -> Callable[[], object]:
    folder = Path(tempfile.mkdtemp(dir=ctx.tmp))
    (folder / "rec.hea").write_bytes(header)
    if dat is not None:
        (folder / "rec.dat").write_bytes(dat)
    return lambda: read_wfdb(folder / "rec", None)


def _good_header(n: int) -> bytes:
    return f"rec 1 360 {n}\nrec.dat 16 200 11 1024 0 0 0 MLII\n".encode()


WFDB = [
    Case("wfdb: empty header", lambda r, c: _wfdb(r, c, b"", b"\0" * 100), weight=0.2),
    Case("wfdb: garbage header", lambda r, c: _wfdb(r, c, _text(r, int(r.integers(1, 400))), b"\0" * 100), weight=0.2),
    Case("wfdb: header promises more samples than the file holds",
         lambda r, c: _wfdb(r, c, _good_header(int(r.integers(10**3, 10**12))), b"\0" * 200), weight=0.2),
    Case("wfdb: missing signal file", lambda r, c: _wfdb(r, c, _good_header(100), None), weight=0.2),
    Case("wfdb: truncated signal file", lambda r, c: _wfdb(r, c, _good_header(1000), b"\0" * int(r.integers(0, 1999))),
         weight=0.2),
]


# --- paths ------------------------------------------------------------------------------------------
def _loop(rng: Rng, ctx: Context) -> Callable[[], object]:
    a, b = ctx.path("loop_a.npy"), ctx.path("loop_b.npy")
    for p, target in ((a, b), (b, a)):
        if not p.is_symlink():
            p.symlink_to(target)
    return ScoreFile(ctx, a)


def _fifo(rng: Rng, ctx: Context) -> Callable[[], object]:
    p = ctx.path("pipe.npy")
    if not p.exists():
        os.mkfifo(p)
    return ScoreFile(ctx, p)


def _non_utf8(rng: Rng, ctx: Context) -> Callable[[], object]:
    name = bytes(rng.integers(0x80, 0x100, 4, dtype=np.uint8)) + b".npy"
    return ScoreFile(ctx, ctx.path(name, _text(rng, int(rng.integers(0, 100)))))


def _directory(rng: Rng, ctx: Context) -> Callable[[], object]:
    p = ctx.path(rng.choice(["d.npy", "d.csv"]))
    p.mkdir(exist_ok=True)
    return ScoreFile(ctx, p)


PATHS = [
    Case("path: a folder where a file is expected", _directory),
    Case("path: missing file", lambda r, c: ScoreFile(c, c.path(f"missing{int(r.integers(10**6))}.npy"))),
    Case("path: symbolic link loop", _loop),
    Case("path: pipe where a file is expected", _fifo),
    Case("path: non-UTF-8 name with broken content", _non_utf8),
    Case("path: NUL byte in the name", lambda r, c: ScoreFile(c, Path(str(c.tmp / "a\0b.npy")))),
]
if hasattr(os, "geteuid") and os.geteuid() != 0:  # root reads any file: permissions cannot be denied to it
    def _denied(rng: Rng, ctx: Context) -> Callable[[], object]:
        p = ctx.path("denied.npy", _npy(_beats(ctx, rng)))
        p.chmod(0)
        return ScoreFile(ctx, p)
    PATHS.append(Case("path: permission denied", _denied))


# --- arrays in memory -------------------------------------------------------------------------------
def _array_case(build: Callable[[Rng, Context], object]) -> Callable[[Rng, Context], Callable[[], object]]:
    def make(rng: Rng, ctx: Context) -> Callable[[], object]:
        x = build(rng, ctx)
        return lambda: (ctx.model.score(x), ctx.model.encode(x), ctx.model.reconstruct(x))
    return make


ARRAYS = [
    Case("array: NaN or Inf", _array_case(lambda r, c: np.where(r.random((3, c.length)) < 0.05, np.nan, 0.0))),
    Case("array: beyond float32", _array_case(lambda r, c: np.full((2, c.length), r.choice([1e39, -1e300])))),
    Case("array: wrong length", _array_case(lambda r, c: np.zeros((2, (n := int(r.integers(1, 3 * c.length)))
                                                                   + (n >= c.length))))),
    Case("array: wrong rank", _array_case(lambda r, c: np.zeros((1,) * int(r.integers(4, 8)) + (c.length,)))),
    Case("array: object, text, complex or bool", _array_case(lambda r, c: np.zeros((2, c.length), dtype=r.choice(
        [object, "U3", np.complex128, np.bool_])))),
    Case("array: empty batch", _array_case(lambda r, c: np.zeros((0, c.length)))),
    Case("array: not an array", _array_case(lambda r, c: [None, "beats", {"a": 1}, [[1, 2], [3]], b"\x00"][int(
        r.integers(5))])),
    Case("array: huge but finite values", _array_case(lambda r, c: np.full((1, c.length), 3e38)
                                                      * r.choice([-1, 1])), False),
]

CASES = NPY + CSV + BUNDLE + WFDB + PATHS + ARRAYS


def _outcome(call: Callable[[], object]) -> tuple[str, str]:
    try:
        call()
    except EcgaeError as e:
        text = str(e)
        if "\n" in text or not text:
            return "traceback", f"refused, but with a message that is not one line: {text!r}"
        text.encode("utf-8")  # a non-UTF-8 file name must reach the message as printable text
        return "refused", text
    except Exception:
        return "traceback", traceback.format_exc(limit=4)
    return "accepted", ""


def campaign(bundle: str | os.PathLike, per_class: int, seed: int = 0, cli_share: float = 0.02,
             cases: list[Case] | None = None) -> dict:
    """Run every class ``per_class * weight`` times; a ``cli_share`` of the file inputs goes through
    ``ecgae score`` itself, which must exit 2 with one line on stderr. Returns counts per class."""
    rng = np.random.default_rng(seed)
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        ctx = Context(Path(tmp), Path(bundle))
        for case in cases or CASES:
            counts = {"accepted": 0, "refused": 0, "traceback": 0}
            example = ""
            start = time.perf_counter()
            for _ in range(max(1, int(per_class * case.weight))):
                call = case.make(rng, ctx)
                kind, message = _outcome(call)
                if kind == "refused" and isinstance(call, ScoreFile) and rng.random() < cli_share:
                    kind, message = _through_cli(ctx, call.path)
                counts[kind] += 1
                example = example if example and kind != "traceback" else message
                for p in ctx.tmp.iterdir():  # fresh folder per input, links and pipes kept for reuse
                    if p.is_dir() and not p.is_symlink() and p.name.startswith("tmp"):
                        shutil.rmtree(p)
            results[case.name] = {**counts, "always_refused": case.always_refused, "example": example[-600:],
                                  "seconds": round(time.perf_counter() - start, 2)}
    return results


def _through_cli(ctx: Context, path: Path) -> tuple[str, str]:
    """Re-run a refused file input through ``ecgae score``: exit code 2, one line on stderr, no output file."""
    out, err = ctx.tmp / "out.npy", io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            code = cli_main(["score", str(ctx.bundle), os.fsdecode(path), "--out", str(out)])
        except BaseException:
            return "traceback", traceback.format_exc(limit=4)
    lines = err.getvalue().strip().splitlines()
    if code != 2 or len(lines) != 1 or out.exists():
        return "traceback", f"ecgae score exited {code} with stderr {err.getvalue()!r}"
    return "refused", lines[0]


def summary(results: dict) -> dict:
    """Totals, and the classes that broke their promise (a traceback, or an accepted always-refused input)."""
    total = sum(r["accepted"] + r["refused"] + r["traceback"] for r in results.values())
    broken = {name: r for name, r in results.items()
              if r["traceback"] or (r["always_refused"] and r["accepted"])}
    return {"classes": len(results), "inputs": total, "tracebacks": sum(r["traceback"] for r in results.values()),
            "broken_classes": broken}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ecgae.benchmarks.fuzz", description=__doc__.splitlines()[0])
    parser.add_argument("bundle", help="a bundle folder to read inputs with")
    parser.add_argument("--per-class", type=int, default=2000, help="variants per class (slow readers fewer)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    results = campaign(args.bundle, args.per_class, args.seed)
    print("| class | inputs | accepted | refused | tracebacks |\n|---|---|---|---|---|")
    for name, r in results.items():
        print(f"| {name} | {r['accepted'] + r['refused'] + r['traceback']} | {r['accepted']} | {r['refused']} | "
              f"{r['traceback']} |")
    s = summary(results)
    print(f"\n{s['inputs']:,} inputs in {s['classes']} classes: {s['tracebacks']} tracebacks, "
          f"{len(s['broken_classes'])} classes broke their promise")
    for name, r in s["broken_classes"].items():
        print(f"\n{name}:\n{r['example']}")
    return 1 if s["broken_classes"] else 0


if __name__ == "__main__":
    sys.exit(main())
