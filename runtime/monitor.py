"""A wearable's view: raw samples in, one event per beat out, scored as ``Model.analyze`` scores them.

The monitor is ``BeatStream`` (the batch beat cutting, redone incrementally) followed by the scoring
``Model.analyze`` uses (``wearer.score_batch``), one onnxruntime call per graph for the beats each push
settles. Over a whole recording its events equal ``analyze``'s. With ``calibrate_seconds`` and no profile,
it enrols the wearer on the beats of the stream's first seconds (as ``Model.calibrate(signal, fs,
seconds)`` selects them), then reports those beats and every later one against that profile.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import pacing, validate, wearer
from .errors import InputError
from .gaps import finite_pieces
from .preprocess import CUT_FIELDS
from .stream import BeatStream, StreamBeats, as_block


@dataclass(frozen=True)
class BeatEvent:
    """One beat, as soon as the stream has settled it."""

    r_peak: int  # sample index in the stream (its own rate)
    score: float
    flag: bool
    z: np.ndarray  # latent [latent]
    rr: float  # seconds since the previous beat (NaN for the first, and next to an unusable beat)
    latency: float  # seconds of signal received after the R peak when the beat was reported
    usable: bool  # False: the signal around it is noise, flat, clipped or mains (not scored: score NaN)
    reason: str  # "ok", or why the beat is not usable
    label: str = "Q"  # AAMI class (N, S, V; Q unusable or without a profile): see ecgae.runtime.beatclass
    template: int = -1  # the template it joined, as in Beats.template
    paced: bool = False  # a pacemaker spike came just before it (ecgae.runtime.pacing)

    def to_dict(self, fs: float) -> dict:
        """JSON-ready fields (NaN RR as null)."""
        return {"r_peak": self.r_peak, "time_s": round(self.r_peak / fs, 6),
                "score": None if np.isnan(self.score) else self.score,
                "flag": self.flag, "rr": None if np.isnan(self.rr) else self.rr,
                "z": [float(v) for v in self.z], "latency_s": round(self.latency, 4), "usable": self.usable,
                "reason": self.reason, "label": self.label, "template": self.template, "paced": self.paced}


class Monitor:
    """``push(samples)`` any number of raw samples, get the beats they complete; ``flush()`` at the end."""

    def __init__(self, model, fs: float, profile: wearer.WearerProfile | None = None,
                 calibrate_seconds: float | None = None):
        self.fs = validate.sample_rate(fs)
        if profile is not None and calibrate_seconds is not None:
            raise InputError("calibrate_seconds: expected None with a profile (the wearer is enrolled already), "
                             f"received {calibrate_seconds!r}")
        if calibrate_seconds is not None and not validate.finite_real(calibrate_seconds, "calibrate_seconds") > 0:
            raise InputError(f"calibrate_seconds: expected a duration > 0, received {calibrate_seconds!r}")
        if profile is not None:
            profile.check_bundle(wearer.model_graphs(model), model.input_length, model.latent_dim)
        self.model, self.profile = model, profile
        self._stream: BeatStream | None = None  # the current piece's; None before the first sample and in a gap
        self._received = 0  # samples pushed, gaps included
        self._offset = 0  # stream index of the current piece's first sample: a gap starts a new piece
        self._in_gap = False
        self.gaps: list[list[int]] = []  # [start, stop) of each run of NaN/Inf samples seen, as Beats.gaps
        self._enrol_until = None if calibrate_seconds is None else int(round(calibrate_seconds * self.fs))
        self._pending: list[StreamBeats] = []
        self._rr_history = np.zeros(0)
        self._book = None  # the recording's templates, carried from push to push as analyze carries them
        self._despiker: pacing.Despiker | None = None  # the current piece's (pacemaker spikes out first)
        self._spikes = np.zeros(0, np.int64)  # pacemaker spikes (stream indices) that may still pace a beat to come

    @property
    def enrolling(self) -> bool:
        """True while the monitor collects the wearer's baseline (no events yet)."""
        return self.profile is None and self._enrol_until is not None

    def push(self, samples: object) -> list[BeatEvent]:
        """Events of the beats this block settles (none while enrolling). A bad block raises InputError and
        changes nothing: the next good block carries on. NaN/Inf samples are a gap: the beats before it are
        settled as at the end of a recording, and the signal after it starts a piece of its own, as
        ``Model.analyze`` cuts a recording at its gaps."""
        x = as_block(samples, gaps=True)
        events: list[BeatEvent] = []
        pieces = finite_pieces(x)
        ends = np.r_[0, pieces[:, 1]]  # a gap may lie before each piece and after the last one
        for (start, stop), before in zip(pieces, ends):
            if start > before:
                events += self._gap(self._received + before)
            events += self._piece(x[start:stop], self._received + start)
        if ends[-1] < x.size:
            events += self._gap(self._received + ends[-1])
        self._received += x.size
        return events

    def _gap(self, at: int) -> list[BeatEvent]:
        """NaN/Inf from stream index ``at``: the piece before it ends here, its remaining beats are settled."""
        if self._in_gap:
            return []
        self.gaps.append([at, at])
        self._in_gap = True
        if self._stream is None:
            return []
        events = self._end_piece(final=False)
        self._stream = None
        return events

    def _piece(self, x: np.ndarray, at: int) -> list[BeatEvent]:
        """Finite samples ``x`` from stream index ``at``; the first after a gap start a new piece."""
        if self._in_gap:
            self.gaps[-1][1] = at
            self._in_gap = False
        if self._stream is None:
            self._stream, self._offset = BeatStream(self.model.preprocessing, self.fs), at
            self._despiker = pacing.Despiker(self.fs)
        return self._shifted(self._stream.push(self._despiker.push(x)), final=False)

    def _end_piece(self, final: bool) -> list[BeatEvent]:
        """The current piece's last samples and beats, as at the end of a recording."""
        tail = self._despiker.push(np.zeros(0), final=True)
        events = self._shifted(self._stream.push(tail), final=False) if tail.size else []
        return events + self._shifted(self._stream.flush(), final=final)

    def flush(self) -> list[BeatEvent]:
        """End of the stream: the remaining beats (and, when still enrolling, the enrolment on what came)."""
        if self._in_gap:
            self.gaps[-1][1] = self._received
            self._in_gap = False
        if self._stream is None:  # no piece open: nothing to settle but a pending enrolment
            return self._shifted(BeatStream(self.model.preprocessing, self.fs).flush(), final=True)
        return self._end_piece(final=True)

    def _shifted(self, got: StreamBeats, final: bool) -> list[BeatEvent]:
        """Events of a piece's settled beats, their R peaks as stream indices."""
        if self._despiker is not None:
            self._spikes = np.r_[self._spikes, np.array(self._despiker.spikes, dtype=np.int64) + self._offset]
            self._despiker.spikes = []
        if self._offset:
            got = StreamBeats(*(got.r_peak + self._offset if k == "r_peak" else getattr(got, k)
                                for k in (*CUT_FIELDS, "latency")))
        return self._events(got, final)

    def _events(self, got: StreamBeats, final: bool) -> list[BeatEvent]:
        if self.enrolling:
            self._pending.append(got)
            done = final or (got.r_peak.size and got.r_peak[-1] >= self._enrol_until)
            if not done:
                return []
            got = _concat(self._pending)
            self._pending = []
            self.profile = wearer.calibrate_cut(self.model, got.take(got.r_peak < self._enrol_until))
        if got.r_peak.size == 0:
            return []
        if self.profile is not None and self._book is None:
            self._book = wearer.book(self.model, self.profile)
        paced = pacing.paced(got.r_peak, self._spikes, self.fs)
        # beats settle in order: a spike further back than PACED_S from the last one reported paces none to come
        self._spikes = self._spikes[self._spikes >= got.r_peak[-1] - pacing.PACED_S * self.fs]
        s = wearer.score_batch(self.model, got.beats, got.rr, self.profile, self._rr_history, got.usable,
                               got.next_gap, self._book, paced)
        self._rr_history = np.r_[self._rr_history, got.rr][-wearer.RR_HISTORY :]
        lag = got.latency / self.fs
        return [BeatEvent(int(got.r_peak[i]), float(s.score[i]), bool(s.flag[i]), s.z[i], float(got.rr[i]),
                          float(lag[i]), bool(got.usable[i]), str(got.reason[i]), str(s.label[i]), int(s.template[i]),
                          bool(paced[i]))
                for i in range(len(got.r_peak))]


def _concat(parts: list[StreamBeats]) -> StreamBeats:
    return StreamBeats(*(np.concatenate([getattr(p, k) for p in parts]) for k in (*CUT_FIELDS, "latency")))
