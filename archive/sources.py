"""Which recordings an archive run covers, and how one recording's ECG lead is read.

Inputs are expanded once, in the driver, into plain ``Recording`` records (strings only) so that they
travel to Ray workers unchanged; reading happens where the recording is scored.
"""

from __future__ import annotations

import glob
import hashlib
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ..runtime.errors import InputError
from ..runtime.io import read_array
from ..runtime.leads import choose_lead

EDF_SUFFIXES = (".edf",)  # EDF and EDF+ share the suffix
ARRAY_SUFFIXES = (".npy", ".csv")
WFDB_SUFFIXES = (".hea", ".dat")


@dataclass(frozen=True)
class Recording:
    """One recording to score: ``name`` (unique in the run, names its output), ``path`` and ``kind``."""

    name: str
    path: str
    kind: str  # "wfdb" (path without extension), "edf" or "array"

    def to_dict(self) -> dict[str, str]:
        return asdict(self)


def _kind(path: Path) -> tuple[str, Path] | None:
    """(kind, the path to read) for a file that is a recording, else None."""
    suffix = path.suffix.lower()
    if suffix in EDF_SUFFIXES:
        return "edf", path
    if suffix in ARRAY_SUFFIXES:
        return "array", path
    if suffix == ".hea":
        return "wfdb", path.with_suffix("")
    return None


def _expand_one(text: str, strict: bool = True) -> list[tuple[str, Path]]:
    """The recordings one INPUT names; ``strict`` refuses a file that is not a recording (a glob skips it)."""
    path = Path(text)
    if path.is_dir():
        found = [_kind(p) for p in sorted(path.rglob("*")) if p.is_file()]
        return [k for k in found if k is not None]
    if path.is_file():
        if path.suffix.lower() == ".dat" and path.with_suffix(".hea").is_file():
            return [("wfdb", path.with_suffix(""))]
        kind = _kind(path)
        if kind is None and strict:
            raise InputError(f"INPUT {text!r}: expected a WFDB record, an EDF/EDF+ file, a .npy/.csv signal, a "
                             f"folder or a glob, received a file with suffix {path.suffix!r}")
        return [] if kind is None else [kind]
    if path.with_name(path.name + ".hea").is_file():
        return [("wfdb", path)]
    if glob.has_magic(text):
        return [k for m in sorted(glob.glob(text, recursive=True)) for k in _expand_one(m, strict=False)]
    raise InputError(f"INPUT {text!r}: expected an existing file, folder, WFDB record or glob, received a path "
                     "that does not exist")


def expand_inputs(inputs: list[str]) -> list[Recording]:
    """Every recording named by ``inputs`` (files, WFDB records, folders searched recursively, globs), once
    each, in input order. Names are file stems; stems that collide get a short hash of their path."""
    found: dict[tuple[str, Path], None] = {}  # an ordered set
    for text in inputs:
        matched = _expand_one(text)
        if not matched:
            raise InputError(f"INPUT {text!r}: expected at least one recording (WFDB, EDF, .npy, .csv), found none")
        for kind, path in matched:
            found.setdefault((kind, path.resolve()), None)
    stems = [path.name if kind == "wfdb" else path.stem for kind, path in found]
    counts = Counter(stems)
    return [Recording(stem if counts[stem] == 1 else f"{stem}-{hashlib.sha1(str(path).encode()).hexdigest()[:8]}",
                      str(path), kind) for stem, (kind, path) in zip(stems, found)]


def read_recording(rec: Recording, lead: str | None = None, fs: float | None = None) -> tuple[np.ndarray, float, str]:
    """(one lead in physical units [n_samples] float64, its sample rate in Hz, its name)."""
    where = f"{rec.kind} {rec.path}"
    if rec.kind == "wfdb":
        names, fss, signals = _read_wfdb(rec.path)
    elif rec.kind == "edf":
        names, fss, signals = _read_edf(rec.path)
    elif rec.kind == "array":
        if fs is None:
            raise InputError(f"{where}: a raw .npy/.csv signal states no sample rate; expected --fs HZ, "
                             "received none")
        arr = read_array(rec.path, f"INPUT {rec.path}")
        arr = arr.reshape(-1, 1) if arr.ndim == 1 else arr
        if arr.ndim != 2:
            raise InputError(f"{where}: expected [n_samples] or [n_samples, n_leads], received shape {arr.shape}")
        names, fss, signals = [""] * arr.shape[1], [fs] * arr.shape[1], lambda i: arr[:, i]
    else:
        raise InputError(f"{where}: unknown recording kind {rec.kind!r}")
    index = choose_lead(names, lead, where)
    return np.asarray(signals(index), dtype=np.float64), float(fss[index]), names[index] or str(index)


def _read_wfdb(path: str):
    try:
        import wfdb
    except ImportError:
        raise InputError("reading WFDB records needs wfdb: "
                         "pip install '.[archive]' in the ecgae source folder") from None
    try:
        rec = wfdb.rdrecord(path)
    except Exception as e:  # wfdb raises plain ValueError/OSError/... for damaged records
        raise InputError(f"wfdb {path}: cannot read the record ({type(e).__name__}: {' '.join(str(e).split())})") \
            from None
    if rec.p_signal is None:
        raise InputError(f"wfdb {path}: expected a single-segment record with signals, received none")
    return list(rec.sig_name or [""] * rec.n_sig), [rec.fs] * rec.n_sig, lambda i: rec.p_signal[:, i]


def _read_edf(path: str):
    try:
        import edfio
    except ImportError:
        raise InputError("reading EDF files needs edfio: pip install '.[archive]' in the ecgae source folder") from None
    try:
        edf = edfio.read_edf(path)
        signals = list(edf.signals)  # EDF+ annotation signals are not among them
    except Exception as e:  # edfio raises ValueError/OSError/... for damaged or foreign files
        raise InputError(f"edf {path}: cannot read the file ({type(e).__name__}: {' '.join(str(e).split())})") \
            from None
    if not signals:
        raise InputError(f"edf {path}: expected at least one signal, received none")
    return [s.label for s in signals], [s.sampling_frequency for s in signals], lambda i: signals[i].data
