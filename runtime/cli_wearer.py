"""``ecgae calibrate``: enrol a wearer on their own baseline ECG (``ecgae score --profile`` then scores their
beats against it). numpy + onnxruntime only."""

from __future__ import annotations

import argparse

from . import wearer
from .cli import add_model_options, check_out, load_model, read_input
from .errors import InputError
from .files import shown


def add_arguments(parser: argparse.ArgumentParser, _name: str) -> None:
    """Options of ``ecgae calibrate``."""
    parser.add_argument("bundle", metavar="BUNDLE", help="bundle folder the profile is bound to")
    parser.add_argument("input", metavar="INPUT",
                        help="the wearer's baseline: a WFDB record (path without extension), a 1-D raw signal "
                             "in .npy/.csv with --fs, or beats one per row in .npy/.csv (no RR features then)")
    parser.add_argument("--out", required=True, metavar="FILE", help="profile JSON to write (e.g. wearer.json)")
    parser.add_argument("--fs", type=float, metavar="HZ", help="INPUT is a raw single-lead signal at HZ")
    parser.add_argument("--lead", metavar="NAME|INDEX", help="WFDB channel (default MLII, else II, else the "
                        "first ECG lead)")
    parser.add_argument("--seconds", type=float, help="calibrate on the first SECONDS of the signal (default all)")
    parser.add_argument("--score", choices=wearer.SCORES, default=wearer.DEFAULT_SCORE,
                        help="the wearer-relative score")
    parser.add_argument("--false-alarm-rate", type=float, default=wearer.DEFAULT_FALSE_ALARM_RATE,
                        help="share of the wearer's normal baseline beats above the threshold")
    add_model_options(parser)


def run(args: argparse.Namespace) -> int:
    check_out(args.out, (".json",))
    model = load_model(args)
    signal, fs, beats = read_input(model, args)
    try:
        if signal is None:
            if args.seconds is not None:
                raise InputError("--seconds: expected only with a raw signal or WFDB record, received beats")
            profile = wearer.calibrate_beats(model, beats, None, args.score, args.false_alarm_rate)
        else:
            profile = model.calibrate(signal, fs, args.seconds, args.score, args.false_alarm_rate)
    except InputError as e:
        raise InputError(f"INPUT {shown(args.input)}: {e}") from None
    profile.save(args.out)
    print(f"calibrated on {profile.n_beats} beats ({profile.n_beats - profile.n_inliers} set aside as outliers): "
          f"score {profile.score}, threshold {profile.threshold:.4g} for a {profile.false_alarm_rate:.1%} "
          f"false-alarm rate; wrote {args.out}")
    return 0
