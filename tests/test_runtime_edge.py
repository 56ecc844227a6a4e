"""The edge variants of a bundle (INT8 QDQ graphs, .ort files) through the lean runtime.

Runs in the torch-free venv too (make test-runtime): loading INT8 and .ort graphs needs onnxruntime alone.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from ecgae.runtime import BundleError, InputError, Model
from ecgae.runtime.bundle import SEAL
from ecgae.runtime.seal import seal

KINDS = ("ae", "vae")
VARIANTS = [("fp32", "ort"), ("int8", "onnx"), ("int8", "ort")]


def _manifest(bundle: Path) -> dict:
    return json.loads((bundle / "manifest.json").read_text())


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("precision, graph_format", VARIANTS)
def test_variant_verifies_loads_and_matches_its_recorded_parity(bundles, kind, precision, graph_format):
    model = Model.load(bundles[kind], precision=precision, graph_format=graph_format)
    key = "_".join(p for p in (precision, graph_format) if p not in ("fp32", "onnx"))
    section = _manifest(bundles[kind])["variants"][key]
    assert (model.precision, model.graph_format) == (precision, graph_format)
    assert model._encoder.path.name == section["graphs"]["encoder"]["file"]
    assert model._encoder.path.suffix == f".{graph_format}"
    assert model.threshold == section["anomaly"]["threshold"]
    diffs = model.check_parity()  # raises when an output breaks the variant's own recorded tolerance
    recorded = section["parity"]
    for key, worst in diffs.items():
        assert worst <= recorded["atol"] + 1e-7, key
    if precision == "fp32":  # the .ort twin of the FP32 graphs is held to the FP32 tolerance
        assert recorded["atol"] == _manifest(bundles[kind])["parity"]["atol"]


@pytest.mark.parametrize("kind", KINDS)
def test_int8_scores_track_fp32_and_have_their_own_threshold(bundles, kind):
    fp32, int8 = Model.load(bundles[kind]), Model.load(bundles[kind], precision="int8")
    m = _manifest(bundles[kind])
    x = np.load(bundles[kind] / "reference.npz")["x"]
    s32, s8 = fp32.score(x), int8.score(x)
    assert np.corrcoef(s32, s8)[0, 1] > 0.95
    assert abs(s8.mean() / s32.mean() - 1) < 0.05
    assert int8.threshold == m["variants"]["int8"]["anomaly"]["threshold"] != fp32.threshold
    assert "INT8 graphs" in m["variants"]["int8"]["anomaly"]["calibrated_on"]


@pytest.mark.parametrize("kind", KINDS)
def test_manifest_says_which_graph_is_which(bundles, kind):
    b = bundles[kind]
    m = _manifest(b)
    assert {g["precision"] for g in m["graphs"].values()} == {"fp32"}
    assert set(m["variants"]) == {"int8", "ort", "int8_ort"}
    for section in m["variants"].values():
        for name, entry in section["graphs"].items():
            data = (b / entry["file"]).read_bytes()
            assert entry["sha256"] == hashlib.sha256(data).hexdigest() and entry["bytes"] == len(data)
            kept = name in section.get("quantization", m["variants"]["int8"]["quantization"])["fp32_graphs"]
            int8 = section["precision"] == "int8" and not kept  # a graph kept FP32 whole is the FP32 file
            assert entry["file"] == f"{name}{'.int8' if int8 else ''}.{section['format']}"
    per_tensor = m["variants"]["int8"]["quantization"]["per_tensor_weights"]  # the decoder's wide product only
    assert per_tensor["encoder"] == [] and len(per_tensor["decoder"]) == 1, per_tensor
    build = m["ort_build"]
    config = (b / build["file"]).read_text()
    assert build["sha256"] == hashlib.sha256(config.encode()).hexdigest()
    assert build["covers"] == ["decoder.int8.ort", "decoder.ort", "encoder.ort"]  # the INT8 variant's encoder is FP32
    assert "QGemm" in config and '"uint8_t"' in config  # the INT8 kernels, with their types
    assert "/" not in "".join(line for line in config.splitlines() if line.startswith("# - "))  # no paths


@pytest.mark.parametrize("name", ["decoder.int8.onnx", "decoder.int8.ort"])
def test_tampered_edge_file_is_refused(bundles, tmp_path, name):
    b = shutil.copytree(bundles["ae"], tmp_path / "b")
    data = bytearray((b / name).read_bytes())
    data[len(data) // 2] ^= 0xFF
    (b / name).write_bytes(bytes(data))
    precision, graph_format = ("int8", name.rsplit(".", 1)[1])
    with pytest.raises(BundleError, match=rf"{name} does not match its manifest hash"):
        Model.load(b, precision=precision, graph_format=graph_format)
    with pytest.raises(BundleError, match=rf"{name} does not match"):  # a changed file refuses the whole bundle
        Model.load(b)
    (b / name).unlink()  # a device may ship without the variants it does not run
    Model.load(b)


def test_fp32_only_bundle_loads_and_names_the_missing_variant(bundles, tmp_path):
    b = shutil.copytree(bundles["ae"], tmp_path / "b")
    m = _manifest(b)
    del m["variants"], m["ort_build"]
    for g in m["graphs"].values():  # a bundle written before the graphs were labelled
        del g["precision"], g["format"], g["bytes"]
    (b / "manifest.json").write_bytes(seal(m, SEAL))  # sealed again, as export seals it
    assert Model.load(b).precision == "fp32"
    with pytest.raises(BundleError, match=r"expected int8 graphs in onnx format .*received a bundle holding "
                                          r"\['fp32'\]; export it with 'ecgae export RUN --int8'"):
        Model.load(b, precision="int8")


@pytest.mark.parametrize("args, message", [
    ({"precision": "int4"}, r"precision: expected one of \('fp32', 'int8'\), received 'int4'"),
    ({"graph_format": "tflite"}, r"graph_format: expected one of \('onnx', 'ort'\), received 'tflite'"),
])
def test_unknown_precision_or_format_is_an_input_error(bundles, args, message):
    with pytest.raises(InputError, match=message):
        Model.load(bundles["ae"], **args)


def test_variant_missing_its_graph_entry_is_refused(bundles, tmp_path):
    b = shutil.copytree(bundles["ae"], tmp_path / "b")
    m = _manifest(b)
    del m["variants"]["int8"]["graphs"]["decoder"]["sha256"]
    (b / "manifest.json").write_bytes(seal(m, SEAL))  # sealed again, as export seals it
    with pytest.raises(BundleError, match="lacks the field 'variants.int8.graphs.decoder.sha256'"):
        Model.load(b, precision="int8")


def test_info_lists_the_variants(bundles, capsys):
    from ecgae.cli import main

    assert main(["info", str(bundles["ae"])]) == 0
    out = capsys.readouterr().out
    assert "int8 .onnx: encoder.onnx, decoder.int8.onnx" in out and "fp32 .ort: encoder.ort, decoder.ort" in out
