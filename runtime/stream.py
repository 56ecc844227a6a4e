"""Beats from a stream of raw samples, equal to ``preprocess.beats_from_signal`` on the whole recording.

Each step of the batch path is redone incrementally with exactly its arithmetic: linear resampling to
the model's rate, the zero-phase FIR (the same taps, edge-padded at the stream's start and, on
``flush``, at its end), and the detector, which is re-run on a window of recent filtered signal and
reports a beat only once nothing later in the stream can change it:

- the window starts on a 1-s block boundary of the stream and keeps LEAD_IN_S of signal before the
  first unreported sample, so every level, RR mean and T-wave comparison that decides a new beat sees
  the same past as on the whole recording;
- a beat is settled when the detector's look-ahead (refractory period, feature and fiducial spans) is
  available after it; search-back only ever adds beats after the last detected one, so it cannot
  revise a settled beat;
- nothing is reported before the detector's learning period (its first 8 blocks) is complete;
- the detector runs at most every HOP_S of signal, which delays reports a little and changes none;
- the quality gate judges each beat on the raw stretch that ends with the beat's window, and compares
  its activity with the beats before it only, so its verdict needs nothing later either.

State is bounded: the raw tail the filter and the quality gate need, LEAD_IN_S plus one window of
filtered signal, and the activity of the last few beats.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import detector, quality
from .errors import InputError
from .preprocess import (
    CutBeats,
    Preprocessing,
    convolve_valid,
    next_gaps,
    normalise_beats,
    rr_between_usable,
    window_end,
)

LEAD_IN_S = 16.0  # >= 8 blocks of levels and 8 RR intervals at 35 beats/min before a beat is decided
HOP_S = 0.1  # the detector re-runs at most this often: latency + 0.1 s at worst, 1/36 of the work at 1-sample pushes
MAX_GAP_S = 10.0  # with no beat for longer, older signal is dropped anyway: memory stays bounded


@dataclass(frozen=True)
class StreamBeats(CutBeats):
    """Beats settled by one push: ``CutBeats`` fields, and how late each was reported."""

    latency: np.ndarray = None  # int64 [k]: input samples received after the R peak when the beat was settled


class BeatStream:
    """Raw samples in (any block size), settled beats out, as ``beats_from_signal`` would cut them."""

    def __init__(self, prep: Preprocessing, fs: float):
        if prep.sample_rate is None or prep.pre is None or prep.taps is None:
            raise InputError("stream: this model was trained on pre-cut beats (no sample rate, window placement "
                             "or filter recorded), so it cannot cut beats from a raw stream")
        self.prep, self.fs, self.rate = prep, float(fs), float(prep.sample_rate)
        self._half = (prep.taps.size - 1) // 2
        self._block = detector.block_size(self.rate)
        self._lead_in = int(np.ceil(LEAD_IN_S * self.rate / self._block)) * self._block
        self._settle = detector.lookahead(self.rate)
        self._hop = max(1, int(HOP_S * self.rate))
        self._last_run = 0  # filtered samples available when the detector last ran
        self._n_in = 0  # input samples received
        self._last_in = np.zeros(0)  # the last input sample (resampling interpolates from it)
        self._n_x = 0  # model-rate samples produced
        self._x_tail = np.zeros(0)  # model-rate samples the filter still needs (its left context)
        self._f = np.zeros(0)  # filtered signal from absolute index self._f0
        self._f0 = 0
        self._last_beat = -1  # model-rate index of the last beat reported (windowable or not)
        self._last_beat_in = np.nan  # its input index, for RR
        self._last_usable = False  # its quality verdict: RR counts only between usable beats
        self._post_in = window_end(prep, self.fs)
        self._seg = quality.segment_samples(self.fs)
        self._raw = np.zeros(0)  # raw input from index self._raw0: the stretches the quality gate judges
        self._raw0 = 0
        self._activity = np.zeros(0)  # activity of the last beats judged (the flat test's reference)
        self._closed = False

    # ------------------------------------------------------------------ resample and filter
    def _resample(self, samples: np.ndarray, final: bool) -> np.ndarray:
        """New model-rate samples: np.interp at t_j = j * fs / rate, as preprocess.resample computes them."""
        if self.fs == self.rate:
            return samples
        step = self.fs / self.rate
        start = self._n_in - self._last_in.size  # input index of the first sample held
        held = np.concatenate((self._last_in, samples))
        n_in = self._n_in + samples.size
        if final:
            n_out = max(1, int(round(n_in * self.rate / self.fs)))
        else:  # outputs whose right neighbour has arrived
            n_out = int(np.floor((n_in - 1) / step)) + 1 if n_in else 0
        j = np.arange(self._n_x, max(n_out, self._n_x))
        out = np.interp(j * step, np.arange(start, start + held.size), held) if held.size else np.zeros(0)
        self._last_in = held[-1:]
        return out

    def _filter(self, x: np.ndarray, final: bool) -> None:
        """Append the filtered samples that ``x`` (new model-rate samples) completes."""
        h, half = self.prep.taps, self._half
        if self._n_x == 0 and x.size:
            self._x_tail = np.full(half, x[0])  # the batch filter's edge padding at the start
        self._n_x += x.size
        xp = np.concatenate((self._x_tail, x))
        if final and self._n_x:
            xp = np.concatenate((xp, np.full(half, xp[-1])))  # and at the end
        new = convolve_valid(xp, h)
        self._x_tail = xp[xp.size - (2 * half) :] if xp.size >= 2 * half else xp
        self._f = np.concatenate((self._f, new))

    # ------------------------------------------------------------------ detection
    def _settled(self, final: bool) -> StreamBeats:
        n_f = self._f0 + self._f.size  # filtered samples available (absolute)
        learning = detector.HISTORY_BLOCKS * self._block
        if n_f == 0 or (not final and (n_f < learning + self._settle or n_f - self._last_run < self._hop)):
            return self._empty()  # when the detector runs changes when a beat is reported, never which
        self._last_run = n_f
        peaks = detector.detect_r_peaks(self._f, self.rate) + self._f0
        limit = n_f if final else n_f - self._settle
        new = peaks[(peaks > self._last_beat) & (peaks < limit)]
        pre, length = self.prep.pre, self.prep.length
        if not final:  # a beat waits until every beat within its window is settled (a premature next beat
            new = new[new - pre + length <= limit]  # cuts the part of the window that is the beat's own)
        if new.size == 0:
            return self._empty()
        r_in = np.round(new * (self.fs / self.rate)).astype(np.int64)
        if not final:  # and for the raw stretch the quality gate judges
            ready = r_in + self._post_in <= self._n_in
            new, r_in = new[ready], r_in[ready]
            if new.size == 0:
                return self._empty()
        following = peaks[np.minimum(np.searchsorted(peaks, new, side="right"), peaks.size - 1)]
        gap = next_gaps(new, np.where(following > new, following, np.inf), self.prep)
        stretch = quality.stretches(self._raw, r_in + self._post_in, self._seg, self._raw0)
        reason, activity = quality.judge(stretch, self.fs, self._activity)
        self._activity = np.r_[self._activity, activity][-(quality.FLAT_HISTORY - 1) :]
        usable = reason == "ok"
        rr = rr_between_usable(r_in, usable, self.fs, self._last_beat_in, self._last_usable)
        self._last_beat, self._last_beat_in, self._last_usable = int(new[-1]), int(r_in[-1]), bool(usable[-1])
        start = new - pre
        ok = (start >= self._f0) & (start + length <= n_f)
        idx = (start[ok] - self._f0)[:, None] + np.arange(length)[None, :]
        beats = normalise_beats(self._f[idx], self.prep.eps)
        return StreamBeats(beats, r_in[ok], rr[ok], usable[ok], reason[ok], gap[ok], self._n_in - r_in[ok])

    def _trim(self) -> None:
        """Drop filtered signal older than the lead-in before the last beat, or before MAX_GAP_S ago when
        the beats stopped (lead off, asystole), kept on a block boundary."""
        n_f = self._f0 + self._f.size
        anchor = max(self._last_beat, n_f - int(MAX_GAP_S * self.rate))
        keep_from = anchor - self.prep.pre - self._lead_in
        cut = (keep_from // self._block) * self._block - self._f0
        if cut > 0:
            self._f, self._f0 = self._f[cut:], self._f0 + cut
        raw_cut = int(self._f0 * self.fs / self.rate) - self._seg - 1 - self._raw0  # a beat's stretch starts at most
        if raw_cut > 0:  # one stretch before its R peak, which is no earlier than the filtered signal kept
            self._raw, self._raw0 = self._raw[raw_cut:], self._raw0 + raw_cut

    def _empty(self) -> StreamBeats:
        length = self.prep.length
        return StreamBeats(np.zeros((0, length), np.float32), np.zeros(0, np.int64), np.zeros(0),
                           np.zeros(0, bool), np.zeros(0, "<U7"), np.zeros(0, np.int64), np.zeros(0, np.int64))

    # ------------------------------------------------------------------ public
    def push(self, samples: object) -> StreamBeats:
        """Take the next block of raw samples (1-D, finite, any length) and return the beats it settles."""
        if self._closed:
            raise InputError("stream: expected more samples before flush(), received a push after flush()")
        x = as_block(samples)
        self._raw = np.concatenate((self._raw, x))
        out = self._resample(x, final=False)
        self._n_in += x.size
        self._filter(out, final=False)
        settled = self._settled(final=False)
        self._trim()
        return settled

    def flush(self) -> StreamBeats:
        """End of the stream: filter the tail with the batch path's end padding and report every beat left."""
        if self._closed:
            return self._empty()
        self._closed = True
        out = self._resample(np.zeros(0), final=True)
        self._filter(out, final=True)
        return self._settled(final=True)


def as_block(samples: object, gaps: bool = False) -> np.ndarray:
    """A block of raw samples as float64 [n]; InputError (and no state change) for anything else. With
    ``gaps``, NaN/Inf samples are kept: the caller splits the stream there (``Monitor``)."""
    try:
        x = np.asarray(samples)
    except (TypeError, ValueError) as e:
        raise InputError(f"samples: expected a 1-D block of numbers, received {type(samples).__name__} ({e})") from None
    if x.dtype.kind not in "iuf":
        raise InputError(f"samples: expected real numbers (int or float), received dtype {x.dtype}")
    if x.ndim == 0:
        x = x.reshape(1)
    if x.ndim != 1:
        raise InputError(f"samples: expected a 1-D block of one lead, received shape {x.shape}")
    x = x.astype(np.float64)
    if not gaps and not np.isfinite(x).all():
        raise InputError(f"samples: expected finite values, received {int((~np.isfinite(x)).sum())} NaN/Inf "
                         f"in a block of {x.size}; the block was dropped, the stream goes on")
    return x
