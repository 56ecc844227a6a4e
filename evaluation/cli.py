"""``ecgae evaluate``: held-out reconstruction, anomaly and latent-probe metrics of a run or bundle."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ..runtime import Model
from ..runtime.cli import check_out
from ..runtime.errors import InputError
from ..runtime.io import write_json
from ..training.collapse import collapse_warnings
from ..training.evaluate import evaluate


def add_arguments(p: argparse.ArgumentParser, _name: str) -> None:
    p.add_argument("model", type=Path, help="run directory (torch) or bundle (onnxruntime)")
    p.add_argument("--data", default=None, help="data spec (default: the data the model was trained on)")
    p.add_argument("--out", type=Path, required=True, help="metrics JSON file to write")
    p.add_argument("--cross", action="store_true",
                   help="cross-wearer mode (a bundle): calibrate on the first part of other people's data, score the "
                        "rest, every score candidate beside the no-model template baseline")
    p.add_argument("--ec57", nargs="+", type=Path, metavar="RECORD",
                   help="EC57 beat-class tables of a bundle on WFDB records with .atr annotations, beside the "
                        "no-model baselines (ecgae.evaluation.ec57)")
    p.add_argument("--enrol-seconds", type=float, default=120.0, help="with --ec57: enrolment left out of the counts")


def run(args: argparse.Namespace) -> int:
    check_out(args.out, (".json",))
    if args.ec57:
        from .ec57 import run_cli

        return run_cli(args.model, args.ec57, args.out, args.enrol_seconds)
    if args.cross:
        from .cross import evaluate_cross, markdown

        if args.data is not None:
            raise InputError("--data: expected no data spec with --cross (it runs its own cases), received "
                             f"{args.data!r}")
        if not (args.model / "manifest.json").is_file():
            raise InputError(f"--cross: expected an exported bundle (manifest.json), received {str(args.model)!r}")
        result = evaluate_cross(args.model)
        write_json(args.out, result)
        print(markdown(result))
        print(f"wrote {args.out}")
        from .field import print_field_table

        print_field_table(args.model, args.out.parent)
        return 0
    metrics = evaluate(args.model, args.data)
    metrics["warnings"] = model_warnings(args.model, metrics)
    write_json(args.out, metrics)
    print(json.dumps({k: metrics[k] for k in ("reconstruction", "anomaly", "latent_probe")}, indent=2))
    for w in metrics["warnings"]:
        print(f"warning: {w}", file=sys.stderr)
    print(f"wrote {args.out}")
    return 0


def model_warnings(path: Path, metrics: dict) -> list[str]:
    """What says the model does not work: a collapsed VAE (its samples, for a bundle; training's own finding,
    for a run) and a held-out AUC below 0.5."""
    samples, found = None, []
    if (path / "manifest.json").is_file():
        model = Model.load(path)
        if model.kind == "vae":
            samples = model.sample(8, seed=0)
    elif (path / "metrics.json").is_file():
        found = json.loads((path / "metrics.json").read_text()).get("warnings", [])
    return found + collapse_warnings(samples=samples, auc=metrics["anomaly"].get("auc_all"))
