"""Hardened file readers: every file ecgae reads goes through here, so that an empty, truncated, forged or
unreachable file ends in the project's own error naming the file and the problem, never a traceback and
never an allocation the file cannot back.

Sizes are checked before anything is allocated: a ``.npy`` header (or a WFDB header, or a zip entry) that
promises more data than the file holds is refused from its header alone. Readers of formats added later
(EDF recordings, wearer profiles) open their files with :func:`read_bytes` / :func:`open_regular` and
parse JSON with :func:`parse_json`, and so inherit the same checks.
"""

from __future__ import annotations

import errno
import io
import json
import math
import os
import re
import stat
import warnings
import zipfile
from pathlib import Path
from typing import BinaryIO

import numpy as np

from .errors import EcgaeError, InputError

MAX_JSON_BYTES = 16 << 20  # a manifest or profile is kilobytes; anything this large is not one
MAX_HEADER_BYTES = 1 << 20  # WFDB .hea files: a few lines per signal
NPY_MAGIC = b"\x93NUMPY"
NUMERIC_KINDS = "iuf"

_REASONS = {
    errno.ENOENT: "not found",
    errno.ENOTDIR: "a path component is not a folder",
    errno.EISDIR: "a folder, not a file",
    errno.EACCES: "permission denied",
    errno.EPERM: "permission denied",
    errno.ELOOP: "a loop of symbolic links",
    errno.ENAMETOOLONG: "name too long",
}


def shown(path: str | os.PathLike) -> str:
    """A path as printable text: bytes that are not UTF-8 (possible on POSIX) appear as \\x escapes, so an
    error message about a file with such a name can always be printed."""
    text = os.fsdecode(path)
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def _reason(e: OSError) -> str:
    return _REASONS.get(e.errno, e.strerror or type(e).__name__)


def open_regular(path: str | os.PathLike, name: str, error: type[EcgaeError] = InputError) -> BinaryIO:
    """Open an existing regular file for binary reading, or raise ``error`` saying why it cannot be read.

    Opened non-blocking and checked with fstat, so a folder, a pipe or a device is refused instead of read
    (a pipe would block forever), and the file checked is the file read (no check-then-open race).
    """
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    except (OSError, ValueError) as e:  # ValueError: a NUL byte in the name
        reason = _reason(e) if isinstance(e, OSError) else "not a valid file name"
        raise error(f"{name}: cannot read {shown(path)!r} ({reason})") from None
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            what = "a folder" if stat.S_ISDIR(mode) else "not a regular file (pipe, socket or device)"
            raise error(f"{name}: expected a file, received {shown(path)!r} ({what})")
        if hasattr(os, "set_blocking"):
            os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def file_size(f: BinaryIO) -> int:
    return os.fstat(f.fileno()).st_size


def read_bytes(path: str | os.PathLike, name: str, max_bytes: int, error: type[EcgaeError] = InputError) -> bytes:
    """The whole file, refused when empty or larger than ``max_bytes`` (checked before reading)."""
    with open_regular(path, name, error) as f:
        size = file_size(f)
        if size == 0:
            raise error(f"{name}: {shown(path)!r} is empty (0 bytes)")
        if size > max_bytes:
            raise error(f"{name}: {shown(path)!r} holds {size:,} bytes, expected at most {max_bytes:,}")
        try:
            return f.read(max_bytes + 1)
        except OSError as e:
            raise error(f"{name}: cannot read {shown(path)!r} ({_reason(e)})") from None


def parse_json(data: bytes, name: str, error: type[EcgaeError] = InputError) -> object:
    """UTF-8 JSON text -> Python value; undecodable, malformed, absurdly nested or numeric-overflowing
    text is refused with ``error``."""
    try:
        return json.loads(data.decode("utf-8"))
    except UnicodeDecodeError as e:
        raise error(f"{name}: expected UTF-8 JSON, received bytes that are not UTF-8 ({e.reason} at byte "
                    f"{e.start})") from None
    except RecursionError:
        raise error(f"{name}: expected JSON, received nesting too deep to parse") from None
    except ValueError as e:  # JSONDecodeError, and ints beyond Python's digit limit
        raise error(f"{name}: expected JSON, received malformed text ({' '.join(str(e).split())})") from None


def npy_header(f: BinaryIO, available: int, name: str, error: type[EcgaeError] = InputError
               ) -> tuple[tuple[int, ...], bool, np.dtype]:
    """Parse a .npy header from ``f`` and check that the ``available`` bytes after it hold the data it
    promises: (shape, fortran_order, dtype). Object dtypes (pickles) are refused."""
    start = f.tell()
    magic = f.read(len(NPY_MAGIC) + 2)
    if len(magic) < len(NPY_MAGIC) + 2 or not magic.startswith(NPY_MAGIC):
        what = "an empty file" if not magic else f"{len(magic)} bytes" if len(magic) < 8 else f"starts {magic[:6]!r}"
        raise error(f"{name}: expected a .npy file (magic \\x93NUMPY), received {what}")
    version = (magic[-2], magic[-1])
    readers = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0,
               (3, 0): np.lib.format.read_array_header_2_0}  # 3.0 differs from 2.0 only in header encoding
    if version not in readers:
        raise error(f"{name}: expected .npy format version 1.0, 2.0 or 3.0, received {version[0]}.{version[1]}")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            shape, fortran, dtype = readers[version](f, max_header_size=10000)
    except Exception as e:  # numpy parses header text with ast and tokenize: any of their errors may arise
        raise error(f"{name}: malformed .npy header ({' '.join(str(e).split())[:200]})") from None
    if not isinstance(shape, tuple) or any(not isinstance(d, int) or d < 0 for d in shape):
        raise error(f"{name}: malformed .npy header: expected a shape of sizes >= 0, received {shape!r}")
    if dtype.hasobject or dtype.kind not in NUMERIC_KINDS:
        raise error(f"{name}: not a numeric array: expected ints or floats, received dtype {dtype} (objects "
                    "and text are refused)")
    needed = math.prod(shape) * dtype.itemsize
    held = available - (f.tell() - start)
    if needed > held:
        raise error(f"{name}: .npy header promises shape {shape} of {dtype} ({needed:,} bytes), but the file "
                    f"holds {max(held, 0):,} bytes of data (truncated or forged header)")
    return shape, fortran, dtype


def _npy_data(f: BinaryIO, header: tuple[tuple[int, ...], bool, np.dtype], name: str,
              error: type[EcgaeError]) -> np.ndarray:
    """The array a checked header describes; a file that shrank since is still refused, not misread."""
    shape, fortran, dtype = header
    count = math.prod(shape)
    try:
        data = f.read(count * dtype.itemsize)
    except OSError as e:
        raise error(f"{name}: cannot read the array data ({_reason(e)})") from None
    if len(data) < count * dtype.itemsize:
        raise error(f"{name}: expected {count * dtype.itemsize:,} bytes of array data, received {len(data):,}")
    arr = np.frombuffer(data, dtype=dtype, count=count)
    if fortran:
        return arr.reshape(shape[::-1]).transpose().copy()
    return arr.reshape(shape).copy()


def read_npy(path: str | os.PathLike, name: str, error: type[EcgaeError] = InputError) -> np.ndarray:
    """A numeric .npy array, its header checked against the file size before any allocation."""
    with open_regular(path, name, error) as f:
        label = f"{name} ({shown(path)})"
        return _npy_data(f, npy_header(f, file_size(f), label, error), label, error)


def read_npz(path: str | os.PathLike, name: str, error: type[EcgaeError] = InputError) -> dict[str, np.ndarray]:
    """Every array of an .npz archive, each entry's header checked against its stated size first."""
    label = f"{name} ({shown(path)})"
    with open_regular(path, name, error) as f:
        try:
            with zipfile.ZipFile(f) as z:
                out = {}
                for info in z.infolist():
                    if not info.filename.endswith(".npy"):
                        raise error(f"{label}: expected .npy entries only, received {info.filename!r}")
                    with z.open(info) as member:
                        entry = f"{label} entry {info.filename}"
                        header = npy_header(member, info.file_size, entry, error)
                        out[info.filename[:-4]] = _npy_data(member, header, entry, error)
                return out
        except EcgaeError:
            raise
        except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError, ValueError, NotImplementedError,
                RuntimeError) as e:  # RuntimeError: encrypted entries; NotImplementedError: unknown compression
            raise error(f"{label}: not a readable .npz archive ({' '.join(str(e).split())[:200]})") from None


CSV_HEADER = re.compile(r"[A-Za-z_][\w .()%-]*")  # a column name: starts with a letter, no bare number


def read_csv(path: str | os.PathLike, name: str, error: type[EcgaeError] = InputError) -> np.ndarray:
    """Rows of comma-separated numbers as float64 [rows, columns]; ragged rows and text are refused, except
    a first row of column names (every cell a name such as ``score`` or ``lead II``), which is skipped."""
    with open_regular(path, name, error) as f:
        data = f.read()
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise error(f"{name}: {shown(path)} is not UTF-8 text ({e.reason} at byte {e.start})") from None
    first, _, rest = text.partition("\n")
    cells = [c.strip() for c in first.split(",")]
    if all(CSV_HEADER.fullmatch(c) and c.lower() not in ("nan", "inf", "infinity") for c in cells):
        text = rest
    try:
        with warnings.catch_warnings():  # callers refuse an empty array by its shape; no warning
            warnings.simplefilter("ignore", UserWarning)
            return np.loadtxt(io.StringIO(text), delimiter=",", dtype=np.float64, ndmin=2)
    except (ValueError, IndexError) as e:
        raise error(f"{name}: {shown(path)} is not a numeric array ({' '.join(str(e).split())[:200]})") from None


# bytes per sample of each WFDB storage format whose size follows from the header (FLAC ones do not)
WFDB_SAMPLE_BYTES = {"8": 1, "16": 2, "61": 2, "80": 1, "160": 2, "24": 3, "32": 4, "212": 1.5,
                     "310": 4 / 3, "311": 4 / 3}


def check_wfdb_record(record: Path, name: str) -> None:
    """Check a WFDB record's header against its signal files before wfdb reads them: the header is small,
    each signal file exists and holds the samples the header promises. Needs the wfdb package."""
    import wfdb

    read_bytes(record.with_name(record.name + ".hea"), name, MAX_HEADER_BYTES)
    try:
        header = wfdb.rdheader(str(record))
    except Exception as e:  # wfdb raises plain ValueError/IndexError/... for malformed headers
        raise InputError(f"{name}: malformed WFDB header ({type(e).__name__}: {' '.join(str(e).split())[:200]})"
                         ) from None
    if not header.n_sig or header.sig_len is None:
        return  # no signals, or a length wfdb takes from the file itself: nothing promised
    if not isinstance(header.sig_len, int) or header.sig_len < 0:
        raise InputError(f"{name}: WFDB header: expected a signal length >= 0, received {header.sig_len!r}")
    need: dict[str, float] = {}
    for file, fmt, offset in zip(header.file_name, header.fmt, header.byte_offset or [None] * header.n_sig):
        if fmt not in WFDB_SAMPLE_BYTES:
            continue
        need[file] = need.get(file, offset or 0) + header.sig_len * WFDB_SAMPLE_BYTES[fmt]
    for file, needed in need.items():
        with open_regular(record.parent / file, f"{name}: signal file", InputError) as f:
            held = file_size(f)
        if held < math.ceil(needed):
            raise InputError(f"{name}: WFDB header promises {header.sig_len:,} samples needing "
                             f"{math.ceil(needed):,} bytes in {shown(file)}, which holds {held:,} (truncated "
                             "or forged)")
