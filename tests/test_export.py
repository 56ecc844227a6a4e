"""Export: BatchNorm folding, the exact seed-decoder rewrite, torch-vs-ORT parity, the bundle's manifest."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="needs the [train] extra")
onnx = pytest.importorskip("onnx", reason="needs the [train] extra")
nn = torch.nn

from ecgae.export.bundle import reference_model, torch_outputs  # noqa: E402
from ecgae.export.fold import FoldError, fold_batchnorm  # noqa: E402
from ecgae.export.macs import graph_macs  # noqa: E402
from ecgae.export.parity import LEVELS, error_stats, run_graph, violation  # noqa: E402
from ecgae.runtime.session import make_session  # noqa: E402
from ecgae.training.datasets import load_beats  # noqa: E402
from ecgae.training.train import load_config, load_model  # noqa: E402

KINDS = ("ae", "vae")


@pytest.fixture(scope="module")
def beats() -> np.ndarray:
    """All ECG5000 beats of the tiny runs, [N,1,L] (at least 256 for the largest batch)."""
    x = load_beats("bundled:ecg5000").beats[:, None, :]
    assert len(x) >= 256
    return x


def _test_beats(run, beats: np.ndarray) -> np.ndarray:
    return beats[json.loads((run / "split.json").read_text())["test"]]


def _manifest(bundle) -> dict:
    return json.loads((bundle / "manifest.json").read_text())


@pytest.mark.parametrize("kind", KINDS)
def test_graphs_are_checked_pinned_and_free_of_batchnorm(bundles, kind):
    for name in ("encoder", "decoder"):
        proto = onnx.load(bundles[kind] / f"{name}.onnx")
        onnx.checker.check_model(proto, full_check=True)
        assert "BatchNormalization" not in {n.op_type for n in proto.graph.node}
        assert proto.ir_version == 8 and [(o.domain, o.version) for o in proto.opset_import] == [("", 17)]
        meta = {p.key: p.value for p in proto.metadata_props}
        assert meta["kind"] == kind and meta["format_version"] == "2" and meta["input_length"] == "140"
        assert meta["latent_dim"] == "2" and meta["arch"] == "seed" and meta["sample_rate"] == "null"


@pytest.mark.parametrize("kind", KINDS)
def test_fused_model_matches_unfused(tiny_runs, beats, kind):
    model, _ = load_model(tiny_runs[kind])
    fused = fold_batchnorm(model)
    assert not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in fused.modules())
    latents = np.random.default_rng(1).standard_normal((64, 2)).astype(np.float32)
    want = torch_outputs(model, kind, beats[:256], latents)
    got = torch_outputs(fused, kind, beats[:256], latents)
    for key in want:
        assert np.abs(want[key] - got[key]).max() <= 2e-6, key


def _fold_check(conv: nn.Module, bn: nn.Module, x: torch.Tensor) -> None:
    seq = nn.Sequential(conv, bn)
    with torch.no_grad():
        bn.running_mean.uniform_(-1, 1)
        bn.running_var.uniform_(0.5, 2)
        bn.weight.uniform_(0.5, 2)
        bn.bias.uniform_(-1, 1)
    seq.eval()
    fused = fold_batchnorm(seq)
    assert isinstance(fused[1], nn.Identity)
    with torch.no_grad():
        assert (seq(x) - fused(x)).abs().max() <= 1e-5


def test_fold_conv_and_transposed_conv_with_batchnorm():
    torch.manual_seed(0)
    x = torch.randn(4, 3, 20)
    _fold_check(nn.Conv1d(3, 5, kernel_size=3, stride=2), nn.BatchNorm1d(5), x)
    _fold_check(nn.ConvTranspose1d(3, 5, kernel_size=4, stride=2), nn.BatchNorm1d(5), x)


def test_fold_refuses_what_it_cannot_fold_exactly():
    with pytest.raises(FoldError, match="groups=3"):
        fold_batchnorm(nn.Sequential(nn.ConvTranspose1d(3, 6, 2, groups=3), nn.BatchNorm1d(6)))
    with pytest.raises(FoldError, match="unfoldable BatchNorm"):
        fold_batchnorm(nn.Sequential(nn.ReLU(), nn.BatchNorm1d(6)))
    with pytest.raises(FoldError, match="track_running_stats"):
        fold_batchnorm(nn.Sequential(nn.Conv1d(3, 6, 2), nn.BatchNorm1d(6, track_running_stats=False)))


@pytest.mark.parametrize("kind", KINDS)
def test_ort_matches_torch_at_every_batch_size(tiny_runs, bundles, beats, kind):
    """Dynamic batch axis: each size runs as one batch, at both optimization levels."""
    ref = reference_model(load_model(tiny_runs[kind])[0])
    latents = np.random.default_rng(2).standard_normal((256, 2)).astype(np.float32)
    want = torch_outputs(ref, kind, beats[:256], latents)
    for level in LEVELS.values():
        enc = make_session(bundles[kind] / "encoder.onnx", optimization=level)
        dec = make_session(bundles[kind] / "decoder.onnx", optimization=level)
        for b in (1, 2, 7, 256):
            got = dict(zip([o.name for o in enc.get_outputs()], enc.run(None, {"x": beats[:b]})))
            for name, arr in got.items():
                assert np.abs(arr - want[f"encoder.{name}"][:b]).max() <= 1e-4, (level, b, name)
            x_hat = dec.run(None, {"z": latents[:b]})[0]
            assert x_hat.shape == (b, 1, 140)
            assert np.abs(x_hat - want["decoder.x_hat"][:b]).max() <= 1e-4, (level, b)


@pytest.mark.parametrize("kind", KINDS)
def test_rewritten_decoder_equals_literal(tiny_runs, bundles, beats, kind):
    model, _ = load_model(tiny_runs[kind])
    enc = model.encode(torch.from_numpy(_test_beats(tiny_runs[kind], beats)))
    real = (enc[0] if isinstance(enc, tuple) else enc).detach()
    wide = torch.from_numpy(3 * np.random.default_rng(3).standard_normal((256, 2)).astype(np.float32))
    with torch.no_grad():
        for z in (real, wide):
            assert (model.decode_tiled(z) - model.decode_literal(z)).abs().max() <= 1e-5
            ort = run_graph(bundles[kind] / "decoder.onnx", {"z": z.numpy()}, "all")["x_hat"]
            assert np.abs(ort - model.decode_literal(z).numpy()).max() <= 1e-5


@pytest.mark.parametrize("kind", KINDS)
def test_manifest_describes_the_bundle(tiny_runs, bundles, kind):
    bundle, run = bundles[kind], tiny_runs[kind]
    m = _manifest(bundle)
    for entry in (*m["graphs"].values(), m["reference"]):
        assert hashlib.sha256((bundle / entry["file"]).read_bytes()).hexdigest() == entry["sha256"]
    cfg, metrics = load_config(run), json.loads((run / "metrics.json").read_text())
    assert (m["format"], m["format_version"]) == ("ecgae-bundle", 2)
    assert m["model"] == {"kind": kind, "arch": "seed", "input_length": 140, "latent_dim": 2,
                          "decoder_graph": "rewritten"}
    assert m["preprocessing"] == cfg["preprocessing"] and m["anomaly"] == metrics["anomaly"]
    assert m["training"]["config"] == cfg["train"] and m["normal_label"] == cfg["normal_label"]
    assert m["onnx"] == {"opset": 17, "ir_version": 8, "min_onnxruntime": "1.17"}
    assert m["parity"]["passed"] and m["parity"]["n_beats"] == 75 and m["parity"]["n_latents"] == 256
    outputs = ["z"] if kind == "ae" else ["mu", "logvar"]
    assert m["graphs"]["encoder"]["outputs"] == outputs
    assert set(m["parity"]["levels"]) == {"disable_all", "enable_all"}
    for level in m["parity"]["levels"].values():
        assert set(level) == {*(f"encoder.{o}" for o in outputs), "decoder.x_hat", "reconstruct.x_hat",
                              f"score.{outputs[0]}", "score.x_hat", "score.score"}
        assert all(s["max_abs"] <= 1e-4 for s in level.values())
    assert m["graphs"]["score"]["outputs"] == [outputs[0], "x_hat", "score"]
    assert m["graphs"]["score"]["macs_per_beat"] == m["graphs"]["encoder"]["macs_per_beat"] - 16 * 2 * (
        len(outputs) - 1) + m["graphs"]["decoder"]["macs_per_beat"]  # the VAE's score graph skips logvar
    dec = m["graphs"]["decoder"]
    assert m["graphs"]["encoder"]["macs_per_beat"] == 16 * 47 * 5 + 16 * 8 * 16 * 5 + 16 * 2 * len(outputs)
    assert dec["macs_per_beat"] == 2 * 16 + 16 * 16 * 70 + 16 * 70
    assert dec["macs_per_beat_literal"] == 2 * 16 + 70 * 16 * 16 * 70 + 70 * 70 * 16
    assert set(m["versions"]) == {"ecgae", "torch", "onnx", "onnxruntime", "numpy", "python"}


@pytest.mark.parametrize("kind", KINDS)
def test_reference_npz_reproduces_with_onnxruntime(bundles, kind):
    with np.load(bundles[kind] / "reference.npz", allow_pickle=False) as ref:
        ref = dict(ref)
    first = "z" if kind == "ae" else "mu"
    assert ref["x"].shape == (32, 1, 140) and ref["z_sample"].shape == (32, 2)
    enc = run_graph(bundles[kind] / "encoder.onnx", {"x": ref["x"]})
    assert np.abs(enc[first] - ref[first]).max() <= 1e-4
    x_hat = run_graph(bundles[kind] / "decoder.onnx", {"z": enc[first]})["x_hat"]
    assert np.abs(x_hat - ref["x_hat"]).max() <= 1e-4
    x_sample = run_graph(bundles[kind] / "decoder.onnx", {"z": ref["z_sample"]})["x_hat"]
    assert np.abs(x_sample - ref["x_sample"]).max() <= 1e-4


def test_error_stats_and_violation():
    expected = np.zeros((2, 3), np.float32)
    actual = expected.copy()
    actual[1, 2] = 0.5
    s = error_stats(expected, actual)
    assert s["max_abs"] == 0.5 and s["worst_index"] == [1, 2] and s["actual_at_worst"] == 0.5
    assert s["mean_abs"] == pytest.approx(0.5 / 6)
    assert violation(expected, actual, atol=1.0) is None
    assert violation(expected, actual, atol=0.1)["index"] == [1, 2]
    actual[0, 0] = np.nan
    assert violation(expected, actual, atol=1.0)["index"] == [0, 0]


def test_naive_export_through_the_cli(tiny_runs, tmp_path, capsys):
    from ecgae.cli import main

    assert main(["export", str(tiny_runs["ae"]), "--out", str(tmp_path / "naive"), "--naive"]) == 0
    table = capsys.readouterr().out
    assert "decoder.x_hat" in table and "enable_all" in table and "p99_abs" in table
    m = _manifest(tmp_path / "naive")
    assert m["model"]["decoder_graph"] == "literal" and m["parity"]["passed"]
    assert m["graphs"]["decoder"]["macs_per_beat"] == m["graphs"]["decoder"]["macs_per_beat_literal"]
    ops = [n.op_type for n in onnx.load(tmp_path / "naive" / "decoder.onnx").graph.node]
    assert ops.index("Tile") < ops.index("ConvTranspose")  # repeats to L//2 first: the literal form


def test_rewritten_decoder_graph_computes_one_block(bundles):
    """The rewrite decodes one L//2 block by matrix products, then tiles: no ConvTranspose remains, and no
    tensor holds more than one block per channel before the Tile."""
    proto = onnx.load(bundles["ae"] / "decoder.onnx")
    ops = [n.op_type for n in proto.graph.node]
    assert "ConvTranspose" not in ops and ops.index("MatMul") < ops.index("Tile")
    assert graph_macs(proto.SerializeToString()) == 2 * 16 + 16 * 16 * 70 + 16 * 70


def test_encoder_2d_form_equals_the_1d_stack():
    from ecgae.export.conv2d import as_2d
    from ecgae.runtime.errors import EcgaeError
    from ecgae.training.models import build_model
    from torch import nn

    torch.manual_seed(5)
    folded = fold_batchnorm(build_model("vae", "seed", 450, 2).eval())
    x = torch.randn(7, 1, 450)
    with torch.no_grad():
        assert torch.allclose(as_2d(folded.encoder)(x), folded.encoder(x), atol=1e-6, rtol=0)
    with pytest.raises(EcgaeError, match="BatchNorm1d"):
        as_2d(nn.Sequential(nn.Conv1d(1, 4, 3), nn.BatchNorm1d(4)))


def test_exported_encoder_runs_2d_kernels(bundles):
    ops = [n.op_type for n in onnx.load(bundles["ae"] / "encoder.onnx").graph.node]
    assert ops.count("Conv") == 2 and "MaxPool" in ops and "BatchNormalization" not in ops
    kernel = next(a for n in onnx.load(bundles["ae"] / "encoder.onnx").graph.node if n.op_type == "Conv"
                  for a in n.attribute if a.name == "kernel_shape")
    assert list(kernel.ints) == [1, 5]
