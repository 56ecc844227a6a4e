"""Synthetic recording noise of the four kinds that spoil ambulatory ECG, for denoising experiments.

Each generator returns unit-power noise (mean square 1) for ``n`` samples at ``fs`` Hz; ``add_noise``
scales it to a stated SNR against the clean ECG's power in the model's band, so SNRs are comparable
across kinds. The models are deliberately simple and stated here in full:
- baseline wander: three sines between 0.05 and 0.5 Hz (breathing, slow electrode drift);
- mains hum: 60 Hz (MIT-BIH was recorded in the USA) with a second harmonic at a third of its amplitude;
- EMG-like: white Gaussian noise, i.e. flat over the whole 0-180 Hz band of a 360 Hz recording;
- electrode motion: steps of random height at random times (about one every 3 s), each relaxing back
  with a 0.3 s time constant, as when an electrode shifts and its half-cell potential settles.
"""

from __future__ import annotations

import numpy as np

MAINS_HZ = 60.0


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.sqrt(np.mean(x * x))


def baseline_wander(n: int, fs: float, rng: np.random.Generator) -> np.ndarray:
    t = np.arange(n) / fs
    freqs, phases = rng.uniform(0.05, 0.5, 3), rng.uniform(0, 2 * np.pi, 3)
    return _unit(sum(np.sin(2 * np.pi * f * t + p) for f, p in zip(freqs, phases)))


def mains_hum(n: int, fs: float, rng: np.random.Generator) -> np.ndarray:
    t = np.arange(n) / fs
    p = rng.uniform(0, 2 * np.pi, 2)
    return _unit(np.sin(2 * np.pi * MAINS_HZ * t + p[0]) + np.sin(4 * np.pi * MAINS_HZ * t + p[1]) / 3)


def emg(n: int, fs: float, rng: np.random.Generator) -> np.ndarray:
    return _unit(rng.standard_normal(n))


def electrode_motion(n: int, fs: float, rng: np.random.Generator) -> np.ndarray:
    events = np.zeros(n)
    hits = rng.random(n) < 1 / (3.0 * fs)
    events[hits] = rng.standard_normal(int(hits.sum()))
    decay = np.exp(-np.arange(int(5 * 0.3 * fs)) / (0.3 * fs))
    x = np.convolve(events, decay)[:n]
    return _unit(x if x.any() else decay[:n].copy())


NOISES = {"baseline wander": baseline_wander, "mains hum": mains_hum, "EMG-like": emg,
          "electrode motion": electrode_motion}


def mixture(n: int, fs: float, rng: np.random.Generator) -> np.ndarray:
    """All four kinds at equal power."""
    return _unit(sum(make(n, fs, rng) for make in NOISES.values()))


def add_noise(raw: np.ndarray, clean_power: float, kind: str, snr_db: float, fs: float,
              rng: np.random.Generator) -> np.ndarray:
    """``raw`` plus noise of ``kind`` (a NOISES key or "all four") at ``snr_db`` against ``clean_power``."""
    make = mixture if kind == "all four" else NOISES[kind]
    return raw + make(raw.size, fs, rng) * np.sqrt(clean_power / 10 ** (snr_db / 10))
