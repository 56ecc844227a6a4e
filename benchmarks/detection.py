"""How well the runtime finds beats: ANSI/AAMI EC57-style matching against reference annotations, the
record-100 stress conditions, synthetic ventricular beats, agreement with wfdb's XQRS on the
unannotated records, and the raw-signal -> scores speed.

Every figure runs the runtime's own path (``ecgae.runtime.preprocess.r_peaks``: resample to the model
rate, the bundle's band-pass, the detector), so what is measured is what a device does.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from ..runtime.errors import InputError
from ..runtime.preprocess import Preprocessing, cut_beats, design_bandpass, r_peaks, resample
from ..training.build_dataset import BUNDLED
from ..training.build_others import load_record
from ..training.datasets import BAND_HZ, MODEL_RATE, PRE, WINDOW
from ..training.synthetic import with_ventricular_beats
from .markdown import table

MATCH_S = 0.15  # EC57's match window
# MIT-BIH beat symbols by AAMI class; everything else (rhythm, noise, comments) is not a beat
AAMI = {"N": "NLRej", "S": "AaJS", "V": "VE", "F": "F", "Q": "/fQ"}
SYMBOL_CLASS = {s: c for c, symbols in AAMI.items() for s in symbols}
FLUTTER_ON, FLUTTER_OFF = "[", "]"  # a reference episode of ventricular flutter or fibrillation


def default_preprocessing() -> Preprocessing:
    """The preprocessing every model trained on raw ECG uses by default (360 Hz, 0.5-40 Hz, L = 450)."""
    return Preprocessing(MODEL_RATE, WINDOW, PRE, design_bandpass(MODEL_RATE, BAND_HZ), BAND_HZ)


@dataclass(frozen=True)
class Match:
    """Reference beats paired one-to-one with detections within the match window."""

    found: np.ndarray  # bool per reference beat
    true: np.ndarray  # bool per detection
    offset: np.ndarray  # detection - reference, in samples, for the matched pairs


def match(reference: np.ndarray, detected: np.ndarray, tolerance: int) -> Match:
    """Pair each reference beat with its nearest detection within ``tolerance`` samples; a detection
    claimed by several references goes to the nearest one."""
    ref, det = np.asarray(reference, dtype=np.int64), np.asarray(detected, dtype=np.int64)
    if det.size == 0 or ref.size == 0:
        return Match(np.zeros(ref.size, bool), np.zeros(det.size, bool), np.zeros(0, np.int64))
    right = np.clip(np.searchsorted(det, ref), 1, det.size - 1) if det.size > 1 else np.zeros(ref.size, int)
    left = np.maximum(right - 1, 0)
    nearest = np.where(np.abs(det[left] - ref) <= np.abs(det[right] - ref), left, right)
    distance = np.abs(det[nearest] - ref)
    order = np.lexsort((distance, nearest))  # by detection, nearest reference first
    first = np.ones(ref.size, dtype=bool)
    first[order[1:]] = nearest[order[1:]] != nearest[order[:-1]]
    found = (distance <= tolerance) & first
    true = np.zeros(det.size, dtype=bool)
    true[nearest[found]] = True
    return Match(found, true, det[nearest[found]] - ref[found])


def flutter_episodes(ann_sample: np.ndarray, ann_symbol: np.ndarray) -> np.ndarray:
    """[E, 2] first and last sample of each reference episode of ventricular flutter or fibrillation (``[`` to
    ``]``; one left open runs to the end). EC57 leaves them out of beat statistics: their flutter waves are
    not beats a detector can be asked to count, so neither the reference nor the detections in them count."""
    episodes, on = [], None
    for at, y in zip(np.asarray(ann_sample, dtype=np.int64).tolist(), np.asarray(ann_symbol).astype(str)):
        if y == FLUTTER_ON and on is None:
            on = at
        elif y == FLUTTER_OFF and on is not None:
            episodes.append((on, at))
            on = None
    if on is not None:
        episodes.append((on, np.iinfo(np.int64).max))
    return np.array(episodes, dtype=np.int64).reshape(-1, 2)


def outside(samples: np.ndarray, episodes: np.ndarray) -> np.ndarray:
    """True for the samples outside every episode [E, 2] (first and last sample, both inside)."""
    samples = np.asarray(samples, dtype=np.int64)
    inside = (samples[:, None] >= episodes[None, :, 0]) & (samples[:, None] <= episodes[None, :, 1])
    return ~inside.any(axis=1)


def score_detections(reference: np.ndarray, detected: np.ndarray, fs: float,
                     symbols: np.ndarray | None = None, excluded: np.ndarray | None = None) -> dict:
    """Se, +P, DER and fiducial offsets (also per AAMI class when ``symbols`` are given); reference beats and
    detections inside the ``excluded`` episodes [E, 2] (``flutter_episodes``) are left out."""
    if excluded is not None and len(excluded):
        keep = outside(reference, excluded)
        reference = np.asarray(reference)[keep]
        symbols = None if symbols is None else np.asarray(symbols)[keep]
        detected = np.asarray(detected)[outside(detected, excluded)]
    m = match(reference, detected, int(round(MATCH_S * fs)))
    n_ref, tp = int(m.found.size), int(m.found.sum())
    fn, fp = n_ref - tp, int((~m.true).sum())
    off = np.abs(m.offset)
    out = {"reference_beats": n_ref, "detected": int(m.true.size), "tp": tp, "fn": fn, "fp": fp,
           "se": tp / n_ref if n_ref else None, "ppv": tp / m.true.size if m.true.size else None,
           "der": (fn + fp) / n_ref if n_ref else None,
           "offset_median_abs_samples": float(np.median(off)) if off.size else None,
           "offset_p95_abs_samples": float(np.percentile(off, 95)) if off.size else None,
           "offset_median_abs_ms": float(np.median(off) / fs * 1e3) if off.size else None,
           "offset_p95_abs_ms": float(np.percentile(off, 95) / fs * 1e3) if off.size else None}
    if symbols is not None:
        classes = np.array([SYMBOL_CLASS.get(str(s), "?") for s in symbols])
        out["by_class"] = {}
        for c in AAMI:
            sel = classes == c
            if sel.any():
                idx = np.flatnonzero(sel)
                matched = m.found[idx]
                offsets = np.abs(m.offset[np.searchsorted(np.flatnonzero(m.found), idx[matched])])
                out["by_class"][c] = {"beats": int(sel.sum()), "found": int(matched.sum()),
                                      "se": float(matched.mean()),
                                      "offset_median_abs_samples": float(np.median(offsets)) if offsets.size else None}
    return out


def record_100() -> tuple[dict[str, np.ndarray], float, np.ndarray, np.ndarray]:
    """Record 100's two leads in mV ({"MLII", "V5"}), 360 Hz, and its annotated beats (samples, symbols)."""
    with np.load(BUNDLED, allow_pickle=False) as z:
        mlii = (z["mitdb_100_adc"].astype(np.float64) - z["mitdb_100_baseline"]) / z["mitdb_100_gain"]
        fs = float(z["mitdb_100_fs"])
        samples, symbols = z["mitdb_100_ann_sample"], z["mitdb_100_ann_symbol"]
    beat = np.array([s in SYMBOL_CLASS for s in symbols])
    return {"MLII": mlii, "V5": load_record("mitdb_100_v5")[0][:, 0]}, fs, samples[beat], symbols[beat]


def add_noise(x: np.ndarray, fs: float, kind: str, snr_db: float, seed: int) -> np.ndarray:
    """``x`` plus baseline wander (0.3 Hz breathing + 0.05 Hz drift), mains hum (60 Hz) or white noise,
    scaled to ``snr_db`` below the signal's power."""
    t = np.arange(x.size) / fs
    noise = {"wander": lambda: np.sin(2 * np.pi * 0.3 * t) + 0.5 * np.sin(2 * np.pi * 0.05 * t + 1.0),
             "mains": lambda: np.sin(2 * np.pi * 60.0 * t),
             "white": lambda: np.random.default_rng(seed).standard_normal(x.size)}[kind]()
    return x + noise / noise.std() * np.sqrt(x.var() / 10 ** (snr_db / 10))


def conditions(quick: bool) -> list[tuple[str, str, str, float, int]]:
    """(name, lead, change, value, seed) of the record-100 stress conditions."""
    rows = [(f"{lead}", lead, "none", 0.0, 0) for lead in ("MLII", "V5")]
    rows += [(f"{lead} inverted", lead, "invert", 0.0, 0) for lead in ("MLII", "V5")]
    rows += [(f"{lead} at {fs} Hz", lead, "rate", float(fs), 0) for lead in ("MLII", "V5")
             for fs in ((125, 1000) if quick else (125, 250, 500, 1000))]
    rows += [(f"{lead} + {kind} {snr} dB", lead, kind, float(snr), 1) for lead in ("MLII", "V5")
             for kind in ("wander", "mains", "white") for snr in ((6,) if quick else (12, 6))]
    return rows


def apply_condition(x: np.ndarray, fs: float, ann: np.ndarray, change: str, value: float, seed: int,
                    ) -> tuple[np.ndarray, float, np.ndarray]:
    """One stress condition (``conditions``' change, value, seed) applied to a lead: (signal, rate, beats)."""
    if change == "invert":
        return -x, fs, ann
    if change == "rate":
        return resample(x, fs, value), value, np.round(ann * value / fs).astype(np.int64)
    return (x if change == "none" else add_noise(x, fs, change, value, seed)), fs, ann


def stress(prep: Preprocessing, quick: bool = False) -> list[dict]:
    """Detection scores of record 100 under every condition (reference: its annotations)."""
    leads, fs, ann, symbols = record_100()
    rows = []
    for name, lead, change, value, seed in conditions(quick):
        x, rate, ref = apply_condition(leads[lead], fs, ann, change, value, seed)
        rows.append({"condition": name, "fs": rate, **score_detections(ref, r_peaks(x, rate, prep), rate, symbols)})
    return rows


def ventricular(prep: Preprocessing, quick: bool = False) -> list[dict]:
    """Detection scores of record 100's MLII with synthetic ventricular beats of several widths,
    polarities and sizes, as isolated beats (every 5th) and bigeminy (every 2nd)."""
    leads, fs, ann, _ = record_100()
    rows = []
    sizes = (0.7, 3.0) if quick else (0.7, 1.5, 3.0)
    for every in (5, 2):
        for shape in ("up", "down", "bi"):
            for width in (0.025, 0.04):
                for size in sizes:
                    x, ref, sym = with_ventricular_beats(leads["MLII"], fs, ann, every, width, size, shape)
                    rows.append({"pattern": "bigeminy" if every == 2 else "every 5th", "shape": shape,
                                 "qrs_sd_ms": width * 1e3, "size": size,
                                 **score_detections(ref, r_peaks(x, fs, prep), fs, sym)})
    return rows


def xqrs_agreement(prep: Preprocessing) -> list[dict]:
    """Per lead of the unannotated records: beats found by the runtime and by wfdb's XQRS, and their
    agreement (XQRS as reference); with the runtime's own consensus across leads as a second reference."""
    try:
        import logging

        from wfdb import processing
    except ImportError:
        raise InputError("detector agreement needs wfdb, which is not installed: "
                         "pip install '.[wfdb]' in the ecgae source folder") from None
    logging.getLogger("wfdb").setLevel(logging.ERROR)
    rows = []
    for key in ("ptb_s0010_re", "c2015_a103l"):
        signal, fs, names = load_record(key)
        ours = [r_peaks(signal[:, i], fs, prep) for i in range(len(names))]
        consensus = _consensus(ours, int(round(MATCH_S * fs)))
        for i, lead in enumerate(names):
            xqrs = np.asarray(processing.xqrs_detect(signal[:, i], fs=fs, verbose=False), dtype=np.int64)
            vs_xqrs = score_detections(xqrs, ours[i], fs)
            vs_leads = score_detections(consensus, ours[i], fs)
            rows.append({"record": key, "lead": lead, "fs": fs, "seconds": signal.shape[0] / fs,
                         "runtime_beats": int(ours[i].size), "xqrs_beats": int(xqrs.size),
                         "agreement_vs_xqrs": {k: vs_xqrs[k] for k in ("se", "ppv", "offset_median_abs_ms")},
                         "agreement_vs_lead_consensus": {k: vs_leads[k] for k in ("se", "ppv")}})
    return rows


def _consensus(per_lead: list[np.ndarray], tolerance: int) -> np.ndarray:
    """Beats found in at least half of the leads (each at the median position of its cluster)."""
    allp = np.sort(np.concatenate(per_lead))
    if allp.size == 0:
        return allp
    cluster = np.concatenate(([0], np.cumsum(np.diff(allp) > tolerance)))
    counts = np.bincount(cluster)
    centres = np.array([np.median(allp[cluster == c]) for c in range(counts.size)])
    return np.round(centres[counts >= len(per_lead) / 2]).astype(np.int64)


def raw_to_scores_speed(model, repeats: int = 7) -> dict:
    """Raw 30-min record 100 (MLII, mV) -> beats -> scores on one core: best of ``repeats`` runs."""
    leads, fs, _, _ = record_100()
    x = leads["MLII"]
    model.score(cut_beats(x[: int(60 * fs)], fs, model.preprocessing).beats)  # warm-up
    best, detect_best, n = np.inf, np.inf, 0
    for _ in range(repeats):
        t0 = time.perf_counter()
        beats = cut_beats(x, fs, model.preprocessing).beats  # as analyze cuts them: the quality gate included
        t1 = time.perf_counter()
        scores = model.score(beats)
        t2 = time.perf_counter()
        best, detect_best, n = min(best, t2 - t0), min(detect_best, t1 - t0), int(scores.size)
    seconds = x.size / fs
    return {"signal_seconds": seconds, "beats": n, "repeats": repeats, "best_seconds": best,
            "best_cut_beats_seconds": detect_best, "x_real_time": seconds / best}


def measure(model, quick: bool = False) -> dict:
    """The detector section of ``ecgae bench``: stress conditions, synthetic ventricular beats, agreement
    with XQRS (when wfdb is installed) and the raw -> scores speed, with the model's preprocessing."""
    prep = model.preprocessing
    out = {"match_window_s": MATCH_S, "stress": stress(prep, quick), "ventricular": ventricular(prep, quick),
           "speed": raw_to_scores_speed(model, 3 if quick else 7)}
    try:
        out["agreement"] = xqrs_agreement(prep)
    except InputError as e:
        out["agreement_skipped"] = str(e)
    return out


def pct(v: float | None) -> str:
    """A fraction as a percentage with two decimals; a dash when not measured."""
    return "-" if v is None else f"{100 * v:.2f}"


def markdown(d: dict) -> list[str]:
    """The detector section as Markdown lines."""
    stress = [[r["condition"], pct(r["se"]), pct(r["ppv"]), str(r["fn"]), str(r["fp"]),
               f"{r['offset_median_abs_samples']:.0f} / {r['offset_p95_abs_samples']:.0f}"] for r in d["stress"]]
    ventricular = []
    for r in d["ventricular"]:
        v = r["by_class"]["V"]
        ventricular.append([r["pattern"], r["shape"], f"{r['qrs_sd_ms']:.0f}", str(r["size"]), pct(r["se"]),
                            pct(r["ppv"]), f"{v['found']}/{v['beats']}", f"{v['offset_median_abs_samples']:.0f}"])
    lines = ["## Beat detection", "",
             "The runtime's own path (resample to the model rate, the bundle's band-pass, the QRS detector), "
             f"matched to the reference annotations within {d['match_window_s'] * 1e3:.0f} ms (ANSI/AAMI EC57). "
             "Offsets are |detection - annotation| in samples at the condition's rate (MIT-BIH's annotations "
             "are placed on MLII, so V5's offsets include the lead's own delay).", "",
             *table(["record 100 condition", "Se %", "+P %", "FN", "FP", "offset median / p95 (samples)"], stress),
             "", "Synthetic ventricular beats in record 100's MLII (wide QRS of the given sd, upright, "
             "inverted or biphasic, a discordant T wave, premature at 0.65 RR with a compensatory pause; a "
             "test of width and polarity, not of real PVC variety):", "",
             *table(["pattern", "shape", "QRS sd ms", "size x R", "Se %", "+P %", "V found", "V offset median"],
                    ventricular)]
    if "agreement" in d:
        agreement = []
        for r in d["agreement"]:
            x, c = r["agreement_vs_xqrs"], r["agreement_vs_lead_consensus"]
            agreement.append([r["record"], r["lead"], f"{r['fs']:.0f}", str(r["runtime_beats"]),
                              str(r["xqrs_beats"]), f"{pct(x['se'])} / {pct(x['ppv'])}",
                              f"{pct(c['se'])} / {pct(c['ppv'])}"])
        lines += ["", "Unannotated records: beats found per lead, agreement with wfdb's XQRS (XQRS as "
                  "reference) and with the runtime's own consensus over the record's leads (beats found in at "
                  "least half of them):", "",
                  *table(["record", "lead", "fs", "runtime beats", "XQRS beats", "Se / +P vs XQRS %",
                          "Se / +P vs consensus %"], agreement)]
    else:
        lines += ["", f"Agreement with XQRS not measured: {d['agreement_skipped']}"]
    s = d["speed"]
    lines += ["", f"Raw 30-minute record -> beats -> scores on one core: {s['beats']} beats in "
              f"{s['best_seconds'] * 1e3:.0f} ms (best of {s['repeats']}; finding, judging and cutting the beats "
              f"{s['best_cut_beats_seconds'] * 1e3:.0f} ms), **{s['x_real_time']:,.0f}x real time**."]
    return lines
