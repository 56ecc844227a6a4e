"""``ecgae train`` and ``ecgae evaluate`` as a user types them: defaults and an example in the help, no KL
figure for an AE, and a warning when a model does not work (a collapsed VAE, an AUC below 0.5)."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("torch")

from ecgae.cli import main  # noqa: E402
from ecgae.training.collapse import collapse_warnings  # noqa: E402


def test_train_help_shows_defaults_and_an_example(capsys):
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    text = capsys.readouterr().out
    assert "(default: 0.005)" in text and "(default: ae)" in text and "(default: 0)" in text
    assert "example:\n  ecgae train --model ae --train-classes N" in text


def test_an_ae_logs_no_kl_and_a_collapsed_vae_is_named(tmp_path, capsys):
    ae = ["train", "--data", "bundled:ecg5000", "--epochs", "1", "--no-plots", "--out", str(tmp_path / "ae")]
    assert main(ae) == 0
    assert "KLD" not in capsys.readouterr().out
    run = tmp_path / "vae"
    assert main(["train", "--model", "vae", "--beta", "50", "--data", "bundled:ecg5000", "--epochs", "2",
                 "--no-plots", "--out", str(run)]) == 0
    out = capsys.readouterr().out
    assert "KLD" in out and "warning: the VAE's posterior collapsed" in out
    assert json.loads((run / "metrics.json").read_text())["warnings"]
    assert main(["evaluate", str(run), "--out", str(tmp_path / "m.json")]) == 0
    assert "warning: the VAE's posterior collapsed" in capsys.readouterr().err


def test_collapse_warnings_name_what_is_wrong_and_only_that():
    rng = np.random.default_rng(0)
    assert collapse_warnings(rng.standard_normal((200, 4)), rng.standard_normal((8, 140)), 0.9) == []
    assert "posterior collapsed" in collapse_warnings(mu=rng.standard_normal((200, 4)) * 0.05)[0]
    beat = np.sin(np.linspace(0, 6, 140))
    same = beat + rng.standard_normal((8, 140)) * 1e-3
    assert "samples are one beat" in collapse_warnings(samples=same)[0]
    assert "AUC 0.30 < 0.5" in collapse_warnings(auc=0.3)[0]
    assert collapse_warnings(auc=float("nan")) == []


def test_train_without_the_plot_extra_finishes_the_run_and_says_why_no_figures(tmp_path, capsys, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "matplotlib", None)  # as in an install without '.[plot]'
    monkeypatch.delitem(sys.modules, "ecgae.training.plots", raising=False)
    assert main(["train", "--data", "bundled:ecg5000", "--epochs", "1", "--out", str(tmp_path / "r")]) == 0
    assert "figures skipped: they need matplotlib" in capsys.readouterr().out
    assert (tmp_path / "r" / "metrics.json").is_file()
