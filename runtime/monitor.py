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

from . import validate, wearer
from .errors import InputError
from .preprocess import CUT_FIELDS
from .stream import BeatStream, StreamBeats


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

    def to_dict(self, fs: float) -> dict:
        """JSON-ready fields (NaN RR as null)."""
        return {"r_peak": self.r_peak, "time_s": round(self.r_peak / fs, 6),
                "score": None if np.isnan(self.score) else self.score,
                "flag": self.flag, "rr": None if np.isnan(self.rr) else self.rr,
                "z": [float(v) for v in self.z], "latency_s": round(self.latency, 4), "usable": self.usable,
                "reason": self.reason}


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
        self._stream = BeatStream(model.preprocessing, self.fs)
        self._enrol_until = None if calibrate_seconds is None else int(round(calibrate_seconds * self.fs))
        self._pending: list[StreamBeats] = []
        self._rr_history = np.zeros(0)

    @property
    def enrolling(self) -> bool:
        """True while the monitor collects the wearer's baseline (no events yet)."""
        return self.profile is None and self._enrol_until is not None

    def push(self, samples: object) -> list[BeatEvent]:
        """Events of the beats this block settles (none while enrolling). A bad block raises InputError and
        changes nothing: the next good block carries on."""
        return self._events(self._stream.push(samples), final=False)

    def flush(self) -> list[BeatEvent]:
        """End of the stream: the remaining beats (and, when still enrolling, the enrolment on what came)."""
        return self._events(self._stream.flush(), final=True)

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
        scores, z, flags, _ = wearer.score_batch(self.model, got.beats, got.rr, self.profile, self._rr_history,
                                                 got.usable, got.next_gap)
        self._rr_history = np.r_[self._rr_history, got.rr][-wearer.RR_HISTORY :]
        lag = got.latency / self.fs
        return [BeatEvent(int(r), float(s), bool(f), z[i], float(rr), float(lag[i]), bool(u), str(why))
                for i, (r, s, f, rr, u, why) in enumerate(zip(got.r_peak, scores, flags, got.rr, got.usable,
                                                             got.reason))]


def _concat(parts: list[StreamBeats]) -> StreamBeats:
    return StreamBeats(*(np.concatenate([getattr(p, k) for p in parts]) for k in (*CUT_FIELDS, "latency")))
