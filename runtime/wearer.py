"""Per-wearer enrolment: what is normal for one person, learnt from a few minutes of their own unlabelled ECG.

A model trained on one person reconstructs another person's normal beats worse than its own, so a
population threshold flags most of a new wearer's beats. A :class:`WearerProfile` holds robust statistics
of the wearer's baseline (medians, MADs and a trimmed covariance: up to 30 % abnormal beats in the
baseline shift them little) and a threshold set on the wearer's own inlier beats.

Each beat's score depends only on that beat, its RR features (computed from past beats only) and the
profile, so a batch of beats arriving over time is scored exactly as a whole recording is.
"""

from __future__ import annotations

import json
import math
import os
import statistics
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import beatclass, validate
from .errors import InputError
from .io import write_json
from .robust import INLIER_Z, nan_median_rows, robust_sd, typical

FORMAT = "ecgae-wearer-profile"
FORMAT_VERSION = 5  # 2: a premature next beat ends the beat's own part; 3: prematurity over the median RR;
# 4: beat templates; 5: the templates' offsets and the dominant one chosen by timing where widths are alike
# (features or contents changed each time: calibrate again)
RR_HISTORY = 8  # previous RR intervals whose median defines a beat's expected interval (prematurity)
RR_MIN_HISTORY = 3  # fewer known intervals among them give no expectation: of two, one missed beat is half
MIN_BEATS = 20  # fewer baseline beats cannot give a median, a MAD and a 1 % quantile worth trusting
GROUPS_BIC = 10.0  # BIC gain of two score groups over one that counts as "very strong" evidence (Kass & Raftery)
GROUPS_SEPARATION = 2.0  # Ashman's D above which two Gaussian groups are clearly apart
GROUPS_COMPACT = 2.0  # the upper group lies more of its own SDs than this above the lower one: a group, not a tail
OWN_RR = 0.6  # the beat's own part of a window ends this share of the median RR after its R peak (T wave in,
# the next beat's P and QRS out)
NEXT_ONSET_S = 0.15  # a next beat's QRS may begin this long before its R peak (a wide ventricular one, its
# fiducial on a late lobe)
MCD_FRACTION = 0.6  # share of baseline latents the trimmed covariance keeps (tolerates up to 40 % outliers)
# Per-beat features a score may combine; "template" and "rr" use no model at all.
FEATURES = ("mse", "residual", "latent", "template", "rr")
SCORES = ("mse", "residual", "latent", "template", "residual+rr", "latent+rr", "template+rr", "residual+latent+rr")
DEFAULT_SCORE = "residual+rr"
DEFAULT_FALSE_ALARM_RATE = 0.01


@dataclass(frozen=True)
class Beats:
    """Per-beat results of :meth:`Model.analyze`, one entry per beat found."""

    r_peak: np.ndarray  # int64 [N]: R-peak sample index in the input signal
    rr: np.ndarray  # float64 [N]: seconds since the previous beat found; NaN for the first and next to an
    # unusable beat
    z: np.ndarray  # float32 [N, latent]: the encoder's latent (AE: z; VAE: mu); NaN for unusable beats
    score: np.ndarray  # float64 [N]; NaN for unusable beats, which are not scored
    flag: np.ndarray  # bool [N]: with a profile, an ectopic beat (label S or V); without one, score > threshold;
    # never for an unusable beat
    threshold: float
    usable: np.ndarray  # bool [N]: the quality gate's verdict on the signal around the beat
    reason: np.ndarray  # str [N]: "ok", or why the beat is not usable (noise, flat, clipped, mains)
    label: np.ndarray  # str [N]: AAMI class with a profile (N, S, V; Q for an unusable beat; see beatclass; "/"
    # for a paced beat of the normal shape); "Q" for every beat without one (no templates: enrol the wearer)
    template: np.ndarray  # int64 [N]: the template a beat joined (its index in the recording's book), -1 if none
    paced: np.ndarray  # bool [N]: a pacemaker spike came at most pacing.PACED_S before the R peak
    gaps: np.ndarray = field(default_factory=lambda: np.zeros((0, 2), np.int64))  # [G, 2] (start, stop) of each
    # run of NaN/Inf samples in the input: missing signal, never bridged by a beat window or an RR interval

    def __len__(self) -> int:
        return len(self.r_peak)


@dataclass(frozen=True)
class WearerProfile:
    """Robust statistics of one wearer's baseline beats, bound to the bundle whose graphs computed them."""

    graphs: dict  # {"encoder": sha256, "decoder": sha256}
    score: str  # one of SCORES
    false_alarm_rate: float  # target share of the wearer's normal beats above the threshold
    threshold: float
    n_beats: int  # baseline beats the statistics come from
    n_inliers: int  # of them, those below the outlier cut, which set the threshold
    own_samples: int  # window samples that belong to the beat itself: up to OWN_RR x the median RR past the R peak
    template: np.ndarray  # [L] median baseline beat
    median_residual: np.ndarray  # [L] median of x - x_hat over the baseline
    latent_center: np.ndarray  # [latent]
    latent_precision: np.ndarray  # [latent, latent] inverse of the trimmed covariance
    feature_center: dict  # feature -> median over the baseline
    feature_scale: dict  # feature -> robust SD (1.4826 MAD) over the baseline
    templates: beatclass.Templates  # the wearer's beat shapes and the prematurity that makes a beat premature

    def to_dict(self) -> dict:
        return {"format": FORMAT, "format_version": FORMAT_VERSION, "graphs": dict(self.graphs),
                "score": self.score, "false_alarm_rate": self.false_alarm_rate, "threshold": self.threshold,
                "n_beats": self.n_beats, "n_inliers": self.n_inliers, "own_samples": self.own_samples,
                "template": self.template.tolist(), "median_residual": self.median_residual.tolist(),
                "latent_center": self.latent_center.tolist(), "latent_precision": self.latent_precision.tolist(),
                "feature_center": dict(self.feature_center), "feature_scale": dict(self.feature_scale),
                "templates": self.templates.to_dict()}

    def save(self, path: str | os.PathLike) -> None:
        """Write the profile as JSON, atomically."""
        write_json(path, self.to_dict())

    @classmethod
    def load(cls, path: str | os.PathLike) -> WearerProfile:
        """Read a profile written by :meth:`save`; InputError naming the field when it is damaged."""
        path = Path(path)
        try:
            d = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
            raise InputError(f"profile {path}: expected a wearer profile JSON file, cannot read it ({e})") from None
        return cls.from_dict(d, str(path))

    @classmethod
    def from_dict(cls, d: object, where: str = "profile") -> WearerProfile:
        if not isinstance(d, dict) or d.get("format") != FORMAT or d.get("format_version") != FORMAT_VERSION:
            got = (d.get("format"), d.get("format_version")) if isinstance(d, dict) else type(d).__name__
            raise InputError(f"profile {where}: expected format {FORMAT!r} version {FORMAT_VERSION}, received {got}")
        try:
            profile = cls(
                graphs={k: str(d["graphs"][k]) for k in ("encoder", "decoder")}, score=str(d["score"]),
                false_alarm_rate=float(d["false_alarm_rate"]), threshold=float(d["threshold"]),
                n_beats=int(d["n_beats"]), n_inliers=int(d["n_inliers"]), own_samples=int(d["own_samples"]),
                template=np.asarray(d["template"], dtype=np.float64),
                median_residual=np.asarray(d["median_residual"], dtype=np.float64),
                latent_center=np.asarray(d["latent_center"], dtype=np.float64),
                latent_precision=np.asarray(d["latent_precision"], dtype=np.float64),
                feature_center={k: float(d["feature_center"][k]) for k in FEATURES},
                feature_scale={k: float(d["feature_scale"][k]) for k in FEATURES},
                templates=beatclass.Templates.from_dict(d["templates"]))
        except (KeyError, TypeError, ValueError) as e:
            raise InputError(f"profile {where}: missing or malformed field ({type(e).__name__}: {e})") from None
        profile._check(where)
        return profile

    def _check(self, where: str) -> None:
        """Refuse values no calibration can produce: a damaged file must not score silently."""
        k, length = len(self.latent_center), len(self.template)
        arrays = (self.template, self.median_residual, self.latent_center, self.latent_precision)
        problems = [
            (self.score in SCORES, "score", f"one of {SCORES}", self.score),
            (0 < self.false_alarm_rate < 0.5, "false_alarm_rate", "in (0, 0.5)", self.false_alarm_rate),
            (math.isfinite(self.threshold), "threshold", "a finite number", self.threshold),
            (0 < self.n_inliers <= self.n_beats, "n_inliers", f"in [1, n_beats = {self.n_beats}]", self.n_inliers),
            (0 < self.own_samples <= length, "own_samples", f"in [1, {length}]", self.own_samples),
            (length > 1 and self.median_residual.shape == (length,), "median_residual",
             f"[{length}] like the template", self.median_residual.shape),
            (k > 0 and self.latent_precision.shape == (k, k), "latent_precision", f"[{k}, {k}]",
             self.latent_precision.shape),
            (all(np.isfinite(a).all() for a in arrays), "arrays", "finite values", "NaN/Inf"),
            (all(math.isfinite(self.feature_center[f]) and self.feature_scale[f] > 0 for f in FEATURES),
             "feature_scale", "finite centres and scales > 0", self.feature_scale),
        ]
        for ok, name, expected, received in problems:
            if not ok:
                raise InputError(f"profile {where}: {name}: expected {expected}, received {received}")

    def check_bundle(self, graphs: dict, input_length: int, latent_dim: int) -> None:
        """Refuse a profile computed by another bundle: its statistics describe other graphs' outputs."""
        if self.graphs != graphs or len(self.template) != input_length or len(self.latent_center) != latent_dim:
            raise InputError(f"profile: expected one calibrated with this bundle (graph sha256 encoder "
                             f"{graphs['encoder'][:12]}..., decoder {graphs['decoder'][:12]}...), received one made "
                             f"for encoder {self.graphs['encoder'][:12]}..., decoder {self.graphs['decoder'][:12]}...; "
                             "calibrate again with this bundle")


def prematurity(rr: np.ndarray, history: np.ndarray | None = None) -> np.ndarray:
    """Each RR over the median of the RR_HISTORY intervals before it (< 1: early); NaN when fewer than
    RR_MIN_HISTORY of them are known (the start, or just after unusable signal).

    A median, not a mean: one long interval (a beat the detector missed, a pause) or one short one must not
    make the next beats look early or late. ``history`` holds RR intervals that came before ``rr`` (a
    stream's previous batch), so a stream computes the same values as a whole recording.
    """
    past = np.zeros(0) if history is None else np.asarray(history, dtype=np.float64)[-RR_HISTORY:]
    seq = np.r_[past, np.asarray(rr, dtype=np.float64)]
    before = np.lib.stride_tricks.sliding_window_view(np.r_[np.full(RR_HISTORY, np.nan), seq], RR_HISTORY)
    before = before[: seq.size]  # row i: the RR_HISTORY positions before beat i
    known = np.isfinite(before).sum(axis=1) >= RR_MIN_HISTORY
    expected = np.where(known, nan_median_rows(before), np.nan)  # NaN propagates without a warning
    return np.where(np.isfinite(seq), seq / expected, np.nan)[len(past) :]


def features(model, beats: np.ndarray, prem: np.ndarray | None, profile: WearerProfile | None,
             next_gap: np.ndarray | None = None) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Per-beat features in log units ({feature: [N]}) and latents [N, latent] of validated beats [N, 1, L].

    Errors other than "mse" are taken over the beat's own part of the window: up to ``profile.own_samples``,
    and before the next beat's QRS when ``next_gap`` (model-rate samples from R to the next beat) says it
    comes sooner, so the next beat, whose place varies with the rhythm, does not count as this one's
    morphology. The encoder sees the whole window, so there the wearer's median beat stands in for that
    next beat (``own_window``); the latents returned are those of the windows as given. Logs make the
    skewed squared errors and distances near symmetric, which median and MAD describe. Without a profile
    only "mse" (whole window) and "rr" (log prematurity) are defined.
    """
    seen = beats if profile is None else own_window(model, beats, profile.template, next_gap)
    z = model.encode(seen)
    x = seen[:, 0, :].astype(np.float64)
    full = x - model.decode(z).astype(np.float64)
    out = {"mse": _log(np.square(full).mean(axis=1)),  # today's score: the whole window
           "rr": np.full(len(x), np.nan) if prem is None else np.log(prem)}
    if profile is not None:
        mask = own_mask(model, profile.own_samples, len(x), next_gap)
        count = mask.sum(axis=1)
        out["residual"] = _log((np.square(full - profile.median_residual) * mask).sum(axis=1) / count)
        out["template"] = _log((np.square(x - profile.template) * mask).sum(axis=1) / count)
        d = z.astype(np.float64) - profile.latent_center
        out["latent"] = _log(np.einsum("ni,ij,nj->n", d, profile.latent_precision, d))
        changed = np.flatnonzero((seen != beats).any(axis=(1, 2)))
        if changed.size:  # the latent reported is the beat window's own, whatever the profile
            z = z.copy()
            z[changed] = model.encode(beats[changed])
    return out, z


def own_window(model, beats: np.ndarray, template: np.ndarray, next_gap: np.ndarray | None) -> np.ndarray:
    """Windows [N, 1, L] in which, from NEXT_ONSET_S before a next beat that lies inside the window on, the
    wearer's median beat replaces the signal: the encoder averages over the whole window, so an early
    ventricular beat there would change how it codes this beat."""
    onset = _next_onset(model, next_gap)
    if onset is None:
        return beats
    after = np.arange(model.input_length)[None, :] >= onset[:, None]
    return np.where(after[:, None, :], template.astype(np.float32)[None, None, :], beats)


def own_mask(model, own_samples: int, n: int, next_gap: np.ndarray | None) -> np.ndarray:
    """[n, L] True on each beat's own part of its window: the first ``own_samples``, cut NEXT_ONSET_S before a
    next beat that comes sooner (never shorter than the window's part before R plus one sample)."""
    onset = _next_onset(model, next_gap)
    end = np.full(n, own_samples) if onset is None else np.clip(onset, model.preprocessing.pre + 1, own_samples)
    return np.arange(model.input_length)[None, :] < end[:, None]


def _next_onset(model, next_gap: np.ndarray | None) -> np.ndarray | None:
    """Per beat, the window sample NEXT_ONSET_S before the next beat's R peak, or the window's length when no
    next beat lies inside the window (``next_gap`` at its cap); None for pre-cut beats or no ``next_gap``."""
    prep = model.preprocessing
    if next_gap is None or prep.pre is None or prep.sample_rate is None:
        return None
    gap = np.asarray(next_gap, dtype=np.int64)
    return np.where(gap < prep.length - prep.pre, prep.pre + gap - int(round(NEXT_ONSET_S * prep.sample_rate)),
                    model.input_length)


def _log(v: np.ndarray) -> np.ndarray:
    return np.log(np.maximum(v, 1e-12))


def combine(feats: dict[str, np.ndarray], score: str, center: dict, scale: dict) -> np.ndarray:
    """The wearer-relative score: the largest robust z of the score's features (a beat is abnormal when any
    feature is extreme for this wearer). RR counts only when a beat comes early; a missing RR counts not."""
    zs = []
    for name in score.split("+"):
        if name == "rr":
            zs.append(np.nan_to_num((center["rr"] - feats["rr"]) / scale["rr"], nan=-np.inf))
        else:
            zs.append((feats[name] - center[name]) / scale[name])
    return np.max(zs, axis=0)


def score_beats(model, beats: object, rr: object, profile: WearerProfile, rr_history: object = None,
                usable: np.ndarray | None = None, next_gap: np.ndarray | None = None,
                ) -> tuple[np.ndarray, np.ndarray]:
    """(scores [N], latents [N, latent]) of a batch of one wearer's beats. ``rr``: seconds to the previous
    beat, one per beat (NaN when unknown; None for pre-cut beats); ``rr_history``: the RR intervals before
    the batch (a stream's earlier beats), so that each beat's prematurity uses only past beats. Beats not
    ``usable`` are not scored: NaN score and latent. ``next_gap``: see ``features``."""
    x = validate.as_beats(beats, model.input_length)
    rr_arr = _as_rr(rr, len(x))
    history = None if rr_history is None else validate.as_numeric(rr_history, "rr_history").astype(np.float64)
    prem = None if rr_arr is None else prematurity(rr_arr, history)

    def score(keep: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        feats, z = features(model, x[keep], None if prem is None else prem[keep], profile,
                            None if next_gap is None else np.asarray(next_gap)[keep])
        return combine(feats, profile.score, profile.feature_center, profile.feature_scale), z

    return _usable_only(model, len(x), usable, score)


def score_batch(model, beats: object, rr: object, profile: WearerProfile | None, rr_history: object = None,
                usable: np.ndarray | None = None, next_gap: np.ndarray | None = None,
                templates: beatclass.Book | None = None, paced: np.ndarray | None = None) -> Scored:
    """Scores, latents, classes and flags of a batch of beats: with a profile, the wearer-relative score and
    the beat classes of ``templates`` (the recording's book, carried from batch to batch; a new one from the
    profile when None), flagged when ectopic (S or V), a ``paced`` beat of the normal shape labelled "/" (AAMI's
    paced class, not an ectopic one); without a profile, the reconstruction MSE against the bundle's threshold,
    every beat labelled Q. Unusable beats get NaN, Q and no flag. ``Model.analyze`` and the streaming
    ``Monitor`` both score through this one function."""
    x = validate.as_beats(beats, model.input_length)
    n = len(x)
    if profile is None:
        limit = model.decision_threshold()
        scores, z = _usable_only(model, n, usable, lambda keep: model.score_and_encode(x[keep]))
        with np.errstate(invalid="ignore"):
            flags = scores > limit
        return Scored(scores, z, flags, limit, np.full(n, "Q"), np.full(n, -1, dtype=np.int64))
    scores, z = score_beats(model, x, rr, profile, rr_history, usable, next_gap)
    book_ = templates if templates is not None else book(model, profile)
    label, template = book_.classify(x[:, 0, :], None if rr is None else _as_rr(rr, n),
                                     np.ones(n, dtype=bool) if usable is None else np.asarray(usable))
    flag = (label == "S") | (label == "V")
    if paced is not None:
        label = np.where(paced & (label == "N"), "/", label)
    return Scored(scores, z, flag, profile.threshold, label, template)


@dataclass(frozen=True)
class Scored:
    """What ``score_batch`` gives for a batch of beats (see ``Beats`` for each field)."""

    score: np.ndarray
    z: np.ndarray
    flag: np.ndarray
    threshold: float
    label: np.ndarray
    template: np.ndarray


def calibrate_cut(model, cut, score: str = DEFAULT_SCORE, false_alarm_rate: float = DEFAULT_FALSE_ALARM_RATE,
                  ) -> WearerProfile:
    """A wearer's profile from the beats a raw baseline gave (``preprocess.CutBeats``): its usable beats only,
    so noise or a loose electrode during enrolment does not become the wearer's normal."""
    if cut.usable.sum() < MIN_BEATS:
        bad = cut.reason[~cut.usable]
        why = ", ".join(f"{int((bad == r).sum())} {r}" for r in np.unique(bad))
        raise InputError(f"baseline: expected at least {MIN_BEATS} usable beats to calibrate on, received "
                         f"{int(cut.usable.sum())} of {len(cut.usable)}" + (f" (unusable: {why})" if why else ""))
    return calibrate_beats(model, cut.beats, cut.rr, score, false_alarm_rate, cut.usable, cut.next_gap)


def calibrate_beats(model, beats: object, rr: object = None, score: str = DEFAULT_SCORE,
                    false_alarm_rate: float = DEFAULT_FALSE_ALARM_RATE, usable: np.ndarray | None = None,
                    next_gap: np.ndarray | None = None) -> WearerProfile:
    """A wearer's profile from consecutive baseline beats [N, L] (unlabelled; may hold abnormal beats) and
    their RR in seconds (None for pre-cut beats: RR features then never count). Only ``usable`` beats
    (default all) enter the statistics; the others still place the RR sequence."""
    if score not in SCORES:
        raise InputError(f"score: expected one of {SCORES}, received {score!r}")
    far = validate.finite_real(false_alarm_rate, "false_alarm_rate")
    if not 0 < far < 0.5:
        raise InputError(f"false_alarm_rate: expected a share in (0, 0.5), e.g. 0.01, received {far}")
    x = validate.as_beats(beats, model.input_length)
    rr_arr = _as_rr(rr, len(x))
    prem = None if rr_arr is None else prematurity(rr_arr)
    keep = _usable_rows(usable, len(x))
    x, rr_arr, prem = x[keep], None if rr_arr is None else rr_arr[keep], None if prem is None else prem[keep]
    gap = None if next_gap is None else np.asarray(next_gap)[keep]
    if len(x) < MIN_BEATS:
        raise InputError(f"baseline: expected at least {MIN_BEATS} beats to calibrate on, received {len(x)}")
    own = _own_samples(model, rr_arr)
    mask = own_mask(model, own, len(x), gap)
    template = _core_median(x[:, 0, :].astype(np.float64), mask)
    seen = own_window(model, x, template, gap)
    z = model.encode(seen).astype(np.float64)
    residual = seen[:, 0, :].astype(np.float64) - model.decode(z.astype(np.float32)).astype(np.float64)
    center, precision = _trimmed_gaussian(z)
    templates = beatclass.learn(geometry(model), x[:, 0, :], rr_arr)
    stats = WearerProfile(model_graphs(model), score, far, 0.0, len(x), len(x), own, template,
                          _core_median(residual, mask), center, precision, {}, {}, templates)
    feats, _ = features(model, x, prem, stats, gap)
    location, spread = _feature_stats(feats)
    s = combine(feats, score, location, spread)
    threshold, n_inliers = _threshold(s, far)
    return WearerProfile(stats.graphs, score, far, threshold, len(x), n_inliers, stats.own_samples,
                         stats.template, stats.median_residual, center, precision, location, spread, templates)


def geometry(model) -> beatclass.Geometry:
    """Where a beat's core lies in this model's window."""
    prep = model.preprocessing
    return beatclass.Geometry(model.input_length, prep.pre, prep.sample_rate)


def book(model, profile: WearerProfile) -> beatclass.Book:
    """A recording's template book, starting from the wearer's templates."""
    return beatclass.Book(profile.templates, geometry(model))


def _feature_stats(feats: dict[str, np.ndarray]) -> tuple[dict, dict]:
    """Median and robust SD of each feature over the baseline beats."""
    location = {f: float(np.nanmedian(v)) if np.isfinite(v).any() else 0.0 for f, v in feats.items()}
    return location, {f: robust_sd(v, location[f]) for f, v in feats.items()}


def _usable_only(model, n: int, usable: np.ndarray | None,
                 score: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    """(scores [n], latents [n, latent]) from ``score(rows)`` on the usable rows only; NaN for the others."""
    keep = _usable_rows(usable, n)
    scores, z = np.full(n, np.nan), np.full((n, model.latent_dim), np.nan, np.float32)
    if keep.size:
        scores[keep], z[keep] = score(keep)
    return scores, z


def _usable_rows(usable: np.ndarray | None, n: int) -> np.ndarray:
    """Indices of the rows to score: all without a quality verdict."""
    if usable is None:
        return np.arange(n)
    mask = np.asarray(usable)
    if mask.dtype != bool or mask.shape != (n,):
        raise InputError(f"usable: expected {n} booleans, one per beat, received {mask.dtype} {mask.shape}")
    return np.flatnonzero(mask)


def _core_median(rows: np.ndarray, own: np.ndarray, steps: int = 5) -> np.ndarray:
    """Elementwise median of the half of the rows [N, L] nearest to it (over each row's ``own`` part),
    refined: abnormal beats pull a plain median towards them; while they are fewer than half, the nearest
    half of the rows is nearly all normal."""
    med = np.median(rows, axis=0)
    for _ in range(steps):
        d = (np.square(rows - med) * own).sum(axis=1) / own.sum(axis=1)
        med = np.median(rows[d <= np.median(d)], axis=0)
    return med


def _threshold(s: np.ndarray, far: float) -> tuple[float, int]:
    """(threshold, beats it rests on) for a ``far`` share of the wearer's normal baseline beats above it.

    When the scores fall into two clearly separate groups, the upper one the smaller (``_abnormal_group``:
    a quarter or more of the baseline abnormal, which widens every robust SD so far that no cut in SDs
    finds them), the normal beats are the lower group; as it is cut where the groups meet, its own upper
    tail is thin, so the threshold is also at least the lower group's Gaussian quantile. Otherwise the
    normal beats are those left by iteratively excluding scores above median + INLIER_Z robust SDs of the
    rest (abnormal beats widen the first SD, so one cut alone keeps many of them), and the threshold is
    their empirical quantile."""
    groups = _abnormal_group(s)
    if groups is not None:
        normal, mean, sd = groups
        tail = statistics.NormalDist(mean, sd).inv_cdf(1 - far)
        return max(float(np.quantile(s[normal], 1 - far)), tail), int(normal.sum())
    keep = typical(s)
    return float(np.quantile(s[keep], 1 - far)), int(keep.sum())


def _abnormal_group(s: np.ndarray, steps: int = 200) -> tuple[np.ndarray, float, float] | None:
    """(mask of the lower group, its mean, its SD) of two Gaussian groups fitted to the scores (EM), when
    the data say there are two: the two-group fit beats one Gaussian by more than GROUPS_BIC in BIC ("very
    strong" evidence), the groups are separated (Ashman's D > GROUPS_SEPARATION: a clear gap between them),
    the upper one is compact (its mean more than GROUPS_COMPACT of its SDs above the lower one's: a skewed
    single group splits into a bulk and a broad tail), its mean lies beyond INLIER_Z of the lower group's SDs
    (abnormal by the exclusion's own standard: a model's normal beats may themselves score in two nearby
    groups) and it holds less than half the beats (the wearer's normal is the majority). Else None."""
    s = np.asarray(s, dtype=np.float64)
    n = len(s)
    if n < MIN_BEATS or np.ptp(s) == 0:
        return None
    low = s <= np.quantile(s, 0.6)
    weight = np.array([low.mean(), 1 - low.mean()])
    mean = np.array([s[low].mean(), s[~low].mean()])
    sd = np.array([s[low].std(), s[~low].std()]) + 1e-9
    for _ in range(steps):
        density = _densities(s, weight, mean, sd)
        resp = density / np.maximum(density.sum(axis=1, keepdims=True), 1e-300)
        count = np.maximum(resp.sum(axis=0), 1e-12)
        weight, mean = count / n, (resp * s[:, None]).sum(axis=0) / count
        sd = np.sqrt((resp * np.square(s[:, None] - mean)).sum(axis=0) / count) + 1e-9
    density = _densities(s, weight, mean, sd)
    two = np.log(np.maximum(density.sum(axis=1), 1e-300)).sum()
    one = -0.5 * n * (1 + math.log(2 * math.pi * max(s.var(), 1e-300)))
    gain = (-2 * one + 2 * math.log(n)) - (-2 * two + 5 * math.log(n))
    up = int(np.argmax(mean))
    separation = math.sqrt(2) * abs(mean[1] - mean[0]) / math.sqrt(sd[0] ** 2 + sd[1] ** 2)
    gap = mean[up] - mean[1 - up]
    compact, far = gap > GROUPS_COMPACT * sd[up], gap > INLIER_Z * sd[1 - up]
    if gain > GROUPS_BIC and separation > GROUPS_SEPARATION and compact and far and weight[up] < 0.5:
        return density[:, 1 - up] >= density[:, up], float(mean[1 - up]), float(sd[1 - up])
    return None


def _densities(s: np.ndarray, weight: np.ndarray, mean: np.ndarray, sd: np.ndarray) -> np.ndarray:
    """[N, 2]: each score's density under each Gaussian group, times the group's weight."""
    return weight / (sd * math.sqrt(2 * math.pi)) * np.exp(-0.5 * np.square((s[:, None] - mean) / sd))


def _own_samples(model, rr: np.ndarray | None) -> int:
    """Window samples up to OWN_RR x the wearer's median RR past the R peak; the whole window when the model
    has no window placement (pre-cut beats) or the RR is unknown."""
    prep, length = model.preprocessing, model.input_length
    if prep.pre is None or prep.sample_rate is None or rr is None or not np.isfinite(rr).any():
        return length
    return int(min(length, prep.pre + round(OWN_RR * float(np.nanmedian(rr)) * prep.sample_rate)))


def model_graphs(model) -> dict:
    """The bundle's graph hashes, which a profile is bound to."""
    graphs = model.manifest["graphs"]
    return {k: graphs[k]["sha256"] for k in ("encoder", "decoder")}


def _as_rr(rr: object, n: int) -> np.ndarray | None:
    if rr is None:
        return None
    arr = validate.as_numeric(rr, "rr").astype(np.float64).reshape(-1)
    if arr.shape != (n,) or (arr[np.isfinite(arr)] <= 0).any() or np.isinf(arr).any():
        raise InputError(f"rr: expected {n} RR intervals in seconds (> 0, NaN when unknown), one per beat, "
                         f"received {arr.size} values, min {np.nanmin(arr) if arr.size else None}")
    return arr


def _trimmed_gaussian(z: np.ndarray, steps: int = 20) -> tuple[np.ndarray, np.ndarray]:
    """Centre and precision of the latents from the MCD_FRACTION closest to their own mean (C-steps of the
    minimum covariance determinant estimator, started at the coordinate-wise median)."""
    n, k = z.shape
    h = max(k + 1, int(math.ceil(MCD_FRACTION * n)))
    center = np.median(z, axis=0)
    cov = np.cov(z, rowvar=False).reshape(k, k) + 1e-9 * np.eye(k)
    keep = np.argsort(np.linalg.norm(z - center, axis=1), kind="stable")[:h]
    for _ in range(steps):
        center = z[keep].mean(axis=0)
        cov = np.cov(z[keep], rowvar=False).reshape(k, k) + 1e-9 * np.eye(k)
        d = np.einsum("ni,ij,nj->n", z - center, np.linalg.inv(cov), z - center)
        new = np.sort(np.argsort(d, kind="stable")[:h])
        if np.array_equal(new, np.sort(keep)):
            break
        keep = new
    return center, np.linalg.inv(cov)
