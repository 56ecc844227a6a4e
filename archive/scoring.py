"""One recording's beats scored, and its summary: the single place an archive run touches the model.

``score_recording`` is ``Model.analyze`` (optionally after ``Model.calibrate`` on the recording's first
seconds): everything around it (reading, Parquet, engines) only sees the columns it returns.
"""

from __future__ import annotations

import numpy as np

from ..runtime import Model
from ..runtime.gaps import gap_spans

COLUMNS = ("r_peak", "time", "score", "flag", "usable", "rr", "latent")


def score_recording(model: Model, signal: np.ndarray, fs: float,
                    calibrate_seconds: float | None = None) -> dict[str, np.ndarray]:
    """Columns for one recording, one entry per beat, from ``Model.analyze``: r_peak (sample in ``signal``),
    time (s), score (NaN, stored as null, for a beat in unusable signal), flag, usable (the quality gate's
    verdict), rr (s since the previous beat, NaN for the first and next to an unusable beat, stored as null),
    latent [beats, latent_dim] (NaN for unusable beats). With ``calibrate_seconds`` the recording's own
    first seconds enrol its wearer and the scores are wearer-relative; otherwise the bundle's reconstruction
    MSE and threshold."""
    profile = None if calibrate_seconds is None else model.calibrate(signal, fs, seconds=calibrate_seconds)
    beats = model.analyze(signal, fs, profile)
    return {"r_peak": beats.r_peak.astype(np.int64), "time": beats.r_peak / fs, "score": beats.score,
            "flag": beats.flag, "usable": beats.usable, "rr": beats.rr, "latent": beats.z.astype(np.float32)}


def summarise(columns: dict[str, np.ndarray], signal: np.ndarray, fs: float) -> dict[str, float | int]:
    """Duration, gaps (NaN/Inf runs: count and seconds missing), beat count, flagged fraction and heart-rate
    statistics (from RR; 5th/95th percentiles rather than min/max, which single missed or extra detections
    dominate)."""
    n_samples, gaps = len(signal), gap_spans(np.asarray(signal, dtype=np.float64))
    beats = len(columns["score"])
    rr = columns["rr"][np.isfinite(columns["rr"]) & (columns["rr"] > 0)]
    hr = 60.0 / rr if rr.size else np.full(1, np.nan)
    scored = int(columns["usable"].sum())
    return {"duration_s": n_samples / fs, "gaps": len(gaps), "missing_s": float(np.diff(gaps).sum() / fs),
            "beats": beats, "unusable": beats - scored,
            "flagged": int(columns["flag"].sum()),
            "flagged_fraction": float(columns["flag"].sum() / scored) if scored else float("nan"),
            "hr_mean_bpm": float(hr.mean()), "hr_median_bpm": float(np.median(hr)),
            "hr_p05_bpm": float(np.percentile(hr, 5)), "hr_p95_bpm": float(np.percentile(hr, 95))}
