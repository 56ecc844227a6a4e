"""The ``ecgae`` command. Each sub-package registers its own sub-commands; the heavy ones (torch) are
imported only when one of their commands runs, so the runtime commands work in a torch-free install.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from .runtime.errors import EcgaeError

# sub-command -> module that defines ``add_arguments(parser)`` and ``run(args) -> int``
COMMANDS = {
    "train": ("ecgae.training.cli_train", "train an AE or VAE on ECG beats"),
    "export": ("ecgae.export.cli", "export a trained run to an ONNX bundle"),
    "evaluate": ("ecgae.evaluation.cli", "held-out metrics of a run or bundle"),
    "bench": ("ecgae.benchmarks.cli", "latency, throughput and parity benchmark of a bundle"),
    "detect-eval": ("ecgae.benchmarks.cli_detect", "beat detection vs reference annotations of WFDB records"),
    "encode": ("ecgae.runtime.cli", "beats -> latents"),
    "reconstruct": ("ecgae.runtime.cli", "beats -> reconstructed beats"),
    "score": ("ecgae.runtime.cli", "beats -> anomaly scores and flags"),
    "sample": ("ecgae.runtime.cli", "decode z ~ N(0, I) into beats"),
    "info": ("ecgae.runtime.cli", "summary of a bundle's manifest"),
    "monitor": ("ecgae.runtime.cli_monitor", "raw samples in (stdin or a file), one JSON line per beat out"),
    "calibrate": ("ecgae.runtime.cli_wearer", "a wearer's profile from their own baseline ECG"),
    "score-archive": ("ecgae.archive.cli", "score every recording of an archive to Parquet (in-process or Ray)"),
    "compress": ("ecgae.runtime.cli_codec", "a recording -> per-beat latents, R peaks, mean and scale (.ecgz)"),
    "decompress": ("ecgae.runtime.cli_codec", ".ecgz -> the rebuilt signal"),
}


def _module(name: str):
    try:
        return importlib.import_module(COMMANDS[name][0])
    except ModuleNotFoundError as e:
        if e.name in ("torch", "onnx", "scipy", "wfdb", "sklearn", "matplotlib"):
            raise EcgaeError(f"'ecgae {name}' needs {e.name}, which is not installed: "
                             "pip install '.[train,plot]' in the ecgae source folder") from None
        raise


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(prog="ecgae", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    chosen = argv[0] if argv and argv[0] in COMMANDS else None
    for name, (_, help_) in COMMANDS.items():
        p = sub.add_parser(name, help=help_, description=help_)
        if name == chosen:
            try:
                _module(name).add_arguments(p, name)
            except EcgaeError as e:
                print(f"ecgae {name}: error: {e}", file=sys.stderr)
                return 2
    args = parser.parse_args(argv)
    try:
        return int(_module(args.command).run(args) or 0)
    except EcgaeError as e:
        print(f"ecgae {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"ecgae {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
