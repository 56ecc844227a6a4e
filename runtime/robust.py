"""Robust statistics shared by the wearer's threshold and denoising: one rule for "typical" values."""

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
