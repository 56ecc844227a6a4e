"""Signs that a trained model does not work, said at the moment a user would otherwise carry on: a VAE
whose posterior collapsed (its latent carries nothing, its samples are one beat), and an anomaly score that
ranks abnormal beats below normal ones. numpy only, so training and evaluation share it."""

from __future__ import annotations

import numpy as np

ACTIVE_VARIANCE = 0.01  # a latent dimension whose mean moves less than this over the beats is inactive
SAME_SAMPLES = 0.05  # sampled beats whose spread is under this share of a beat's own are one beat
FIX = "train with a smaller --beta (e.g. 0.0005) or use --model ae"


def collapse_warnings(mu: np.ndarray | None = None, samples: np.ndarray | None = None,
                      auc: float | None = None) -> list[str]:
    """Warnings for a VAE's latent means ``mu`` [N, k] over held-out beats, beats it sampled from N(0, I)
    [n, L], and the held-out AUC of normal vs abnormal beats; an empty list when nothing looks wrong."""
    out = []
    if mu is not None and len(mu) > 1:
        mu = np.asarray(mu, dtype=np.float64).reshape(len(mu), -1)
        active = int((mu.var(axis=0) > ACTIVE_VARIANCE).sum())
        if active == 0:
            out.append(f"the VAE's posterior collapsed (or it has not trained long enough): none of its "
                       f"{mu.shape[1]} latent dimensions varies over the beats (variance of the mean <= "
                       f"{ACTIVE_VARIANCE}), so it reconstructs every beat alike; " + FIX)
    if samples is not None and len(samples) > 1:
        s = np.asarray(samples, dtype=np.float64).reshape(len(samples), -1)
        spread = float(s.std(axis=0).mean() / max(float(s.std(axis=1).mean()), 1e-12))
        if spread < SAME_SAMPLES:
            out.append(f"the VAE's samples are one beat: their spread is {spread:.1%} of a beat's own (posterior "
                       f"collapse); " + FIX)
    if auc is not None and np.isfinite(auc) and auc < 0.5:
        out.append(f"AUC {auc:.2f} < 0.5: the reconstruction error ranks abnormal beats below normal ones on this "
                   "data; a model trained on one person does not score another without enrolment "
                   "('ecgae calibrate', docs/enrolment.md)")
    return out
