"""``ecgae compress|decompress``: a recording to per-beat latents (.ecgz) and back, numpy + onnxruntime only."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from .cli import ARRAY_SUFFIXES, add_model_options, check_out, load_model, read_wfdb_lead
from .codec import MAX_BITS, compress, decompress, reached_prd, read
from .errors import InputError
from .files import shown
from .io import atomic_write_bytes, read_array, write_array


def add_arguments(parser: argparse.ArgumentParser, name: str) -> None:
    parser.add_argument("bundle", metavar="BUNDLE", help="bundle folder (manifest.json, encoder.onnx, decoder.onnx)")
    if name == "compress":
        parser.add_argument("input", metavar="INPUT",
                            help="a WFDB record (path without extension) or, with --fs, a 1-D signal in .npy/.csv")
        parser.add_argument("--fs", type=float, metavar="HZ", help="INPUT is a raw single-lead signal at HZ")
        parser.add_argument("--lead", metavar="NAME|INDEX", help="WFDB channel (default MLII, else II, else the "
                            "first ECG lead)")
        parser.add_argument("--bits", type=int, default=8, help=f"bits per latent value, 1..{MAX_BITS}")
        parser.add_argument("--fit", type=int, default=0, metavar="STEPS",
                            help="Gauss-Newton steps refining each latent to rebuild its own beat best; slower, "
                                 "lower error at 6 bits and more (0: the encoder's latent)")
        parser.add_argument("--out", required=True, metavar="FILE.ecgz", help="compressed recording")
    else:
        parser.add_argument("input", metavar="FILE.ecgz", help="a file written by 'ecgae compress' with BUNDLE")
        parser.add_argument("--out", required=True, metavar="FILE",
                            help=".npy or .csv: the rebuilt band-passed signal at the model's sample rate")
    add_model_options(parser)


def _signal(args: argparse.Namespace) -> tuple[np.ndarray, float]:
    path = Path(args.input)
    if path.suffix.lower() in (".npy", ".csv"):
        if args.fs is None:
            raise InputError(f"--fs: expected the sample rate of the signal in {path.name}, received none")
        signal = read_array(path, f"INPUT {path}")
        if signal.squeeze().ndim != 1:
            raise InputError(f"INPUT {path}: expected a 1-D single-lead signal, received shape {signal.shape}")
        return signal.squeeze(), args.fs
    if args.fs is not None:
        raise InputError(f"--fs: expected only with a .npy/.csv signal (a WFDB record states its own rate), "
                         f"received --fs {args.fs} with {str(path)!r}")
    signal, fs, lead = read_wfdb_lead(path, args.lead)
    print(f"read lead {lead} of {shown(path)} ({signal.size} samples at {fs:g} Hz)")
    return signal, fs


def run(args: argparse.Namespace) -> int:
    check_out(args.out, (".ecgz",) if args.command == "compress" else ARRAY_SUFFIXES)
    model = load_model(args)
    if args.command == "compress":
        signal, fs = _signal(args)
        data = compress(model, signal, fs, args.bits, args.fit)
        atomic_write_bytes(args.out, data)
        beats = read(data).header["beats"]
        seconds = np.asarray(signal).size / fs
        print(f"wrote {args.out}: {beats} beats, {len(data):,} bytes for {seconds:.1f} s of ECG "
              f"({8 * len(data) / seconds:.0f} bit/s; MIT-BIH's raw format: 3960 bit/s); PRD "
              f"{reached_prd(model, signal, fs, data):.1f} % against the band-passed signal")
        return 0
    path = Path(args.input)
    if not path.is_file():
        raise InputError(f"FILE.ecgz: expected an existing file written by 'ecgae compress', received {str(path)!r}")
    signal, fs = decompress(model, path.read_bytes())
    write_array(args.out, signal)
    print(f"wrote {args.out}: {signal.size} samples at {fs:g} Hz (band-passed as the model sees it)")
    return 0
