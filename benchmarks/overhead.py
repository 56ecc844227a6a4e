"""Batch-1 cost of ``ecgae.runtime.Model`` over the raw onnxruntime calls each method replaces.

The two are timed in alternating blocks of calls within one run, so both see the same machine load; the
claim is the ratio of their p50s. Raw means what an application writes without the runtime: the
bundle's sessions with the same options (1 intra-op thread, spinning off, ORT_ENABLE_ALL), fed a
float32 beat, fetching the output the method returns; reconstruct and score replace the same two
calls (encoder, then decoder on z or mu), as bundles before score.onnx ran them.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path

import numpy as np

from ..runtime import Model, read_manifest
from ..runtime.session import make_session
from .timing import call_times_ns

OPS = ("encode", "reconstruct", "score")


def raw_calls(bundle_dir: Path) -> dict[str, Callable[[np.ndarray], object]]:
    """Per op, the onnxruntime calls it replaces, on the bundle's encoder and decoder graphs."""
    graphs = read_manifest(bundle_dir)["graphs"]
    enc = make_session(Path(bundle_dir) / graphs["encoder"]["file"], 1, "all")
    dec = make_session(Path(bundle_dir) / graphs["decoder"]["file"], 1, "all")
    x_name, z_name, first = enc.get_inputs()[0].name, dec.get_inputs()[0].name, [enc.get_outputs()[0].name]

    def encode(x: np.ndarray) -> list:
        return enc.run(first, {x_name: x})

    def reconstruct(x: np.ndarray) -> list:
        return dec.run(None, {z_name: enc.run(first, {x_name: x})[0]})

    return {"encode": encode, "reconstruct": reconstruct, "score": reconstruct}


def measure_overhead(bundle_dir: Path, beat: np.ndarray, rounds: int, calls: int, warmup: int) -> list[dict]:
    """Per op: p50 of the raw calls and of the Model method on one beat [1, 1, L], over ``rounds``
    alternating blocks of ``calls`` timed calls each, and their ratio (Model / raw)."""
    model, raw = Model.load(bundle_dir, threads=1), raw_calls(bundle_dir)
    rows = []
    for op in OPS:
        pair = {"ort": functools.partial(raw[op], beat), "runtime": functools.partial(getattr(model, op), beat)}
        times: dict[str, list[np.ndarray]] = {name: [] for name in pair}
        for _ in range(rounds):
            for name, fn in pair.items():
                times[name].append(call_times_ns(fn, calls, warmup))
        p50 = {name: float(np.median(np.concatenate(t))) / 1e3 for name, t in times.items()}
        rows.append({"op": op, "batch": 1, "threads": 1, "calls": rounds * calls, "ort_p50_us": p50["ort"],
                     "runtime_p50_us": p50["runtime"], "ratio": p50["runtime"] / p50["ort"]})
    return rows
