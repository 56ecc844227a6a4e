"""``ecgae export RUN_DIR --out BUNDLE_DIR``: a trained run -> a certified ONNX bundle."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser, name: str) -> None:
    parser.add_argument("run_dir", type=Path, metavar="RUN_DIR", help="run directory written by 'ecgae train'")
    parser.add_argument("--out", type=Path, required=True, metavar="BUNDLE_DIR", help="new bundle folder")
    parser.add_argument("--naive", action="store_true",
                        help="export the chapter's literal seed decoder ((L/2)^2 samples per channel) for benchmarks")
    parser.add_argument("--atol", type=float, default=1e-4, help="parity tolerance, torch vs onnxruntime")
    parser.add_argument("--force", action="store_true", help="replace an existing bundle once the new one passes")
    parser.add_argument("--opset", type=int, default=17, help="ONNX opset (17..20)")
    parser.add_argument("--int8", action="store_true",
                        help="also write static INT8 QDQ graphs (encoder.int8.onnx, decoder.int8.onnx)")
    parser.add_argument("--ort", action="store_true",
                        help="also write .ort files and required_operators.config for a minimal onnxruntime build")


def run(args: argparse.Namespace) -> int:
    from .bundle import export_run

    export_run(args.run_dir, args.out, naive=args.naive, atol=args.atol, force=args.force, opset=args.opset,
               int8=args.int8, ort=args.ort)
    return 0
