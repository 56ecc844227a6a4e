"""Gaps in a raw recording: NaN or Inf samples, as bedside exports and dropped wireless packets leave them.

A gap is missing signal, not bad input: the recording is cut into the finite pieces between its gaps and
each piece is cut into beats as a recording of its own (``preprocess.cut_beats``), so no filter, detector
level, quality stretch or beat window reaches across a gap and no RR interval bridges one. Results around
a gap therefore equal those of the pieces analysed one by one; only the sample indices are the recording's.
A piece too short for one beat window, or flat throughout, yields no beats. Each piece's pacemaker spikes
are taken out first (``pacing``): they are reported, never cut as beats.
"""

from __future__ import annotations

import numpy as np

from . import pacing
from .errors import InputError
from .preprocess import CUT_FIELDS, CutBeats, Preprocessing, cut_beats


def finite_pieces(x: np.ndarray) -> np.ndarray:
    """[P, 2] (start, stop) of each run of finite samples of a 1-D float array, in order."""
    ok = np.isfinite(x)
    edges = np.diff(np.r_[0, ok.astype(np.int8), 0])
    return np.c_[np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)]


def gap_spans(x: np.ndarray) -> np.ndarray:
    """[G, 2] (start, stop) of each run of NaN/Inf samples, in order."""
    return finite_pieces(np.where(np.isfinite(x), np.nan, 0.0))


def cut_recording(signal: np.ndarray, fs: float, prep: Preprocessing) -> tuple[CutBeats, np.ndarray]:
    """(``cut_beats`` on each finite piece of ``signal`` (1-D float) after its pacemaker spikes are taken out
    (``pacing.despike``), R peaks as indices into the whole signal; the first sample of each spike found).

    Raises InputError when the signal holds no finite sample, or no piece holds a beat (naming the gaps)."""
    pieces = finite_pieces(signal)
    if len(pieces) == 0:
        raise InputError(f"signal: expected finite samples, received {signal.size} NaN/Inf and nothing else")
    parts, spikes, errors = [], [], []
    for start, stop in pieces:
        clean, found = pacing.despike(signal[start:stop], fs)
        spikes.append(found + start)
        try:
            cut = cut_beats(clean, fs, prep)
        except InputError as e:  # too short or flat: a piece without beats, not a reason to refuse the rest
            if len(pieces) == 1:
                raise
            errors.append(str(e))
            continue
        parts.append(CutBeats(*(cut.r_peak + start if f == "r_peak" else getattr(cut, f) for f in CUT_FIELDS)))
    if not parts:
        raise InputError(f"signal: expected at least one heartbeat between its {len(gap_spans(signal))} gaps "
                         f"(NaN/Inf runs), received none in {len(pieces)} finite pieces ({errors[-1]})")
    return CutBeats(*(np.concatenate([getattr(p, f) for p in parts]) for f in CUT_FIELDS)), np.concatenate(spikes)
