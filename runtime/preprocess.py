"""Preprocessing that training and deployment share: numpy only, one implementation.

Training designs the filter with scipy.signal and stores its taps in the run; everything that
*applies* preprocessing lives here so that a device running the lean runtime repeats exactly the steps
the model was trained with: resample -> zero-phase FIR band-pass -> R-peak windows -> per-beat z-score.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .detector import detect_r_peaks
from .errors import InputError
from .quality import beat_quality

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


def design_bandpass(fs: float, band: tuple[float, float], seconds: float = 2.0) -> np.ndarray:
    """Linear-phase band-pass FIR of about ``seconds`` (odd length): a Hamming-windowed ideal band-pass,
    scaled to unit gain at the band's centre; the same taps as scipy.signal.firwin's defaults, in numpy so
    that a device can design the filter for any rate."""
    low, high = (2.0 * f / fs for f in band)  # as fractions of Nyquist
    if not 0.0 < low < high < 1.0:
        raise InputError(f"band: expected 0 < low < high < fs / 2 = {fs / 2:g} Hz, received {band}")
    n = int(seconds * fs) | 1
    m = np.arange(n) - (n - 1) / 2
    h = (high * np.sinc(high * m) - low * np.sinc(low * m)) * np.hamming(n)
    return h / np.sum(h * np.cos(np.pi * m * (low + high) / 2))


FFT_BLOCK = 8192  # overlap-save block: 8x faster than one FFT of a 30-minute record, same result to 1e-15
DIRECT_MAX = 512  # up to this many outputs np.convolve's direct sum is cheaper than one FFT frame (a stream's
# 0.1-1 s pushes: 5 us for 36 outputs of 721 taps against 100+ us), and equal to it within 1e-15


def convolve_valid(xp: np.ndarray, taps: np.ndarray) -> np.ndarray:
    """``np.convolve(xp, taps, "valid")`` by overlap-save FFT blocks: len(xp) - len(taps) + 1 outputs."""
    h = np.asarray(taps, dtype=np.float64)
    m = h.size
    n_out = xp.size - m + 1
    if n_out <= 0:
        return np.zeros(0)
    if n_out <= DIRECT_MAX:
        return np.convolve(xp, h, "valid")
    nfft = max(1 << (2 * m - 1).bit_length(), min(FFT_BLOCK, 1 << (xp.size - 1).bit_length()))
    step = nfft - m + 1
    blocks = -(-n_out // step)
    padded = np.zeros(blocks * step + m - 1)
    padded[: xp.size] = xp
    frames = np.lib.stride_tricks.sliding_window_view(padded, nfft)[::step]
    y = np.fft.irfft(np.fft.rfft(frames, axis=1) * np.fft.rfft(h, nfft), nfft, axis=1)[:, m - 1 :]
    return y.reshape(-1)[:n_out]


def fir_filter(signal: np.ndarray, taps: np.ndarray) -> np.ndarray:
    """Zero-phase FIR filtering with edge padding; output length = input length.

    Linear-phase taps of odd length delay by (len-1)/2 samples; padding each end by that much with the
    end sample and keeping the valid part removes the delay.
    """
    x = np.asarray(signal, dtype=np.float64)
    if x.size == 0:
        return x.copy()
    half = (np.size(taps) - 1) // 2
    xp = np.empty(x.size + 2 * half)
    xp[:half], xp[half : half + x.size], xp[half + x.size :] = x[:1], x, x[-1:]
    return convolve_valid(xp, taps)


def normalise_beats(beats: np.ndarray, eps: float = 1e-6) -> np.ndarray:
    """Per-beat z-score: amplitude and offset vary by device and electrode; shape is what we model."""
    b = np.asarray(beats, dtype=np.float64)
    centred = b - b.mean(axis=-1, keepdims=True)
    std = np.sqrt(np.einsum("...i,...i->...", centred, centred) / b.shape[-1])[..., None]  # one pass, no temporary
    centred *= 1.0 / np.maximum(std, eps)
    return centred.astype(np.float32)


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


def checked_signal(signal: object, prep: Preprocessing) -> np.ndarray:
    """``signal`` as a 1-D numeric array (not converted: a long int16 recording stays int16), or InputError for
    a model without raw-signal preprocessing and for non-numeric, non-1-D or non-finite data."""
    if prep.sample_rate is None or prep.pre is None:
        raise InputError("signal: this model was trained on pre-cut beats (no sample rate or window "
                         "placement recorded), so it cannot cut beats from a raw signal; pass beats instead")
    x = np.asarray(signal)
    if x.dtype.kind not in "iuf":
        raise InputError(f"signal: expected a numeric 1-D array, received dtype {x.dtype}")
    x = x.squeeze()
    if x.ndim != 1:
        raise InputError(f"signal: expected a 1-D single-lead array, received shape {np.shape(signal)}")
    if x.dtype.kind == "f":  # by parts: a day-long recording needs no day-long mask
        bad = sum(int((~np.isfinite(x[i : i + CHECK_BLOCK])).sum()) for i in range(0, x.size, CHECK_BLOCK))
        if bad:
            raise InputError(f"signal: expected finite values, received {bad} NaN/Inf")
    return x


CHECK_BLOCK = 1 << 20


def check_length(n: int, prep: Preprocessing) -> None:
    """InputError unless ``n`` samples at the model's rate hold one window."""
    if n < prep.length:
        raise InputError(f"signal: expected at least one window of {prep.length} samples at "
                         f"{prep.sample_rate} Hz, received {n}")


def check_not_flat(ptp: float, amplitude: float) -> None:
    """InputError for a flat (lead off) signal: peaks would be found in rounding noise."""
    if ptp <= 1e-6 * amplitude:
        raise InputError(f"signal: expected at least one detectable heartbeat, received a flat signal "
                         f"(peak-to-peak {ptp:.3g} after filtering, |x| up to {amplitude:.3g})")


def no_window_error(n: int, n_peaks: int) -> InputError:
    return InputError(f"signal: expected at least one detectable heartbeat with a full window, "
                      f"received {n} samples with {n_peaks} R peaks, none windowable")


def conditioned(signal: np.ndarray, fs: float, prep: Preprocessing) -> np.ndarray:
    """Raw single-lead ECG -> the model-rate, band-passed float64 signal that detection and windows use.

    Raises InputError for a model without raw-signal preprocessing, non-numeric, non-1-D or non-finite
    data, a signal shorter than one window, or a flat one (lead off).
    """
    x = resample(checked_signal(signal, prep).astype(np.float64), float(fs), prep.sample_rate)
    check_length(x.size, prep)
    amplitude = float(np.abs(x).max())
    if prep.taps is not None:
        x = fir_filter(x, prep.taps)
    check_not_flat(float(np.ptp(x)), amplitude)
    return x


def _input_index(peaks: np.ndarray, fs: float, prep: Preprocessing) -> np.ndarray:
    """Model-rate sample indices -> indices in the caller's signal at ``fs``."""
    return np.round(peaks * (float(fs) / prep.sample_rate)).astype(np.int64)


def r_peaks(signal: np.ndarray, fs: float, prep: Preprocessing) -> np.ndarray:
    """R-peak sample indices in ``signal``, found exactly as ``beats_from_signal`` finds them."""
    x = conditioned(signal, fs, prep)
    return _input_index(detect_r_peaks(x, prep.sample_rate), fs, prep)


@dataclass(frozen=True)
class CutBeats:
    """Beats cut from a raw signal (by ``cut_beats`` or a ``BeatStream``), with their signal quality."""

    beats: np.ndarray  # float32 [N, L], normalised
    r_peak: np.ndarray  # int64 [N]: sample index in the input signal (its own rate)
    rr: np.ndarray  # float64 [N]: seconds since the previous beat found; NaN for the first, and when this
    # beat or the previous one is unusable (an interval to a "beat" in noise is no heart rhythm)
    usable: np.ndarray  # bool [N]: the signal around the beat can carry a heartbeat (ecgae.runtime.quality)
    reason: np.ndarray  # str [N]: "ok", or why the beat is not usable
    next_gap: np.ndarray  # int64 [N]: model-rate samples from the R peak to the next beat found, at most to the
    # window's end (length - pre): where a premature next beat enters the window

    def take(self, which: np.ndarray | slice) -> CutBeats:
        return CutBeats(*(getattr(self, f)[which] for f in CUT_FIELDS))


CUT_FIELDS = ("beats", "r_peak", "rr", "usable", "reason", "next_gap")


def next_gaps(peaks: np.ndarray, following: np.ndarray, prep: Preprocessing) -> np.ndarray:
    """Model-rate samples from each peak to the beat after it (``following``: the next peak of each, inf when
    none is known), capped at the window's end."""
    return np.minimum(following - peaks, prep.length - prep.pre).astype(np.int64)


def window_end(prep: Preprocessing, fs: float) -> int:
    """Input samples from an R peak to the end of its window (the stretch the quality gate judges ends there)."""
    return int(np.ceil((prep.length - prep.pre) * float(fs) / prep.sample_rate))


def rr_between_usable(r_peak: np.ndarray, usable: np.ndarray, fs: float, prev_peak: float = np.nan,
                      prev_usable: bool = False) -> np.ndarray:
    """Seconds from each beat to the one before (``prev_peak`` before the first), NaN unless both are usable."""
    prev = np.r_[prev_peak, r_peak[:-1]]
    both = usable & np.r_[prev_usable, usable[:-1]]
    return np.where(both, (r_peak - prev) / float(fs), np.nan)


def cut_beats(signal: np.ndarray, fs: float, prep: Preprocessing) -> CutBeats:
    """Raw single-lead ECG -> the bundle's beats, their R peaks, RR and signal quality.

    Applies the bundle's own steps: resample to the model's rate, filter, detect R peaks, window,
    normalise; each beat is judged by the quality gate on the raw signal. Beats too close to the ends for
    a full window are not returned, but still count as the previous beat of the next one. Raises
    InputError as ``conditioned`` does, and when no beat has a full window.
    """
    peaks, where, windows, keep = _windows(signal, fs, prep)
    raw = np.asarray(signal, dtype=np.float64).reshape(-1)
    usable, reason = beat_quality(raw, fs, where, window_end(prep, fs))
    rr = rr_between_usable(where, usable, fs)
    gap = next_gaps(peaks, np.r_[peaks[1:], np.inf], prep)
    return CutBeats(normalise_beats(windows, prep.eps), where[keep], rr[keep], usable[keep], reason[keep], gap[keep])


def _windows(signal: np.ndarray, fs: float, prep: Preprocessing,
             ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(R peaks at the model's rate, R peaks in the input, windows of the windowable ones, their indices)."""
    x = conditioned(signal, fs, prep)
    peaks = detect_r_peaks(x, prep.sample_rate)
    windows, keep = window_beats(x, peaks, prep.pre, prep.length)
    if len(keep) == 0:
        raise no_window_error(x.size, len(peaks))
    return peaks, _input_index(peaks, fs, prep), windows, keep


def beats_from_signal(signal: np.ndarray, fs: float, prep: Preprocessing) -> tuple[np.ndarray, np.ndarray]:
    """Raw single-lead ECG -> (normalised beats [N, L] float32, R-peak sample index in the input), cut as
    ``cut_beats`` cuts them, without the quality gate (which only scoring uses)."""
    _, where, windows, keep = _windows(signal, fs, prep)
    return normalise_beats(windows, prep.eps), where[keep]
