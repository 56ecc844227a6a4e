"""``ecgae evaluate``: held-out reconstruction, anomaly and latent-probe metrics of a run or bundle."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..runtime.io import write_json
from .evaluate import evaluate


def add_arguments(p: argparse.ArgumentParser, _name: str) -> None:
    p.add_argument("model", type=Path, help="run directory (torch) or bundle (onnxruntime)")
    p.add_argument("--data", default=None, help="data spec (default: the data the model was trained on)")
    p.add_argument("--out", type=Path, required=True, help="metrics JSON file to write")


def run(args: argparse.Namespace) -> int:
    metrics = evaluate(args.model, args.data)
    write_json(args.out, metrics)
    print(json.dumps({k: metrics[k] for k in ("reconstruction", "anomaly", "latent_probe")}, indent=2))
    print(f"wrote {args.out}")
    return 0
