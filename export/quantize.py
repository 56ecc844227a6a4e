"""FP32 graphs -> static INT8 QDQ graphs (onnxruntime.quantization.quantize_static), calibrated on real data.

Weights are int8 per output channel, activations uint8 (the u8 x s8 pairing onnxruntime's x86 kernels are
built for: int8 activations ran the decoder at half the speed here). A weight is quantized per tensor
instead when per-channel scales cost more than they are worth, measured on a per-channel first pass: fewer
than ``MIN_WEIGHTS_PER_CHANNEL`` weights per channel (each channel's float32 scale and int8 zero point, 5
bytes, then add over a quarter to its int8 bytes) and scales at least ``MIN_SCALE_SHARE`` of the graph file.
The seed decoder's 16 x 3,600 product qualifies (18 kB of scales, 21 % of the file). The first conv (5
weights per channel) does not: its scales are under 2 % of the encoder, and per tensor it moved the seed AE's
held-out anomaly AUC by -0.0095 while the MSE did not move, so the MSE budget below would not have caught it.
The encoder is calibrated on the run's training beats, the decoder on the FP32 encoder's latents of those
beats. A graph whose INT8 form is not smaller than its FP32 form stays FP32 whole: its weights are too few
to pay for the quantize/dequantize pairs, and the seed encoder's (9.5 kB INT8 against 8.0 kB FP32) also ran
at 0.3-0.5x the FP32 throughput at batch 256, its 1-channel first convolution 5.6x slower. Sizes are
deterministic across export runs, timings are not, so the rule reads the bytes. A layer stays FP32 only
when measurement says so: if the INT8 pair changes the validation beats' reconstruction MSE by more than
``MSE_BUDGET``, the compute node whose exclusion helps most is kept FP32, and so on until it fits.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx

from .parity import run_graph

MSE_BUDGET = 0.01  # relative validation MSE increase accepted before a layer is kept FP32
COMPUTE_OPS = ("Conv", "ConvTranspose", "Gemm", "MatMul")  # the nodes that carry weights
CALIBRATION_BATCH = 128
MIN_WEIGHTS_PER_CHANNEL = 20  # below this a channel's scale + zero point (5 bytes) add over 25 % to its weights
MIN_SCALE_SHARE = 0.05  # ... and per tensor only when those scales are at least this share of the graph's bytes


@dataclass
class Int8Graphs:
    """The quantized encoder and decoder (``fp32_graphs``: those kept FP32 whole, their bytes unchanged), the
    nodes kept FP32, the weights quantized per tensor (by graph) and every configuration measured to get there."""

    graphs: dict[str, bytes]
    fp32_graphs: list[str]
    fp32_nodes: list[str]
    per_tensor_weights: dict[str, list[str]]
    val_mse: dict[str, float]
    trials: list[dict] = field(default_factory=list)


@contextmanager
def quiet_logging() -> Iterator[None]:
    """onnxruntime's Python tools log advice and progress at every call (quantize_static: run its
    pre-processing; the .ort converter: each file); the export prints its own summary instead."""
    before = logging.root.manager.disable
    logging.disable(logging.WARNING)
    try:
        yield
    finally:
        logging.disable(before)


def _reader(input_name: str, data: np.ndarray):
    from onnxruntime.quantization import CalibrationDataReader

    class Batches(CalibrationDataReader):
        def __init__(self) -> None:
            self._batches = iter([{input_name: data[i : i + CALIBRATION_BATCH]}
                                  for i in range(0, len(data), CALIBRATION_BATCH)])

        def get_next(self) -> dict | None:
            return next(self._batches, None)

    return Batches()


def quantize_graph(fp32: bytes, input_name: str, calibration: np.ndarray, exclude: list[str],
                   metadata: dict[str, str], per_tensor: Sequence[str] = ()) -> bytes:
    """One FP32 graph -> INT8 QDQ bytes, calibrated (min/max) on ``calibration``; ``exclude`` stays FP32 and
    the weight initializers in ``per_tensor`` get one scale instead of one per channel."""
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    overrides = {name: [{"quant_type": QuantType.QInt8}] for name in per_tensor}  # no "axis": per tensor
    with tempfile.TemporaryDirectory(prefix="ecgae-int8-") as tmp:
        src, dst = Path(tmp) / "fp32.onnx", Path(tmp) / "int8.onnx"
        src.write_bytes(fp32)
        with quiet_logging():
            quantize_static(str(src), str(dst), _reader(input_name, calibration), quant_format=QuantFormat.QDQ,
                            per_channel=True, activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                            calibrate_method=CalibrationMethod.MinMax, nodes_to_exclude=list(exclude),
                            extra_options={"TensorQuantOverrides": overrides})
        proto = onnx.load(str(dst))
    onnx.helper.set_model_props(proto, metadata)
    onnx.checker.check_model(proto, full_check=True)
    return proto.SerializeToString()


@dataclass(frozen=True)
class WeightStorage:
    """How one int8 weight is stored in a QDQ graph: its values, its scales (1: per tensor) and the bytes on
    disk of its scale and zero-point initializers."""

    weights: int
    scales: int
    scale_bytes: int


def weight_storage(int8: bytes) -> dict[str, WeightStorage]:
    """Each int8 weight of a QDQ graph, by its FP32 initializer name."""
    from onnxruntime.quantization.quant_utils import TENSOR_NAME_QUANT_SUFFIX

    g = onnx.load_from_string(int8).graph
    inits = {i.name: i for i in g.initializer}
    out = {}
    for n in g.node:
        weight = inits.get(n.input[0]) if n.op_type == "DequantizeLinear" else None
        if weight is not None and weight.data_type == onnx.TensorProto.INT8:
            scale, zero_point = inits[n.input[1]], inits[n.input[2]]
            out[weight.name.removesuffix(TENSOR_NAME_QUANT_SUFFIX)] = WeightStorage(
                int(np.prod(weight.dims)), int(np.prod(scale.dims)),
                len(scale.SerializeToString()) + len(zero_point.SerializeToString()))
    return out


def per_tensor_weights(int8: bytes) -> list[str]:
    """The weights of a per-channel INT8 graph whose scales cost more bytes than their precision is worth:
    fewer than MIN_WEIGHTS_PER_CHANNEL weights per channel, and scales at least MIN_SCALE_SHARE of the file."""
    return sorted(name for name, w in weight_storage(int8).items()
                  if w.scales > 1 and w.weights < MIN_WEIGHTS_PER_CHANNEL * w.scales
                  and w.scale_bytes >= MIN_SCALE_SHARE * len(int8))


def compute_nodes(graph: bytes) -> list[str]:
    """Names of a graph's weight-carrying nodes: the candidates for staying FP32."""
    return [n.name for n in onnx.load_from_string(graph).graph.node if n.op_type in COMPUTE_OPS]


def reconstruction_mse(encoder: bytes, decoder: bytes, beats: np.ndarray) -> float:
    """Mean squared reconstruction error of beats [N,1,L] through a graph pair (encoder's first output)."""
    with tempfile.TemporaryDirectory(prefix="ecgae-mse-") as tmp:
        enc, dec = Path(tmp) / "encoder.onnx", Path(tmp) / "decoder.onnx"
        enc.write_bytes(encoder)
        dec.write_bytes(decoder)
        z = next(iter(run_graph(enc, {"x": beats}, chunks=(len(beats),)).values()))
        x_hat = run_graph(dec, {"z": z}, chunks=(len(beats),))["x_hat"]
    return float(np.mean(np.square(x_hat.astype(np.float64) - beats)))


def quantize_pair(fp32: dict[str, bytes], train_beats: np.ndarray, train_latents: np.ndarray,
                  val_beats: np.ndarray, metadata: Callable[[str], dict[str, str]],
                  log: Callable[..., object] = print) -> Int8Graphs:
    """INT8 encoder and decoder: per-channel weights except those ``per_tensor_weights`` picks on a per-channel
    first pass; a graph whose INT8 form is not smaller stays FP32; then layers kept FP32 greedily only while
    the validation MSE is over budget."""
    calibration = {"encoder": ("x", train_beats), "decoder": ("z", train_latents)}
    built: dict[tuple, bytes] = {}  # (graph, its FP32 nodes) -> INT8 graph: a trial re-quantizes one graph only
    per_tensor: dict[str, list[str]] = {}
    for name in fp32:
        per_channel = quantize_graph(fp32[name], *calibration[name], [], metadata(name))
        per_tensor[name] = per_tensor_weights(per_channel)
        if not per_tensor[name]:
            built[(name,)] = per_channel

    def build(exclude: list[str]) -> dict[str, bytes]:
        out = {}
        for name in fp32:
            if name in whole:
                out[name] = fp32[name]
                continue
            key = (name, *(n for n in exclude if n in nodes[name]))
            if key not in built:
                built[key] = quantize_graph(fp32[name], *calibration[name], list(key[1:]), metadata(name),
                                            per_tensor[name])
            out[name] = built[key]
        return out

    nodes = {name: compute_nodes(data) for name, data in fp32.items()}
    whole: list[str] = []  # build() reads it: empty while the INT8 forms are first measured
    whole.extend(name for name, graph in build([]).items() if len(graph) >= len(fp32[name]))
    for name in whole:
        log(f"  INT8: keeping the {name} FP32 (its INT8 form is not smaller)")
    base = reconstruction_mse(fp32["encoder"], fp32["decoder"], val_beats)
    exclude: list[str] = []
    graphs = build(exclude)
    change = reconstruction_mse(graphs["encoder"], graphs["decoder"], val_beats) / base - 1
    trials = [{"fp32_nodes": [], "val_mse_change": change}]
    candidates = [n for name in fp32 if name not in whole for n in nodes[name]]
    while change > MSE_BUDGET and len(exclude) < len(candidates):
        best = None
        for node in (n for n in candidates if n not in exclude):
            trial = build([*exclude, node])
            c = reconstruction_mse(trial["encoder"], trial["decoder"], val_beats) / base - 1
            trials.append({"fp32_nodes": [*exclude, node], "val_mse_change": c})
            if best is None or c < best[0]:
                best = (c, node, trial)
        if best[0] >= change:  # no single exclusion helps: keep what quantizes best
            break
        change, node, graphs = best
        exclude.append(node)
        log(f"  INT8: keeping {node} in FP32 (validation MSE change now {change:+.2%})")
    in_graph = {name: [w for w in per_tensor[name] if w in weight_storage(graphs[name])] for name in fp32}
    return Int8Graphs(graphs, whole, exclude, in_graph, {"fp32": base, "int8": base * (1 + change), "change": change},
                      trials)
