"""Peak memory of a deployment: a child process that imports only ecgae.runtime, loads the bundle and
encodes many beats in chunks. A child, because this process has torch and the bench's buffers loaded.

VmHWM is the headline figure: Linux carries the launching process's peak into a child's ru_maxrss
across fork and exec, so in a child of the (large) bench process ru_maxrss reports the parent's peak.

Run as ``python -m ecgae.benchmarks.memory BUNDLE N_BEATS CHUNK`` to print the figures as JSON.
"""

from __future__ import annotations

import json
import os
import resource
import sys
from pathlib import Path


def vm_hwm_mb() -> float | None:
    """Peak resident set size of this process from /proc/self/status (VmHWM, kB), where Linux reports it."""
    status = Path("/proc/self/status")
    if not status.is_file():
        return None
    for line in status.read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return None


def _maxrss_mb() -> float:
    """ru_maxrss of this process (kB on Linux, bytes on macOS)."""
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / (1024 * 1024 if sys.platform == "darwin" else 1024)


def peak_rss_mb() -> float:
    """This process's peak RSS: VmHWM where Linux reports it, which starts afresh in a new program, else
    ru_maxrss (which survives exec, so a worker spawned from a large process reports that process's peak)."""
    peak = vm_hwm_mb()
    return _maxrss_mb() if peak is None else peak


def _probe(bundle_dir: str, n_beats: int, chunk: int, precision: str = "fp32", graph_format: str = "onnx") -> dict:
    import numpy as np
    from ecgae.runtime import Model

    after_import = vm_hwm_mb()
    model = Model.load(bundle_dir, threads=1, precision=precision, graph_format=graph_format)
    rng = np.random.default_rng(0)
    done = 0
    while done < n_beats:
        size = min(chunk, n_beats - done)
        model.encode(rng.standard_normal((size, model.input_length), dtype=np.float32))
        done += size
    peak, maxrss = vm_hwm_mb(), _maxrss_mb()
    return {"beats": done, "chunk": chunk, "threads": 1, "precision": precision, "graph_format": graph_format,
            "peak_rss_mb": maxrss if peak is None else peak,
            "peak_rss_source": "ru_maxrss" if peak is None else "VmHWM",
            "rss_after_import_mb": maxrss if after_import is None else after_import, "ru_maxrss_mb": maxrss,
            "torch_imported": "torch" in sys.modules, "onnx_imported": "onnx" in sys.modules,
            "ecgae_modules": sorted(m for m in sys.modules if m.startswith("ecgae"))}


def runtime_peak_rss(bundle_dir: str | os.PathLike, n_beats: int, chunk: int = 1024, precision: str = "fp32",
                     graph_format: str = "onnx") -> dict:
    """Peak RSS (MB) of a runtime-only process encoding ``n_beats`` beats with the chosen graphs, and what it
    imported."""
    from .child import run_child  # here, not at the top: the probe process must load nothing but the runtime

    return run_child(__name__, [str(bundle_dir), str(n_beats), str(chunk), precision, graph_format])


if __name__ == "__main__":
    print(json.dumps(_probe(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), *sys.argv[4:6])))
