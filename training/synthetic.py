"""Synthetic ventricular beats on a real recording: the detector benchmark, the quality gate's and the
wearer path's tests and the cross-wearer evaluation all stress their part with the same beats."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SHAPES = ("up", "down", "bi")


@dataclass(frozen=True)
class Ectopic:
    """One kind of ventricular beat: a wide QRS (Gaussian of sd ``width_s``; "up", "down" or biphasic "bi"),
    ``size`` times the median R amplitude, with a discordant T wave, at ``coupling`` x the RR interval."""

    width_s: float
    size: float
    shape: str
    coupling: float = 0.65


def with_ventricular_beats(x: np.ndarray, fs: float, ann: np.ndarray, every: int, width_s: float,
                           size: float, shape: str, coupling: float = 0.65) -> tuple[np.ndarray, np.ndarray,
                                                                                      np.ndarray]:
    """Replace every ``every``-th beat of ``x`` by a premature ventricular-like beat (``Ectopic``) with a full
    compensatory pause. The replaced beat (from the ectopic onset to 350 ms after its R) is bridged linearly
    first. Returns (signal, annotated R samples, symbols "N"/"V"). Synthetic: it tests width and polarity,
    not real PVC variety."""
    ann = np.asarray(ann, dtype=np.int64)
    beat = Ectopic(width_s, size, shape, coupling)
    return _replace(x, fs, ann, {i: beat for i in range(2, ann.size - 2, every)})


def with_multiform_beats(x: np.ndarray, fs: float, ann: np.ndarray, every: tuple[int, int],
                         seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Like ``with_ventricular_beats``, but each ectopic beat has its own shape, QRS sd (25-45 ms), size
    (0.7-2.5 x R) and coupling (0.55-0.75), and they come every ``every[0]`` to ``every[1]`` beats: several
    ventricular foci, unevenly spaced, as in a wearer with frequent multiform ectopy."""
    ann = np.asarray(ann, dtype=np.int64)
    rng = np.random.default_rng(seed)
    beats, i = {}, 2
    while i < ann.size - 2:
        beats[i] = Ectopic(float(rng.uniform(0.025, 0.045)), float(rng.uniform(0.7, 2.5)), str(rng.choice(SHAPES)),
                           float(rng.uniform(0.55, 0.75)))
        i += int(rng.integers(every[0], every[1] + 1))
    return _replace(x, fs, ann, beats)


def _replace(x: np.ndarray, fs: float, ann: np.ndarray, beats: dict[int, Ectopic],
             ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    x = np.array(x, dtype=np.float64)
    r_size = np.median(np.abs(x[ann] - np.median(x)))
    t = np.arange(-int(0.5 * fs), int(0.6 * fs)) / fs
    symbols, where = np.full(ann.size, "N"), ann.copy()
    for i, beat in beats.items():
        onset = int(ann[i - 1] + beat.coupling * (ann[i] - ann[i - 1]))
        a, b = onset - int(0.08 * fs), ann[i] + int(0.35 * fs)
        if b >= ann[i + 1] - int(0.15 * fs):
            continue
        g = np.exp(-0.5 * (t / beat.width_s) ** 2)
        qrs = {"up": g, "down": -g, "bi": -(t / beat.width_s) * g / np.exp(-0.5)}[beat.shape]
        main = -beat.width_s if beat.shape == "bi" else 0.0  # the largest deflection, where an annotator puts R
        t_wave = -np.sign(qrs[np.argmax(np.abs(qrs))]) * 0.35 * np.exp(-0.5 * ((t - 0.3) / 0.07) ** 2)
        x[a:b] = np.linspace(x[a], x[b], b - a)
        lo = onset + int(round(t[0] * fs))
        x[lo : lo + t.size] += (beat.size * r_size * (qrs + t_wave))[: x.size - lo]
        where[i], symbols[i] = onset + int(round(main * fs)), "V"
    order = np.argsort(where)
    return x, where[order], symbols[order]
