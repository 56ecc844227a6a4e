"""Running an archive: the same per-recording step in-process (``workers=1``) or on a Ray Data actor
pool (one loaded Model per actor, onnxruntime on one intra-op thread), results streamed to the driver.

Workers write their recording's Parquet themselves (atomically), so with a multi-machine cluster the
output folder must be on storage every node sees; the driver only collects small status rows.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

from ..benchmarks.memory import peak_rss_mb
from ..runtime import Model
from ..runtime.cli import UNUSABLE_WARNING
from ..runtime.errors import EcgaeError
from . import store
from .scoring import score_recording, summarise
from .sources import Recording, read_recording

SUMMARY_FIELDS = ("record", "source", "status", "lead", "fs", "duration_s", "gaps", "missing_s", "beats", "unusable",
                  "flagged",
                  "flagged_fraction", "hr_mean_bpm", "hr_median_bpm", "hr_p05_bpm", "hr_p95_bpm", "error")
RAY_OBJECT_STORE = 256 << 20  # a local Ray only passes small status rows: keep its shared memory small


@dataclass(frozen=True)
class Options:
    """What every worker needs to score a recording the same way (plain values: it is shipped to actors)."""

    bundle: str
    out_dir: str
    bundle_sha256: str
    lead: str | None = None
    fs: float | None = None
    calibrate_seconds: float | None = None


MOSTLY_UNUSABLE = "mostly unusable"  # scored, but no beat or most beats were in unusable signal


def recording_status(summary: dict) -> str:
    """'scored', or MOSTLY_UNUSABLE when the recording gave no beats or mostly unusable ones: more often a
    recording read wrongly (its rate, units or lead) than a bad one, so it must not pass as scored."""
    beats, unusable = int(summary["beats"]), int(summary["unusable"])
    return MOSTLY_UNUSABLE if beats == 0 or unusable > UNUSABLE_WARNING * beats else "scored"


class Scorer:
    """One loaded Model and the per-recording step: read, score, write. Never raises for a recording:
    a failure becomes a status row naming the reason, so the other recordings go on."""

    def __init__(self, options: Options):
        self.options = options
        self.model = Model.load(options.bundle, threads=1)

    def __call__(self, rec: Recording) -> dict:
        o = self.options
        t0, cpu0 = time.perf_counter(), time.process_time()
        row = {"record": rec.name, "source": rec.path, "status": "failed", "beats": 0}
        try:
            signal, fs, lead = read_recording(rec, o.lead, o.fs)
            columns = score_recording(self.model, signal, fs, o.calibrate_seconds)
            summary = {"lead": lead, "fs": fs, **summarise(columns, signal, fs)}
            store.write_recording(store.output_path(o.out_dir, rec.name), rec.name, columns, summary,
                                  o.bundle_sha256, rec.path)
            row |= summary | {"status": recording_status(summary)}
        except EcgaeError as e:
            row["error"] = str(e)
        except Exception as e:  # a reader's or numpy's surprise must not stop the archive
            row["error"] = f"{type(e).__name__}: {' '.join(str(e).split())}"
        return row | {"seconds": time.perf_counter() - t0, "cpu_seconds": time.process_time() - cpu0,
                      "pid": os.getpid(), "rss_mb": peak_rss_mb()}


def in_process(todo: list[Recording], options: Options) -> Iterator[dict]:
    scorer = Scorer(options)
    for rec in todo:
        yield scorer(rec)


class _RayScorer:
    """Ray Data's stateful callable: built once per actor, called with batches of recording rows."""

    def __init__(self, options: dict):
        self.scorer = Scorer(Options(**options))

    def __call__(self, batch: dict) -> dict:
        rows = [self.scorer(Recording(str(n), str(p), str(k)))
                for n, p, k in zip(batch["name"], batch["path"], batch["kind"])]
        return {"row": [json.dumps(r) for r in rows]}  # JSON: mixed None/str/float rows survive Arrow as is


def import_ray():
    try:
        import ray
        import ray.data
    except ImportError:
        raise EcgaeError("--workers > 1 and --ray need Ray, which is not installed: "
                         "pip install '.[archive]' in the ecgae source folder") \
            from None
    return ray


def start_ray(workers: int, address: str | None) -> bool:
    """Attach to ``address`` ('auto' or host:port) or start a local Ray with ``workers`` CPUs; True when
    this call started it (and so should shut it down)."""
    ray = import_ray()
    if ray.is_initialized():
        return False
    # ERROR: Ray's start-up notices (token authentication on a local cluster, ...) are not the user's business
    quiet = dict(include_dashboard=False, log_to_driver=False, configure_logging=True, logging_level="ERROR")
    try:
        if address:
            ray.init(address=address, **quiet)
        else:
            ray.init(num_cpus=workers, object_store_memory=RAY_OBJECT_STORE, **quiet)
    except (ConnectionError, RuntimeError, ValueError) as e:
        raise EcgaeError(f"--ray {address}: cannot attach to or start Ray ({' '.join(str(e).split())})") from None
    return True


def on_ray(todo: list[Recording], options: Options, workers: int) -> Iterator[dict]:
    """Stream status rows from a Ray Data pipeline: one recording per batch over ``workers`` actors."""
    ray = import_ray()
    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False  # the driver draws its own bar of records and beats
    context.print_on_execution_start = False
    for handler in logging.getLogger("ray.data").handlers:  # its console says progress bars are off and when
        if isinstance(handler, logging.StreamHandler):  # each dataset finished; its log file keeps it all
            handler.setLevel(logging.ERROR)
    ds = ray.data.from_items([r.to_dict() for r in todo], override_num_blocks=len(todo))
    ds = ds.map_batches(_RayScorer, fn_constructor_args=(asdict(options),), batch_size=1, batch_format="numpy",
                        compute=ray.data.ActorPoolStrategy(size=workers), num_cpus=1)
    try:
        for item in ds.iter_rows():
            yield json.loads(item["row"])
    except Exception as e:  # an actor lost (node down, out of memory): finished outputs stay, a rerun resumes
        raise EcgaeError(f"the Ray pipeline failed ({type(e).__name__}: {' '.join(str(e).split())[:500]}); "
                         "outputs written so far are complete, and running the same command again resumes") from None


def run(recordings: list[Recording], options: Options, workers: int = 1, ray_address: str | None = None,
        on_row: Callable[[dict], None] | None = None) -> list[dict]:
    """Score every recording not already finished with this bundle; return one summary row per recording
    (also written to summary.parquet), with errors in errors.jsonl."""
    out_dir = Path(options.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    store.remove_stale_temps(out_dir)
    rows: dict[str, dict] = {}
    todo = []
    for rec in recordings:
        done = store.finished(store.output_path(out_dir, rec.name), options.bundle_sha256)
        if done is None:
            todo.append(rec)
        else:
            rows[rec.name] = {"record": rec.name, "source": rec.path, "status": "reused"} | done
            if on_row:
                on_row(rows[rec.name])
    errors: list[dict] = []
    store.write_errors(out_dir, errors)
    started = False
    if todo and (workers > 1 or ray_address):
        started = start_ray(workers, ray_address)
        stream = on_ray(todo, options, workers)
    else:
        stream = in_process(todo, options) if todo else iter(())
    try:
        for row in stream:
            rows[row["record"]] = row
            if row["status"] == "failed":
                errors.append({"record": row["record"], "source": row["source"], "error": row["error"]})
                store.write_errors(out_dir, errors)
            if on_row:
                on_row(row)
    finally:
        if started:
            import_ray().shutdown()
    ordered = [rows[r.name] for r in recordings]
    store.write_summary(out_dir, [{k: row.get(k) for k in SUMMARY_FIELDS} for row in ordered])
    return ordered
