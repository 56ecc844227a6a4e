"""Synthetic ventricular beats on a real recording: the detector benchmark, the quality gate's and the
wearer path's tests and the cross-wearer evaluation all stress their part with the same beats."""

from __future__ import annotations

import numpy as np


def with_ventricular_beats(x: np.ndarray, fs: float, ann: np.ndarray, every: int, width_s: float,
                           size: float, shape: str, coupling: float = 0.65) -> tuple[np.ndarray, np.ndarray,
                                                                                      np.ndarray]:
    """Replace every ``every``-th beat of ``x`` by a premature ventricular-like beat: a wide QRS (Gaussian
    of sd ``width_s``; "up", "down" or biphasic "bi"), ``size`` times the median R amplitude, with a
    discordant T wave, at ``coupling`` x the RR interval and a full compensatory pause. The replaced beat
    (from the ectopic onset to 350 ms after its R) is bridged linearly first. Returns (signal, annotated
    R samples, symbols "N"/"V"). Synthetic: it tests width and polarity, not real PVC variety."""
    x, ann = np.array(x, dtype=np.float64), np.asarray(ann, dtype=np.int64)
    r_size = np.median(np.abs(x[ann] - np.median(x)))
    t = np.arange(-int(0.5 * fs), int(0.6 * fs)) / fs
    g = np.exp(-0.5 * (t / width_s) ** 2)
    qrs = {"up": g, "down": -g, "bi": -(t / width_s) * g / np.exp(-0.5)}[shape]
    main = -width_s if shape == "bi" else 0.0  # the largest deflection, where an annotator puts R
    t_wave = -np.sign(qrs[np.argmax(np.abs(qrs))]) * 0.35 * np.exp(-0.5 * ((t - 0.3) / 0.07) ** 2)
    wave = size * r_size * (qrs + t_wave)
    symbols, where = np.full(ann.size, "N"), ann.copy()
    for i in range(2, ann.size - 2, every):
        onset = int(ann[i - 1] + coupling * (ann[i] - ann[i - 1]))
        a, b = onset - int(0.08 * fs), ann[i] + int(0.35 * fs)
        if b >= ann[i + 1] - int(0.15 * fs):
            continue
        x[a:b] = np.linspace(x[a], x[b], b - a)
        lo = onset + int(round(t[0] * fs))
        x[lo : lo + t.size] += wave[: x.size - lo]
        where[i], symbols[i] = onset + int(round(main * fs)), "V"
    order = np.argsort(where)
    return x, where[order], symbols[order]
