"""The no-model beat classifiers the EC57 table shows beside the model, on the model's own detected beats.

Both look only at morphology in the band-passed signal and call a beat either N or V (abnormal); they
never say S, F or Q, so their SVEB figures are zero by construction.

- ``correlation``: each beat's Pearson correlation with the recording's median beat, the best over shifts
  of up to +-20 ms (so that a few samples of R-peak jitter do not count as a shape change); below 0.90 -> V.
- ``ward``: Ward clustering of the raw beat windows (each sample column standardised over the beats) into
  3 clusters; the largest cluster is the wearer's normal, the others are abnormal -> V. This is what a
  Holter system's whole-recording clustering does, without any physiology rules.
"""

from __future__ import annotations

import numpy as np

from ..runtime.errors import InputError
from ..runtime.preprocess import design_bandpass, fir_filter

BAND_HZ = (0.5, 40.0)
PRE_S, POST_S = 0.2, 0.4  # window: from the P wave to the end of the T wave
SHIFT_S = 0.02
CORRELATION_LIMIT = 0.90
CLUSTERS = 3


def beat_windows(signal: np.ndarray, fs: float, r_peak: np.ndarray, pre_s: float = PRE_S, post_s: float = POST_S,
                 margin: int = 0) -> np.ndarray:
    """Band-passed windows [N, pre + post + 2 * margin] around each R peak (edge-padded at the ends)."""
    x = np.asarray(signal, dtype=np.float64).reshape(-1)
    r_peak = np.asarray(r_peak, dtype=np.int64).reshape(-1)
    if r_peak.size and (r_peak.min() < 0 or r_peak.max() >= x.size):
        raise InputError(f"r_peak: expected sample indices in [0, {x.size}), received {r_peak.min()}..{r_peak.max()}")
    y = fir_filter(x, design_bandpass(fs, BAND_HZ))
    pre, post = int(round(pre_s * fs)) + margin, int(round(post_s * fs)) + margin
    y = np.pad(y, (pre, post), mode="edge")
    return y[r_peak[:, None] + np.arange(pre + post)[None, :]]  # padded index r + pre - pre + k


def best_shift_correlation(windows: np.ndarray, reference: np.ndarray, margin: int) -> np.ndarray:
    """Per row, the highest Pearson correlation of its length-L sub-window at offsets 0..2*margin with
    ``reference`` (length L = width - 2 * margin)."""
    n = reference.size
    ref = (reference - reference.mean()) / (reference.std() + 1e-12)
    best = np.full(len(windows), -1.0)
    for k in range(2 * margin + 1):
        w = windows[:, k : k + n]
        w = (w - w.mean(axis=1, keepdims=True)) / (w.std(axis=1, keepdims=True) + 1e-12)
        best = np.maximum(best, w @ ref / n)
    return best


def correlation(signal: np.ndarray, fs: float, r_peak: np.ndarray,
                limit: float = CORRELATION_LIMIT) -> tuple[np.ndarray, np.ndarray]:
    """(labels "N"/"V", best correlation) of each beat against the recording's median beat."""
    margin = int(round(SHIFT_S * fs))
    w = beat_windows(signal, fs, r_peak, margin=margin)
    if len(w) == 0:
        return np.array([], dtype="<U1"), np.array([])
    median = np.median(w[:, margin : w.shape[1] - margin], axis=0)
    r = best_shift_correlation(w, median, margin)
    return np.where(r < limit, "V", "N").astype("<U1"), r


def ward(signal: np.ndarray, fs: float, r_peak: np.ndarray, clusters: int = CLUSTERS) -> tuple[np.ndarray, np.ndarray]:
    """(labels "N"/"V", cluster id ordered by size, 0 = dominant) from Ward clustering of the windows."""
    from scipy.cluster.hierarchy import fcluster, linkage

    w = beat_windows(signal, fs, r_peak)
    if len(w) <= clusters:
        raise InputError(f"r_peak: expected more than {clusters} beats to cluster, received {len(w)}")
    z = (w - w.mean(axis=0)) / (w.std(axis=0) + 1e-12)
    raw = fcluster(linkage(z, method="ward"), t=clusters, criterion="maxclust")
    ids, counts = np.unique(raw, return_counts=True)
    rank = {int(c): k for k, c in enumerate(ids[np.argsort(-counts, kind="stable")])}
    cluster = np.array([rank[int(c)] for c in raw], dtype=np.int64)
    return np.where(cluster == 0, "N", "V").astype("<U1"), cluster


BASELINES = {"correlation": correlation, "ward": ward}
