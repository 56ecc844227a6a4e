"""The 'conv' decoder: its fast first layer equals the layer, it is no tiling, and it exports (BatchNorm
folded, ordinary quantisable operators) with torch-vs-onnxruntime parity."""

from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="needs the [train] extra")
onnx = pytest.importorskip("onnx", reason="needs the [train] extra")

from ecgae.export.bundle import export_run  # noqa: E402
from ecgae.runtime import Model  # noqa: E402
from ecgae.training.datasets import load_beats  # noqa: E402
from ecgae.training.models import CONV_CHANNELS, build_model  # noqa: E402
from ecgae.training.train import TrainConfig, load_model, reconstruct, train  # noqa: E402

QUANTISABLE = {"MatMul", "Add", "Reshape", "ConvTranspose", "Conv", "Relu", "Slice", "Unsqueeze", "Squeeze",
               "Constant", "Shape", "Gather", "Concat", "Gemm", "Flatten", "MaxPool", "GlobalAveragePool"}


@pytest.mark.parametrize("length", [140, 141, 450])
def test_conv_decode_equals_its_layers_and_is_not_a_tiling(length):
    torch.manual_seed(0)
    model = build_model("vae", "conv", length, 4).eval()
    z = torch.randn(8, 4)
    with torch.no_grad():
        first = model.decoder[0](model.decoder_fc(z).unsqueeze(-1))  # ConvTranspose on a length-1 input
        expected = model.decoder[1:](first)[:, :, :length]
        out = model.decode(z)
    assert out.shape == (8, 1, length) and torch.allclose(out, expected, atol=1e-5, rtol=0)
    half = length // 2
    assert not torch.allclose(out[:, :, :half], out[:, :, half : 2 * half], atol=1e-3)
    assert model.decoder[0].out_channels == CONV_CHANNELS


@pytest.mark.parametrize("kind", ["ae", "vae"])
def test_conv_run_exports_with_batchnorm_folded_and_parity(tmp_path, kind):
    run, bundle = tmp_path / "run", tmp_path / "bundle"
    train(TrainConfig(model=kind, arch="conv", data="bundled:ecg5000", epochs=1, latent_dim=3), run,
          log=lambda *_: None)
    export_run(run, bundle, log=lambda *_: None)
    manifest = json.loads((bundle / "manifest.json").read_text())
    assert manifest["parity"]["passed"] and manifest["model"]["arch"] == "conv"
    ops = {n.op_type for n in onnx.load(bundle / "decoder.onnx").graph.node}
    assert "BatchNormalization" not in ops and ops <= QUANTISABLE and {"ConvTranspose", "Conv"} <= ops
    beats = load_beats("bundled:ecg5000").beats[:40]
    net, _ = load_model(run)
    assert np.abs(Model.load(bundle).reconstruct(beats) - reconstruct(net, beats)).max() <= 1e-4
