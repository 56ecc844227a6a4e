"""QRS detection on a band-passed single-lead ECG: numpy only, vectorised end to end.

The method is Hamilton and Tompkins' (OSEA: about 99.8 % sensitivity and positive predictivity on the
MIT-BIH Arrhythmia Database), rewritten so that no Python loop runs per sample or per candidate:

1. Feature: the moving sum over 150 ms of |x(t + 10 ms) - x(t - 10 ms)|, the signal's total variation
   in a QRS-wide window. It grows with a complex's amplitude, not with its slopes, so a wide ventricular
   beat counts as much as a narrow one of the same size, and its sign does not matter (inverted leads,
   inverted PVCs). The 10 ms difference weighs the slow T wave down.
2. Candidates: the feature's peaks that are the highest peak within +-200 ms (the refractory period).
3. Adaptive levels: per 1-s block of signal, the feature's maximum (a QRS when the heart beats) and
   median (the noise floor). A candidate's threshold is N + 0.3125 (Q - N), from the 8 complete blocks
   before its own (the first 8 s use the first 8 blocks: the learning period): N the median of their
   medians, Q the mean of the maxima of those holding a beat, clipped at their median (``levels``).
   Block statistics of the past make the levels adaptive without the detector's recursion.
4. T-wave rejection: a detection within 360 ms of the previous beat whose steepest slope is under half
   of that beat's, and whose size (the feature) is under that beat's, is a T wave: a wide ventricular beat
   soon after a sharp one is as gentle but larger.
5. Search-back: an RR interval over 1.5 times the mean of the 8 before it is searched again for its
   highest candidate above half the threshold (up to three rounds, each vectorised over all gaps).
6. Fiducial: the sample of largest |x| within +-100 ms of the feature peak, which is where MIT-BIH's
   annotators put R on upright and inverted complexes alike (and where training cuts its windows).
7. Noise between beats: a detection whose size and steepness (each above the noise level, as the score
   measures them) are both under half the QRS level and under half of both its neighbours', and whose
   neighbours lie no further apart than an interval the search-back would accept (SEARCH_RR times the mean
   of the 8 before), is a burst of muscle noise splitting one RR interval in two, and is dropped. A QRS
   stands out by its size or by its steepness (step 3): a normal beat between two large ventricular ones is
   smaller but about as steep, or (where those dominate the QRS level) not small against the level; in a
   bigeminy its neighbours span two intervals, which the search-back would search.
"""

from __future__ import annotations

import numpy as np

REFRACTORY_S = 0.2
WINDOW_S = 0.15  # moving-sum width: a wide QRS (up to about 150 ms) fits in it whole
LAG_S = 0.01  # half-span of the difference
BLOCK_S = 1.0
HISTORY_BLOCKS = 8
TH = 0.3125  # OSEA's threshold coefficient between the noise and QRS levels
T_WAVE_S = 0.36
SEARCH_RR = 1.5
SEARCH_ROUNDS = 3
WEAK = 0.5  # under this share of the QRS level and of both neighbours, in size and steepness, inside an ordinary
# interval: noise
FIDUCIAL_S = 0.1


def _seconds(s: float, fs: float) -> int:
    return max(1, int(round(s * fs)))


def block_size(fs: float) -> int:
    """Samples per level block: streams keep their windows on these boundaries."""
    return _seconds(BLOCK_S, fs)


def lookahead(fs: float) -> int:
    """Samples after a detection's fiducial that decide it: the fiducial and refractory spans, the
    feature's half-window and the difference's lag."""
    return (_seconds(FIDUCIAL_S, fs) + _seconds(REFRACTORY_S, fs) + _seconds(WINDOW_S, fs) // 2
            + _seconds(LAG_S, fs) + 2)


def qrs_feature(x: np.ndarray, fs: float) -> tuple[np.ndarray, np.ndarray]:
    """(feature [n], |central difference| [n]) of a band-passed signal; both centred on their sample."""
    k = _seconds(LAG_S, fs)
    half = _seconds(WINDOW_S, fs) // 2
    slope = np.zeros(x.size)
    if x.size > 2 * k:
        np.abs(x[2 * k :] - x[: -2 * k], out=slope[k:-k])
    # moving sum over 2 * half + 1 samples, truncated at the ends: differences of a zero-padded cumsum
    c = np.zeros(x.size + 2 * half + 1)
    np.cumsum(slope, out=c[half + 1 : half + 1 + x.size])
    c[half + 1 + x.size :] = c[half + x.size]
    return c[2 * half + 1 :] - c[: x.size], slope


def candidates(feature: np.ndarray, fs: float) -> np.ndarray:
    """Indices of the feature's peaks that are the highest peak within the refractory period on both
    sides: the local maxima first (few, as the feature is a 150 ms moving sum), then one vectorised
    comparison per neighbour distance."""
    f = feature
    peak = np.flatnonzero((f[1:-1] > f[:-2]) & (f[1:-1] >= f[2:]) & (f[1:-1] > 0)) + 1
    if peak.size < 2:
        return peak
    return peak[refractory_keep(peak, f[peak], _seconds(REFRACTORY_S, fs))]


def refractory_keep(peak: np.ndarray, h: np.ndarray, reach: int) -> np.ndarray:
    """Keep-mask over sorted peaks at ``peak`` of heights ``h``: those higher than every other within ``reach``
    samples (the later of two close peaks must be strictly higher; the earlier one wins ties). Each verdict
    needs only the peaks within reach, so a stream can decide a peak once those after it are known."""
    keep = np.ones(peak.size, dtype=bool)
    for d in range(1, peak.size):
        near = peak[d:] - peak[:-d] <= reach
        if not near.any():
            break
        keep[d:] &= ~near | (h[d:] > h[:-d])
        keep[:-d] &= ~near | (h[:-d] >= h[d:])
    return keep


def _median_rows(a: np.ndarray) -> np.ndarray:
    """Median of each row, by one partition (np.median's overhead dominates on a stream's small windows)."""
    n = a.shape[1]
    mid = np.partition(a, [(n - 1) // 2, n // 2], axis=1)
    return (mid[:, (n - 1) // 2] + mid[:, n // 2]) / 2


def block_levels(feature: np.ndarray, fs: float) -> tuple[np.ndarray, np.ndarray]:
    """Per block b: (QRS level, noise level) from the HISTORY_BLOCKS complete blocks before b."""
    size = block_size(fs)
    nb = feature.size // size
    if nb == 0:
        return np.array([feature.max(initial=0.0)]), np.array([np.median(feature)])
    blocks = feature[: nb * size].reshape(nb, size)
    # the feature is a 150 ms moving sum: every 4th sample gives the same median at a quarter of the cost
    peak, floor = blocks.max(axis=1), _median_rows(blocks[:, ::4])
    h = min(HISTORY_BLOCKS, nb)
    # history of block b: blocks b-h .. b-1; the first h blocks share blocks 0 .. h-1 (learning period)
    starts = np.clip(np.arange(nb + 1) - h, 0, nb - h)
    idx = starts[:, None] + np.arange(h)[None, :]
    return levels(peak[idx], floor[idx])


def levels(maxima: np.ndarray, medians: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(QRS level, noise level) of each row of HISTORY_BLOCKS blocks' maxima and medians.

    The noise level is the median of the medians. The QRS level is the mean of the maxima of the blocks that
    hold something that could be a beat (above half the threshold against the median maximum, the bar a
    search-back find must clear), each clipped at that median: OSEA averages the heights of the beats it
    found. A median alone is the larger beats' level when a rhythm alternates large and small beats (a
    ventricular bigeminy with beats three times the normal ones' size put every normal beat under the
    threshold); the clipping keeps one artefact from raising it, and leaving out the blocks that hold no
    beat keeps a slow heart's empty seconds from lowering it."""
    noise = _median_rows(medians)
    middle = _median_rows(maxima)
    beat = maxima - noise[:, None] >= 0.5 * TH * (middle - noise)[:, None]
    clipped = np.where(beat, np.minimum(maxima, middle[:, None]), 0.0)
    return clipped.sum(axis=1) / beat.sum(axis=1), noise


def relative(value: np.ndarray, signal: np.ndarray, fs: float, at: np.ndarray) -> np.ndarray:
    """(value - N) / (Q - N) with ``signal``'s levels at samples ``at``: 0 at the noise level, 1 at the QRS
    level of the seconds before."""
    qrs, noise = block_levels(signal, fs)
    b = np.minimum(at // block_size(fs), qrs.size - 1)
    return (value - noise[b]) / np.maximum(qrs[b] - noise[b], 1e-12)


def _max_slope(slope: np.ndarray, at: np.ndarray, fs: float) -> np.ndarray:
    half = _seconds(WINDOW_S / 2, fs)
    idx = np.clip(at[:, None] + np.arange(-half, half + 1)[None, :], 0, slope.size - 1)
    return slope[idx].max(axis=1)


def _reject_t_waves(at: np.ndarray, steep: np.ndarray, size: np.ndarray, fs: float) -> np.ndarray:
    """Keep-mask over detections at sample ``at``: drop those within T_WAVE_S of the previous kept one that
    are less than half as steep and smaller in ``size`` (``_is_t_wave``). Two vectorised rounds (a rejection
    changes its successor's predecessor)."""
    keep = np.ones(at.size, dtype=bool)
    limit = _seconds(T_WAVE_S, fs)
    for _ in range(2):
        kept = np.flatnonzero(keep)
        prev, cur = kept[:-1], kept[1:]
        t_wave = _is_t_wave(at[cur] - at[prev], steep[cur], size[cur], steep[prev], size[prev], limit)
        if not t_wave.any():
            break
        keep[cur[t_wave]] = False
    return keep


def _is_t_wave(gap: np.ndarray | int, steep: np.ndarray | float, size: np.ndarray | float,
               steep_before: np.ndarray | float, size_before: np.ndarray | float, limit: int) -> np.ndarray | bool:
    """A detection ``gap`` samples after the beat before it is that beat's T wave when the gap is under ``limit``
    (T_WAVE_S), it is less than half as steep, and it is smaller (total variation, the feature): a wide ventricular
    beat soon after a sharp normal one is as gentle as a T wave but larger than the beat before it, which a T
    wave, whose slow slopes the feature's 10 ms difference weighs down, is not (on the detector benchmark's
    records T waves measured at most 0.86 of their beat's size, their median 0.18)."""
    return (gap < limit) & (steep < 0.5 * steep_before) & (size < size_before)


def _mean_before(rr: np.ndarray) -> np.ndarray:
    """[n]: the mean of the (up to) HISTORY_BLOCKS intervals before each of the intervals ``rr`` (NaN for the
    first, which has none: no comparison with it holds)."""
    c = np.concatenate(([0.0], np.cumsum(rr)))
    j = np.arange(rr.size)
    n_prev = np.minimum(j, HISTORY_BLOCKS)
    return np.where(n_prev > 0, (c[j] - c[j - n_prev]) / np.maximum(n_prev, 1), np.nan)


def _reject_weak_between(at: np.ndarray, size: np.ndarray, steep: np.ndarray) -> np.ndarray:
    """Keep-mask over detections at sample ``at`` (sorted, unique) whose feature and steepest slope stand
    ``size`` and ``steep`` above the noise level, relative to the QRS level (``relative``: the two parts of
    the score): drop those under WEAK in both and under WEAK times both neighbours' in both, whose neighbours
    lie no further apart than SEARCH_RR times the mean of the (up to) 8 intervals before the first of them.
    One pass, each detection judged against its neighbours as given, so a stream decides each one once the
    next is known."""
    keep = np.ones(at.size, dtype=bool)
    if at.size < 3:
        return keep
    i = np.arange(1, at.size - 1)
    mean_prev = _mean_before(np.diff(at).astype(np.float64))[i - 1]  # the intervals ending at the previous one
    weak = np.ones(i.size, dtype=bool)
    for v in (size, steep):
        weak &= (v[i] < WEAK) & (v[i] < WEAK * v[i - 1]) & (v[i] < WEAK * v[i + 1])
    keep[i[weak & (at[i + 1] - at[i - 1] <= SEARCH_RR * mean_prev)]] = False
    return keep


def _ranges(lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Concatenation of arange(lo[i], hi[i]) for all i, without a Python loop."""
    lengths = hi - lo
    offsets = np.repeat(lo - np.concatenate(([0], np.cumsum(lengths)[:-1])), lengths)
    return np.arange(lengths.sum()) + offsets


def _search_back(beats: np.ndarray, at: np.ndarray, score: np.ndarray) -> np.ndarray:
    """Add to ``beats`` (sorted candidate indices) the highest-scoring candidate above TH / 2 in each RR
    interval longer than SEARCH_RR times the mean of the (up to) 8 before it."""
    for _ in range(SEARCH_ROUNDS):
        if beats.size < 3:
            break
        rr = np.diff(at[beats]).astype(np.float64)
        gaps = np.flatnonzero(rr > SEARCH_RR * _mean_before(rr))
        lo, hi = beats[gaps] + 1, beats[gaps + 1]  # candidates strictly between the two beats
        lo, hi = lo[hi > lo], hi[hi > lo]
        if lo.size == 0:
            break
        members = _ranges(lo, hi)
        seg = np.repeat(np.arange(lo.size), hi - lo)
        best = members[np.lexsort((score[members], seg))[np.cumsum(hi - lo) - 1]]  # per-gap argmax
        found = best[score[best] > 0.5 * TH]
        if found.size == 0:
            break
        beats = np.union1d(beats, found)
    return beats


def fiducials(x: np.ndarray, at: np.ndarray, fs: float) -> np.ndarray:
    """Sample of the largest |x| within FIDUCIAL_S of each detection."""
    half = _seconds(FIDUCIAL_S, fs)
    idx = np.clip(at[:, None] + np.arange(-half, half + 1)[None, :], 0, x.size - 1)
    return idx[np.arange(at.size), np.abs(x[idx]).argmax(axis=1)]


def detect_r_peaks(filtered: np.ndarray, fs: float) -> np.ndarray:
    """R-peak sample indices (sorted, unique) of a band-passed single-lead ECG at ``fs`` Hz."""
    x = np.asarray(filtered, dtype=np.float64)
    if x.size < 3:
        return np.zeros(0, dtype=np.int64)
    feature, slope = qrs_feature(x, fs)
    cand = candidates(feature, fs)
    if cand.size == 0:
        return np.zeros(0, dtype=np.int64)
    at = fiducials(x, cand, fs)
    steep = _max_slope(slope, cand, fs)
    # a QRS stands out by its size (total variation) or by its steepness: a small sharp beat between
    # large ventricular ones is below the size threshold but as steep as they are
    size, steepness = relative(feature[cand], feature, fs, cand), relative(steep, slope, fs, cand)
    score = np.maximum(size, steepness)
    beats = np.flatnonzero(score > TH)
    beats = beats[_reject_t_waves(at[beats], steep[beats], size[beats], fs)]
    beats = _search_back(beats, at, score)
    beats = beats[_reject_t_waves(at[beats], steep[beats], size[beats], fs)]  # search-back finds go through it too
    beats = beats[np.diff(at[beats], prepend=-1) != 0]  # two candidates, one fiducial: one beat
    return at[beats][_reject_weak_between(at[beats], size[beats], steepness[beats])].astype(np.int64)
