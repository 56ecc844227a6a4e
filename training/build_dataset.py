"""Build the bundled data set (``training/data/bundled.npz``) from the public source recordings.

Run once by a maintainer: ``python -m ecgae.training.build_dataset SOURCE_DIR``, where SOURCE_DIR holds
``mitdb/100.{hea,dat,atr}`` and ``ucr/ECG5000_TRAIN.txt``. The MIT-BIH record is stored as its raw
MLII ADC samples with gain, baseline and reference annotations, so that training cuts beats through
the very preprocessing the runtime applies; ECG5000 rows are stored as they are, with their class.
"""

from __future__ import annotations

import argparse
import io
from pathlib import Path

import numpy as np

from ..runtime.io import atomic_write_bytes

BUNDLED = Path(__file__).with_name("data") / "bundled.npz"


def build(source: Path, out: Path = BUNDLED) -> dict[str, np.ndarray]:
    """Read the sources and write the compressed bundle atomically; returns the arrays written."""
    import wfdb

    rec = wfdb.rdrecord(str(source / "mitdb" / "100"), physical=False, channel_names=["MLII"])
    ann = wfdb.rdann(str(source / "mitdb" / "100"), "atr")
    ucr = np.loadtxt(source / "ucr" / "ECG5000_TRAIN.txt")
    arrays = {
        "mitdb_100_adc": rec.d_signal[:, 0].astype(np.int16),
        "mitdb_100_gain": np.float64(rec.adc_gain[0]),
        "mitdb_100_baseline": np.float64(rec.baseline[0]),
        "mitdb_100_fs": np.float64(rec.fs),
        "mitdb_100_ann_sample": ann.sample.astype(np.int64),
        "mitdb_100_ann_symbol": np.asarray(ann.symbol, dtype="U2"),
        "ecg5000_beats": ucr[:, 1:].astype(np.float32),
        "ecg5000_labels": ucr[:, 0].astype(np.int64).astype("U2"),
    }
    write_npz(out, arrays)
    return arrays


def write_npz(out: Path, arrays: dict[str, np.ndarray]) -> None:
    """Compressed .npz, written atomically (no pickled objects: every array is numeric or text)."""
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    atomic_write_bytes(out, buf.getvalue())


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("source", type=Path, help="folder with mitdb/ and ucr/")
    ap.add_argument("--out", type=Path, default=BUNDLED)
    args = ap.parse_args(argv)
    arrays = build(args.source, args.out)
    print(f"wrote {args.out} ({args.out.stat().st_size / 1e6:.2f} MB): "
          f"MIT-BIH 100 MLII {arrays['mitdb_100_adc'].size} samples, "
          f"{arrays['mitdb_100_ann_sample'].size} annotations; ECG5000 {len(arrays['ecg5000_beats'])} beats")


if __name__ == "__main__":
    main()
