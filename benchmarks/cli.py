"""``ecgae bench``: latency, throughput, parity and memory of a bundle on this machine, with a report."""

from __future__ import annotations

import argparse
from pathlib import Path

from .bench import run_bench
from .edge import format_target
from .report import format_value


def add_arguments(parser: argparse.ArgumentParser, _name: str) -> None:
    parser.add_argument("bundle", type=Path, metavar="BUNDLE", help="bundle folder (from 'ecgae export')")
    parser.add_argument("--run", type=Path, default=None, metavar="RUN_DIR",
                        help="the training run the bundle came from: adds torch eager peers, parity against torch "
                             "now, and the naive (literal) seed decoder exported on the fly")
    parser.add_argument("--out", type=Path, required=True, metavar="DIR",
                        help="folder for bench.json, bench.md and latency.png")
    parser.add_argument("--quick", action="store_true",
                        help="few calls and batches (seconds, for tests); the figures are not meaningful")


def run(args: argparse.Namespace) -> int:
    result = run_bench(args.bundle, args.out, run=args.run, quick=args.quick)
    for t in result["targets"]:
        state = {True: "met", False: "MISSED", None: "not measured"}[t["met"]]
        print(f"  {state:>12}: {t['text']}: {format_value(t['measured'], t['unit'])}"
              + (f" ({t['note']})" if t["met"] is None else ""))
    for t in (result["edge"] or {}).get("targets", []):
        state = {True: "met", False: "MISSED", None: "not measured"}[t["met"]]
        print(f"  {state:>12}: {t['text']}: {format_target(t['measured'], t['unit'])}")
    return 0
