"""One benchmark run: every peer timed by the same loops on the same real beats in one process, then
parity, the compute ceiling and a runtime-only memory probe; written as bench.json, bench.md and
latency.png. Absolute times belong to the machine; the ratios between peers are the claim.
"""

from __future__ import annotations

import copy
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from ..runtime import Model
from ..runtime.errors import InputError
from ..runtime.io import write_json
from . import detection, edge, memory, monitor, overhead, parity, qrs_peers, report, roofline, serving, targets
from .machine import describe_machine, versions
from .measure import FULL, QUICK, Settings, measure_peers
from .peers import DESCRIPTIONS, Peer, ort_peer, runtime_peer, torch_peer
from .ratios import speedups
from .timing import timed

SCHEMA = "ecgae-bench"
SCHEMA_VERSION = 1


def _held_out_beats(run: Path, cfg: dict, n: int) -> np.ndarray:
    """The run's test-split beats [n,1,L]: never seen in training."""
    from ..training.datasets import load_beats
    from ..training.train import read_run_json

    test = np.asarray(read_run_json(run, "split.json")["test"], dtype=np.int64)
    return load_beats(cfg["train"]["data"], cfg["train"]["length"]).beats[test[:n], None, :]


def _torch_models(run: Path, manifest: dict) -> tuple[object, object, dict]:
    """Two copies of the run's model in eval mode (tiled and literal decoder) and its config, refusing a
    run that is not the one the bundle was exported from."""
    from ..training.train import load_model

    model, cfg = load_model(run)
    exported = manifest.get("training", {}).get("config")
    if exported is not None and exported != cfg["train"]:
        raise InputError(f"--run: expected the run the bundle was exported from (training config {exported}), "
                         f"received {run} with {cfg['train']}")
    literal = copy.deepcopy(model)
    literal.literal = True
    return model, literal, cfg


def _torch_side(run: Path, manifest: dict, s: Settings, tmp: Path, seconds: dict, log: Callable[..., object]):
    """With a run: torch's parity reference on held-out beats, and a factory of the torch peers plus, for a
    seed bundle with the rewritten decoder, the chapter's literal decoder in torch and exported naive."""
    model, literal, cfg = _torch_models(run, manifest)
    with timed(seconds, "torch_reference"):
        reference = parity.reference_from_torch(model, manifest["model"]["kind"],
                                                _held_out_beats(run, cfg, s.parity_beats), s.parity_beats)
    if manifest["model"]["arch"] != "seed" or manifest["model"]["decoder_graph"] != "rewritten":
        return reference, None, lambda t: [torch_peer(model, t, "torch")]
    from ..export import export_run

    log("Exporting the naive (literal) seed decoder for comparison")
    with timed(seconds, "naive_export"):
        naive_manifest = export_run(run, tmp / "naive", naive=True, log=lambda *_: None)
    return reference, naive_manifest, lambda t: [torch_peer(model, t, "torch"),
                                                 torch_peer(literal, t, "torch_literal", ("decode",)),
                                                 ort_peer(tmp / "naive", t, "ort_naive", ("decode",))]


@contextmanager
def _torch_threads_kept() -> Iterator[None]:
    """Restore torch's thread count after the torch peers changed it (when this process has torch)."""
    torch = sys.modules.get("torch")
    before = torch.get_num_threads() if torch is not None else None
    try:
        yield
    finally:
        if before is not None:
            torch.set_num_threads(before)


def _batch_inputs(beats: np.ndarray, model: Model, size: int) -> dict[str, np.ndarray]:
    """Real beats tiled to the largest batch, and their latents (the bundle's encoding of them)."""
    x = np.ascontiguousarray(np.resize(beats.astype(np.float32), (size, *beats.shape[1:])))
    return {"x": x, "z": np.ascontiguousarray(model.encode(x))}


def _settings_record(s: Settings, quick: bool) -> dict:
    """The settings as JSON, with what the timing loops fix regardless of them."""
    return {"mode": "quick" if quick else "full",
            **{k: list(v) if isinstance(v, tuple) else v for k, v in asdict(s).items()},
            "timer": "time.perf_counter_ns", "ort_optimization": "ORT_ENABLE_ALL", "ort_spinning": False,
            "ort_inter_op_threads": 1, "sessions_reused": True, "torch_threads": "torch.set_num_threads(threads)",
            "inputs": "held-out real beats tiled to the batch; latents = the bundle's encoding of them"}


def run_bench(bundle: str | Path, out: str | Path, run: str | Path | None = None, quick: bool = False,
              log: Callable[..., object] = print) -> dict:
    """Benchmark ``bundle`` (and, with ``run``, torch and the naive decoder) and write the report to ``out``."""
    bundle, out, s = Path(bundle), Path(out), QUICK if quick else FULL
    model = Model.load(bundle)  # hash-checked: refuse a damaged bundle before spending minutes on it
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise InputError(f"--out: expected a folder that can be written, received {str(out)!r} "
                         f"({e.strerror or e})") from None
    manifest, machine, seconds = model.manifest, describe_machine(), {}
    info, naive_manifest = manifest["model"], None
    with tempfile.TemporaryDirectory(prefix="ecgae-bench-") as tmp:
        peers_for: list[Callable[[int], list[Peer]]] = [lambda t: [ort_peer(bundle, t), runtime_peer(bundle, t)]]
        if run is None:
            reference = parity.reference_from_bundle(bundle, manifest)
        else:
            run = Path(run)
            reference, naive_manifest, torch_peers = _torch_side(run, manifest, s, Path(tmp), seconds, log)
            peers_for.append(torch_peers)
        inputs = _batch_inputs(reference["beats"], model, max(s.batches))
        log(f"Timing ({'quick' if quick else 'full'}): {s.latency_calls} calls at batch 1, batches {list(s.batches)},"
            f" threads {list(s.threads)}")
        latency, rates, skipped, names = [], [], [], {}
        with timed(seconds, "timing"), _torch_threads_kept():
            for threads in s.threads:  # one thread count's sessions at a time: the naive ones hold gigabytes
                peers = [p for make in peers_for for p in make(threads)]
                for part, rows in zip((latency, rates, skipped), measure_peers(peers, inputs, s, log)):
                    part += rows
                names |= dict.fromkeys(p.name for p in peers)
                del peers
    log("Batch-1 cost of ecgae.runtime.Model over the raw onnxruntime calls, in alternating blocks")
    with timed(seconds, "overhead"):
        overhead_rows = overhead.measure_overhead(bundle, inputs["x"][:1], s.overhead_rounds, s.overhead_calls,
                                                  s.overhead_warmup)
    log("Parity against torch at ORT_DISABLE_ALL and ORT_ENABLE_ALL; matmul reference; runtime-only memory probe")
    with timed(seconds, "parity"):
        parity_report = parity.measure_parity(bundle, manifest, reference)
    if naive_manifest is not None:
        parity_report["naive_decoder_export_parity_passed"] = bool(naive_manifest["parity"]["passed"])
    with timed(seconds, "matmul_reference"):
        matmul = roofline.matmul_reference(s.matmul_n, s.matmul_repeats)
    with timed(seconds, "memory_probe"):
        peak = memory.runtime_peak_rss(bundle, s.memory_beats, s.memory_chunk)
    with timed(seconds, "edge_formats"):
        edge_section = edge.compare(bundle, manifest, inputs, s, log)
    if model.preprocessing.sample_rate is not None:  # a model of raw ECG: how it finds the beats
        log("Beat detection: record-100 conditions, synthetic ventricular beats, XQRS agreement, raw -> scores")
        with timed(seconds, "detector"):
            detector = detection.measure(model, quick)
            log("  the runtime's detector beside open detectors")
            detector["peers"] = qrs_peers.measure(model.preprocessing, qrs_peers.default_inputs(quick), quick, log)
        log("Streaming monitor: latency and cost per block size, soak")
        with timed(seconds, "monitor"):
            streaming = monitor.measure(model, quick)
        log("Serving: raw-signal paths and the monitor as multiples of real time, INT8, a day-long analyze's memory")
        with timed(seconds, "serving"):
            serving_section = serving.measure(model, str(bundle), edge_section, quick)
    graphs = manifest["graphs"]
    macs = {"encoder": graphs["encoder"]["macs_per_beat"], "decoder": graphs["decoder"]["macs_per_beat"],
            "decoder_literal": graphs["decoder"].get("macs_per_beat_literal", graphs["decoder"]["macs_per_beat"])}
    result = {
        "schema": SCHEMA, "schema_version": SCHEMA_VERSION,
        "created_utc": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "bundle": {"path": str(bundle), **{k: info[k] for k in ("kind", "arch", "input_length", "latent_dim",
                                                                  "decoder_graph")}},
        "run": None if run is None else str(run),
        "machine": machine,
        "versions": versions(),
        "settings": _settings_record(s, quick),
        "peers": {name: DESCRIPTIONS[name] for name in names},
        "latency": latency,
        "throughput": rates,
        "skipped": skipped,
        "ratios": speedups(latency, rates),
        "overhead": overhead_rows,
        "compute": {"macs_per_beat": macs, "matmul_reference": matmul,
                    "achieved": roofline.achieved_table(rates, macs, matmul["gmacs"])},
        "parity": parity_report,
        "memory": {"runtime_only": peak, "bench_process_peak_mb": memory.vm_hwm_mb()},
        "edge": edge_section,
        "phase_seconds": seconds,
    }
    if model.preprocessing.sample_rate is not None:
        result["detector"], result["monitor"], result["serving"] = detector, streaming, serving_section
    result["targets"] = targets.evaluate(result)
    write_json(out / "bench.json", result)
    plotted = report.plot(result, out / "latency.png")
    report.write_markdown(result, out / "bench.md", plotted.name if plotted else None)
    log(f"Wrote {out / 'bench.json'}, {out / 'bench.md'}" + (f", {plotted}" if plotted else
                                                               " (no latency.png: matplotlib not installed)"))
    return result
