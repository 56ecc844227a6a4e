"""Generated recording conditions that show one mechanism each, built from a real trace: a low-resolution
ADC (8-bit bedside monitors, many wearables), pacemaker spikes and a slow heart.

Each acts on a signal in mV with its own sample rate; each is deterministic (no noise is drawn), so a
figure measured on them is the mechanism's, not a random draw's.
"""

from __future__ import annotations

import numpy as np

MIMIC_GAIN = 26.0  # ADC units per mV of the MIMIC-II monitor's 8-bit MCL1 lead: a real bedside monitor's step
SPIKE_LEAD_S = 0.06  # a pacing spike precedes the paced complex's R peak by 40-80 ms; this is the middle
SPIKE_MV = 5.0  # pacing artefacts reach several mV at the skin, well above the QRS (record 100's R: ~1.5 mV)
SPIKE_WIDTH_S = 0.002  # the stimulus lasts 0.5-2 ms; sampled, 1 sample up to 500 Hz and 2 at 1000 Hz
SYSTOLE_S = (0.25, 0.45)  # kept whole around each R peak: the P wave before it, the QRS and T wave after it


def quantise(x: np.ndarray, step: float, levels: int | None = None) -> np.ndarray:
    """``x`` as an ADC of resolution ``step`` (mV per code) records it: rounded to whole codes, and with
    ``levels`` codes, clipped to that range centred on the trace's median (the ADC's rails)."""
    if not step > 0:
        raise ValueError(f"step: expected > 0 mV per code, received {step!r}")
    x = np.asarray(x, dtype=np.float64)
    centre = np.round(np.median(x) / step)
    codes = np.round(x / step) - centre
    if levels is not None:
        codes = np.clip(codes, -(levels // 2), levels - levels // 2 - 1)
    return (codes + centre) * step


def eight_bit(x: np.ndarray, gain: float = MIMIC_GAIN) -> np.ndarray:
    """``x`` through an 8-bit ADC of ``gain`` codes per mV (by default the MIMIC-II monitor's MCL1 lead:
    a step of 0.038 mV, a range of +-4.9 mV)."""
    return quantise(x, 1.0 / gain, 256)


def spike_positions(r_peaks: np.ndarray, fs: float, lead_s: float = SPIKE_LEAD_S) -> np.ndarray:
    """First sample of the spike before each R peak (peaks too close to the start get none)."""
    at = np.asarray(r_peaks, dtype=np.int64) - int(round(lead_s * fs))
    return at[at >= 0]


def with_pacing_spikes(x: np.ndarray, fs: float, r_peaks: np.ndarray, amplitude_mv: float = SPIKE_MV,
                       lead_s: float = SPIKE_LEAD_S, width_s: float = SPIKE_WIDTH_S,
                       ) -> tuple[np.ndarray, np.ndarray]:
    """``x`` with a pacemaker-like spike ``lead_s`` before every R peak: ``amplitude_mv`` added over
    max(1, round(width_s * fs)) samples (a rectangular stimulus as the ADC samples it: one or two samples,
    a slope no QRS has). Returns (signal, first sample of each spike)."""
    y = np.array(x, dtype=np.float64)
    at = spike_positions(r_peaks, fs, lead_s)
    width = max(1, int(round(width_s * fs)))
    for k in range(width):
        inside = at + k < y.size
        y[at[inside] + k] += amplitude_mv
    return y, at


def slower(x: np.ndarray, fs: float, r_peaks: np.ndarray, rate_bpm: float) -> tuple[np.ndarray, np.ndarray]:
    """``x`` with its heart slowed to ``rate_bpm``, as in sinus bradycardia: each diastole (from SYSTOLE_S[1]
    after an R peak to SYSTOLE_S[0] before the next) is stretched by linear interpolation until the interval
    is 60 / ``rate_bpm`` s (never shortened), while P, QRS and T keep their shape and duration. (Reading the
    samples at a lower rate would slow the heart too, but widen every QRS and push each T wave out of reach
    of the detector's T-wave test, which no slow heart does.) Returns (signal, R peaks in it)."""
    if not rate_bpm > 0:
        raise ValueError(f"rate_bpm: expected > 0 beats per minute, received {rate_bpm!r}")
    x = np.asarray(x, dtype=np.float64)
    peaks = np.asarray(r_peaks, dtype=np.int64)
    before, after = (int(round(s * fs)) for s in SYSTOLE_S)
    rr = int(round(60.0 / rate_bpm * fs))
    parts, moved, at = [x[: peaks[0]]], [], peaks[0]
    for r0, r1 in zip(peaks[:-1], peaks[1:]):
        moved.append(at)
        diastole = x[r0 + after : r1 - before] if r1 - r0 > after + before + 1 else x[r0:r0]
        n = max(rr - after - before, diastole.size)
        if diastole.size:
            stretched = np.interp(np.linspace(0, diastole.size - 1, n), np.arange(diastole.size), diastole)
            part = np.concatenate((x[r0 : r0 + after], stretched, x[r1 - before : r1]))
        else:  # an interval too short to hold a diastole stays as it is
            part = x[r0:r1]
        parts.append(part)
        at += part.size
    moved.append(at)
    parts.append(x[peaks[-1] :])
    return np.concatenate(parts), np.array(moved, dtype=np.int64)
