"""Held-out evaluation of a run (through torch) or a bundle (through the lean runtime).

Everything is measured on the evaluation data's held-out (test) split, cut by the same rule as
training (``BeatSet.split``), so on the training data it is exactly the run's own test split:
- reconstruction: MSE per sample, PRD (percent root-mean-square difference, ECG compression's measure;
  on z-scored beats this is the normalised PRD) and the compression ratio the latent size implies;
- anomaly detection with the per-beat MSE as score: ROC AUC of normal vs each abnormal class present
  and vs all of them, and accuracy / precision / recall at the calibrated threshold, with "abnormal"
  as the positive class and, for comparison with the TensorFlow tutorial, with "normal" as positive;
- latent structure: balanced accuracy of a logistic-regression probe fitted on training-split latents.
Labels are used here only, never in training's loss.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..runtime.errors import InputError
from .datasets import BeatSet, load_beats
from .splits import split_method


@dataclass
class Backend:
    """What evaluation needs from a model, whichever engine runs it."""

    name: str  # "torch" or "onnxruntime"
    kind: str
    arch: str
    latent_dim: int
    length: int
    threshold: float | None
    data: str  # the training data spec, the default evaluation data
    latents: Callable[[np.ndarray], np.ndarray]  # [N, L] -> [N, latent] (AE: z, VAE: mu)
    reconstruct: Callable[[np.ndarray], np.ndarray]  # [N, L] -> [N, L]


def _torch_backend(run: Path) -> Backend:
    import torch

    from .train import load_model, read_run_json, reconstruct

    model, cfg = load_model(run)
    threshold = read_run_json(run, "metrics.json")["anomaly"]["threshold"]

    @torch.no_grad()
    def latents(beats: np.ndarray) -> np.ndarray:
        return model.latent(torch.from_numpy(beats).unsqueeze(1)).numpy()

    t = cfg["train"]
    return Backend("torch", t["model"], t["arch"], t["latent_dim"], cfg["length"], threshold, t["data"],
                   latents, lambda b: reconstruct(model, b))


def _runtime_backend(bundle: Path) -> Backend:
    from ..runtime import Model

    model = Model.load(bundle)
    m = model.manifest
    t = m["training"]["config"]
    return Backend("onnxruntime", m["model"]["kind"], m["model"]["arch"], m["model"]["latent_dim"],
                   m["model"]["input_length"], m["anomaly"]["threshold"], t["data"],
                   model.encode, lambda b: model.reconstruct(b).reshape(len(b), -1))


def open_backend(path: Path) -> Backend:
    """A run directory (config.json + checkpoint.pt) or a bundle (manifest.json)."""
    path = Path(path)
    if (path / "manifest.json").is_file():
        return _runtime_backend(path)
    if (path / "config.json").is_file():
        return _torch_backend(path)
    raise InputError(f"evaluate: expected a run directory (config.json) or a bundle (manifest.json), "
                     f"received {str(path)!r}")


def roc_auc(normal_scores: np.ndarray, abnormal_scores: np.ndarray) -> float:
    """ROC AUC of 'abnormal scores higher' (Mann-Whitney U, ties count half)."""
    from sklearn.metrics import roc_auc_score

    y = np.r_[np.zeros(len(normal_scores)), np.ones(len(abnormal_scores))]
    return float(roc_auc_score(y, np.r_[normal_scores, abnormal_scores]))


def auc_interval(auc: float, n_normal: int, n_abnormal: int, z: float = 1.96) -> tuple[float, float]:
    """Approximate 95 % confidence interval of an AUC from its standard error (Hanley & McNeil 1982): how far
    a figure from a few dozen beats may lie from the one a larger sample would give. At AUC 0 or 1 it has
    no width, which says nothing about the sample's size."""
    q1, q2 = auc / (2 - auc), 2 * auc * auc / (1 + auc)
    var = (auc * (1 - auc) + (n_abnormal - 1) * (q1 - auc * auc) + (n_normal - 1) * (q2 - auc * auc)) / (
        n_normal * n_abnormal)
    half = z * float(np.sqrt(max(var, 0.0)))
    return max(0.0, auc - half), min(1.0, auc + half)


def prd(x: np.ndarray, x_hat: np.ndarray) -> np.ndarray:
    """Percent root-mean-square difference per beat: 100 * ||x - x_hat|| / ||x||."""
    return 100 * np.sqrt(((x - x_hat) ** 2).sum(axis=1) / np.maximum((x**2).sum(axis=1), 1e-12))


def detection_figures(is_positive: np.ndarray, predicted: np.ndarray) -> dict:
    """Accuracy, precision and recall of boolean predictions (precision None when nothing is predicted)."""
    tp = int((predicted & is_positive).sum())
    return {"accuracy": float((predicted == is_positive).mean()),
            "precision": tp / int(predicted.sum()) if predicted.any() else None,
            "recall": tp / int(is_positive.sum()) if is_positive.any() else None}


def anomaly_metrics(scores: np.ndarray, labels: np.ndarray, normal: str, threshold: float | None) -> dict:
    """AUC of normal vs each abnormal class and vs all; detection figures at the threshold."""
    is_normal = labels == normal
    out: dict = {"normal_label": normal, "n_normal": int(is_normal.sum()), "n_abnormal": int((~is_normal).sum())}
    if not is_normal.any() or is_normal.all():
        out["note"] = "needs both normal and abnormal beats in the held-out split"
        return out
    out["auc_all"] = roc_auc(scores[is_normal], scores[~is_normal])
    out["auc_by_class"] = {str(c): roc_auc(scores[is_normal], scores[labels == c])
                           for c in sorted(set(labels[~is_normal].tolist()))}
    if threshold is not None:
        flagged = scores > threshold
        out["threshold"] = threshold
        out["abnormal_positive"] = detection_figures(~is_normal, flagged)
        out["normal_positive"] = detection_figures(is_normal, ~flagged)
    return out


def probe_metrics(z_train: np.ndarray, y_train: np.ndarray, z_test: np.ndarray, y_test: np.ndarray) -> dict:
    """Balanced accuracy of a logistic-regression probe: how linearly the latents separate classes."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import balanced_accuracy_score
    from sklearn.preprocessing import StandardScaler

    classes = sorted(set(y_train.tolist()) & set(y_test.tolist()))
    if len(classes) < 2:
        return {"note": "needs at least two classes present in both the training and the held-out split"}
    keep_tr, keep_te = np.isin(y_train, classes), np.isin(y_test, classes)
    scaler = StandardScaler().fit(z_train[keep_tr])
    clf = LogisticRegression(max_iter=2000, class_weight="balanced")
    clf.fit(scaler.transform(z_train[keep_tr]), y_train[keep_tr])
    pred = clf.predict(scaler.transform(z_test[keep_te]))
    return {"classes": classes, "balanced_accuracy": float(balanced_accuracy_score(y_test[keep_te], pred)),
            "chance": 1 / len(classes)}


def evaluate(path: Path, data: str | None = None) -> dict:
    """All held-out metrics of a run or bundle on ``data`` (default: the data it was trained on)."""
    be = open_backend(path)
    spec = data or be.data
    bs: BeatSet = load_beats(spec, be.length)  # pre-cut beats are stretched to the model's L
    parts = bs.split()
    test, train = parts["test"], parts["train"]
    x = bs.beats[test]
    x_hat = be.reconstruct(x)
    scores = ((x_hat - x) ** 2).mean(axis=1)
    return {
        "model": {"path": str(path), "engine": be.name, "kind": be.kind, "arch": be.arch,
                  "latent_dim": be.latent_dim, "input_length": be.length},
        "data": {"spec": spec, "held_out_beats": int(len(test)),
                 "split_method": split_method(bs.records, bs.time_ordered),
                 "labels": {str(k): int(v) for k, v in zip(*np.unique(bs.labels[test], return_counts=True))}},
        "reconstruction": {"mse": float(scores.mean()), "prd_percent": float(prd(x, x_hat).mean()),
                           "compression_ratio": be.length / be.latent_dim},
        "anomaly": anomaly_metrics(scores, bs.labels[test], bs.normal_label, be.threshold),
        "latent_probe": probe_metrics(be.latents(bs.beats[train]), bs.labels[train], be.latents(x), bs.labels[test]),
    }
