"""``ecgae emit-c BUNDLE --out DIR``: a bundle's graphs as C99 for a microcontroller (docs/mcu.md)."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..runtime.errors import InputError


def add_arguments(parser: argparse.ArgumentParser, name: str) -> None:
    parser.add_argument("bundle", type=Path, metavar="BUNDLE", help="bundle folder written by 'ecgae export'")
    parser.add_argument("--out", type=Path, required=True, metavar="DIR",
                        help="folder that receives ecgae_model.c, ecgae_model.h and ecgae_model.json")
    parser.add_argument("--precision", choices=("fp32", "int8"), default="fp32",
                        help="the FP32 graphs, or the INT8 variant's (int8 weights in flash; needs 'export --int8')")
    parser.add_argument("--only", metavar="NAMES",
                        help="comma-separated functions to generate (default all: ecgae_encode,ecgae_decode,"
                             "ecgae_score); a wearable that sends z needs ecgae_encode alone")


def run(args: argparse.Namespace) -> int:
    from .emit_c import emit_c

    if args.out.exists() and not args.out.is_dir():
        raise InputError(f"--out: expected a folder, received the existing file {str(args.out)!r}")
    only = None if args.only is None else tuple(f.strip() for f in args.only.split(",") if f.strip())
    result = emit_c(args.bundle, args.out, only, args.precision)
    print(f"{result.source} and {result.header}: {', '.join(result.functions)}; "
          f"weights {result.const_bytes} bytes (const), scratch {result.scratch_bytes} bytes (static)")
    return 0
