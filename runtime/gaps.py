"""Gaps in a raw recording: NaN or Inf samples, as bedside exports and dropped wireless packets leave them.

A gap is missing signal, not bad input: the recording is cut into the finite pieces between its gaps and
each piece is cut into beats as a recording of its own (``preprocess.cut_beats``), so no filter, detector
level, quality stretch or beat window reaches across a gap and no RR interval bridges one. Results around
a gap therefore equal those of the pieces analysed one by one; only the sample indices are the recording's.
A piece too short for one beat window, or flat throughout, yields no beats.
"""

from __future__ import annotations

import numpy as np

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


def cut_beats_across_gaps(signal: np.ndarray, fs: float, prep: Preprocessing) -> CutBeats:
    """``cut_beats`` on each finite piece of ``signal`` (1-D float), R peaks as indices into the whole signal.

    Raises InputError when the signal holds no finite sample, or no piece holds a beat (naming the gaps)."""
    pieces = finite_pieces(signal)
    if len(pieces) == 1 and pieces[0, 0] == 0 and pieces[0, 1] == signal.size:
        return cut_beats(signal, fs, prep)
    if len(pieces) == 0:
        raise InputError(f"signal: expected finite samples, received {signal.size} NaN/Inf and nothing else")
    parts, errors = [], []
    for start, stop in pieces:
        try:
            cut = cut_beats(signal[start:stop], fs, prep)
        except InputError as e:  # too short or flat: a piece without beats, not a reason to refuse the rest
            errors.append(str(e))
            continue
        parts.append(CutBeats(*(cut.r_peak + start if f == "r_peak" else getattr(cut, f) for f in CUT_FIELDS)))
    if not parts:
        raise InputError(f"signal: expected at least one heartbeat between its {len(gap_spans(signal))} gaps "
                         f"(NaN/Inf runs), received none in {len(pieces)} finite pieces ({errors[-1]})")
    return CutBeats(*(np.concatenate([getattr(p, f) for p in parts]) for f in CUT_FIELDS))
