"""The 'conv' decoder: its fast first layer equals the layer, it is no tiling, and it exports (BatchNorm
folded, ordinary quantisable operators) with torch-vs-onnxruntime parity; 'conv-flat' adds an encoder that
keeps positions, and exports the same way."""

from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="needs the [train] extra")
onnx = pytest.importorskip("onnx", reason="needs the [train] extra")

from ecgae.export.bundle import export_run  # noqa: E402
from ecgae.runtime import Model  # noqa: E402
from ecgae.training.datasets import load_beats  # noqa: E402
from ecgae.training.models import CONV_CHANNELS, ENCODER_CHANNELS, build_model, encoder_positions  # noqa: E402
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


@pytest.mark.parametrize("length", [6, 140, 141, 450, 451])
def test_flat_encoder_keeps_its_positions(length):
    """conv-flat's head reads the trunk's whole [16, T] map (T as computed), and so tells apart two beats
    whose features are the same but sit at other places, which the chapter's global pool cannot."""
    torch.manual_seed(4)
    flat, pooled = build_model("ae", "conv-flat", length, 2).eval(), build_model("ae", "conv", length, 2).eval()
    t = encoder_positions(length)
    with torch.no_grad():
        assert flat.encoder(torch.zeros(1, 1, length)).shape == (1, ENCODER_CHANNELS, t)
    assert flat.bottleneck.in_features == ENCODER_CHANNELS * t and pooled.bottleneck.in_features == ENCODER_CHANNELS
    if length >= 140:  # a spike moved by 18 samples (6 trunk positions): the same local features elsewhere
        x = torch.zeros(2, 1, length)
        x[0, 0, 36], x[1, 0, 54] = 5.0, 5.0
        with torch.no_grad():
            pooled_h, flat_h = pooled.features(x), flat.features(x)
        assert torch.allclose(pooled_h[0], pooled_h[1], atol=1e-6)
        assert not torch.allclose(flat_h[0], flat_h[1], atol=1e-3)


@pytest.mark.parametrize("kind", ["ae", "vae"])
@pytest.mark.parametrize("arch", ["conv", "conv-flat"])
def test_conv_run_exports_with_batchnorm_folded_and_parity(tmp_path, kind, arch):
    run, bundle = tmp_path / "run", tmp_path / "bundle"
    train(TrainConfig(model=kind, arch=arch, data="bundled:ecg5000", epochs=1, latent_dim=3), run,
          log=lambda *_: None)
    export_run(run, bundle, int8=arch == "conv-flat" and kind == "ae", log=lambda *_: None)
    manifest = json.loads((bundle / "manifest.json").read_text())
    assert manifest["parity"]["passed"] and manifest["model"]["arch"] == arch
    if "int8" in manifest.get("variants", {}):  # the flattened head quantises like the rest: no layer left FP32
        q = manifest["variants"]["int8"]["quantization"]
        assert q["fp32_nodes"] == [] and q["validation"]["recon_mse"]["change"] <= q["mse_budget"]
        for name, entry in manifest["variants"]["int8"]["graphs"].items():  # each graph INT8, or FP32 whole
            nodes = onnx.load(bundle / entry["file"]).graph.node
            made_by = {o: n.op_type for n in nodes for o in n.output}
            weighted = [n for n in nodes if n.op_type in ("Gemm", "MatMul", "Conv", "ConvTranspose")]
            quantized = {made_by.get(n.input[1]) == "DequantizeLinear" for n in weighted}
            assert quantized == {name not in q["fp32_graphs"]}, (name, q["fp32_graphs"])
            assert (entry["file"] == manifest["graphs"][name]["file"]) == (name in q["fp32_graphs"])
    ops = {n.op_type for n in onnx.load(bundle / "decoder.onnx").graph.node}
    assert "BatchNormalization" not in ops and ops <= QUANTISABLE and {"ConvTranspose", "Conv"} <= ops
    encoder_ops = {n.op_type for n in onnx.load(bundle / "encoder.onnx").graph.node}
    assert "BatchNormalization" not in encoder_ops and encoder_ops <= QUANTISABLE
    assert ("GlobalAveragePool" in encoder_ops) == (arch == "conv")
    beats = load_beats("bundled:ecg5000").beats[:40]
    net, _ = load_model(run)
    assert np.abs(Model.load(bundle).reconstruct(beats) - reconstruct(net, beats)).max() <= 1e-4
