"""The bundle's edge variants (docs/bundle.md, ``variants``): INT8 QDQ graphs and ``.ort`` files.

Each variant gets its own files and hashes, its own parity figures against torch (and, for INT8,
against the FP32 graphs), and, for INT8, its own anomaly threshold calibrated with the INT8 graphs on
the same training beats and rule as the FP32 one, because quantization shifts every score a little.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

import numpy as np

from ..runtime.errors import EcgaeError
from ..runtime.io import atomic_write_bytes
from ..training.datasets import load_beats
from ..training.train import read_run_json, threshold_beats, threshold_from_scores
from .ort_format import convert_to_ort
from .parity import bundle_outputs, bundle_parity, run_graph
from .quantize import MIN_SCALE_SHARE, MIN_WEIGHTS_PER_CHANNEL, MSE_BUDGET, quantize_pair

INT8_MARGIN = 1.25  # INT8 parity tolerance: this many times the largest export-time |INT8 - torch|
MAX_CALIBRATION = 2048  # training beats used for calibration (all of them in the bundled sets)


def _entry(path: Path, fp32_entry: dict) -> dict:
    data = path.read_bytes()
    return {"file": path.name, "sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data),
            "inputs": fp32_entry["inputs"], "outputs": fp32_entry["outputs"]}


def _largest_error(levels: dict) -> float:
    return max(s["max_abs"] for outputs in levels.values() for s in outputs.values())


def _parity(encoder: Path, decoder: Path, beats: np.ndarray, latents: np.ndarray, expected: dict,
            atol: float | None) -> dict:
    """Parity against torch; ``atol`` None derives an INT8 tolerance from the measured error itself. A variant
    is an encoder/decoder pair: the score graph's outputs are not among its expectations."""
    expected = {k: v for k, v in expected.items() if not k.startswith("score.")}
    report, failures = bundle_parity(encoder, decoder, beats, latents, expected, atol or 1.0)
    worst = _largest_error(report["levels"])
    if not np.isfinite(worst):
        raise EcgaeError(f"edge export: {encoder.name}/{decoder.name} produce non-finite values on held-out beats")
    if atol is None:
        report.update(atol=float(INT8_MARGIN * worst), rtol=0.0, passed=True,
                      tolerance_rule=f"{INT8_MARGIN} x the largest export-time |int8 - torch|")
    elif failures:
        raise EcgaeError(f"edge export: {encoder.name}/{decoder.name} parity failed: " + "; ".join(failures))
    return report


def _scores(encoder: Path, decoder: Path, beats: np.ndarray) -> np.ndarray:
    z = next(iter(run_graph(encoder, {"x": beats}, chunks=(1024,)).values()))
    x_hat = run_graph(decoder, {"z": z}, chunks=(1024,))["x_hat"]
    return np.square(x_hat.astype(np.float64) - beats).mean(axis=(1, 2))


def add_int8(tmp: Path, run: Path, cfg: dict, fp32: dict[str, bytes], manifest: dict, beats: np.ndarray,
             latents: np.ndarray, expected: dict, metadata: Callable[[str], dict[str, str]],
             log: Callable[..., object] = print) -> dict:
    """Quantize the bundle's graphs into ``tmp`` (encoder.int8.onnx, decoder.int8.onnx); the variant section."""
    bs = load_beats(cfg["train"]["data"], cfg["length"])
    split = read_run_json(run, "split.json")
    train_idx = np.asarray(split.get("train_used", split["train"]), dtype=np.int64)
    train_beats = bs.beats[train_idx[:MAX_CALIBRATION], None, :]
    val_beats = bs.beats[np.asarray(split["val"], dtype=np.int64), None, :]
    fp32_files = {name: tmp / manifest["graphs"][name]["file"] for name in fp32}
    train_latents = next(iter(run_graph(fp32_files["encoder"], {"x": train_beats}, chunks=(1024,)).values()))
    log(f"Quantizing to INT8 (static QDQ), calibrated on {len(train_beats)} training beats and their latents")
    q = quantize_pair(fp32, train_beats, train_latents, val_beats, metadata, log)
    files = {name: fp32_files[name] if name in q.fp32_graphs else tmp / f"{name}.int8.onnx" for name in fp32}
    for name in fp32:
        if name not in q.fp32_graphs:  # a graph kept FP32 whole is the bundle's own file, not a copy
            atomic_write_bytes(files[name], q.graphs[name])
    parity = _parity(files["encoder"], files["decoder"], beats, latents, expected, None)
    fp32_out = bundle_outputs(fp32_files["encoder"], fp32_files["decoder"], beats, latents)
    parity["vs_fp32"], _ = bundle_parity(files["encoder"], files["decoder"], beats, latents, fp32_out, 1.0)
    parity["vs_fp32"].pop("passed")
    anomaly = dict(manifest["anomaly"])
    normal, labelled = threshold_beats(bs, train_idx)
    anomaly["threshold"] = threshold_from_scores(_scores(files["encoder"], files["decoder"],
                                                         bs.beats[normal, None, :]), anomaly["rule"])
    anomaly["calibrated_on"] = (f"{len(normal)} training-split beats" + (f" labelled {bs.normal_label!r}" if labelled
                                else " (unlabelled: all of them)") + ", scored by the INT8 graphs")
    log(f"INT8: validation reconstruction MSE {q.val_mse['fp32']:.4g} -> {q.val_mse['int8']:.4g} "
        f"({q.val_mse['change']:+.2%}); per-tensor weights: "
        f"{[w for ws in q.per_tensor_weights.values() for w in ws] or 'none'}; FP32 graphs: {q.fp32_graphs or 'none'}; "
        f"FP32 nodes: {q.fp32_nodes or 'none'}; "
        f"threshold {manifest['anomaly']['threshold']:.4g} -> {anomaly['threshold']:.4g}")
    return {"precision": "int8", "format": "onnx",
            "graphs": {name: _entry(path, manifest["graphs"][name]) for name, path in files.items()},
            "quantization": {"tool": "onnxruntime.quantization.quantize_static", "format": "QDQ",
                             "weights": f"int8, symmetric, per output channel; per tensor where a channel has "
                                        f"fewer than {MIN_WEIGHTS_PER_CHANNEL} weights and the scales are at least "
                                        f"{MIN_SCALE_SHARE:.0%} of the graph's bytes",
                             "activations": "uint8, per tensor",
                             "calibration": f"min/max over {len(train_beats)} training-split beats (encoder) and "
                                            "their FP32 latents (decoder)",
                             "min_weights_per_channel": MIN_WEIGHTS_PER_CHANNEL, "min_scale_share": MIN_SCALE_SHARE,
                             "per_tensor_weights": q.per_tensor_weights, "fp32_graphs": q.fp32_graphs,
                             "fp32_nodes": q.fp32_nodes, "mse_budget": MSE_BUDGET,
                             "validation": {"beats": len(val_beats), "recon_mse": q.val_mse}, "trials": q.trials},
            "anomaly": anomaly,
            "parity": {**parity, "n_beats": len(beats), "n_latents": len(latents)}}


def add_ort(tmp: Path, manifest: dict, variants: dict, beats: np.ndarray, latents: np.ndarray,
            expected: dict, log: Callable[..., object] = print) -> tuple[dict, dict]:
    """``.ort`` twins of the FP32 graphs (and the INT8 ones when ``variants`` has them) and the minimal-build
    config; returns the new variant sections and the manifest's ``ort_build`` entry."""
    pair = {name: manifest["graphs"][name] for name in ("encoder", "decoder")}  # no .ort of the score graph
    sources = {"ort": ("fp32", pair, manifest)}
    if "int8" in variants:
        sources["int8_ort"] = ("int8", variants["int8"]["graphs"], variants["int8"])
    onnx_files = [tmp / entry["file"] for _, graphs, _ in sources.values() for entry in graphs.values()]
    converted, config = convert_to_ort(onnx_files, tmp)
    out = {}
    for key, (precision, graphs, origin) in sources.items():
        files = {name: converted[entry["file"]] for name, entry in graphs.items()}
        atol = manifest["parity"]["atol"] if precision == "fp32" else None
        parity = _parity(files["encoder"], files["decoder"], beats, latents, expected, atol)
        out[key] = {"precision": precision, "format": "ort",
                    "graphs": {name: _entry(path, graphs[name]) for name, path in files.items()},
                    "anomaly": origin["anomaly"],
                    "parity": {**parity, "n_beats": len(beats), "n_latents": len(latents)}}
    log(f"ORT format: {', '.join(p.name for p in converted.values())} and {config.name}")
    data = config.read_bytes()
    return out, {"file": config.name, "sha256": hashlib.sha256(data).hexdigest(), "type_reduction": True,
                 "covers": sorted(p.name for p in converted.values())}
