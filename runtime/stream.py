"""Beats from a stream of raw samples, equal to ``preprocess.cut_beats`` on the whole recording.

Each step of the batch path is redone incrementally with exactly its arithmetic: linear resampling to
the model's rate, the zero-phase FIR (the same taps, edge-padded at the stream's start and, on
``flush``, at its end), and the detector, as ``tracker.PeakTracker``, which carries every stage's state
between pushes and reports each R peak once nothing later can change it. A beat is reported when

- its window is filtered, and the next R peak is known or cannot fall inside the window (the tracker's
  frontier lies past the window's end): a premature next beat cuts the part of the window that is the
  beat's own;
- the raw stretch the quality gate judges (ending with the beat's window) has arrived; the gate compares
  it with the beats before it only (their activity, the levels they held), so its verdict needs nothing
  later either.

Samples are filtered and tracked once at least HOP_S of them have come (every push of that size or
more), which delays reports a little and changes none. State is bounded: the raw tail the filter and the
quality gate need, the filtered signal from the first beat not yet reported, the tracker's own, and the
quality gate's history (``quality.History``: the activity and longest holds of the last few beats, two levels
and two counts).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from . import quality
from .errors import InputError
from .preprocess import (
    CUT_FIELDS,
    CutBeats,
    Preprocessing,
    check_length,
    check_not_flat,
    checked_signal,
    convolve_valid,
    cut_beats,
    next_gaps,
    no_window_error,
    normalise_beats,
    rr_between_usable,
    window_end,
)
from .tracker import PeakTracker

HOP_S = 0.1  # samples are filtered and tracked at least this many at a time: a 1-sample push costs little
# more than an append, and a report comes at most this much later

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
        self._hop = max(1, int(HOP_S * self.rate))
        self._n_in = 0  # input samples received
        self._last_in = np.zeros(0)  # the last input sample (resampling interpolates from it)
        self._n_x = 0  # model-rate samples produced
        self._x_new: list[np.ndarray] = []  # model-rate samples not yet filtered (fewer than a hop)
        self._x_tail = np.zeros(0)  # model-rate samples the filter still needs (its left context)
        self._f = np.zeros(0)  # filtered signal from absolute index self._f0
        self._f0 = 0
        self._tracker = PeakTracker(self.rate)
        self._peaks = np.zeros(0, np.int64)  # R peaks (model rate) final but not yet reported
        self._last_beat_in = np.nan  # input index of the last beat reported, for RR
        self._last_usable = False  # its quality verdict: RR counts only between usable beats
        self._post_in = window_end(prep, self.fs)
        self._seg = quality.segment_samples(self.fs)
        self._raw = np.zeros(0)  # raw input from index self._raw0: the stretches the quality gate judges
        self._raw0 = 0
        self._history = quality.History()  # what the gate carries from the beats judged so far
        self._closed = False
        self.peaks_found = 0  # R peaks reported so far, windowable or not
        self._amplitude, self._low, self._high = 0.0, np.inf, -np.inf  # max |x| at the model's rate, and the
        # filtered signal's range: what cut_beats's flat-signal check looks at

    # ------------------------------------------------------------------ resample and filter
    def _resample(self, samples: np.ndarray, final: bool) -> np.ndarray:
        """New model-rate samples: np.interp at t_j = j * fs / rate, as preprocess.resample computes them."""
        out = self._interpolate(samples, final)
        self._n_x += out.size
        if out.size:
            self._amplitude = max(self._amplitude, float(np.abs(out).max()))
        return out

    def _interpolate(self, samples: np.ndarray, final: bool) -> np.ndarray:
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

    def _filter(self, x: np.ndarray, final: bool) -> np.ndarray:
        """Append (and return) the filtered samples that ``x`` (model-rate samples not filtered yet) completes."""
        h, half = self.prep.taps, self._half
        if self._f0 + self._f.size == 0 and self._x_tail.size == 0 and x.size:
            self._x_tail = np.full(half, x[0])  # the batch filter's edge padding at the start
        xp = np.concatenate((self._x_tail, x))
        if final and self._n_x:
            xp = np.concatenate((xp, np.full(half, xp[-1])))  # and at the end
        new = convolve_valid(xp, h)
        self._x_tail = xp[xp.size - (2 * half) :] if xp.size >= 2 * half else xp
        self._f = np.concatenate((self._f, new))
        if new.size:
            self._low, self._high = min(self._low, float(new.min())), max(self._high, float(new.max()))
        return new

    # ------------------------------------------------------------------ detection
    def _settled(self, final: bool) -> StreamBeats:
        """The beats whose window, next R peak and raw stretch are all known."""
        n_f = self._f0 + self._f.size  # filtered samples available (absolute)
        peaks = self._peaks
        if peaks.size == 0:
            return self._empty()
        pre, length = self.prep.pre, self.prep.length
        r_in = np.round(peaks * (self.fs / self.rate)).astype(np.int64)
        if final:
            ready = peaks.size
        else:
            first = int(peaks[0])  # most pushes settle nothing: decide that on the first beat alone
            if first - pre + length > n_f or int(r_in[0]) + self._post_in > self._n_in or (
                    peaks.size == 1 and self._tracker.frontier < first - pre + length):
                return self._empty()
            next_known = np.ones(peaks.size, bool)
            next_known[-1] = self._tracker.frontier >= peaks[-1] - pre + length
            ok = next_known & (peaks - pre + length <= n_f) & (r_in + self._post_in <= self._n_in)
            ready = int(np.argmin(ok)) if not ok.all() else peaks.size  # the beats before the first not ready
        new, r_in, self._peaks = peaks[:ready], r_in[:ready], peaks[ready:]
        following = np.append(peaks[1:], np.inf)[:ready]  # the next R peak of each; inf: none within the window
        gap = next_gaps(new, following, self.prep)
        stretch = quality.stretches(self._raw, r_in + self._post_in, self._seg, self._raw0)
        reason, self._history = quality.judge(stretch, self.fs, self._history)
        usable = reason == "ok"
        rr = rr_between_usable(r_in, usable, self.fs, self._last_beat_in, self._last_usable)
        self._last_beat_in, self._last_usable = int(r_in[-1]), bool(usable[-1])
        start = new - pre
        ok = (start >= self._f0) & (start + length <= n_f)
        idx = (start[ok] - self._f0)[:, None] + np.arange(length)[None, :]
        beats = normalise_beats(self._f[idx], self.prep.eps)
        return StreamBeats(beats, r_in[ok], rr[ok], usable[ok], reason[ok], gap[ok], self._n_in - r_in[ok])

    def _trim(self) -> None:
        """Drop filtered signal before the window of the first beat not yet reported (or, with none, of the
        first the tracker may still report), and raw signal before its quality stretch."""
        first = min(self._tracker.frontier, int(self._peaks[0]) if self._peaks.size else self._tracker.frontier)
        cut = first - self.prep.pre - self._f0
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
        self._x_new.append(self._resample(x, final=False))
        self._n_in += x.size
        if self._n_x - self._f0 - self._f.size < self._hop + self._half:  # filtered lags by half the taps
            return self._empty()
        self._track(self._filter(np.concatenate(self._x_new), final=False), final=False)
        settled = self._settled(final=False)
        self._trim()
        return settled

    def flush(self) -> StreamBeats:
        """End of the stream: filter the tail with the batch path's end padding and report every beat left."""
        if self._closed:
            return self._empty()
        self._closed = True
        self._x_new.append(self._resample(np.zeros(0), final=True))
        self._track(self._filter(np.concatenate(self._x_new), final=True), final=True)
        return self._settled(final=True)

    def _track(self, filtered: np.ndarray, final: bool) -> None:
        self._x_new = []
        found = self._tracker.push(filtered)
        if final:
            found = np.concatenate((found, self._tracker.finish()))
        self._peaks = np.concatenate((self._peaks, found)).astype(np.int64)
        self.peaks_found += found.size


CHUNK_S = 300.0  # signal per push when a whole recording is cut through a stream: 5 minutes keep the
# per-push overheads at a few per cent, and its temporaries at a few MB


def cut_in_chunks(signal: object, fs: float, prep: Preprocessing, chunk_s: float = CHUNK_S) -> Iterator[CutBeats]:
    """``cut_beats(signal, fs, prep)``'s beats, a chunk of the recording at a time, through one ``BeatStream``:
    the same R peaks, windows (to the filter's rounding, 1e-15), quality verdicts and RR, and the same
    InputErrors (the flat and no-window ones after the last chunk), with memory bounded by the chunk,
    not the recording's length."""
    x = checked_signal(signal, prep)
    n_model = x.size if fs == prep.sample_rate else max(1, int(round(x.size * prep.sample_rate / fs)))
    check_length(n_model, prep)
    if prep.taps is None:  # no filter to stream: the batch path, in one piece
        yield cut_beats(x, fs, prep)
        return
    stream, found, step = BeatStream(prep, fs), 0, max(1, int(chunk_s * fs))
    for i in range(0, x.size + step, step):
        got = stream.push(x[i : i + step]) if i < x.size else stream.flush()
        found += got.r_peak.size
        yield CutBeats(*(getattr(got, k) for k in CUT_FIELDS))
    check_not_flat(stream._high - stream._low, stream._amplitude)
    if found == 0:
        raise no_window_error(n_model, stream.peaks_found)


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
