"""The demo report's EC57 section: the tables (real records when given, GENERATED ones always, since the
package carries what they are built from) and the template figure of one recording."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..runtime.io import write_json
from .ec57 import ENROL_SECONDS, WfdbRecording, ec57_table, enrolment, markdown
from .ectopy import PATTERNS
from .ectopy_sources import LEADS, generated_settings
from .template_figure import plot_templates

REPORT_BURDENS = (0.2, 0.4)  # the demo's generated settings: every pattern at these burdens, both leads


def template_figure(model: object, rec, out: Path, enrol_seconds: float = ENROL_SECONDS) -> Path:
    """The templates the model keeps for one recording after enrolling on its start."""
    signal, fs = np.asarray(rec.signal, dtype=np.float64), float(rec.fs)
    profile = model.calibrate(signal, fs, seconds=enrolment(signal.size / fs, enrol_seconds))
    beats = model.analyze(signal, fs, profile=profile)
    kind = "GENERATED " if getattr(rec, "generated", False) else ""
    return plot_templates(signal, fs, beats.r_peak, beats.template, beats.label, out,
                          f"{kind}{rec.name}: the model's templates (mean beat, count, class)")


@dataclass(frozen=True)
class StoredRecording:
    """A real annotated recording the package carries (``training/data``), as an EC57 table reads it."""

    name: str
    signal: np.ndarray
    fs: float
    ann_sample: np.ndarray
    ann_symbol: np.ndarray
    generated: bool = False
    group: str = "real"


def stored_recordings(keys: tuple[str, ...] = ("mitdb_106", "mitdb_118", "mitdb_200"),
                      minutes: bool = False) -> list[StoredRecording]:
    """Record 100 (MLII) and the other patients' MIT-BIH records the package carries, so the demo's EC57 table
    runs on real annotated beats on a fresh machine; with ``minutes``, also the one-minute excerpts of the
    ``mitdb-60s`` records (their first lead), a group of their own."""
    from ..training.build_field import FIELD, load_annotations
    from ..training.build_others import load_record
    from .ectopy_sources import record100

    x, fs, ann_sample, ann_symbol = record100("MLII")
    out = [StoredRecording("100 MLII", x, fs, ann_sample, ann_symbol)]
    excerpts = []
    if minutes:
        with np.load(FIELD, allow_pickle=False) as z:
            excerpts = sorted(k[: -len("_adc")] for k in z.files if k.endswith("_60s_adc"))
    for key in [*keys, *excerpts]:
        signal, rate, leads = load_record(key, FIELD)
        minute = key.endswith("_60s")
        name = f"{key.split('_')[1]}{' (60 s)' if minute else ''} {leads[0]}"
        out.append(StoredRecording(name, signal[:, 0], rate, *load_annotations(key),
                                   group="minute" if minute else "real"))
    return out


def report_section(model: object, out_dir: Path, records: Iterable[str | Path | StoredRecording] = (),
                   burdens: tuple[float, ...] = REPORT_BURDENS, patterns: tuple[str, ...] = PATTERNS,
                   leads: tuple[str, ...] = LEADS, enrol_seconds: float = ENROL_SECONDS) -> str:
    """Write ``ec57.json`` and ``ec57_templates.png`` into ``out_dir``; return the Markdown section. The
    figure shows the recording with the most ventricular beats."""
    recordings = ([r if isinstance(r, StoredRecording) else WfdbRecording(r) for r in records]
                  + list(generated_settings(leads, patterns, burdens)))
    result = ec57_table(recordings, model, enrol_seconds)
    out_dir = Path(out_dir)
    write_json(out_dir / "ec57.json", result)
    shown = max(recordings, key=lambda r: int(np.isin(r.ann_symbol, ["V"]).sum()))  # the most ectopy to see
    figure = template_figure(model, shown, out_dir / "ec57_templates.png", enrol_seconds)
    return f"{markdown(result)}\n![beat templates of {shown.name}]({figure.name})\n"
