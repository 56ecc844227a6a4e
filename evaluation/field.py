"""The field table: how the runtime fares on every real recording the project has, from other people and
other devices, as a new user would run it: ``Model.calibrate`` on the start of the recording, then
``Model.analyze`` with that profile.

One row per recording and lead:
- enrolment: the first ``ENROL_SECONDS`` (5 minutes); a recording shorter than ``SHORT_SECONDS`` (7
  minutes, too short to leave much after a 5-minute enrolment) enrols on its first half. A refused
  enrolment is a result: its error text goes into the row, and the later beats are still analysed without
  a profile (usable share and beat rate, no flagged share).
- usable: share of the later beats (R peak after the enrolment) the quality gate calls usable;
  flagged: share of the later usable beats flagged against the profile.
- beats/min (from first to last beat) of the beats found, beside wfdb's XQRS on the same lead (its gaps
  filled by interpolation, which XQRS needs), and the agreement of the two (XQRS as reference, 150 ms);
  wfdb's gqrs as a second opinion where the two differ by more than 2 % (XQRS finds no beat in PTB's 38 s
  at 1000 Hz; gqrs costs as much as XQRS, so it runs only there). The peers' beats count only where
  ``analyze`` can window a beat.
- paced beats found, when the runtime reports them (``Beats.paced``); the annotated paced beats of the
  paced records beside them.
- gaps: runs of NaN samples in the raw recording (and the runtime's own count when it reports ``gaps``).
Any failure is written into its row; the table is never cut short by one recording.

A second table runs the same on generated copies of record 100's first 10 minutes (MLII) that isolate one
mechanism each, at 125, 250, 360 and 1000 Hz: through an 8-bit ADC, and with a pacemaker-like spike
before every beat (``ecgae.benchmarks.generated``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..benchmarks.detection import pct, record_100, score_detections
from ..benchmarks.generated import eight_bit, with_pacing_spikes
from ..benchmarks.markdown import table
from ..benchmarks.qrs_peers import gqrs, xqrs
from ..runtime import Model
from ..runtime.io import atomic_write_bytes, write_json
from ..runtime.preprocess import resample, window_end
from ..training.build_field import FIELD, MIMIC, PACED, load_annotations
from ..training.build_others import load_record

ENROL_SECONDS = 300.0
SECOND_OPINION = 0.02  # gqrs runs too where ecgae's and XQRS's beats/min differ by more than this share
GENERATED_SECONDS = 600.0  # record 100's excerpt for the generated rows: 5 minutes to enrol, 5 scored
GENERATED_RATES = (125.0, 250.0, 360.0, 1000.0)
SHORT_SECONDS = 420.0
PACED_SYMBOLS = ("/", "f")  # MIT-BIH: paced beat, fusion of paced and normal


@dataclass(frozen=True)
class Recording:
    """One lead of one real recording, in mV at its own rate (NaN where the recording has no sample)."""

    record: str
    lead: str
    x: np.ndarray
    fs: float
    paced_reference: int | None = None  # annotated paced beats, when the record is annotated


def recordings() -> list[Recording]:
    """Every real recording the project ships: record 100 (MLII, V5), PTB s0010_re (i, ii), Challenge
    2015 a103l (II, V), both MIMIC-II segments whole (MCL1, V), the four paced minutes."""
    leads, fs, _, _ = record_100()
    out = [Recording("mitdb 100", lead, x, fs) for lead, x in leads.items()]
    for key, record, wanted in (("ptb_s0010_re", "ptb s0010_re", ("i", "ii")),
                                ("c2015_a103l", "c2015 a103l", ("II", "V"))):
        signal, rate, names = load_record(key)
        out += [Recording(record, lead, signal[:, names.index(lead)], rate) for lead in wanted]
    for key in MIMIC:
        signal, rate, names = load_record(key, FIELD)
        out += [Recording(f"mimic2 {key.split('_')[1]}", lead, signal[:, i], rate) for i, lead in enumerate(names)]
    for key in PACED:
        signal, rate, names = load_record(key, FIELD)
        _, symbols = load_annotations(key)
        out.append(Recording(f"mitdb {key.split('_')[1]} (60 s)", names[0], signal[:, 0], rate,
                             int(np.isin(symbols, PACED_SYMBOLS).sum())))
    return out


def generated_recordings() -> list[Recording]:
    """Record 100's first 10 minutes (MLII) resampled to each of GENERATED_RATES, as recorded, through an
    8-bit ADC, and with a pacing spike before every annotated beat."""
    leads, fs, ann, _ = record_100()
    n = int(GENERATED_SECONDS * fs)
    out = []
    for rate in GENERATED_RATES:
        x = leads["MLII"][:n] if rate == fs else resample(leads["MLII"][:n], fs, rate)
        beats = np.round(ann[ann < n] * rate / fs).astype(np.int64)
        out += [Recording("100 (10 min)", "MLII", x, rate), Recording("100 (10 min) 8-bit", "MLII", eight_bit(x), rate),
                Recording("100 (10 min) + spikes", "MLII", with_pacing_spikes(x, rate, beats)[0], rate)]
    return out


def enrolment_seconds(n_samples: int, fs: float) -> float:
    """5 minutes, or the first half of a recording shorter than 7 minutes."""
    seconds = n_samples / fs
    return ENROL_SECONDS if seconds >= SHORT_SECONDS else seconds / 2


def nan_runs(x: np.ndarray) -> tuple[int, int]:
    """(runs of consecutive non-finite samples, non-finite samples) in ``x``."""
    bad = ~np.isfinite(x)
    return int(np.count_nonzero(np.diff(np.r_[False, bad].astype(np.int8)) == 1)), int(bad.sum())


def _filled(x: np.ndarray) -> np.ndarray:
    """``x`` with non-finite samples linearly interpolated (XQRS cannot take them)."""
    bad = ~np.isfinite(x)
    if not bad.any() or bad.all():
        return x
    idx = np.arange(x.size)
    return np.where(bad, np.interp(idx, idx[~bad], x[~bad]), x)


def windowable(model: Model, n_samples: int, fs: float) -> tuple[int, int]:
    """Samples [lo, hi) where an R peak has the full window ``analyze`` needs: the peers' beats outside are
    not counted, as ``analyze`` cannot report them (one or two beats of a one-minute record)."""
    prep = model.preprocessing
    return int(np.ceil(prep.pre * fs / prep.sample_rate)), n_samples - window_end(prep, fs)


def rate(peaks: np.ndarray, fs: float) -> float:
    """Beats per minute from first to last beat ((n - 1) intervals), so edges cut off count for nothing."""
    return 60.0 * (peaks.size - 1) / ((peaks[-1] - peaks[0]) / fs) if peaks.size > 1 else 0.0


def _error(e: Exception) -> str:
    return f"{type(e).__name__}: {e}"


def field_row(model: Model, rec: Recording) -> dict:
    """One recording's row (see the module's docstring)."""
    n, fs = rec.x.size, rec.fs
    enrol = enrolment_seconds(n, fs)
    runs, missing = nan_runs(rec.x)
    row: dict = {"record": rec.record, "lead": rec.lead, "fs": fs, "minutes": n / fs / 60, "enrol_seconds": enrol,
                 "gap_runs": runs, "gap_samples": missing, "paced_reference": rec.paced_reference}
    profile = None
    try:
        profile = model.calibrate(rec.x, fs, seconds=enrol)
        row["enrolment_beats"] = int(profile.n_beats)
    except Exception as e:  # a refused enrolment is the row's finding, whatever raised it
        row["enrolment_error"] = _error(e)
    t0 = time.perf_counter()
    try:
        beats = model.analyze(rec.x, fs, profile)
    except Exception as e:
        row["analyze_error"] = _error(e)
        beats = None
    row["analyze_seconds"] = time.perf_counter() - t0
    filled = _filled(rec.x)
    lo, hi = windowable(model, n, fs)
    reference = xqrs(filled, fs)
    reference = reference[(reference >= lo) & (reference < hi)]
    row["xqrs_beats"], row["xqrs_bpm"] = int(reference.size), rate(reference, fs)
    if beats is None or abs(rate(beats.r_peak, fs) - row["xqrs_bpm"]) > SECOND_OPINION * row["xqrs_bpm"]:
        second = gqrs(filled, fs)
        second = second[(second >= lo) & (second < hi)]
        row["gqrs_beats"], row["gqrs_bpm"] = int(second.size), rate(second, fs)
    if beats is None:
        return row
    later = beats.r_peak >= int(round(enrol * fs))
    usable_later = later & beats.usable
    reasons, counts = np.unique(beats.reason[later & ~beats.usable], return_counts=True)
    agreement = score_detections(reference, beats.r_peak, fs)
    row |= {"beats": len(beats), "bpm": rate(beats.r_peak, fs), "later_beats": int(later.sum()),
            "usable_share": float(usable_later.sum() / later.sum()) if later.any() else None,
            "flagged_share": (float(beats.flag[usable_later].mean()) if profile is not None and usable_later.any()
                              else None),
            "unusable_reasons": {str(r): int(c) for r, c in zip(reasons, counts)},
            "vs_xqrs": {"se": agreement["se"], "ppv": agreement["ppv"]},
            "paced": int(np.count_nonzero(beats.paced)), "gaps_reported": len(beats.gaps)}
    return row


def field_table(model: Model | Path) -> dict:
    """Every recording's row with ``model`` (a loaded Model or a bundle directory); none for a bundle trained
    on pre-cut beats, which cannot read a raw recording (``skipped`` says so)."""
    model = model if isinstance(model, Model) else Model.load(model)
    out = {"bundle": str(model.bundle_dir), "enrol_seconds": ENROL_SECONDS, "short_seconds": SHORT_SECONDS}
    if model.preprocessing.sample_rate is None:
        return out | {"rows": [], "skipped": "the bundle was trained on pre-cut beats, not raw ECG"}
    return out | {"rows": [field_row(model, rec) for rec in recordings()],
                  "generated_rows": [field_row(model, rec) for rec in generated_recordings()]}


def _bpm(r: dict) -> str:
    ours = f"{r['bpm']:.1f}" if "bpm" in r else "-"
    diff = f" ({100 * (r['bpm'] / r['xqrs_bpm'] - 1):+.1f} %)" if "bpm" in r and r["xqrs_bpm"] else ""
    second = f"{r['gqrs_bpm']:.1f}" if "gqrs_bpm" in r else "-"
    return f"{ours} / {r['xqrs_bpm']:.1f} / {second}{diff}"


def _note(r: dict) -> str:
    parts = [f"enrolment refused: {r['enrolment_error']}"] if "enrolment_error" in r else []
    parts += [f"analyze failed: {r['analyze_error']}"] if "analyze_error" in r else []
    if r.get("unusable_reasons"):
        parts.append("unusable: " + ", ".join(f"{k} {v}" for k, v in r["unusable_reasons"].items()))
    return "; ".join(parts).replace("|", "/") or "-"


def _rows(rows: list[dict]) -> list[list[str]]:
    out = []
    for r in rows:
        vs = r.get("vs_xqrs")
        paced = "-" if r.get("paced") is None else str(r["paced"])
        if r["paced_reference"] is not None:
            paced += f" (ref {r['paced_reference']})"
        out.append([r["record"], r["lead"], f"{r['fs']:g}", f"{r['minutes']:.1f}",
                    f"{r['enrol_seconds']:.0f} s" + (f", {r['enrolment_beats']} beats" if "enrolment_beats" in r
                                                     else ", refused"),
                    pct(r.get("usable_share")), pct(r.get("flagged_share")), _bpm(r),
                    "-" if vs is None else f"{pct(vs['se'])} / {pct(vs['ppv'])}", paced,
                    f"{r['gap_runs']} ({r['gap_samples']})" + ("" if r.get("gaps_reported") is None
                                                                else f", runtime: {r['gaps_reported']}"), _note(r)])
    return out


HEADER = ["record", "lead", "Hz", "min", "enrolment", "usable %", "flagged %", "beats/min ecgae / XQRS / gqrs",
          "Se / +P vs XQRS %", "paced found", "gaps", "notes"]


def markdown(d: dict) -> list[str]:
    """The field table (and the generated rows' table) as Markdown lines."""
    if "skipped" in d:
        return ["## Field table: real recordings from other people and devices", "", f"Not measured: {d['skipped']}."]
    lines = ["## Field table: real recordings from other people and devices", "",
             f"Enrolment ({d['enrol_seconds']:.0f} s, or the first half of a recording shorter than "
             f"{d['short_seconds']:.0f} s) with `Model.calibrate`, then `Model.analyze` with the profile. Usable: "
             "share of the beats after the enrolment; flagged: share of those usable beats flagged. Beats/min: "
             "ecgae / wfdb XQRS / wfdb gqrs on the same lead (ecgae vs XQRS; gqrs only where they differ by more "
             f"than {100 * SECOND_OPINION:.0f} %); Se / +P of ecgae against XQRS within "
             "150 ms. Gaps: runs of missing (NaN) samples in the raw recording (samples).", "",
             *table(HEADER, _rows(d["rows"]))]
    if d.get("generated_rows"):
        lines += ["", "The same on record 100's first 10 minutes (MLII) at each rate: as recorded, through an "
                  "8-bit ADC (26 codes per mV), and with a 5 mV pacing spike 60 ms before every beat:", "",
                  *table(HEADER, _rows(d["generated_rows"]))]
    return lines


def write_field_table(model: Model | Path, out_dir: Path) -> dict:
    """Measure the field table and write ``field.json`` and ``field.md`` in ``out_dir``; returns the table."""
    d = field_table(model)
    out_dir.mkdir(parents=True, exist_ok=True)
    write_json(out_dir / "field.json", d)
    atomic_write_bytes(out_dir / "field.md", ("\n".join(markdown(d)) + "\n").encode())
    return d


def print_field_table(model: Model | Path, out_dir: Path) -> dict:
    """``write_field_table`` for a command line: prints the table and where it went."""
    d = write_field_table(model, out_dir)
    print("\n".join(markdown(d)))
    print(f"wrote {out_dir / 'field.json'} and {out_dir / 'field.md'}")
    return d
