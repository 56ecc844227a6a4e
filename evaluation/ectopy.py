"""GENERATED ventricular ectopy built from real beats, with reference annotations, for EC57 tables.

A real recording of mostly normal beats (record 100, MLII or V5) is edited beat by beat: a premature
ventricular beat (a real PVC's waveform) is put in at a coupling of 0.55-0.70 RR after a normal beat and
the sinus beat it pre-empts is taken out, so the next sinus beat arrives on time (a full compensatory
pause); runs put several ventricular beats in at 0.5-0.7 RR apart; an interpolated beat comes at the same coupling
but nothing is taken out (no pause): the next sinus beat is conducted 0.2-0.3 s late, as the PVC's
refractory period slows its conduction, so the record grows by that much; a fusion beat replaces a sinus beat on time
by a weighted mix of that beat and the ventricular waveform. A beat is taken out by bridging its P-QRS-T
with the baseline around it; a ventricular waveform is added onto the baseline with tapered edges, so
that it overlaps the previous T wave as a premature beat does. Annotations follow the edit: V at each
inserted R peak, F at each fusion beat, the sinus beats taken out are removed.

Patterns (``PATTERNS``): isolated, couplets, runs (3-10 beats), bigeminy and trigeminy (episodes of N V
and N N V separated by normal stretches), multiform (isolated, each PVC of a randomly chosen real
morphology), interpolated (isolated, no pause) and fusion (isolated PVCs, plus fusion beats numbering
half the PVCs: 10 % F at 20 % V, like the patients with frequent PVCs). Burden = V beats / all beats.
Everything is drawn from a seeded generator: the same arguments give the same record.

Ventricular morphologies (``VentricularTemplate``): the median PVC of another patient's record, scaled
by the ratio of the target lead's normal QRS amplitude to the source's (the PVC keeps its size relative
to the normal beat of its own patient), or the recording's own PVC. These records are generated: every
table that reports them says so.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from ..runtime.errors import InputError

PATTERNS = ("isolated", "couplets", "runs", "bigeminy", "trigeminy", "multiform", "interpolated", "fusion")
PRE_S, POST_S = 0.12, 0.45  # ventricular waveform around its R peak: QRS onset to the end of the T wave
TAPER_IN_S, TAPER_OUT_S = 0.03, 0.1
COUPLING = (0.55, 0.70)  # premature beat: fraction of the sinus RR after the normal beat before it
RUN_CYCLE = (0.5, 0.7)  # ventricular cycle within runs, as a fraction of the sinus RR
INTERPOLATED_DELAY_S = (0.2, 0.3)  # the sinus beat after an interpolated PVC comes this much later
NEXT_SINUS = 0.75  # the first sinus beat kept after ectopy is at least this many RR after the last V beat
CUT_PRE_S, CUT_POST_S = 0.25, 0.45  # a sinus beat taken out: its P wave to the end of its T wave
FADE_S = 0.02
RUN_LENGTHS = (3, 10)
EPISODE = (4, 16)  # bigeminy / trigeminy episode length in cycles
FUSION_SHARE = 0.5  # fusion beats per PVC in the "fusion" pattern
FUSION_WEIGHT = (0.3, 0.7)  # weight of the normal beat in the mix


@dataclass(frozen=True)
class VentricularTemplate:
    """A real ventricular beat: ``wave`` in mV with the baseline removed, R peak at index ``pre``;
    ``normal_qrs`` is the median normal QRS peak-to-peak amplitude of the lead it came from."""

    source: str
    wave: np.ndarray
    pre: int
    normal_qrs: float


@dataclass
class GeneratedRecord:
    """One generated recording with its reference annotations (``generated`` is always True)."""

    name: str
    signal: np.ndarray
    fs: float
    ann_sample: np.ndarray
    ann_symbol: np.ndarray
    pattern: str
    target_burden: float
    seed: int
    runs: Counter = field(default_factory=Counter)  # length of each ventricular group -> how many
    templates: tuple[str, ...] = ()
    generated: bool = True

    def count(self, symbol: str) -> int:
        return int(np.sum(self.ann_symbol == symbol))

    @property
    def burden(self) -> float:
        beats = np.isin(self.ann_symbol, list("NLRejAaJSVEF/fQ"))
        return self.count("V") / max(int(beats.sum()), 1)


def _edge_line(x: np.ndarray, lo: int, hi: int, fs: float) -> np.ndarray:
    """The straight line from the median level just before ``lo`` to that just after ``hi``."""
    k = max(int(0.01 * fs), 1)
    a = float(np.median(x[max(lo - k, 0) : lo + 1]))
    b = float(np.median(x[hi : min(hi + k, x.size - 1) + 1]))
    return np.linspace(a, b, hi - lo)


def qrs_amplitude(signal: np.ndarray, fs: float, r_peak: np.ndarray) -> float:
    """Median QRS peak-to-peak amplitude (+-100 ms around each given R peak)."""
    h = int(0.1 * fs)
    r_peak = r_peak[(r_peak >= h) & (r_peak < len(signal) - h)]
    if len(r_peak) == 0:
        raise InputError("r_peak: expected at least one beat away from the record's ends")
    w = signal[r_peak[:, None] + np.arange(-h, h)[None, :]]
    return float(np.median(np.ptp(w, axis=1)))


def ventricular_template(signal: np.ndarray, fs: float, ann_sample: np.ndarray, ann_symbol: np.ndarray,
                         source: str) -> VentricularTemplate:
    """The median V beat of a record (each window's baseline line removed) and its normal QRS amplitude."""
    x = np.asarray(signal, dtype=np.float64).reshape(-1)
    ann_sample, ann_symbol = np.asarray(ann_sample), np.asarray(ann_symbol).astype(str)
    pre, post = int(round(PRE_S * fs)), int(round(POST_S * fs))
    v = ann_sample[(ann_symbol == "V") & (ann_sample >= pre) & (ann_sample < x.size - post - 1)]
    n = ann_sample[ann_symbol == "N"]
    if len(v) == 0 or len(n) == 0:
        raise InputError(f"{source}: expected annotated V and N beats to take a ventricular template from, "
                         f"received V {len(v)}, N {len(n)}")
    waves = np.stack([x[s - pre : s + post] - _edge_line(x, s - pre, s + post, fs) for s in v])
    return VentricularTemplate(source, np.median(waves, axis=0), pre, qrs_amplitude(x, fs, n))


def _taper(n: int, fs: float) -> np.ndarray:
    t = np.ones(n)
    a, b = int(TAPER_IN_S * fs), int(TAPER_OUT_S * fs)
    t[:a] = 0.5 - 0.5 * np.cos(np.pi * np.arange(a) / a)
    t[n - b :] = 0.5 + 0.5 * np.cos(np.pi * np.arange(1, b + 1) / b)
    return t


@dataclass
class _Plan:
    v_at: list  # (sample, template index)
    removed: set  # annotation indices of sinus beats taken out
    fused: list  # (annotation index, template index, normal weight)
    runs: Counter
    delays: list  # (sample, count): baseline held for ``count`` samples before the sample (interpolated)


class _Planner:
    """Walks the record's normal beats and places ectopic events until the end, at the target burden."""

    def __init__(self, t: np.ndarray, normal: np.ndarray, n_templates: int, rng: np.random.Generator, fs: float):
        self.t, self.normal, self.k_templates, self.rng, self.fs = t, normal, n_templates, rng, fs
        self.plan = _Plan([], set(), [], Counter(), [])

    def rr(self, i: int) -> float:
        return float(self.t[i + 1] - self.t[i])

    def event(self, i: int, k: int, template: int | None, interpolated: bool = False) -> int | None:
        """Place ``k`` ventricular beats after normal beat ``i``; the index of the next kept beat, or None
        when the beats needed are not all normal (the event is skipped there)."""
        rr, u = self.rr(i), self.rng.uniform
        at = [self.t[i] + u(*COUPLING) * rr]
        for _ in range(k - 1):
            at.append(at[-1] + u(*RUN_CYCLE) * rr)
        nxt = i + 1
        while nxt < len(self.t) and not interpolated and self.t[nxt] < at[-1] + NEXT_SINUS * rr:
            nxt += 1
        if nxt >= len(self.t) - 1 or not self.normal[i : nxt + 2].all():
            return None
        for a in at:
            pick = self.rng.integers(self.k_templates) if template is None else template
            self.plan.v_at.append((int(round(a)), int(pick)))
        self.plan.removed.update(range(i + 1, nxt))
        if interpolated:  # the next sinus beat is conducted late (its PR lengthens): hold the baseline
            where = int(max(self.t[i + 1] - min(CUT_PRE_S * self.fs, 0.4 * rr), at[0] + 0.1 * self.fs))  # after V
            self.plan.delays.append((where, int(round(u(*INTERPOLATED_DELAY_S) * self.fs))))
        self.plan.runs[k] += 1
        return nxt


def _gap(rng: np.random.Generator, mean: float, low: int = 1) -> int:
    """A whole number of normal beats >= low whose expected value is ``mean`` (or ``low`` if larger)."""
    if mean <= low:
        return low
    g = rng.uniform(low, 2 * mean - low)
    return int(np.floor(g) + (rng.random() < g - np.floor(g)))


def _plan(t: np.ndarray, normal: np.ndarray, pattern: str, burden: float, n_templates: int,
          rng: np.random.Generator, fs: float) -> _Plan:
    p = _Planner(t, normal, n_templates, rng, fs)
    i = 1
    while i < len(t) - 12:
        if pattern in ("bigeminy", "trigeminy"):
            every = 1 if pattern == "bigeminy" else 2
            m = int(rng.integers(EPISODE[0], EPISODE[1] + 1))
            j, placed = i, 0
            while placed < m and j < len(t) - 12:
                nxt = p.event(j, 1, 0)
                if nxt is None:  # a beat that is not normal: the episode ends here
                    j += 1
                    break
                j, placed = nxt + every - 1, placed + 1
            i = j + _gap(rng, placed * (1 - (every + 1) * burden) / burden, 2)
            continue
        k = int(rng.integers(RUN_LENGTHS[0], RUN_LENGTHS[1] + 1)) if pattern == "runs" else (
            2 if pattern == "couplets" else 1)
        template = None if pattern == "multiform" else 0
        nxt = p.event(i, k, template, interpolated=pattern == "interpolated")
        if nxt is None:
            i += 1
            continue
        i = nxt + _gap(rng, k * (1 - burden) / burden) - 1  # the anchor is the gap's last normal beat
    if pattern == "fusion":
        near = set(p.plan.removed) | {j - 1 for j in p.plan.removed}  # a PVC's waveform reaches back to here
        free = [j for j in range(1, len(t) - 1) if normal[j] and j not in near]
        n = min(int(round(FUSION_SHARE * len(p.plan.v_at))), len(free))
        for j in sorted(rng.choice(free, size=n, replace=False)):
            p.plan.fused.append((int(j), 0, float(rng.uniform(*FUSION_WEIGHT))))
    return p.plan


def _take_out(y: np.ndarray, t: np.ndarray, removed: set, fs: float) -> None:
    """Bridge each removed sinus beat's P-QRS-T (merged where they touch) with the baseline around it."""
    spans = []
    for j in sorted(removed):
        lo = t[j] - min(CUT_PRE_S * fs, 0.4 * (t[j] - t[j - 1]))
        hi = t[j] + min(CUT_POST_S * fs, 0.55 * (t[j + 1] - t[j]))
        if spans and lo <= spans[-1][1]:
            spans[-1][1] = hi
        else:
            spans.append([lo, hi])
    f = int(FADE_S * fs)
    for lo, hi in spans:
        lo, hi = int(lo), int(hi)
        w = np.zeros(hi - lo)  # weight of the original signal: 1 -> 0 -> 1
        f = min(f, (hi - lo) // 2)
        w[:f], w[hi - lo - f :] = np.linspace(1, 0, f), np.linspace(0, 1, f)
        y[lo:hi] = w * y[lo:hi] + (1 - w) * _edge_line(y, lo, hi, fs)


def generate(signal: np.ndarray, fs: float, ann_sample: np.ndarray, ann_symbol: np.ndarray,
             templates: list[VentricularTemplate], pattern: str, burden: float, seed: int = 0,
             name: str = "") -> GeneratedRecord:
    """A GENERATED record: ``signal`` (one lead, mV) with ventricular ectopy of ``pattern`` at ``burden``
    (V / all beats) put in, and its annotations. The first template is the unifocal morphology; multiform
    draws from all of them. Raises InputError for an unknown pattern, a burden out of reach, or too few
    templates for multiform."""
    if pattern not in PATTERNS:
        raise InputError(f"pattern: expected one of {PATTERNS}, received {pattern!r}")
    top = 1 / 3 if pattern == "trigeminy" else 0.5
    if not 0 < burden <= top:
        raise InputError(f"burden: expected a V share in (0, {top:.2f}] for {pattern}, received {burden!r}")
    if not templates or (pattern == "multiform" and len(templates) < 2):
        raise InputError(f"templates: expected {'2 or more' if pattern == 'multiform' else 'one or more'} "
                         f"ventricular templates, received {len(templates)}")
    x = np.asarray(signal, dtype=np.float64).reshape(-1)
    ann_sample = np.asarray(ann_sample, dtype=np.int64).reshape(-1)
    ann_symbol = np.asarray(ann_symbol).astype(str).reshape(-1)
    beat = np.isin(ann_symbol, list("NLRejAaJSVEF/fQ"))
    t, sym = ann_sample[beat], ann_symbol[beat]
    rng = np.random.default_rng(seed)
    plan = _plan(t, sym == "N", pattern, burden, len(templates), rng, fs)
    normal_qrs = qrs_amplitude(x, fs, t[sym == "N"])

    where = np.array([w for w, _ in plan.delays], dtype=np.int64)
    count = np.array([c for _, c in plan.delays], dtype=np.int64)
    y = np.insert(x, np.repeat(where, count), np.repeat(x[where], count))
    before = np.r_[0, np.cumsum(count)]

    def shift(s: np.ndarray) -> np.ndarray:  # original sample -> sample after the held stretches
        return np.asarray(s, dtype=np.int64) + before[np.searchsorted(where, s, side="right")]

    t, ann_sample = shift(t), shift(ann_sample)
    plan.v_at = [(int(shift(a)), k) for a, k in plan.v_at]
    _take_out(y, t, plan.removed, fs)
    scaled = [tp.wave * (normal_qrs / tp.normal_qrs) * _taper(tp.wave.size, fs) for tp in templates]
    for at, k in plan.v_at:
        lo = at - templates[k].pre
        seg = slice(max(lo, 0), min(lo + scaled[k].size, y.size))
        y[seg] += scaled[k][seg.start - lo : seg.stop - lo]
    for j, k, w in plan.fused:
        lo = int(t[j]) - templates[k].pre
        hi = lo + scaled[k].size
        target = _edge_line(y, lo, hi, fs) + scaled[k]
        y[lo:hi] += (1 - w) * _taper(hi - lo, fs) * (target - y[lo:hi])

    keep = np.ones(len(ann_sample), dtype=bool)
    keep[np.flatnonzero(beat)[sorted(plan.removed)]] = False
    new_symbol = ann_symbol.copy()
    new_symbol[np.flatnonzero(beat)[[j for j, _, _ in plan.fused]]] = "F"
    samples = np.r_[ann_sample[keep], [a for a, _ in plan.v_at]].astype(np.int64)
    symbols = np.r_[new_symbol[keep], ["V"] * len(plan.v_at)]
    order = np.argsort(samples, kind="stable")
    return GeneratedRecord(name or f"generated {pattern} {burden:.0%}", y, float(fs), samples[order],
                           symbols[order].astype("<U2"), pattern, burden, seed, plan.runs,
                           tuple(tp.source for tp in templates))
