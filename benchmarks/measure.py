"""The timing plan shared by every peer: latency at batch 1, then throughput over the batches, within
time budgets so the chapter's literal decoders (milliseconds per beat, gigabytes of activations at large
batches) cannot take over the run."""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from .peers import INPUT_OF, Peer
from .timing import call_times_ns, latency_summary, throughput


@dataclass(frozen=True)
class Settings:
    """How much to measure. Latency takes ``latency_calls`` calls unless a call is so slow that they would
    exceed ``latency_budget_s`` (then fewer, never below ``min_latency_calls``). A throughput cell is
    skipped, and listed, when the time per beat measured at the previous batch predicts it would take
    longer than ``cell_budget_s``."""

    latency_calls: int = 1000
    min_latency_calls: int = 100
    latency_warmup: int = 50
    latency_budget_s: float = 4.0
    batches: tuple[int, ...] = (1, 8, 64, 256, 1024)
    threads: tuple[int, ...] = (1, 2)
    throughput_warmup: int = 1
    min_time_s: float = 0.1
    min_repeats: int = 3
    cell_budget_s: float = 5.0
    parity_beats: int = 128
    memory_beats: int = 100_000
    memory_chunk: int = 1024
    matmul_n: int = 1024
    matmul_repeats: int = 10
    overhead_rounds: int = 20  # Model vs raw onnxruntime at batch 1: alternating blocks of overhead_calls
    overhead_calls: int = 100
    overhead_warmup: int = 20


FULL = Settings()
QUICK = Settings(latency_calls=20, min_latency_calls=5, latency_warmup=2, latency_budget_s=0.5, batches=(1, 8, 256),
                 min_time_s=0.0, min_repeats=1, cell_budget_s=2.0, parity_beats=32, memory_beats=2048,
                 matmul_n=256, matmul_repeats=3, overhead_rounds=3, overhead_calls=20, overhead_warmup=2)


def _latency(fn: Callable[[], object], s: Settings) -> dict:
    """Per-call latency summary; three probe calls (part of the warm-up) size the run to the budget."""
    per_call = float(np.median(call_times_ns(fn, 3, warmup=0))) / 1e9
    calls = min(s.latency_calls, max(s.min_latency_calls, int(s.latency_budget_s / per_call)))
    warmup = min(s.latency_warmup, max(1, int(0.1 * s.latency_budget_s / per_call)))
    return latency_summary(call_times_ns(fn, calls, warmup))


def _throughput(fn: Callable[[np.ndarray], object], data: np.ndarray, seconds_per_beat: float, key: dict,
                s: Settings) -> tuple[list[dict], list[dict]]:
    """Throughput cells over the batches, and the cells skipped because they are predicted over budget."""
    cells, skipped = [], []
    for batch in s.batches:
        predicted = seconds_per_beat * batch * (s.throughput_warmup + s.min_repeats)
        if predicted > s.cell_budget_s:
            skipped.append({**key, "batch": batch, "predicted_s": predicted,
                            "reason": f"predicted {predicted:.0f} s > budget {s.cell_budget_s:g} s"})
            continue
        row = throughput(functools.partial(fn, data[:batch]), batch, s.throughput_warmup, s.min_time_s,
                         s.min_repeats)
        cells.append({**key, "batch": batch, **row})
        seconds_per_beat = 1 / row["beats_per_s"]
    return cells, skipped


def measure_peers(peers: list[Peer], inputs: dict[str, np.ndarray], s: Settings, log: Callable[..., object]):
    """Latency at batch 1 and throughput over the batches for every peer and op; and the skipped cells."""
    latency, rates, skipped = [], [], []
    for peer in peers:
        peer.activate()
        for op, fn in peer.ops.items():
            data = inputs[INPUT_OF[op]]
            key = {"peer": peer.name, "op": op, "threads": peer.threads}
            lat = _latency(functools.partial(fn, data[:1]), s)
            latency.append({**key, "batch": 1, **lat})
            cells, over = _throughput(fn, data, lat["p50_us"] / 1e6, key, s)
            rates += cells
            skipped += over
            log(f"  {peer.name:<13} {op:<11} {peer.threads} thread(s): p50 {lat['p50_us']:9.1f} us at batch 1; "
                + ", ".join(f"{c['beats_per_s']:,.0f}" for c in cells) + " beats/s")
    return latency, rates, skipped
