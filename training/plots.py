"""The chapter's figures for a run: latent scatter by beat class, a beat and its reconstruction,
beats generated from z ~ N(0, I) (VAE), and the loss curves. Each is written as PNG and SVG.
"""

from __future__ import annotations

import io
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from ..runtime.io import atomic_write_bytes  # noqa: E402
from .datasets import load_beats  # noqa: E402
from .train import load_model, read_run_json, reconstruct  # noqa: E402


def save_figure(fig, folder: Path, stem: str) -> list[Path]:
    """Write ``stem``.png and ``stem``.svg atomically; returns both paths."""
    paths = []
    for ext in ("png", "svg"):
        buf = io.BytesIO()
        fig.savefig(buf, format=ext, dpi=110, bbox_inches="tight")
        atomic_write_bytes(folder / f"{stem}.{ext}", buf.getvalue())
        paths.append(folder / f"{stem}.{ext}")
    plt.close(fig)
    return paths


def project_2d(latents: np.ndarray) -> tuple[np.ndarray, str]:
    """The latents themselves when 2-D, else their first two principal components."""
    if latents.shape[1] <= 2:
        return np.pad(latents, ((0, 0), (0, 2 - latents.shape[1]))), "z"
    centred = latents - latents.mean(axis=0)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    return centred @ vt[:2].T, "PC of z"


def scatter_by_class(ax, points: np.ndarray, labels: np.ndarray, normal: str) -> None:
    """Normal beats underneath and faint, every other class on top, so rare classes stay visible."""
    classes = sorted(set(labels.tolist()), key=lambda c: (c != normal, c))
    for c in classes:
        m = labels == c
        is_normal = c == normal
        ax.scatter(points[m, 0], points[m, 1], s=6 if is_normal else 18, alpha=0.35 if is_normal else 0.9,
                   label=f"{c} ({int(m.sum())})", marker="o" if is_normal else "^")
    ax.legend(title="class", fontsize=8, markerscale=1.5)


@torch.no_grad()
def plot_run(run: Path) -> list[Path]:
    """Draw every figure of a run from its checkpoint and its held-out (test) beats."""
    run = Path(run)
    model, cfg = load_model(run)
    bs = load_beats(cfg["train"]["data"], cfg["train"]["length"])
    split = read_run_json(run, "split.json")
    test = np.asarray(split["test"], dtype=np.int64)
    title = f"{cfg['train']['model'].upper()} ({cfg['train']['arch']}), {bs.source}"
    paths: list[Path] = []

    z = model.latent(torch.from_numpy(bs.beats).unsqueeze(1)).numpy()
    points, axis = project_2d(z)
    fig, ax = plt.subplots(figsize=(6, 5))
    scatter_by_class(ax, points, bs.labels, bs.normal_label)
    ax.set(xlabel=f"{axis}[0]", ylabel=f"{axis}[1]", title=f"Latent space, all beats: {title}")
    paths += save_figure(fig, run, "latent")

    beat = bs.beats[test[0]]
    recon = reconstruct(model, beat[None])[0]
    fig, ax = plt.subplots(figsize=(8, 3.5))
    ax.plot(beat, label=f"held-out beat (label {bs.labels[test[0]]})")
    ax.plot(recon, label=f"reconstruction (MSE {np.mean((recon - beat) ** 2):.3f})")
    ax.set(xlabel="sample", ylabel="z-scored amplitude", title=f"Reconstruction: {title}")
    ax.legend(fontsize=8)
    paths += save_figure(fig, run, "reconstruction")

    if cfg["train"]["model"] == "vae":
        rng = np.random.default_rng(0)
        zs = torch.from_numpy(rng.standard_normal((3, model.latent_dim)).astype(np.float32))
        gen = model.decode(zs).squeeze(1).numpy()
        fig, axes = plt.subplots(1, 3, figsize=(12, 3), sharey=True)
        for i, ax in enumerate(axes):
            ax.plot(gen[i])
            ax.set(title=f"z = {np.array2string(zs[i].numpy(), precision=2)}", xlabel="sample")
        fig.suptitle(f"Beats decoded from z ~ N(0, I): {title}")
        paths += save_figure(fig, run, "samples")

    hist = read_run_json(run, "metrics.json")["epochs"]
    epochs = [h["epoch"] for h in hist]
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot(epochs, [h["recon"] for h in hist], label="train recon (MSE)")
    ax.plot(epochs, [h["val_recon"] for h in hist], label="validation recon (MSE)")
    if cfg["train"]["model"] == "vae":
        ax.plot(epochs, [h["loss"] for h in hist], "--", label="train loss (recon + beta*KLD)")
    ax.set(xlabel="epoch", ylabel="loss", title=f"Loss curves: {title}")
    ax.legend(fontsize=8)
    paths += save_figure(fig, run, "loss")
    return paths
