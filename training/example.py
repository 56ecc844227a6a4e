"""``ecgae example``: write one of the recordings the package bundles as a raw signal file, so that every
command can be tried on real ECG right after install (numpy only: the data ship with the core install).

Recordings: MIT-BIH record 100 (lead MLII, the one the bundled models train on; or lead V5, the same heart
seen through another lead), PTB s0010_re lead ii and Challenge 2015 a103l lead II (two other people).
See ``training/data/README.md`` for their provenance and licence (ODC-By 1.0: cite them when you use them).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from ..runtime.errors import InputError
from ..runtime.files import shown
from ..runtime.io import atomic_write_bytes, write_array
from .build_dataset import BUNDLED
from .build_others import load_record

# name -> (what, others.npz key or None for bundled.npz's MLII, lead)
RECORDINGS = {
    "mitdb100": ("MIT-BIH record 100, lead MLII", None, "MLII"),
    "mitdb100-v5": ("MIT-BIH record 100, lead V5", "mitdb_100_v5", "V5"),
    "ptb-s0010": ("PTB s0010_re, lead ii", "ptb_s0010_re", "ii"),
    "c2015-a103l": ("PhysioNet/CinC Challenge 2015 a103l, lead II", "c2015_a103l", "II"),
}
FORMATS = ("npy", "csv", "int16", "text")
INT16_PER_MV = 200  # the int16 stream's scale: MIT-BIH's ADC resolution, 200 counts per mV


def recording(name: str) -> tuple[np.ndarray, float]:
    """One bundled recording's lead in mV and its sample rate."""
    _, key, lead = RECORDINGS[name]
    if key is None:
        with np.load(BUNDLED, allow_pickle=False) as z:
            adc = z["mitdb_100_adc"].astype(np.float64)
            return (adc - z["mitdb_100_baseline"]) / z["mitdb_100_gain"], float(z["mitdb_100_fs"])
    signal, fs, leads = load_record(key)
    return signal[:, leads.index(lead)], fs


def add_arguments(parser: argparse.ArgumentParser, _name: str) -> None:
    parser.add_argument("name", choices=list(RECORDINGS), metavar="NAME",
                        help="; ".join(f"{k}: {v[0]}" for k, v in RECORDINGS.items()))
    parser.add_argument("--out", required=True, metavar="FILE", help="the file to write")
    parser.add_argument("--format", choices=FORMATS, default="npy",
                        help=f"npy or csv (mV), int16 (little-endian, {INT16_PER_MV} counts per mV, as a device "
                             "streams it: 'ecgae monitor --format int16 --scale 1/200'), or text (one mV value a line)")
    parser.add_argument("--seconds", type=float, help="only the first SECONDS (default: all of it)")


def run(args: argparse.Namespace) -> int:
    signal, fs = recording(args.name)
    if args.seconds is not None:
        if not args.seconds > 0:
            raise InputError(f"--seconds: expected a duration > 0, received {args.seconds}")
        signal = signal[: int(round(args.seconds * fs))]
    out = Path(args.out)
    if args.format in ("npy", "csv"):
        if out.suffix.lower() != f".{args.format}":
            raise InputError(f"--out: expected a file name ending in .{args.format} for --format {args.format}, "
                             f"received {shown(out.name)!r}")
        write_array(out, signal, ["mV"])
    elif args.format == "int16":
        atomic_write_bytes(out, np.round(signal * INT16_PER_MV).astype("<i2").tobytes())
    else:
        atomic_write_bytes(out, "".join(f"{v:.4f}\n" for v in signal).encode())
    print(f"wrote {shown(out)}: {RECORDINGS[args.name][0]}, {signal.size} samples at {fs:g} Hz "
          f"({signal.size / fs:.0f} s)")
    return 0
