"""``ecgae calibrate`` and ``ecgae score --profile``: enrol a wearer on their own baseline ECG, then score
their beats against it. numpy + onnxruntime only."""

from __future__ import annotations

import argparse

import numpy as np

from . import wearer
from .cli import read_input
from .errors import InputError
from .files import shown
from .model import Model


def add_arguments(parser: argparse.ArgumentParser, _name: str) -> None:
    """Options of ``ecgae calibrate``."""
    parser.add_argument("bundle", metavar="BUNDLE", help="bundle folder the profile is bound to")
    parser.add_argument("input", metavar="INPUT",
                        help="the wearer's baseline: a WFDB record (path without extension), a 1-D raw signal "
                             "in .npy/.csv with --fs, or beats one per row in .npy/.csv (no RR features then)")
    parser.add_argument("--out", required=True, metavar="FILE", help="profile JSON to write (e.g. wearer.json)")
    parser.add_argument("--fs", type=float, metavar="HZ", help="INPUT is a raw single-lead signal at HZ")
    parser.add_argument("--lead", metavar="NAME|INDEX", help="WFDB channel (default MLII, else the first)")
    parser.add_argument("--seconds", type=float, help="calibrate on the first SECONDS of the signal (default all)")
    parser.add_argument("--score", choices=wearer.SCORES, default=wearer.DEFAULT_SCORE,
                        help=f"the wearer-relative score (default {wearer.DEFAULT_SCORE})")
    parser.add_argument("--false-alarm-rate", type=float, default=wearer.DEFAULT_FALSE_ALARM_RATE,
                        help="share of the wearer's normal baseline beats above the threshold (default 0.01)")
    parser.add_argument("--threads", type=int, default=1, help="onnxruntime intra-op threads (default 1)")


def run(args: argparse.Namespace) -> int:
    model = Model.load(args.bundle, threads=args.threads)
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


def score_input(model: Model, args: argparse.Namespace) -> np.ndarray:
    """[B, 4] rows of (index, score, flag, usable) of INPUT: against ``args.profile`` when given, else the
    bundle's score and threshold (or ``args.threshold``). A raw signal goes through ``Model.analyze``, so
    beats in unusable signal are reported and counted, not scored."""
    profile = None
    if args.profile:
        if args.threshold is not None:
            raise InputError("--threshold: expected either --threshold or --profile (which holds the wearer's "
                             "threshold), received both")
        profile = wearer.WearerProfile.load(args.profile)
        profile.check_bundle(wearer.model_graphs(model), model.input_length, model.latent_dim)
    limit = profile.threshold if profile is not None else model.decision_threshold(args.threshold)
    signal, fs, beats = read_input(model, args)
    if signal is None:
        index = np.arange(len(beats))
        result = wearer.score_batch(model, beats, None, profile) if profile is not None else None
        scores = model.score(beats) if result is None else result.score
        usable = np.ones(len(beats), dtype=bool)
    else:
        try:
            result = model.analyze(signal, fs, profile)
        except InputError as e:
            raise InputError(f"INPUT {shown(args.input)}: {e}") from None
        scores, index, usable = result.score, result.r_peak, result.usable
        why = ", ".join(f"{int((result.reason == r).sum())} {r}" for r in np.unique(result.reason[~usable]))
        missing = int(np.diff(result.gaps).sum())
        gaps = f"; {len(result.gaps)} gaps (NaN/Inf, {missing / fs:.3g} s missing)" if len(result.gaps) else ""
        print(f"{len(index)} beats cut from {shown(args.input)} ({np.asarray(signal).size} samples at {fs:g} Hz"
              f"{gaps}); {int((~usable).sum())} in unusable signal, not scored" + (f" ({why})" if why else ""))
    if profile is not None:
        flagged = result.flag
        classes = ", ".join(f"{int((result.label == c).sum())} {c}" for c in ("N", "S", "V", "Q"))
        print(f"{int(flagged.sum())} of {int(usable.sum())} classified beats ectopic (flagged): {classes}")
    else:
        with np.errstate(invalid="ignore"):
            flagged = usable & (scores > limit)
        print(f"{int(flagged.sum())} of {int(usable.sum())} scored beats above the threshold {limit:.6g}")
    return np.column_stack([index, scores, flagged, usable]).astype(np.float64)
