"""onnxruntime sessions configured for honest CPU latency: few threads, no spinning, chosen optimization."""

from __future__ import annotations

import os
from collections.abc import Callable

import onnxruntime as ort

from .errors import InputError

OPTIMIZATION = {
    "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
    "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
    "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
    "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
}


def make_session(path: str | os.PathLike, threads: int = 1, optimization: str = "all",
                 providers: list[str] | None = None) -> ort.InferenceSession:
    """One InferenceSession, created once and reused; spinning off (it burns CPU and distorts latency).

    ``threads`` is the intra-op thread count; inter-op runs sequentially. ``optimization`` is one of
    disable / basic / extended / all (ORT_DISABLE_ALL ... ORT_ENABLE_ALL).
    """
    if optimization not in OPTIMIZATION:
        raise InputError(f"optimization: expected one of {sorted(OPTIMIZATION)}, received {optimization!r}")
    if not isinstance(threads, int) or threads < 1:
        raise InputError(f"threads: expected an integer >= 1, received {threads!r}")
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = OPTIMIZATION[optimization]
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    opts.add_session_config_entry("session.inter_op.allow_spinning", "0")
    opts.log_severity_level = 3
    return ort.InferenceSession(str(path), sess_options=opts, providers=providers or ["CPUExecutionProvider"])


def direct_run(session: ort.InferenceSession) -> Callable[..., list]:
    """``run(output_names, feed, run_options)`` of a session, without the wrapper's per-call re-checks when
    they cannot apply.

    ``InferenceSession.run`` re-validates the feed's input names, graph capture and OrtValue ownership on
    every call, then calls the compiled session, retrying on the CPU if another provider fails: about 2 us,
    a fifth of a batch-1 encoder call. For a CPU-only session fed numpy arrays under names checked at
    load, none of that applies, so the compiled session's own ``run`` (the wrapper's ``_sess``, same
    signature) is returned; for other providers, or an onnxruntime without it, the public ``run``.
    """
    compiled = getattr(session, "_sess", None)
    if session.get_providers() == ["CPUExecutionProvider"] and callable(getattr(compiled, "run", None)):
        return compiled.run
    return session.run
