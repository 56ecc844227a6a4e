"""What an archive run writes: one Parquet file per recording (written whole or not at all, tagged with
the bundle it was scored with), ``errors.jsonl`` and ``summary.parquet``.

The bundle tag is the sha256 of its manifest, which itself holds every graph's sha256: a recording's
output is reused on resume only when it was scored by exactly the same graphs, threshold and filter.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..runtime.bundle import MANIFEST, sha256_file
from ..runtime.errors import EcgaeError
from ..runtime.io import atomic_write_bytes

BUNDLE_KEY, SUMMARY_KEY, SOURCE_KEY = b"ecgae.bundle_sha256", b"ecgae.summary", b"ecgae.source"
ERRORS, SUMMARY = "errors.jsonl", "summary.parquet"


def pyarrow():
    """pyarrow and pyarrow.parquet, or the error naming the extra to install."""
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise EcgaeError("score-archive needs pyarrow, which is not installed: "
                         "pip install '.[archive]' in the ecgae source folder") from None
    return pa, pq


def bundle_sha256(bundle_dir: str | Path, calibrate_seconds: float | None = None) -> str:
    """What an output was scored with: the bundle's manifest hash, and the per-wearer enrolment if any
    (wearer-relative scores must not be reused for a run without it, or with another baseline length)."""
    tag = sha256_file(Path(bundle_dir) / MANIFEST)
    return tag if calibrate_seconds is None else f"{tag}+calibrate-{calibrate_seconds:g}s"


def output_path(out_dir: str | Path, name: str) -> Path:
    return Path(out_dir) / f"{name}.parquet"


def _serialise(table) -> bytes:
    pa, pq = pyarrow()
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, compression="zstd")
    return sink.getvalue().to_pybytes()


def write_recording(path: Path, name: str, columns: dict[str, np.ndarray], summary: dict, bundle: str,
                    source: str) -> None:
    """One row per beat; the summary, source and bundle tag in the file's metadata. Atomic."""
    pa, _ = pyarrow()
    n, latent = columns["latent"].shape
    arrays = {
        "record": pa.DictionaryArray.from_arrays(pa.array(np.zeros(n, np.int32)), pa.array([name])),
        **{k: pa.array(columns[k]) for k in ("r_peak", "time")},
        "score": pa.array(columns["score"], from_pandas=True),  # NaN (unusable beat) -> null
        **{k: pa.array(columns[k]) for k in ("flag", "usable")},
        "rr": pa.array(columns["rr"], from_pandas=True),  # NaN (first beat) -> null
        "latent": pa.FixedSizeListArray.from_arrays(pa.array(columns["latent"].reshape(-1)), latent),
    }
    meta = {BUNDLE_KEY: bundle.encode(), SUMMARY_KEY: json.dumps(summary).encode(), SOURCE_KEY: source.encode()}
    atomic_write_bytes(path, _serialise(pa.table(arrays).replace_schema_metadata(meta)))


def finished(path: Path, bundle: str) -> dict | None:
    """The stored summary when ``path`` is a complete output scored with ``bundle``, else None (absent,
    damaged, or from another bundle: then it is scored again)."""
    _, pq = pyarrow()
    if not path.is_file():
        return None
    try:
        meta = pq.read_schema(path).metadata or {}
        if meta.get(BUNDLE_KEY) != bundle.encode():
            return None
        return json.loads(meta[SUMMARY_KEY])
    except Exception:  # pyarrow raises ArrowInvalid/OSError/...: any unreadable file is simply redone
        return None


def remove_stale_temps(out_dir: Path) -> int:
    """Delete temporary files a killed run left behind (atomic writes never renamed them)."""
    stale = list(out_dir.glob(".*.tmp"))
    for p in stale:
        p.unlink(missing_ok=True)
    return len(stale)


def write_errors(out_dir: Path, errors: list[dict]) -> None:
    atomic_write_bytes(out_dir / ERRORS, "".join(json.dumps(e) + "\n" for e in errors).encode())


def write_summary(out_dir: Path, rows: list[dict]) -> Path:
    """summary.parquet: one row per recording of the run (scored, reused or failed)."""
    pa, _ = pyarrow()
    path = out_dir / SUMMARY
    atomic_write_bytes(path, _serialise(pa.Table.from_pylist(rows)))
    return path
