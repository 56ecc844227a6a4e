"""Beat classes of pre-cut beats without timing (ECG5000), through the runtime's own path: a bundle trained on
such beats, ``calibrate_beats`` on ENROLMENT_ROWS rows of the split's training side holding a given share of
abnormal beats, then ``score_batch`` on the held-out rows (validation and test: 150 rows no bundle trained on).

A beat without timing is classified by its shape alone: against the dominant template of the enrolment, at the
correlation that splits the enrolment's beats into two groups when they fall apart (``beatclass.normal_join``).
Flagged = labelled anything but N; classes 2-5 count as abnormal. The AUCs rank the held-out rows by the
quantity each rule thresholds: one minus the correlation with the dominant template, and the default score.
"""

from __future__ import annotations

import numpy as np

from ..benchmarks.markdown import values_table as table
from ..runtime import Model, beatclass, wearer
from ..training.evaluate import roc_auc
from .cross import ENROLMENT_ROWS, ecg5000_case

CONTAMINATIONS = (0.0, 0.1, 0.2, 0.3, None)  # None: the training side's own mix (41 %)


def precut_rows(model: Model, contaminations: tuple[float | None, ...] = CONTAMINATIONS) -> list[dict]:
    """One row per abnormal share of the enrolment: the threshold found, sensitivity, specificity, AUCs."""
    rows = []
    for share in contaminations:
        case = ecg5000_case(model.input_length, share)
        profile = wearer.calibrate_beats(model, case.beats[case.calibration_rows])
        test = case.beats[case.test_rows]
        scored = wearer.score_batch(model, test, None, profile)
        book = wearer.book(model, profile)
        dom = profile.templates.core[book.dominant][None]
        similarity = beatclass.similarity(book.geom, np.asarray(test).reshape(len(test), -1), dom, book.geom.shift)
        abnormal = case.labels[case.test_rows] != case.normal
        flag = scored.label != "N"
        enrolled = case.labels[case.calibration_rows] != case.normal
        rows.append({"abnormal_share": float(enrolled.mean()), "enrolment": ENROLMENT_ROWS,
                     "normal_join": profile.templates.normal_join, "templates": len(profile.templates.core),
                     "held_out": int(len(test)), "abnormal": int(abnormal.sum()),
                     "sensitivity": float(flag[abnormal].mean()), "specificity": float((~flag[~abnormal]).mean()),
                     "auc_shape": _auc(1.0 - similarity[:, 0], abnormal),
                     "auc_score": _auc(np.asarray(scored.score, dtype=np.float64), abnormal)})
    return rows


def _auc(values: np.ndarray, abnormal: np.ndarray) -> float:
    return roc_auc(values[~abnormal], values[abnormal])


def markdown(bundle: str, rows: list[dict]) -> str:
    """The report's table of ``precut_rows``."""
    head = (f"**Pre-cut beats without timing (ECG5000)**, bundle `{bundle}`: enrolled on {rows[0]['enrolment']} "
            f"rows holding the share of abnormal beats given, classified on the {rows[0]['held_out']} held-out rows "
            f"({rows[0]['abnormal']} abnormal: classes 2-5); flagged = not N. The shape AUC ranks by one minus the "
            "correlation with the dominant template (what the classes threshold), the score AUC by the default "
            "wearer score.")
    body = table(["abnormal share of the enrolment", "templates", "threshold (correlation)", "sensitivity",
                  "specificity", "shape AUC", "score AUC"],
                 [[f"{r['abnormal_share']:.0%}", r["templates"], round(r["normal_join"], 3), round(r["sensitivity"], 3),
                   round(r["specificity"], 3), round(r["auc_shape"], 3), round(r["auc_score"], 3)] for r in rows])
    return f"{head}\n\n{body}"


def main(argv: list[str] | None = None) -> int:
    """``python -m ecgae.evaluation.precut BUNDLE``: the table for a bundle trained on pre-cut ECG5000 beats."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m ecgae.evaluation.precut", description=main.__doc__)
    parser.add_argument("bundle", help="a bundle trained on pre-cut beats of ECG5000's length (140)")
    args = parser.parse_args(argv)
    model = Model.load(args.bundle)
    if model.preprocessing.sample_rate is not None:
        parser.error(f"bundle: expected one trained on pre-cut beats (no sample rate), received {args.bundle}, "
                     f"trained on a raw signal at {model.preprocessing.sample_rate:g} Hz")
    print(markdown(args.bundle, precut_rows(model)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
