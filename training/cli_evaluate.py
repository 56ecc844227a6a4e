"""``ecgae evaluate``: held-out reconstruction, anomaly and latent-probe metrics of a run or bundle."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..runtime.errors import InputError
from ..runtime.io import write_json
from .evaluate import evaluate


def add_arguments(p: argparse.ArgumentParser, _name: str) -> None:
    p.add_argument("model", type=Path, help="run directory (torch) or bundle (onnxruntime)")
    p.add_argument("--data", default=None, help="data spec (default: the data the model was trained on)")
    p.add_argument("--out", type=Path, required=True, help="metrics JSON file to write")
    p.add_argument("--cross", action="store_true",
                   help="cross-wearer mode (a bundle): calibrate on the first part of other people's data, score the "
                        "rest, every score candidate beside the no-model template baseline")


def run(args: argparse.Namespace) -> int:
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
        from ..evaluation.field import print_field_table  # the layer above; a plain import once this CLI moves there

        print_field_table(args.model, args.out.parent)
        return 0
    metrics = evaluate(args.model, args.data)
    write_json(args.out, metrics)
    print(json.dumps({k: metrics[k] for k in ("reconstruction", "anomaly", "latent_probe")}, indent=2))
    print(f"wrote {args.out}")
    return 0
