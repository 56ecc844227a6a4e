"""The real beats the GENERATED ectopy is built from, and the standard set of generated settings.

Base recordings: record 100, leads MLII and V5 (``training/data``: bundled.npz and others.npz). Ventricular
morphologies: record 100's own PVC in the same lead (its one V beat: the unifocal pattern's morphology),
and the median PVC of four other MIT-BIH patients' MLII leads (multiform draws from all five), stored in
``training/data/ventricular.npz`` by ``python -m ecgae.evaluation.ectopy_sources SOURCE_DIR`` (SOURCE_DIR
holds ``mitdb/`` and ``mitdb-60s/`` WFDB records with reference annotations).
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from ..training.build_dataset import BUNDLED, write_npz
from ..training.build_others import load_record
from .ectopy import PATTERNS, GeneratedRecord, VentricularTemplate, generate, ventricular_template

TEMPLATES = BUNDLED.with_name("ventricular.npz")
FOREIGN = {"mitdb_106": "mitdb/106", "mitdb_200": "mitdb/200", "mitdb_215_60s": "mitdb-60s/215_60s",
           "mitdb_221_60s": "mitdb-60s/221_60s"}  # key -> WFDB record; MLII is each record's first lead
LEADS = ("MLII", "V5")
BURDENS = (0.1, 0.2, 0.3, 0.4)
SEED = 2026


def build(source: Path, out: Path = TEMPLATES) -> dict[str, np.ndarray]:
    """Take each foreign record's median PVC and write them atomically; returns the arrays written."""
    import wfdb

    arrays: dict[str, np.ndarray] = {}
    for key, name in FOREIGN.items():
        rec, ann = wfdb.rdrecord(str(source / name), channels=[0]), wfdb.rdann(str(source / name), "atr")
        t = ventricular_template(rec.p_signal[:, 0], rec.fs, ann.sample, np.asarray(ann.symbol), key)
        arrays |= {f"{key}_wave": t.wave.astype(np.float32), f"{key}_pre": np.int64(t.pre),
                   f"{key}_normal_qrs": np.float64(t.normal_qrs), f"{key}_fs": np.float64(rec.fs),
                   f"{key}_count": np.int64(np.sum(np.asarray(ann.symbol) == "V"))}
    write_npz(out, arrays)
    return arrays


def foreign_templates() -> list[VentricularTemplate]:
    """Other patients' median PVCs (MLII, 360 Hz)."""
    with np.load(TEMPLATES, allow_pickle=False) as z:
        return [VentricularTemplate(k, z[f"{k}_wave"].astype(np.float64), int(z[f"{k}_pre"]),
                                    float(z[f"{k}_normal_qrs"])) for k in FOREIGN]


def record100(lead: str) -> tuple[np.ndarray, float, np.ndarray, np.ndarray]:
    """Record 100's ``lead`` (MLII or V5) in mV, its sample rate and its reference annotations."""
    with np.load(BUNDLED, allow_pickle=False) as z:
        ann_sample, ann_symbol = z["mitdb_100_ann_sample"], z["mitdb_100_ann_symbol"]
        if lead == "MLII":
            x = (z["mitdb_100_adc"].astype(np.float64) - z["mitdb_100_baseline"]) / z["mitdb_100_gain"]
            return x, float(z["mitdb_100_fs"]), ann_sample, ann_symbol
    if lead != "V5":
        raise ValueError(f"lead: expected one of {LEADS}, received {lead!r}")
    x, fs, _ = load_record("mitdb_100_v5")
    return x[:, 0], fs, ann_sample, ann_symbol


def generated_settings(leads: tuple[str, ...] = LEADS, patterns: tuple[str, ...] = PATTERNS,
                       burdens: tuple[float, ...] = BURDENS, seed: int = SEED) -> Iterator[GeneratedRecord]:
    """Every GENERATED record of the EC57 table: record 100 per lead x pattern x burden (trigeminy stops at
    1/3, the most it can be). Each is seeded by ``seed`` and its position, so any one is reproducible."""
    foreign = foreign_templates()
    for lead in leads:
        x, fs, ann_sample, ann_symbol = record100(lead)
        templates = [ventricular_template(x, fs, ann_sample, ann_symbol, f"mitdb_100_{lead}")] + foreign
        for p, pattern in enumerate(patterns):
            for b, burden in enumerate(burdens):
                if pattern == "trigeminy" and burden > 1 / 3:
                    continue
                yield generate(x, fs, ann_sample, ann_symbol, templates, pattern, burden,
                               seed=seed + 100 * p + b, name=f"generated 100 {lead} {pattern} {burden:.0%}")


def write_wfdb(rec: GeneratedRecord, folder: Path, record_name: str, lead: str = "ECG") -> Path:
    """Write a generated record as a WFDB record (16-bit, 200 ADC units/mV) with its ``.atr`` annotations,
    for ``ecgae evaluate BUNDLE --ec57`` or any WFDB tool; returns the record's path without extension."""
    import wfdb

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    wfdb.wrsamp(record_name, fs=rec.fs, units=["mV"], sig_name=[lead], p_signal=rec.signal[:, None], fmt=["16"],
                adc_gain=[200.0], baseline=[0], comments=[f"GENERATED: {rec.name}"], write_dir=str(folder))
    wfdb.wrann(record_name, "atr", rec.ann_sample, list(rec.ann_symbol), write_dir=str(folder))
    return folder / record_name


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("source", type=Path, help="folder holding mitdb/ and mitdb-60s/ WFDB records")
    ap.add_argument("--out", type=Path, default=TEMPLATES)
    args = ap.parse_args(argv)
    arrays = build(args.source, args.out)
    print(f"wrote {len(FOREIGN)} templates ({sum(a.nbytes for a in arrays.values())} bytes)")


if __name__ == "__main__":
    main()
