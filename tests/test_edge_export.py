"""Export side of the edge variants: INT8 quantization choices and the CLI flags (needs the [train] extra)."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("torch", reason="needs the [train] extra")
onnx = pytest.importorskip("onnx", reason="needs the [train] extra")

from ecgae.cli import main  # noqa: E402
from ecgae.export import quantize  # noqa: E402
from ecgae.export.bundle import export_run  # noqa: E402
from ecgae.export.parity import run_graph  # noqa: E402


def _weights_quantized(graph: bytes) -> dict[str, bool]:
    """Compute node name -> whether its weight input comes through a DequantizeLinear (INT8) or not (FP32)."""
    g = onnx.load_from_string(graph).graph
    made_by = {out: n.op_type for n in g.node for out in n.output}
    return {n.name: any(made_by.get(i) == "DequantizeLinear" for i in n.input[1:2])
            for n in g.node if n.op_type in quantize.COMPUTE_OPS}


@pytest.mark.parametrize("kind", ["ae", "vae"])
def test_int8_within_budget_keeps_no_layer_fp32(bundles, kind):
    """No layer is kept FP32 for accuracy; the small encoder is kept FP32 whole (its INT8 form is larger), as
    the bundle's own file; every weight of the decoder is INT8 and its outputs moved."""
    m = json.loads((bundles[kind] / "manifest.json").read_text())
    v = m["variants"]["int8"]
    q = v["quantization"]
    assert q["fp32_nodes"] == [] and q["validation"]["recon_mse"]["change"] <= q["mse_budget"]
    assert q["fp32_graphs"] == ["encoder"]
    same = ("file", "sha256")
    assert [v["graphs"]["encoder"][k] for k in same] == [m["graphs"]["encoder"][k] for k in same]
    assert not (bundles[kind] / "encoder.int8.onnx").exists()
    flags = _weights_quantized((bundles[kind] / "decoder.int8.onnx").read_bytes())
    assert flags and all(flags.values()), flags
    levels = v["parity"]["vs_fp32"]["levels"]["enable_all"]
    assert levels["decoder.x_hat"]["max_abs"] > 0


def _int8_forms(bundle) -> tuple[dict[str, bytes], dict[str, bytes], np.ndarray, np.ndarray]:
    """The FP32 graphs, their INT8 forms before any layer is kept FP32 (per channel, per tensor where the rule
    says so), the reference beats and their latents."""
    x = np.load(bundle / "reference.npz")["x"]
    z = run_graph(bundle / "encoder.onnx", {"x": x})["z"]
    fp32 = {name: (bundle / f"{name}.onnx").read_bytes() for name in ("encoder", "decoder")}
    forms = {}
    for name, (inp, data) in {"encoder": ("x", x), "decoder": ("z", z)}.items():
        per_channel = quantize.quantize_graph(fp32[name], inp, data, [], {})
        forms[name] = quantize.quantize_graph(fp32[name], inp, data, [], {}, quantize.per_tensor_weights(per_channel))
    return fp32, forms, x, z


def test_a_graph_stays_fp32_whole_exactly_when_its_int8_form_is_not_smaller(bundles, monkeypatch):
    fp32, forms, x, z = _int8_forms(bundles["ae"])
    q = quantize.quantize_pair(fp32, x, z, x, lambda name: {}, log=lambda *_: None)
    assert q.fp32_graphs == [name for name in fp32 if len(forms[name]) >= len(fp32[name])]
    assert q.fp32_graphs, {name: (len(forms[name]), len(fp32[name])) for name in fp32}
    for name in fp32:
        assert (q.graphs[name] == fp32[name]) == (name in q.fp32_graphs)
    monkeypatch.setattr(quantize, "MSE_BUDGET", -1.0)  # the greedy search never reaches into a whole FP32 graph
    q = quantize.quantize_pair(fp32, x, z, x, lambda name: {}, log=lambda *_: None)
    kept = {n for name in q.fp32_graphs for n in quantize.compute_nodes(fp32[name])}
    assert kept and not kept & set(q.fp32_nodes)


def test_a_layer_stays_fp32_only_when_the_measurement_says_so(bundles, monkeypatch):
    b = bundles["ae"]
    x = np.load(b / "reference.npz")["x"]
    fp32 = {name: (b / f"{name}.onnx").read_bytes() for name in ("encoder", "decoder")}
    z = run_graph(b / "encoder.onnx", {"x": x})["z"]
    monkeypatch.setattr(quantize, "MSE_BUDGET", -1.0)  # no INT8 graph can meet it: every step must be measured
    q = quantize.quantize_pair(fp32, x, z, x, lambda name: {}, log=lambda *_: None)
    singles = {t["fp32_nodes"][0]: t["val_mse_change"] for t in q.trials if len(t["fp32_nodes"]) == 1}
    assert set(singles) == {n for name in fp32 if name not in q.fp32_graphs for n in quantize.compute_nodes(fp32[name])}
    if not q.fp32_nodes:  # the search stopped because keeping no single layer FP32 came closer to FP32's MSE
        assert min(singles.values()) >= q.trials[0]["val_mse_change"], q.trials
    changes = [t["val_mse_change"] for t in q.trials if t["fp32_nodes"] in ([], *[q.fp32_nodes[:i + 1]
                                                                                   for i in range(len(q.fp32_nodes))])]
    assert changes == sorted(changes, reverse=True) and len(set(changes)) == len(changes)  # each step helped
    flags = {n: quantized for name in fp32 if name not in q.fp32_graphs
             for n, quantized in _weights_quantized(q.graphs[name]).items()}
    assert {n for n, quantized in flags.items() if not quantized} == set(q.fp32_nodes)


@pytest.mark.parametrize("kind", ["ae", "vae"])
def test_only_narrow_weights_with_heavy_scales_are_per_tensor(bundles, kind):
    """The decoder's 16 x (16 L/2) product (16 weights per channel, scales a large share of the file) is per
    tensor; the first conv (5 weights per channel, scales a small share) and every other weight stay per
    channel: one scale per output channel, read from the produced decoder (the encoder is kept FP32 whole)."""
    q = json.loads((bundles[kind] / "manifest.json").read_text())["variants"]["int8"]["quantization"]
    stored = quantize.weight_storage((bundles[kind] / "decoder.int8.onnx").read_bytes())
    largest = max(stored, key=lambda w: stored[w].weights)
    assert q["per_tensor_weights"] == {"encoder": [], "decoder": [largest]}
    assert stored[largest].scales == 1
    assert {w for w, s in stored.items() if s.scales == 1} == set(q["per_tensor_weights"]["decoder"])


def test_the_rule_needs_both_a_narrow_channel_and_a_heavy_scale_share(bundles, monkeypatch):
    """On per-channel graphs: the first conv is narrow but its scales are light, so it stays per channel
    until the share condition is dropped; wide convs never qualify."""
    b = bundles["ae"]
    x = np.load(b / "reference.npz")["x"]
    z = run_graph(b / "encoder.onnx", {"x": x})["z"]
    per_channel = {"encoder": quantize.quantize_graph((b / "encoder.onnx").read_bytes(), "x", x, [], {}),
                   "decoder": quantize.quantize_graph((b / "decoder.onnx").read_bytes(), "z", z, [], {})}
    q = json.loads((b / "manifest.json").read_text())["variants"]["int8"]["quantization"]
    assert {name: quantize.per_tensor_weights(g) for name, g in per_channel.items()} == q["per_tensor_weights"]
    assert quantize.weight_storage(per_channel["encoder"])["model.encoder.1.weight"].scales == 16  # the first conv
    monkeypatch.setattr(quantize, "MIN_SCALE_SHARE", 0.0)
    assert quantize.per_tensor_weights(per_channel["encoder"]) == ["model.bottleneck.weight", "model.encoder.1.weight"]
    saved = len(per_channel["decoder"]) - len((b / "decoder.int8.onnx").read_bytes())
    heavy = quantize.weight_storage(per_channel["decoder"])[q["per_tensor_weights"]["decoder"][0]]
    assert saved >= 0.9 * heavy.scale_bytes >= 0.9 * quantize.MIN_SCALE_SHARE * len(per_channel["decoder"])


def test_int8_bytes_target_at_the_chapter_input_length(mitdb_run, tmp_path):
    """L = 450: INT8 graphs <= 0.35x the FP32 bytes (0.39x with per-channel scales on every weight)."""
    m = export_run(mitdb_run, tmp_path / "b", int8=True, log=lambda *_: None)
    v = m["variants"]["int8"]
    ratio = sum(v["graphs"][g]["bytes"] for g in ("encoder", "decoder")) / sum(
        m["graphs"][g]["bytes"] for g in ("encoder", "decoder"))
    assert ratio <= 0.35, ratio
    assert v["quantization"]["validation"]["recon_mse"]["change"] <= v["quantization"]["mse_budget"]
    assert v["quantization"]["per_tensor_weights"]["encoder"] == []


def test_export_cli_ort_alone(tiny_runs, tmp_path, capsys):
    out = tmp_path / "b"
    assert main(["export", str(tiny_runs["ae"]), "--out", str(out), "--ort"]) == 0
    assert "ORT format: encoder.ort, decoder.ort and required_operators.config" in capsys.readouterr().out
    m = json.loads((out / "manifest.json").read_text())
    assert set(m["variants"]) == {"ort"} and m["ort_build"]["covers"] == ["decoder.ort", "encoder.ort"]
    assert sorted(p.name for p in out.iterdir()) == ["decoder.onnx", "decoder.ort", "encoder.onnx", "encoder.ort",
                                                    "manifest.json", "reference.npz", "required_operators.config",
                                                    "score.onnx"]
