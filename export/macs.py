"""Multiply-accumulate counts of a model's graphs, computed analytically from its layer shapes.

Rule (per beat, bias additions, activations and pooling not counted):
- Conv:          output elements x (in_channels / groups) x kernel size
- ConvTranspose: input elements  x (out_channels / groups) x kernel size (each input sample is
                 scattered into ``kernel`` outputs of every output channel of its group)
- Linear:        output elements x in_features
Shapes are read from one probe call on a single beat, so the count follows whatever the code computes:
the literal seed decoder is charged for all (L//2)**2 samples it produces before the crop.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn

from .fold import CONVS, TRANSPOSED


def _layer_macs(module: nn.Module, inp: torch.Tensor, out: torch.Tensor) -> int:
    if isinstance(module, TRANSPOSED):
        return inp.numel() * module.out_channels // module.groups * math.prod(module.kernel_size)
    if isinstance(module, CONVS):
        return out.numel() * module.in_channels // module.groups * math.prod(module.kernel_size)
    return out.numel() * module.in_features


@torch.no_grad()
def count_macs(model: nn.Module, fn: Callable[[torch.Tensor], object], example: torch.Tensor) -> int:
    """MACs of ``fn(example)`` for a batch-of-one ``example``, summed over the Conv/ConvTranspose/Linear
    layers of ``model`` it calls."""
    if example.shape[0] != 1:
        raise ValueError(f"count_macs: expected a batch of one, received shape {tuple(example.shape)}")
    total = [0]

    def hook(module: nn.Module, args: tuple, out: torch.Tensor) -> None:
        total[0] += _layer_macs(module, args[0], out)

    counted = CONVS + TRANSPOSED + (nn.Linear,)
    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, counted)]
    try:
        fn(example)
    finally:
        for h in handles:
            h.remove()
    return total[0]
