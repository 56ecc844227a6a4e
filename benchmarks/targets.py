"""The issue's performance targets, evaluated from bench.json's own figures; never lowered to pass.

A target that this run could not measure (no --run for the naive decoder, or not a seed decoder) is
reported with ``met: null`` and the reason, not as met.
"""

from __future__ import annotations

from .overhead import OPS as OVERHEAD_OPS
from .ratios import find

TARGETS = (
    {"id": "encode_b1_p50_ort_vs_torch", "text": "encode, batch 1, p50 latency: ORT >= 8x faster than torch eager",
     "unit": "x", "compare": ">=", "threshold": 8.0},
    {"id": "seed_decoder_b256_optimized_vs_naive",
     "text": "seed decoder, batch 256: optimized >= 200x the throughput of the naive decoder (ORT)",
     "unit": "x", "compare": ">=", "threshold": 200.0},
    {"id": "seed_decoder_max_abs_vs_torch",
     "text": "seed decoder: max abs error of the optimized graph vs torch (both ORT levels) <= 1e-5",
     "unit": "", "compare": "<=", "threshold": 1e-5},
    {"id": "encode_b256_roofline", "text": "encode, batch 256: >= 40% of the single-thread matmul GMAC/s",
     "unit": "fraction", "compare": ">=", "threshold": 0.40},
    *({"id": f"{op}_b1_runtime_over_ort", "unit": "cost", "compare": "<=", "threshold": 1.25,
       "text": f"{op}, batch 1, p50: ecgae.runtime.Model <= 1.25x the raw onnxruntime calls it replaces"}
      for op in OVERHEAD_OPS),
)


def _measure(target_id: str, result: dict) -> tuple[float | None, str]:
    """(measured value, note) of one target, all at 1 intra-op thread."""
    seed = result["bundle"]["arch"] == "seed"
    if target_id == "encode_b1_p50_ort_vs_torch":
        row = find(result["ratios"]["latency_p50"], candidate="ort", baseline="torch", op="encode", threads=1, batch=1)
        return (row["speedup"], "") if row else (None, "needs --run (torch peer)")
    if target_id == "seed_decoder_b256_optimized_vs_naive":
        if not seed:
            return None, "not a seed decoder"
        row = find(result["ratios"]["throughput"], candidate="ort", baseline="ort_naive", op="decode", threads=1,
                   batch=256)
        return (row["speedup"], "") if row else (None, "needs --run (naive export) and batch 256")
    if target_id == "seed_decoder_max_abs_vs_torch":
        if not seed:
            return None, "not a seed decoder"
        levels = result["parity"]["levels"].values()
        return max(level["decoder.x_hat"]["max_abs"] for level in levels), result["parity"]["source"]
    if target_id.endswith("_b1_runtime_over_ort"):
        row = find(result["overhead"], op=target_id.split("_")[0])
        return row["ratio"], f"p50 {row['runtime_p50_us']:.1f} vs {row['ort_p50_us']:.1f} us"
    row = find(result["compute"]["achieved"], peer="ort", op="encode", threads=1, batch=256)
    return (row["fraction_of_matmul"], "") if row else (None, "batch 256 not measured")


def evaluate(result: dict) -> list[dict]:
    """Every target with its measured value, whether it is met (None when not measurable here) and the margin."""
    out = []
    for target in TARGETS:
        value, note = _measure(target["id"], result)
        limit, at_least = target["threshold"], target["compare"] == ">="
        met = None if value is None else (value >= limit if at_least else value <= limit)
        # margin > 1: met with room to spare; < 1: the factor by which it is missed
        margin = None if not value else (value / limit if at_least else limit / value)
        out.append({**target, "measured": value, "met": met, "margin": margin, "note": note})
    return out
