"""Atomic file writing and array input/output shared by the runtime CLI, training and export."""

from __future__ import annotations

import json
import os
import tempfile
import warnings
from pathlib import Path

import numpy as np

from .errors import InputError


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write to a temp file in the same folder, fsync, then rename: readers never see half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json(path: str | os.PathLike, obj: object) -> None:
    atomic_write_bytes(path, (json.dumps(obj, indent=2, sort_keys=False) + "\n").encode())


def read_array(path: str | os.PathLike, name: str = "input") -> np.ndarray:
    """Read a .npy or .csv file of numbers, refusing pickles, objects and non-numeric text."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{name}: expected an existing .npy or .csv file, received {str(path)!r} (not found)")
    suffix = path.suffix.lower()
    try:
        if suffix == ".npy":
            arr = np.load(path, allow_pickle=False)
        elif suffix == ".csv":
            with warnings.catch_warnings():  # callers refuse an empty array by its shape; no warning
                warnings.simplefilter("ignore", UserWarning)
                arr = np.loadtxt(path, delimiter=",", dtype=np.float64, ndmin=2)
        else:
            raise InputError(f"{name}: expected a .npy or .csv file, received {path.name!r}")
    except InputError:
        raise
    except ValueError as e:
        raise InputError(f"{name}: {path.name} is not a numeric array ({e})") from None
    except OSError as e:
        raise InputError(f"{name}: cannot read {path.name} ({e})") from None
    if arr.dtype.kind not in "iuf":
        raise InputError(f"{name}: expected numeric values in {path.name}, received dtype {arr.dtype}")
    return arr


def write_array(path: str | os.PathLike, arr: np.ndarray) -> None:
    """Write .npy or .csv by extension, atomically."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".npy":
        import io

        buf = io.BytesIO()
        np.save(buf, np.asarray(arr), allow_pickle=False)
        atomic_write_bytes(path, buf.getvalue())
    elif suffix == ".csv":
        a = np.asarray(arr)
        a = a.reshape(a.shape[0], -1) if a.ndim > 1 else a.reshape(-1, 1)
        lines = "\n".join(",".join(f"{v:.9g}" for v in row) for row in a)
        atomic_write_bytes(path, (lines + "\n").encode())
    else:
        raise InputError(f"--out: expected a .npy or .csv file name, received {path.name!r}")
