"""bench.json rendered for people: bench.md (tables read in half a minute, targets first) and
latency.png (latency percentiles and throughput against batch, torch vs onnxruntime)."""

from __future__ import annotations

from pathlib import Path

from ..runtime.io import atomic_write_bytes
from . import detection, edge, monitor, qrs_peers, serving
from .markdown import table
from .ratios import COMPARISONS, find

OP_ORDER = ("encode", "decode", "reconstruct")


def _num(value: float | None, fmt: str) -> str:
    return "—" if value is None else format(value, fmt)


def _pairs(rows: list[dict]) -> list[tuple[str, str]]:
    """(op, peer) pairs present in ``rows``, ops in pipeline order, peers in first-seen order."""
    seen = dict.fromkeys((r["op"], r["peer"]) for r in rows)
    return sorted(seen, key=lambda p: OP_ORDER.index(p[0]))


def format_value(value: float | None, unit: str) -> str:
    """A target's figure in its unit: 6.0x, 10.3%, 4.77e-07; a dash when not measured."""
    if value is None:
        return "—"
    return {"x": f"{value:,.1f}x", "cost": f"{value:.2f}x", "fraction": f"{value:.1%}"}.get(unit, f"{value:.2e}")


def _targets(r: dict) -> list[str]:
    rows = []
    for t in r["targets"]:
        met = {True: "**yes**", False: "**no**", None: f"not measured: {t['note']}"}[t["met"]]
        margin = "" if t["margin"] is None else f"{t['margin']:.2f}"
        rows.append([t["text"], format_value(t["measured"], t["unit"]),
                     f"{t['compare']} {format_value(t['threshold'], t['unit'])}", margin, met])
    return table(["target", "measured", "required", "margin (< 1: missed by that factor)", "met"], rows)


def _latency(r: dict) -> list[str]:
    rows = []
    for op, peer in _pairs(r["latency"]):
        one = find(r["latency"], peer=peer, op=op, threads=1) or {}
        two = find(r["latency"], peer=peer, op=op, threads=2) or {}
        rows.append([op, peer, *(_num(one.get(k), ",.1f") for k in ("p50_us", "p90_us", "p99_us")),
                     _num(two.get("p50_us"), ",.1f")])
    return table(["op", "peer", "p50", "p90", "p99", "p50, 2 threads"], rows)


def _overhead(r: dict) -> list[str]:
    rows = [[o["op"], _num(o["ort_p50_us"], ",.1f"), _num(o["runtime_p50_us"], ",.1f"), f"{o['ratio']:.2f}x"]
            for o in r["overhead"]]
    return table(["op", "raw onnxruntime p50 (µs)", "`ecgae.runtime.Model` p50 (µs)", "cost ratio"], rows)


def _throughput(r: dict) -> list[str]:
    batches = r["settings"]["batches"]
    rows = []
    for op, peer in _pairs(r["throughput"] + r["skipped"]):
        for threads in r["settings"]["threads"]:
            cells = [find(r["throughput"], peer=peer, op=op, threads=threads, batch=b) for b in batches]
            rows.append([op, peer, str(threads)] + [_num(c and c["beats_per_s"], ",.0f") for c in cells])
    return table(["op", "peer", "threads", *(f"batch {b}" for b in batches)], rows)


def _speedups(r: dict) -> list[str]:
    batches = r["settings"]["batches"]
    rows = []
    for fast, slow in COMPARISONS:
        for op in OP_ORDER:
            lat = find(r["ratios"]["latency_p50"], candidate=fast, baseline=slow, op=op, threads=1)
            if lat is None:
                continue
            cells = [find(r["ratios"]["throughput"], candidate=fast, baseline=slow, op=op, threads=1, batch=b)
                     for b in batches]
            rows.append([f"{fast} vs {slow}", op, _num(lat["speedup"], ",.1f")]
                        + [_num(c and c["speedup"], ",.1f") for c in cells])
    return table(["candidate vs baseline", "op", "p50 latency, batch 1", *(f"beats/s, batch {b}" for b in batches)],
                  rows)


def _compute(r: dict) -> list[str]:
    c = r["compute"]
    m, ref = c["macs_per_beat"], c["matmul_reference"]
    lines = [f"MACs per beat (manifest): encoder {m['encoder']:,}, decoder {m['decoder']:,} "
             f"(the chapter's literal form: {m['decoder_literal']:,}, {m['decoder_literal'] / m['decoder']:.0f}x). "
             f"Reference: {ref['n']}x{ref['n']} float32 matmul on 1 BLAS thread ({ref['blas']}, {ref['pinned_by']}): "
             f"**{ref['gmacs']:.1f} GMAC/s**.", ""]
    measured = {a["batch"] for a in c["achieved"]}
    batch = 256 if 256 in measured else max(measured, default=None)
    rows = [[a["op"], a["peer"], f"{a['gmacs']:.2f}", f"{a['fraction_of_matmul']:.1%}"]
            for a in c["achieved"] if a["threads"] == 1 and a["batch"] == batch and a["peer"] != "runtime"]
    return lines + table(["op", "peer", f"GMAC/s at batch {batch}, 1 thread", "of matmul"], rows)


def _parity(r: dict) -> list[str]:
    p = r["parity"]
    lines = [f"Reference: {p['source']}; {p['n_beats']} beats, {p['n_latents']} latents ~ N(0, I).", ""]
    rows = [[key, level, f"{s['max_abs']:.2e}", f"{s['mean_abs']:.2e}", f"{s['p99_abs']:.2e}"]
            for level, outputs in p["levels"].items() for key, s in outputs.items()]
    lines += table(["output", "ORT level", "max abs", "mean abs", "p99 abs"], rows)
    if "naive_decoder_export_parity_passed" in p:
        lines += ["", f"The naive decoder bundle passed its export parity: "
                      f"{'yes' if p['naive_decoder_export_parity_passed'] else 'no'}."]
    return lines


def _settings(r: dict) -> list[str]:
    s = r["settings"]
    lines = [f"- Latency: {s['latency_calls']} timed calls after {s['latency_warmup']} warm-up calls, each timed "
             f"with {s['timer']}. Throughput: median call time over >= {s['min_repeats']} calls and "
             f">= {s['min_time_s']:g} s after {s['throughput_warmup']} warm-up call(s).",
             f"- onnxruntime: {s['ort_optimization']}, intra-op threads as listed, inter-op "
             f"{s['ort_inter_op_threads']}, spinning off, sessions created once and reused. torch: "
             f"{s['torch_threads']}, eval, no_grad.",
             f"- Inputs: {s['inputs']}."]
    lines += [f"- `{name}`: {text}" for name, text in r["peers"].items()]
    lines.append("- Seconds per phase: " + ", ".join(f"{k} {v:.1f}" for k, v in r["phase_seconds"].items()) + ".")
    lines += [f"- Skipped: {k['peer']} {k['op']} batch {k['batch']} at {k['threads']} thread(s), {k['reason']}."
              for k in r["skipped"]]
    return lines


def markdown(r: dict, image: str | None = None) -> str:
    """The whole report as Markdown; ``image`` is the plot's file name next to it, if there is one."""
    b, mach, v, mem = r["bundle"], r["machine"], r["versions"], r["memory"]["runtime_only"]
    versions = ", ".join(f"{k} {val}" for k, val in v.items())
    lines = [f"# ecgae benchmark: {b['kind']}/{b['arch']}, L = {b['input_length']}, latent = {b['latent_dim']}", "",
             f"{mach['cpu_model']}, {mach['logical_cores']} logical cores ({mach['usable_cores']} usable), "
             f"load average {_num(mach['load_average_1m'], '.2f')} at the start; {versions}; "
             f"{r['settings']['mode']} mode, {r['created_utc']}.", "",
             "Absolute times are specific to this machine and its load. The claim is the ratios: every peer was "
             "measured in the same process run, on the same held-out beats, with the same weights.", "",
             "## Targets", "", *_targets(r), "",
             "## Speed-ups measured in this run (1 thread)", "", *_speedups(r), "",
             *([f"![latency and throughput, torch vs onnxruntime]({image})", ""] if image else []),
             "## Latency per call at batch 1 (µs; 1 thread unless noted)", "", *_latency(r), "",
             "## Batch-1 cost of the runtime API over raw onnxruntime (1 thread)", "",
             f"Alternating blocks, {r['overhead'][0]['calls']:,} timed calls each; raw = the onnxruntime calls "
             "each method replaces (reconstruct and score: encoder then decoder).", "", *_overhead(r), "",
             "## Throughput (beats/s)", "", *_throughput(r), "",
             "## Compute ceiling", "", *_compute(r), "",
             "## Parity against torch", "", *_parity(r), "",
             "## Memory of a runtime-only process", "",
             f"A child process that imports only ecgae.runtime, loads the bundle and encodes {mem['beats']:,} beats "
             f"in chunks of {mem['chunk']:,} on {mem['threads']} thread: peak RSS **{mem['peak_rss_mb']:.0f} MB** "
             f"({mem['peak_rss_source']}), {mem['rss_after_import_mb']:.0f} MB after its imports. torch imported: "
             f"**{'yes' if mem['torch_imported'] else 'no'}**. (The bench process itself peaked at "
             f"{_num(r['memory']['bench_process_peak_mb'], ',.0f')} MB, holding torch and the literal decoders' "
             "activations.)", "",
             *(edge.markdown(r["edge"]) + [""] if r.get("edge") else []),
             *(detection.markdown(r["detector"]) + [""] if "detector" in r else []),
             *(qrs_peers.markdown(r["detector"]["peers"]) + [""] if "peers" in r.get("detector", {}) else []),
             *(monitor.markdown(r["monitor"]) + [""] if "monitor" in r else []),
             *(serving.markdown(r["serving"]) + [""] if "serving" in r else []),
             "## Settings", "", *_settings(r), ""]
    return "\n".join(lines)


def write_markdown(result: dict, path: Path, image: str | None = None) -> None:
    atomic_write_bytes(path, markdown(result, image).encode())


def plot(r: dict, path: Path) -> Path | None:
    """latency.png: p50 bars with p90/p99 marks at batch 1, and beats/s against batch (log-log), for every
    peer at 1 thread (solid) and 2 threads (dashed). None when matplotlib is not installed."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    peers = list(r["peers"])
    colors = {p: f"C{i}" for i, p in enumerate(peers)}
    fig, (left, right) = plt.subplots(1, 2, figsize=(15, 5))
    width = 0.8 / len(peers)
    for i, peer in enumerate(peers):
        for j, op in enumerate(OP_ORDER):
            row = find(r["latency"], peer=peer, op=op, threads=1)
            if row is None:
                continue
            x = j + (i - (len(peers) - 1) / 2) * width
            left.bar(x, row["p50_us"], width, color=colors[peer], label=peer if j == 0 or op == "decode" else None)
            left.plot([x, x], [row["p50_us"], row["p99_us"]], color="black", lw=1)
            left.plot([x], [row["p90_us"]], marker="_", color="black", ms=8)
            left.plot([x], [row["p99_us"]], marker="_", color="black", ms=12)
    handles, labels = left.get_legend_handles_labels()
    unique = dict(zip(labels, handles))
    left.legend(unique.values(), unique.keys(), fontsize=8)
    left.set(xticks=range(len(OP_ORDER)), xticklabels=OP_ORDER, yscale="log", ylabel="µs per call",
             title="Latency at batch 1, 1 thread (bar p50, marks p90 and p99)")
    markers = {"encode": "o", "decode": "s", "reconstruct": "^"}
    for op, peer in _pairs(r["throughput"]):
        for threads, style in zip(r["settings"]["threads"], ("-", "--")):
            rows = [x for x in r["throughput"] if x["peer"] == peer and x["op"] == op and x["threads"] == threads]
            if rows:
                right.plot([x["batch"] for x in rows], [x["beats_per_s"] for x in rows], style, color=colors[peer],
                           marker=markers[op], ms=4, label=f"{peer} {op}" if threads == 1 else None)
    right.set(xscale="log", yscale="log", xlabel="batch", ylabel="beats/s",
              title="Throughput (solid 1 thread, dashed 2 threads)")
    right.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.suptitle(f"{r['machine']['cpu_model']} — absolute times are machine-specific; ratios are the claim",
                 fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
