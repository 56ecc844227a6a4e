"""Beat classes the way Holter and bedside analysers find them: templates of the wearer's beat shapes.

A one-dimensional anomaly score cannot tell an abnormal group of beats from a second normal shape, and when
ectopy is frequent it widens every robust spread the threshold rests on. Analysers do not try: they group
beats by morphology into **templates**, take the **dominant** template as the wearer's normal, and classify
every other template against it with physiology. Here:

- a beat's *core* is its band-passed, z-scored window from CORE_S[0] before to CORE_S[1] after its R peak
  (the QRS and the start of the ST segment, where ventricular and normal beats differ), compared by the
  correlation of z-scored samples, best over +-SHIFT_S of alignment jitter;
- the enrolment's usable beats are grouped in order (leader clustering: a beat joins the most similar
  template when the correlation reaches JOIN, else it starts one); each template is then the median of its
  members, and the dominant one is the narrowest of the largest, or of those alike in width the one whose beats
  end the longest intervals (``dominant``);
- a template has the **normal** morphology when it matches the dominant one, its core cut afresh where it
  best matches the dominant's within +-WIDE_SHIFT_S (``realigned``: the same beat with its fiducial on
  another lobe, R and R' in a bundle branch block, is the same shape), and its QRS, measured on its own
  core, is not wider by WIDER; the realigning shift is the template's ``offset``, and RR intervals are
  timed between the points where the dominant's fiducial sits on each beat (``aligned_rr``), so a fiducial
  that alternates between two lobes of one QRS does not make every other beat look premature;
- after the enrolment a beat that matches no template starts a new one, classified like the others, so a
  morphology first seen later is found; templates are not averaged afterwards, so the classes of a
  recording do not depend on how it is cut into pushes;
- each beat's class follows from its template and its timing, per AAMI (ANSI/AAMI EC57): ``N`` normal
  morphology on time; ``S`` (supraventricular ectopic) the normal morphology, premature after a normal
  beat; ``V`` (ventricular ectopic) any other morphology, except a beat of a template whose beats since
  the enrolment, of those with a known RR, came on time (within PREMATURE_MIN of the expected normal-to-normal
  interval) more often than not, the beat itself on time or of unknown RR: ventricular ectopy comes early,
  or late as an escape, so a shape that keeps arriving when the sinus beat is due is the conducted beat seen
  differently (bent by noise; a lead whose shape drifted over hours, as a bedside monitor's does), and it is
  ``N``; ``Q`` a beat in unusable signal (not classified). Prematurity is the beat's RR over the median of
  the 8 intervals before it between normal beats (``nn_prematurity``), premature below
  exp(-max(PREMATURE_MIN, INLIER_Z x the robust SD of its log over the enrolment's normal-to-normal
  intervals)): early by more than the wearer's own sinus variation, and by at least PREMATURE_MIN (sinus
  arrhythmia changes consecutive intervals by a few per cent).

Pre-cut beats (a bundle without a sample rate or R-peak placement) have no timing and no R peak to align on:
the core is the whole window, the dominant template the largest, and each beat is ``N`` or ``V`` by its own
correlation with the dominant core against ``normal_join``, learnt from the enrolment (a whole beat varies
far more than an R-aligned QRS, so JOIN would call many normal ones abnormal).

numpy only; beats arrive in time order, and ``Book.classify`` on a recording's beats in one call or in
consecutive batches gives the same classes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

from .errors import InputError
from .robust import INLIER_Z, nan_median_rows, robust_sd, trailing_windows

CORE_S = (0.12, 0.2)  # seconds before and after the R peak that the core spans
SHIFT_S = 0.02  # alignment jitter a beat may have against its template (the fiducial moves a few samples)
WIDE_SHIFT_S = 0.1  # template against the dominant: the fiducial may sit on another lobe (R and R')
JOIN = 0.9  # correlation at which two cores are the same shape (the no-model rule's 0.90)
SEPARATED = 2 * math.sqrt(3)  # Ashman's D of the two halves Otsu cuts a uniform spread into, the flattest
# single group: a peaked one is cut into closer halves (a normal spread: D = 2.6; samples of a uniform one
# fall either side of the line); pre-cut enrolments holding abnormal beats measured 3.8-4.7 (ECG5000)
WIDER = 1.25  # a QRS this much wider (or narrower) than the dominant one is not conducted the dominant way
PREMATURE_MIN = 0.1  # log prematurity below -0.1 (about 10 % early) at the least
LABELS = ("N", "S", "V", "F", "Q")
DOMINANT_SHARE = 0.5  # templates this large against the largest may be the normal one
NN_HISTORY = 8  # normal-to-normal intervals whose median is a beat's expected RR
NN_MIN = 3  # fewer known give no expectation
MAX_TEMPLATES = 64  # a recording with more shapes than this is noise, not rhythm: further beats join the nearest


@dataclass(frozen=True)
class Templates:
    """The wearer's beat shapes, learnt at enrolment: part of the wearer profile."""

    core: np.ndarray  # [K, W] z-scored (zero mean, unit norm) median cores
    count: np.ndarray  # [K] enrolment beats in each
    normal: np.ndarray  # [K] bool: the dominant morphology (the dominant template itself included)
    width: np.ndarray  # [K] QRS width in core samples (10-90 % of the squared slope's energy)
    premature_log: float  # log prematurity below which a beat is premature
    normal_join: float  # correlation with the dominant core at which a shape is the normal one
    offset: np.ndarray  # [K] samples from a beat's fiducial to where the dominant's fiducial sits on the same
    # beat: non-zero only for a normal template whose fiducial lies on another lobe (``realigned``)
    dominant: int  # the wearer's normal template (``dominant``)

    def to_dict(self) -> dict:
        return {"core": self.core.tolist(), "count": self.count.tolist(), "normal": self.normal.tolist(),
                "width": self.width.tolist(), "premature_log": self.premature_log, "normal_join": self.normal_join,
                "offset": self.offset.tolist(), "dominant": self.dominant}

    @classmethod
    def from_dict(cls, d: dict) -> Templates:
        t = cls(np.asarray(d["core"], dtype=np.float64), np.asarray(d["count"], dtype=np.int64),
                np.asarray(d["normal"], dtype=bool), np.asarray(d["width"], dtype=np.float64),
                float(d["premature_log"]), float(d.get("normal_join", JOIN)), np.asarray(d["offset"], dtype=np.float64),
                int(d["dominant"]))
        k = len(t.core)
        if (t.core.ndim != 2 or k == 0 or any(len(a) != k for a in (t.count, t.normal, t.width, t.offset))
                or not np.isfinite(t.offset).all() or not 0 <= t.dominant < k
                or not np.isfinite(t.core).all() or not (t.count > 0).all() or not math.isfinite(t.premature_log)
                or not -1.0 <= t.normal_join <= 1.0):
            raise InputError(f"templates: expected K >= 1 finite cores with a count, class, width and finite offset "
                             f"each, a dominant one among them, and a normal correlation in [-1, 1], received core "
                             f"{t.core.shape}, count {t.count.shape}, offset {t.offset.shape}, dominant {t.dominant}, "
                             f"normal correlation {t.normal_join}")
        return t


class Geometry:
    """Where the core lies in a model's beat window, in samples."""

    def __init__(self, length: int, pre: int | None, rate: float | None):
        self.aligned = pre is not None and rate is not None
        self.rate = rate
        if not self.aligned:  # pre-cut beats: the whole window, no alignment to search
            self.start, self.width, self.shift, self.wide = 0, length, 0, 0
            return
        before, after = (max(1, round(s * rate)) for s in CORE_S)
        self.shift, self.wide = max(1, round(SHIFT_S * rate)), max(1, round(WIDE_SHIFT_S * rate))
        self.start = max(0, pre - before - self.shift)
        stop = min(length, pre + after + self.shift)
        self.width = stop - self.start - 2 * self.shift

    def cores(self, beats: np.ndarray, shift: int = 0) -> np.ndarray:
        """[N, W] z-scored cores of beats [N, L], moved by ``shift`` samples."""
        a = self.start + self.shift + shift
        return _zscore(beats[:, a : a + self.width].astype(np.float64))


def _zscore(rows: np.ndarray) -> np.ndarray:
    rows = rows - rows.mean(axis=1, keepdims=True)
    return rows / np.maximum(np.linalg.norm(rows, axis=1, keepdims=True), 1e-12)


def similarity(geom: Geometry, beats: np.ndarray, cores: np.ndarray, shift: int) -> np.ndarray:
    """[N, K] correlation of each beat with each core, best over +-``shift`` samples of alignment."""
    best = np.full((len(beats), len(cores)), -np.inf)
    for s in range(-shift, shift + 1):
        np.maximum(best, geom.cores(beats, s) @ cores.T, out=best)
    return best


def realigned(geom: Geometry, windows: np.ndarray, core: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """([N] best correlation with ``core`` [W], [N] the shift in samples where it is best) of windows [N, L],
    their core cut afresh from the window at every shift within +-``geom.wide`` samples (as far as the window
    reaches): a beat whose fiducial sat on another lobe is compared whole, not by the part of it that overlaps,
    and the shift says where the fiducial of ``core``'s beats would sit on it."""
    base = geom.start + geom.shift
    shifts = np.arange(max(-geom.wide, -base), min(geom.wide, windows.shape[1] - geom.width - base) + 1)
    corr = np.array([geom.cores(windows, s) @ core for s in shifts])
    best = corr.argmax(axis=0)
    return corr[best, np.arange(len(windows))], shifts[best].astype(np.float64)


def widths(cores: np.ndarray) -> np.ndarray:
    """[K] QRS width of cores [K, W] in samples: the span holding the middle 80 % of the squared slope's energy."""
    e = np.cumsum(np.square(np.diff(cores, axis=1)), axis=1)
    e /= np.maximum(e[:, -1:], 1e-300)
    return ((e > 0.9).argmax(axis=1) - (e > 0.1).argmax(axis=1)).astype(np.float64)


def learn(geom: Geometry, beats: np.ndarray, rr: np.ndarray | None) -> Templates:
    """Templates of the enrolment's usable beats [N, L] in time order (see the module docstring); ``rr``:
    their RR in seconds (NaN when unknown; None for pre-cut beats), whose prematurity spread over the beats
    of normal morphology sets how early a beat must be to be premature."""
    rr = None if rr is None else np.asarray(rr, dtype=np.float64)
    members: list[list[int]] = []
    cores: list[np.ndarray] = []
    for i in range(len(beats)):
        if cores:
            sim = similarity(geom, beats[i : i + 1], np.array(cores), geom.shift)[0]
            k = int(np.argmax(sim))
            if sim[k] >= JOIN or len(cores) >= MAX_TEMPLATES:
                members[k].append(i)
                continue
        cores.append(geom.cores(beats[i : i + 1])[0])
        members.append([i])
    core = _zscore(np.array([np.median(geom.cores(beats[m]), axis=0) for m in members]))
    count = np.array([len(m) for m in members])
    ends = None if rr is None else np.array([_median_known(rr[m]) for m in members])
    t = _classified(geom, core, count, -PREMATURE_MIN, beats, np.array([np.median(beats[m], axis=0) for m in members]),
                    ends)
    if rr is None:
        return t
    template = np.empty(len(beats), dtype=np.int64)
    for k, m in enumerate(members):
        template[m] = k
    normal = t.normal[template]
    prem, _, _ = nn_prematurity(aligned_rr(rr, t.offset[template], geom.rate), normal)
    nn = normal & np.r_[False, normal[:-1]]  # sinus variability: intervals between two normal beats
    with np.errstate(divide="ignore", invalid="ignore"):
        log_prem = np.log(prem[nn])
    log_prem = log_prem[np.isfinite(log_prem)]
    spread = robust_sd(log_prem, float(np.median(log_prem))) if log_prem.size else 0.0
    return replace(t, premature_log=-max(PREMATURE_MIN, INLIER_Z * spread))


def _median_known(v: np.ndarray) -> float:
    """Median of the finite values of ``v``; -inf when there are none (no interval known: never the longest)."""
    v = v[np.isfinite(v)]
    return float(np.median(v)) if v.size else -np.inf


def aligned_rr(rr: np.ndarray, offset: np.ndarray, rate: float, before: float = 0.0) -> np.ndarray:
    """[N] RR intervals (seconds) between the points where the dominant template's fiducial sits on each beat,
    from RR between the beats' own fiducials ``rr`` and each beat's template ``offset`` (samples at ``rate``;
    ``before``: the offset of the beat before the first): where the largest deflection alternates between two
    lobes of one QRS, the raw intervals alternate short and long, and a short one would read as premature."""
    return rr + (offset - np.r_[before, offset[:-1]]) / rate


def nn_prematurity(rr: np.ndarray, normal: np.ndarray, history: np.ndarray | None = None, last_normal: bool = False,
                   ) -> tuple[np.ndarray, np.ndarray, bool]:
    """(prematurity [N], NN history after these beats, whether the last beat was normal): each beat's RR over
    the median of the NN_HISTORY intervals between two beats of normal morphology before it (NaN with fewer
    than NN_MIN known), as heart-rate analysis takes normal-to-normal intervals: in bigeminy the expected
    interval is the sinus one, not a mix of coupling intervals and pauses. ``history`` and ``last_normal``
    carry the state of earlier batches, so batches give what one call gives."""
    past = np.zeros(0) if history is None else np.asarray(history, dtype=np.float64)
    nn = normal & np.r_[last_normal, normal[:-1]] & np.isfinite(rr)
    seq = np.r_[past, rr[nn]]
    before = np.cumsum(np.r_[0, nn[:-1]]) + past.size  # NN intervals known before each beat
    windows = trailing_windows(seq, before, NN_HISTORY)  # the NN_HISTORY before each
    known = np.isfinite(windows).sum(axis=1) >= NN_MIN
    expected = np.where(known, nan_median_rows(windows), np.nan)
    with np.errstate(invalid="ignore"):
        prem = rr / expected
    return prem, seq[-NN_HISTORY:], bool(normal[-1]) if normal.size else last_normal


def _classified(geom: Geometry, core: np.ndarray, count: np.ndarray, premature_log: float, beats: np.ndarray,
                windows: np.ndarray, ends: np.ndarray | None) -> Templates:
    """Templates with each one's class against the dominant, learnt from the enrolment's ``beats``
    (``windows``: each template's median beat; ``ends``: the median RR its beats end, None for pre-cut beats):
    a whole pre-cut beat varies more than an R-aligned QRS, so for those the enrolment says how much
    (``normal_join``)."""
    width = widths(core)
    dom = dominant(count, width, geom.aligned, ends)
    join = JOIN if geom.aligned else normal_join(similarity(geom, beats, core[dom][None], geom.shift)[:, 0])
    normal, offset = _normal_shape(geom, windows, width, core[dom], width[dom], join)
    normal[dom], offset[dom] = True, 0.0
    return Templates(core, count, normal, width, premature_log, join, offset, dom)


def _normal_shape(geom: Geometry, windows: np.ndarray, width: np.ndarray, dominant_core: np.ndarray,
                  dominant_width: float, join: float) -> tuple[np.ndarray, np.ndarray]:
    """([N] bool, [N] offset): beats (or templates' median beats) [N, L] of QRS ``width`` [N] (on their own
    core, which holds the whole QRS) that have the dominant morphology: their core, realigned on the
    dominant's, correlates with it at ``join``, and the QRS is not wider or narrower by WIDER (an R-aligned
    beat; a pre-cut one has only its shape); and for those, the realigning shift (0 for the others, whose
    fiducial has no counterpart on the dominant beat)."""
    corr, shift = realigned(geom, windows, dominant_core)
    normal = (corr >= join) & (~_conducted_otherwise(width, dominant_width) | (not geom.aligned))
    return normal, np.where(normal, shift, 0.0)


def normal_join(sim: np.ndarray) -> float:
    """The correlation with the dominant core at which a pre-cut beat has the normal shape, from the enrolment's
    beats' correlations ``sim``. Otsu's split (the largest between-group variance) divides them in two; where
    the two sides lie further apart than the halves of a uniform spread (Ashman's D > SEPARATED), they are
    two groups and the split is the answer. Otherwise the enrolment is one group, every beat of it normal: the
    lowest correlation it holds (JOIN at most)."""
    v = np.sort(sim[np.isfinite(sim)])
    if v.size < 4:
        return JOIN
    i = np.arange(1, v.size)
    c, c2 = np.cumsum(v), np.cumsum(v * v)
    m_lo, m_hi = c[:-1] / i, (c[-1] - c[:-1]) / (v.size - i)
    k = int(np.argmax(i * (v.size - i) * (m_hi - m_lo) ** 2))  # the low side: v[: k + 1]
    var_lo = max(c2[k] / (k + 1) - m_lo[k] ** 2, 0.0)
    var_hi = max((c2[-1] - c2[k]) / (v.size - k - 1) - m_hi[k] ** 2, 0.0)
    d = math.sqrt(2) * (m_hi[k] - m_lo[k]) / math.sqrt(max(var_lo + var_hi, 1e-12))
    return float((v[k] + v[k + 1]) / 2) if d > SEPARATED else min(JOIN, float(v[0]))


def dominant(count: np.ndarray, width: np.ndarray, aligned: bool = True, ends: np.ndarray | None = None) -> int:
    """The wearer's normal template: of those holding at least DOMINANT_SHARE of the largest one's beats, the
    one with the narrowest QRS (normal conduction is the fastest). With frequent ectopy a ventricular template
    can be as large as the normal one; it is never narrower by WIDER. Where the large ones are alike in width
    (a bundle branch block beside ventricular beats in bigeminy), timing decides: ectopic beats come early, so
    the normal template is the one whose beats end the longest intervals (``ends``: each template's median
    RR; without them, the narrowest). Pre-cut beats (not ``aligned`` on their R peak) have no QRS width to
    compare, only the whole beat: the largest template."""
    if not aligned:
        return int(np.argmax(count))
    big = np.flatnonzero(count >= DOMINANT_SHARE * count.max())
    narrowest = int(big[np.argmin(width[big])])
    if ends is None:
        return narrowest
    alike = big[~_conducted_otherwise(width[big], width[narrowest]) & (big != narrowest)]
    alike = np.r_[narrowest, alike]  # first: ties (or no interval known) keep the narrowest
    return int(alike[np.argmax(ends[alike])])


def _conducted_otherwise(width: np.ndarray, dominant: float) -> np.ndarray:
    """A QRS wider or narrower than the dominant one by WIDER: the beat took another path through the
    ventricles (a ventricular beat; in a bundle branch block also a narrower one)."""
    return np.abs(np.log(np.maximum(width, 1.0) / max(dominant, 1.0))) >= math.log(WIDER)


def _choose(sim: np.ndarray, normal: np.ndarray) -> np.ndarray:
    """[N] template of each beat from its similarities [N, K]: the most similar normal one when it reaches JOIN
    (a beat of the normal shape is normal, however well it also matches another), else the most similar one
    when it reaches JOIN, else -1 (a new shape)."""
    best = sim.argmax(axis=1)
    out = np.where(sim[np.arange(len(sim)), best] >= JOIN, best, -1)
    if normal.any():
        idx = np.flatnonzero(normal)
        near = idx[sim[:, idx].argmax(axis=1)]
        out = np.where(sim[np.arange(len(sim)), near] >= JOIN, near, out)
    return out


class Book:
    """The templates of one recording: the profile's, and the shapes found since (``classify`` adds them)."""

    def __init__(self, templates: Templates, geom: Geometry):
        if templates.core.shape[1] != geom.width:
            raise InputError(f"templates: expected cores of {geom.width} samples (this model's window), received "
                             f"{templates.core.shape[1]}")
        self.geom, self.base = geom, templates
        self.dominant = templates.dominant
        self.core, self.normal, self.width, self.offset = (templates.core, templates.normal, templates.width,
                                                           templates.offset)
        self.timing = np.zeros((len(templates.core), 2), dtype=np.int64)  # per template, beats since the enrolment
        # with a known RR, and of them those that came on time
        self._nn, self._last_normal = np.zeros(0), False  # the rhythm so far (``nn_prematurity``)
        self._last_offset = 0.0  # the offset of the last beat so far (``aligned_rr``)

    def classify(self, beats: np.ndarray, rr: np.ndarray | None, usable: np.ndarray,
                 ) -> tuple[np.ndarray, np.ndarray]:
        """(label [N] str, template [N] int, -1 for unusable beats) of beats [N, L] in time order, each after
        the beats of earlier calls; ``rr``: seconds since the previous beat (NaN when unknown; None for pre-cut
        beats)."""
        n = len(beats)
        template = np.full(n, -1, dtype=np.int64)
        rows = np.flatnonzero(usable)
        sim = similarity(self.geom, beats[rows], self.core, self.geom.shift)  # every usable beat gets a template
        if rows.size:
            chosen = _choose(sim, self.normal)
            template[rows] = chosen
            for i in rows[chosen < 0]:  # new shapes, in time order: a later beat of the same shape joins them
                template[i] = self._place(beats[i : i + 1])
        label = np.full(n, "Q", dtype="<U1")
        ok = template >= 0
        t = template[ok]
        early = on_time = timed = np.zeros(n, dtype=bool)
        if rr is not None:
            normal = ok & self.normal[np.maximum(template, 0)]
            after_normal = np.r_[self._last_normal, normal[:-1]]  # prematurity is judged from a normal beat:
            # the sinus beat after an interpolated or a compensated ventricular beat is not early
            offset = np.where(ok, self.offset[np.maximum(template, 0)], 0.0)
            rr = aligned_rr(np.asarray(rr, dtype=np.float64), offset, self.geom.rate, self._last_offset)
            self._last_offset = float(offset[-1]) if n else self._last_offset
            prem, self._nn, self._last_normal = nn_prematurity(rr, normal, self._nn, self._last_normal)
            with np.errstate(divide="ignore", invalid="ignore"):
                early = (np.log(prem) < self.base.premature_log) & after_normal
                on_time = np.abs(np.log(prem)) < PREMATURE_MIN  # within sinus variation
            timed = np.isfinite(prem)  # NaN: no RR (the beat before was unusable) or no rhythm yet
        seen = self._so_far(t, np.column_stack((timed, on_time))[ok])
        conducted = (on_time | ~timed)[ok] & (2 * seen[:, 1] > seen[:, 0])  # its shape's timed beats so far came
        # on time more often than not, and so did it, or its own time is unknown
        normal = self.normal[t]
        if not self.geom.aligned:  # pre-cut: each beat against the dominant, as the enrolment's split was made
            normal = sim[:, self.dominant] >= self.base.normal_join
        label[ok] = np.where(~normal & ~conducted, "V", np.where(early[ok], "S", "N"))
        return label, template

    def _so_far(self, t: np.ndarray, add: np.ndarray) -> np.ndarray:
        """[N, 2] ``timing`` of each beat's template once the beat (templates ``t`` [N], counting ``add`` [N, 2])
        has joined it, counting in time order (the same whatever the batches); ``timing`` keeps the totals."""
        counts = np.concatenate((self.timing, np.zeros((len(self.core) - len(self.timing), 2), dtype=np.int64)))
        self.timing = counts
        if t.size == 0:
            return np.zeros((0, 2), dtype=np.int64)
        order = np.argsort(t, kind="stable")
        step = add[order].astype(np.int64)
        total = np.cumsum(step, axis=0)
        starts = np.r_[0, np.flatnonzero(np.diff(t[order])) + 1]
        before = np.repeat(total[starts] - step[starts], np.diff(np.r_[starts, len(t)]), axis=0)  # earlier in group
        seen = np.empty((len(t), 2), dtype=np.int64)
        seen[order] = total - before
        seen += counts[t]
        np.add.at(counts, t, step)
        return seen

    def _place(self, beat: np.ndarray) -> int:
        """The template of a beat that matched none before this batch: one found earlier in it, or a new one."""
        base = len(self.base.core)
        if len(self.core) >= MAX_TEMPLATES:
            return int(np.argmax(similarity(self.geom, beat, self.core, self.geom.shift)[0]))
        if len(self.core) > base:
            k = int(_choose(similarity(self.geom, beat, self.core[base:], self.geom.shift), self.normal[base:])[0])
            if k >= 0:
                return base + k
        core = self.geom.cores(beat)
        width = widths(core)
        normal, offset = _normal_shape(self.geom, beat, width, self.base.core[self.dominant],
                                       self.width[self.dominant], self.base.normal_join)
        self.core = np.vstack((self.core, core))
        self.normal = np.r_[self.normal, normal]
        self.width = np.r_[self.width, width]
        self.offset = np.r_[self.offset, offset]
        return len(self.core) - 1
