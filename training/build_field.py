"""Build ``training/data/field.npz``: recordings from other devices for the field table and its tests.

Run once by a maintainer: ``python -m ecgae.training.build_field SOURCE_DIR``, where SOURCE_DIR holds
``mimic2/3975656_0005.*``, ``mimic2/3975656_0006.*``, ``mitdb/{106,118,200}.*`` and ``mitdb-60s/NNN_60s.*``.

- MIMIC-II bedside monitor (8-bit, 125 Hz, leads MCL1 and V): both segments whole (2 h and 2 h 54 min;
  0.5 MB compressed, as flat 8-bit stretches pack well), kept as the monitor's own 8-bit ADC codes (int8)
  with gain, baseline and the format's invalid-sample code, so the quantisation step and any gap are
  exactly the device's.
- Every annotated MIT-BIH record of the source but 100 (which ``bundled.npz`` holds), lead MLII (else the
  first), with its reference annotations, so the detector benchmark runs on all of them on a fresh machine:
  106, 118 and 200 (30 min) and 24 one-minute records, four of them paced (``/`` paced, ``f`` fusion of
  paced and normal).

Read with ``ecgae.training.build_others.load_record(key, FIELD)`` and ``load_annotations(key)``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from .build_dataset import write_npz
from .build_others import record_arrays

FIELD = Path(__file__).with_name("data") / "field.npz"
MIMIC = {"mimic2_0005": "3975656_0005", "mimic2_0006": "3975656_0006"}
MINUTES = ("101", "102", "103", "104", "107", "109", "111", "113", "114", "201", "202", "203", "207", "209", "210",
           "212", "213", "214", "215", "217", "219", "221", "222", "228")
# every annotated MIT-BIH record of the source but 100 (in bundled.npz): key -> (folder, record); one lead each
ANNOTATED = {f"mitdb_{n}": ("mitdb", n) for n in ("106", "118", "200")} | {
    f"mitdb_{n}_60s": ("mitdb-60s", f"{n}_60s") for n in MINUTES}
PACED = tuple(f"mitdb_{n}_60s" for n in ("102", "104", "107", "217"))  # '/' and 'f' annotated
FORMAT_INVALID = {"80": -128, "16": -(2**15), "212": -2048}  # WFDB's "no sample" code per storage format


def load_annotations(key: str, path: Path = FIELD) -> tuple[np.ndarray, np.ndarray]:
    """A stored record's reference beat annotations: (sample index int64, symbol str)."""
    with np.load(path, allow_pickle=False) as z:
        if f"{key}_ann_sample" not in z.files:
            known = sorted(k[: -len("_ann_sample")] for k in z.files if k.endswith("_ann_sample"))
            raise KeyError(f"{key!r}: expected one of {known}")
        return z[f"{key}_ann_sample"].astype(np.int64), z[f"{key}_ann_symbol"].astype(str)


def build(source: Path, out: Path = FIELD, minutes: float | None = None) -> dict[str, np.ndarray]:
    """Read the records (MIMIC-II: the first ``minutes``, default all) and write the compressed file
    atomically; returns the arrays written."""
    import wfdb

    arrays: dict[str, np.ndarray] = {}
    for key, name in MIMIC.items():
        path = str(source / "mimic2" / name)
        header = wfdb.rdheader(path)
        end = header.sig_len if minutes is None else min(int(round(minutes * 60 * header.fs)), header.sig_len)
        rec = wfdb.rdrecord(path, physical=False, sampto=end)
        formats = set(rec.fmt)
        if len(formats) != 1 or next(iter(formats)) not in FORMAT_INVALID:
            raise ValueError(f"{path}: expected one WFDB format of {sorted(FORMAT_INVALID)}, received {rec.fmt}")
        arrays |= record_arrays(key, rec) | {f"{key}_invalid": np.int64(FORMAT_INVALID[rec.fmt[0]])}
    for key, (folder, name) in ANNOTATED.items():
        path = str(source / folder / name)
        leads = wfdb.rdheader(path).sig_name
        ann = wfdb.rdann(path, "atr")
        lead = "MLII" if "MLII" in leads else leads[0]
        arrays |= record_arrays(key, wfdb.rdrecord(path, physical=False, channel_names=[lead])) | {
            f"{key}_ann_sample": np.asarray(ann.sample, dtype=np.int32),
            f"{key}_ann_symbol": np.asarray(ann.symbol, dtype="U1")}
    write_npz(out, arrays)
    return arrays


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("source", type=Path, help="folder with mimic2/ and mitdb-60s/")
    ap.add_argument("--out", type=Path, default=FIELD)
    ap.add_argument("--minutes", type=float, default=None, help="MIMIC-II minutes kept per segment (default all)")
    args = ap.parse_args(argv)
    arrays = build(args.source, args.out, args.minutes)
    sizes = ", ".join(f"{k[:-4]} {v.shape} {v.dtype} at {float(arrays[k[:-4] + '_fs']):g} Hz"
                      for k, v in arrays.items() if k.endswith("_adc"))
    print(f"wrote {args.out} ({args.out.stat().st_size / 1e6:.2f} MB): {sizes}")


if __name__ == "__main__":
    main()
