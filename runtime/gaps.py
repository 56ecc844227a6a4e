"""Gaps in a raw recording: NaN or Inf samples, as bedside exports and dropped wireless packets leave them.

A gap is missing signal, not bad input: the recording is cut into the finite pieces between its gaps and
each piece is cut into beats as a recording of its own (``stream.cut_in_chunks``), so no filter, detector
level, quality stretch or beat window reaches across a gap and no RR interval bridges one. Results around
a gap therefore equal those of the pieces analysed one by one; only the sample indices are the recording's.
A piece too short for one beat window, or flat throughout, yields no beats. Each piece's pacemaker spikes
are taken out first (``pacing``): they are reported, never cut as beats.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from . import pacing
from .errors import InputError
from .preprocess import CUT_FIELDS, CutBeats, Preprocessing
from .stream import cut_in_chunks


def _runs(mask: np.ndarray) -> np.ndarray:
    """[R, 2] (start, stop) of each run of True in a 1-D bool mask, in order, in byte-sized temporaries: a day
    at 360 Hz is 31 M samples, and int64 or float copies of it were most of ``analyze``'s peak memory."""
    padded = np.zeros(mask.size + 2, dtype=np.int8)
    padded[1:-1] = mask
    return np.flatnonzero(np.diff(padded)).reshape(-1, 2)  # edges alternate: a run's start, then its stop


def finite_pieces(x: np.ndarray) -> np.ndarray:
    """[P, 2] (start, stop) of each run of finite samples of a 1-D float array, in order."""
    return _runs(np.isfinite(x))


def gap_spans(x: np.ndarray) -> np.ndarray:
    """[G, 2] (start, stop) of each run of NaN/Inf samples, in order."""
    return _runs(~np.isfinite(x))


def cut_pieces(signal: np.ndarray, fs: float, prep: Preprocessing) -> Iterator[tuple[CutBeats, np.ndarray]]:
    """(beats, first sample of each pacemaker spike found) of each finite piece of ``signal`` (1-D float64,
    never written: a piece with spikes is despiked into a copy), a chunk at a time (``stream.cut_in_chunks``),
    R peaks and spikes as indices into the whole signal.

    Raises InputError when the signal holds no finite sample, as ``cut_beats`` does for a recording without
    gaps, or when no piece holds a beat (naming the gaps)."""
    pieces = finite_pieces(signal)
    if len(pieces) == 0:
        raise InputError(f"signal: expected finite samples, received {signal.size} NaN/Inf and nothing else")
    found, errors = 0, []
    for start, stop in pieces:
        piece, spikes = pacing.despike(signal[start:stop], fs)
        yield _empty(prep), spikes + start
        try:
            for cut in cut_in_chunks(piece, fs, prep):
                found += cut.r_peak.size
                yield CutBeats(*(cut.r_peak + start if f == "r_peak" else getattr(cut, f) for f in CUT_FIELDS)), \
                    np.zeros(0, np.int64)
        except InputError as e:  # too short or flat: a piece without beats, not a reason to refuse the rest
            if len(pieces) == 1:
                raise
            errors.append(str(e))
    if found == 0:
        raise InputError(f"signal: expected at least one heartbeat between its {len(gap_spans(signal))} gaps "
                         f"(NaN/Inf runs), received none in {len(pieces)} finite pieces ({errors[-1]})")


def _empty(prep: Preprocessing) -> CutBeats:
    return CutBeats(np.zeros((0, prep.length), np.float32), np.zeros(0, np.int64), np.zeros(0), np.zeros(0, bool),
                    np.zeros(0, "<U7"), np.zeros(0, np.int64))
