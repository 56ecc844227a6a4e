"""``ecgae score-archive``: every recording of an archive -> one Parquet file of scored beats each."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..runtime import Model, validate
from ..runtime.errors import EcgaeError, InputError
from . import engine, store
from .sources import expand_inputs


def add_arguments(parser: argparse.ArgumentParser, name: str) -> None:
    parser.add_argument("bundle", metavar="BUNDLE", help="bundle folder of a model trained on raw signals")
    parser.add_argument("inputs", nargs="+", metavar="INPUT",
                        help="WFDB records (path without extension) or folders, EDF/EDF+ files, .npy/.csv raw "
                             "signals ([n_samples] or [n_samples, n_leads], with --fs), globs; folders are "
                             "searched recursively")
    parser.add_argument("--out", required=True, metavar="DIR",
                        help="receives RECORD.parquet per recording, summary.parquet and errors.jsonl")
    parser.add_argument("--workers", type=int, default=1,
                        help="1 (default): in-process, no Ray; N > 1: a Ray Data pool of N actors, one core each")
    parser.add_argument("--ray", metavar="auto|ADDRESS",
                        help="attach to a running Ray cluster ('auto' or host:port) instead of starting one")
    parser.add_argument("--calibrate-seconds", type=float, metavar="S",
                        help="calibrate per wearer on each recording's first S seconds")
    parser.add_argument("--lead", metavar="NAME|INDEX",
                        help="lead to score (default MLII, II, then the first ECG lead)")
    parser.add_argument("--fs", type=float, metavar="HZ", help="sample rate of .npy/.csv inputs")


def run(args: argparse.Namespace) -> int:
    workers = validate.positive_int(args.workers, "--workers")
    if args.calibrate_seconds is not None and not args.calibrate_seconds > 0:
        raise InputError(f"--calibrate-seconds: expected a number of seconds > 0, received {args.calibrate_seconds}")
    if args.fs is not None:
        validate.sample_rate(args.fs)
    store.pyarrow()  # fail before any work when the extra is missing
    recordings = expand_inputs(args.inputs)
    options = engine.Options(bundle=str(Path(args.bundle).resolve()), out_dir=str(Path(args.out).resolve()),
                             bundle_sha256=store.bundle_sha256(args.bundle, args.calibrate_seconds), lead=args.lead,
                             fs=args.fs, calibrate_seconds=args.calibrate_seconds)
    model = Model.load(options.bundle)
    _check_bundle(model)  # one error for a bad bundle or option, not one per recording
    rows = engine.run(recordings, options, workers=workers, ray_address=args.ray, on_row=_progress(len(recordings)))
    counts = {s: sum(r["status"] == s for r in rows) for s in ("scored", engine.MOSTLY_UNUSABLE, "reused", "failed")}
    beats = sum(int(r.get("beats") or 0) for r in rows)
    print(f"{len(rows)} recordings: {counts['scored']} scored, {counts['reused']} reused from an earlier run, "
          f"{counts['failed']} failed (see {Path(args.out) / store.ERRORS})"
          + (f", {counts[engine.MOSTLY_UNUSABLE]} mostly unusable" if counts[engine.MOSTLY_UNUSABLE] else "")
          + f"; {beats} beats; summary in {Path(args.out) / store.SUMMARY}")
    if counts[engine.MOSTLY_UNUSABLE]:
        names = [r["record"] for r in rows if r["status"] == engine.MOSTLY_UNUSABLE]
        print(f"warning: {len(names)} recordings gave no beats or mostly unusable ones ({', '.join(names[:5])}"
              f"{', ...' if len(names) > 5 else ''}): check --fs, their units (mV expected) and --lead",
              file=sys.stderr)
    return 0


def _check_bundle(model: Model) -> None:
    if model.preprocessing.pre is None:
        raise InputError(f"BUNDLE {model.bundle_dir}: expected a model trained on raw signals (a sample rate and "
                         "window placement in its manifest), received one trained on pre-cut beats")
    model.decision_threshold()  # BundleError when it has no calibrated threshold to flag with


def _progress(total: int):
    """A tqdm bar of recordings with the running beat count (plain lines when tqdm is missing)."""
    try:
        from tqdm import tqdm
    except ImportError:
        raise EcgaeError("score-archive needs tqdm, which is not installed: "
                         "pip install '.[archive]' in the ecgae source folder") from None
    bar = tqdm(total=total, unit="rec", file=sys.stderr, dynamic_ncols=True, disable=None)
    beats = failed = 0

    def update(row: dict) -> None:
        nonlocal beats, failed
        beats += int(row.get("beats") or 0)
        failed += row["status"] == "failed"
        bar.set_postfix(beats=beats, failed=failed, refresh=False)
        bar.update(1)
        if bar.n == total:
            bar.close()

    return update
