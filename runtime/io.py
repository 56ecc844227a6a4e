"""Atomic file writing and array input/output shared by the runtime CLI, training and export."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import numpy as np

from . import files
from .errors import InputError


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write to a temp file in the same folder, fsync, then rename: readers never see half a file, and a
    process killed mid-write leaves the previous file intact. Failures are InputErrors naming the file."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as e:
        raise InputError(f"cannot write {files.shown(path)!r} ({e.strerror or e})") from None
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException as e:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(e, OSError):
            raise InputError(f"cannot write {files.shown(path)!r} ({e.strerror or e})") from None
        raise


def write_json(path: str | os.PathLike, obj: object) -> None:
    atomic_write_bytes(path, (json.dumps(obj, indent=2, sort_keys=False) + "\n").encode())


def read_array(path: str | os.PathLike, name: str = "input") -> np.ndarray:
    """Read a .npy or .csv file of numbers, refusing pickles, objects, non-numeric text and any file that
    is unreadable, truncated or forged (see ecgae.runtime.files)."""
    suffix = Path(path).suffix.lower()
    if suffix == ".npy":
        return files.read_npy(path, name)
    if suffix == ".csv":
        return files.read_csv(path, name)
    raise InputError(f"{name}: expected a .npy or .csv file, received {files.shown(Path(path).name)!r}")


def write_array(path: str | os.PathLike, arr: np.ndarray, columns: list[str] | None = None) -> None:
    """Write .npy or .csv by extension, atomically; a .csv starts with a header row naming ``columns``
    (``files.read_csv`` skips such a row, so a written CSV reads back as the same numbers)."""
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
        lines = [",".join(columns)] if columns else []
        lines += [",".join(f"{v:.9g}" for v in row) for row in a]
        atomic_write_bytes(path, ("\n".join(lines) + "\n").encode())
    else:
        raise InputError(f"--out: expected a .npy or .csv file name, received {files.shown(path.name)!r}")
