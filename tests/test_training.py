"""Training: loss falls on real beats, determinism, resume equivalence, the CLI and its errors."""

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from ecgae.cli import main  # noqa: E402
from ecgae.runtime.errors import InputError  # noqa: E402
from ecgae.training.train import TrainConfig, load_checkpoint, load_model, train  # noqa: E402

QUIET = dict(log=lambda *_: None)


def _weights(run):
    return load_checkpoint(run)["model"]


def test_loss_falls_on_real_mitdb_beats(tmp_path):
    metrics = train(TrainConfig(model="ae", data="bundled", epochs=3, seed=0), tmp_path / "r", **QUIET)
    recon = [e["recon"] for e in metrics["epochs"]]
    val = [e["val_recon"] for e in metrics["epochs"]]
    assert recon[-1] < 0.9 * recon[0] and val[-1] < val[0]
    assert np.isfinite(metrics["test_recon_mse"]) and metrics["anomaly"]["threshold"] > 0


@pytest.mark.parametrize("kind", ["ae", "vae"])
@pytest.mark.parametrize("arch", ["seed", "upsample", "conv", "conv-flat"])
def test_same_seed_same_weights(tmp_path, kind, arch):
    cfg = TrainConfig(model=kind, arch=arch, data="bundled:ecg5000", epochs=2, seed=3)
    train(cfg, tmp_path / "a", **QUIET)
    train(cfg, tmp_path / "b", **QUIET)
    wa, wb = _weights(tmp_path / "a"), _weights(tmp_path / "b")
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    train(TrainConfig(model=kind, arch=arch, data="bundled:ecg5000", epochs=2, seed=4), tmp_path / "c", **QUIET)
    assert not all(torch.equal(wa[k], v) for k, v in _weights(tmp_path / "c").items())


@pytest.mark.parametrize("kind", ["ae", "vae"])
def test_resume_after_interruption_reaches_the_same_weights(tmp_path, kind):
    cfg = TrainConfig(model=kind, data="bundled:ecg5000", epochs=4, seed=1)
    full = train(cfg, tmp_path / "full", **QUIET)

    def stop_at_epoch_3(line):
        if line.startswith("Epoch 3/"):
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(cfg, tmp_path / "cut", log=stop_at_epoch_3)
    assert load_checkpoint(tmp_path / "cut")["epoch"] == 2
    resumed = train(cfg, tmp_path / "cut", resume=True, **QUIET)
    wa, wb = _weights(tmp_path / "full"), _weights(tmp_path / "cut")
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    assert resumed["epochs"] == full["epochs"]


def test_refuses_to_overwrite_a_run_and_mismatched_resume(tmp_path):
    cfg = TrainConfig(model="ae", data="bundled:ecg5000", epochs=1)
    train(cfg, tmp_path / "r", **QUIET)
    with pytest.raises(InputError, match="already holds a run"):
        train(cfg, tmp_path / "r", **QUIET)
    with pytest.raises(InputError, match="options differ"):
        train(TrainConfig(model="ae", data="bundled:ecg5000", epochs=2, lr=0.1), tmp_path / "r", resume=True, **QUIET)


def test_train_classes_and_threshold_rule(tmp_path):
    m = train(TrainConfig(model="ae", data="bundled:ecg5000", epochs=1, train_classes=["1"],
                          threshold_rule="mean+1std"), tmp_path / "r", **QUIET)
    split = json.loads((tmp_path / "r" / "split.json").read_text())
    assert m["split"]["train_used"] == len(split["train_used"]) < len(split["train"])
    with pytest.raises(InputError, match="no beat selected"):
        train(TrainConfig(data="bundled:ecg5000", epochs=1, train_classes=["9"]), tmp_path / "x", **QUIET)
    with pytest.raises(InputError, match="threshold-rule"):
        train(TrainConfig(data="bundled:ecg5000", epochs=1, threshold_rule="p42"), tmp_path / "y", **QUIET)


def test_cli_train_writes_run_and_plots(tmp_path, capsys):
    out = tmp_path / "run"
    rc = main(["train", "--model", "vae", "--data", "bundled:ecg5000", "--epochs", "2", "--out", str(out)])
    assert rc == 0
    printed = capsys.readouterr().out
    assert "Epoch 1/2, Loss: " in printed and "Recon: " in printed and "KLD: " in printed
    for name in ("config.json", "checkpoint.pt", "metrics.json", "split.json", "latent.png", "latent.svg",
                 "reconstruction.png", "samples.png", "loss.svg"):
        assert (out / name).is_file(), name
    model, cfg = load_model(out)
    assert cfg["length"] == 140 and model.latent_dim == 2


@pytest.mark.parametrize("args, message", [
    (["--epochs", "0"], "--epochs"),
    (["--data", "wat"], "data spec"),
    (["--latent-dim", "0"], "--latent-dim"),
])
def test_cli_errors_are_one_line(tmp_path, capsys, args, message):
    rc = main(["train", "--out", str(tmp_path / "r"), "--no-plots", *args])
    err = capsys.readouterr().err
    assert rc == 2 and message in err and err.count("\n") == 1
