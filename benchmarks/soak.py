"""Soak and load figures: one Model under 8 threads, memory over a million calls, a day of signal through
one Monitor, kill -9 mid-write, and the malformed-input campaign at full size.

    python -m ecgae.benchmarks.soak BUNDLE_ROOT --full    # what `make soak` runs (BUNDLE_ROOT/ae, vae, mitdb)

Prints a Markdown table and exits 1 when a target is missed. ``tests/test_soak.py`` runs the same
functions at a small size inside ``make test``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from ..runtime import EcgaeError, Model
from ..runtime.io import atomic_write_bytes, write_array
from ..runtime.wearer import WearerProfile, model_graphs
from .machine import describe_machine
from .markdown import table
from .quality import record_100

OPS = ("encode", "encoder_outputs", "decode", "reconstruct", "score", "is_anomalous", "sample")


def _make_call(model: Model, rng: np.random.Generator) -> tuple[str, object]:
    """One mixed call with an input of 1 to 150 rows (across the 64-row chunk boundary)."""
    op, rows = str(rng.choice(OPS)), int(rng.integers(1, 151))
    if op == "decode":
        return op, rng.standard_normal((rows, model.latent_dim), dtype=np.float32)
    if op == "sample":
        return op, (rows, int(rng.integers(0, 2**31)))
    return op, rng.standard_normal((rows, model.input_length), dtype=np.float32)


def _digest(model: Model, op: str, arg: object) -> bytes:
    """sha256 of every output of one call: results are compared exactly without being kept in memory."""
    if op == "sample":
        n, seed = arg
        outputs = [model.sample(n, seed=seed)]
    elif op == "is_anomalous":
        outputs = [model.is_anomalous(arg, threshold=0.5)]
    else:
        out = getattr(model, op)(arg)
        outputs = list(out.values()) if isinstance(out, dict) else [out]
    h = hashlib.sha256()
    for a in outputs:
        h.update(str((a.shape, a.dtype)).encode())
        h.update(np.ascontiguousarray(a).tobytes())
    return h.digest()


def _digests(model: Model, seed: int, calls: int) -> list[bytes]:
    """The digests of ``calls`` mixed calls drawn from ``seed``; inputs are made as they are needed."""
    rng = np.random.default_rng(seed)
    return [_digest(model, *_make_call(model, rng)) for _ in range(calls)]


def threads_vs_sequential(bundle: str | os.PathLike, threads: int = 8, calls: int = 10_000) -> dict:
    """``threads`` threads each make ``calls`` mixed calls on one shared Model; every result must equal,
    bit for bit, the same call made sequentially."""
    model = Model.load(bundle)
    expected = [_digests(model, seed, calls) for seed in range(threads)]
    got: list[list[bytes]] = [[] for _ in range(threads)]
    errors: list[BaseException] = []
    barrier = threading.Barrier(threads)

    def work(i: int) -> None:
        try:
            barrier.wait()
            got[i] = _digests(model, i, calls)
        except BaseException as e:  # reported below, not lost in the thread
            errors.append(e)

    start = time.perf_counter()
    pool = [threading.Thread(target=work, args=(i,)) for i in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    seconds = time.perf_counter() - start
    mismatches = sum(e != g for exp, gg in zip(expected, got) for e, g in zip(exp, gg))
    mismatches += sum(len(exp) - len(gg) for exp, gg in zip(expected, got))  # calls a failed thread never made
    return {"threads": threads, "calls": threads * calls, "mismatches": mismatches,
            "errors": [repr(e) for e in errors], "seconds": round(seconds, 1)}


def _vm_rss_kb() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise OSError("no VmRSS in /proc/self/status")


def rss_probe(bundle: str, calls: int, warmup: int) -> dict:
    """In this process: ``warmup`` score calls, then ``calls`` more; RSS before and after (Linux)."""
    model = Model.load(bundle)
    beat = np.random.default_rng(0).standard_normal((1, model.input_length), dtype=np.float32)
    for _ in range(warmup):
        model.score(beat)
    before = _vm_rss_kb()
    start = time.perf_counter()
    for _ in range(calls):
        model.score(beat)
    seconds = time.perf_counter() - start
    after = _vm_rss_kb()
    return {"calls": calls, "warmup": warmup, "rss_before_mb": before / 1024, "rss_after_mb": after / 1024,
            "growth_mb": (after - before) / 1024, "us_per_call": 1e6 * seconds / calls}


def rss_growth(bundle: str | os.PathLike, calls: int = 1_000_000, warmup: int = 20_000) -> dict:
    """:func:`rss_probe` in a fresh runtime-only child, so nothing else this process holds moves RSS."""
    code = ("import json, sys; from ecgae.benchmarks.soak import rss_probe; "
            "print(json.dumps(rss_probe(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]))))")
    done = subprocess.run([sys.executable, "-c", code, str(bundle), str(calls), str(warmup)],
                          capture_output=True, text=True, check=True)
    return json.loads(done.stdout)


def monitor_probe(bundle: str, hours: float, block: int = 360) -> dict:
    """In this process: record 100 looped for ``hours`` through one Monitor in ``block``-sample pushes, each event
    compared on the fly with ``Model.analyze`` of the same looped recording (computed first, so that neither it
    nor the events are held while RSS is watched); RSS after the first hour (a quarter of a shorter run) and
    at the end."""
    from ..runtime.monitor import Monitor

    model = Model.load(bundle)
    x, fs, _ = record_100()
    signal = np.resize(x, int(hours * 3600 * fs))
    start = time.process_time()
    want = model.analyze(signal, fs)
    analyze_cpu = time.process_time() - start
    monitor, i, mismatches = Monitor(model, fs), 0, 0
    mark = min(int(3600 * fs), signal.size // 4) // block * block
    rss_mark = None
    start = time.process_time()
    for at in range(0, signal.size + block, block):
        events = monitor.push(signal[at : at + block]) if at < signal.size else monitor.flush()
        for e in events:
            same = (i < len(want) and e.r_peak == want.r_peak[i] and e.flag == want.flag[i]
                    and e.usable == want.usable[i] and e.reason == want.reason[i]
                    and np.allclose(e.score, want.score[i], rtol=0, atol=1e-5, equal_nan=True)
                    and np.allclose(e.z, want.z[i], rtol=0, atol=1e-5, equal_nan=True))
            mismatches += not same
            i += 1
        if at + block == mark:
            rss_mark = _vm_rss_kb()
    monitor_cpu = time.process_time() - start
    end = _vm_rss_kb()
    return {"hours": signal.size / fs / 3600, "block": block, "events": i, "analyze_beats": len(want),
            "mismatches": mismatches + abs(i - len(want)), "rss_after_mark_mb": rss_mark / 1024,
            "mark_hours": mark / fs / 3600, "rss_end_mb": end / 1024, "growth_mb": (end - rss_mark) / 1024,
            "monitor_x_real_time": signal.size / fs / monitor_cpu,
            "analyze_x_real_time": signal.size / fs / analyze_cpu,
            "torch_imported": "torch" in sys.modules, "onnx_imported": "onnx" in sys.modules}


def monitor_day(bundle: str | os.PathLike, hours: float = 24.0) -> dict:
    """:func:`monitor_probe` in a fresh runtime-only child (no torch, no onnx: it says so)."""
    code = ("import json, sys; from ecgae.benchmarks.soak import monitor_probe; "
            "print(json.dumps(monitor_probe(sys.argv[1], float(sys.argv[2]))))")
    done = subprocess.run([sys.executable, "-c", code, str(bundle), str(hours)], capture_output=True, text=True,
                          check=True)
    return json.loads(done.stdout)


def _tree(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()} if folder.is_dir() else {}


def kill_during(argv: list[str], target: Path, good: Callable[[Path], bool], trials: int, seed: int = 0,
                reset: Callable[[], None] | None = None) -> dict:
    """Run ``argv`` (which rewrites ``target``) ``trials`` times, each killed with SIGKILL at a random moment
    of its usual run time; after every kill ``target`` must be unchanged or completely new (``good``).
    ``reset`` puts the older version back before each run, so that a finished run shows as replaced."""
    rng = np.random.default_rng(seed)
    start = time.perf_counter()
    subprocess.run(argv, check=True, capture_output=True)
    duration = time.perf_counter() - start
    outcomes = {"unchanged": 0, "replaced": 0, "damaged": 0}
    for _ in range(trials):
        if reset is not None:
            reset()
        before = _tree(target) if target.is_dir() else target.read_bytes()
        proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(float(rng.uniform(0.5, 1.3) * duration))  # most kills near the end, where the file is written
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        after = _tree(target) if target.is_dir() else (target.read_bytes() if target.is_file() else b"")
        if after == before:
            outcomes["unchanged"] += 1
        else:
            try:
                outcomes["replaced" if good(target) else "damaged"] += 1
            except EcgaeError:
                outcomes["damaged"] += 1
    leftovers = [p.name for p in target.parent.iterdir() if p.name.startswith(f".{target.name}.")]
    return {"trials": trials, **outcomes, "run_seconds": round(duration, 2), "hidden_leftovers": len(leftovers)}


def kill_score(bundle: str | os.PathLike, trials: int, root: Path) -> dict:
    """kill -9 during ``ecgae score --out``: the previous scores file stays whole."""
    model = Model.load(bundle)
    beats = np.random.default_rng(0).standard_normal((20_000, model.input_length), dtype=np.float32)
    write_array(root / "beats.npy", beats)
    out = root / "scores.csv"
    argv = [sys.executable, "-m", "ecgae.cli", "score", str(bundle), str(root / "beats.npy"), "--out", str(out),
            "--threshold", "1"]
    complete = len(beats)

    def good(path: Path) -> bool:  # every beat's row, below the header row
        return path.read_text().count("\n") == complete + 1
    return kill_during(argv, out, good, trials, reset=lambda: write_array(out, np.zeros((3, 3))))  # an older result


def kill_calibrate(bundle: str | os.PathLike, trials: int, root: Path) -> dict:
    """kill -9 during ``ecgae calibrate --out``: the previous wearer profile stays whole (a raw-signal bundle)."""
    ecg, fs, _ = record_100()
    write_array(root / "ecg.npy", ecg[: int(180 * fs)])
    out = root / "wearer.json"
    argv = [sys.executable, "-m", "ecgae.cli", "calibrate", str(bundle), str(root / "ecg.npy"), "--fs", str(fs),
            "--out", str(out)]
    subprocess.run([*argv, "--seconds", "60"], check=True, capture_output=True)
    older = out.read_bytes()  # an older profile (another baseline), so that a finished run shows as replaced
    model = Model.load(bundle)

    def good(path: Path) -> bool:
        WearerProfile.load(path).check_bundle(model_graphs(model), model.input_length, model.latent_dim)
        return True
    return kill_during(argv, out, good, trials, reset=lambda: out.write_bytes(older))


def kill_export(run: Path, target: Path, trials: int) -> dict:
    """kill -9 during ``ecgae export RUN --out TARGET --force`` over an existing bundle: it still loads and
    passes parity, old or new. Needs the [train] extra."""
    argv = [sys.executable, "-m", "ecgae.cli", "export", str(run), "--out", str(target), "--force"]

    def good(path: Path) -> bool:
        Model.load(path).check_parity()
        return True
    return kill_during(argv, target, good, trials)


def run_all(root: str | os.PathLike, full: bool) -> dict:
    """Every soak figure, at full size or the short size ``make test`` uses."""
    bundles = Path(root)
    results = {"threads": threads_vs_sequential(bundles / "vae", 8, 10_000 if full else 200),
               "rss": rss_growth(bundles / "ae", 1_000_000 if full else 20_000, 20_000 if full else 2_000),
               "monitor_day": monitor_day(bundles / "mitdb", 24.0 if full else 0.25)}
    with tempfile.TemporaryDirectory() as tmp:
        results["kill_score"] = kill_score(bundles / "ae", 30 if full else 4, Path(tmp))
        results["kill_calibrate"] = kill_calibrate(bundles / "mitdb", 30 if full else 3, Path(tmp))
        from ..export.fixtures import export_tiny, train_tiny  # torch: imported only here

        run = train_tiny(Path(tmp) / "runs")["ae"]
        target = export_tiny({"ae": run}, Path(tmp) / "bundles")["ae"]
        results["kill_export"] = kill_export(run, target, 10 if full else 2)
    if full:
        from .fuzz import campaign, summary

        results["fuzz"] = summary(campaign(bundles / "ae", per_class=1750))
    return results


def verdicts(r: dict) -> list[tuple[str, str, str, bool]]:
    """(what, measured, required, met) rows."""
    rows = [
        ("8 threads x mixed calls on one Model equal sequential results",
         f"{r['threads']['calls']:,} calls, {r['threads']['mismatches']} mismatches, {len(r['threads']['errors'])} "
         "errors", "0 mismatches", r["threads"]["mismatches"] == 0 and not r["threads"]["errors"]),
        ("RSS growth over score calls (batch 1)", f"{r['rss']['growth_mb']:+.2f} MB over {r['rss']['calls']:,} calls "
         f"({r['rss']['us_per_call']:.0f} us/call)", "< 5 MB", r["rss"]["growth_mb"] < 5),
    ]
    m = r["monitor_day"]
    rows.append((f"Monitor over record 100 looped for {m['hours']:.1f} h (runtime-only process), events vs analyze",
                 f"{m['events']:,} events, {m['mismatches']} mismatches; RSS {m['growth_mb']:+.2f} MB after the "
                 f"first {m['mark_hours']:.2f} h ({m['monitor_x_real_time']:,.0f}x real time; torch imported: "
                 f"{m['torch_imported']})", "0 mismatches, < 1 MB",
                 m["mismatches"] == 0 and m["growth_mb"] < 1 and not m["torch_imported"]))
    for key, what in (("kill_score", "kill -9 during score --out"),
                      ("kill_calibrate", "kill -9 during calibrate --out"),
                      ("kill_export", "kill -9 during export --force")):
        k = r[key]
        rows.append((what, f"{k['trials']} kills: {k['unchanged']} unchanged, {k['replaced']} replaced whole, "
                     f"{k['damaged']} damaged ({k['hidden_leftovers']} hidden temp leftovers)", "0 damaged",
                     k["damaged"] == 0))
    if "fuzz" in r:
        f = r["fuzz"]
        rows.append(("malformed inputs", f"{f['inputs']:,} inputs in {f['classes']} classes: {f['tracebacks']} "
                     f"tracebacks, {len(f['broken_classes'])} classes broke their promise",
                     ">= 100,000 inputs, >= 30 classes, 0 tracebacks",
                     f["inputs"] >= 100_000 and f["classes"] >= 30 and not f["broken_classes"]))
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ecgae.benchmarks.soak", description=__doc__.splitlines()[0])
    parser.add_argument("root", help="folder holding ae/, vae/ and mitdb/ bundles "
                        "(python -m ecgae.export.fixtures DIR)")
    parser.add_argument("--full", action="store_true", help="full size (minutes) instead of the short check")
    parser.add_argument("--docs", type=Path, metavar="FILE",
                        help="also write the table, with the date and machine, for the documentation to include")
    args = parser.parse_args(argv)
    results = run_all(args.root, args.full)
    rows = verdicts(results)
    cells = [[what, measured, required, "yes" if met else "NO"] for what, measured, required, met in rows]
    text = "\n".join(table(["check", "measured", "required", "met"], cells))
    print(text)
    if args.docs:
        machine, when = describe_machine(), time.strftime("%Y-%m-%d", time.gmtime())
        stamp = (f"Written by `make soak` on {when} on {machine['cpu_model']} ({machine['usable_cores']} usable cores, "
                 f"load average {machine['load_average_1m']:.1f} at the start{', full size' if args.full else ''}).")
        args.docs.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(args.docs, f"{stamp}\n\n{text}\n".encode())
    for name, r in results.get("fuzz", {}).get("broken_classes", {}).items():
        print(f"\n{name}: {r['accepted']} accepted, {r['traceback']} tracebacks; last:\n{r['example']}")
    return 0 if all(met for *_, met in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
