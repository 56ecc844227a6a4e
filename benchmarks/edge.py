"""FP32, INT8 and ORT-format graphs of one bundle compared in one run: bytes on disk, batch-1 latency and
batch-256 throughput, peak RSS of a runtime-only process, accuracy on held-out beats, and an onnxruntime
profile of the kernels each precision runs (the explanation when INT8 is not faster).

Every variant is timed by the same loops, one after the other in this process, against the FP32 .onnx
graphs measured in the same pass; the issue's INT8 targets are evaluated from these figures.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import tempfile
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnxruntime as ort

from ..runtime import Model
from ..runtime.bundle import variant, variant_key
from .markdown import table
from .measure import Settings, measure_peers
from .memory import runtime_peak_rss
from .peers import INPUT_OF, Peer, ort_peer
from .ratios import find
from .timing import call_times_ns

VARIANTS = (("fp32", "onnx"), ("int8", "onnx"), ("fp32", "ort"), ("int8", "ort"))
PEER = {("fp32", "onnx"): "ort", ("int8", "onnx"): "ort_int8", ("fp32", "ort"): "ort_format",
        ("int8", "ort"): "ort_format_int8"}
BATCH = 256
PROFILE_RUNS = 20
TARGETS = (
    {"id": "int8_bytes", "text": "INT8 graphs <= 0.35x the FP32 bytes on disk", "unit": "ratio",
     "compare": "<=", "threshold": 0.35},
    {"id": "int8_recon_mse_change", "text": "INT8 held-out reconstruction MSE within +3% of FP32", "unit": "pct",
     "compare": "<=", "threshold": 0.03},
    {"id": "int8_auc_change", "text": "INT8 held-out anomaly AUC within -0.005 of FP32", "unit": "delta",
     "compare": ">=", "threshold": -0.005},
    {"id": "int8_b256_throughput", "text": "INT8 reconstruct throughput at batch 256 >= 1.3x FP32 (1 thread)",
     "unit": "x", "compare": ">=", "threshold": 1.3},
    {"id": "int8_b256_encode", "text": "INT8 encode throughput at batch 256 >= 1.0x FP32 (1 thread)",
     "unit": "x", "compare": ">=", "threshold": 1.0},
)


def _name(precision: str, graph_format: str) -> str:
    return f"{precision} .{graph_format}"


def held_variants(manifest: dict) -> list[tuple[str, str]]:
    """The (precision, format) pairs the bundle holds, FP32 .onnx first."""
    held = manifest.get("variants") or {}
    return [v for v in VARIANTS if variant_key(*v) is None or variant_key(*v) in held]


def _held_out(manifest: dict) -> tuple[np.ndarray, np.ndarray, str]:
    """The bundle's training data's held-out (test) beats [N,1,L], their labels and the normal label."""
    from ..training.datasets import load_beats

    config, length = manifest["training"]["config"], manifest["model"]["input_length"]
    bs = load_beats(config["data"], length)
    test = bs.split()["test"]
    return bs.beats[test, None, :], bs.labels[test], bs.normal_label


def _accuracy(models: dict, beats: np.ndarray, labels: np.ndarray, normal: str) -> list[dict]:
    """Per variant: latent and reconstruction figures on held-out beats, and their change against FP32."""
    from ..training.evaluate import roc_auc

    is_normal = labels == normal
    rows, base = [], None
    for v, model in models.items():
        z = model.encode(beats)
        scores = model.score(beats)
        auc = roc_auc(scores[is_normal], scores[~is_normal]) if is_normal.any() and not is_normal.all() else None
        row = {"variant": _name(*v), "beats": len(beats), "recon_mse": float(scores.mean()), "auc": auc,
               "threshold": model.threshold,
               "flagged_share": None if model.threshold is None else float((scores > model.threshold).mean())}
        base = base or {**row, "z": z}
        row |= {"latent_max_abs_vs_fp32": float(np.abs(z - base["z"]).max()),
                "recon_mse_change": row["recon_mse"] / base["recon_mse"] - 1,
                "auc_change": None if auc is None else auc - base["auc"]}
        rows.append(row)
    return rows


def kernel_profile(path: Path, input_name: str, x: np.ndarray, runs: int = PROFILE_RUNS) -> list[dict]:
    """onnxruntime's own profile of a graph on ``x`` (1 thread): microseconds per run and share per kernel
    type, largest first; shows which kernels the CPU provider actually ran after its fusions."""
    with tempfile.TemporaryDirectory(prefix="ecgae-profile-") as tmp:
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = opts.inter_op_num_threads = 1
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        opts.enable_profiling = True
        opts.profile_file_prefix = str(Path(tmp) / "profile")
        opts.log_severity_level = 3
        session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        for _ in range(runs):
            session.run(None, {input_name: x})
        events = json.loads(Path(session.end_profiling()).read_text())
    per_op: dict[str, float] = defaultdict(float)
    for e in events:
        if e.get("cat") == "Node" and e.get("name", "").endswith("_kernel_time"):
            per_op[e["args"]["op_name"]] += e["dur"] / runs
    total = sum(per_op.values())
    return [{"kernel": op, "us_per_run": us, "share": us / total}
            for op, us in sorted(per_op.items(), key=lambda kv: -kv[1])]


def interleaved_throughput(peers: list[Peer], inputs: dict[str, np.ndarray], rounds: int) -> list[dict]:
    """Beats/s at batch ``BATCH`` per peer and op from the median of ``rounds`` calls, the peers taking turns
    call by call: on a shared machine, load that comes and goes then hits every peer alike."""
    rows = []
    for op, key in INPUT_OF.items():
        data = np.ascontiguousarray(inputs[key][:BATCH])
        for peer in peers:  # warm-up
            peer.ops[op](data)
        times: dict[str, list[int]] = {peer.name: [] for peer in peers}
        for _ in range(rounds):
            for peer in peers:
                times[peer.name] += call_times_ns(functools.partial(peer.ops[op], data), 1, warmup=0).tolist()
        rows += [{"peer": name, "op": op, "threads": 1, "batch": BATCH, "repeats": rounds,
                  "beats_per_s": BATCH / (float(np.median(ns)) / 1e9)} for name, ns in times.items()]
    return rows


def _evaluate(figures: dict[str, float | None]) -> list[dict]:
    out = []
    for t in TARGETS:
        value = figures.get(t["id"])
        met = None if value is None else (value >= t["threshold"] if t["compare"] == ">=" else
                                          value <= t["threshold"])
        out.append({**t, "measured": value, "met": met,
                    "note": "" if value is not None else "the bundle has no INT8 graphs (export --int8)"})
    return out


def compare(bundle: Path, manifest: dict, inputs: dict[str, np.ndarray], s: Settings,
            log: Callable[..., object] = print) -> dict | None:
    """The comparison section of bench.json, or None for a bundle with FP32 .onnx graphs only."""
    held = held_variants(manifest)
    if len(held) == 1:
        return None
    sections = {v: variant(manifest, bundle, *v) for v in held}
    log(f"Edge formats: {', '.join(_name(*v) for v in held)} at batch 1 and {BATCH}, 1 thread")
    sizes = [{"variant": _name(*v), **{g: (bundle / e["file"]).stat().st_size for g, e in sec["graphs"].items()}}
             for v, sec in sections.items()]
    for row in sizes:
        row["total"] = row["encoder"] + row["decoder"]
        row["vs_fp32"] = row["total"] / sizes[0]["total"]
    peers = [ort_peer(bundle, 1, PEER[v], graphs=sec["graphs"]) for v, sec in sections.items()]
    latency, _, _ = measure_peers(peers, inputs, dataclasses.replace(s, batches=(), threads=(1,)), lambda *_: None)
    rates = interleaved_throughput(peers, inputs, max(s.min_repeats, int(s.min_time_s * 300)))
    del peers
    speed = []
    for v in held:
        for op in ("encode", "decode", "reconstruct"):
            lat, rate = (find(rows, peer=PEER[v], op=op) for rows in (latency, rates))
            base = find(rates, peer="ort", op=op)
            speed.append({"variant": _name(*v), "op": op, "p50_us": lat["p50_us"],
                          "beats_per_s": rate and rate["beats_per_s"],
                          "vs_fp32": rate and base and rate["beats_per_s"] / base["beats_per_s"]})
            log(f"  {_name(*v):<11} {op:<11} p50 {lat['p50_us']:9.1f} us at batch 1; "
                f"{rate['beats_per_s']:,.0f} beats/s at batch {BATCH} ({speed[-1]['vs_fp32']:.2f}x FP32)")
    beats, labels, normal = _held_out(manifest)
    models = {v: Model.load(bundle, precision=v[0], graph_format=v[1]) for v in held}
    accuracy = _accuracy(models, beats, labels, normal)
    del models
    memory = [{"variant": _name(*v), **runtime_peak_rss(bundle, s.memory_beats, s.memory_chunk, *v)} for v in held]
    x = inputs["x"][:BATCH]
    z = inputs["z"][:BATCH]
    profile = {f"{_name(*v)} {g}": kernel_profile(bundle / sec["graphs"][g]["file"], name, data)
               for v, sec in sections.items() if v[1] == "onnx" for g, name, data in
               (("encoder", "x", x), ("decoder", "z", z))}
    figures: dict[str, float | None] = {}
    if ("int8", "onnx") in held:
        int8 = next(a for a in accuracy if a["variant"] == _name("int8", "onnx"))
        figures = {"int8_bytes": sizes[held.index(("int8", "onnx"))]["vs_fp32"],
                   "int8_recon_mse_change": int8["recon_mse_change"], "int8_auc_change": int8["auc_change"],
                   **{key: next(r["vs_fp32"] for r in speed if r["variant"] == _name("int8", "onnx") and r["op"] == op)
                      for key, op in (("int8_b256_throughput", "reconstruct"), ("int8_b256_encode", "encode"))}}
    return {"variants": [_name(*v) for v in held], "batch": BATCH, "threads": 1, "rounds": rates[0]["repeats"],
            "bytes": sizes, "speed": speed,
            "accuracy": accuracy, "memory": memory, "kernel_profile": profile, "targets": _evaluate(figures),
            "quantization": manifest.get("variants", {}).get("int8", {}).get("quantization")}


def _fmt(value: float | None, spec: str) -> str:
    return "—" if value is None else format(value, spec)


def format_target(value: float | None, unit: str) -> str:
    return {"ratio": _fmt(value, ".2f") + "x", "pct": _fmt(value, "+.2%"), "delta": _fmt(value, "+.4f"),
            "x": _fmt(value, ".2f") + "x"}[unit] if value is not None else "—"


def markdown(e: dict) -> list[str]:
    """The report section: targets, then one table per kind of figure, then the kernel profile."""
    lines = ["## Edge formats: FP32 vs INT8 vs ORT format", "",
             f"Every variant timed in this run by the same loops (1 thread, ORT_ENABLE_ALL): p50 latency at batch 1; "
             f"throughput at batch {e['batch']} from the median of {e['rounds']} calls, the variants taking turns "
             "call by call; accuracy on the training data's held-out beats.", ""]
    lines += table(["target", "measured", "required", "met"],
                    [[t["text"], format_target(t["measured"], t["unit"]),
                      f"{t['compare']} {format_target(t['threshold'], t['unit'])}",
                      {True: "**yes**", False: "**no**", None: f"not measured: {t['note']}"}[t["met"]]]
                     for t in e["targets"]])
    lines += ["", *table(["variant", "encoder bytes", "decoder bytes", "total", "vs FP32"],
                          [[r["variant"], f"{r['encoder']:,}", f"{r['decoder']:,}", f"{r['total']:,}",
                            f"{r['vs_fp32']:.2f}x"] for r in e["bytes"]])]
    rows = []
    for v in e["variants"]:
        cells = {r["op"]: r for r in e["speed"] if r["variant"] == v}
        rows.append([v, *(f"{cells[op]['p50_us']:,.1f}" for op in ("encode", "decode", "reconstruct")),
                     *(f"{_fmt(cells[op]['beats_per_s'], ',.0f')} ({_fmt(cells[op]['vs_fp32'], '.2f')}x)"
                       for op in ("encode", "decode", "reconstruct"))])
    lines += ["", *table(["variant", "encode p50 µs, batch 1", "decode p50 µs", "reconstruct p50 µs",
                           f"encode beats/s, batch {e['batch']} (vs FP32)", "decode beats/s", "reconstruct beats/s"],
                          rows)]
    lines += ["", *table(["variant", "latent max abs vs FP32", "recon MSE", "MSE change", "AUC", "AUC change",
                           "threshold", "flagged"],
                          [[a["variant"], f"{a['latent_max_abs_vs_fp32']:.2e}", f"{a['recon_mse']:.4f}",
                            f"{a['recon_mse_change']:+.2%}", _fmt(a["auc"], ".4f"), _fmt(a["auc_change"], "+.4f"),
                            _fmt(a["threshold"], ".4f"), _fmt(a["flagged_share"], ".1%")] for a in e["accuracy"]])]
    lines += ["", f"Held-out beats: {e['accuracy'][0]['beats']}. Peak RSS of a runtime-only process encoding "
              f"{e['memory'][0]['beats']:,} beats: "
              + ", ".join(f"{m['variant']} {m['peak_rss_mb']:.0f} MB" for m in e["memory"]) + "."]
    q = e.get("quantization")
    if q:
        per_tensor = [f"{w} ({g})" for g, ws in q.get("per_tensor_weights", {}).items() for w in ws]
        lines += ["", f"INT8 weights: {q['weights']} (per tensor here: {', '.join(per_tensor) or 'none'}); "
                      f"activations: {q['activations']}; calibration: {q['calibration']}; "
                      f"graphs kept FP32 whole (INT8 not smaller): {', '.join(q.get('fp32_graphs', [])) or 'none'}; "
                      f"layers kept FP32: {', '.join(q['fp32_nodes']) or 'none'} (validation MSE change "
                      f"{q['validation']['recon_mse']['change']:+.2%}, budget {q['mse_budget']:.0%})."]
    lines += ["", f"### Kernels onnxruntime ran, batch {e['batch']}, 1 thread (its own profile)", ""]
    rows = [[graph, ", ".join(f"{k['kernel']} {k['us_per_run']:,.0f} µs ({k['share']:.0%})" for k in kernels[:6])]
            for graph, kernels in e["kernel_profile"].items()]
    return lines + table(["graph", "kernels, µs per run (share)"], rows)
