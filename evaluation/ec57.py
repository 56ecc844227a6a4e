"""EC57 beat-class tables: the model and the no-model baselines on annotated recordings, per record and gross.

Protocol. Each recording is enrolled on its first ``enrol_seconds`` (default 120: the wearer's enrolment;
``Model.calibrate`` sees those beats unlabelled) and only the beats after that are counted, matched to the
reference within 150 ms (``evaluation.aami`` gives the statistics and how each is computed). EC57 itself
allows a learning period (5 min in the standard's reference comparator); the project's is the 2 minutes a
wearer enrols on. A recording shorter than twice the enrolment (the ``mitdb-60s`` minutes) is enrolled on
its first half and counted on its second: 30 s of enrolment, 30 s scored, so no scored beat was seen at
enrolment, as in the long records; a minute's second half holds about 35-55 beats, so their figures are
pooled (gross) rather than read one by one.

Methods, on the same detected beats: the model (``Model.analyze`` after ``Model.calibrate``: its R peaks
and ``beats.label``), and the baselines of ``evaluation.beat_baselines`` (correlation with the median
beat; Ward clustering of raw windows). Without a model the beats come from the runtime's QRS detector on
the 0.5-40 Hz band-passed signal at the record's own rate.

Gross statistics sum the confusion matrices of the records (EC57's gross figures) and are kept apart for
real records, real one-minute excerpts and GENERATED recordings (``evaluation.ectopy``), which the tables
label as such.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import numpy as np

from ..benchmarks.markdown import table
from ..runtime.detector import detect_r_peaks
from ..runtime.errors import InputError
from ..runtime.preprocess import design_bandpass, fir_filter
from . import aami
from .beat_baselines import BAND_HZ, BASELINES

ENROL_SECONDS = 120.0
MODEL = "model"
GROUPS = (  # each its own table and gross figures: (key, title)
    ("real", "Real annotated records"),
    ("minute", "Real one-minute excerpts (each enrolled on its first 30 s, counted on its last 30 s)"),
    ("generated", "GENERATED records (real beats edited; not real patients)"),
)


def group(rec: Recording) -> str:
    """A recording's group (a key of ``GROUPS``): its own ``group`` when it says, else real or generated."""
    return getattr(rec, "group", None) or ("generated" if getattr(rec, "generated", False) else "real")


class Recording(Protocol):
    """What a table needs of a recording: one lead in mV, its rate and reference annotations."""

    name: str
    signal: np.ndarray
    fs: float
    ann_sample: np.ndarray
    ann_symbol: np.ndarray
    generated: bool


class WfdbRecording:
    """A WFDB record's lead and its ``.atr`` reference annotations."""

    generated = False

    def __init__(self, path: str | Path, lead: int | str = 0):
        import wfdb

        base = Path(path)
        base = base.with_suffix("") if base.suffix in (".hea", ".dat", ".atr") else base
        if not base.with_suffix(".hea").is_file() or not base.with_suffix(".atr").is_file():
            raise InputError(f"record: expected a WFDB record with .hea and .atr files, received {str(path)!r}")
        rec, ann = wfdb.rdrecord(str(base)), wfdb.rdann(str(base), "atr")
        idx = rec.sig_name.index(lead) if isinstance(lead, str) else int(lead)
        self.name = f"{base.name} {rec.sig_name[idx]}"
        self.signal, self.fs = np.nan_to_num(rec.p_signal[:, idx]), float(rec.fs)
        self.ann_sample, self.ann_symbol = np.asarray(ann.sample), np.asarray(ann.symbol)


def enrolment(seconds: float, enrol_seconds: float = ENROL_SECONDS) -> float:
    """Seconds to enrol on: ``enrol_seconds``, or the first half of a recording shorter than twice that."""
    if not enrol_seconds > 0:
        raise InputError(f"enrol_seconds: expected a duration > 0, received {enrol_seconds!r}")
    return enrol_seconds if seconds >= 2 * enrol_seconds else seconds / 2


def detect(signal: np.ndarray, fs: float) -> np.ndarray:
    """R peaks by the runtime's detector when no model is given (the baselines need beats)."""
    return detect_r_peaks(fir_filter(np.asarray(signal, dtype=np.float64), design_bandpass(fs, BAND_HZ)), fs)


def _entry(m: np.ndarray) -> dict:
    return {"confusion": m.tolist(), **aami.statistics(m)}


def evaluate_recording(rec: Recording, model: object | None = None, enrol_seconds: float = ENROL_SECONDS,
                       model_name: str = MODEL) -> dict:
    """One recording's EC57 figures for the model (when given) and each baseline, on the same beats."""
    signal = np.asarray(rec.signal, dtype=np.float64).reshape(-1)
    fs = float(rec.fs)
    enrol = enrolment(signal.size / fs, enrol_seconds)
    start = int(round(enrol * fs))
    labels = {}
    if model is not None:
        beats = model.analyze(signal, fs, profile=model.calibrate(signal, fs, seconds=enrol))
        r_peak = np.asarray(beats.r_peak, dtype=np.int64)
        labels[model_name] = np.asarray(beats.label).astype(str)
    else:
        r_peak = detect(signal, fs)
    for name, classify in BASELINES.items():
        labels[name] = classify(signal, fs, r_peak)[0]
    methods = {name: _entry(aami.confusion(rec.ann_sample, rec.ann_symbol, r_peak, lab, fs, start=start))
               for name, lab in labels.items()}
    return {"record": rec.name, "generated": bool(getattr(rec, "generated", False)), "group": group(rec),
            "seconds": signal.size / fs,
            "enrol_seconds": enrol, "beats_from": model_name if model is not None else "runtime detector",
            "methods": methods}


def gross(records: list[dict]) -> dict:
    """Per method, the statistics of the summed confusion matrices (each group of ``GROUPS`` apart)."""
    out: dict = {}
    for kind, _ in GROUPS:
        sums: dict[str, np.ndarray] = {}
        for r in (r for r in records if r["group"] == kind):
            for name, e in r["methods"].items():
                sums[name] = sums.get(name, 0) + np.asarray(e["confusion"], dtype=np.int64)
        if sums:
            out[kind] = {name: _entry(m) for name, m in sums.items()}
    return out


def ec57_table(recordings, model: object | None = None, enrol_seconds: float = ENROL_SECONDS,
               model_name: str = MODEL) -> dict:
    """The whole table (JSON-ready): per-record figures of every method, and gross figures."""
    records = [evaluate_recording(rec, model, enrol_seconds, model_name) for rec in recordings]
    return {"standard": "ANSI/AAMI EC57 beat-by-beat, match window 150 ms", "enrol_seconds": enrol_seconds,
            "records": records, "gross": gross(records)}


def _cell(v: float | None) -> str:
    return "-" if v is None else f"{v:.3f}"


HEADER = ["record", "method", "V", "S", "VEB Se", "VEB +P", "SVEB Se", "SVEB +P", "N Sp", "beat Se", "beat +P"]


def _row(record: str, method: str, s: dict) -> list[str]:
    return [record, method, str(s["beats"]["V"]), str(s["beats"]["S"]), *map(_cell, (
        s["veb_se"], s["veb_pp"], s["sveb_se"], s["sveb_pp"], s["n_spec"], s["beat_se"], s["beat_pp"]))]


def markdown(result: dict) -> str:
    """Per-record and gross tables, one per group: real records first, GENERATED ones last."""
    lines = []
    for kind, title in GROUPS:
        rows = [_row(r["record"], name, s) for r in result["records"] if r["group"] == kind
                for name, s in r["methods"].items()]
        if not rows:
            continue
        rows += [_row(f"**gross ({kind})**", name, s) for name, s in result["gross"][kind].items()]
        lines += [f"**EC57 beat classes: {title}** (beats after each record's enrolment: its first "
                  f"{result['enrol_seconds']:g} s, or the first half of a record shorter than twice that; V and S "
                  "count the reference beats scored; 150 ms match window)", "", *table(HEADER, rows), ""]
    return "\n".join(lines)


def run_cli(bundle: Path, records: list[Path], out: Path, enrol_seconds: float = ENROL_SECONDS) -> int:
    """``ecgae evaluate BUNDLE --ec57 RECORD...``: print the tables, write the JSON."""
    from ..runtime import Model
    from ..runtime.io import write_json

    if not (Path(bundle) / "manifest.json").is_file():
        raise InputError(f"--ec57: expected an exported bundle (manifest.json), received {str(bundle)!r}")
    recordings = [WfdbRecording(r) for r in records]  # every record checked before the model runs
    result = ec57_table(recordings, Model.load(bundle), enrol_seconds)
    write_json(out, result)
    print(markdown(result))
    print(f"wrote {out}")
    return 0
