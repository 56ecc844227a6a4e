"""torch -> ONNX for one graph: TorchScript exporter, dynamic batch axis, pinned opset and IR version.

The TorchScript exporter (``dynamo=False``) is used because the dynamo exporter needs onnxscript, which
the project does not depend on, and because its ``dynamic_axes`` gives plain graphs for these models.
The IR version is pinned to the lowest one that carries the opset, so older onnxruntime releases load it.
"""

from __future__ import annotations

import io
import warnings

import onnx
import torch
from torch import nn

from ..runtime.errors import InputError

SUPPORTED_OPSETS = range(17, 21)  # onnxruntime 1.17 (the oldest the project supports) runs up to opset 20
MIN_ONNXRUNTIME = "1.17"
ENCODER_OUTPUTS = {"ae": ("z",), "vae": ("mu", "logvar")}
SCORE_OUTPUTS = {kind: (outputs[0], "x_hat", "score") for kind, outputs in ENCODER_OUTPUTS.items()}


class EncoderGraph(nn.Module):
    """``model.encode`` as a module, so any architecture exports the same way."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor):
        return self.model.encode(x)


class DecoderGraph(nn.Module):
    """``model.decode`` as a module; which decoder form runs is the model's own setting."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.model.decode(z)


class ScoreGraph(nn.Module):
    """Beats -> (z or mu, x_hat, per-beat MSE) in one graph, so the runtime reconstructs and scores a beat
    with one onnxruntime call instead of two. The error is taken in float64, as the two-graph path does."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        encoded = self.model.encode(x)
        z = encoded[0] if isinstance(encoded, tuple) else encoded
        x_hat = self.model.decode(z)
        error = x_hat.double() - x.double()
        return z, x_hat, (error * error).mean(dim=(1, 2))


def check_opset(opset: int) -> None:
    if opset not in SUPPORTED_OPSETS:
        raise InputError(f"--opset: expected {SUPPORTED_OPSETS.start}..{SUPPORTED_OPSETS.stop - 1} "
                         f"(loadable by onnxruntime {MIN_ONNXRUNTIME}), received {opset!r}")


def pinned_ir_version(opset: int) -> int:
    """Lowest IR version that can carry ``opset`` (IR 8 for opset 17)."""
    return onnx.helper.find_min_ir_version_for([onnx.helper.make_opsetid("", opset)])


@torch.no_grad()
def to_onnx(module: nn.Module, example: torch.Tensor, input_name: str, output_names: tuple[str, ...],
            opset: int, metadata: dict[str, str]) -> bytes:
    """Serialized, checked ONNX model of ``module``; ``example`` must have a batch of >= 2 so the exporter
    cannot specialise the batch axis to a constant."""
    if example.shape[0] < 2:
        raise ValueError(f"example batch: expected >= 2 rows, received {example.shape[0]}")
    check_opset(opset)
    buf = io.BytesIO()
    with warnings.catch_warnings():
        # the TorchScript exporter announces its own deprecation on every call
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        warnings.filterwarnings("ignore", category=FutureWarning)
        torch.onnx.export(module.eval(), (example,), buf, input_names=[input_name], output_names=list(output_names),
                          dynamic_axes={name: {0: "batch"} for name in (input_name, *output_names)},
                          opset_version=opset, do_constant_folding=True, dynamo=False)
    proto = onnx.load_from_string(buf.getvalue())
    proto.ir_version = pinned_ir_version(opset)
    onnx.helper.set_model_props(proto, metadata)
    onnx.checker.check_model(proto, full_check=True)
    return proto.SerializeToString()
