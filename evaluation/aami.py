"""Beat-by-beat comparison as ANSI/AAMI EC57 defines it: AAMI beat classes, matching within 150 ms, the
class confusion matrix, and the statistics read from it.

Matching follows the reference comparator of EC57 (WFDB's ``bxb``): both annotation lists are walked in
time order, and a reference beat and a detected beat are paired when they lie within the match window and
no neighbour of either is a closer partner. A reference beat left unpaired is "missed" (column ``O``), a
detected beat left unpaired is "extra" (row ``X``). Periods of ventricular flutter or fibrillation
(reference ``[`` to ``]``) are left out of every count, as EC57 leaves them out of beat statistics.

The confusion matrix has reference classes as rows (N S V F Q, then X for extra detections) and the
algorithm's classes as columns (N S V F Q, then O for missed beats). From it, as ``bxb`` computes them:

- beat detection: Se = matched / (matched + missed), +P = matched / (matched + extra);
- VEB: TP = Vv; FN = Vn + Vs + Vf + Vq + Vo; FP = Nv + Sv + Xv (a fusion or unclassifiable reference beat
  called V is neither a true nor a false VEB);
- SVEB: TP = Ss; FN = Sn + Sv + Sf + Sq + So; FP = Ns + Vs + Fs + Xs;
- N specificity (EC57 has no single N statistic; this is the one the project's goals use): the share of
  detected reference N beats the algorithm called N, Nn / (Nn + Ns + Nv + Nf + Nq): every label other than
  N raises an alarm on a normal beat;
- VEB false-positive rate (``bxb``'s): FP / (FP + TN), TN = every matched pair with neither side V, except
  F and Q references called V.
"""

from __future__ import annotations

import numpy as np

from ..benchmarks.detection import flutter_episodes, outside
from ..runtime.errors import InputError

CLASSES = ("N", "S", "V", "F", "Q")
ROWS = CLASSES + ("X",)  # reference class; X: a detection with no reference beat
COLS = CLASSES + ("O",)  # algorithm class; O: a reference beat the algorithm did not detect
MATCH_SECONDS = 0.15
PACED = "/"  # the runtime's label for a paced beat: AAMI's Q class

AAMI = {**dict.fromkeys("NLRej", "N"), **dict.fromkeys("AaJS", "S"), **dict.fromkeys("VE", "V"), "F": "F",
        **dict.fromkeys("/fQ", "Q")}


def aami_class(symbols: np.ndarray) -> np.ndarray:
    """MIT-BIH beat symbols -> AAMI classes (N: N L R e j; S: A a J S; V: V E; F: F; Q: / f Q); "" for
    annotations that are not beats (rhythm, noise, flutter waves, comments)."""
    return np.array([AAMI.get(str(s), "") for s in np.asarray(symbols).reshape(-1)], dtype="<U1")


def algorithm_class(labels: np.ndarray) -> np.ndarray:
    """The runtime's labels (N S V F Q, or / for paced) -> AAMI columns; InputError for anything else."""
    labels = np.asarray(labels).astype(str).reshape(-1)
    out = np.where(labels == PACED, "Q", labels)
    bad = sorted(set(out) - set(CLASSES))
    if bad:
        raise InputError(f"labels: expected AAMI classes {CLASSES} or {PACED!r} (paced), received {bad}")
    return out.astype("<U1")


def match_beats(ref: np.ndarray, test: np.ndarray, window: int) -> tuple[np.ndarray, np.ndarray]:
    """Pair sorted reference and detected sample indices within ``window`` samples, ``bxb``'s way.

    Returns (for each reference beat the index of its detected partner or -1, for each detected beat the
    index of its reference partner or -1)."""
    ref, test = np.asarray(ref, dtype=np.int64), np.asarray(test, dtype=np.int64)
    if np.any(np.diff(ref) < 0) or np.any(np.diff(test) < 0):
        raise InputError("beat samples: expected reference and detected R peaks in increasing order")
    far = np.iinfo(np.int64).max // 4
    r_of = np.full(len(test), -1, dtype=np.int64)
    t_of = np.full(len(ref), -1, dtype=np.int64)
    i = j = 0
    while i < len(ref) and j < len(test):
        T, t = ref[i], test[j]
        T2 = ref[i + 1] if i + 1 < len(ref) else far
        t2 = test[j + 1] if j + 1 < len(test) else far
        if t < T:  # the detection comes first: pair it unless the next detection fits T better
            if T - t <= window and (T - t < abs(T - t2) or abs(T2 - t2) < abs(T - t2)):
                t_of[i], r_of[j] = j, i
                i += 1
            j += 1
        else:  # the reference comes first: pair it unless the next reference fits t better
            if t - T <= window and (t - T < abs(t - T2) or abs(t2 - T2) < abs(t - T2)):
                t_of[i], r_of[j] = j, i
                j += 1
            i += 1
    return t_of, r_of


def confusion(ann_sample: np.ndarray, ann_symbol: np.ndarray, r_peak: np.ndarray, labels: np.ndarray, fs: float,
              start: int = 0, window_seconds: float = MATCH_SECONDS) -> np.ndarray:
    """EC57 confusion matrix [6 x 6] (rows ROWS, columns COLS) of one record.

    ``ann_sample``/``ann_symbol``: the reference annotations (non-beat ones are skipped, ``[ ]`` bound
    the excluded flutter episodes); ``r_peak``/``labels``: the algorithm's beats and classes. Beats are
    paired over the whole record; a pair counts when its reference beat lies at or after sample ``start``
    (an extra detection when it does), so the enrolment before ``start`` is left out without edge effects.
    """
    ann_sample = np.asarray(ann_sample, dtype=np.int64).reshape(-1)
    ann_symbol = np.asarray(ann_symbol).astype(str).reshape(-1)
    r_peak = np.asarray(r_peak, dtype=np.int64).reshape(-1)
    if len(ann_sample) != len(ann_symbol):
        raise InputError(f"annotations: expected as many symbols as samples, received {len(ann_symbol)} "
                         f"and {len(ann_sample)}")
    got = algorithm_class(labels)
    if len(got) != len(r_peak):
        raise InputError(f"labels: expected one per R peak ({len(r_peak)}), received {len(got)}")
    order = np.argsort(ann_sample, kind="stable")
    ann_sample, ann_symbol = ann_sample[order], ann_symbol[order]
    cls = aami_class(ann_symbol)
    beat = cls != ""
    ref, ref_cls = ann_sample[beat], cls[beat]
    t_of, r_of = match_beats(ref, r_peak, int(round(window_seconds * fs)))
    flutter = flutter_episodes(ann_sample, ann_symbol)
    ref_in = (ref >= start) & outside(ref, flutter)
    test_in = (r_peak >= start) & outside(r_peak, flutter)
    m = np.zeros((len(ROWS), len(COLS)), dtype=np.int64)
    row = {c: k for k, c in enumerate(ROWS)}
    col = {c: k for k, c in enumerate(COLS)}
    for i in np.flatnonzero(ref_in):
        m[row[ref_cls[i]], col[got[t_of[i]]] if t_of[i] >= 0 else col["O"]] += 1
    for j in np.flatnonzero(test_in & (r_of < 0)):
        m[row["X"], col[got[j]]] += 1
    return m


def _ratio(num: int, den: int) -> float | None:
    return None if den == 0 else num / den


def statistics(m: np.ndarray) -> dict:
    """EC57 statistics of a confusion matrix (see the module docstring for each formula); a statistic with
    an empty denominator is None. Counts come along so that readers can judge small denominators."""
    m = np.asarray(m, dtype=np.int64)
    c = {(r, k): int(m[i, j]) for i, r in enumerate(ROWS) for j, k in enumerate(COLS)}
    matched = int(m[:5, :5].sum())
    missed, extra = int(m[:5, 5].sum()), int(m[5, :5].sum())
    v_tp = c["V", "V"]
    v_fn = sum(c["V", k] for k in COLS if k != "V")
    v_fp = c["N", "V"] + c["S", "V"] + c["X", "V"]
    v_tn = sum(c[r, k] for r in ("N", "S", "F", "Q", "X") for k in ("N", "S", "F", "Q"))
    s_tp = c["S", "S"]
    s_fn = sum(c["S", k] for k in COLS if k != "S")
    s_fp = c["N", "S"] + c["V", "S"] + c["F", "S"] + c["X", "S"]
    n_found = sum(c["N", k] for k in CLASSES)
    return {
        "beats": {r: int(m[i, :5].sum() + (m[i, 5] if i < 5 else 0)) for i, r in enumerate(ROWS)},
        "matched": matched, "missed": missed, "extra": extra,
        "beat_se": _ratio(matched, matched + missed), "beat_pp": _ratio(matched, matched + extra),
        "veb_tp": v_tp, "veb_fn": v_fn, "veb_fp": v_fp,
        "veb_se": _ratio(v_tp, v_tp + v_fn), "veb_pp": _ratio(v_tp, v_tp + v_fp),
        "veb_fpr": _ratio(v_fp, v_fp + v_tn),
        "sveb_tp": s_tp, "sveb_fn": s_fn, "sveb_fp": s_fp,
        "sveb_se": _ratio(s_tp, s_tp + s_fn), "sveb_pp": _ratio(s_tp, s_tp + s_fp),
        "n_spec": _ratio(c["N", "N"], n_found), "n_found": n_found,
    }
