"""``ecgae emit-c BUNDLE --out DIR``: a bundle's graphs as C99 for a microcontroller (docs/mcu.md)."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..runtime.errors import InputError


def add_arguments(parser: argparse.ArgumentParser, name: str) -> None:
    parser.add_argument("bundle", type=Path, metavar="BUNDLE", help="bundle folder written by 'ecgae export'")
    parser.add_argument("--out", type=Path, required=True, metavar="DIR",
                        help="folder that receives ecgae_model.c, ecgae_model.h and ecgae_model.json")


def run(args: argparse.Namespace) -> int:
    from .emit_c import emit_c

    if args.out.exists() and not args.out.is_dir():
        raise InputError(f"--out: expected a folder, received the existing file {str(args.out)!r}")
    result = emit_c(args.bundle, args.out)
    print(f"{result.source} and {result.header}: {', '.join(result.functions)}; "
          f"weights {result.const_bytes} bytes (const), scratch {result.scratch_bytes} bytes (static)")
    return 0
