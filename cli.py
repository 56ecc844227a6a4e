"""The ``ecgae`` command. Each sub-package registers its own sub-commands; the heavy ones (torch) are
imported only when one of their commands runs, so the runtime commands work in a torch-free install.

A sub-command is parsed by a parser of its own with ``parse_intermixed_args``, so its options and its
positional arguments may come in any order (``ecgae monitor B --fs 360 samples.txt`` as well as
``ecgae monitor B samples.txt --fs 360``), which argparse's sub-parsers do not allow.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from . import __version__
from .runtime.errors import EcgaeError

DESCRIPTION = ("ECG heartbeat autoencoders: train (torch), export to ONNX, then find, score and flag beats with "
               "numpy + onnxruntime. 'ecgae COMMAND --help' shows a command's options and an example.")

# sub-command -> (module that defines ``add_arguments(parser, name)`` and ``run(args) -> int``, one-line
# purpose, an example as a user types it)
COMMANDS = {
    "example": ("ecgae.training.example", "write a bundled ECG recording to a file, to try the commands on",
                "ecgae example mitdb100-v5 --out v5.npy"),
    "train": ("ecgae.training.cli_train", "train an AE or VAE on ECG beats (needs the [train] extra)",
              "ecgae train --model ae --train-classes N --epochs 30 --out runs/ae-n"),
    "export": ("ecgae.export.cli", "export a trained run to an ONNX bundle (needs [train])",
               "ecgae export runs/ae-n --out bundles/ae-n --int8 --ort"),
    "emit-c": ("ecgae.export.cli_emit_c", "a bundle's graphs as C99 for a microcontroller (no malloc)",
               "ecgae emit-c bundles/ae-n --out c-model/"),
    "evaluate": ("ecgae.evaluation.cli", "held-out metrics of a run or bundle, or cross-wearer tables (needs [train])",
                 "ecgae evaluate bundles/ae-n --cross --out cross.json"),
    "bench": ("ecgae.benchmarks.cli", "latency, throughput and parity benchmark of a bundle",
              "ecgae bench bundles/ae-n --run runs/ae-n --out bench/"),
    "detect-eval": ("ecgae.benchmarks.cli_detect", "beat detection against the reference annotations of WFDB records",
                    "ecgae detect-eval path/to/100 path/to/119 --json detection.json"),
    "encode": ("ecgae.runtime.cli", "beats or a recording -> latents",
               "ecgae encode bundles/ae-n record.npy --fs 360 --out latents.npy"),
    "reconstruct": ("ecgae.runtime.cli", "beats or a recording -> reconstructed beats",
                    "ecgae reconstruct bundles/ae-n beats.npy --out rebuilt.npy"),
    "score": ("ecgae.runtime.cli", "beats or a recording -> a score and a flag per beat",
              "ecgae score bundles/ae-n record.npy --fs 360 --profile wearer.json --out scores.csv"),
    "sample": ("ecgae.runtime.cli", "decode z ~ N(0, I) into beats (a VAE's use)",
               "ecgae sample bundles/vae -n 3 --seed 0 --out beats.npy"),
    "info": ("ecgae.runtime.cli", "summary of a bundle's manifest and its edge variants",
             "ecgae info bundles/ae-n --parity"),
    "calibrate": ("ecgae.runtime.cli_wearer", "enrol a wearer: a profile from their own baseline ECG",
                  "ecgae calibrate bundles/ae-n record.npy --fs 360 --seconds 120 --out wearer.json"),
    "monitor": ("ecgae.runtime.cli_monitor", "a live stream of raw samples in, one JSON line per beat out",
                "ecgae monitor bundles/ae-n --fs 360 --format int16 --scale 1/200 --profile wearer.json samples.i16"),
    "score-archive": ("ecgae.archive.cli", "score every recording of an archive to Parquet (needs [archive])",
                      "ecgae score-archive bundles/ae-n path/to/mitdb/ --out scores/"),
    "compress": ("ecgae.runtime.cli_codec", "a recording -> per-beat latents, R peaks, offset and gain (.ecgz)",
                 "ecgae compress bundles/ae-flat record.npy --fs 360 --bits 4 --out record.ecgz"),
    "decompress": ("ecgae.runtime.cli_codec", ".ecgz -> the rebuilt signal",
                   "ecgae decompress bundles/ae-flat record.ecgz --out rebuilt.npy"),
    "denoise": ("ecgae.runtime.cli_restore", "a recording's beat windows, noise taken out where the model can",
                "ecgae denoise bundles/ae-flat record.npy --fs 360 --out windows.npy"),
    "fill-gaps": ("ecgae.runtime.cli_restore", "beats with missing samples (NaN) completed by the model",
                  "ecgae fill-gaps bundles/ae-flat beats_with_nan.npy --out filled.npy"),
}


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Every option's default, unless its help already states it or there is none to state."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        unstated = action.default is None or action.default is False or action.default == argparse.SUPPRESS
        if "default" in text or unstated or not action.option_strings:
            return text
        return super()._get_help_string(action)


def _module(name: str):
    try:
        return importlib.import_module(COMMANDS[name][0])
    except ModuleNotFoundError as e:
        if e.name in ("torch", "onnx", "scipy", "wfdb", "sklearn", "matplotlib"):
            raise EcgaeError(f"'ecgae {name}' needs {e.name}, which is not installed: "
                             "pip install '.[train,plot]' in the ecgae source folder") from None
        raise


def command_parser(name: str) -> argparse.ArgumentParser:
    """The parser of ``ecgae NAME``: its purpose, its options with their defaults, and an example."""
    _, purpose, example = COMMANDS[name]
    parser = argparse.ArgumentParser(prog=f"ecgae {name}", description=purpose, formatter_class=HelpFormatter,
                                     epilog=f"example:\n  {example}")
    _module(name).add_arguments(parser, name)
    return parser


def _top_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ecgae", description=DESCRIPTION, formatter_class=HelpFormatter)
    parser.add_argument("--version", action="version", version=f"ecgae {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (_, purpose, _) in COMMANDS.items():
        sub.add_parser(name, help=purpose, add_help=False)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] not in COMMANDS:
        _top_parser().parse_args(argv)  # --help, --version, or an error naming the commands; exits
        return 2
    name = argv[0]
    try:
        args = command_parser(name).parse_intermixed_args(argv[1:])
        args.command = name
        return int(_module(name).run(args) or 0)
    except EcgaeError as e:
        print(f"ecgae {name}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"ecgae {name}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
