"""Preprocessing that training and deployment share: numpy only, one implementation.

Training designs the filter with scipy.signal and stores its taps in the run; everything that
*applies* preprocessing lives here so that a device running the lean runtime repeats exactly the steps
the model was trained with: resample -> zero-phase FIR band-pass -> R-peak windows -> per-beat z-score.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field

import numpy as np

from .errors import InputError

NORMALISATION = "zscore_per_beat"


@dataclass(frozen=True)
class Preprocessing:
    """Everything needed to turn a raw single-lead signal into model-ready beats.

    ``pre`` samples before the R peak and ``length - pre`` from it form one window. ``taps`` is a
    linear-phase (odd, symmetric) FIR filter applied with zero delay. Sources that are already cut
    into beats (UCR rows, .npy/.csv) have no sample rate, window placement or filter: all three None.
    """

    sample_rate: float | None
    length: int
    pre: int | None
    taps: np.ndarray | None = field(default=None, compare=False)
    band_hz: tuple[float, float] | None = None
    eps: float = 1e-6

    def to_dict(self) -> dict:
        return {
            "sample_rate": None if self.sample_rate is None else float(self.sample_rate),
            "window": {"length": int(self.length), "pre": self.pre,
                       "post": None if self.pre is None else int(self.length - self.pre)},
            "filter": None
            if self.taps is None
            else {
                "kind": "fir_zero_phase",
                "band_hz": list(self.band_hz) if self.band_hz else None,
                "taps": [float(t) for t in self.taps],
            },
            "normalisation": {"kind": NORMALISATION, "eps": float(self.eps)},
        }

    @classmethod
    def from_dict(cls, d: dict) -> Preprocessing:
        """Rebuild from ``to_dict`` output (a run's config or a bundle manifest), refusing the unknown."""
        try:
            norm = d["normalisation"]
            if norm["kind"] != NORMALISATION:
                raise InputError(f"preprocessing.normalisation.kind: expected {NORMALISATION!r}, "
                                 f"received {norm['kind']!r}")
            filt = d.get("filter")
            taps = None if filt is None else np.asarray(filt["taps"], dtype=np.float64)
            band = None if filt is None or filt.get("band_hz") is None else tuple(filt["band_hz"])
            fs, pre = d["sample_rate"], d["window"]["pre"]
            return cls(None if fs is None else float(fs), int(d["window"]["length"]),
                       None if pre is None else int(pre), taps, band, float(norm["eps"]))
        except (KeyError, TypeError, ValueError) as e:
            raise InputError(f"preprocessing spec: missing or malformed field ({type(e).__name__}: {e})") from None


def resample(x: np.ndarray, fs_in: float, fs_out: float) -> np.ndarray:
    """Resample along the last axis by linear interpolation (numpy only; identity when rates match)."""
    if not (0 < fs_in < np.inf and 0 < fs_out < np.inf):  # written so that NaN is refused too
        raise InputError(f"sample rate: expected finite and > 0, received fs_in={fs_in}, fs_out={fs_out}")
    if fs_in == fs_out or x.shape[-1] == 0:
        return x
    n_in = x.shape[-1]
    n_out = max(1, int(round(n_in * fs_out / fs_in)))
    t_out = np.arange(n_out) * (fs_in / fs_out)
    t_in = np.arange(n_in)
    flat = x.reshape(-1, n_in)
    out = np.stack([np.interp(t_out, t_in, row) for row in flat])
    return out.reshape(*x.shape[:-1], n_out)


def resample_beats(beats: np.ndarray, length: int) -> np.ndarray:
    """Stretch each beat (last axis) to ``length`` samples, for beat sources of another length."""
    n = beats.shape[-1]
    if n == length:
        return beats
    return resample(beats, float(n), float(length))


def fir_filter(signal: np.ndarray, taps: np.ndarray) -> np.ndarray:
    """Zero-phase FIR filtering by FFT convolution with edge padding; output length = input length.

    Linear-phase taps of odd length delay by (len-1)/2 samples; the centred slice removes that delay.
    """
    x = np.asarray(signal, dtype=np.float64)
    h = np.asarray(taps, dtype=np.float64)
    half = (h.size - 1) // 2
    xp = np.pad(x, (half, half), mode="edge")
    n = xp.size + h.size - 1
    nfft = 1 << (n - 1).bit_length()
    y = np.fft.irfft(np.fft.rfft(xp, nfft) * np.fft.rfft(h, nfft), nfft)
    return y[2 * half : 2 * half + x.size]


def normalise_beats(beats: np.ndarray, eps: float = 1e-6) -> np.ndarray:
    """Per-beat z-score: amplitude and offset vary by device and electrode; shape is what we model."""
    b = np.asarray(beats, dtype=np.float64)
    mean = b.mean(axis=-1, keepdims=True)
    std = b.std(axis=-1, keepdims=True)
    return ((b - mean) / np.maximum(std, eps)).astype(np.float32)


def window_beats(signal: np.ndarray, peaks: np.ndarray, pre: int, length: int) -> tuple[np.ndarray, np.ndarray]:
    """Cut ``length``-sample windows starting ``pre`` samples before each peak.

    Returns (windows [N, length], index of the kept peaks): peaks whose window would leave the signal
    are dropped rather than padded, so that no beat is partly invented.
    """
    peaks = np.asarray(peaks, dtype=np.int64)
    start = peaks - pre
    keep = np.flatnonzero((start >= 0) & (start + length <= signal.shape[-1]))
    idx = start[keep, None] + np.arange(length)[None, :]
    return signal[idx], keep


def detect_r_peaks(filtered: np.ndarray, fs: float) -> np.ndarray:
    """R peaks of a band-passed single-lead ECG with upright R waves (Pan-Tompkins style, numpy only).

    Energy of the derivative, integrated over 150 ms, marks QRS complexes; a threshold at 30% of the
    median 2-second maximum rejects T waves and noise; a 250 ms refractory period keeps one peak per
    beat; each detection is moved to the signal maximum within 100 ms.
    """
    x = np.asarray(filtered, dtype=np.float64)
    d = np.diff(x, prepend=x[0])
    win = max(1, int(round(0.15 * fs)))
    mwi = np.convolve(d * d, np.ones(win) / win, mode="same")
    block = max(1, int(round(2.0 * fs)))
    n_blocks = mwi.size // block
    if n_blocks == 0:
        return np.zeros(0, dtype=np.int64)
    threshold = 0.3 * np.median(mwi[: n_blocks * block].reshape(n_blocks, block).max(axis=1))
    is_max = (mwi[1:-1] > mwi[:-2]) & (mwi[1:-1] >= mwi[2:]) & (mwi[1:-1] > threshold)
    candidates = np.flatnonzero(is_max) + 1
    refractory = int(round(0.25 * fs))
    chosen: list[int] = []
    for c in candidates[np.argsort(-mwi[candidates], kind="stable")]:
        j = bisect.bisect_left(chosen, c)  # O(log n) on the list; np.searchsorted copies it: O(n^2) overall
        if (j > 0 and c - chosen[j - 1] < refractory) or (j < len(chosen) and chosen[j] - c < refractory):
            continue
        chosen.insert(j, int(c))
    search = int(round(0.1 * fs))
    peaks = [max(0, c - search) + int(np.argmax(x[max(0, c - search) : c + search + 1])) for c in chosen]
    return np.unique(np.asarray(peaks, dtype=np.int64))


def beats_from_signal(signal: np.ndarray, fs: float, prep: Preprocessing) -> tuple[np.ndarray, np.ndarray]:
    """Raw single-lead ECG -> (normalised beats [N, L] float32, R-peak sample index in the input).

    Applies the bundle's own steps: resample to the model's rate, filter, detect R peaks, window,
    normalise. Raises InputError for non-finite data, a signal shorter than one window, or no beats.
    """
    if prep.sample_rate is None or prep.pre is None:
        raise InputError("signal: this model was trained on pre-cut beats (no sample rate or window "
                         "placement recorded), so it cannot cut beats from a raw signal; pass beats instead")
    x = np.asarray(signal)
    if x.dtype.kind not in "iuf":
        raise InputError(f"signal: expected a numeric 1-D array, received dtype {x.dtype}")
    x = x.astype(np.float64).squeeze()
    if x.ndim != 1:
        raise InputError(f"signal: expected a 1-D single-lead array, received shape {np.shape(signal)}")
    if not np.all(np.isfinite(x)):
        raise InputError(f"signal: expected finite values, received {int((~np.isfinite(x)).sum())} NaN/Inf")
    x = resample(x, float(fs), prep.sample_rate)
    if x.size < prep.length:
        raise InputError(f"signal: expected at least one window of {prep.length} samples at "
                         f"{prep.sample_rate} Hz, received {x.size}")
    amplitude = float(np.abs(x).max())
    if prep.taps is not None:
        x = fir_filter(x, prep.taps)
    if np.ptp(x) <= 1e-6 * amplitude:  # flat (lead off): peaks would be found in rounding noise
        raise InputError(f"signal: expected at least one detectable heartbeat, received a flat signal "
                         f"(peak-to-peak {np.ptp(x):.3g} after filtering, |x| up to {amplitude:.3g})")
    peaks = detect_r_peaks(x, prep.sample_rate)
    windows, keep = window_beats(x, peaks, prep.pre, prep.length)
    if len(keep) == 0:
        raise InputError(f"signal: expected at least one detectable heartbeat with a full window, "
                         f"received {x.size} samples with {len(peaks)} R peaks, none windowable")
    scale = float(fs) / prep.sample_rate
    return normalise_beats(windows, prep.eps), np.round(peaks[keep] * scale).astype(np.int64)
