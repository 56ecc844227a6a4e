"""``ecgae monitor BUNDLE [INPUT] --fs HZ``: raw samples from stdin or a file, one JSON line per beat.

Lines are written and flushed as beats are settled, so the command works at the end of a pipe
(``device | ecgae monitor bundle --fs 360 --format int16 | consumer``). A bad block (NaN, a malformed text
line) is reported on stderr as a JSON error line and skipped; the stream goes on.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Iterator

import numpy as np

from .cli import add_model_options, load_model, warn_if_unusable
from .errors import InputError
from .monitor import Monitor
from .wearer import WearerProfile

FORMATS = {"int16": np.dtype("<i2"), "float32": np.dtype("<f4")}
READ_BYTES = 1 << 16
MAX_ERRORS_SHOWN = 3  # bad blocks reported one by one; past that, one count at the end


def scale(text: str) -> float:
    """A number or a fraction such as 1/200 (MIT-BIH's ADC counts per mV), as --scale takes it."""
    num, _, den = text.partition("/")
    try:
        value = float(num) / float(den) if den else float(num)
    except (ValueError, ZeroDivisionError):
        raise argparse.ArgumentTypeError(f"expected a number or a fraction such as 1/200, received {text!r}") from None
    if not np.isfinite(value) or value == 0:
        raise argparse.ArgumentTypeError(f"expected a finite, non-zero scale, received {text!r}")
    return value


def add_arguments(parser: argparse.ArgumentParser, _name: str) -> None:
    parser.add_argument("bundle", metavar="BUNDLE", help="bundle folder of a model trained on raw ECG")
    parser.add_argument("input", nargs="?", default="-", metavar="INPUT",
                        help="file of raw samples of one lead (default '-': standard input)")
    parser.add_argument("--fs", type=float, required=True, metavar="HZ", help="sample rate of the input")
    parser.add_argument("--format", choices=("int16", "float32", "text"), default="text",
                        help="little-endian int16 or float32 samples, or text: numbers separated by white space")
    parser.add_argument("--scale", type=scale, default="1",
                        help="multiply samples by this, a number or a fraction (1/200: MIT-BIH ADC units to mV)")
    parser.add_argument("--profile", metavar="FILE", help="wearer profile from 'ecgae calibrate'")
    parser.add_argument("--calibrate-seconds", type=float, metavar="S",
                        help="without --profile: enrol the wearer on the stream's first S seconds, then score")
    add_model_options(parser)


def _blocks(stream, fmt: str) -> Iterator[np.ndarray | InputError]:
    """Sample blocks as they arrive (os.read returns what the pipe holds, so no block waits for a full
    buffer); a malformed text token yields an InputError in place of its block."""
    if fmt == "text":  # read as bytes: a binary stream read as text gives bad lines, not a decoding crash
        for number, raw in enumerate(stream, 1):
            line = raw.decode("utf-8", "replace")
            try:
                yield np.array(line.split(), dtype=np.float64)
            except ValueError:
                yield InputError(f"INPUT line {number}: expected numbers, received {line.strip()[:40]!r}")
        return
    dtype, rest = FORMATS[fmt], b""
    while chunk := os.read(stream.fileno(), READ_BYTES):
        data = rest + chunk
        usable = len(data) - len(data) % dtype.itemsize
        rest = data[usable:]
        if usable:
            yield np.frombuffer(data[:usable], dtype=dtype).astype(np.float64)
    if rest:
        yield InputError(f"INPUT: expected whole {fmt} samples, received {len(rest)} trailing byte(s)")


def run(args: argparse.Namespace) -> int:
    model = load_model(args)
    profile = None if args.profile is None else WearerProfile.load(args.profile)
    monitor = Monitor(model, args.fs, profile=profile, calibrate_seconds=args.calibrate_seconds)
    if args.input == "-":
        return _run(monitor, sys.stdin.buffer, args)
    try:
        with open(args.input, "rb") as source:
            return _run(monitor, source, args)
    except OSError as e:
        raise InputError(f"INPUT: cannot read {args.input!r} ({e.strerror or e})") from None


def _run(monitor: Monitor, source, args: argparse.Namespace) -> int:
    beats = flagged = errors = unusable = 0
    for block in _blocks(source, args.format):
        try:
            if isinstance(block, InputError):
                raise block
            events = monitor.push(block * args.scale)
        except InputError as e:
            errors += 1
            if errors <= MAX_ERRORS_SHOWN:
                print(json.dumps({"error": str(e)}), file=sys.stderr, flush=True)
            continue
        beats, flagged = beats + len(events), flagged + sum(e.flag for e in events)
        unusable += sum(not e.usable for e in events)
        _emit(events, monitor.fs)
    events = monitor.flush()
    beats, flagged = beats + len(events), flagged + sum(e.flag for e in events)
    unusable += sum(not e.usable for e in events)
    _emit(events, monitor.fs)
    missing = sum(stop - start for start, stop in monitor.gaps) / monitor.fs
    gaps = f", {len(monitor.gaps)} gaps (NaN/Inf, {missing:.3g} s missing)" if monitor.gaps else ""
    print(f"ecgae monitor: {beats} beats, {flagged} flagged, {unusable} in unusable signal{gaps}, {errors} bad "
          "blocks skipped" + (f" (the first {MAX_ERRORS_SHOWN} shown)" if errors > MAX_ERRORS_SHOWN else ""),
          file=sys.stderr)
    if errors and args.format == "text":
        print("warning: lines that are not numbers: is the stream binary? choose --format int16 or float32",
              file=sys.stderr)
    warn_if_unusable(beats, unusable, "the stream" if args.input == "-" else args.input)
    return 0


def _emit(events, fs: float) -> None:
    if events:
        sys.stdout.write("".join(json.dumps(e.to_dict(fs)) + "\n" for e in events))
        sys.stdout.flush()
