"""The streaming monitor's figures: algorithmic latency, cost per second of signal at several block sizes,
and a long soak (record 100 looped) for memory growth and r-peak drift."""

from __future__ import annotations

import resource
import time

import numpy as np

from ..runtime.monitor import Monitor
from .detection import record_100

BLOCKS = (1, 36, 360, 3600)


def _rss_mb() -> float:
    """Current resident set size (Linux /proc; the peak from getrusage elsewhere)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * resource.getpagesize() / 2**20
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def cost(model, x: np.ndarray, fs: float, block: int, seconds: float) -> dict:
    """One pass of ``seconds`` of ``x`` through a fresh monitor in blocks of ``block`` samples."""
    x = x[: int(seconds * fs)]
    monitor = Monitor(model, fs)
    events = []
    t0 = time.perf_counter()
    for i in range(0, x.size, block):
        events += monitor.push(x[i : i + block])
    events += monitor.flush()
    wall = time.perf_counter() - t0
    latency = np.array([e.latency for e in events])
    return {"block": block, "signal_seconds": x.size / fs, "wall_seconds": wall, "x_real_time": x.size / fs / wall,
            "us_per_push": wall / -(-x.size // block) * 1e6, "beats": len(events),
            "latency_s": {q: float(np.percentile(latency, p)) for q, p in (("p50", 50), ("p90", 90), ("p99", 99))}
            | {"max_after_start": float(latency[latency.size // 10 :].max()) if latency.size > 10 else None}}


def soak(model, x: np.ndarray, fs: float, hours: float, block: int = 3600) -> dict:
    """Record ``x`` looped for ``hours`` through one monitor: RSS growth after the first loop, and whether
    every loop's beats sit at the first loop's positions plus the loop's offset (no index drift)."""
    monitor = Monitor(model, fs)
    loops = max(2, int(np.ceil(hours * 3600 * fs / x.size)))
    per_loop: list[list[int]] = []
    rss = []
    t0 = time.perf_counter()
    for _ in range(loops):
        peaks = []
        for i in range(0, x.size, block):
            peaks += [e.r_peak for e in monitor.push(x[i : i + block])]
        per_loop.append(peaks)
        rss.append(_rss_mb())
    per_loop[-1] += [e.r_peak for e in monitor.flush()]
    wall = time.perf_counter() - t0
    # beats away from the loop seams (the first and last 20 s) must repeat exactly, shifted by k loops
    margin = int(20 * fs)
    ref = np.asarray(per_loop[1]) - x.size
    ref = ref[(ref > margin) & (ref < x.size - margin)]
    drift = []
    for k, peaks in enumerate(per_loop[1:-1], start=1):
        p = np.asarray(peaks) - k * x.size
        p = p[(p > margin) & (p < x.size - margin)]
        drift.append(bool(p.size == ref.size and np.array_equal(p, ref)))
    return {"hours": loops * x.size / fs / 3600, "loops": loops, "block": block, "wall_seconds": wall,
            "beats": sum(len(p) for p in per_loop), "rss_mb_after_first_loop": rss[0], "rss_mb_end": rss[-1],
            "rss_growth_mb": rss[-1] - rss[0], "loops_identical": all(drift), "loops_compared": len(drift)}


def measure(model, quick: bool = False) -> dict:
    """Latency and cost at every block size, and the soak (2 h, 4 loops, in quick mode; 24 h otherwise)."""
    leads, fs, _, _ = record_100()
    x = leads["MLII"]
    seconds = {1: 60 if quick else 300, 36: 120 if quick else 600, 360: 300 if quick else 1800, 3600: 1800}
    return {"blocks": [cost(model, x, fs, b, seconds[b]) for b in BLOCKS],
            "soak": soak(model, x, fs, 2.0 if quick else 24.0)}


def markdown(d: dict) -> list[str]:
    lines = ["## Streaming monitor", "",
             "`ecgae.runtime.Monitor` fed record 100's MLII in blocks of the given size (one core; the monitor "
             "reports a beat once nothing later can change it, so its events equal `Model.analyze`'s). Latency "
             "is the signal received after a beat's R peak when its event came out: the band-pass filter's "
             "look-ahead (half of its 2-s taps), then the next R peak's detection (an early next beat ends the "
             "beat's own part of the window; the detector settles a peak once the beat after it is found, or "
             "about half an interval later when none can come early enough to make it noise, and a search-back "
             "can still add one until then), at least the window's 300 samples after R, "
             "and the wait for the next block.", "",
             "| block (samples) | signal | x real time | us per push | beats | latency p50 / p90 / p99 s |",
             "|---|---|---|---|---|---|"]
    for r in d["blocks"]:
        lat = r["latency_s"]
        lines.append(f"| {r['block']} | {r['signal_seconds']:.0f} s | {r['x_real_time']:,.0f}x | "
                     f"{r['us_per_push']:,.0f} | {r['beats']} | "
                     f"{lat['p50']:.2f} / {lat['p90']:.2f} / {lat['p99']:.2f} |")
    s = d["soak"]
    lines += ["", f"Soak: {s['hours']:.1f} h of signal (record 100 looped {s['loops']} times, {s['beats']:,} beats) "
              f"through one monitor in {s['wall_seconds']:.0f} s: RSS {s['rss_mb_after_first_loop']:.1f} MB after "
              f"the first loop, {s['rss_mb_end']:.1f} MB at the end (growth **{s['rss_growth_mb']:+.2f} MB**); "
              f"beats of every loop at the first loop's positions plus the loop offset: "
              f"**{'yes' if s['loops_identical'] else 'no'}** ({s['loops_compared']} loops compared)."]
    return lines
