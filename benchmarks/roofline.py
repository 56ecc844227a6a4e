"""The compute ceiling the graphs are judged against: single-thread float32 matrix multiply (numpy's
BLAS) measured in the same run, and the fraction of it each graph achieves from its MACs per beat.

BLAS must run on one thread for this reference, like the graphs it is compared with. threadpoolctl
limits it in-process when installed; otherwise the reference runs in a child process started with the
BLAS thread variables set to 1 (they are read only when the library loads).

Run as ``python -m ecgae.benchmarks.roofline N REPEATS`` to print the reference as JSON.
"""

from __future__ import annotations

import json
import os
import sys

import numpy as np

from .child import run_child
from .peers import LITERAL_DECODER_PEERS
from .timing import call_times_ns

THREAD_VARIABLES = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "BLIS_NUM_THREADS")


def _measure(n: int, repeats: int) -> dict:
    rng = np.random.default_rng(0)
    a, b = (rng.standard_normal((n, n), dtype=np.float32) for _ in range(2))
    ns = call_times_ns(lambda: a @ b, repeats, warmup=2)
    seconds = float(np.median(ns)) / 1e9
    return {"n": n, "repeats": repeats, "median_ms": seconds * 1e3, "gmacs": n**3 / seconds / 1e9}


def matmul_reference(n: int = 1024, repeats: int = 10) -> dict:
    """Median GMAC/s of an n x n x n float32 matmul on one BLAS thread, and how the thread was pinned."""
    try:
        from threadpoolctl import threadpool_info, threadpool_limits
    except ImportError:
        env = dict(os.environ, **dict.fromkeys(THREAD_VARIABLES, "1"))
        result = run_child(__name__, [str(n), str(repeats)], env)
        return {**result, "threads": 1, "pinned_by": f"child process with {', '.join(THREAD_VARIABLES)}=1",
                "blas": "unknown (threadpoolctl not installed)"}
    with threadpool_limits(limits=1, user_api="blas"):
        result = _measure(n, repeats)
    blas = [f"{p.get('internal_api')} {p.get('version')}" for p in threadpool_info() if p.get("user_api") == "blas"]
    return {**result, "threads": 1, "pinned_by": "threadpoolctl", "blas": ", ".join(blas)}


def achieved(macs_per_beat: int, beats_per_s: float, reference_gmacs: float) -> dict:
    """GMAC/s a graph reaches at a measured throughput, and that as a fraction of the reference."""
    gmacs = macs_per_beat * beats_per_s / 1e9
    return {"macs_per_beat": int(macs_per_beat), "gmacs": gmacs, "fraction_of_matmul": gmacs / reference_gmacs}


def achieved_table(rates: list[dict], macs: dict[str, int], reference_gmacs: float) -> list[dict]:
    """GMAC/s and fraction of the matmul reference for each throughput cell; the literal decoders are
    credited with the literal MACs they actually compute."""
    out = []
    for r in rates:
        decoder = macs["decoder_literal"] if r["peer"] in LITERAL_DECODER_PEERS else macs["decoder"]
        per_beat = {"encode": macs["encoder"], "decode": decoder, "reconstruct": macs["encoder"] + decoder}[r["op"]]
        out.append({k: r[k] for k in ("peer", "op", "threads", "batch")}
                   | achieved(per_beat, r["beats_per_s"], reference_gmacs))
    return out


if __name__ == "__main__":
    print(json.dumps(_measure(int(sys.argv[1]), int(sys.argv[2]))))
