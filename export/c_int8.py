"""The bundle's INT8 variant as graphs for the C generator: its QDQ encoder and decoder as they are, and a
score graph composed from the two, because the variant has none of its own. The composed score is the
two-graph path the runtime takes for INT8 (encode, decode, mean squared error in double)."""

from __future__ import annotations

from pathlib import Path

import onnx
from onnx import TensorProto, compose, helper

from ..runtime.errors import InputError


def int8_section(bundle_dir: Path, manifest: dict) -> dict:
    """The manifest's INT8 ONNX variant, or an error saying how to get one."""
    section = (manifest.get("variants") or {}).get("int8")
    if not isinstance(section, dict) or section.get("format") != "onnx":
        raise InputError(f"--precision int8: expected an INT8 variant in bundle {bundle_dir}, received none; "
                         "export it with 'ecgae export RUN --out BUNDLE --int8'")
    return section


def score_graph(encoder: onnx.ModelProto, decoder: onnx.ModelProto) -> onnx.ModelProto:
    """x -> (z or mu, x_hat, per-beat MSE in double): the encoder's first output fed to the decoder."""
    encoder, decoder = _bare(encoder), _bare(decoder)
    primary = encoder.graph.output[0].name
    merged = compose.merge_models(encoder, decoder, io_map=[(primary, decoder.graph.input[0].name)],
                                  prefix1="encoder/", prefix2="decoder/",
                                  outputs=[f"encoder/{primary}", f"decoder/{decoder.graph.output[0].name}"])
    x, x_hat = merged.graph.input[0].name, merged.graph.output[1].name
    merged.graph.node.extend([
        helper.make_node("Cast", [x_hat], ["score/x_hat64"], to=TensorProto.DOUBLE),
        helper.make_node("Cast", [x], ["score/x64"], to=TensorProto.DOUBLE),
        helper.make_node("Sub", ["score/x_hat64", "score/x64"], ["score/error"]),
        helper.make_node("Mul", ["score/error", "score/error"], ["score/squared"]),
        helper.make_node("ReduceMean", ["score/squared"], ["score"], axes=[1, 2], keepdims=0),
    ])
    merged.graph.output.append(helper.make_tensor_value_info("score", TensorProto.DOUBLE, ["batch"]))
    return merged


def _bare(model: onnx.ModelProto) -> onnx.ModelProto:
    """A copy without metadata: the two graphs describe themselves differently, and merging refuses that."""
    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    del copy.metadata_props[:]
    return copy
