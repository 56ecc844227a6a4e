"""``python -m ecgae.archive.bench BUNDLE --out DIR``: archive-scale throughput, measured.

Builds an archive of >= 50 recordings from the project's real records (record 100's MLII and V5, PTB
s0010_re, Challenge 2015 a103l): slices, noisy and resampled copies, as .npy, WFDB and EDF. Scores it
in-process, on Ray with one actor and on Ray with two, each leg in a fresh process so peak RSS is the
leg's own; then one long recording in-process, the basis of the paper estimate for 100,000 24-hour
recordings. Writes archive_bench.json and archive_bench.md (the report section).
"""

from __future__ import annotations

import argparse
import multiprocessing
import time
from importlib.resources import files
from pathlib import Path

import numpy as np

from ..benchmarks.machine import describe_machine
from ..benchmarks.markdown import values_table as table
from ..runtime.io import atomic_write_bytes, write_json
from . import engine, store
from .sources import expand_inputs

FS = 360.0
SEGMENT = 432_000  # 20 minutes at 360 Hz: enough work per recording that start-up does not hide scaling
STRIDE = 43_200  # segments start 2 minutes apart in the 30-minute record (they overlap)
ARCHIVE_SIZE = 100_000
DAY_HOURS = 24.0


def _mlii() -> np.ndarray:
    with np.load(files("ecgae.training") / "data" / "bundled.npz", allow_pickle=False) as z:
        return (z["mitdb_100_adc"] - z["mitdb_100_baseline"]) / z["mitdb_100_gain"]


def _noisy(x: np.ndarray, fs: float, rng: np.random.Generator) -> np.ndarray:
    """White noise (0.05 mV) and a 0.3 Hz baseline wander (0.1 mV): what electrodes add in daily life."""
    t = np.arange(x.shape[0]) / fs
    wander = 0.1 * np.sin(2 * np.pi * 0.3 * t + rng.uniform(0, 2 * np.pi))
    return x + 0.05 * rng.standard_normal(x.shape) + (wander[:, None] if x.ndim == 2 else wander)


def _edf(path: Path, signals: np.ndarray, fs: float, labels: list[str]) -> None:
    import edfio

    whole = int(signals.shape[0] // fs * fs)  # EDF data records are whole seconds here
    edfio.Edf([edfio.EdfSignal(signals[:whole, i], sampling_frequency=fs, label=label, physical_dimension="mV")
               for i, label in enumerate(labels)]).write(path)


def _wfdb(folder: Path, name: str, signals: np.ndarray, fs: float, labels: list[str]) -> None:
    import wfdb

    wfdb.wrsamp(name, fs=fs, units=["mV"] * len(labels), sig_name=labels, p_signal=signals,
                fmt=["16"] * len(labels), write_dir=str(folder))


def build_archive(root: Path, quick: bool = False) -> list[str]:
    """Write the benchmark archive under ``root``; returns the INPUT list for it (``quick``: 12 recordings).

    51 recordings, 14 hours of ECG: 20-minute segments of record 100 (MLII, V5) as .npy, noisy .npy,
    250 Hz EDF, noisy 500 Hz EDF, noisy WFDB and V5 WFDB; a103l and s0010_re as EDF with all their leads
    and noisy copies; the whole 30 minutes as WFDB (one and two leads) and noisy EDF.
    """
    from scipy.signal import resample_poly

    from ..training.build_others import load_record

    rng = np.random.default_rng(0)
    for sub in ("npy", "edf", "wfdb"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    mlii, v5 = _mlii(), load_record("mitdb_100_v5")[0][:, 0]
    starts = [i * STRIDE for i in range(2 if quick else 6)]
    for i, start in enumerate(starts):
        seg = mlii[start : start + SEGMENT]
        np.save(root / "npy" / f"mlii_{i}.npy", seg)
        np.save(root / "npy" / f"mlii_{i}_noisy.npy", _noisy(seg, FS, rng))
        _edf(root / "edf" / f"mlii_{i}_250hz.edf", resample_poly(seg, 25, 36)[:, None], 250.0, ["ECG MLII"])
        _edf(root / "edf" / f"mlii_{i}_500hz_noisy.edf", _noisy(resample_poly(seg, 25, 18), 500.0, rng)[:, None],
             500.0, ["ECG MLII"])
        _wfdb(root / "wfdb", f"mlii_{i}_noisy", _noisy(seg, FS, rng)[:, None], FS, ["MLII"])
        _wfdb(root / "wfdb", f"v5_{i}", v5[start : start + SEGMENT, None], FS, ["V5"])
    if not quick:
        for label, (key, copies) in {"icu": ("c2015_a103l", 6), "ptb": ("ptb_s0010_re", 6)}.items():
            signals, fs, leads = load_record(key)
            for c in range(copies):
                _edf(root / "edf" / f"{label}_{c}.edf", signals if c == 0 else _noisy(signals, fs, rng), fs, leads)
        _wfdb(root / "wfdb", "mlii_30min", mlii[:, None], FS, ["MLII"])
        _wfdb(root / "wfdb", "mlii_v5_30min", np.column_stack([v5, mlii]), FS, ["V5", "MLII"])
        _edf(root / "edf" / "mlii_30min_noisy.edf", _noisy(mlii, FS, rng)[:, None], FS, ["ECG MLII"])
    return [str(root / sub) for sub in ("npy", "edf", "wfdb")]


def _leg(bundle: str, inputs: list[str], out: str, workers: int, use_ray: bool) -> dict:
    """One timed run, in its own (spawned) process: status rows, start-up and wall times."""
    recordings = expand_inputs(inputs)
    options = engine.Options(bundle, out, store.bundle_sha256(bundle), fs=FS)
    t0 = time.perf_counter()
    started = engine.start_ray(workers, None) if use_ray else False
    t_init = time.perf_counter()
    stamps: list[float] = []
    try:
        # Ray is already up (and timed): "auto" makes run() use it without starting another
        rows = engine.run(recordings, options, workers=workers if use_ray else 1,
                          ray_address="auto" if use_ray else None, on_row=lambda _: stamps.append(time.perf_counter()))
    finally:
        if started:
            engine.import_ray().shutdown()
    return {"rows": rows, "init_s": t_init - t0, "first_row_s": stamps[0] - t_init, "wall_s": stamps[-1] - t_init}


def _long(bundle: str, root: Path, hours: float) -> dict:
    """One ``hours``-long recording (record 100 tiled, fresh noise on each copy) scored in-process."""
    mlii, rng = _mlii(), np.random.default_rng(1)
    n = int(hours * 3600 * FS)
    signal = np.concatenate([_noisy(mlii, FS, rng) for _ in range(int(np.ceil(n / mlii.size)))])[:n]
    path = root / "long" / "long.npy"
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path, signal)
    del signal
    result = _leg(bundle, [str(path)], str(root / "long-out"), 1, False)
    path.unlink()
    return result | {"hours": hours}


def _in_child(fn, *args):
    """Run ``fn`` in a fresh spawned interpreter: its peak RSS is then the leg's alone."""
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        return pool.apply(fn, args)


def measure(bundle: str | Path, root: Path, quick: bool = False, long_hours: float = DAY_HOURS) -> dict:
    bundle = str(Path(bundle).resolve())
    inputs = build_archive(root / "archive", quick)
    legs = {"in-process, 1 worker": (1, False)}
    if not quick:
        legs |= {"Ray Data, 1 actor": (1, True), "Ray Data, 2 actors": (2, True)}
    results = {}
    for name, (workers, use_ray) in legs.items():
        leg = _in_child(_leg, bundle, inputs, str(root / f"out-{workers}-{int(use_ray)}"), workers, use_ray)
        rows = leg.pop("rows")
        scored = [r for r in rows if r["status"] in ("scored", engine.MOSTLY_UNUSABLE)]
        rss: dict[int, float] = {}
        for r in rows:
            rss[r["pid"]] = max(rss.get(r["pid"], 0.0), r["rss_mb"])
        ecg_hours = sum(r["duration_s"] for r in scored) / 3600
        results[name] = leg | {
            "workers": workers, "ray": use_ray, "records": len(rows), "scored": len(scored),
            "failed": [(r["record"], r["error"]) for r in rows if r["status"] == "failed"],
            "beats": sum(r["beats"] for r in scored), "ecg_hours": ecg_hours,
            "records_per_s": len(rows) / leg["wall_s"], "beats_per_s": sum(r["beats"] for r in scored) / leg["wall_s"],
            "busy_s": sum(r["seconds"] for r in rows), "cpu_s": sum(r["cpu_seconds"] for r in rows),
            "peak_rss_mb_per_worker": sorted(rss.values())}
    base = results["in-process, 1 worker"]
    for r in results.values():
        r["scaling_efficiency"] = r["records_per_s"] / (r["workers"] * base["records_per_s"])
        r["busy_ratio"] = base["busy_s"] / r["busy_s"]  # < 1: each recording took longer than in-process
        r["cpu_ratio"] = base["cpu_s"] / r["cpu_s"]  # < 1: each recording cost more CPU than in-process
    out = {"machine": describe_machine(), "bundle": bundle, "quick": quick, "legs": results}
    if long_hours > 0:
        long = _in_child(_long, bundle, root, long_hours)
        row = long.pop("rows")[0]
        out["long"] = long | {"beats": row["beats"], "seconds": row["seconds"], "cpu_seconds": row["cpu_seconds"],
                              "peak_rss_mb": row["rss_mb"], "error": row.get("error")}
        out["paper"] = paper_estimate(out)
    return out


def paper_estimate(result: dict) -> dict:
    """100,000 24-hour recordings from the CPU seconds of the long recording (scaled linearly to 24 h: CPU
    time, unlike wall time, does not count other processes' turns on a shared machine) and the measured
    change in CPU per recording when two actors run side by side (start-up, seconds once per run, is
    negligible at this scale)."""
    long = result["long"]
    per_day = long["cpu_seconds"] * DAY_HOURS / long["hours"]
    alone = ARCHIVE_SIZE * per_day / 3600
    efficiency = min(1.0, result["legs"].get("Ray Data, 2 actors", {}).get("cpu_ratio", 1.0))
    return {"seconds_per_24h_recording_per_core": per_day, "core_hours_alone": alone,
            "efficiency_assumed": efficiency, "core_hours": alone / efficiency,
            "wall_hours": {cores: alone / efficiency / cores for cores in (2, 64, 1000)},
            "peak_rss_mb_per_worker": long["peak_rss_mb"]}


def markdown(r: dict) -> str:
    """The report section: legs, Ray's start-up cost, the long recording and the paper estimate."""
    legs = r["legs"]
    rows = [[name, f"{x['records']} ({x['scored']} scored)", f"{x['beats']:,}", f"{x['ecg_hours']:.1f}",
             f"{x['wall_s']:.1f}", f"{x['records_per_s']:.2f}", f"{x['beats_per_s']:,.0f}",
             f"{x['scaling_efficiency']:.2f}", f"{x['busy_s']:.1f} ({x['busy_ratio']:.2f})",
             f"{x['cpu_s']:.1f} ({x['cpu_ratio']:.2f})",
             ", ".join(f"{m:.0f}" for m in x["peak_rss_mb_per_worker"]), f"{x['init_s']:.1f}",
             f"{x['first_row_s']:.1f}"] for name, x in legs.items()]
    m = r["machine"]
    parts = [
        "## Archive-scale scoring (`ecgae score-archive`)",
        f"Measured by `python -m ecgae.archive.bench` on {m['cpu_model']} ({m['usable_cores']} usable cores, load "
        f"{m['load_average_1m']:.1f} at start), one bundle, one run; each leg in a fresh process. The archive: "
        f"{legs['in-process, 1 worker']['records']} recordings made from record 100 (MLII, V5)"
        + ("" if r["quick"] else ", PTB s0010_re and Challenge 2015 a103l") + ": 20-minute segments, noisy copies, "
        "copies resampled to 250 and 500 Hz, as .npy, WFDB and EDF. Rates are over the wall time after start-up "
        "(Ray's `init` is its own column); scaling efficiency = rate / (workers x in-process rate); "
        "worker busy s = the sum over recordings of the wall time a worker spent on each (read, score, write), "
        "worker CPU s the same in CPU time. Under load from other processes wall times stretch; CPU times do not.",
        table(["engine", "recordings", "beats", "ECG hours", "wall s", "records/s", "beats/s",
               "scaling efficiency", "worker busy s (in-process / this)", "worker CPU s (ditto)",
               "peak RSS per worker (MB)", "Ray init s",
               "first result s"], rows),
    ]
    failed = legs["in-process, 1 worker"]["failed"]
    if failed:
        parts.append(f"{len(failed)} recordings failed and went to errors.jsonl (the others went on): "
                     + "; ".join(f"`{name}`: {err}" for name, err in failed[:3]))
    if "paper" in r:
        p, long = r["paper"], r["long"]
        parts += [
            f"One {long['hours']:g}-hour recording (record 100 tiled with fresh noise, {long['beats']:,} beats), "
            f"in-process: {long['seconds']:.1f} s wall, {long['cpu_seconds']:.1f} s CPU, peak RSS "
            f"{long['peak_rss_mb']:.0f} MB.",
            f"On paper, 100,000 24-hour recordings: {p['seconds_per_24h_recording_per_core']:.0f} CPU s per "
            f"recording, {p['core_hours_alone']:,.0f} core-hours; with every recording costing "
            f"{1 / p['efficiency_assumed']:.2f}x the CPU of one alone (measured with 2 actors on 2 cores), "
            f"**{p['core_hours']:,.0f} core-hours**: "
            + ", ".join(f"{h:,.1f} h on {c} cores" for c, h in p["wall_hours"].items())
            + f", with about {p['peak_rss_mb_per_worker']:.0f} MB of memory per worker (the long recording is "
            "read from .npy; the archive legs above include EDF and WFDB reading).",
        ]
    return "\n\n".join(parts) + "\n"


def write_bench(bundle: str | Path, out: Path, quick: bool = False, long_hours: float = DAY_HOURS) -> str:
    """Measure, write archive_bench.json and archive_bench.md (the report section) into ``out``; return the
    Markdown. ``quick`` (the demo's test mode): 12 recordings, in-process only, no long recording."""
    result = measure(bundle, out, quick, 0.0 if quick else long_hours)
    write_json(out / "archive_bench.json", result)
    text = markdown(result)
    atomic_write_bytes(out / "archive_bench.md", text.encode())
    return text


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m ecgae.archive.bench", description=__doc__.splitlines()[0])
    ap.add_argument("bundle", metavar="BUNDLE", help="bundle of a model trained on raw 360 Hz signals")
    ap.add_argument("--out", type=Path, required=True, metavar="DIR")
    ap.add_argument("--quick", action="store_true", help="12 recordings, in-process only, no long recording")
    ap.add_argument("--long-hours", type=float, default=DAY_HOURS, help="length of the long recording (0: skip)")
    args = ap.parse_args(argv)
    print(write_bench(args.bundle, args.out, args.quick, args.long_hours))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
