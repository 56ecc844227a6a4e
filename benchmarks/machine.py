"""What the figures were measured on: absolute times only mean something next to the CPU, the core
count and the library versions that produced them."""

from __future__ import annotations

import os
import platform
import sys
from importlib import metadata
from pathlib import Path

CPUINFO = Path("/proc/cpuinfo")


def _cpuinfo_field(text: str, key: str) -> list[str]:
    return [line.split(":", 1)[1].strip() for line in text.splitlines()
            if line.split(":", 1)[0].strip() == key and ":" in line]


def describe_machine() -> dict:
    """CPU model, cores (logical, physical, usable by this process), OS, Python, and the load average when
    the run started: other work on a small machine shows up in the figures, most at 2 threads."""
    text = CPUINFO.read_text() if CPUINFO.is_file() else ""
    models = _cpuinfo_field(text, "model name")
    cores = set(zip(_cpuinfo_field(text, "physical id"), _cpuinfo_field(text, "core id")))
    flags = set(next(iter(_cpuinfo_field(text, "flags")), "").split())
    affinity = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {
        "cpu_model": models[0] if models else platform.processor() or "unknown",
        "logical_cores": os.cpu_count(),
        "physical_cores": len(cores) or None,
        "usable_cores": affinity,
        "simd": sorted(f for f in ("sse4_2", "avx", "avx2", "fma", "avx512f", "avx512_vnni", "amx_tile") if f in flags),
        "os": f"{platform.system()} {platform.release()}",
        "machine": platform.machine(),
        "python": platform.python_version(),
        "load_average_1m": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
    }


def versions() -> dict:
    """Installed versions of the packages whose code is being timed (torch only if this process loaded it)."""
    names = ["ecgae", "numpy", "onnxruntime"] + [m for m in ("torch", "onnx") if sys.modules.get(m) is not None]
    out = {}
    for name in names:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out
