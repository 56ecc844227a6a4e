"""Speed-ups between peers measured in the same run: the claim that survives a change of machine."""

from __future__ import annotations

# (faster candidate, slower baseline): ORT vs torch eager, the runtime API vs torch eager, and the exact
# tiled seed decoder vs the chapter's literal one (in onnxruntime and in torch).
COMPARISONS = (("ort", "torch"), ("runtime", "torch"), ("ort", "ort_naive"), ("ort", "torch_literal"),
               ("torch", "torch_literal"))


def find(rows: list[dict], **keys: object) -> dict | None:
    """The first row whose fields equal ``keys``, or None."""
    return next((r for r in rows if all(r.get(k) == v for k, v in keys.items())), None)


def speedups(latency: list[dict], throughput: list[dict]) -> dict:
    """For every comparison, op, thread count and batch measured for both peers: p50 latency of the
    baseline over the candidate's, and the candidate's beats/s over the baseline's."""
    out: dict[str, list[dict]] = {"latency_p50": [], "throughput": []}
    for section, rows, value in (("latency_p50", latency, lambda fast, slow: slow["p50_us"] / fast["p50_us"]),
                                 ("throughput", throughput,
                                  lambda fast, slow: fast["beats_per_s"] / slow["beats_per_s"])):
        for fast_name, slow_name in COMPARISONS:
            for fast in (r for r in rows if r["peer"] == fast_name):
                slow = find(rows, peer=slow_name, op=fast["op"], threads=fast["threads"], batch=fast["batch"])
                if slow is not None:
                    out[section].append({"candidate": fast_name, "baseline": slow_name, "op": fast["op"],
                                         "threads": fast["threads"], "batch": fast["batch"],
                                         "speedup": value(fast, slow)})
    return out
