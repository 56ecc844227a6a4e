"""The bundle's graphs as C (ecgae emit-c): compiled with the host's gcc (C99, warnings as errors) and run
on the bundle's reference beats and latents, they give onnxruntime's outputs within 1e-5 for every
architecture and kind; a graph the generator cannot translate is refused by name."""

from __future__ import annotations

import pytest

onnx = pytest.importorskip("onnx", reason="needs the [train] extra")

from ecgae.cli import main as cli  # noqa: E402
from ecgae.export.c_graph import Plan, UnsupportedGraph  # noqa: E402
from ecgae.export.c_harness import FP32_ATOL, host_compiler, host_parity  # noqa: E402
from ecgae.export.emit_c import load_graph, translate  # noqa: E402
from ecgae.runtime import bundle as bundle_io  # noqa: E402

OTHER_ARCHS = [("vae", "upsample"), ("ae", "conv"), ("vae", "conv"), ("ae", "conv-flat"), ("vae", "conv-flat")]
CASES = ["ae-seed", "vae-seed", "ae-upsample-450", *(f"{k}-{a}" for k, a in OTHER_ARCHS)]


@pytest.fixture(scope="module")
def arch_bundles(tmp_path_factory, bundles, mitdb_bundle) -> dict:
    """Every architecture as AE and VAE: the shared seed bundles and L=450 upsample AE, and 1-epoch runs of
    the others on the bundled ECG5000 beats (parity does not depend on how well a model is trained)."""
    pytest.importorskip("torch", reason="needs the [train] extra")
    from ecgae.export.bundle import export_run
    from ecgae.training.train import TrainConfig, train

    root = tmp_path_factory.mktemp("arch-bundles")
    out = {"ae-seed": bundles["ae"], "vae-seed": bundles["vae"], "ae-upsample-450": mitdb_bundle}
    for kind, arch in OTHER_ARCHS:
        run = root / "runs" / f"{kind}-{arch}"
        train(TrainConfig(model=kind, arch=arch, data="bundled:ecg5000", epochs=1, latent_dim=3), run,
              log=lambda *_: None)
        export_run(run, root / f"{kind}-{arch}", log=lambda *_: None)
        out[f"{kind}-{arch}"] = root / f"{kind}-{arch}"
    return out


@pytest.mark.parametrize("case", CASES)
def test_host_c_equals_onnxruntime(arch_bundles, tmp_path, case):
    cc = host_compiler()
    if cc is None:
        pytest.skip("no C compiler (gcc or cc) on this machine")
    result = host_parity(arch_bundles[case], tmp_path, cc)
    assert set(result["vs_onnxruntime"]) == {"z", "score", "score_z", "x_hat", "decode"}
    assert result["atol"] == FP32_ATOL and result["passed"], result
    assert max(result["vs_onnxruntime"].values()) <= FP32_ATOL


@pytest.mark.parametrize("kind", ["ae", "vae"])
def test_host_c_int8_within_the_bundles_int8_tolerance(bundles, tmp_path, kind):
    """The INT8 variant's weights stay int8 in the C (a quarter of the bytes) and its outputs keep within the
    tolerance export recorded for the INT8 graphs against torch."""
    cc = host_compiler()
    if cc is None:
        pytest.skip("no C compiler (gcc or cc) on this machine")
    result = host_parity(bundles[kind], tmp_path / "int8", cc, precision="int8")
    manifest = bundle_io.read_manifest(bundles[kind])
    assert result["atol"] == manifest["variants"]["int8"]["parity"]["atol"]
    assert max(v for k, v in result["vs_torch"].items() if k != "score") <= result["atol"], result
    fp32 = host_parity(bundles[kind], tmp_path / "fp32", cc)
    assert fp32["passed"]
    sizes = [int(next(line.split()[2] for line in (tmp_path / d / "ecgae_model.h").read_text().splitlines()
                      if line.startswith("#define ECGAE_CONST_BYTES"))) for d in ("fp32", "int8")]
    assert sizes[1] < 0.4 * sizes[0]
    assert "static const int8_t" in (tmp_path / "int8" / "ecgae_model.c").read_text()


def _seed_models(bundle) -> dict:
    manifest = bundle_io.read_manifest(bundle)
    return {name: load_graph(bundle, manifest, name) for name in ("encoder", "decoder", "score")}


def test_unsupported_operator_is_refused_by_name(bundles):
    models = _seed_models(bundles["ae"])
    relu = next(n for n in models["encoder"].graph.node if n.op_type == "Relu")
    relu.op_type = "Elu"
    with pytest.raises(UnsupportedGraph, match=rf"encoder.onnx: node '{relu.name}': operator 'Elu' is not supported"):
        translate(models, "ae")


def test_unsupported_attribute_is_refused_by_name(bundles):
    models = _seed_models(bundles["ae"])
    conv = next(n for n in models["score"].graph.node if n.op_type == "Conv")
    next(a for a in conv.attribute if a.name == "group").i = 2
    with pytest.raises(UnsupportedGraph, match=rf"node '{conv.name}' \(Conv\): group 2: expected 1"):
        translate(models, "ae")


def test_cli_writes_source_and_header(bundles, tmp_path, capsys):
    assert cli(["emit-c", str(bundles["vae"]), "--out", str(tmp_path / "c")]) == 0
    header = (tmp_path / "c" / "ecgae_model.h").read_text()
    manifest = bundle_io.read_manifest(bundles["vae"])
    assert f"#define ECGAE_INPUT_LENGTH {manifest['model']['input_length']}" in header
    assert f"#define ECGAE_LATENT_DIM {manifest['model']['latent_dim']}" in header
    assert "malloc" not in (tmp_path / "c" / "ecgae_model.c").read_text()
    assert "scratch" in capsys.readouterr().out
    assert cli(["emit-c", str(tmp_path / "missing"), "--out", str(tmp_path / "d")]) == 2


def test_scratch_plan_reuses_dead_buffers_and_works_in_place():
    plan = Plan()
    a = plan.add("float", 100, 1)
    b = plan.add("float", 50, 2)  # reads a
    plan.use(a, 2)
    c = plan.add("float", 50, 3, in_place_of=b)  # elementwise on b, b's last reader
    plan.use(b, 3)
    d = plan.add("float", 80, 4)  # a is dead by now: its block is reused
    plan.use(c, 4)
    sizes = plan.assign()
    offsets = [plan.buffers[i].offset for i in (a, b, c, d)]
    assert offsets == [0, 100, 100, 0] and sizes["float"] == 150



def test_only_the_named_functions_are_generated(bundles, tmp_path):
    assert cli(["emit-c", str(bundles["ae"]), "--out", str(tmp_path / "all")]) == 0
    assert cli(["emit-c", str(bundles["ae"]), "--out", str(tmp_path / "enc"), "--only", "ecgae_encode"]) == 0
    header = (tmp_path / "enc" / "ecgae_model.h").read_text()
    assert "int ecgae_encode(" in header and "ecgae_score(" not in header and "ecgae_decode(" not in header
    sizes = [int(next(line.split()[2] for line in (tmp_path / d / "ecgae_model.h").read_text().splitlines()
                      if line.startswith("#define ECGAE_CONST_BYTES"))) for d in ("all", "enc")]
    assert sizes[1] < sizes[0]  # the decoder's weights are left out
    assert cli(["emit-c", str(bundles["ae"]), "--out", str(tmp_path / "x"), "--only", "encode"]) == 2


def test_int8_without_an_int8_variant_is_refused(mitdb_bundle, tmp_path, capsys):
    assert cli(["emit-c", str(mitdb_bundle), "--out", str(tmp_path / "c"), "--precision", "int8"]) == 2
    assert "expected an INT8 variant" in capsys.readouterr().err
