"""Export side of the edge variants: INT8 quantization choices and the CLI flags (needs the [train] extra)."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("torch", reason="needs the [train] extra")
onnx = pytest.importorskip("onnx", reason="needs the [train] extra")

from ecgae.cli import main  # noqa: E402
from ecgae.export import quantize  # noqa: E402
from ecgae.export.parity import run_graph  # noqa: E402


def _weights_quantized(graph: bytes) -> dict[str, bool]:
    """Compute node name -> whether its weight input comes through a DequantizeLinear (INT8) or not (FP32)."""
    g = onnx.load_from_string(graph).graph
    made_by = {out: n.op_type for n in g.node for out in n.output}
    return {n.name: any(made_by.get(i) == "DequantizeLinear" for i in n.input[1:2])
            for n in g.node if n.op_type in quantize.COMPUTE_OPS}


@pytest.mark.parametrize("kind", ["ae", "vae"])
def test_int8_within_budget_keeps_no_layer_fp32(bundles, kind):
    m = json.loads((bundles[kind] / "manifest.json").read_text())
    q = m["variants"]["int8"]["quantization"]
    assert q["fp32_nodes"] == [] and q["validation"]["recon_mse"]["change"] <= q["mse_budget"]
    for name in ("encoder", "decoder"):
        flags = _weights_quantized((bundles[kind] / f"{name}.int8.onnx").read_bytes())
        assert flags and all(flags.values()), flags
    assert m["variants"]["int8"]["parity"]["vs_fp32"]["levels"]["enable_all"]["encoder." + ("z" if kind == "ae"
                                                                                           else "mu")]["max_abs"] > 0


def test_a_layer_stays_fp32_only_when_the_measurement_says_so(bundles, monkeypatch):
    b = bundles["ae"]
    x = np.load(b / "reference.npz")["x"]
    fp32 = {name: (b / f"{name}.onnx").read_bytes() for name in ("encoder", "decoder")}
    z = run_graph(b / "encoder.onnx", {"x": x})["z"]
    monkeypatch.setattr(quantize, "MSE_BUDGET", -1.0)  # no INT8 graph can meet it: every step must be measured
    q = quantize.quantize_pair(fp32, x, z, x, lambda name: {}, log=lambda *_: None)
    assert q.fp32_nodes, "an unreachable budget keeps at least the most helpful layer FP32"
    changes = [t["val_mse_change"] for t in q.trials if t["fp32_nodes"] in ([], *[q.fp32_nodes[:i + 1]
                                                                                   for i in range(len(q.fp32_nodes))])]
    assert changes == sorted(changes, reverse=True) and len(set(changes)) == len(changes)  # each step helped
    flags = {**_weights_quantized(q.graphs["encoder"]), **_weights_quantized(q.graphs["decoder"])}
    assert {n for n, quantized in flags.items() if not quantized} == set(q.fp32_nodes)


def test_export_cli_ort_alone(tiny_runs, tmp_path, capsys):
    out = tmp_path / "b"
    assert main(["export", str(tiny_runs["ae"]), "--out", str(out), "--ort"]) == 0
    assert "ORT format: encoder.ort, decoder.ort and required_operators.config" in capsys.readouterr().out
    m = json.loads((out / "manifest.json").read_text())
    assert set(m["variants"]) == {"ort"} and m["ort_build"]["covers"] == ["decoder.ort", "encoder.ort"]
    assert sorted(p.name for p in out.iterdir()) == ["decoder.onnx", "decoder.ort", "encoder.onnx", "encoder.ort",
                                                    "manifest.json", "reference.npz", "required_operators.config",
                                                    "score.onnx"]
