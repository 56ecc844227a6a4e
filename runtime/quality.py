"""Signal-quality gate: which stretches of a raw single-lead ECG can carry heartbeats at all.

A QRS detector finds peaks in anything, including white noise, a flat line with rounding noise, or a
clipped trace; scoring those "beats" produces confident nonsense. The gate looks at short segments of
the raw signal (numpy only) and marks a segment unusable when it is

- ``flat``: lead off or dropped out: almost no activity, or one value held for a long run;
- ``clipped``: the trace sits at its extreme for a plateau no R wave has (saturated amplifier or ADC);
- ``mains``: power at 50 or 60 Hz dominates;
- ``noise``: broadband power above the ECG band dominates, or the 5-30 Hz band has none of the sharp
  QRS bursts a heartbeat makes (its kurtosis is that of Gaussian noise).

:func:`segment_quality` gives per-segment flags and reasons; :func:`beat_usable` says whether a beat at a
given R-peak index lies wholly in usable segments.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .errors import InputError
from .validate import as_numeric, sample_rate

SEGMENT_S = 2.0  # seconds per segment: two or more beats at any resting rate
FLAT_RATIO = 0.05  # activity below this fraction of the recording's median segment activity: lead off
HOLD_S = 0.1  # one value held this long: a dropout (no ECG holds a sample value for 100 ms)
PLATEAU_S = 0.015  # at the segment's extreme this long: clipped (an R peak's top lasts a few ms)
MAINS_HZ = (50.0, 60.0)
MAINS_FRACTION = 0.3  # share of segment power within 1 Hz of the mains frequency
NOISE_BAND_HZ = 40.0  # ECG power lies below this
NOISE_FRACTION = 0.35  # share of segment power above NOISE_BAND_HZ (mains excluded)
QRS_BAND_HZ = (5.0, 30.0)
QRS_KURTOSIS = 4.0  # of the 5-30 Hz band: Gaussian noise 3 (99% of 2 s segments < 4); ECG leads 5 to 20
REASONS = ("ok", "flat", "clipped", "mains", "noise")


@dataclass(frozen=True)
class Quality:
    """Per-segment verdicts for a signal of ``n_samples`` samples at ``fs`` Hz, cut into segments of
    ``segment`` samples (the last one may be shorter; it is judged on the last full-length stretch)."""

    fs: float
    segment: int
    n_samples: int
    usable: np.ndarray  # [S] bool
    reason: np.ndarray  # [S] str: one of REASONS ("ok" when usable)

    @property
    def starts(self) -> np.ndarray:
        """First sample index of each segment."""
        return np.arange(len(self.usable)) * self.segment

    def usable_fraction(self) -> float:
        return float(self.usable.mean()) if len(self.usable) else 0.0


def segment_quality(signal: object, fs: float, segment_s: float = SEGMENT_S) -> Quality:
    """Judge each ``segment_s``-second segment of a raw single-lead signal: usable or not, and why."""
    fs = sample_rate(fs)
    x = as_numeric(signal, "signal").astype(np.float64).squeeze()
    if x.ndim != 1 or x.size == 0:
        raise InputError(f"signal: expected a non-empty 1-D single-lead array, received shape {np.shape(signal)}")
    if not np.isfinite(x).all():
        raise InputError(f"signal: expected finite values, received {int((~np.isfinite(x)).sum())} NaN/Inf")
    if not (isinstance(segment_s, int | float) and 0.5 <= segment_s <= 60):
        raise InputError(f"segment_s: expected seconds in [0.5, 60], received {segment_s!r}")
    seg = max(4, round(min(segment_s * fs, 2**40)))  # min first: a huge fs must not reach round(inf)
    peak = float(np.abs(x).max())
    if peak > 0:
        x = x / peak  # every measure below is scale-free; this keeps huge inputs from overflowing
    n_seg = -(-x.size // seg)
    starts = np.minimum(np.arange(n_seg) * seg, max(x.size - seg, 0))
    width = min(seg, x.size)
    windows = x[starts[:, None] + np.arange(width)[None, :]]

    reason = np.full(n_seg, "ok", dtype="<U7")
    checks = (("noise", _noise(windows, fs)), ("mains", _mains(windows, fs)),
              ("flat", _flat(windows, fs, x)), ("clipped", _clipped(windows, fs)))
    for name, bad in checks:  # later checks take precedence: a flat trace is "flat", not "noise"; a value
        reason[bad] = name  # held at the segment's extreme is "clipped", not "flat"
    return Quality(fs, seg, x.size, reason == "ok", reason)


def beat_usable(quality: Quality, r_peaks: object, pre: int = 0, post: int = 1) -> np.ndarray:
    """Per R-peak index: True when samples ``r - pre`` to ``r + post`` lie in usable segments only (pass
    the model's window to demand the whole beat window). Peaks outside the signal are not usable."""
    r = as_numeric(r_peaks, "r_peaks")
    if r.dtype.kind == "f" and not np.all(np.isfinite(r) & (r == np.round(r))):
        raise InputError(f"r_peaks: expected whole sample indices, received {r.dtype} values with fractions")
    if r.ndim > 1:
        raise InputError(f"r_peaks: expected a 1-D array of sample indices, received shape {r.shape}")
    if not (isinstance(pre, int) and isinstance(post, int) and pre >= 0 and post >= 1):
        raise InputError(f"pre, post: expected integers pre >= 0 and post >= 1, received {pre!r}, {post!r}")
    r = np.atleast_1d(r).astype(np.int64)
    first, last = r - pre, r + post - 1
    inside = (first >= 0) & (last < quality.n_samples)
    bad = np.concatenate([[0], np.cumsum(~quality.usable)])  # bad segments before segment i: bad[i]
    lo = np.clip(first, 0, max(quality.n_samples - 1, 0)) // quality.segment
    hi = np.clip(last, 0, max(quality.n_samples - 1, 0)) // quality.segment
    return inside & (bad[hi + 1] - bad[lo] == 0)


def _detrended(w: np.ndarray) -> np.ndarray:
    """Each row minus its least-squares line: baseline wander must not count as signal power."""
    t = np.linspace(-1.0, 1.0, w.shape[1])
    slope = (w @ t) / (t @ t)
    return w - w.mean(axis=1, keepdims=True) - slope[:, None] * t[None, :]


def _power(w: np.ndarray, fs: float) -> tuple[np.ndarray, np.ndarray]:
    """Hann-windowed power spectrum of each detrended row, and its frequencies."""
    spec = np.abs(np.fft.rfft(_detrended(w) * np.hanning(w.shape[1]), axis=1)) ** 2
    return spec, np.fft.rfftfreq(w.shape[1], 1.0 / fs)


def _mains_bins(freqs: np.ndarray) -> np.ndarray:
    return np.any([np.abs(freqs - f) <= 1.0 for f in MAINS_HZ], axis=0)


def _mains(w: np.ndarray, fs: float) -> np.ndarray:
    if fs / 2 <= min(MAINS_HZ) + 1:
        return np.zeros(len(w), dtype=bool)  # mains lies above Nyquist: aliased, not measurable here
    spec, freqs = _power(w, fs)
    total = spec[:, freqs >= 0.5].sum(axis=1)
    return spec[:, _mains_bins(freqs)].sum(axis=1) > MAINS_FRACTION * np.maximum(total, 1e-300)


def _noise(w: np.ndarray, fs: float) -> np.ndarray:
    """Broadband noise (power above the ECG band) or no QRS-like bursts in the QRS band."""
    spectrum = np.fft.rfft(_detrended(w), axis=1)
    freqs = np.fft.rfftfreq(w.shape[1], 1.0 / fs)
    spectrum[:, (freqs < QRS_BAND_HZ[0]) | (freqs > QRS_BAND_HZ[1])] = 0
    qrs = np.fft.irfft(spectrum, w.shape[1], axis=1)
    var = (qrs**2).mean(axis=1)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore", under="ignore"):
        kurtosis = (qrs**4).mean(axis=1) / var**2  # NaN/Inf only for a constant row, which "flat" takes
    no_bursts = kurtosis < QRS_KURTOSIS
    if fs / 2 <= NOISE_BAND_HZ * 1.25:
        return no_bursts
    spec, freqs = _power(w, fs)
    keep = ~_mains_bins(freqs) & (freqs >= 0.5)
    high = spec[:, keep & (freqs > NOISE_BAND_HZ)].sum(axis=1)
    return no_bursts | (high > NOISE_FRACTION * np.maximum(spec[:, keep].sum(axis=1), 1e-300))


def _longest_run(mask: np.ndarray) -> np.ndarray:
    """Longest run of True in each row."""
    padded = np.pad(mask.astype(np.int8), ((0, 0), (1, 1)))
    edges = np.diff(padded, axis=1)
    best = np.zeros(len(mask), dtype=np.int64)
    rows_up, cols_up = np.nonzero(edges == 1)
    _, cols_down = np.nonzero(edges == -1)  # row-major order: the k-th rise pairs with the k-th fall
    np.maximum.at(best, rows_up, cols_down - cols_up)
    return best


def _clipped(w: np.ndarray, fs: float) -> np.ndarray:
    span = np.ptp(w, axis=1, keepdims=True)
    tol = 1e-3 * span
    plateau = max(3, int(round(PLATEAU_S * fs)))
    top = _longest_run(w >= w.max(axis=1, keepdims=True) - tol)
    bottom = _longest_run(w <= w.min(axis=1, keepdims=True) + tol)
    return (np.maximum(top, bottom) >= plateau) & (span[:, 0] > 0)


def _flat(w: np.ndarray, fs: float, x: np.ndarray) -> np.ndarray:
    """Near-constant segments (lead off), relative to the recording and to its scale, or a long hold."""
    activity = np.ptp(_detrended(w), axis=1)
    scale = max(float(np.abs(x).max()), 1e-300)
    dead = activity <= 1e-9 * scale
    live = activity[~dead]
    weak = activity < FLAT_RATIO * float(np.median(live)) if live.size else np.zeros(len(w), dtype=bool)
    hold = _longest_run(np.diff(w, axis=1) == 0) + 1 >= max(3, int(round(HOLD_S * fs)))
    return dead | weak | hold
