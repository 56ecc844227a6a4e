"""BatchNorm folding in torch, before export, so the graphs carry no BatchNormalization node.

Folding is done on a copy of the eval model: every Conv/ConvTranspose immediately followed by a
BatchNorm inside an ``nn.Sequential`` becomes one convolution with adjusted weight and bias, and the
BatchNorm becomes ``nn.Identity`` (which traces to nothing). Walking every Sequential keeps this generic
over architectures; a BatchNorm that cannot be folded is refused rather than exported.
"""

from __future__ import annotations

import copy

from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from ..runtime.errors import EcgaeError

CONVS = (nn.Conv1d, nn.Conv2d, nn.Conv3d)
TRANSPOSED = (nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)
BATCHNORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)


class FoldError(EcgaeError):
    """The model holds a BatchNorm that this exporter cannot fold exactly."""


def _fold_pair(conv: nn.Module, bn: nn.Module, where: str) -> nn.Module:
    transpose = isinstance(conv, TRANSPOSED)
    if transpose and conv.groups != 1:
        # fuse_conv_bn_weights' transpose path assumes groups == 1; refuse rather than export wrong weights
        raise FoldError(f"{where}: expected a ConvTranspose with groups=1 before a BatchNorm, "
                        f"received groups={conv.groups} (folding it is untested)")
    if bn.running_mean is None or bn.running_var is None:
        raise FoldError(f"{where}: expected a BatchNorm with running statistics, "
                        "received one built with track_running_stats=False")
    return fuse_conv_bn_eval(conv, bn, transpose=transpose)


def fold_batchnorm(model: nn.Module) -> nn.Module:
    """Return an eval-mode copy of ``model`` with every Conv+BN pair folded; refuse any other BatchNorm."""
    fused = copy.deepcopy(model).eval()
    for name, seq in fused.named_modules():
        if not isinstance(seq, nn.Sequential):
            continue
        children = list(seq.named_children())
        for (i, conv), (j, bn) in zip(children, children[1:]):
            if isinstance(conv, CONVS + TRANSPOSED) and isinstance(bn, BATCHNORMS):
                setattr(seq, i, _fold_pair(conv, bn, f"{name}.{i}"))
                setattr(seq, j, nn.Identity())
    left = [name for name, m in fused.named_modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if left:
        raise FoldError(f"model: expected every BatchNorm right after a convolution in an nn.Sequential, "
                        f"received unfoldable BatchNorm at {left}")
    return fused
