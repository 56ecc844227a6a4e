"""Training loop: deterministic on CPU, checkpointed atomically every epoch, resumable to the same weights.

A run directory holds ``config.json`` (everything needed to rebuild model and preprocessing),
``checkpoint.pt`` (weights, optimizer, RNG state, history; loads with ``weights_only=True``),
``split.json`` (indices of each side) and ``metrics.json`` (per-epoch losses, split, held-out figures,
anomaly threshold). Labels never reach the loss; ``train_classes`` only selects which beats train.
"""

from __future__ import annotations

import io
import json
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..runtime.errors import InputError
from ..runtime.io import atomic_write_bytes, write_json
from .collapse import collapse_warnings
from .datasets import BeatSet, load_beats
from .models import build_model
from .splits import describe_split

CHECKPOINT = "checkpoint.pt"


@dataclass
class TrainConfig:
    model: str = "ae"  # "ae" or "vae"
    arch: str = "upsample"  # the corrected decoder: lower held-out error in every demo setting; "seed" is the chapter's
    data: str = "bundled"
    latent_dim: int = 2
    beta: float = 0.005  # the chapter's weight of the KL term
    epochs: int = 20
    batch_size: int = 64
    lr: float = 1e-3
    seed: int = 0
    length: int | None = None  # stretch pre-cut beats to this L; continuous records fix L themselves
    train_classes: list[str] = field(default_factory=list)  # empty: train on every beat
    threshold_rule: str = "p99"  # "p99" or "mean+Kstd" (e.g. "mean+1std")

    def check(self) -> None:
        if self.model not in ("ae", "vae"):
            raise InputError(f"--model: expected 'ae' or 'vae', received {self.model!r}")
        for name in ("epochs", "batch_size", "latent_dim"):
            if getattr(self, name) < 1:
                raise InputError(f"--{name.replace('_', '-')}: expected >= 1, received {getattr(self, name)}")
        if not self.lr > 0 or not self.beta >= 0:
            raise InputError(f"--lr/--beta: expected lr > 0 and beta >= 0, received {self.lr}, {self.beta}")
        threshold_from_scores(np.zeros(2), self.threshold_rule)


def loss_terms(model: torch.nn.Module, x: torch.Tensor, beta: float, sample: bool = True):
    """(loss, recon, kld): MSE for the AE; MSE + beta * KL (summed, as in the chapter) for the VAE.

    With ``sample=False`` the VAE decodes its mean, as a deployed model does.
    """
    if model.kind == "ae":
        recon, _ = model(x)
        mse = F.mse_loss(recon, x)
        return mse, mse, torch.zeros(())
    mu, logvar = model.encode(x)
    z = model.reparameterize(mu, logvar) if sample else mu
    mse = F.mse_loss(model.decode(z), x)
    kld = -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp())
    return mse + beta * kld, mse, kld


@torch.no_grad()
def reconstruct(model: torch.nn.Module, beats: np.ndarray, batch: int = 1024) -> np.ndarray:
    """Deterministic reconstruction (AE: z; VAE: mu) of [N, L] beats -> [N, L]."""
    model.eval()
    out = []
    for i in range(0, len(beats), batch):
        x = torch.from_numpy(beats[i : i + batch]).unsqueeze(1)
        out.append(model.decode(model.latent(x)).squeeze(1).numpy())
    return np.concatenate(out) if out else np.zeros((0, beats.shape[-1]), np.float32)


def beat_scores(model: torch.nn.Module, beats: np.ndarray) -> np.ndarray:
    """Per-beat reconstruction MSE: the anomaly score."""
    return ((reconstruct(model, beats) - beats) ** 2).mean(axis=1)


def threshold_from_scores(scores: np.ndarray, rule: str) -> float:
    """Anomaly threshold from training-split normal beats: 'p99' or 'mean+Kstd'."""
    if rule == "p99":
        return float(np.percentile(scores, 99))
    if rule.startswith("mean+") and rule.endswith("std"):
        try:
            k = float(rule[5:-3])
        except ValueError:
            k = None
        if k is not None:
            return float(scores.mean() + k * scores.std())
    raise InputError(f"--threshold-rule: expected 'p99' or 'mean+Kstd' (e.g. mean+1std), received {rule!r}")


def _progress(i: int, n: int) -> None:
    if sys.stderr.isatty():
        done = int(30 * i / n)
        sys.stderr.write(f"\r  [{'#' * done}{'.' * (30 - done)}] {i}/{n} batches")
        sys.stderr.write("\r" + " " * 60 + "\r" if i == n else "")
        sys.stderr.flush()


def _train_epoch(model, opt, x: torch.Tensor, cfg: TrainConfig, epoch: int) -> dict:
    model.train()
    order = torch.randperm(len(x), generator=torch.Generator().manual_seed(cfg.seed * 100_003 + epoch))
    sums, n_batches = np.zeros(3), (len(x) + cfg.batch_size - 1) // cfg.batch_size
    for b in range(n_batches):
        xb = x[order[b * cfg.batch_size : (b + 1) * cfg.batch_size]]
        if len(xb) < 2:  # BatchNorm cannot train on a single beat
            continue
        loss, mse, kld = loss_terms(model, xb, cfg.beta)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sums += [loss.item(), mse.item(), kld.item()]
        _progress(b + 1, n_batches)
    return dict(zip(("loss", "recon", "kld"), (sums / n_batches).tolist()))


@torch.no_grad()
def _evaluate(model, x: torch.Tensor, beta: float) -> dict:
    model.eval()
    loss, mse, _ = loss_terms(model, x, beta, sample=False)
    return {"val_loss": loss.item(), "val_recon": mse.item()}


def _save_checkpoint(run: Path, model, opt, epoch: int, history: list) -> None:
    buf = io.BytesIO()
    torch.save({"model": model.state_dict(), "optimizer": opt.state_dict(), "epoch": epoch,
                "rng_state": torch.get_rng_state(), "history": history}, buf)
    atomic_write_bytes(run / CHECKPOINT, buf.getvalue())


def load_checkpoint(run: Path) -> dict:
    """Load a run's checkpoint safely (no pickled code), with a clear error when it is unusable."""
    path = Path(run) / CHECKPOINT
    if not path.is_file():
        raise InputError(f"run {run}: expected {CHECKPOINT}, which is missing")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise InputError(f"run {run}: {CHECKPOINT} is unreadable or corrupt ({type(e).__name__}: {e})") from None


def read_run_json(run: Path, name: str) -> dict:
    """One of a run's JSON files (config, split, metrics), with a clear error when missing or corrupt."""
    path = Path(run) / name
    if not path.is_file():
        raise InputError(f"run {run}: expected {name}, which is missing (is this a run directory?)")
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise InputError(f"run {run}: {name} is not valid JSON ({e})") from None


def load_config(run: Path) -> dict:
    return read_run_json(run, "config.json")


def load_model(run: Path) -> tuple[torch.nn.Module, dict]:
    """Rebuild a trained model (eval mode) and its config from a run directory."""
    cfg = load_config(run)
    model = build_model(cfg["train"]["model"], cfg["train"]["arch"], cfg["length"], cfg["train"]["latent_dim"])
    ckpt = load_checkpoint(run)
    try:
        model.load_state_dict(ckpt["model"])
    except (RuntimeError, KeyError) as e:
        raise InputError(f"run {run}: checkpoint does not fit a {cfg['train']['model']}/{cfg['train']['arch']} "
                         f"model with L={cfg['length']}, latent={cfg['train']['latent_dim']} ({e})") from None
    return model.eval(), cfg


def training_selection(bs: BeatSet, idx: np.ndarray, classes: list[str]) -> np.ndarray:
    """Training indices restricted to ``classes`` (empty: all); refuses an empty selection."""
    if not classes:
        return idx
    sel = idx[np.isin(bs.labels[idx], classes)]
    if len(sel) == 0:
        raise InputError(f"--train-classes: expected labels present in the training split "
                         f"({sorted(set(bs.labels[idx].tolist()))}), received {classes}: no beat selected")
    return sel


def threshold_beats(bs: BeatSet, train_idx: np.ndarray) -> tuple[np.ndarray, bool]:
    """Indices the anomaly threshold is calibrated on: the training beats labelled normal, or all of them
    when the data is unlabelled; and whether labels were used."""
    normal = train_idx[bs.labels[train_idx] == bs.normal_label]
    return (normal, True) if len(normal) else (train_idx, False)


def train(cfg: TrainConfig, out: Path, resume: bool = False, log=print) -> dict:
    """Train (or resume) a run in ``out``; returns metrics.json's content."""
    cfg.check()
    out = Path(out)
    if (out / CHECKPOINT).exists() and not resume:
        raise InputError(f"--out: {out} already holds a run; pass --resume to continue it or choose a new folder")
    if resume and (out / "config.json").exists():
        saved = load_config(out)["train"]
        if saved != asdict(cfg):
            raise InputError(f"--resume: the options differ from the run's config.json: saved {saved}, "
                             f"received {asdict(cfg)}")
    torch.manual_seed(cfg.seed)
    torch.use_deterministic_algorithms(True)
    bs = load_beats(cfg.data, cfg.length)
    parts = bs.split()
    train_idx = training_selection(bs, parts["train"], cfg.train_classes)
    model = build_model(cfg.model, cfg.arch, bs.prep.length, cfg.latent_dim)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    config = {"train": asdict(cfg), "length": bs.prep.length, "source": bs.source,
              "normal_label": bs.normal_label, "preprocessing": bs.prep.to_dict()}
    write_json(out / "config.json", config)
    write_json(out / "split.json", {k: v.tolist() for k, v in parts.items()} | {"train_used": train_idx.tolist()})
    history, start = [], 1
    if resume and (out / CHECKPOINT).exists():
        ckpt = load_checkpoint(out)
        model.load_state_dict(ckpt["model"])
        opt.load_state_dict(ckpt["optimizer"])
        torch.set_rng_state(ckpt["rng_state"])
        history, start = list(ckpt["history"]), int(ckpt["epoch"]) + 1
        log(f"Resuming {out} after epoch {start - 1}/{cfg.epochs}")
    x_train = torch.from_numpy(bs.beats[train_idx]).unsqueeze(1)
    x_val = torch.from_numpy(bs.beats[parts["val"]]).unsqueeze(1)
    for epoch in range(start, cfg.epochs + 1):
        row = {"epoch": epoch, **_train_epoch(model, opt, x_train, cfg, epoch), **_evaluate(model, x_val, cfg.beta)}
        history.append(row)
        kld = f"KLD: {row['kld']:.4f}, " if cfg.model == "vae" else ""  # an AE has no KL term
        log(f"Epoch {epoch}/{cfg.epochs}, Loss: {row['loss']:.4f}, Recon: {row['recon']:.4f}, {kld}"
            f"Val loss: {row['val_loss']:.4f}")
        _save_checkpoint(out, model, opt, epoch, history)
    model.eval()
    normal, labelled = threshold_beats(bs, train_idx)
    threshold = threshold_from_scores(beat_scores(model, bs.beats[normal]), cfg.threshold_rule)
    test_scores = beat_scores(model, bs.beats[parts["test"]])
    metrics = {
        "epochs": history,
        "split": describe_split(bs.records, parts, bs.time_ordered) | {"train_used": int(len(train_idx))},
        "test_recon_mse": float(test_scores.mean()),
        "anomaly": {"score": "per-beat reconstruction MSE", "rule": cfg.threshold_rule,
                    "threshold": threshold, "calibrated_on": f"{len(normal)} training-split beats"
                    + (f" labelled {bs.normal_label!r}" if labelled else " (unlabelled: all of them)")},
    }
    if cfg.model == "vae":
        with torch.no_grad():
            mu = model.latent(x_val).numpy()
            samples = model.decode(torch.randn(8, cfg.latent_dim, generator=torch.Generator().manual_seed(0))).numpy()
        metrics["warnings"] = collapse_warnings(mu, samples)
        for w in metrics["warnings"]:
            log(f"warning: {w}")
    write_json(out / "metrics.json", metrics)
    return metrics
