"""Robust statistics shared by the wearer's threshold, its RR features, denoising, the beat classes' rhythm and
the quality gate."""

from __future__ import annotations

import numpy as np

INLIER_Z = 3.5  # values beyond median + INLIER_Z robust SDs of the rest are presumed not typical
MAX_STEPS = 50


def robust_sd(v: np.ndarray, center: float) -> float:
    """1.4826 x the median absolute deviation (the SD for Gaussian data), floored so it is never zero."""
    v = v[np.isfinite(v)]
    mad = 1.4826 * float(np.median(np.abs(v - center))) if v.size else 0.0
    return max(mad, 1e-6 * max(abs(center), 1.0), 1e-12)


def typical(s: np.ndarray, z: float = INLIER_Z) -> np.ndarray:
    """Mask of the values left by iteratively excluding those above median + ``z`` robust SDs of the rest.

    Iterated because outliers widen the first SD, so one cut alone keeps many of them."""
    s = np.asarray(s, dtype=np.float64)
    keep = np.ones(len(s), dtype=bool)
    for _ in range(MAX_STEPS):
        center = float(np.median(s[keep]))
        new = s <= center + z * robust_sd(s[keep], center)
        if np.array_equal(new, keep):
            break
        keep = new
    return keep


def nan_median_rows(rows: np.ndarray) -> np.ndarray:
    """Median of each row's non-NaN values (NaN for a row with none), without nanmedian's all-NaN warning."""
    k = np.sum(~np.isnan(rows), axis=1)
    s = np.sort(np.where(np.isnan(rows), np.inf, rows), axis=1)
    i = np.arange(len(rows))
    lo, hi = s[i, np.maximum(k - 1, 0) // 2], s[i, np.maximum(k, 1) // 2]
    with np.errstate(invalid="ignore"):
        return np.where(k > 0, (lo + hi) / 2, np.nan)


def trailing_windows(seq: np.ndarray, ends: np.ndarray, k: int) -> np.ndarray:
    """[len(ends), k]: ``seq[e - k : e]`` for each index e of ``ends``, NaN-padded where it would start before
    ``seq`` (a view): the recent past a value is judged against, in one vectorised step."""
    padded = np.r_[np.full(k, np.nan), seq]
    return np.lib.stride_tricks.sliding_window_view(padded, k)[ends]
