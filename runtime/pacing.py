"""Pacemaker spikes: found on the raw signal, reported per beat, and taken out before anything else sees them.

A pacing stimulus lasts 0.1-2 ms at the electrode; a recorder draws it as one to a few samples of a steep,
large excursion that returns to where it left (MIT-BIH marks paced beats ``/``; bedside monitors detect the
spikes in hardware). Left in the trace, a spike far enough before its QRS (an atrial or an AV-sequential
pacer: 150-250 ms) is a "QRS" of its own to the detector, the QRS and T after it are counted too, and the
quality gate and the model see a shape no template has.

A spike here is a run of at most SPIKE_S of samples (one sample at 125-360 Hz) that all lie on one side of
the straight line between the samples flanking it, by at least SPIKE_RATIO times the largest step the
trace makes just outside it (a QRS apex, however narrow, is reached by steps of its own size), by at
least SPIKE_SIZE of the trace's range over the REFERENCE_S before it (noise is not a spike), and by more
than SPIKE_STEPS of the recording's quantisation steps over that time (a low-resolution monitor's trace
toggles by a code or two on its flat baseline and inside a small QRS: rounding, not a stimulus). Its
samples are replaced by that line, and a beat whose R peak follows a spike by at most PACED_S is paced.
Every test looks at the past and at most ``lookahead`` samples ahead, so ``Despiker`` streams exactly what
``despike`` does on a whole recording.
"""

from __future__ import annotations

import numpy as np

SPIKE_S = 0.004  # widest spike at any rate (a stimulus of up to 2 ms, widened by the recorder's filters)
SPIKE_RATIO = 4.0  # the spike stands out from its flanks' steps by this much
SPIKE_SIZE = 0.3  # and is at least this share of the trace's recent range
SPIKE_STEPS = 2  # and rises more than this many quantisation steps (the smallest move the trace makes)
REFERENCE_S = 2.0  # the recent range: the samples this long before the spike (at least one QRS at 30 bpm)
PACED_S = 0.3  # a spike this long before an R peak paces it (atrial spike + AV delay, or a ventricular spike)


def width(fs: float) -> int:
    """Samples a spike may span at ``fs``."""
    return max(1, int(SPIKE_S * fs))


def lookahead(fs: float) -> int:
    """Samples after a sample that decide whether it is part of a spike."""
    return width(fs) + 2


def find(x: np.ndarray, fs: float, reference: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    """Bool [n]: the samples of ``x`` that are part of a spike. ``reference``: the trace's range and its
    quantisation step before each sample (``recent_range``). Samples within ``lookahead`` of the end are not
    judged (False)."""
    span, step = reference
    n = x.size
    spike = np.zeros(n, dtype=bool)
    for w in range(1, width(fs) + 1):
        i = np.arange(2, n - w - 1)  # spike samples i .. i+w-1, flanks i-1 and i+w, outer samples i-2, i+w+1
        if i.size == 0:
            break
        left, right = x[i - 1], x[i + w]
        dev = np.stack([x[i + j] - (left + (right - left) * (j + 1) / (w + 1)) for j in range(w)])
        same_side = (dev > 0).all(axis=0) | (dev < 0).all(axis=0)
        height = np.abs(dev).min(axis=0)
        steps = np.maximum.reduce([np.abs(left - x[i - 2]), np.abs(x[i + w + 1] - right), np.abs(right - left)])
        hit = (same_side & (height > SPIKE_RATIO * steps) & (height >= SPIKE_SIZE * span[i])
               & (height > SPIKE_STEPS * step[i]))
        for j in range(w):
            spike[i[hit] + j] = True
    return spike


def recent_range(x: np.ndarray, fs: float, past: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """([n] max - min, [n] quantisation step) of the REFERENCE_S of signal before each sample of ``x``
    (``past``: samples before ``x``, a stream's history), by blocks of a tenth of it so that long recordings
    cost little. The step is the smallest non-zero move between two samples (one code of the converter; near
    zero for a fine or resampled trace)."""
    block = max(1, int(REFERENCE_S * fs / 10))
    history = np.zeros(0) if past is None else past
    seq = np.r_[history, x]
    nb = -(-seq.size // block)
    padded = np.full(nb * block, np.nan)
    padded[: seq.size] = seq
    blocks = padded.reshape(nb, block)
    moves = np.abs(np.diff(padded, prepend=np.nan)).reshape(nb, block)  # each sample's move from the one before
    with np.errstate(invalid="ignore"):
        hi, lo = np.nanmax(blocks, axis=1), np.nanmin(blocks, axis=1)
        step = np.where(moves > 0, moves, np.inf).min(axis=1)
    hi = np.r_[np.full(10, -np.inf), hi]
    lo = np.r_[np.full(10, np.inf), lo]
    step = np.r_[np.full(10, np.inf), step]
    before = np.lib.stride_tricks.sliding_window_view  # the 10 blocks before block b
    win_hi, win_lo = before(hi, 10)[:nb].max(axis=1), before(lo, 10)[:nb].min(axis=1)
    ref = np.where(np.isfinite(win_hi - win_lo), win_hi - win_lo, np.inf)  # no past yet: nothing is a spike
    idx = np.arange(history.size, seq.size) // block
    return ref[idx], before(step, 10)[:nb].min(axis=1)[idx]


def despike(x: np.ndarray, fs: float, chunk_s: float = 60.0) -> tuple[np.ndarray, np.ndarray]:
    """(``x`` with its spikes replaced by the line between their flanks, indices of the spikes' first samples),
    a minute at a time through a ``Despiker`` so that memory does not grow with the recording. A recording
    without spikes (most are) comes back as the very array given, not a copy; ``x`` itself is never written."""
    x = np.asarray(x, dtype=np.float64)
    d, done, step, out = Despiker(fs), 0, max(1, int(chunk_s * fs)), x
    for i in range(0, x.size + step, step):
        clean = d.push(x[i : i + step]) if i < x.size else d.push(np.zeros(0), final=True)
        if not np.array_equal(clean, x[done : done + clean.size]):
            if out is x:
                out = x.copy()  # the first spike: from here on the cleaned copy is the recording
            out[done : done + clean.size] = clean
        done += clean.size
    return out, np.array(d.spikes, dtype=np.int64)


def paced(r_peak: np.ndarray, spikes: np.ndarray, fs: float) -> np.ndarray:
    """Bool per R peak: a spike lies at most PACED_S before it (or on it)."""
    if spikes.size == 0:
        return np.zeros(len(r_peak), dtype=bool)
    j = np.searchsorted(spikes, r_peak, side="right") - 1  # the last spike at or before each R peak
    return (j >= 0) & (r_peak - spikes[np.maximum(j, 0)] <= PACED_S * fs)


class Despiker:
    """``despike`` for a stream: raw blocks in, the same cleaned samples out ``lookahead`` samples later."""

    def __init__(self, fs: float):
        self.fs = float(fs)
        self._block = max(1, int(REFERENCE_S * fs / 10))
        self._buf = np.zeros(0)  # raw samples from stream index self._start, a block boundary
        self._start = 0
        self._done = 0  # samples cleaned and returned so far
        self.spikes: list[int] = []  # first sample of each spike found, as stream indices

    def push(self, x: np.ndarray, final: bool = False) -> np.ndarray:
        """The cleaned samples that ``x`` completes (all that are left when ``final``): a sample is ready once
        every spike that may hold it has its flanks and outer samples."""
        self._buf = np.r_[self._buf, x]
        n = self._start + self._buf.size
        ready = n if final else max(self._done, n - lookahead(self.fs) + 1)
        if ready <= self._done:
            return np.zeros(0)
        lo = max(self._start, self._done - width(self.fs) - 2)  # a spike over the next sample, and its context
        head, seg = self._buf[: lo - self._start], self._buf[lo - self._start :]
        spike = find(seg, self.fs, recent_range(seg, self.fs, head))  # head starts on a block boundary
        clean = seg.copy()
        if spike.any():
            keep = np.flatnonzero(~spike)
            clean[spike] = np.interp(np.flatnonzero(spike), keep, seg[keep])
        starts = np.flatnonzero(spike & ~np.r_[False, spike[:-1]]) + lo
        self.spikes += [int(s) for s in starts if self._done <= s < ready]
        out = clean[self._done - lo : ready - lo]
        self._done = ready
        keep_from = self._done - width(self.fs) - 2 - 11 * self._block  # the reference's 10 blocks and context
        cut = (keep_from - self._start) // self._block * self._block
        if cut > 0:
            self._buf, self._start = self._buf[cut:], self._start + cut
        return out
