"""The implementations compared in one run, behind one interface (op name -> callable on a batch), so
every peer is timed by the same loop on the same inputs and its ratios hold on a noisy machine.

torch is imported only when a torch peer is built: the onnxruntime peers need a bundle and nothing else.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..runtime import Model, read_manifest
from ..runtime.session import make_session

OPS = ("encode", "decode", "reconstruct")
INPUT_OF = {"encode": "x", "decode": "z", "reconstruct": "x"}  # x [B,1,L] beats, z [B,latent] latents
LITERAL_DECODER_PEERS = ("ort_naive", "torch_literal")  # they compute the literal decoder's MACs

DESCRIPTIONS = {
    "ort": "onnxruntime InferenceSession on the bundle's graphs (ORT_ENABLE_ALL; exact tiled seed decoder)",
    "runtime": "ecgae.runtime.Model: the same sessions plus input validation, as an application calls it",
    "ort_naive": "onnxruntime on the chapter's literal seed decoder (export --naive), (L/2)^2 samples per channel",
    "torch": "torch eager, eval, no_grad, tiled decoder (model.literal = False)",
    "torch_literal": "torch eager, eval, no_grad, the chapter's literal decoder as written (model.literal = True)",
    "ort_int8": "onnxruntime on the bundle's INT8 QDQ graphs (export --int8)",
    "ort_format": "onnxruntime on the bundle's FP32 graphs in .ort format (export --ort)",
    "ort_format_int8": "onnxruntime on the bundle's INT8 graphs in .ort format (export --int8 --ort)",
}


@dataclass
class Peer:
    """One implementation at one intra-op thread count; ``activate`` sets process-wide state before timing."""

    name: str
    threads: int
    ops: dict[str, Callable[[np.ndarray], object]]
    activate: Callable[[], None] = field(default=lambda: None)


def ort_peer(bundle_dir: Path, threads: int, name: str = "ort", ops: tuple[str, ...] = OPS,
             graphs: dict | None = None) -> Peer:
    """Raw onnxruntime sessions (created once, reused, spinning off) on a bundle's two graphs: the FP32
    ``graphs`` of its manifest unless another variant's are given."""
    graphs = read_manifest(bundle_dir)["graphs"] if graphs is None else graphs
    enc = make_session(Path(bundle_dir) / graphs["encoder"]["file"], threads, "all")
    dec = make_session(Path(bundle_dir) / graphs["decoder"]["file"], threads, "all")
    x_name, z_name = enc.get_inputs()[0].name, dec.get_inputs()[0].name
    first = [enc.get_outputs()[0].name]  # z, or mu for a VAE

    def encode(x: np.ndarray) -> list:
        return enc.run(None, {x_name: x})

    def decode(z: np.ndarray) -> list:
        return dec.run(None, {z_name: z})

    def reconstruct(x: np.ndarray) -> list:
        return dec.run(None, {z_name: enc.run(first, {x_name: x})[0]})

    every = {"encode": encode, "decode": decode, "reconstruct": reconstruct}
    return Peer(name, threads, {op: every[op] for op in ops})


def runtime_peer(bundle_dir: Path, threads: int) -> Peer:
    """The public runtime API (hash-checked load, validation, chunking) on the same graphs."""
    model = Model.load(bundle_dir, threads=threads)
    return Peer("runtime", threads, {"encode": model.encode, "decode": model.decode, "reconstruct": model.reconstruct})


def torch_peer(model: object, threads: int, name: str, ops: tuple[str, ...] = OPS) -> Peer:
    """torch eager on ``threads`` intra-op threads; each call runs under no_grad, as an application would."""
    import torch

    every = {
        "encode": lambda x: model.encode(torch.from_numpy(x)),
        "decode": lambda z: model.decode(torch.from_numpy(z)),
        "reconstruct": lambda x: model.decode(model.latent(torch.from_numpy(x))),
    }
    return Peer(name, threads, {op: torch.no_grad()(every[op]) for op in ops},
                activate=lambda: torch.set_num_threads(threads))
