"""``ecgae train``: the chapter's training loop with the project's data, checkpoints and plots."""

from __future__ import annotations

import argparse
from dataclasses import fields
from pathlib import Path

from .train import TrainConfig, train


def add_arguments(p: argparse.ArgumentParser, _name: str) -> None:
    d = TrainConfig()
    p.add_argument("--model", choices=["ae", "vae"], default=d.model,
                   help="autoencoder, or variational autoencoder (watch for a collapsed posterior: see --beta)")
    p.add_argument("--arch", default=d.arch,
                   help="upsample (corrected decoder, the default), conv (upsampling convolutions), "
                        "conv-flat (conv, and an encoder that keeps positions: no global pool), seed (chapter)")
    p.add_argument("--data", default=d.data,
                   help="bundled | bundled:ecg5000 | wfdb:DIR | ucr:FILE | npy:FILE | csv:FILE")
    p.add_argument("--latent-dim", type=int, default=d.latent_dim, help="size of the latent code per beat")
    p.add_argument("--beta", type=float, default=d.beta, help="weight of the VAE's KL term")
    p.add_argument("--epochs", type=int, default=d.epochs, help="passes over the training split")
    p.add_argument("--batch-size", type=int, default=d.batch_size, help="beats per optimiser step")
    p.add_argument("--lr", type=float, default=d.lr, help="Adam's learning rate")
    p.add_argument("--seed", type=int, default=d.seed, help="seed of the weights and the batch order")
    p.add_argument("--length", type=int, default=None, help="stretch pre-cut beats to L samples")
    p.add_argument("--train-classes", default="",
                   help="comma-separated labels to train on, e.g. N for normal beats only (default: all)")
    p.add_argument("--threshold-rule", default=d.threshold_rule, help="p99 or mean+Kstd (e.g. mean+1std)")
    p.add_argument("--out", type=Path, required=True, help="run directory")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its checkpoint")
    p.add_argument("--no-plots", action="store_true", help="skip the PNG/SVG figures")


def run(args: argparse.Namespace) -> int:
    values = {f.name: getattr(args, f.name) for f in fields(TrainConfig) if hasattr(args, f.name)}
    values["train_classes"] = [c for c in args.train_classes.split(",") if c]
    metrics = train(TrainConfig(**values), args.out, resume=args.resume)
    print(f"held-out (test split) reconstruction MSE: {metrics['test_recon_mse']:.4f}; "
          f"anomaly threshold ({metrics['anomaly']['rule']}): {metrics['anomaly']['threshold']:.4f}")
    if not args.no_plots:
        try:
            from .plots import plot_run
        except ModuleNotFoundError as e:  # the [plot] extra is optional: the run itself is complete
            print(f"figures skipped: they need {e.name}, which is not installed (pip install '.[plot]')")
            return 0
        for path in plot_run(args.out):
            print(f"wrote {path}")
    return 0
