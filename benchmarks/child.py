"""Measurements that must not share this process (its loaded libraries or thread pools would skew
them) run as ``python -m <module> ARGS`` and print one JSON object."""

from __future__ import annotations

import json
import subprocess
import sys

from ..runtime.errors import EcgaeError


def run_child(module: str, args: list[str], env: dict[str, str] | None = None) -> dict:
    """Run ``module`` in a fresh interpreter and return the JSON it prints; its stderr on failure."""
    done = subprocess.run([sys.executable, "-m", module, *args], env=env, capture_output=True, text=True)
    if done.returncode != 0:
        tail = "\n".join(done.stderr.strip().splitlines()[-5:])
        raise EcgaeError(f"bench: the measurement child {module} failed (exit {done.returncode}):\n{tail}")
    return json.loads(done.stdout)
