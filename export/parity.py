"""Numerical parity between reference outputs (torch) and onnxruntime runs of exported graphs.

numpy + onnxruntime only, so the benchmarks can reuse it. Graphs are run at ORT_DISABLE_ALL (the graph as
exported) and ORT_ENABLE_ALL (what deployment runs, with ORT's fusions), in batch chunks of different
sizes so a batch axis frozen by the exporter fails here rather than on a device.

Criterion (atol-dominated, like ``numpy.allclose``): every element must satisfy
``|actual - expected| <= atol + RTOL * |expected|``; NaN or inf never passes.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

import numpy as np

from ..runtime.errors import InputError
from ..runtime.session import make_session

LEVELS = {"disable_all": "disable", "enable_all": "all"}  # manifest name -> make_session optimization
RTOL = 1e-6
CHUNKS = (1, 2, 7)  # leading batch sizes of every parity run; the rest of the rows go in one last batch


def error_stats(expected: np.ndarray, actual: np.ndarray) -> dict:
    """Absolute-error summary: max, mean, 99th percentile, and where the max is with both values."""
    expected, actual = np.asarray(expected), np.asarray(actual)
    if expected.shape != actual.shape or expected.size == 0:
        raise InputError(f"parity: expected two non-empty arrays of one shape, received {expected.shape} "
                         f"and {actual.shape}")
    err = np.abs(actual.astype(np.float64) - expected.astype(np.float64))
    worst = np.unravel_index(np.argmax(err), err.shape)  # argmax picks the first NaN if there is one
    return {"max_abs": float(err[worst]), "mean_abs": float(err.mean()), "p99_abs": float(np.percentile(err, 99)),
            "worst_index": [int(i) for i in worst], "expected_at_worst": float(expected[worst]),
            "actual_at_worst": float(actual[worst])}


def violation(expected: np.ndarray, actual: np.ndarray, atol: float, rtol: float = RTOL) -> dict | None:
    """The element furthest outside the tolerance (index, both values, error, tolerance), or None."""
    expected = np.asarray(expected, np.float64)
    actual = np.asarray(actual, np.float64)
    err = np.abs(actual - expected)
    tol = atol + rtol * np.abs(expected)
    excess = np.where(np.isfinite(err), err - tol, np.inf)
    worst = np.unravel_index(np.argmax(excess), excess.shape)
    if excess[worst] <= 0:
        return None
    return {"index": [int(i) for i in worst], "expected": float(expected[worst]), "actual": float(actual[worst]),
            "abs_error": float(err[worst]), "tolerance": float(tol[worst])}


def _chunk_bounds(n: int, chunks: Sequence[int]) -> list[tuple[int, int]]:
    bounds, start = [], 0
    for size in chunks:
        if start >= n:
            break
        bounds.append((start, min(n, start + size)))
        start += size
    return bounds + ([(start, n)] if start < n else [])


def run_graph(path: str | os.PathLike, inputs: Mapping[str, np.ndarray], optimization: str = "all",
              chunks: Sequence[int] = CHUNKS) -> dict[str, np.ndarray]:
    """Run an ONNX graph on ``inputs`` (name -> array, batch first) in batches of ``chunks`` then the rest;
    returns output name -> concatenated array."""
    session = make_session(path, optimization=optimization)
    n = len(next(iter(inputs.values())))
    parts: list[list[np.ndarray]] = []
    for lo, hi in _chunk_bounds(n, chunks):
        parts.append(session.run(None, {k: np.ascontiguousarray(v[lo:hi]) for k, v in inputs.items()}))
    names = [o.name for o in session.get_outputs()]
    return {name: np.concatenate([p[i] for p in parts]) for i, name in enumerate(names)}


def bundle_outputs(encoder: str | os.PathLike, decoder: str | os.PathLike, beats: np.ndarray,
                   latents: np.ndarray, optimization: str = "all",
                   chunks: Sequence[int] = CHUNKS, score: str | os.PathLike | None = None) -> dict[str, np.ndarray]:
    """ORT outputs of an encoder/decoder pair, keyed like the manifest: ``encoder.<out>`` for ``beats``
    [N,1,L], ``decoder.x_hat`` for ``latents`` [M,latent], ``reconstruct.x_hat`` (encoder then decoder,
    through the encoder's first output: z, or mu for a VAE); with a ``score`` graph, ``score.<out>`` too."""
    enc = run_graph(encoder, {"x": beats}, optimization, chunks)
    out = {f"encoder.{k}": v for k, v in enc.items()}
    out["decoder.x_hat"] = run_graph(decoder, {"z": latents}, optimization, chunks)["x_hat"]
    out["reconstruct.x_hat"] = run_graph(decoder, {"z": next(iter(enc.values()))}, optimization, chunks)["x_hat"]
    if score is not None:
        out |= {f"score.{k}": v for k, v in run_graph(score, {"x": beats}, optimization, chunks).items()}
    return out


def bundle_parity(encoder: str | os.PathLike, decoder: str | os.PathLike, beats: np.ndarray, latents: np.ndarray,
                  expected: Mapping[str, np.ndarray], atol: float, levels: Mapping[str, str] = LEVELS,
                  score: str | os.PathLike | None = None) -> tuple[dict, list[str]]:
    """Compare ``expected`` (same keys as :func:`bundle_outputs`) with ORT at every level.

    Returns the manifest's parity section and one line per failing output (empty when it passes).
    """
    report: dict = {"atol": atol, "rtol": RTOL, "passed": True, "levels": {}}
    failures = []
    for level, optimization in levels.items():
        actual = bundle_outputs(encoder, decoder, beats, latents, optimization, score=score)
        if set(actual) != set(expected):
            raise InputError(f"parity: expected outputs {sorted(expected)}, the graphs give {sorted(actual)}")
        report["levels"][level] = {key: error_stats(expected[key], actual[key]) for key in expected}
        for key in expected:
            bad = violation(expected[key], actual[key], atol)
            if bad:
                failures.append(f"{key} at {level}: element {bad['index']} torch {bad['expected']:.9g} vs "
                                f"onnxruntime {bad['actual']:.9g} (|error| {bad['abs_error']:.3g} > "
                                f"tolerance {bad['tolerance']:.3g})")
    report["passed"] = not failures
    return report, failures


def format_table(report: dict) -> str:
    """The parity section as a fixed-width table: one row per output and level."""
    rows = [f"{'output':<20} {'level':<12} {'max_abs':>10} {'mean_abs':>10} {'p99_abs':>10}"]
    for level, outputs in report["levels"].items():
        for key, s in outputs.items():
            rows.append(f"{key:<20} {level:<12} {s['max_abs']:>10.3g} {s['mean_abs']:>10.3g} {s['p99_abs']:>10.3g}")
    return "\n".join(rows)
