"""Build ``training/data/others.npz``: record 100's second lead and two more people's raw ECG, for
detector tests on other leads, other sample rates and other people, and cross-patient false-alarm figures.

Run once by a maintainer: ``python -m ecgae.training.build_others SOURCE_DIR``, where SOURCE_DIR holds
``mitdb/100.*``, ``ptbdb/s0010_re.*`` and ``challenge2015/a103l.*``. Each record is stored as raw ADC samples (int16 or
int32, [n_samples, n_leads]) with per-lead gain and baseline, so physical units are
``(adc - baseline) / gain``. Record 100's annotations are in ``bundled.npz``; the other two have none.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from .build_dataset import write_npz

OTHERS = Path(__file__).with_name("data") / "others.npz"
RECORDS = {  # key: (folder, record, leads; None = all)
    "mitdb_100_v5": ("mitdb", "100", ["V5"]),
    "ptb_s0010_re": ("ptbdb", "s0010_re", None),
    "c2015_a103l": ("challenge2015", "a103l", ["II", "V"]),
}


def load_record(key: str, path: Path = OTHERS) -> tuple[np.ndarray, float, list[str]]:
    """One stored record in physical units: (signal [n_samples, n_leads] float64, fs in Hz, lead names).
    Samples stored as the record's invalid-sample code (``{key}_invalid``, when given) read as NaN, as
    wfdb reads them: a gap in the recording, not a value."""
    with np.load(path, allow_pickle=False) as z:
        if f"{key}_adc" not in z.files:
            known = sorted(k[:-4] for k in z.files if k.endswith("_adc"))
            raise KeyError(f"{key!r}: expected one of {known}")
        adc = z[f"{key}_adc"]
        signal = (adc.astype(np.float64) - z[f"{key}_baseline"]) / z[f"{key}_gain"]
        if f"{key}_invalid" in z.files:
            signal[adc == z[f"{key}_invalid"]] = np.nan
        return signal, float(z[f"{key}_fs"]), [str(n) for n in z[f"{key}_leads"]]


def record_arrays(key: str, rec) -> dict[str, np.ndarray]:
    """A wfdb record read with ``physical=False`` as the arrays ``load_record`` reads: the raw ADC samples in
    the smallest integer type that holds them, per-lead gain and baseline, the rate and the lead names."""
    adc = rec.d_signal
    fits = [t for t in (np.int8, np.int16, np.int32) if np.iinfo(t).min <= adc.min() <= adc.max() <= np.iinfo(t).max]
    return {
        f"{key}_adc": adc.astype(fits[0]),
        f"{key}_gain": np.asarray(rec.adc_gain, dtype=np.float64),
        f"{key}_baseline": np.asarray(rec.baseline, dtype=np.float64),
        f"{key}_fs": np.float64(rec.fs),
        f"{key}_leads": np.asarray(rec.sig_name, dtype="U8"),
    }


def build(source: Path, out: Path = OTHERS) -> dict[str, np.ndarray]:
    """Read the records' ECG leads and write the compressed file atomically; returns the arrays written."""
    import wfdb

    arrays: dict[str, np.ndarray] = {}
    for key, (folder, name, leads) in RECORDS.items():
        arrays |= record_arrays(key, wfdb.rdrecord(str(source / folder / name), physical=False, channel_names=leads))
    write_npz(out, arrays)
    return arrays


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("source", type=Path, help="folder with mitdb/, ptbdb/ and challenge2015/")
    ap.add_argument("--out", type=Path, default=OTHERS)
    args = ap.parse_args(argv)
    arrays = build(args.source, args.out)
    sizes = ", ".join(f"{k[:-4]} {v.shape} at {float(arrays[k[:-4] + '_fs']):g} Hz"
                      for k, v in arrays.items() if k.endswith("_adc"))
    print(f"wrote {args.out} ({args.out.stat().st_size / 1e6:.2f} MB): {sizes}")


if __name__ == "__main__":
    main()
