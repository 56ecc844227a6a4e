"""The benchmark in quick mode: schema, finite figures, targets, report files. No wall time is asserted:
the figures of a quick run on a shared machine mean nothing, only their shape and sanity do."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest
from ecgae.benchmarks.roofline import matmul_reference
from ecgae.benchmarks.targets import TARGETS
from ecgae.benchmarks.timing import call_times_ns, latency_summary, throughput
from ecgae.runtime.errors import InputError

PEERS_WITH_RUN = {"ort", "runtime", "torch", "torch_literal", "ort_naive"}
TOP_KEYS = {"schema", "schema_version", "created_utc", "bundle", "run", "machine", "versions", "settings", "peers",
            "latency", "throughput", "skipped", "ratios", "overhead", "compute", "parity", "memory",
            "phase_seconds", "targets", "edge"}


@pytest.fixture(scope="module")
def with_run(tiny_runs, bundles, tmp_path_factory) -> tuple[dict, object]:
    """Quick bench of the AE bundle with its run: every peer, torch parity, the naive decoder."""
    from ecgae.benchmarks.bench import run_bench

    out = tmp_path_factory.mktemp("bench_ae")
    return run_bench(bundles["ae"], out, run=tiny_runs["ae"], quick=True, log=lambda *_: None), out


@pytest.fixture(scope="module")
def bundle_only(bundles, tmp_path_factory) -> tuple[dict, object]:
    """Quick bench of the VAE bundle alone, through the command line, as a device without torch runs it."""
    from ecgae.cli import main

    out = tmp_path_factory.mktemp("bench_vae")
    assert main(["bench", str(bundles["vae"]), "--out", str(out), "--quick"]) == 0
    return json.loads((out / "bench.json").read_text()), out


def _numbers(node: object, path: str = ""):
    """Every number in a JSON tree with its path."""
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _numbers(v, f"{path}.{k}")
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _numbers(v, f"{path}[{i}]")
    elif isinstance(node, (int, float)) and not isinstance(node, bool):
        yield path, node


@pytest.mark.parametrize("case", ["with_run", "bundle_only"])
def test_schema_and_every_figure_finite(case, request):
    result, out = request.getfixturevalue(case)
    assert json.loads((out / "bench.json").read_text()) == result
    assert set(result) == TOP_KEYS
    assert result["schema"] == "ecgae-bench" and result["schema_version"] == 1
    assert result["settings"]["mode"] == "quick" and result["settings"]["threads"] == [1, 2]
    assert result["machine"]["cpu_model"] and result["machine"]["logical_cores"] >= 1
    assert {"numpy", "onnxruntime", "ecgae"} <= set(result["versions"])
    bad = [(p, v) for p, v in _numbers(result) if not math.isfinite(v)]
    assert not bad
    for row in result["latency"]:
        assert row["batch"] == 1 and row["calls"] >= result["settings"]["min_latency_calls"]
        assert 0 < row["min_us"] <= row["p50_us"] <= row["p90_us"] <= row["p99_us"]
    measured = {(r["peer"], r["op"], r["threads"], r["batch"]) for r in result["throughput"]}
    skipped = {(r["peer"], r["op"], r["threads"], r["batch"]) for r in result["skipped"]}
    assert not measured & skipped and all(r["reason"] for r in result["skipped"])
    for row in result["throughput"]:
        assert row["beats_per_s"] > 0 and row["repeats"] >= 1 and row["batch"] in result["settings"]["batches"]
    for row in result["compute"]["achieved"]:
        assert row["gmacs"] > 0 and row["fraction_of_matmul"] > 0
    assert result["compute"]["matmul_reference"]["gmacs"] > 0
    assert result["compute"]["macs_per_beat"]["decoder_literal"] >= result["compute"]["macs_per_beat"]["decoder"]
    assert set(result["parity"]["levels"]) == {"disable_all", "enable_all"}


def test_with_run_has_every_peer_and_comparison(with_run):
    result, _ = with_run
    assert set(result["peers"]) == PEERS_WITH_RUN
    for threads in (1, 2):
        for op in ("encode", "decode", "reconstruct"):
            assert any(r["peer"] == "ort" and r["op"] == op and r["threads"] == threads for r in result["latency"])
    pairs = {(r["candidate"], r["baseline"], r["op"]) for r in result["ratios"]["latency_p50"]}
    assert {("ort", "torch", "encode"), ("ort", "ort_naive", "decode"), ("ort", "torch_literal", "decode")} <= pairs
    assert result["parity"]["source"].startswith("torch eager now")
    assert result["parity"]["naive_decoder_export_parity_passed"] is True
    for outputs in result["parity"]["levels"].values():
        assert set(outputs) == {"encoder.z", "decoder.x_hat", "reconstruct.x_hat"}
        assert all(s["max_abs"] < 1e-4 for s in outputs.values())


def test_targets_are_all_measured_with_a_run(with_run):
    targets = with_run[0]["targets"]
    assert [t["id"] for t in targets] == [t["id"] for t in TARGETS]
    for t in targets:
        assert isinstance(t["met"], bool) and math.isfinite(t["measured"]) and t["margin"] > 0
        limit = t["threshold"]
        assert t["met"] == (t["measured"] >= limit if t["compare"] == ">=" else t["measured"] <= limit)


@pytest.mark.parametrize("case", ["with_run", "bundle_only"])
def test_batch_1_cost_over_raw_onnxruntime_is_measured_for_each_method(case, request):
    result, out = request.getfixturevalue(case)
    rows = result["overhead"]
    assert [r["op"] for r in rows] == ["encode", "reconstruct", "score"]
    for r in rows:
        assert r["batch"] == 1 and r["threads"] == 1 and r["calls"] == 60
        assert r["ratio"] == pytest.approx(r["runtime_p50_us"] / r["ort_p50_us"]) and r["ort_p50_us"] > 0
    by_id = {t["id"]: t for t in result["targets"]}
    for r in rows:
        assert by_id[f"{r['op']}_b1_runtime_over_ort"]["measured"] == r["ratio"]
    assert "Batch-1 cost of the runtime API" in (out / "bench.md").read_text()


def test_bundle_only_marks_torch_targets_unmeasured(bundle_only):
    result, _ = bundle_only
    assert set(result["peers"]) == {"ort", "runtime"} and result["run"] is None
    assert result["parity"]["source"].startswith("bundle reference.npz")
    assert set(result["parity"]["levels"]["enable_all"]) == {"encoder.mu", "encoder.logvar", "decoder.x_hat",
                                                             "reconstruct.x_hat"}
    by_id = {t["id"]: t for t in result["targets"]}
    for unmeasured in ("encode_b1_p50_ort_vs_torch", "seed_decoder_b256_optimized_vs_naive"):
        assert by_id[unmeasured]["measured"] is None and by_id[unmeasured]["met"] is None
        assert "--run" in by_id[unmeasured]["note"]
    assert isinstance(by_id["encode_b256_roofline"]["met"], bool)


@pytest.mark.parametrize("case", ["with_run", "bundle_only"])
def test_runtime_memory_probe_is_torch_free(case, request):
    memory = request.getfixturevalue(case)[0]["memory"]["runtime_only"]
    assert memory["torch_imported"] is False and memory["onnx_imported"] is False
    assert memory["peak_rss_mb"] >= memory["rss_after_import_mb"] > 0
    assert memory["peak_rss_source"] in ("VmHWM", "ru_maxrss")
    assert memory["beats"] == 2048
    assert not any(m.startswith(("ecgae.training", "ecgae.export")) for m in memory["ecgae_modules"])


@pytest.mark.parametrize("case", ["with_run", "bundle_only"])
def test_report_files(case, request):
    result, out = request.getfixturevalue(case)
    md = (out / "bench.md").read_text()
    for heading in ("## Targets", "## Latency", "## Throughput", "## Speed-ups", "## Compute ceiling",
                    "## Parity against torch", "## Memory", "## Settings"):
        assert heading in md
    assert all(t["text"] in md for t in result["targets"])
    assert "ratios" in md and result["machine"]["cpu_model"] in md
    pytest.importorskip("matplotlib")
    assert (out / "latency.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and "](latency.png)" in md


def test_refuses_a_run_that_is_not_the_bundles(tiny_runs, bundles, tmp_path):
    from ecgae.benchmarks.bench import run_bench

    with pytest.raises(InputError, match="--run: expected the run the bundle was exported from"):
        run_bench(bundles["ae"], tmp_path, run=tiny_runs["vae"], quick=True, log=lambda *_: None)
    assert not (tmp_path / "bench.json").exists()


def test_timing_helpers_count_calls_and_summarise():
    calls = []
    ns = call_times_ns(lambda: calls.append(1), calls=7, warmup=3)
    assert len(calls) == 10 and ns.shape == (7,) and (ns >= 0).all()
    summary = latency_summary(np.arange(1, 101) * 1000)
    assert summary["calls"] == 100 and summary["min_us"] == 1.0
    assert summary["p50_us"] == pytest.approx(50.5) and summary["p99_us"] == pytest.approx(99.01)
    calls.clear()
    row = throughput(lambda: calls.append(1), batch=16, warmup=2, min_time_s=0.0, min_repeats=4)
    assert len(calls) == 6 and row["repeats"] == 4 and row["beats_per_s"] > 0


def test_matmul_reference_without_threadpoolctl_pins_blas_in_a_child(monkeypatch):
    monkeypatch.setitem(sys.modules, "threadpoolctl", None)  # import now raises ImportError
    ref = matmul_reference(n=64, repeats=2)
    assert ref["pinned_by"].startswith("child process") and ref["threads"] == 1
    assert math.isfinite(ref["gmacs"]) and ref["gmacs"] > 0


def test_refuses_an_out_that_is_a_file(bundles, tmp_path):
    from ecgae.benchmarks.bench import run_bench

    target = tmp_path / "taken"
    target.write_text("not a folder")
    with pytest.raises(InputError, match="--out: expected a folder that can be written"):
        run_bench(bundles["ae"], target, quick=True, log=lambda *_: None)


def test_edge_formats_compared_in_one_run(bundle_only):
    result, out = bundle_only
    e = result["edge"]
    assert e["variants"] == ["fp32 .onnx", "int8 .onnx", "fp32 .ort", "int8 .ort"]
    sizes = {r["variant"]: r for r in e["bytes"]}
    bundle = Path(result["bundle"]["path"])
    kept = json.loads((bundle / "manifest.json").read_text())["variants"]["int8"]["quantization"]["fp32_graphs"]
    assert kept == ["encoder"]  # the small encoder's INT8 form is larger: the INT8 variants run the FP32 file
    for name, r in sizes.items():
        suffix = name.split(".")[-1]
        infix = {g: ".int8" if name.startswith("int8") and g not in kept else "" for g in ("encoder", "decoder")}
        assert [r["encoder"], r["decoder"]] == [(bundle / f"{g}{infix[g]}.{suffix}").stat().st_size
                                                for g in ("encoder", "decoder")]
        assert r["vs_fp32"] == pytest.approx(r["total"] / sizes["fp32 .onnx"]["total"])
    assert {(r["variant"], r["op"]) for r in e["speed"]} == {(v, op) for v in e["variants"]
                                                              for op in ("encode", "decode", "reconstruct")}
    assert all(r["p50_us"] > 0 and r["beats_per_s"] > 0 for r in e["speed"])
    fp32, int8 = e["accuracy"][0], e["accuracy"][1]
    assert fp32["latent_max_abs_vs_fp32"] == 0 and fp32["recon_mse_change"] == 0
    assert int8["latent_max_abs_vs_fp32"] == 0 and int8["recon_mse_change"] != 0  # FP32 encoder, INT8 decoder
    assert int8["threshold"] != fp32["threshold"]
    assert [m["variant"] for m in e["memory"]] == e["variants"]
    assert all(m["torch_imported"] is False and m["onnx_imported"] is False for m in e["memory"])
    assert "QGemm" in {k["kernel"] for k in e["kernel_profile"]["int8 .onnx decoder"]}
    assert not any(k["kernel"].startswith("Q") for k in e["kernel_profile"]["fp32 .onnx decoder"])
    by_id = {t["id"]: t for t in e["targets"]}
    assert by_id["int8_bytes"]["measured"] == sizes["int8 .onnx"]["vs_fp32"]
    assert by_id["int8_recon_mse_change"]["measured"] == int8["recon_mse_change"]
    assert by_id["int8_b256_encode"]["measured"] == next(r["vs_fp32"] for r in e["speed"]
                                                         if r["variant"] == "int8 .onnx" and r["op"] == "encode")
    assert all(isinstance(t["met"], bool) for t in e["targets"])
    md = (out / "bench.md").read_text()
    assert "## Edge formats: FP32 vs INT8 vs ORT format" in md and "### Kernels onnxruntime ran" in md
