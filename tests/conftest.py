"""Shared fixtures: tiny real-data runs and their bundles, built once per session.

In the torch-free runtime venv, set ECGAE_TEST_BUNDLES to a folder holding ``ae/``, ``vae/`` and ``mitdb/``
bundles (made by ``python -m ecgae.export.fixtures DIR`` in the full venv); the runtime tests then
use those and never import torch.
"""

from __future__ import annotations

import importlib.resources
import os
from pathlib import Path

import numpy as np
import pytest
from hypothesis import settings

# CI replays the same examples every run (a red run must mean a regression, not a new random draw);
# locally, every run draws new ones.
settings.register_profile("ci", derandomize=True)
if os.environ.get("CI"):
    settings.load_profile("ci")


@pytest.fixture(scope="session")
def wide_after_sharp() -> tuple[np.ndarray, np.ndarray]:
    """(signal at 360 Hz, beat times in s): a minute of bigeminy, sharp upright beats (sd 10 ms) each followed
    0.3 s later, inside the detector's T-wave window, by a wide beat (sd 50 ms) 1.5 times as large: less than
    half as steep, but larger in total variation (the detector's feature)."""
    t = np.arange(int(60 * 360.0)) / 360.0
    sharp = np.arange(1.0, 58.0, 1.2)
    x = sum(np.exp(-0.5 * ((t - s) / 0.01) ** 2) + 1.5 * np.exp(-0.5 * ((t - s - 0.3) / 0.05) ** 2) for s in sharp)
    return x + 0.02 * np.random.default_rng(1).standard_normal(t.size), np.sort(np.r_[sharp, sharp + 0.3])


def _need_torch():
    return pytest.importorskip("torch", reason="needs the [train] extra")


@pytest.fixture(scope="session")
def tiny_runs(tmp_path_factory) -> dict[str, Path]:
    """A 2-epoch AE and VAE on the bundled ECG5000 beats (L = 140): about a second each."""
    _need_torch()
    from ecgae.export.fixtures import train_tiny

    return train_tiny(tmp_path_factory.mktemp("runs"))


@pytest.fixture(scope="session")
def bundles(tmp_path_factory, request) -> dict[str, Path]:
    """Exported bundles of the tiny runs (or the prebuilt ones named by ECGAE_TEST_BUNDLES)."""
    prebuilt = os.environ.get("ECGAE_TEST_BUNDLES")
    if prebuilt:
        return {kind: Path(prebuilt) / kind for kind in ("ae", "vae")}
    runs = request.getfixturevalue("tiny_runs")
    from ecgae.export.fixtures import export_tiny

    return export_tiny(runs, tmp_path_factory.mktemp("bundles"))


@pytest.fixture(scope="session")
def mitdb_run(tmp_path_factory) -> Path:
    """A 2-epoch AE on record 100's N beats (360 Hz, L = 450): the chapter's input length."""
    _need_torch()
    from ecgae.export.fixtures import train_tiny_mitdb

    return train_tiny_mitdb(tmp_path_factory.mktemp("runs"))


@pytest.fixture(scope="session")
def mitdb_bundle(tmp_path_factory, request) -> Path:
    """A raw-signal bundle: the mitdb run exported, or the prebuilt one."""
    prebuilt = os.environ.get("ECGAE_TEST_BUNDLES")
    if prebuilt:
        return Path(prebuilt) / "mitdb"
    from ecgae.export.fixtures import export_tiny_mitdb

    return export_tiny_mitdb(request.getfixturevalue("mitdb_run"), tmp_path_factory.mktemp("bundles"))


@pytest.fixture(scope="session")
def mlii() -> np.ndarray:
    """Record 100's MLII in mV (bundled with the package): the raw signal the stream and detector tests cut."""
    path = importlib.resources.files("ecgae.training") / "data" / "bundled.npz"
    with path.open("rb") as f, np.load(f, allow_pickle=False) as z:
        return (z["mitdb_100_adc"].astype(np.float64) - z["mitdb_100_baseline"]) / z["mitdb_100_gain"]
