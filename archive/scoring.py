"""One recording's beats scored, and its summary: the single place an archive run touches the model.

``score_recording`` is the one function to change when the runtime gains ``Model.analyze`` and per-wearer
calibration: everything around it (reading, Parquet, engines) only sees the columns it returns.
"""

from __future__ import annotations

import numpy as np

from ..runtime import Model
from ..runtime.errors import InputError

COLUMNS = ("r_peak", "time", "score", "flag", "rr", "latent")


def score_recording(model: Model, signal: np.ndarray, fs: float,
                    calibrate_seconds: float | None = None) -> dict[str, np.ndarray]:
    """Columns for one recording, one entry per beat: r_peak (sample in ``signal``), time (s), score
    (reconstruction MSE), flag (score above the bundle's threshold), rr (s since the previous beat, NaN
    for the first, stored as null), latent [beats, latent_dim]."""
    check_calibration(model, calibrate_seconds)
    threshold = model.decision_threshold()
    beats, r_peak = model.beats_from_signal(signal, fs)
    score = model.score(beats)
    rr = np.diff(r_peak, prepend=np.nan) / fs
    return {"r_peak": r_peak.astype(np.int64), "time": r_peak / fs, "score": score, "flag": score > threshold,
            "rr": rr, "latent": model.encode(beats).astype(np.float32)}


def check_calibration(model: Model, calibrate_seconds: float | None) -> None:
    """InputError when per-wearer calibration is asked for and this runtime cannot do it."""
    if calibrate_seconds is not None and not hasattr(model, "calibrate"):
        raise InputError(f"--calibrate-seconds {calibrate_seconds:g}: per-wearer calibration is not available in "
                         "this version of ecgae; run without it to score against the bundle's threshold")


def summarise(columns: dict[str, np.ndarray], n_samples: int, fs: float) -> dict[str, float | int]:
    """Duration, beat count, flagged fraction and heart-rate statistics (from RR; 5th/95th percentiles
    rather than min/max, which single missed or extra detections dominate)."""
    beats = len(columns["score"])
    rr = columns["rr"][np.isfinite(columns["rr"]) & (columns["rr"] > 0)]
    hr = 60.0 / rr if rr.size else np.full(1, np.nan)
    return {"duration_s": n_samples / fs, "beats": beats, "flagged": int(columns["flag"].sum()),
            "flagged_fraction": float(columns["flag"].mean()) if beats else float("nan"),
            "hr_mean_bpm": float(hr.mean()), "hr_median_bpm": float(np.median(hr)),
            "hr_p05_bpm": float(np.percentile(hr, 5)), "hr_p95_bpm": float(np.percentile(hr, 95))}
