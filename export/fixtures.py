"""The tiny AE and VAE runs and bundles that the tests share: one implementation for pytest and for
``python -m ecgae.export.fixtures DIR``, which prebuilds DIR/ae, DIR/vae and DIR/mitdb for the torch-free
runtime tests (point ECGAE_TEST_BUNDLES at DIR).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from ..training.train import TrainConfig, train
from .bundle import export_run

TINY = dict(arch="seed", data="bundled:ecg5000", epochs=2, batch_size=64, latent_dim=2, seed=0)
KINDS = ("ae", "vae")
# A raw-signal bundle (record 100, 360 Hz, L = 450) for tests that cut beats from ECG: plumbing, not accuracy
TINY_MITDB = dict(model="ae", arch="upsample", data="bundled", epochs=2, batch_size=64, latent_dim=2, seed=0,
                  train_classes=["N"])


def _quiet(*_: object) -> None:
    pass


def train_tiny(root: Path) -> dict[str, Path]:
    """Train the 2-epoch AE and VAE on the bundled ECG5000 beats (L = 140) into root/ae and root/vae."""
    runs = {}
    for kind in KINDS:
        train(TrainConfig(model=kind, **TINY), Path(root) / kind, log=_quiet)
        runs[kind] = Path(root) / kind
    return runs


def export_tiny(runs: dict[str, Path], root: Path, force: bool = False) -> dict[str, Path]:
    """Export each run to root/<kind>, with its INT8 and .ort variants."""
    bundles = {}
    for kind, run in runs.items():
        export_run(run, Path(root) / kind, force=force, int8=True, ort=True, log=_quiet)
        bundles[kind] = Path(root) / kind
    return bundles


def train_tiny_mitdb(runs_root: Path) -> Path:
    """Train the 2-epoch AE on record 100's N beats into runs_root/mitdb."""
    run = Path(runs_root) / "mitdb"
    train(TrainConfig(**TINY_MITDB), run, log=_quiet)
    return run


def export_tiny_mitdb(run: Path, root: Path, force: bool = False) -> Path:
    """Export the mitdb run to root/mitdb (FP32 only: the runtime tests cut beats from ECG with it)."""
    export_run(run, Path(root) / "mitdb", force=force, log=_quiet)
    return Path(root) / "mitdb"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ecgae.export.fixtures", description=__doc__.splitlines()[0])
    parser.add_argument("dir", type=Path, metavar="DIR", help="folder that receives ae/, vae/ and mitdb/ bundles")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as runs_root:
        bundles = export_tiny(train_tiny(Path(runs_root)), args.dir, force=True)
        bundles["mitdb"] = export_tiny_mitdb(train_tiny_mitdb(Path(runs_root)), args.dir, force=True)
    print("\n".join(str(b) for b in bundles.values()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
