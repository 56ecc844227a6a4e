"""Input checks for every runtime entry point: turn whatever a caller passes into exactly what the graphs
take, or raise InputError naming the input, what was expected and what was received. Nothing malformed
may reach numpy arithmetic or onnxruntime, where it would surface as a bare traceback."""

from __future__ import annotations

import math
import numbers

import numpy as np

from .errors import InputError, describe

MIN_FS = 10.0  # Hz: far below any ECG recorder; guards the resampler against absurd upsampling
FLOAT32 = np.dtype(np.float32)


def all_finite(arr: np.ndarray) -> bool:
    """True when no element of a float array is NaN or Inf. At batch 1 this runs on every call, so the usual
    case costs one BLAS dot product (NaN and Inf propagate into x.x; single-threaded, no warning on
    overflow); only when that is not finite (a NaN/Inf, or huge finite values) does the exact test run."""
    return math.isfinite(np.vdot(arr, arr)) or bool(np.isfinite(arr).all())


def as_numeric(x: object, name: str) -> np.ndarray:
    """``x`` as a real numeric ndarray (ints, unsigned or floats; not bool, complex, object or text)."""
    try:
        arr = np.asarray(x)
    except (ValueError, TypeError) as e:
        raise InputError(f"{name}: expected a numeric array, received {describe(x)} that numpy cannot "
                         f"make an array of ({e})") from None
    if arr.dtype.kind not in "iuf":
        raise InputError(f"{name}: expected real numbers (int or float), received {describe(arr)}")
    return arr


def as_float32(arr: np.ndarray, name: str) -> np.ndarray:
    """Explicit C-contiguous float32 that refuses NaN/Inf and values beyond float32's range (they would
    become Inf). One finiteness pass on the converted array: the diagnosis runs only on failure."""
    with np.errstate(over="ignore", invalid="ignore"):
        out = np.ascontiguousarray(arr, dtype=np.float32)
    if all_finite(out):
        return out
    bad = ~np.isfinite(arr)
    if bad.any():
        first = tuple(int(i) for i in np.argwhere(bad)[0])
        raise InputError(f"{name}: expected finite values, received {int(bad.sum())} NaN/Inf "
                         f"(first at index {first}) in {describe(arr)}")
    raise InputError(f"{name}: expected values within float32 range (|x| < 3.4e38), received "
                     f"{describe(arr)} with max |x| = {float(np.abs(arr).max()):.3g}")


def _batch(x: object, name: str, width: int, accepted: str, channel: bool = False) -> np.ndarray:
    """[B, width] float32, B >= 1, from a [width] row, a [B, width] batch or (``channel``) [B, 1, width]."""
    arr = as_numeric(x, name)
    rows = arr[None, :] if arr.ndim == 1 else arr[:, 0, :] if channel and arr.ndim == 3 and arr.shape[1] == 1 else arr
    if rows.ndim != 2 or rows.shape[1] != width:
        raise InputError(f"{name}: expected {accepted}, received {describe(arr)}")
    if rows.shape[0] == 0:
        raise InputError(f"{name}: expected at least one row, received an empty batch, {describe(arr)}")
    return as_float32(rows, name)


def _ready(x: object, width: int) -> bool:
    """The fast path: ``x`` already is what the full checks would return, give or take a view (a C-contiguous,
    native float32 ndarray whose last axis is ``width``, holding at least one row, all finite). Anything
    else takes the full checks, which accept it or say what is wrong."""
    return (type(x) is np.ndarray and x.dtype == FLOAT32 and x.flags.c_contiguous and x.size != 0
            and x.ndim != 0 and x.shape[-1] == width and all_finite(x))


def as_beats(x: object, length: int, name: str = "beats") -> np.ndarray:
    """Beats [B, L], [B, 1, L] or one beat [L] -> float32 [B, 1, L], the encoder's input."""
    if _ready(x, length):
        if x.ndim == 3 and x.shape[1] == 1:
            return x
        if x.ndim <= 2:
            return x.reshape(-1, 1, length)
    accepted = f"beats of length L = {length}: [B, {length}], [B, 1, {length}] or [{length}]"
    return _batch(x, name, length, accepted, channel=True)[:, None, :]


def as_latents(z: object, latent_dim: int, name: str = "z") -> np.ndarray:
    """Latent vectors [B, latent] or one [latent] -> float32 [B, latent], the decoder's input."""
    if _ready(z, latent_dim) and z.ndim <= 2:
        return z.reshape(-1, latent_dim)
    return _batch(z, name, latent_dim, f"latent vectors: [B, {latent_dim}] or [{latent_dim}]")


def positive_int(n: object, name: str, maximum: int | None = None) -> int:
    """An integer >= 1 and <= ``maximum`` (Python or numpy int, not bool, not a float that happens to be whole)."""
    if isinstance(n, bool) or not isinstance(n, numbers.Integral) or n < 1 or (maximum is not None and n > maximum):
        bound = "" if maximum is None else f" and <= {maximum}"
        raise InputError(f"{name}: expected an integer >= 1{bound}, received {n!r}")
    return int(n)


def finite_real(x: object, name: str) -> float:
    """A finite real number (Python or numpy; not bool)."""
    if isinstance(x, bool) or not isinstance(x, numbers.Real) or not math.isfinite(x):
        raise InputError(f"{name}: expected a finite number, received {x!r}")
    return float(x)


def sample_rate(fs: object, name: str = "fs") -> float:
    """A finite sample rate in Hz, at least MIN_FS."""
    value = finite_real(fs, name)
    if value < MIN_FS:
        raise InputError(f"{name}: expected a sample rate in Hz >= {MIN_FS:g}, received {fs!r}")
    return value


def rng(seed: object, name: str = "seed") -> np.random.Generator:
    """A numpy Generator from None (fresh entropy), an integer >= 0, or a Generator passed through."""
    if isinstance(seed, np.random.Generator):
        return seed
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0):
        raise InputError(f"{name}: expected None, an integer >= 0 or a numpy Generator, received {seed!r}")
    return np.random.default_rng(None if seed is None else int(seed))
