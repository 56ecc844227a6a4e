"""``ecgae denoise`` and ``ecgae fill-gaps``: the runtime's beat restoration (``runtime/restore.py``) from the
command line, numpy + onnxruntime only."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from .cli import ARRAY_SUFFIXES, add_model_options, check_out, load_model, read_input
from .codec import filtered_windows, rebuild
from .errors import InputError
from .files import shown
from .io import read_array, write_array
from .model import Model
from .restore import denoise, fill_gaps


def add_arguments(parser: argparse.ArgumentParser, name: str) -> None:
    parser.add_argument("bundle", metavar="BUNDLE", help="bundle folder (manifest.json, encoder.onnx, decoder.onnx)")
    if name == "denoise":
        parser.add_argument("input", metavar="INPUT",
                            help="a WFDB record (path without extension) or, with --fs, a 1-D raw signal in .npy/.csv "
                                 "(the output is then the denoised signal, band-passed, at the model's rate); or "
                                 "band-passed beat windows, one per row, in .npy/.csv (the output: the same rows)")
        parser.add_argument("--fs", type=float, metavar="HZ", help="INPUT is a raw single-lead signal at HZ")
        parser.add_argument("--lead", metavar="NAME|INDEX", help="WFDB channel (default MLII, else II, else the "
                            "first ECG lead)")
        parser.add_argument("--estimate-only", action="store_true",
                            help="the model's estimate of each window, not its blend with the window")
    else:
        parser.add_argument("input", metavar="INPUT",
                            help="beats, one per row, in .npy or .csv, with NaN where a sample is missing")
        parser.add_argument("--iterations", type=int, default=10, help="Gauss-Newton steps of the masked fit")
    parser.add_argument("--out", required=True, metavar="FILE", help=".npy or .csv")
    add_model_options(parser)


def run(args: argparse.Namespace) -> int:
    check_out(args.out, ARRAY_SUFFIXES)
    model = load_model(args)
    return _denoise(model, args) if args.command == "denoise" else _fill_gaps(model, args)


def _denoise(model: Model, args: argparse.Namespace) -> int:
    if Path(args.input).suffix.lower() in ARRAY_SUFFIXES and args.fs is None:
        windows = read_array(args.input, "INPUT")
        if windows.ndim != 2 or windows.shape[1] != model.input_length:
            raise InputError(f"INPUT {shown(args.input)}: expected beat windows [N, {model.input_length}] (or a raw "
                             f"signal with --fs), received shape {windows.shape}")
        write_array(args.out, denoise(model, windows, blend=not args.estimate_only),
                    [f"x{i}" for i in range(model.input_length)])
        print(f"denoised {len(windows)} beat windows; wrote {shown(args.out)}")
        return 0
    signal, fs, _ = read_input(model, args)
    try:
        filtered, peaks, windows = filtered_windows(model, signal, fs)
    except InputError as e:
        raise InputError(f"INPUT {shown(args.input)}: {e}") from None
    cleaned = denoise(model, windows, blend=not args.estimate_only)
    out = rebuild(cleaned, peaks, model.preprocessing.pre, filtered.size)
    write_array(args.out, out, ["signal"])
    print(f"denoised {len(peaks)} beats; wrote {shown(args.out)}: {out.size} samples at "
          f"{model.preprocessing.sample_rate:g} Hz (band-passed as the model sees it)")
    return 0


def _fill_gaps(model: Model, args: argparse.Namespace) -> int:
    beats = read_array(args.input, "INPUT")
    if beats.ndim == 1:
        beats = beats[None, :]
    if beats.ndim != 2 or beats.shape[1] != model.input_length:
        raise InputError(f"INPUT {shown(args.input)}: expected beats [N, {model.input_length}] with NaN where a "
                         f"sample is missing, received shape {beats.shape}")
    observed = np.isfinite(beats)
    try:
        filled = fill_gaps(model, np.where(observed, beats, 0.0), observed, args.iterations)
    except InputError as e:
        raise InputError(f"INPUT {shown(args.input)}: {e}") from None
    write_array(args.out, filled, [f"x{i}" for i in range(model.input_length)])
    print(f"filled {int((~observed).sum())} missing samples in {int((~observed).any(axis=1).sum())} of "
          f"{len(beats)} beats; wrote {shown(args.out)}")
    return 0
