"""``detector.detect_r_peaks`` run incrementally: filtered samples in, final R peaks out.

A stream that re-ran the batch detector over its recent signal at every push paid numpy's fixed cost
many times per second. Every stage of the batch detector needs only bounded context, and all but the
first two look only backwards, so each can carry its state between pushes and do work in proportion to
the new samples:

- slope and feature: the same cumulative sum, continued from its last value (so the same additions in
  the same order as on the whole signal); a feature sample is final once the slope half a window after
  it is known;
- candidates: a local maximum is decided once the maxima within the refractory period after it are known;
- levels: each block's maximum and median, once its last feature sample is final; a candidate's levels
  come from the blocks before its own (the first 8 blocks for those in the learning period);
- T-wave rejection (two rounds): each detection is compared with its predecessor and with its
  predecessor among the first round's survivors only;
- search-back: round r sees the beats of round r - 1 one interval at a time, the 8 intervals before it
  and the candidates inside it; only candidates scoring above half the threshold can be found, so they
  are the only ones kept for it;
- noise between beats: a beat waits for the next one (or for the signal to pass the furthest place where a
  next one could still make it noise) and is judged against its two neighbours and the 8 intervals before.

So the peaks equal ``detect_r_peaks`` on the whole signal. A peak is reported once nothing later can
come before it: ``frontier`` is the sample before which every peak has been reported. The batch
detector's levels differ on a signal of fewer than 8 blocks (its learning period is the whole signal);
such a short signal is detected in one batch call at ``finish``.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right

import numpy as np

from .detector import (
    FIDUCIAL_S,
    HISTORY_BLOCKS,
    LAG_S,
    REFRACTORY_S,
    SEARCH_ROUNDS,
    SEARCH_RR,
    T_WAVE_S,
    TH,
    WEAK,
    WINDOW_S,
    _is_t_wave,
    _median_rows,
    _seconds,
    block_size,
    detect_r_peaks,
    levels,
    refractory_keep,
)
from .errors import InputError


def _history_levels(stats: np.ndarray) -> np.ndarray:
    """[4, k]: ``detector.levels`` of the feature, then of the slope, from block statistics [k, HISTORY_BLOCKS, 4]
    (feature max and median, slope max and median)."""
    return np.array([*levels(stats[..., 0], stats[..., 1]), *levels(stats[..., 2], stats[..., 3])])


class _TWaves:
    """``detector._reject_t_waves``'s two rounds, one detection at a time: a detection is dropped when it is the
    T wave (``detector._is_t_wave``) of its predecessor, or of its predecessor among the first round's
    survivors."""

    def __init__(self, limit: int):
        self.limit = limit
        self.prev: tuple[int, float, float] | None = None  # (fiducial, steepness, size) of the previous detection
        self.prev_kept: tuple[int, float, float] | None = None  # ... of the previous first-round survivor

    def _t_wave(self, before: tuple[int, float, float] | None, now: tuple[int, float, float]) -> bool:
        return before is not None and bool(_is_t_wave(now[0] - before[0], now[1], now[2], before[1], before[2],
                                                      self.limit))

    def keep(self, at: int, steep: float, size: float) -> bool:
        now = (at, steep, size)
        first = not self._t_wave(self.prev, now)
        second = first and not self._t_wave(self.prev_kept, now)
        self.prev = now
        if first:
            self.prev_kept = now
        return second


class _SearchBack:
    """One round of ``detector._search_back``: beats of the previous round in, this round's out. An RR interval
    over SEARCH_RR times the mean of the (up to) HISTORY_BLOCKS before it gets its highest-scoring candidate
    (the last of equals) if that scores above TH / 2."""

    def __init__(self):
        self.last: tuple[int, int] | None = None  # (candidate sample, fiducial) of the previous beat in
        self.intervals: list[int] = []  # the last HISTORY_BLOCKS intervals between beats in (fiducials)

    def feed(self, beat: tuple, pool: list[tuple]) -> list[tuple]:
        """Beats out for one beat in; ``pool`` holds every candidate above TH / 2 after the previous beat."""
        out = []
        if self.last is not None:
            rr = beat[1] - self.last[1]
            n_prev = len(self.intervals)
            if n_prev and rr > SEARCH_RR * (float(sum(self.intervals)) / n_prev):
                inside = [c for c in pool if self.last[0] < c[0] < beat[0]]
                if inside:
                    best = max(reversed(inside), key=lambda c: c[3])  # reversed: the last of equal scores
                    if best[3] > 0.5 * TH:
                        out.append(best)
            self.intervals = (self.intervals + [rr])[-HISTORY_BLOCKS:]
        self.last = (beat[0], beat[1])
        return out + [beat]


class _WeakBetween:
    """``detector._reject_weak_between`` one beat at a time: each beat waits for the next, then is dropped when
    its size and steepness are under WEAK times the QRS level's and both neighbours', and its neighbours lie
    no further apart than SEARCH_RR times the mean of the (up to) HISTORY_BLOCKS intervals before the first of
    them (all counted between the beats given, dropped or not)."""

    def __init__(self):
        self.prev: tuple[int, float, float] | None = None  # (fiducial, size, steepness: the score's parts) of
        # the beat before the waiting one
        self.waiting: tuple[int, float, float] | None = None  # the beat not yet judged
        self.reported = False  # whether the waiting beat was released already
        self.intervals: list[int] = []  # the last HISTORY_BLOCKS intervals ending at ``prev``

    def limit(self) -> float:
        """The furthest sample a next beat could lie at and still make the waiting one noise (-inf: none)."""
        if self.prev is None or not self.intervals:
            return -np.inf
        return self.prev[0] + SEARCH_RR * float(sum(self.intervals)) / len(self.intervals)

    def feed(self, beat: tuple[int, float, float]) -> list[int]:
        """Fiducials out (the waiting beat, unless it is noise or was released) for one beat in."""
        out = []
        if self.waiting is not None:
            a = self.waiting[0]
            weak = self.prev is not None and all(self.waiting[k] < WEAK * min(1.0, self.prev[k], beat[k])
                                                 for k in (1, 2))
            if not (self.reported or (weak and beat[0] <= self.limit())):
                out.append(a)
            if self.prev is not None:
                self.intervals = (self.intervals + [a - self.prev[0]])[-HISTORY_BLOCKS:]
            self.prev = self.waiting
        self.waiting, self.reported = beat, False
        return out

    def release(self, frontier: int) -> list[int]:
        """The waiting beat, once no beat can come before ``frontier`` and that lies past ``limit``: whatever
        comes next, it stays."""
        if self.waiting is None or self.reported or frontier <= self.limit():
            return []
        self.reported = True
        return [self.waiting[0]]

    def flush(self) -> list[int]:
        """The last beat: it has no next one, so it stays."""
        out = [] if self.waiting is None or self.reported else [self.waiting[0]]
        self.waiting = None
        return out


class PeakTracker:
    """Filtered samples in (``push``, any block size), R peaks out as they become final; ``finish`` at the end.
    The peaks over a whole signal equal ``detect_r_peaks`` on it."""

    def __init__(self, fs: float):
        self.fs = float(fs)
        self._k, self._h = _seconds(LAG_S, fs), _seconds(WINDOW_S, fs) // 2
        self._reach, self._fid = _seconds(REFRACTORY_S, fs), _seconds(FIDUCIAL_S, fs)
        self._steep = _seconds(WINDOW_S / 2, fs)
        self._size = block_size(fs)
        # x, slope, its cumulative sum and the feature, all from absolute sample index self._b0 on
        self._x, self._slope, self._sum, self._feature = (np.zeros(0) for _ in range(4))
        self._b0 = 0
        self._n = self._ns = self._nf = 0  # samples received; slope and feature final below these indices
        self._maxima = np.zeros(0, np.int64)  # local maxima of the feature: the undecided ones (from index
        self._heights = np.zeros(0)  # self._undecided on) and those within the refractory period before them
        self._undecided = 0
        self._next_max = 1  # maxima are searched from this sample on
        self._queue = np.zeros(0, np.int64)  # candidates waiting for their levels (the learning period)
        self._stats = np.zeros((0, 4))  # per complete block from self._s0 on: feature max and median, slope
        self._s0 = 0  # max and median
        self._learning: np.ndarray | None = None  # levels of the first HISTORY_BLOCKS blocks
        self._cached: tuple[int, np.ndarray] = (-1, np.zeros(4))  # the last block's levels
        self._t_first, self._t_final = _TWaves(_seconds(T_WAVE_S, fs)), _TWaves(_seconds(T_WAVE_S, fs))
        self._rounds = [_SearchBack() for _ in range(SEARCH_ROUNDS)]
        self._weak = _WeakBetween()
        self._pool: list[tuple] = []  # candidates above TH / 2 after the last beat: (sample, fiducial, steep, score,
        # and the score's two parts: size and steepness)
        self._last_peak = -1
        self._finished = False

    # ------------------------------------------------------------------ public
    @property
    def frontier(self) -> int:
        """Every peak before this sample index has been reported."""
        judged = self._weak.waiting is None or self._weak.reported
        return self._passed() if judged else min(self._passed(), self._weak.waiting[0])

    def _passed(self) -> int:
        """Every peak before this sample index has passed the stages before the last (``_WeakBetween``)."""
        waiting = [self._next_max]  # where the next local maximum may be found
        if self._undecided < self._maxima.size:
            waiting.append(int(self._maxima[self._undecided]))
        if self._queue.size:
            waiting.append(int(self._queue[0]))
        if self._pool:  # a search-back may still find these
            waiting.append(self._pool[0][0])
        return min(waiting) - self._fid

    def push(self, x: np.ndarray) -> np.ndarray:
        """Append filtered samples; the R peaks (absolute sample indices, ascending) they make final."""
        if self._finished:
            raise InputError("filtered samples: expected them before finish(), received a push after finish()")
        self._x = np.concatenate((self._x, np.asarray(x, dtype=np.float64)))
        self._n += np.size(x)
        self._extend(self._n - self._k, self._n - self._k - self._h)
        peaks = np.r_[self._advance(self._nf - 2, final=False), self._weak.release(self._passed())]
        self._trim()
        return peaks.astype(np.int64)

    def finish(self) -> np.ndarray:
        """End of the signal: the remaining peaks, with the batch detector's treatment of its end."""
        if self._finished:
            return np.zeros(0, np.int64)
        self._finished = True
        if self._learning is None:  # fewer blocks than the learning period: levels span the whole signal
            return detect_r_peaks(self._x, self.fs)  # (kept whole until then)
        self._extend(self._n, self._n)
        return np.r_[self._advance(self._n - 2, final=True), self._weak.flush()].astype(np.int64)

    # ------------------------------------------------------------------ stages
    def _extend(self, ns: int, nf: int) -> None:
        """Slope final below ``ns``, feature below ``nf`` (absolute; at the end, slope 0 and the sum truncated
        as in ``detector.qrs_feature``); statistics of the blocks this completes."""
        k, h, b0, n = self._k, self._h, self._b0, self._n
        if ns > self._ns:  # slope[j] = |x[j + k] - x[j - k]| for k <= j < n - k, else 0
            slope = np.zeros(ns - self._ns)
            lo, hi = max(self._ns, k), min(ns, n - k)
            if hi > lo:
                np.abs(self._x[lo + k - b0 : hi + k - b0] - self._x[lo - k - b0 : hi - k - b0],
                       out=slope[lo - self._ns : hi - self._ns])
            first = slope.copy()  # the sum goes on from its last value: the same additions as on the whole
            first[0] += self._sum[-1] if self._sum.size else 0.0
            self._sum = np.concatenate((self._sum, np.cumsum(first)))
            self._slope = np.concatenate((self._slope, slope))
            self._ns = ns
        if nf > self._nf:  # feature[t] = sum[min(t + h, n - 1)] - sum[t - h - 1] (0 before the start)
            t0, total = self._nf, self._sum
            upper = total[t0 + h - b0 : min(nf + h, n) - b0]
            if nf + h > n:  # the end of the signal: the sum stays at its last value
                upper = np.concatenate((upper, np.full(nf + h - n, total[n - 1 - b0])))
            lower = total[max(t0 - h - 1, 0) - b0 : max(nf - h - 1, 0) - b0]
            if lower.size < nf - t0:  # the start of the signal
                lower = np.concatenate((np.zeros(nf - t0 - lower.size), lower))
            self._feature = np.concatenate((self._feature, upper - lower))
            self._nf = nf
        s, done = self._size, self._s0 + len(self._stats)
        complete = self._nf // s
        if complete > done:
            f = self._feature[done * s - b0 : complete * s - b0].reshape(-1, s)
            sl = self._slope[done * s - b0 : complete * s - b0].reshape(-1, s)
            # as detector.block_levels: the median of every 4th sample
            new = np.stack((f.max(axis=1), _median_rows(f[:, ::4]), sl.max(axis=1), _median_rows(sl[:, ::4])), 1)
            self._stats = np.concatenate((self._stats, new))
            if self._learning is None and complete >= HISTORY_BLOCKS:
                self._learning = _history_levels(self._stats[None, :HISTORY_BLOCKS])[:, 0]

    def _levels(self, cand: np.ndarray) -> np.ndarray:
        """[4, k]: QRS and noise levels of the feature, then of the slope, for candidates at ``cand``: medians
        over the HISTORY_BLOCKS blocks before each one's own (the learning period's for the first ones)."""
        b = cand // self._size
        out = np.repeat(self._learning[:, None], cand.size, axis=1)
        late = b >= HISTORY_BLOCKS
        if late.any():
            blocks = b[late]
            if blocks[0] == blocks[-1] == self._cached[0]:  # a push's candidates mostly share the last block
                out[:, late] = self._cached[1][:, None]
                return out
            rows = blocks[:, None] - HISTORY_BLOCKS - self._s0 + np.arange(HISTORY_BLOCKS)[None, :]
            out[:, late] = _history_levels(self._stats[rows])
            self._cached = (int(blocks[-1]), out[:, -1].copy())
        return out

    def _advance(self, limit: int, final: bool) -> np.ndarray:
        """Find the feature's local maxima up to ``limit``, decide the candidates, score them and run them
        through the T-wave and search-back stages; the peaks this makes final."""
        b0, f = self._b0, self._feature
        if limit >= self._next_max:
            lo, hi = self._next_max - b0, limit + 1 - b0
            mid = f[lo:hi]
            new = np.flatnonzero((mid > f[lo - 1 : hi - 1]) & (mid >= f[lo + 1 : hi + 1]) & (mid > 0)) + lo
            self._maxima = np.concatenate((self._maxima, new + b0))
            self._heights = np.concatenate((self._heights, f[new]))
            self._next_max = limit + 1
        decidable = self._maxima.size if final else int(np.searchsorted(self._maxima, limit - self._reach, "right"))
        if decidable > self._undecided:  # against every known maximum within the refractory period
            keep = self._refractory(self._undecided, decidable)
            self._queue = np.concatenate((self._queue, self._maxima[self._undecided : decidable][keep]))
            anchor = self._maxima[decidable] if decidable < self._maxima.size else self._next_max
            gone = int(np.searchsorted(self._maxima, anchor - self._reach, "left"))
            self._maxima, self._heights = self._maxima[gone:], self._heights[gone:]
            self._undecided = decidable - gone
        if self._learning is None or self._queue.size == 0:
            return np.zeros(0, np.int64)
        cand, self._queue = self._queue, np.zeros(0, np.int64)
        return self._score_and_pass(cand)

    def _refractory(self, start: int, stop: int) -> np.ndarray:
        """``refractory_keep``'s verdicts on maxima ``start:stop`` (all those within reach of them are known): a
        push's one or two new maxima are compared one by one (a peak stays if it is higher than every earlier
        one within reach and at least as high as every later one), many at once by the vectorised rule."""
        if stop - start > 4:
            return refractory_keep(self._maxima, self._heights, self._reach)[start:stop]
        at, h = self._maxima.tolist(), self._heights.tolist()
        keep = np.ones(stop - start, dtype=bool)
        for i in range(start, stop):
            lo, hi = bisect_left(at, at[i] - self._reach), bisect_right(at, at[i] + self._reach)
            keep[i - start] = all(h[i] > e for e in h[lo:i]) and all(h[i] >= e for e in h[i + 1 : hi])
        return keep

    def _score_and_pass(self, cand: np.ndarray) -> np.ndarray:
        """Fiducial, steepness and score of the candidates (``detect_r_peaks``'s arithmetic, for all of them at
        once), then the T-wave and search-back stages one candidate at a time."""
        b0, n = self._b0, self._n
        idx = np.clip(cand[:, None] + np.arange(-self._fid, self._fid + 1)[None, :], 0, n - 1)
        at = idx[np.arange(cand.size), np.abs(self._x[idx - b0]).argmax(axis=1)]
        near = np.clip(cand[:, None] + np.arange(-self._steep, self._steep + 1)[None, :], 0, n - 1)
        steep = self._slope[near - b0].max(axis=1)
        q, nq, qs, ns = self._levels(cand)
        size = (self._feature[cand - b0] - nq) / np.maximum(q - nq, 1e-12)
        steepness = (steep - ns) / np.maximum(qs - ns, 1e-12)
        score = np.maximum(size, steepness)
        peaks = []
        some = score > 0.5 * TH  # the others can neither be beats nor be found by a search-back
        for c, a, st, sc, sz, sp in zip(*(v[some].tolist() for v in (cand, at, steep, score, size, steepness))):
            self._pool.append((c, a, st, sc, sz, sp))
            if not (sc > TH and self._t_first.keep(a, st, sz)):
                continue
            beats = [(c, a, st, sc, sz, sp)]
            for search in self._rounds:
                beats = [out for beat in beats for out in search.feed(beat, self._pool)]
            for _, a2, st2, _, sz2, sp2 in beats:
                if self._t_final.keep(a2, st2, sz2) and a2 != self._last_peak:
                    peaks += self._weak.feed((a2, sz2, sp2))
                    self._last_peak = a2
            self._pool = [p for p in self._pool if p[0] > c]
        return np.asarray(peaks, dtype=np.int64)

    def _trim(self) -> None:
        """Drop samples no stage needs any more (never before the learning period is over: a signal shorter
        than it is detected whole)."""
        if self._learning is None:
            return
        waiting = [self._maxima[0] if self._maxima.size else self._next_max, self._next_max - 1]
        if self._queue.size:
            waiting.append(int(self._queue[0]))
        need = min(min(waiting) - max(self._fid, self._steep), (self._s0 + len(self._stats)) * self._size,
                   self._ns - self._k, self._nf - self._h - 1)
        cut = need - self._b0
        if cut >= 4 * self._size:  # seldom: each trim copies what is kept
            self._x, self._slope, self._sum, self._feature = (a[cut:] for a in (self._x, self._slope, self._sum,
                                                                                 self._feature))
            self._b0 = need
        keep_from = max(0, (min(waiting) // self._size) - HISTORY_BLOCKS) - self._s0
        if keep_from > 0:
            self._stats, self._s0 = self._stats[keep_from:], self._s0 + keep_from
