"""How many wearers one core serves: the raw-signal paths as multiples of real time, the monitor's latency,
INT8 against FP32 and the peak memory of a day-long ``analyze``, measured in one run on the machine named
(best of several passes: the figures are ratios to real time or to FP32 taken side by side, not absolutes).

    python -m ecgae.benchmarks.serving BUNDLE HOURS   # the memory probe: a runtime-only child, one JSON line
"""

from __future__ import annotations

import cProfile
import json
import pstats
import sys
import time

import numpy as np

from ..runtime import Monitor
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


STAGES = (  # (name, file, function): where a raw signal's time goes, in the order the signal meets them
    ("pacing spikes", "pacing.py", "push"),
    ("band-pass filter and R-peak detector", "stream.py", "_track"),
    ("quality gate", "quality.py", "judge"),
    ("beat classes (templates)", "beatclass.py", "classify"),
    ("model (onnxruntime)", "~", "run"),
    ("features and scores", "wearer.py", "score_batch"),  # less the two before, which it calls
)


def stage_profile(fn) -> dict:
    """Where ``fn``'s time goes, by stage (cProfile's cumulative time of each stage's entry point; the rest is
    the glue between them), and how many Python-level calls it makes per beat (``fn`` returns the beats it
    settled): at one or a few beats per call, the fixed cost of each numpy call, not arithmetic, is what a
    stream pays for."""
    prof = cProfile.Profile()
    prof.enable()
    beats = len(fn())
    prof.disable()
    stats = pstats.Stats(prof).stats  # (file, line, function) -> (primitive calls, calls, own, cumulative, callers)
    total = sum(own for _, _, own, _, _ in stats.values())

    def cumulative(file: str, function: str) -> float:
        return sum(v[3] for (f, _, name), v in stats.items()
                   if f.endswith(file) and (name == function or (file == "~" and "onnxruntime" in name
                                                                   and name.endswith(f".{function}>"))))
    seconds = {name: cumulative(file, function) for name, file, function in STAGES}
    seconds["features and scores"] -= seconds["beat classes (templates)"] + seconds["model (onnxruntime)"]
    seconds["the rest (windows, gaps, glue)"] = total - sum(seconds.values())
    return {"total_s": total, "beats": beats, "calls_per_beat": sum(v[1] for v in stats.values()) / max(beats, 1),
            "stages": {k: {"share": v / total, "us_per_beat": 1e6 * v / max(beats, 1)} for k, v in seconds.items()}}


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
    prep = model.preprocessing
    lookahead, window = (prep.taps.size - 1) / 2 / prep.sample_rate, (prep.length - prep.pre) / prep.sample_rate
    latency_parts = {"filter look-ahead": lookahead, "window past the R peak": window,
                     "the next beat's detection and the block": figures["latency_p50_s"] - lookahead - window}
    speed = (edge_section or {}).get("speed", [])
    int8 = [r for r in speed if r["variant"] == "int8 .onnx" and r["op"] == "encode"]
    figures["int8_encode_vs_fp32"] = int8[0]["vs_fp32"] if int8 else None
    monitor_x = x[: int(monitor_s * fs)]

    def monitor_pass() -> list:
        monitor, events = Monitor(model, fs, profile=profile), []
        for i in range(0, monitor_x.size, 360):
            events += monitor.push(monitor_x[i : i + 360])
        return events + monitor.flush()
    profiles = {"analyze": stage_profile(lambda: model.analyze(x, fs, profile)) | {"signal_s": seconds},
                "monitor_360": stage_profile(monitor_pass) | {"signal_s": monitor_s}}
    day = run_child(__name__, [str(bundle), str(2.0 if quick else 24.0)])
    figures["day_peak_rss_mb"] = day["peak_rss_mb"]
    return {"machine": describe_machine(), "figures": figures, "day": day, "repeats": repeats,
            "monitor_signal_s": monitor_s, "profiles": profiles, "latency_parts": latency_parts}


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
    load = m.get("load_average_1m")
    return ["## Serving many wearers per core", "",
            f"Record 100's MLII (30 min) on one core of {m['cpu_model']} ({m['usable_cores']} usable cores, 1-min "
            f"load average {'unknown' if load is None else f'{load:.1f}'} at the start), default bundle; multiples "
            f"of real time, best of {d['repeats']} passes in this one run (the monitor over "
            f"{d['monitor_signal_s']:.0f} s of signal). The "
            f"memory probe is a runtime-only child that analyses record 100 tiled to {day['hours']:g} hours "
            f"({day['signal_mb']:.0f} MB of float64 signal, {day['beats']:,} beats).", "",
            *table(["path", "measured", "goal", "met"], rows), *_profile_lines(d)]


def _profile_lines(d: dict) -> list[str]:
    """The stage profile of ``analyze`` and the monitor (with a profile), and the time per beat each goal allows."""
    p = d.get("profiles")
    if not p:
        return []
    a, m = p["analyze"], p["monitor_360"]
    budget = {k: 1e6 / (GOALS[goal] * r["beats"] / r["signal_s"])
              for k, goal, r in (("analyze", "analyze_profile", a), ("monitor", "monitor_360", m))}
    rows = [[name, f"{a['stages'][name]['share']:.0%}", f"{a['stages'][name]['us_per_beat']:,.0f}",
             f"{m['stages'][name]['share']:.0%}", f"{m['stages'][name]['us_per_beat']:,.0f}"] for name in a["stages"]]
    rows.append(["total", "100%", f"{1e6 * a['total_s'] / a['beats']:,.0f}", "100%",
                 f"{1e6 * m['total_s'] / m['beats']:,.0f}"])
    rows.append(["what the goal allows", "", f"{budget['analyze']:,.0f}", "", f"{budget['monitor']:,.0f}"])
    parts = d.get("latency_parts") or {}
    latency = ("" if not parts else "The monitor's latency (p50) is "
               + ", ".join(f"{v:.2f} s {k}" for k, v in parts.items())
               + ": a 1-s verdict needs a causal (or short look-ahead) filter and a window that ends where the beat's "
               "own part ends, and so a model trained for them.")
    return ["", "### Where the time goes", "",
            "One pass of each under cProfile (which slows Python-level calls, so read the shares, not the "
            "times): `Model.analyze` of the 30-min record with the wearer's profile, and a `Monitor` with the same "
            "profile fed 360-sample blocks. A stage's time is its entry point's cumulative time; the rest is the "
            "glue between stages.", "",
            *table(["stage", "analyze: share", "µs per beat", "monitor: share", "µs per beat"], rows), "",
            f"Python-level calls per beat: {a['calls_per_beat']:,.0f} in `analyze`, {m['calls_per_beat']:,.0f} in "
            "the monitor. Every stage is numpy on a beat's worth of samples or less per call, so in a stream, "
            "where a push settles about one beat, the fixed cost of each call (about a microsecond or more) is "
            "what is paid, and the goals leave the time per beat in the table's last row for all of them. "
            "Reaching them needs fewer calls per beat, not faster arithmetic: several wearers' beats through "
            "each numpy call (a gateway's streams side by side), or the per-sample stages compiled, as "
            "`ecgae emit-c` does for the model.", *(["", latency] if latency else [])]


if __name__ == "__main__":
    print(json.dumps(day_probe(sys.argv[1], float(sys.argv[2]))))

