"""Multiply-accumulate counts per beat, read from an exported ONNX graph itself.

Counting the graph (not the torch layers) charges exactly what onnxruntime will compute, whatever
mix of layers and matrix products the torch code used. Rule (bias additions, activations, pooling and
data movement not counted), with every tensor's shape taken from one run of the graph on a batch of 1:
- Conv:          output elements x (in_channels / groups) x kernel size
- ConvTranspose: input elements x (out_channels / groups) x kernel size (each input sample is
                 scattered into ``kernel`` outputs of every output channel of its group)
- Gemm, MatMul:  output elements x the contracted dimension
The literal seed decoder is so charged for all (L//2)**2 samples it computes before its crop.
"""

from __future__ import annotations

import math

import numpy as np
import onnx
import onnxruntime as ort

COUNTED = ("Conv", "ConvTranspose", "Gemm", "MatMul")


def _observed_shapes(proto: onnx.ModelProto) -> dict[str, tuple[int, ...]]:
    """Shapes of the counted nodes' operands, from running the graph once on zeros at batch 1."""
    g = proto.graph
    shapes = {init.name: tuple(init.dims) for init in g.initializer}
    wanted = sorted({name for node in g.node if node.op_type in COUNTED
                     for name in (*node.input[:2], node.output[0]) if name not in shapes})
    probe = onnx.ModelProto()
    probe.CopyFrom(proto)
    probe.graph.output.extend(onnx.ValueInfoProto(name=n) for n in wanted if n not in {o.name for o in g.output})
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    session = ort.InferenceSession(probe.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    inp = session.get_inputs()[0]
    feed = {inp.name: np.zeros([1, *inp.shape[1:]], dtype=np.float32)}
    shapes.update({n: v.shape for n, v in zip(wanted, session.run(wanted, feed))})
    return shapes


def _attr(node: onnx.NodeProto, name: str, default: int) -> int:
    return next((a.i for a in node.attribute if a.name == name), default)


def graph_macs(model_bytes: bytes) -> int:
    """MACs of one beat through a serialized ONNX graph whose first input axis is the batch."""
    proto = onnx.load_from_string(model_bytes)
    shapes = _observed_shapes(proto)
    total = 0
    for node in proto.graph.node:
        if node.op_type not in COUNTED:
            continue
        a, b, out = (shapes[n] for n in (node.input[0], node.input[1], node.output[0]))
        if node.op_type == "Conv":
            total += math.prod(out) * math.prod(b[1:])
        elif node.op_type == "ConvTranspose":
            total += math.prod(a) * math.prod(b[1:])
        elif node.op_type == "Gemm":
            total += math.prod(out) * (a[0] if _attr(node, "transA", 0) else a[1])
        else:
            total += math.prod(out) * a[-1]
    return total
