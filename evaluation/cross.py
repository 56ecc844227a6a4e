"""Cross-wearer evaluation: a bundle trained on one person, calibrated on the first part of another
person's data (unlabelled) and scored on the rest, through the runtime's ``calibrate``/``analyze``.

Cases, from data the package bundles:
- ``mitdb100_heldout``: record 100 by time blocks: the held-out last 30 % of the record (the model trained
  on the first 70 %); calibrate on its first ``seconds``, score the rest against the reference annotations.
- ``mitdb100_v5``: the same heart seen through lead V5 (another morphology): calibrate on the first
  ``seconds``, score the remaining 28 minutes.
- ``ecg5000``: another person, pre-cut beats stretched to L: calibrate on ENROLMENT_ROWS rows of the
  training side of the project's round-robin split, score its validation and test sides (classes 2-5
  abnormal).
- ``ptb_s0010_re`` (lead ii), ``c2015_a103l`` (lead II): no annotations; mostly normal beats, so the
  share of beats flagged is a false-alarm rate.
Every case reports each score candidate beside the no-model template baseline (``template``: MSE from
the median baseline beat), and today's score with the bundle's threshold.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..benchmarks.markdown import values_table as table
from ..runtime import Model, wearer
from ..runtime.io import write_json
from ..runtime.preprocess import normalise_beats, resample_beats
from ..training.build_dataset import BUNDLED
from ..training.build_others import load_record
from ..training.datasets import load_beats
from ..training.evaluate import auc_interval, roc_auc
from ..training.splits import split_indices

CALIBRATION_SECONDS = 120.0  # the enrolment a wearer does: the first two minutes
SHORT_RECORD_FRACTION = 0.5  # records shorter than twice the enrolment calibrate on their first half
MATCH_SECONDS = 0.1  # a detected beat takes the label of the reference annotation within 100 ms
HELD_OUT = 0.3  # record 100's held-out share (validation + test blocks of training's split)
UNLABELLED = "?"
C2015_QUIET = 240.0  # a103l: from 4:00 on the lead is noisy (the false alarm at 5:00 came from it)
SWEEP = (0.0, 0.1, 0.2, 0.3)  # abnormal shares of the calibration rows the sweep measures
CONTAMINATION = 0.3  # abnormal share of the ECG5000 calibration rows: the most a wearer's baseline may hold
ENROLMENT_ROWS = 150  # ECG5000 calibration rows: the beats of a two-minute enrolment at 75 per minute


@dataclass
class Case:
    """One cross-wearer test: a raw signal (calibrated by time) or pre-cut beats (calibrated by rows)."""

    name: str
    what: str
    signal: np.ndarray | None = None
    fs: float | None = None
    ann_sample: np.ndarray | None = None  # reference R peaks (signal cases)
    ann_symbol: np.ndarray | None = None
    beats: np.ndarray | None = None  # pre-cut cases
    labels: np.ndarray | None = None
    calibration_rows: np.ndarray | None = None
    test_rows: np.ndarray | None = None
    normal: str = "N"
    quiet_until: float | None = None  # seconds: the flagged share is also given for beats before this time


def _mitdb100() -> tuple[np.ndarray, float, np.ndarray, np.ndarray]:
    with np.load(BUNDLED, allow_pickle=False) as z:
        signal = (z["mitdb_100_adc"].astype(np.float64) - z["mitdb_100_baseline"]) / z["mitdb_100_gain"]
        return signal, float(z["mitdb_100_fs"]), z["mitdb_100_ann_sample"], z["mitdb_100_ann_symbol"]


def signal_cases() -> list[Case]:
    """The raw-signal cases (for bundles trained on raw ECG)."""
    signal, fs, ann_s, ann_y = _mitdb100()
    beats = np.isin(ann_y, list("NLRBAaJSVrFejnE/fQ"))
    ann_s, ann_y = ann_s[beats], ann_y[beats]
    start = int(round((1 - HELD_OUT) * len(signal)))
    v5, fs_v5, _ = load_record("mitdb_100_v5")
    ptb, fs_ptb, leads_ptb = load_record("ptb_s0010_re")
    c15, fs_c15, leads_c15 = load_record("c2015_a103l")
    return [
        Case("mitdb100_heldout", "record 100 (MLII), held-out last 30 % of the record", signal[start:], fs,
             ann_s[ann_s >= start] - start, ann_y[ann_s >= start]),
        Case("mitdb100_v5", "record 100 through lead V5 (the model saw MLII only)", v5[:, 0], fs_v5, ann_s, ann_y),
        Case("ptb_s0010_re", "PTB s0010_re, lead ii, 1000 Hz, 38 s (no annotations)",
             ptb[:, leads_ptb.index("ii")], fs_ptb),
        Case("c2015_a103l", "Challenge 2015 a103l, lead II, 250 Hz, 5.5 min (no annotations; a false asystole "
             "alarm at 5:00, raised by the noise of its last 90 s)", c15[:, leads_c15.index("II")], fs_c15,
             quiet_until=C2015_QUIET),
    ]


def ecg5000_case(length: int, contamination: float | None = CONTAMINATION) -> Case:
    """ECG5000 rows stretched to ``length``: calibrate on ENROLMENT_ROWS rows of the split's training side,
    score its validation and test sides (150 rows no bundle trained on; the same for every contamination).

    The training side holds 41 % abnormal rows (the archive's mix, not a wearer's baseline); the calibration
    rows are picked evenly over its order, normal and abnormal apart, so that abnormal ones make up
    ``contamination`` of them (None: the side's own share). Labels choose the rows; calibration never sees them.
    """
    bs = load_beats("bundled:ecg5000")
    parts = split_indices(bs.records, bs.positions, 1, bs.time_ordered)
    side = parts["train"]
    normal, abnormal = side[bs.labels[side] == bs.normal_label], side[bs.labels[side] != bs.normal_label]
    share = len(abnormal) / len(side) if contamination is None else contamination
    n_abnormal = int(round(share * ENROLMENT_ROWS))
    calib = np.sort(np.r_[_evenly(normal, ENROLMENT_ROWS - n_abnormal), _evenly(abnormal, n_abnormal)])
    beats = normalise_beats(resample_beats(bs.beats.astype(np.float64), length), bs.prep.eps)
    return Case("ecg5000", f"ECG5000 (another person), beats stretched to L = {length}; calibration rows "
                f"{n_abnormal / ENROLMENT_ROWS:.0%} abnormal, classes 2-5 abnormal", beats=beats, labels=bs.labels,
                calibration_rows=calib, test_rows=np.sort(np.r_[parts["val"], parts["test"]]),
                normal=bs.normal_label)


def _evenly(rows: np.ndarray, k: int) -> np.ndarray:
    """``k`` of ``rows`` spread evenly over their order."""
    return rows[np.linspace(0, len(rows) - 1, k).round().astype(int)] if k else rows[:0]


def labels_at(peaks: np.ndarray, fs: float, ann_sample: np.ndarray | None, ann_symbol: np.ndarray | None):
    if ann_sample is None:
        return np.full(len(peaks), UNLABELLED)
    j = np.clip(np.searchsorted(ann_sample, peaks), 1, len(ann_sample) - 1)
    nearest = np.where(np.abs(ann_sample[j - 1] - peaks) <= np.abs(ann_sample[j] - peaks), j - 1, j)
    close = np.abs(ann_sample[nearest] - peaks) <= MATCH_SECONDS * fs
    return np.where(close, ann_symbol[nearest], UNLABELLED)


def run_case(model: Model, case: Case, score: str, far: float, seconds: float) -> dict:
    """Calibrate with ``score`` and score the case's test part: scores, flags and labels of the test beats."""
    if case.signal is not None:
        calib = min(seconds, SHORT_RECORD_FRACTION * len(case.signal) / case.fs)
        profile = model.calibrate(case.signal, case.fs, seconds=calib, score=score, false_alarm_rate=far)
        result = model.analyze(case.signal, case.fs, profile)
        test = result.r_peak >= calib * case.fs
        labels = labels_at(result.r_peak[test], case.fs, case.ann_sample, case.ann_symbol)
        scores, flags, usable = result.score[test], result.flag[test], result.usable[test]
        n_cal, seconds_at = profile.n_beats, result.r_peak[test] / case.fs
    else:
        profile = wearer.calibrate_beats(model, case.beats[case.calibration_rows], None, score, far)
        scores, _ = wearer.score_beats(model, case.beats[case.test_rows], None, profile)
        flags, labels, n_cal = scores > profile.threshold, case.labels[case.test_rows], profile.n_beats
        seconds_at, usable = None, np.ones(len(scores), dtype=bool)
    return {"scores": scores, "flags": flags, "labels": labels, "seconds": seconds_at, "usable": usable,
            "n_calibration": n_cal, "n_inliers": profile.n_inliers, "threshold": profile.threshold}


def today(model: Model, case: Case, seconds: float) -> dict:
    """Today's behaviour: reconstruction MSE and the bundle's threshold, on the same test beats."""
    if case.signal is not None:
        calib = min(seconds, SHORT_RECORD_FRACTION * len(case.signal) / case.fs)
        result = model.analyze(case.signal, case.fs)
        test = result.r_peak >= calib * case.fs
        labels = labels_at(result.r_peak[test], case.fs, case.ann_sample, case.ann_symbol)
        return {"scores": result.score[test], "flags": result.flag[test], "labels": labels,
                "seconds": result.r_peak[test] / case.fs, "usable": result.usable[test]}
    scores = model.score(case.beats[case.test_rows])
    return {"scores": scores, "flags": scores > model.decision_threshold(), "labels": case.labels[case.test_rows],
            "seconds": None, "usable": np.ones(len(scores), dtype=bool)}


def figures(r: dict, normal: str, quiet_until: float | None = None) -> dict:
    """AUC normal vs abnormal, specificity and sensitivity at the threshold; flagged share for unlabelled data.
    Beats the quality gate found unusable are counted, not scored, and left out of every share."""
    usable = r["usable"]
    labels, scores, flags = r["labels"][usable], r["scores"][usable], r["flags"][usable]
    known = labels != UNLABELLED
    is_normal, is_abnormal = known & (labels == normal), known & (labels != normal)
    out = {"beats": int(len(labels)), "unusable": int((~usable).sum()), "normal": int(is_normal.sum()),
           "abnormal": int(is_abnormal.sum()), "flagged_share": float(flags.mean()) if len(flags) else None}
    if quiet_until is not None and r["seconds"] is not None:
        out["flagged_share_quiet"] = float(flags[r["seconds"][usable] < quiet_until].mean())
    if is_normal.any():
        out["specificity"] = float(1 - flags[is_normal].mean())
    if is_abnormal.any():
        out["sensitivity"] = float(flags[is_abnormal].mean())
        if is_normal.any():
            out["auc"] = roc_auc(scores[is_normal], scores[is_abnormal])
            out["auc_ci95"] = auc_interval(out["auc"], int(is_normal.sum()), int(is_abnormal.sum()))
        else:
            out["auc"] = None
    return out


def evaluate_cross(bundle: Path, scores: tuple[str, ...] = wearer.SCORES, far: float = 0.01,
                   seconds: float = CALIBRATION_SECONDS) -> dict:
    """Every case the bundle can run (raw-signal cases need a raw-signal bundle), every score candidate."""
    model = Model.load(bundle)
    cases = signal_cases() if model.preprocessing.sample_rate is not None else []
    cases.append(ecg5000_case(model.input_length))
    out: dict = {"bundle": str(bundle), "false_alarm_rate": far, "calibration_seconds": seconds,
                 "default_score": wearer.DEFAULT_SCORE, "cases": {}}
    for case in cases:
        entry = {"what": case.what, "today": figures(today(model, case, seconds), case.normal, case.quiet_until),
                 "scores": {}}
        for score in scores:
            r = run_case(model, case, score, far, seconds)
            entry["scores"][score] = figures(r, case.normal, case.quiet_until) | {"n_calibration": r["n_calibration"],
                                                                 "n_inliers": r["n_inliers"]}
        out["cases"][case.name] = entry
    out["contamination"] = contamination_sweep(model, (wearer.DEFAULT_SCORE, "template"), far)
    if model.preprocessing.sample_rate is not None:
        out["ventricular"] = ventricular_sweep(model, (wearer.DEFAULT_SCORE, "template+rr"), far, seconds)
    return out


VENTRICULAR = tuple((every, shape) for every in (10, 5, 3) for shape in ("up", "down", "bi"))
MULTIFORM = ((6, 9), (3, 5))  # every so many beats, multiform (shape, width, size, coupling per beat)
VENTRICULAR_MINUTES = 10.0


def ventricular_sweep(model: Model, scores: tuple[str, ...], far: float, seconds: float) -> dict:
    """Record 100 through lead V5 (first 10 minutes) with synthetic premature ventricular beats every 10th,
    5th or 3rd beat (10 to 33 %, in the enrolment too), upright, inverted or biphasic, then multiform ones
    (each beat its own shape, width, size and coupling) every 6-9 or 3-5 beats: the wearer path when abnormal
    beats are frequent, varied and inside every neighbour's window. Synthetic beats test the mechanics
    (contamination, premature neighbours), not real PVC variety."""
    from ..training.synthetic import with_multiform_beats, with_ventricular_beats

    v5, fs, _ = load_record("mitdb_100_v5")
    _, _, ann, symbols = _mitdb100()
    n = int(VENTRICULAR_MINUTES * 60 * fs)
    ann = ann[np.isin(symbols, list("NAV")) & (ann < n - int(fs))]

    def signals():  # one signal in memory at a time
        for every, shape in VENTRICULAR:
            yield f"every {every}, {shape}", with_ventricular_beats(v5[:n, 0], fs, ann, every, 0.04, 1.0, shape)
        for lo, hi in MULTIFORM:
            yield f"every {lo}-{hi}, multiform", with_multiform_beats(v5[:n, 0], fs, ann, (lo, hi))

    out = {}
    for name, (x, ref, sym) in signals():
        case = Case("ventricular", "", x, fs, ref, sym)
        out[name] = {s: figures(run_case(model, case, s, far, seconds), "N") for s in scores}
    return out


def contamination_sweep(model: Model, scores: tuple[str, ...], far: float) -> dict:
    """ECG5000 figures when the calibration rows hold 0 to 30 % abnormal beats, and the archive's own 42 %."""
    out: dict = {}
    for level in (*SWEEP, None):
        case = ecg5000_case(model.input_length, level)
        key = "natural" if level is None else f"{level:.2f}"
        share = float(np.mean(case.labels[case.calibration_rows] != case.normal))
        out[key] = {"abnormal_share": share, **{s: figures(r, case.normal) | {"threshold": r["threshold"]}
                                                 for s in scores if (r := run_case(model, case, s, far, 0.0))}}
    return out


NO_MODEL = ("template", "template+rr")  # scores that use no model: the baseline every table shows


def markdown(result: dict) -> str:
    """One table per case: today's score at the bundle's threshold, then every candidate at the wearer's."""
    parts = [f"Bundle `{Path(result['bundle']).name}`; calibration on the first {result['calibration_seconds']:g} s "
             f"(records shorter than twice that: their first half), target false-alarm rate "
             f"{result['false_alarm_rate']:.0%}; default score `{result['default_score']}`. `template` scores use "
             "no model (the MSE from the wearer's median baseline beat); `+rr` adds prematurity (RR over the "
             "median of the previous 8, at least 3 of them known)."]
    for name, c in result["cases"].items():
        rows = [["today: reconstruction MSE, bundle threshold", *_cells(c["today"])]]
        rows += [[f"`{s}`" + (" (no model)" if s in NO_MODEL else "") + (" **default**" if s == result["default_score"]
                  else ""), *_cells(f)] for s, f in c["scores"].items()]
        t = c["today"]
        head = f"**{name}**: {c['what']}; {t['beats']} scored beats ({t['normal']} normal, {t['abnormal']} abnormal)"
        parts += [head, table(["score", "AUC (95 % CI)", "specificity", "sensitivity", "flagged",
                               "flagged (quiet part)"], rows)]
    sweep = result.get("contamination", {})
    if sweep:
        scores = [k for k in next(iter(sweep.values())) if k != "abnormal_share"]
        rows = [[f"{v['abnormal_share']:.0%}" + (" (the archive's mix)" if level == "natural" else ""),
                 *[x for s in scores for x in (v[s].get("auc"), v[s].get("specificity"), v[s].get("sensitivity"),
                                               v[s]["threshold"])]] for level, v in sweep.items()]
        parts += ["**Contamination tolerance** (ECG5000: calibration rows holding abnormal beats in the share given; "
                  "the same 150 test rows)",
                  table(["abnormal share of the baseline", *[f"`{s}` {m}" for s in scores
                                                             for m in ("AUC", "spec.", "sens.", "threshold")]], rows)]
    sweep = result.get("ventricular", {})
    if sweep:
        scores = list(next(iter(sweep.values())))
        rows = [[setting, *[x for sc in scores for x in (f[sc].get("auc"), f[sc].get("specificity"),
                                                          f[sc].get("sensitivity"))]] for setting, f in sweep.items()]
        parts += ["**Frequent premature ventricular beats** (synthetic, on record 100's V5, first 10 minutes; "
                  "the enrolment holds them too: every 10th beat is 10 %, every 3rd 33 %; multiform: each beat its "
                  "own shape, width, size and coupling)",
                  table(["ventricular beat", *[f"`{sc}` {m}" for sc in scores for m in ("AUC", "spec.", "sens.")]],
                        rows)]
    return "\n\n".join(parts)


def _cells(f: dict) -> list:
    return [_auc(f), f.get("specificity"), f.get("sensitivity"), f.get("flagged_share"), f.get("flagged_share_quiet")]


def _auc(f: dict) -> str | None:
    """The AUC with its 95 % interval: on a few dozen abnormal beats the third digit is noise."""
    if f.get("auc") is None:
        return None
    lo, hi = f["auc_ci95"]
    return f"{f['auc']:.3f}" if hi - lo < 0.005 else f"{f['auc']:.3f} ({lo:.2f}-{hi:.2f})"


DEMO_BUNDLES = ("ae-upsample-mitdb-normal", "ae-seed-mitdb-normal", "vae-upsample-mitdb", "ae-seed-mitdb")


def run_demo(root: Path, names: list[str]) -> list[str]:
    """``make demo``: cross-evaluate the record-100 bundles of DEMO_BUNDLES the demo built, into root/cross/."""
    done = []
    for name in [n for n in DEMO_BUNDLES if n in names]:
        result = evaluate_cross(root / "bundles" / name)
        write_json(root / "cross" / f"{name}.json", result)
        cases = result["cases"]
        print(f"{name:28s} cross-wearer AUC (default score / no-model template): " + ", ".join(
            f"{c} {_fmt(v['scores'][result['default_score']].get('auc'))}/{_fmt(v['scores']['template'].get('auc'))}"
            for c, v in cases.items() if "auc" in v["today"]))
        done.append(name)
    if done:
        plot_scores(Model.load(root / "bundles" / done[0]), root / "cross")
    return done


PLOT_RANGE = (-6.0, 16.0)  # wearer z-scores shown; beyond are piled at the edges


def plot_scores(model: Model, folder: Path, score: str = wearer.DEFAULT_SCORE, far: float = 0.01,
                seconds: float = CALIBRATION_SECONDS) -> Path:
    """``scores.png``: per case, the test beats' wearer scores by label against the wearer's threshold, to
    see at a glance where normal and abnormal beats overlap (ECG5000 also with a clean enrolment)."""
    from ..training.plots import plt, save_figure

    cases = signal_cases() if model.preprocessing.sample_rate is not None else []
    cases += [ecg5000_case(model.input_length), ecg5000_case(model.input_length, 0.0)]
    fig, axes = plt.subplots(2, 3, figsize=(15, 7.5))
    bins = np.linspace(*PLOT_RANGE, 89)
    for ax, case in zip(axes.flat, cases):
        r = run_case(model, case, score, far, seconds)
        s, labels = np.clip(r["scores"][r["usable"]], *PLOT_RANGE), r["labels"][r["usable"]]
        if case.quiet_until is not None:
            late = r["seconds"][r["usable"]] >= case.quiet_until
            groups = [("before the artefact", ~late, "tab:blue"), ("artefact (after 4:00)", late, "tab:gray")]
        elif (labels == UNLABELLED).all():
            groups = [("unannotated", np.ones(len(s), dtype=bool), "tab:blue")]
        else:
            groups = [("normal", labels == case.normal, "tab:blue"),
                      ("abnormal", (labels != case.normal) & (labels != UNLABELLED), "tab:red")]
        for name, sel, colour in groups:
            ax.hist(s[sel], bins=bins, color=colour, alpha=0.6, label=f"{name} ({int(sel.sum())})")
        ax.axvline(r["threshold"], color="k", ls="--", lw=1, label=f"wearer threshold ({far:.0%} target)")
        ax.set_yscale("log")
        share = float(np.mean(case.labels[case.calibration_rows] != case.normal)) if case.beats is not None else None
        ax.set_title(case.name + ("" if share is None else f", enrolment {share:.0%} abnormal"), fontsize=10)
        ax.set_xlabel(f"`{score}` score (robust z; clipped to {PLOT_RANGE[0]:g}..{PLOT_RANGE[1]:g})", fontsize=8)
        ax.legend(fontsize=7)
    for ax in axes.flat[len(cases):]:
        ax.axis("off")
    fig.suptitle(f"Wearer scores of the test beats, {model.manifest['model']['kind']} bundle trained on record 100; "
                 f"calibrated on each case's first {seconds:g} s (ECG5000: 150 rows)", fontsize=11)
    fig.tight_layout()
    save_figure(fig, folder, "scores")
    return folder / "scores.png"


def demo_markdown(root: Path) -> str:
    """The demo report's section: a summary over the bundles, then every table for the first one."""
    results = [json.loads((root / "cross" / f"{n}.json").read_text()) for n in DEMO_BUNDLES
               if (root / "cross" / f"{n}.json").is_file()]
    if not results:
        return ""
    rows = []
    for r in results:
        d = r["default_score"]
        for case, v in r["cases"].items():
            fd, ft = v["scores"][d], v["scores"]["template"]
            rows.append([Path(r["bundle"]).name, case, v["today"].get("auc"), v["today"]["flagged_share"],
                         _auc(fd), fd.get("specificity"), fd.get("sensitivity"), fd["flagged_share"],
                         _auc(ft), ft.get("specificity"), ft.get("sensitivity"), ft["flagged_share"]])
    return "\n\n".join([
        "## Cross-wearer scoring with per-wearer calibration (`ecgae evaluate BUNDLE --cross`)",
        "A model trained on record 100 meets other data: calibrated (unlabelled) on the first 2 minutes (ECG5000: "
        "150 of the split's training rows, 30 % of them abnormal), then scored on the rest. AUCs carry their 95 % "
        "interval (Hanley & McNeil; none where the two groups are ranked apart, as that interval has no width "
        "there: the case's count of abnormal beats says how much stands behind such a figure). 'today' is the "
        f"reconstruction MSE with the bundle's threshold; the default score is `{results[0]['default_score']}`; "
        "`template` is the no-model baseline (MSE from the wearer's median beat). Flagged = share of scored beats "
        "flagged (on the unannotated records, mostly normal beats: a false-alarm rate).",
        table(["bundle", "case", "today AUC", "today flagged", "default AUC (95 % CI)", "spec.", "sens.", "flagged",
               "template AUC (95 % CI)", "spec.", "sens.", "flagged"], rows),
        *([f"![wearer scores by case](cross/scores.png) Scores of `{Path(results[0]['bundle']).name}` by case: "
           "the counts are on a log scale."] if (root / "cross" / "scores.png").is_file() else []),
        f"Every candidate score for `{Path(results[0]['bundle']).name}`:",
        markdown(results[0]),
    ])


def _fmt(v: float | None) -> str:
    return "-" if v is None else f"{v:.3f}"
