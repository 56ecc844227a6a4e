"""Compression (runtime.codec), gap filling and denoising (runtime.restore) on real bundles and real ECG.

Runs in the torch-free venv too. The raw-signal bundles are the tiny ECG5000 AE and VAE declared as
trained on raw ECG at 112 Hz (140 samples = 1.25 s, 47 before the R peak), without a filter.
"""

from __future__ import annotations

import importlib.resources
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from ecgae.cli import main
from ecgae.runtime import BundleError, InputError, Model, Preprocessing
from ecgae.runtime.bundle import SEAL
from ecgae.runtime.codec import (
    FADE_PER_WINDOW,
    MAGIC,
    beat_weights,
    compress,
    decompress,
    filtered_windows,
    read,
    rebuild,
)
from ecgae.runtime.preprocess import normalise_beats
from ecgae.runtime.restore import affine_fit, denoise, fill_gaps, interpolate_gaps
from ecgae.runtime.robust import typical
from ecgae.runtime.seal import seal

RATE = 112.0


@pytest.fixture(scope="module")
def record() -> tuple[np.ndarray, float]:
    """The first 60 s of MIT-BIH record 100, lead MLII in mV."""
    path = importlib.resources.files("ecgae.training") / "data" / "bundled.npz"
    with path.open("rb") as f, np.load(f, allow_pickle=False) as z:
        fs = float(z["mitdb_100_fs"])
        adc = z["mitdb_100_adc"][: int(60 * fs)].astype(np.float64)
        return (adc - z["mitdb_100_baseline"]) / z["mitdb_100_gain"], fs


def _signal_bundle(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    manifest = json.loads((dst / "manifest.json").read_text())
    manifest["preprocessing"] = Preprocessing(RATE, 140, 47).to_dict()
    (dst / "manifest.json").write_bytes(seal(manifest, SEAL))  # sealed again, as export seals it
    return dst


@pytest.fixture(scope="module")
def raw_models(bundles, tmp_path_factory) -> dict[str, Model]:
    root = tmp_path_factory.mktemp("raw")
    return {kind: Model.load(_signal_bundle(bundles[kind], root / kind)) for kind in ("ae", "vae")}


def test_rebuild_joins_true_windows_into_the_signal_and_bridges_pauses():
    rng = np.random.default_rng(0)
    signal = rng.standard_normal(3000)
    peaks = np.array([100, 300, 520, 900, 1500, 1620])  # overlaps of several sizes, and one pause (900 -> 1500)
    pre, length = 60, 400
    windows = signal[(peaks - pre)[:, None] + np.arange(length)]
    out = rebuild(windows, peaks, pre, signal.size)
    covered = np.zeros(signal.size, bool)
    for p in peaks:
        covered[p - pre : p - pre + length] = True
    assert np.allclose(out[covered], signal[covered], atol=1e-12)  # cross-fade weights sum to one
    gap = np.flatnonzero(~covered[peaks[0] - pre : peaks[-1] - pre + length]) + peaks[0] - pre
    line = np.interp(gap, [gap[0] - 1, gap[-1] + 1], signal[[gap[0] - 1, gap[-1] + 1]])
    assert np.allclose(out[gap], line) and not out[: peaks[0] - pre].any()


def test_rebuild_takes_each_sample_from_the_beat_that_owns_it():
    """Beat i's window holds the value i, except past the next R peak (the next beat's part), where it holds
    a huge value: every sample farther than the cross-fade from a midpoint between R peaks is exactly its
    owner's value, and no neighbour's part leaks in."""
    peaks = np.array([200, 480, 700, 1010, 1300])  # R-R of 280, 220, 310 (midpoint outside the overlap), 290
    pre, length = 150, 450
    rel = np.arange(length) - pre
    nxt = np.append(np.diff(peaks), 10**6)
    windows = np.where(rel[None, :] >= nxt[:, None], 1e9, np.arange(len(peaks), dtype=float)[:, None])
    out = rebuild(windows, peaks, pre, 2000)
    starts = peaks - pre
    bounds = np.clip((peaks[:-1] + peaks[1:]) // 2, starts[1:], starts[:-1] + length)
    t = np.arange(starts[0], starts[-1] + length)
    owner = np.searchsorted(bounds, t, side="right")
    far = np.abs(t[:, None] - bounds[None, :]).min(axis=1) > length // FADE_PER_WINDOW // 2
    assert np.array_equal(out[t[far]], owner[far].astype(float))
    assert out.max() <= len(peaks) - 1 and (np.diff(out[t]) >= 0).all()  # fades only rise to the next beat


def test_decompress_beats_averaging_whole_windows(mitdb_bundle, record):
    """On record 100 with a record-100 model the own-part rebuild loses less than averaging every window over
    its whole length, whose ends hold the neighbouring beats that the model reconstructs worst."""
    model = Model.load(mitdb_bundle)
    pre, length = model.preprocessing.pre, model.preprocessing.length
    x, peaks, _ = filtered_windows(model, *record)
    data = compress(model, *record, 12)
    c = read(data)
    lo, hi = np.asarray(c.header["lo"]), np.asarray(c.header["hi"])
    beats = model.decode((lo + c.codes / 4095 * (hi - lo)).astype(np.float32)) * c.scale[:, None] + c.mean[:, None]
    idx = (peaks - pre)[:, None] + np.arange(length)
    average = np.bincount(idx.ravel(), beats.ravel(), x.size) / np.maximum(np.bincount(idx.ravel(), None, x.size), 1)
    span = slice(peaks[0] - pre, peaks[-1] - pre + length)
    own = decompress(model, data)[0][span] - x[span]
    assert np.sqrt((own**2).mean()) < 0.95 * np.sqrt(((average[span] - x[span]) ** 2).mean())


def test_fitted_latents_rebuild_the_own_parts_better(mitdb_bundle, record):
    """Latents refined by Gauss-Newton steps to each beat's own part lose less than the encoder's, in the
    same file format; a bad step count is refused."""
    model = Model.load(mitdb_bundle)
    x, peaks, _ = filtered_windows(model, *record)
    span = slice(peaks[0] - model.preprocessing.pre, peaks[-1] - model.preprocessing.pre + model.input_length)
    errors = {}
    for fit in (0, 3):
        data = compress(model, *record, 12, fit)
        assert read(data).header.keys() == read(compress(model, *record, 12)).header.keys()
        errors[fit] = np.sqrt(((decompress(model, data)[0][span] - x[span]) ** 2).mean())
    assert errors[3] < errors[0]  # the 2-epoch decoder gains little (about 1 %); the demo's gain 40 %
    for fit in (-1, 1.5, True):
        with pytest.raises(InputError, match="fit"):
            compress(model, *record, 8, fit)


@pytest.mark.parametrize("bits", [3, 8, 16])
def test_compress_stores_quantised_latents_peaks_mean_and_scale(raw_models, record, bits):
    model = raw_models["ae"]
    signal, fs = record
    data = compress(model, signal, fs, bits)
    c = read(data)
    x, peaks, windows = filtered_windows(model, signal, fs)
    assert data.startswith(MAGIC) and c.header["bits"] == bits and c.header["sample_rate"] == RATE
    assert np.array_equal(c.peaks, peaks) and len(peaks) > 60
    z = model.encode(normalise_beats(windows))
    lo, hi = np.asarray(c.header["lo"]), np.asarray(c.header["hi"])
    dequantised = lo + c.codes / (2**bits - 1) * (hi - lo)
    assert np.abs(dequantised - z).max() <= (hi - lo).max() / (2**bits - 1) / 2 + 1e-6
    # offset and gain: the least-squares fit of each decoded beat to the part of the signal it rebuilds
    own = beat_weights(peaks, 47, 140) > 0
    gain, offset = affine_fit(model.decode(dequantised.astype(np.float32)).astype(np.float64), windows, own)
    assert np.allclose(c.mean, offset, rtol=1e-3, atol=1e-4) and np.allclose(c.scale, gain, rtol=1e-3, atol=1e-4)
    rebuilt, rate = decompress(model, data)
    expected = rebuild(model.decode(dequantised.astype(np.float32)) * c.scale[:, None] + c.mean[:, None],
                       peaks, 47, x.size)
    assert rate == RATE and rebuilt.shape == x.shape and np.allclose(rebuilt, expected, atol=1e-5)


def test_more_bits_cost_more_bytes_and_come_closer_to_the_unquantised_rebuild(raw_models, record):
    """The tiny test models rebuild about as well from any latent, so the check is against the 16-bit file's
    rebuild rather than the signal."""
    model = raw_models["ae"]
    finest = decompress(model, compress(model, *record, 16))[0]
    sizes, errors = [], []
    for bits in (2, 12):
        data = compress(model, *record, bits)
        sizes.append(len(data))
        errors.append(np.abs(decompress(model, data)[0] - finest).max())
    assert sizes[0] < sizes[1] and errors[1] < 0.1 * errors[0]


def test_compressed_files_are_bound_to_their_bundle_and_checked(raw_models, record):
    data = compress(raw_models["ae"], *record)
    with pytest.raises(InputError, match="this bundle's graphs"):
        decompress(raw_models["vae"], data)
    for damaged, message in ((b"NOTECGZ!" + data[8:], "magic"), (data[:-5], "damaged"),
                             (data[:12] + b"x" + data[13:], "damaged")):
        with pytest.raises(InputError, match=message):
            decompress(raw_models["ae"], damaged)
    head = json.loads(data[12 : 12 + int.from_bytes(data[8:12], "little")])
    bad = json.dumps(head | {"lo": head["lo"][:-1]}).encode()
    with pytest.raises(InputError, match="lo and hi"):
        read(data[:8] + len(bad).to_bytes(4, "little") + bad + data[12 + int.from_bytes(data[8:12], "little"):])
    for bits in (0, 17, 2.5, True):
        with pytest.raises(InputError, match="bits"):
            compress(raw_models["ae"], *record, bits)


def test_cli_compress_then_decompress(raw_models, record, tmp_path, capsys):
    signal, fs = record
    np.save(tmp_path / "ecg.npy", signal)
    bundle = str(raw_models["ae"].bundle_dir)
    assert main(["compress", bundle, str(tmp_path / "ecg.npy"), "--fs", str(fs), "--bits", "6",
                 "--out", str(tmp_path / "ecg.ecgz")]) == 0
    assert "bit/s" in capsys.readouterr().out
    assert (tmp_path / "ecg.ecgz").read_bytes() == compress(raw_models["ae"], signal, fs, 6)
    assert main(["compress", bundle, str(tmp_path / "ecg.npy"), "--fs", str(fs), "--fit", "2",
                 "--out", str(tmp_path / "fit.ecgz")]) == 0
    assert (tmp_path / "fit.ecgz").read_bytes() == compress(raw_models["ae"], signal, fs, 8, 2)
    assert main(["decompress", bundle, str(tmp_path / "ecg.ecgz"), "--out", str(tmp_path / "back.npy")]) == 0
    assert np.array_equal(np.load(tmp_path / "back.npy"), decompress(raw_models["ae"], compress(
        raw_models["ae"], signal, fs, 6))[0])
    assert main(["compress", bundle, str(tmp_path / "ecg.npy"), "--out", str(tmp_path / "x.ecgz")]) == 2
    assert "--fs" in capsys.readouterr().err
    (tmp_path / "bad.ecgz").write_bytes(b"garbage")
    assert main(["decompress", bundle, str(tmp_path / "bad.ecgz"), "--out", str(tmp_path / "b.npy")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("ecgae decompress: error: compressed file") and "\n" not in err
    assert not (tmp_path / "b.npy").exists()


def test_fill_gaps_recovers_beats_the_decoder_can_make(raw_models):
    """Beats from the decoder (at a gain and offset) with a 30% stretch hidden: the masked fit finds the
    hidden samples far better than straight lines, and leaves the observed ones untouched."""
    model = raw_models["vae"]
    z = np.random.default_rng(1).standard_normal((24, model.latent_dim)).astype(np.float32)
    truth = 2.0 * model.decode(z).astype(np.float64) + 0.5
    observed = np.ones(truth.shape, bool)
    observed[np.arange(24)[:, None], (np.arange(24) * 4)[:, None] + np.arange(42)] = False
    filled = fill_gaps(model, np.where(observed, truth, np.nan), observed, iterations=20)
    linear = interpolate_gaps(np.where(observed, truth, 0.0), observed)
    err = np.sqrt(((filled - truth)[~observed] ** 2).mean())
    assert np.array_equal(filled[observed], truth[observed])
    assert err < 0.2 * np.sqrt(((linear - truth)[~observed] ** 2).mean())


def test_fill_gaps_bridges_the_beats_the_model_cannot_reproduce(raw_models, tmp_path):
    """Beats whose observed samples the model fits worse than the calibrated clean quantile get straight
    lines: with a limit below every beat's fit, all of them; with one above, none (the masked fit)."""
    model = raw_models["ae"]
    with np.load(model.bundle_dir / "reference.npz", allow_pickle=False) as ref:
        beats = ref["x"][:, 0, :].astype(np.float64)
    observed = np.ones(beats.shape, bool)
    observed[:, 40:60] = False
    cal = model.manifest["training"]["denoising"]
    strict, lenient = (_with_table(model, tmp_path / name, own=[0, model.input_length],
                                   unlike=[limit] + cal["unlike"][1:], residual=[0.0] + cal["residual"][1:])
                       for name, limit in (("strict", 1e-12), ("lenient", 1e12)))
    linear = interpolate_gaps(beats, observed)
    np.testing.assert_array_equal(fill_gaps(strict, beats, observed), linear)
    filled = fill_gaps(lenient, beats, observed)
    np.testing.assert_array_equal(filled, fill_gaps(_without_calibration(model, tmp_path / "old"), beats, observed))
    assert not np.allclose(filled[~observed], linear[~observed])


def test_fill_gaps_refuses_bad_masks(raw_models):
    model, beats = raw_models["ae"], np.zeros((2, 140))
    with pytest.raises(InputError, match="bool mask"):
        fill_gaps(model, beats, np.ones((2, 139), bool))
    with pytest.raises(InputError, match="observed samples per beat"):
        fill_gaps(model, beats, np.zeros((2, 140), bool))


def _without_calibration(model: Model, dst: Path) -> Model:
    """The bundle as exported before denoising calibration existed (sealed again)."""
    shutil.copytree(model.bundle_dir, dst)
    manifest = json.loads((dst / "manifest.json").read_text())
    del manifest["training"]["denoising"]
    (dst / "manifest.json").write_bytes(seal(manifest, SEAL))
    return Model.load(dst)


def test_denoise_fits_gain_and_offset_and_blends_between_window_and_estimate(raw_models, tmp_path):
    model = raw_models["ae"]
    old = _without_calibration(model, tmp_path / "old")
    rng = np.random.default_rng(2)
    with np.load(model.bundle_dir / "reference.npz", allow_pickle=False) as ref:
        clean = 0.8 * ref["x"][:, 0, :].astype(np.float64) + 0.1
    recon = model.reconstruct(normalise_beats(clean)).astype(np.float64)
    estimate = denoise(model, clean, blend=False)
    a, b = affine_fit(recon, clean, np.ones(clean.shape, bool))
    resid = clean - estimate
    assert np.allclose(estimate, a[:, None] * recon + b[:, None])
    assert np.abs((resid * recon).sum(axis=1)).max() < 1e-8 and np.abs(resid.sum(axis=1)).max() < 1e-8
    assert np.array_equal(denoise(model, clean), clean)  # residuals within the clean beats' spread: kept
    noisy = clean + rng.normal(0, 3.0, clean.shape)
    for m in (model, old):  # each sample of the blend lies between the window and the estimate
        for x in (clean, noisy):
            est, out = denoise(m, x, blend=False), denoise(m, x)
            assert (np.minimum(x, est) - 1e-9 <= out).all() and (out <= np.maximum(x, est) + 1e-9).all()
    assert denoise(old, noisy).std() < noisy.std()  # heavy noise: the scalar blend leans on the model
    with pytest.raises(InputError, match="windows"):
        denoise(model, np.zeros((3, 5)))


def test_denoise_refuses_a_malformed_or_earlier_calibration(raw_models, tmp_path):
    cal = raw_models["ae"].manifest["training"]["denoising"]
    bad = {"weights": cal["weights"][:-1], "unlike": cal["unlike"][:-1], "own": [100, 20], "residual": cal["unlike"]}
    for i, (field, value) in enumerate(bad.items()):
        model = _with_table(raw_models["ae"], tmp_path / f"bad{i}", **{field: value})
        with pytest.raises(BundleError, match="training.denoising"):
            denoise(model, np.zeros((2, 140)))
    earlier = tmp_path / "earlier"
    shutil.copytree(raw_models["ae"].bundle_dir, earlier)
    manifest = json.loads((earlier / "manifest.json").read_text())
    del manifest["training"]["denoising"]["unlike"]
    (earlier / "manifest.json").write_bytes(seal(manifest, SEAL))
    with pytest.raises(BundleError, match="export the run again"):
        denoise(Model.load(earlier), np.zeros((2, 140)))


def _with_table(model: Model, dst: Path, **table) -> Model:
    """The bundle with its denoising calibration's fields replaced (sealed again)."""
    shutil.copytree(model.bundle_dir, dst)
    manifest = json.loads((dst / "manifest.json").read_text())
    manifest["training"]["denoising"] |= table
    (dst / "manifest.json").write_bytes(seal(manifest, SEAL))
    return Model.load(dst)


def test_denoise_applies_the_calibrated_weights_at_the_batchs_noise_level(raw_models, tmp_path):
    """With a table of two levels, the weights used are interpolated at the median residual of the batch's
    typical beats, over the calibrated own part of the window."""
    length = raw_models["ae"].input_length
    low, high = np.full(length, 1.0), np.linspace(0.0, 0.5, length)
    model = _with_table(raw_models["ae"], tmp_path / "table", residual=[0.0, 10.0], unlike=[1e9, 1e9],
                        clean_residual=0.0, own=[20, 100], weights=[low.tolist(), high.tolist()])
    with np.load(model.bundle_dir / "reference.npz", allow_pickle=False) as ref:
        x = ref["x"][:, 0, :].astype(np.float64) + np.random.default_rng(0).normal(0, 1.0, (len(ref["x"]), length))
    est = denoise(model, x, blend=False)
    recon = model.reconstruct(normalise_beats(x)).astype(np.float64)
    a, _ = affine_fit(recon, x, np.ones(x.shape, bool))
    own = ((x - est)[:, 20:100] ** 2).mean(axis=1) / a**2
    seen = float(np.median(own[typical(own)]))
    assert 0.0 < seen < 10.0
    w = low + (high - low) * seen / 10.0
    np.testing.assert_allclose(denoise(model, x), w * x + (1 - w) * est, rtol=0, atol=1e-12)


def test_denoise_keeps_the_beats_the_model_cannot_reproduce(raw_models, tmp_path):
    """A beat above the calibrated residual quantile at the batch's level (here a window of fast oscillation,
    which no decoded beat resembles) keeps its window, and odd beats do not move the batch's noise level:
    the other beats come out exactly as without them. (The table is set by hand: a 2-epoch model's own
    calibration counts nearly everything as its own error.)"""
    length = raw_models["ae"].input_length
    model = _with_table(raw_models["ae"], tmp_path / "table", residual=[0.0, 10.0], unlike=[2.0, 12.0],
                        clean_residual=0.0, own=[0, length],
                        weights=[np.full(length, 1.0).tolist(), np.full(length, 0.5).tolist()])
    with np.load(model.bundle_dir / "reference.npz", allow_pickle=False) as ref:
        clean = ref["x"][:, 0, :].astype(np.float64)
    x = clean + np.random.default_rng(3).normal(0, 1.0, clean.shape)  # noisy enough to be blended
    odd = x.copy()
    odd[::8] = 4 * np.sin(np.arange(length) * 2.5)
    out, out_odd = denoise(model, x), denoise(model, odd)
    assert not np.array_equal(out, x)
    assert np.array_equal(out_odd[::8], odd[::8])
    normal = np.ones(len(x), bool)
    normal[::8] = False
    np.testing.assert_allclose(out_odd[normal], denoise(model, x[normal]), rtol=0, atol=1e-12)
