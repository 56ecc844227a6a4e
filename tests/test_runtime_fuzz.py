"""Property-based fuzzing of every runtime entry point: whatever shapes, dtypes and values a caller passes,
only the project's own error types may escape, and what is accepted comes back well-formed."""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest
from ecgae.cli import main
from ecgae.runtime import EcgaeError, Model, Preprocessing
from ecgae.runtime.bundle import SEAL
from ecgae.runtime.seal import seal
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

L, LATENT = 140, 2
FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])

DTYPES = st.sampled_from([np.float16, np.float32, np.float64, np.int8, np.int32, np.int64, np.uint8, np.bool_,
                          np.complex64, np.object_, np.str_])


def arrays(sizes: list[int], max_rank: int = 4) -> st.SearchStrategy:
    """Arrays of any listed dtype, rank 0..max_rank with sides drawn from ``sizes``, any value of the dtype
    (NaN, Inf, extremes included)."""
    def build(dtype, shape):
        if dtype in (np.object_, np.str_):
            return st.just(np.zeros(shape, dtype=dtype))
        return hnp.arrays(dtype, shape)
    shapes = st.lists(st.sampled_from(sizes), min_size=0, max_size=max_rank).map(tuple)
    return st.tuples(DTYPES, shapes).flatmap(lambda ds: build(*ds))


ANYTHING = st.one_of(st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.floats(), st.text(max_size=5),
                     st.lists(st.integers(-3, 3), max_size=3))


@pytest.fixture(scope="module")
def models(bundles) -> dict[str, Model]:
    return {kind: Model.load(bundles[kind]) for kind in ("ae", "vae")}


@pytest.fixture(scope="module")
def signal_model(bundles, tmp_path_factory) -> Model:
    """The AE bundle declared as trained on raw ECG at 112 Hz, so beats_from_signal runs its whole path."""
    dst = shutil.copytree(bundles["ae"], tmp_path_factory.mktemp("fuzz") / "ae")
    manifest = json.loads((dst / "manifest.json").read_text())
    manifest["preprocessing"] = Preprocessing(112.0, L, 47, np.array([0.25, 0.5, 0.25])).to_dict()
    (dst / "manifest.json").write_bytes(seal(manifest, SEAL))
    return Model.load(dst)


def _check_batch(x, rows: np.ndarray) -> None:
    assert np.isfinite(rows).all() and len(rows) == (1 if np.ndim(x) == 1 else np.shape(x)[0])


BEAT_LIKE = hnp.arrays(st.sampled_from([np.float32, np.float64, np.int16]), st.sampled_from([(L,), (3, L), (2, 1, L)]))


@FUZZ
@given(x=st.one_of(arrays([0, 1, 2, L - 1, L, L + 1]), ANYTHING, BEAT_LIKE))
def test_beat_entry_points_accept_or_raise_only_ecgae_errors(models, x):
    for model in models.values():
        for call in (model.encode, model.encoder_outputs, model.reconstruct, model.score, model.is_anomalous):
            try:
                out = call(x)
            except EcgaeError:
                continue
            first = next(iter(out.values())) if isinstance(out, dict) else out
            if first.dtype != bool:
                _check_batch(x, first)


@FUZZ
@given(z=st.one_of(arrays([0, 1, LATENT, 3]), ANYTHING))
def test_decode_accepts_or_raises_only_ecgae_errors(models, z):
    try:
        out = models["vae"].decode(z)
    except EcgaeError:
        return
    assert out.shape[1] == L
    _check_batch(z, out)


@FUZZ
@given(n=st.one_of(st.integers(-3, 30), ANYTHING), seed=st.one_of(st.integers(-3, 2**80), ANYTHING))
def test_sample_accepts_or_raises_only_ecgae_errors(models, n, seed):
    try:
        out = models["ae"].sample(n, seed=seed)
    except EcgaeError:
        return
    assert out.shape == (n, L) and np.isfinite(out).all()


@FUZZ
@given(signal=st.one_of(arrays([0, 1, 2, 139, 140, 400, 1500], max_rank=2), ANYTHING),
       fs=st.one_of(st.floats(), st.integers(-5, 10**9), st.sampled_from([112, 360.0, 11.0]), ANYTHING))
def test_beats_from_signal_accepts_or_raises_only_ecgae_errors(signal_model, signal, fs):
    try:
        beats, where = signal_model.beats_from_signal(signal, fs)
    except EcgaeError:
        return
    assert beats.shape == (len(where), L) and beats.dtype == np.float32 and np.isfinite(beats).all()


@settings(max_examples=40, deadline=None)
@given(x=arrays([0, 1, 3, L], max_rank=3), command=st.sampled_from(["encode", "reconstruct", "score"]),
       suffix=st.sampled_from([".npy", ".csv"]), fs=st.sampled_from([[], ["--fs", "360"], ["--fs", "nan"]]))
def test_cli_exits_0_or_2_for_any_array_file(bundles, x, command, suffix, fs):
    with tempfile.TemporaryDirectory() as tmp:
        src, out = Path(tmp) / f"in{suffix}", Path(tmp) / "out.npy"
        if suffix == ".npy":
            np.save(src, x, allow_pickle=True)
        else:
            src.write_text("\n".join(",".join(map(str, np.ravel(row))) for row in np.atleast_2d(x)))
        code = main([command, str(bundles["vae"]), str(src), "--out", str(out), *fs])
        assert code in (0, 2) and out.exists() == (code == 0)


MANIFEST_FIELDS = ["format", "format_version", "model", "model.kind", "model.input_length", "model.latent_dim",
                   "graphs", "graphs.encoder", "graphs.encoder.file", "graphs.encoder.sha256",
                   "graphs.decoder.inputs", "graphs.decoder.outputs", "preprocessing", "preprocessing.sample_rate",
                   "preprocessing.window", "preprocessing.window.pre", "preprocessing.filter",
                   "preprocessing.normalisation", "preprocessing.normalisation.eps", "anomaly", "anomaly.threshold",
                   "parity", "reference"]


@settings(max_examples=50, deadline=None)
@given(field=st.sampled_from(MANIFEST_FIELDS),
       value=st.one_of(ANYTHING, st.dictionaries(st.text(max_size=3), ANYTHING)),
       drop=st.booleans())
def test_any_manifest_damage_loads_or_raises_only_ecgae_errors(bundles, field, value, drop):
    with tempfile.TemporaryDirectory() as tmp:
        dst = shutil.copytree(bundles["vae"], Path(tmp) / "b")
        manifest = json.loads((dst / "manifest.json").read_text())
        *parents, key = field.split(".")
        node = manifest
        for p in parents:
            node = node[p]
        if drop:
            del node[key]
        else:
            node[key] = value
        (dst / "manifest.json").write_bytes(seal(manifest, SEAL))
        try:
            model = Model.load(dst)
        except EcgaeError:
            return
        x = model.sample(3, seed=0)
        for call in (model.score, model.is_anomalous, model.encode):
            try:
                call(x)
            except EcgaeError:
                pass
