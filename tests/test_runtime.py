"""The lean runtime (ecgae.runtime) and its CLI, on real bundles and real ECG.

Runs in the torch-free venv too (make test-runtime): nothing here imports torch, onnx, scipy or wfdb at
module level. Real raw ECG comes from the package's bundled.npz (MIT-BIH record 100), read with numpy.
"""

from __future__ import annotations

import hashlib
import importlib.resources
import json
import re
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
from ecgae.cli import main
from ecgae.runtime import BundleError, InputError, Model, Preprocessing
from ecgae.runtime.bundle import SEAL
from ecgae.runtime.preprocess import beats_from_signal, design_bandpass, resample
from ecgae.runtime.seal import seal
from ecgae.runtime.session import direct_run, make_session

KINDS = ("ae", "vae")
MODEL_RATE = 112.0  # Hz: puts 1.25 s of ECG in the test bundles' 140-sample window, as 450 at 360 Hz


# ---------------------------------------------------------------- helpers and fixtures


@pytest.fixture(scope="module")
def mitdb() -> dict:
    """MIT-BIH record 100, lead MLII in mV, with its reference beat annotations."""
    path = importlib.resources.files("ecgae.training") / "data" / "bundled.npz"
    with path.open("rb") as f, np.load(f, allow_pickle=False) as z:
        d = {k: z[k] for k in z.files if k.startswith("mitdb_100")}
    beats = np.isin(d["mitdb_100_ann_symbol"], list("NAV"))
    return {"signal": (d["mitdb_100_adc"].astype(np.float64) - d["mitdb_100_baseline"]) / d["mitdb_100_gain"],
            "fs": float(d["mitdb_100_fs"]), "peaks": d["mitdb_100_ann_sample"][beats]}


def edit_manifest(bundle: Path, change) -> None:
    """Change a bundle's manifest in place with ``change(manifest)``, sealed again as export seals it (so the
    test reaches the check of the changed field rather than the seal)."""
    manifest = json.loads((bundle / "manifest.json").read_text())
    change(manifest)
    (bundle / "manifest.json").write_bytes(seal(manifest, SEAL))


def edited_bundle(src: Path, dst: Path, change) -> Path:
    """A copy of bundle ``src`` at ``dst`` with its manifest changed."""
    edit_manifest(shutil.copytree(src, dst), change)
    return dst


@pytest.fixture(scope="module")
def models(bundles) -> dict[str, Model]:
    return {kind: Model.load(bundles[kind]) for kind in KINDS}


@pytest.fixture(scope="module")
def signal_bundle(bundles, tmp_path_factory) -> Path:
    """The AE bundle declared as trained on raw ECG at MODEL_RATE: window of 140 with 47 before the R peak."""
    prep = Preprocessing(MODEL_RATE, 140, 47, design_bandpass(MODEL_RATE, (0.5, 40.0)), (0.5, 40.0))
    return edited_bundle(bundles["ae"], tmp_path_factory.mktemp("signal") / "ae",
                         lambda m: m.update(preprocessing=prep.to_dict()))


@pytest.fixture(scope="module")
def beats(bundles) -> np.ndarray:
    """Held-out beats of the bundle's own reference set plus noisier variants: [64, 140] float32."""
    with np.load(bundles["ae"] / "reference.npz", allow_pickle=False) as z:
        x = z["x"][:, 0, :]
    rng = np.random.default_rng(0)
    return np.concatenate([x, x + rng.normal(0, 0.5, x.shape).astype(np.float32)])


def hit_rate(found: np.ndarray, reference: np.ndarray, tolerance: float) -> float:
    """Fraction of reference peaks with a found peak within ``tolerance`` samples."""
    return float((np.abs(reference[:, None] - found[None, :]).min(axis=1) <= tolerance).mean())


def one_line_error(capsys, command: str) -> str:
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"ecgae {command}: error: ") and "\n" not in err, err
    return err


# ---------------------------------------------------------------- preprocessing (numpy only)


@pytest.mark.parametrize("fs_in", [360.0, 250.0, 500.0])
def test_beats_from_signal_finds_the_annotated_beats_of_real_ecg(mitdb, fs_in):
    """Two minutes of MIT-BIH 100, resampled to other device rates: every annotated beat is found."""
    n = int(120 * mitdb["fs"])
    signal = resample(mitdb["signal"][:n], mitdb["fs"], fs_in)
    prep = Preprocessing(360.0, 450, 150, design_bandpass(360.0, (0.5, 40.0)), (0.5, 40.0))
    x, where = beats_from_signal(signal, fs_in, prep)
    assert x.dtype == np.float32 and x.shape == (len(where), 450)
    np.testing.assert_allclose(x.mean(axis=1), 0, atol=1e-4)
    np.testing.assert_allclose(x.std(axis=1), 1, atol=1e-3)
    inner = mitdb["peaks"][(mitdb["peaks"] > 0.5 * mitdb["fs"]) & (mitdb["peaks"] < n - 1.0 * mitdb["fs"])]
    found = where * mitdb["fs"] / fs_in  # indices are in the caller's signal: bring them back to 360 Hz
    assert hit_rate(found, inner, 0.05 * mitdb["fs"]) == 1.0
    assert hit_rate(inner, found, 0.05 * mitdb["fs"]) == 1.0  # and nothing else


def test_beats_from_signal_on_a_synthetic_rhythm():
    """Gaussian QRS spikes every 0.8 s over baseline wander and noise: one beat per spike, at the spike."""
    fs, rng = 360.0, np.random.default_rng(1)
    t = np.arange(int(20 * fs)) / fs
    spikes = np.arange(0.6, 19.5, 0.8)
    signal = sum(np.exp(-0.5 * ((t - s) / 0.012) ** 2) for s in spikes)
    signal = signal + 0.3 * np.sin(2 * np.pi * 0.2 * t) + rng.normal(0, 0.02, t.size)
    prep = Preprocessing(fs, 450, 150, design_bandpass(fs, (0.5, 40.0)), (0.5, 40.0))
    x, where = beats_from_signal(signal.astype(np.float32), fs, prep)
    windowable = spikes[(spikes * fs >= 150) & (spikes * fs + 300 <= t.size)] * fs
    assert len(where) == len(windowable)
    np.testing.assert_allclose(where, windowable, atol=3)


@pytest.mark.parametrize("signal, fs, message", [
    (np.zeros(100), 112.0, "at least one window of 140"),
    (np.zeros(5000), 112.0, "at least one detectable heartbeat"),
    (np.ones(5000), 360.0, "at least one detectable heartbeat"),
    (np.r_[np.zeros(4000), np.nan], 112.0, "finite"),
    (np.zeros((2, 5000)), 112.0, "1-D single-lead"),
    (np.array(["a", "b"]), 112.0, "real numbers"),
    (np.array([1, None], dtype=object), 112.0, "real numbers"),
    (np.zeros(5000), 0.0, "fs: expected"),
    (np.zeros(5000), float("nan"), "fs: expected"),
    (np.zeros(5000), "360", "fs: expected"),
    (np.zeros(0), 360.0, "at least one window"),
])
def test_bad_signals_raise_input_errors_that_say_what_was_expected(signal_bundle, signal, fs, message):
    with pytest.raises(InputError, match=message) as e:
        Model.load(signal_bundle).beats_from_signal(signal, fs)
    assert "expected" in str(e.value) and "received" in str(e.value)


def test_a_model_of_pre_cut_beats_refuses_raw_signals(models, mitdb):
    with pytest.raises(InputError, match="pre-cut beats"):
        models["ae"].beats_from_signal(mitdb["signal"][:5000], mitdb["fs"])


def test_model_beats_from_signal_uses_the_bundle_preprocessing(signal_bundle, mitdb):
    model = Model.load(signal_bundle)
    n = int(60 * mitdb["fs"])
    x, where = model.beats_from_signal(mitdb["signal"][:n], mitdb["fs"])
    assert x.shape == (len(where), 140) and len(where) > 60
    inner = mitdb["peaks"][(mitdb["peaks"] > 0.5 * mitdb["fs"]) & (mitdb["peaks"] < n - 1.0 * mitdb["fs"])]
    assert hit_rate(where, inner, 0.05 * mitdb["fs"]) == 1.0
    assert np.isfinite(model.score(x)).all()


# ---------------------------------------------------------------- model API


@pytest.mark.parametrize("kind", KINDS)
def test_runtime_outputs_equal_the_export_time_reference(bundles, models, kind):
    model = models[kind]
    atol = model.manifest["parity"]["atol"]
    with np.load(bundles[kind] / "reference.npz", allow_pickle=False) as ref:
        outputs = model.encoder_outputs(ref["x"])
        assert sorted(outputs) == (["z"] if kind == "ae" else ["logvar", "mu"])
        for name, value in outputs.items():
            np.testing.assert_allclose(value, ref[name], atol=atol, rtol=0)
        np.testing.assert_allclose(model.encode(ref["x"]), ref["z" if kind == "ae" else "mu"], atol=atol, rtol=0)
        np.testing.assert_allclose(model.reconstruct(ref["x"]), ref["x_hat"][:, 0], atol=atol, rtol=0)
        np.testing.assert_allclose(model.decode(ref["z_sample"]), ref["x_sample"][:, 0], atol=atol, rtol=0)
    assert max(model.check_parity().values()) <= atol


@pytest.mark.parametrize("kind", KINDS)
def test_score_is_the_per_beat_reconstruction_mse_and_flags_use_the_calibrated_threshold(models, beats, kind):
    model = models[kind]
    scores = model.score(beats)
    assert scores.shape == (len(beats),)
    np.testing.assert_allclose(scores, ((model.reconstruct(beats) - beats) ** 2).mean(axis=1), rtol=1e-6)
    assert model.threshold == model.manifest["anomaly"]["threshold"]
    np.testing.assert_array_equal(model.is_anomalous(beats), scores > model.threshold)
    np.testing.assert_array_equal(model.is_anomalous(beats, threshold=np.float32(0.0)), scores > 0)
    with pytest.raises(InputError, match="threshold: expected a finite number"):
        model.is_anomalous(beats, threshold=float("nan"))


def test_a_bundle_without_threshold_scores_but_does_not_flag(bundles, beats, tmp_path):
    model = Model.load(edited_bundle(bundles["ae"], tmp_path / "b", lambda m: m.pop("anomaly")))
    assert model.threshold is None and model.score(beats).shape == (len(beats),)
    with pytest.raises(BundleError, match="calibrated anomaly threshold"):
        model.is_anomalous(beats)
    assert model.is_anomalous(beats, threshold=1.0).dtype == bool


@pytest.mark.parametrize("kind", KINDS)
def test_every_accepted_layout_and_dtype_gives_the_same_answer(models, beats, kind):
    model = models[kind]
    want = model.reconstruct(beats[:5])
    for layout in (beats[:5, None, :], beats[:5].astype(np.float64), beats[:5].tolist()):
        np.testing.assert_array_equal(model.reconstruct(layout), want)
    np.testing.assert_array_equal(model.reconstruct(beats[0]), want[:1])  # one [L] beat is a batch of one
    ints = np.round(beats[:5] * 100).astype(np.int32)
    np.testing.assert_array_equal(model.encode(ints), model.encode(ints.astype(np.float32)))


@pytest.mark.parametrize("kind", KINDS)
def test_bundles_without_the_score_graph_still_load_and_give_the_same_results(bundles, models, beats, kind,
                                                                              tmp_path):
    older = edited_bundle(bundles[kind], tmp_path / "older", lambda m: m["graphs"].pop("score"))
    (older / "score.onnx").unlink()
    two_graphs, one_graph = Model.load(older), models[kind]
    assert two_graphs._scorer is None and one_graph._scorer is not None
    np.testing.assert_allclose(two_graphs.reconstruct(beats), one_graph.reconstruct(beats), atol=1e-6, rtol=0)
    np.testing.assert_allclose(two_graphs.score(beats), one_graph.score(beats), atol=1e-9, rtol=1e-6)
    for model in (two_graphs, one_graph):  # the same refusal, whichever path the bundle takes
        with pytest.raises(InputError, match="overflowed float32 in the encoder"):
            model.score(np.full((1, 1, 140), 3e38, np.float32))


def test_the_direct_session_call_gives_the_public_calls_outputs(bundles, beats):
    session = make_session(bundles["vae"] / "encoder.onnx")
    x = beats[:3, None, :]
    np.testing.assert_array_equal(direct_run(session)(["mu", "logvar"], {"x": x}, None),
                                  session.run(["mu", "logvar"], {"x": x}))


def test_chunked_runs_equal_one_call(bundles, beats):
    whole, chunked = Model.load(bundles["vae"]), Model.load(bundles["vae"], chunk=7)
    for method in ("encode", "reconstruct", "score"):
        np.testing.assert_allclose(getattr(chunked, method)(beats), getattr(whole, method)(beats), atol=1e-6)
    np.testing.assert_allclose(chunked.sample(20, seed=3), whole.sample(20, seed=3), atol=1e-6)


@pytest.mark.parametrize("kind", KINDS)
def test_eight_threads_sharing_one_model_get_the_sequential_results(models, beats, kind):
    model = models[kind]
    batches = [beats[i : i + 1 + i % 9] for i in range(40)]
    want = [(model.encode(b), model.reconstruct(b), model.score(b)) for b in batches]
    sampled = model.sample(5, seed=11)
    got: dict[tuple[int, int], tuple] = {}
    errors: list[BaseException] = []

    def worker(t: int) -> None:
        try:
            for i, b in enumerate(batches):
                got[t, i] = (model.encode(b), model.reconstruct(b), model.score(b), model.sample(5, seed=11))
        except BaseException as e:  # surfaced below: a thread's exception would otherwise vanish
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert not errors and len(got) == 8 * len(batches)
    for (_, i), (enc, rec, sco, smp) in got.items():
        for a, b in zip((enc, rec, sco, smp), (*want[i], sampled)):
            np.testing.assert_array_equal(a, b)


def test_sample_is_reproducible_for_a_seed(models):
    model = models["vae"]
    a, b = model.sample(16, seed=42), model.sample(16, seed=42)
    assert a.shape == (16, 140) and a.dtype == np.float32
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, model.sample(16, seed=43))
    np.testing.assert_array_equal(model.sample(4, seed=np.random.default_rng(5)),
                                  model.sample(4, seed=np.random.default_rng(5)))


@pytest.mark.parametrize("n", [0, -3, 2.0, "5", None, True])
def test_sample_refuses_a_count_that_is_not_a_positive_integer(models, n):
    with pytest.raises(InputError, match=r"n: expected an integer >= 1 and <= \d+, received"):
        models["ae"].sample(n)


@pytest.mark.parametrize("seed", [-1, 1.5, "7", True])
def test_sample_refuses_bad_seeds(models, seed):
    with pytest.raises(InputError, match="seed: expected"):
        models["ae"].sample(3, seed=seed)


@pytest.mark.parametrize("bad, message", [
    (np.zeros((4, 139), np.float32), r"beats of length L = 140.*received array of shape \(4, 139\)"),
    (np.zeros((4, 2, 140), np.float32), r"received array of shape \(4, 2, 140\)"),
    (np.zeros((2, 4, 1, 140), np.float32), "received array of shape"),
    (np.zeros((0, 140), np.float32), "at least one row, received an empty batch"),
    (np.float32(1.0), r"received array of shape \(\)"),
    (np.array(1.0, np.float32), r"received array of shape \(\)"),
    (np.full((2, 140), np.nan), r"finite values, received 280 NaN/Inf \(first at index \(0, 0\)\)"),
    (np.r_[np.zeros(139), np.inf], "finite values, received 1 NaN/Inf"),
    # float32, C-contiguous, in an accepted layout: the fast path's inputs, refused with the same messages
    (np.r_[np.zeros(139), np.nan].astype(np.float32)[None, None], r"1 NaN/Inf \(first at index \(0, 139\)\)"),
    (np.r_[np.zeros(139), -np.inf].astype(np.float32), r"1 NaN/Inf \(first at index \(0, 139\)\)"),
    (np.r_[np.nan, np.zeros(139)].astype(np.float32), r"1 NaN/Inf \(first at index \(0, 0\)\)"),
    (np.full((1, 1, 140), 3e38, np.float32), "overflowed float32 in the encoder"),  # finite, x.x overflows
    (np.full((1, 140), 1e39), "within float32 range"),
    (np.zeros((1, 140), dtype=object), "real numbers .* dtype object"),
    (np.zeros((1, 140), dtype=complex), "real numbers .* dtype complex128"),
    (np.zeros((1, 140), dtype=bool), "real numbers .* dtype bool"),
    ([[1.0] * 140, [1.0] * 139], "numpy cannot make an array"),
    ("beats", "real numbers"),
])
def test_bad_beats_raise_input_errors_naming_input_expected_received(models, bad, message):
    for call in (models["vae"].encode, models["vae"].reconstruct, models["vae"].score, models["vae"].is_anomalous):
        with pytest.raises(InputError, match=message) as e:
            call(bad)
        assert str(e.value).startswith("beats: expected")


def test_bad_latents_raise_input_errors(models):
    with pytest.raises(InputError, match=r"z: expected latent vectors: \[B, 2\] or \[2\], received .*\(3, 5\)"):
        models["ae"].decode(np.zeros((3, 5)))
    assert models["ae"].decode([0.0, 0.0]).shape == (1, 140)


# ---------------------------------------------------------------- bundle verification


def _flip_a_byte(b: Path) -> None:
    data = bytearray((b / "encoder.onnx").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (b / "encoder.onnx").write_bytes(bytes(data))


def _truncate(b: Path) -> None:
    (b / "decoder.onnx").write_bytes((b / "decoder.onnx").read_bytes()[:100])


def _truncate_and_rehash(b: Path) -> None:
    """A damaged graph whose manifest hash was updated too: onnxruntime's refusal must still be ours."""
    _truncate(b)
    digest = hashlib.sha256((b / "decoder.onnx").read_bytes()).hexdigest()
    edit_manifest(b, lambda m: m["graphs"]["decoder"].update(sha256=digest))


def _edit(change):
    return lambda b: edit_manifest(b, change)


@pytest.mark.parametrize("damage, message", [
    (_flip_a_byte, r"encoder.onnx does not match its manifest hash \(expected sha256 \w+, received \w+\)"),
    (_truncate, "decoder.onnx does not match its manifest hash"),
    (_truncate_and_rehash, "onnxruntime cannot load decoder.onnx"),
    (lambda b: (b / "decoder.onnx").unlink(), r"graphs.decoder: cannot read '.*decoder.onnx' \(not found\)"),
    (lambda b: (b / "manifest.json").unlink(), "expected a folder holding manifest.json"),
    (lambda b: (b / "manifest.json").write_text("{not json"), "expected JSON, received malformed text"),
    (_edit(lambda m: m.update(format_version=3)), "expected format 'ecgae-bundle' version 2 or 1, received .* 3"),
    (_edit(lambda m: m.update(format="other")), "received format 'other'"),
    (_edit(lambda m: m["model"].update(kind="gan")), r"model.kind: expected one of \('ae', 'vae'\), received 'gan'"),
    (_edit(lambda m: m["model"].update(latent_dim=3)), "expected input width 3 .*received 2"),
    (_edit(lambda m: m["model"].pop("input_length")), "lacks the field 'model.input_length'"),
    (_edit(lambda m: m["graphs"]["encoder"].update(outputs=["q"])), r"expected inputs \['x'\] and outputs \['q'\]"),
    (_edit(lambda m: m["graphs"]["encoder"].update(file="../encoder.onnx")), "expected a file name inside"),
    (lambda b: (b / "score.onnx").write_bytes(b"\0"), "score.onnx does not match its manifest hash"),
    (_edit(lambda m: m["graphs"]["score"].update(inputs=[])), "graphs.score.inputs: expected a non-empty list"),
    (_edit(lambda m: m["preprocessing"]["normalisation"].update(kind="minmax")), "normalisation.kind"),
    (_edit(lambda m: m["preprocessing"]["window"].update(length=450)), "expected the model's input length 140"),
    (_edit(lambda m: m["anomaly"].update(threshold="high")), "anomaly.threshold: expected a finite number"),
])
def test_damaged_or_unknown_bundles_are_refused_with_a_clear_message(bundles, tmp_path, damage, message):
    b = shutil.copytree(bundles["vae"], tmp_path / "b")
    damage(b)
    with pytest.raises(BundleError, match=message):
        Model.load(b)


def test_a_tampered_reference_is_refused_by_the_parity_check(bundles, tmp_path):
    b = shutil.copytree(bundles["ae"], tmp_path / "b")
    model = Model.load(b)
    (b / "reference.npz").write_bytes((b / "reference.npz").read_bytes()[:-10])
    with pytest.raises(BundleError, match="reference.npz does not match its manifest hash"):
        model.check_parity()


def test_load_options_are_checked(bundles):
    assert Model.load(bundles["ae"], threads=2, providers=["CPUExecutionProvider"]).latent_dim == 2
    with pytest.raises(InputError, match="threads: expected an integer >= 1, received 0"):
        Model.load(bundles["ae"], threads=0)
    with pytest.raises(InputError, match="providers: expected a non-empty list drawn from"):
        Model.load(bundles["ae"], providers=["NoSuchExecutionProvider"])
    with pytest.raises(BundleError, match="not a folder"):
        Model.load(bundles["ae"] / "nowhere")


# ---------------------------------------------------------------- CLI


@pytest.mark.parametrize("suffix", [".npy", ".csv"])
def test_cli_round_trips_match_the_api(bundles, models, beats, tmp_path, suffix, capsys):
    bundle, model = str(bundles["vae"]), models["vae"]
    np.save(tmp_path / "beats.npy", beats)
    np.savetxt(tmp_path / "beats.csv", beats, delimiter=",")
    src = str(tmp_path / f"beats{suffix}")

    def out(name: str) -> np.ndarray:
        path = tmp_path / f"{name}{suffix}"
        return np.load(path) if suffix == ".npy" else np.loadtxt(path, delimiter=",", ndmin=2, skiprows=1)

    assert main(["encode", bundle, src, "--out", str(tmp_path / f"z{suffix}")]) == 0
    np.testing.assert_allclose(out("z"), model.encode(beats), atol=1e-6)
    assert main(["reconstruct", bundle, src, "--out", str(tmp_path / f"r{suffix}"), "--threads", "2"]) == 0
    np.testing.assert_allclose(out("r"), model.reconstruct(beats), atol=1e-6)
    assert main(["score", bundle, src, "--out", str(tmp_path / f"s{suffix}")]) == 0
    s = out("s")
    np.testing.assert_array_equal(s[:, 0], np.arange(len(beats)))
    np.testing.assert_allclose(s[:, 1], model.score(beats), rtol=1e-6)
    np.testing.assert_array_equal(s[:, 2], model.is_anomalous(beats))
    assert main(["score", bundle, src, "--out", str(tmp_path / f"t{suffix}"), "--threshold", "0"]) == 0
    assert out("t")[:, 2].all()
    assert main(["sample", bundle, "-n", "9", "--seed", "4", "--out", str(tmp_path / f"x{suffix}")]) == 0
    np.testing.assert_allclose(out("x"), model.sample(9, seed=4), atol=1e-6)
    assert main(["info", bundle, "--parity"]) == 0
    printed = capsys.readouterr().out
    assert "VAE, arch seed, L = 140, latent = 2" in printed and "parity now" in printed


def test_cli_scores_a_raw_signal_at_its_r_peaks(signal_bundle, mitdb, tmp_path):
    n = int(30 * mitdb["fs"])
    np.save(tmp_path / "signal.npy", mitdb["signal"][:n])
    assert main(["score", str(signal_bundle), str(tmp_path / "signal.npy"), "--fs", "360",
                 "--out", str(tmp_path / "s.npy")]) == 0
    s = np.load(tmp_path / "s.npy")
    x, where = Model.load(signal_bundle).beats_from_signal(mitdb["signal"][:n], 360.0)
    np.testing.assert_array_equal(s[:, 0], where)
    np.testing.assert_allclose(s[:, 1], Model.load(signal_bundle).score(x), rtol=1e-6)


def test_cli_reads_wfdb_records(signal_bundle, mitdb, tmp_path):
    wfdb = pytest.importorskip("wfdb", reason="needs the [wfdb] extra")
    n = int(30 * mitdb["fs"])
    wfdb.wrsamp("rec", fs=mitdb["fs"], units=["mV", "mV"], sig_name=["V5", "MLII"], write_dir=str(tmp_path),
                p_signal=np.column_stack([np.zeros(n), mitdb["signal"][:n]]), fmt=["16", "16"])
    assert main(["score", str(signal_bundle), str(tmp_path / "rec"), "--out", str(tmp_path / "s.npy")]) == 0
    _, where = Model.load(signal_bundle).beats_from_signal(mitdb["signal"][:n], mitdb["fs"])
    np.testing.assert_array_equal(np.load(tmp_path / "s.npy")[:, 0], where)


def test_cli_without_wfdb_says_which_extra_to_install(signal_bundle, tmp_path, monkeypatch, capsys):
    (tmp_path / "rec.hea").write_text("rec 1 360 1000\n")
    monkeypatch.setitem(sys.modules, "wfdb", None)
    assert main(["encode", str(signal_bundle), str(tmp_path / "rec"), "--out", str(tmp_path / "z.npy")]) == 2
    assert "pip install '.[wfdb]' in the ecgae source folder" in one_line_error(capsys, "encode")


def test_cli_sample_plot(bundles, tmp_path, monkeypatch, capsys):
    args = ["sample", str(bundles["ae"]), "-n", "3", "--out", str(tmp_path / "x.npy"),
            "--plot", str(tmp_path / "p.png")]
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    assert main(args) == 2
    assert "pip install '.[plot]' in the ecgae source folder" in one_line_error(capsys, "sample")
    assert not (tmp_path / "x.npy").exists()
    monkeypatch.undo()
    pytest.importorskip("matplotlib", reason="needs the [plot] extra")
    assert main(args) == 0
    assert (tmp_path / "p.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and (tmp_path / "x.npy").is_file()


def _write_text(name: str, text: str):
    def make(tmp: Path) -> str:
        (tmp / name).write_text(text)
        return str(tmp / name)
    return make


def _write_npy(name: str, arr: np.ndarray):
    def make(tmp: Path) -> str:
        np.save(tmp / name, arr, allow_pickle=True)
        return str(tmp / name)
    return make


@pytest.mark.parametrize("command, make_input, extra, message", [
    ("score", _write_text("b.csv", "1,2,x\n"), [], "not a numeric array"),
    ("score", _write_npy("b.npy", np.zeros((3, 139))), [], r"expected beats of length L = 140.*\(3, 139\)"),
    ("encode", _write_npy("b.npy", np.zeros((0, 140))), [], "empty batch"),
    ("encode", _write_npy("b.npy", np.array([[1, None]], dtype=object)), [], "not a numeric array"),
    ("encode", _write_npy("b.npy", np.full((2, 140), np.nan)), [], "finite values"),
    ("encode", lambda tmp: str(tmp / "missing.npy"), [], "not found"),
    ("encode", _write_text("b.txt", "1"), [], "expected a .npy or .csv file or a WFDB record"),
    ("encode", _write_npy("b.npy", np.zeros((3, 140))), ["--fs", "360"], "pre-cut beats"),
    ("reconstruct", _write_npy("b.npy", np.zeros((3, 140))), ["--threads", "0"], "threads: expected"),
    ("reconstruct", _write_npy("b.npy", np.zeros((3, 140))), ["--outfmt"], None),
])
def test_cli_bad_input_exits_2_with_one_line_and_writes_nothing(bundles, tmp_path, capsys, command, make_input,
                                                                 extra, message):
    out = tmp_path / "out" / "result.npy"
    argv = [command, str(bundles["ae"]), make_input(tmp_path), "--out", str(out), *extra]
    if message is None:  # argparse's own usage errors also exit with 2
        with pytest.raises(SystemExit) as e:
            main(argv)
        assert e.value.code == 2
    else:
        assert main(argv) == 2
        assert re.search(message, one_line_error(capsys, command))
    assert not out.parent.exists() or not any(out.parent.iterdir())


@pytest.mark.parametrize("argv, message", [
    (["sample", "{ae}", "-n", "0", "--out", "{tmp}/x.npy"], "n: expected an integer >= 1 and <="),
    (["sample", "{ae}", "-n", "2", "--out", "{tmp}/x.txt"], "--out: expected a .npy or .csv file name"),
    (["sample", "{ae}", "-n", "2", "--out", "{tmp}/x.npy", "--plot", "{tmp}/p.gif"], "--plot: expected"),
    (["info", "{tmp}"], "expected a folder holding manifest.json"),
])
def test_cli_bad_arguments_exit_2(bundles, tmp_path, capsys, argv, message):
    argv = [a.format(ae=bundles["ae"], tmp=tmp_path) for a in argv]
    assert main(argv) == 2
    assert message in one_line_error(capsys, argv[0])
    assert not any(tmp_path.iterdir())


# ---------------------------------------------------------------- lean: no torch, no onnx

LEAN = r"""
import importlib.abc, sys
BLOCKED = {"torch", "onnx", "scipy", "wfdb", "sklearn", "matplotlib"}

class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {name!r} (blocked)", name=name)

sys.meta_path.insert(0, Block())
import numpy as np
from ecgae.cli import main
from ecgae.runtime import InputError, Model

ae, vae, signal_bundle, tmp = sys.argv[1:]
for bundle in (ae, vae):
    m = Model.load(bundle, threads=2)
    x = m.sample(10, seed=0)
    m.encode(x); m.encoder_outputs(x); m.decode(m.encode(x)); m.reconstruct(x); m.score(x); m.is_anomalous(x)
    m.check_parity()
    np.save(f"{tmp}/x.npy", x)
    for cmd in ("encode", "reconstruct", "score"):
        assert main([cmd, bundle, f"{tmp}/x.npy", "--out", f"{tmp}/{cmd}.csv"]) == 0
    assert main(["sample", bundle, "-n", "3", "--out", f"{tmp}/s.npy"]) == 0
    assert main(["info", bundle]) == 0
t = np.arange(20 * 360) / 360.0
ecg = sum(np.exp(-0.5 * ((t - s) / 0.012) ** 2) for s in np.arange(0.6, 19.5, 0.8))
ecg += 0.02 * np.random.default_rng(0).standard_normal(t.size)  # a real trace is never exactly flat between beats
beats, where = Model.load(signal_bundle).beats_from_signal(ecg, 360.0)
assert len(beats) > 10
from ecgae.runtime import Monitor
raw_model = Model.load(signal_bundle)
profile = raw_model.calibrate(ecg, 360.0)
events = (monitor := Monitor(raw_model, 360.0, profile=profile)).push(ecg) + monitor.flush()
assert [e.r_peak for e in events] == raw_model.analyze(ecg, 360.0, profile).r_peak.tolist()
try:
    Model.load(ae).encode(np.zeros((2, 3)))
except InputError:
    pass
assert main(["encode", ae, f"{tmp}/rec", "--out", f"{tmp}/z.npy"]) == 2  # WFDB without wfdb: clean error
assert main(["sample", ae, "-n", "2", "--out", f"{tmp}/s.npy", "--plot", f"{tmp}/p.png"]) == 2
loaded = BLOCKED & {name.split(".")[0] for name in sys.modules}
assert not loaded, loaded
print("lean ok")
"""


def test_the_runtime_and_its_cli_run_with_torch_onnx_scipy_wfdb_unimportable(bundles, signal_bundle, tmp_path):
    (tmp_path / "rec.hea").write_text("rec 1 360 1000\n")
    done = subprocess.run([sys.executable, "-c", LEAN, str(bundles["ae"]), str(bundles["vae"]), str(signal_bundle),
                           str(tmp_path)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and "lean ok" in done.stdout, done.stderr[-3000:]
    assert "error: INPUT" in done.stderr and "pip install '.[wfdb]' in the ecgae source folder" in done.stderr
    assert "pip install '.[plot]' in the ecgae source folder" in done.stderr


def test_score_and_encode_equal_score_and_encode_apart(models, beats):
    for model in models.values():
        scores, z = model.score_and_encode(beats)
        np.testing.assert_array_equal(scores, model.score(beats))
        np.testing.assert_array_equal(z, model.encode(beats))
