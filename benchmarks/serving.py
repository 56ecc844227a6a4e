"""How many wearers one core serves: the raw-signal paths as multiples of real time, the monitor's latency,
INT8 against FP32 and the peak memory of a day-long ``analyze``, measured in one run on the machine named
(best of several passes: the figures are ratios to real time or to FP32 taken side by side, not absolutes).

    python -m ecgae.benchmarks.serving BUNDLE HOURS   # the memory probe: a runtime-only child, one JSON line
"""

from __future__ import annotations

import json
import sys
import time

import numpy as np

from .detection import record_100
from .machine import describe_machine
from .markdown import table
from .monitor import cost

GOALS = {"raw_no_gate": None, "analyze_profile": 30_000.0, "monitor_360": 20_000.0, "monitor_36": 5_000.0,
         "latency_p50_s": 1.0, "int8_encode_vs_fp32": 1.0, "day_peak_rss_mb": 500.0}


def _best_x(fn, seconds: float, repeats: int) -> float:
    """Signal seconds per wall second of ``fn()``, best of ``repeats`` (after one warm-up call)."""
    fn()
    best = min(_timed(fn) for _ in range(repeats))
    return seconds / best


def _timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def day_probe(bundle: str, hours: float) -> dict:
    """In this (runtime-only) process: ``analyze`` of record 100 tiled to ``hours`` (float64, as a reader gives
    it); peak RSS before and after."""
    from ..runtime import Model
    from .memory import vm_hwm_mb

    model = Model.load(bundle)
    leads, fs, _, _ = record_100()
    signal = np.resize(leads["MLII"], int(hours * 3600 * fs))
    del leads
    before = vm_hwm_mb()
    beats = len(model.analyze(signal, fs))
    return {"hours": hours, "beats": beats, "signal_mb": signal.nbytes / 2**20, "peak_before_mb": before,
            "peak_rss_mb": vm_hwm_mb(), "torch_imported": "torch" in sys.modules}


def measure(model, bundle: str, edge_section: dict | None, quick: bool = False) -> dict:
    """Every figure of the serving table, in this process except the memory probe."""
    from .child import run_child

    leads, fs, _, _ = record_100()
    x = leads["MLII"]
    seconds, repeats = x.size / fs, 2 if quick else 5
    profile = model.calibrate(x, fs, seconds=300)
    figures = {
        "raw_no_gate": _best_x(lambda: model.score(model.beats_from_signal(x, fs)[0]), seconds, repeats),
        "analyze_profile": _best_x(lambda: model.analyze(x, fs, profile), seconds, repeats),
    }
    monitor_s = 300.0 if quick else seconds
    runs = {block: [cost(model, x, fs, block, monitor_s) for _ in range(repeats)] for block in (360, 36)}
    for block, rows in runs.items():
        figures[f"monitor_{block}"] = max(r["x_real_time"] for r in rows)
    figures["latency_p50_s"] = runs[360][0]["latency_s"]["p50"]
    speed = (edge_section or {}).get("speed", [])
    int8 = [r for r in speed if r["variant"] == "int8 .onnx" and r["op"] == "encode"]
    figures["int8_encode_vs_fp32"] = int8[0]["vs_fp32"] if int8 else None
    day = run_child(__name__, [str(bundle), str(2.0 if quick else 24.0)])
    figures["day_peak_rss_mb"] = day["peak_rss_mb"]
    return {"machine": describe_machine(), "figures": figures, "day": day, "repeats": repeats,
            "monitor_signal_s": monitor_s}


def _met(key: str, value: float | None) -> str:
    goal = GOALS[key]
    if goal is None or value is None:
        return "—"
    lower_is_better = key in ("latency_p50_s", "day_peak_rss_mb")
    return "yes" if (value <= goal if lower_is_better else value >= goal) else "**no**"


def _x(value: float | None) -> str:
    return "—" if value is None else f"{value:,.0f}x"


def markdown(d: dict) -> list[str]:
    f, m, day = d["figures"], d["machine"], d["day"]
    rows = [
        ["`beats_from_signal` + `score` (no gate, no profile)", _x(f["raw_no_gate"]), "keep", "—"],
        ["`Model.analyze` with a wearer profile", _x(f["analyze_profile"]), ">= 30,000x",
         _met("analyze_profile", f["analyze_profile"])],
        ["`Monitor.push`, 360-sample blocks (1 s)", _x(f["monitor_360"]), ">= 20,000x",
         _met("monitor_360", f["monitor_360"])],
        ["`Monitor.push`, 36-sample blocks", _x(f["monitor_36"]), ">= 5,000x", _met("monitor_36", f["monitor_36"])],
        ["monitor latency, beat to event, p50 (360-sample blocks)", f"{f['latency_p50_s']:.2f} s", "<= 1.0 s",
         _met("latency_p50_s", f["latency_p50_s"])],
        ["INT8 vs FP32, batch-256 encode throughput",
         "—" if f["int8_encode_vs_fp32"] is None else f"{f['int8_encode_vs_fp32']:.2f}x", ">= 1.0x",
         _met("int8_encode_vs_fp32", f["int8_encode_vs_fp32"])],
        [f"peak memory of `analyze` on a {day['hours']:g}-hour recording", f"{f['day_peak_rss_mb']:,.0f} MB",
         "<= 500 MB", _met("day_peak_rss_mb", f["day_peak_rss_mb"])],
    ]
    return ["## Serving many wearers per core", "",
            f"Record 100's MLII (30 min) on one core of {m['cpu_model']} ({m['usable_cores']} usable cores, 1-min "
            f"load average {m.get('load_average_1m')} at the start), default bundle; multiples of real time, best of "
            f"{d['repeats']} passes in this one run (the monitor over {d['monitor_signal_s']:.0f} s of signal). The "
            f"memory probe is a runtime-only child that analyses record 100 tiled to {day['hours']:g} hours "
            f"({day['signal_mb']:.0f} MB of float64 signal, {day['beats']:,} beats).", "",
            *table(["path", "measured", "goal", "met"], rows)]


if __name__ == "__main__":
    print(json.dumps(day_probe(sys.argv[1], float(sys.argv[2]))))
