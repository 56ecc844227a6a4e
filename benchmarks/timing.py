"""Wall-clock measurement: every call timed on its own with perf_counter_ns after warm-up, so the
report can give percentiles rather than a single mean that hides the tail."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import numpy as np


def call_times_ns(fn: Callable[[], object], calls: int, warmup: int) -> np.ndarray:
    """Durations in ns of ``calls`` calls of ``fn``, after ``warmup`` untimed ones (caches, allocators)."""
    for _ in range(warmup):
        fn()
    out = np.empty(calls, dtype=np.int64)
    clock = time.perf_counter_ns
    for i in range(calls):
        start = clock()
        fn()
        out[i] = clock() - start
    return out


def latency_summary(ns: np.ndarray) -> dict:
    """p50 / p90 / p99 / mean / min of per-call durations, in microseconds."""
    us = np.asarray(ns, dtype=np.float64) / 1e3
    p50, p90, p99 = np.percentile(us, [50, 90, 99])
    return {"calls": int(len(us)), "p50_us": float(p50), "p90_us": float(p90), "p99_us": float(p99),
            "mean_us": float(us.mean()), "min_us": float(us.min())}


def throughput(fn: Callable[[], object], batch: int, warmup: int, min_time_s: float, min_repeats: int) -> dict:
    """Beats per second of ``fn`` on a batch: median call time over at least ``min_repeats`` calls and
    ``min_time_s`` seconds of calls, after ``warmup`` untimed calls."""
    for _ in range(warmup):
        fn()
    times: list[int] = []
    clock = time.perf_counter_ns
    while len(times) < min_repeats or sum(times) < min_time_s * 1e9:
        start = clock()
        fn()
        times.append(clock() - start)
    median_s = float(np.median(times)) / 1e9
    return {"repeats": len(times), "median_ms": median_s * 1e3, "beats_per_s": batch / median_s}


@contextmanager
def timed(seconds: dict[str, float], name: str) -> Iterator[None]:
    """Record the wall time of a phase in ``seconds[name]``, so a slow run shows where its time went."""
    start = time.perf_counter()
    try:
        yield
    finally:
        seconds[name] = time.perf_counter() - start
