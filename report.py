"""``demo/report.md``: a summary (what works, what does not, which bundle to deploy), then the chapter's
figures, every model's held-out metrics, parity and benchmark, in one page a person reads top to bottom.
Figures are linked relative to the report.
"""

from __future__ import annotations

from pathlib import Path

from .benchmarks.markdown import values_table as table
from .benchmarks.quality import report_section as quality_section
from .evaluation.summary import summary as opening_summary
from .runtime.io import atomic_write_bytes

TF_TUTORIAL = {"accuracy": 0.943, "precision": 0.992, "recall": 0.905}  # "Intro to Autoencoders", ECG5000


def _figure_grid(runs, kind: str) -> str:
    """A table of figures: one row per (arch, data), one column per model kind present."""
    kinds = sorted({r.model for r in runs})
    rows: dict[tuple[str, str], dict[str, str]] = {}
    for r in runs:
        rows.setdefault((r.arch, r.data), {})[r.model] = f"![{r.name}](runs/{r.name}/{kind}.png)"
    return table(["decoder, data", *[k.upper() for k in kinds]],
                 [[f"{arch}, {data}", *[cells.get(k) for k in kinds]] for (arch, data), cells in rows.items()])


def _metrics_rows(runs, results) -> list[list[object]]:
    rows = []
    for r in runs:
        m = results[r.name]
        a, rec = m["anomaly"], m["reconstruction"]
        at = a.get("abnormal_positive", {})
        by_class = ", ".join(f"{c}: {v:.2f}" for c, v in a.get("auc_by_class", {}).items())
        rows.append([r.name, r.purpose, ",".join(r.train_classes) or "all", r.latent, rec["mse"], rec["prd_percent"],
                     f"{rec['compression_ratio']:.0f}:1", a.get("auc_all"), by_class or None, at.get("precision"),
                     at.get("recall"), m["latent_probe"].get("balanced_accuracy")])
    return rows


def _compare_archs(results, names: list[tuple[str, str, str]]) -> list[list[object]]:
    rows = []
    for label, seed, up in names:
        if seed in results and up in results:
            s, u = results[seed], results[up]
            rows.append([label, s["reconstruction"]["mse"], u["reconstruction"]["mse"],
                         u["reconstruction"]["mse"] / s["reconstruction"]["mse"],
                         s["anomaly"].get("auc_all"), u["anomaly"].get("auc_all")])
    return rows


def _parity_rows(manifests) -> list[list[object]]:
    rows = []
    for name, m in manifests.items():
        levels = m["parity"]["levels"]
        worst = {lvl: max(v["max_abs"] for v in outs.values()) for lvl, outs in levels.items()}
        g = m["graphs"]
        rows.append([name, m["parity"]["atol"], worst.get("disable_all"), worst.get("enable_all"),
                     g["encoder"]["macs_per_beat"], g["decoder"]["macs_per_beat"],
                     g["decoder"].get("macs_per_beat_literal")])
    return rows


def write_report(root: Path, runs, manifests: dict, results: dict, summary: dict) -> Path:
    """Write report.md into ``root`` (atomically) and return its path."""
    chapter = [r for r in runs if r.purpose == "chapter"]
    tf = [r for r in runs if r.purpose == "TF tutorial protocol"]
    raw = summary["raw_signal"]
    parts = [
        "# ecgae demo report",
        f"Made by `make demo` in {summary['wall_seconds']:.0f} s ({summary['trained']} of {len(runs)} runs trained "
        f"in this invocation, {summary['train_seconds']:.0f} s; the others were finished earlier), "
        f"{'quick mode, ' if summary['quick'] else ''}on the bundled beats: MIT-BIH record 100 (lead MLII, "
        "360 Hz, L = 450) and ECG5000 (L = 140). Every figure below is measured on held-out beats: the last "
        "contiguous 15% of the MIT-BIH record (beats near the block edges dropped), and every 20 ECG5000 rows "
        "3 to validation and 3 to test. Labels are used for evaluation and colouring only.",
        "## Summary",
        opening_summary(root, results, "../docs/"),
        *(["![Reconstructions of the deployable bundle: typical, worst and abnormal beats](examples.png)"]
          if (root / "examples.png").is_file() else []),
        "## The chapter's figures",
        "Latent space (z, 2-D) coloured by beat class, for the AE and VAE with the chapter's (`seed`) decoder "
        "and the corrected (`upsample`) one:",
        _figure_grid(chapter, "latent"),
        "One held-out beat and its reconstruction. The seed decoder's output is one half-length waveform "
        "twice (see DESIGN.md); the corrected decoder's is not:",
        _figure_grid(chapter, "reconstruction"),
        "Beats decoded from z ~ N(0, I) by the VAEs:",
        _figure_grid([r for r in chapter if r.model == "vae"], "samples"),
        "Loss curves:",
        _figure_grid(chapter, "loss"),
        "## Held-out metrics (through the onnxruntime bundles)",
        "MSE per sample on z-scored beats; PRD in percent (normalised beats); compression ratio = L / latent "
        "size; AUC of the per-beat reconstruction error, normal vs abnormal (MIT-BIH: N vs the other symbols; "
        "ECG5000: class 1 vs 2-5); precision and recall of 'abnormal' at the calibrated threshold; balanced "
        "accuracy of a logistic-regression probe on the latents (fitted on training-split latents).",
        table(["run", "purpose", "trained on", "latent", "MSE", "PRD %", "CR", "AUC", "AUC by class", "precision",
               "recall", "probe bal. acc."], _metrics_rows(runs, results)),
        "Reading the MIT-BIH AUCs: the held-out block of record 100 holds few abnormal beats (all A, atrial "
        "premature), and the chapter's 1.25 s window starting 0.42 s before the R peak also holds the next "
        "beat's QRS for 85% of N beats (at about sample 437), but for no A beat: after a premature beat the "
        "next one comes late. A window without that late, hard-to-place spike is easier to reconstruct, so on "
        "this record the error reflects rhythm context more than beat shape, and AUCs fall below 0.5. ECG5000, "
        "one beat per row, shows the intended behaviour, best when the model trains on normal beats only.",
        "## Corrected decoder vs the seed decoder",
        table(["setting", "seed MSE", "upsample MSE", "ratio", "seed AUC", "upsample AUC"],
              _compare_archs(results, [(f"{m.upper()} {d} latent 2", f"{m}-seed-{d}", f"{m}-upsample-{d}")
                                       for d in ("mitdb", "ecg5000") for m in ("ae", "vae")]
                             + [(f"AE mitdb latent {k}", f"ae-seed-mitdb-z{k}", f"ae-upsample-mitdb-z{k}")
                                for k in (8, 16)]
                             + [("AE mitdb trained on N", "ae-seed-mitdb-normal", "ae-upsample-mitdb-normal")])),
    ]
    if tf:
        rows = [["TF tutorial (dense AE, 5,000 beats)", *TF_TUTORIAL.values()]]
        for r in tf:
            npos = results[r.name]["anomaly"].get("normal_positive", {})
            rows.append([f"ecgae {r.arch}, latent 2 ({results[r.name]['data']['held_out_beats']} held-out beats)",
                         npos.get("accuracy"), npos.get("precision"), npos.get("recall")])
        parts += ["## The TensorFlow 'Intro to Autoencoders' protocol on ECG5000",
                  "Train on normal beats (class 1) of the training split only; threshold = mean + 1 std of their "
                  "reconstruction error; 'normal' is the positive class. Our ECG5000 is the 500-beat training part "
                  "of the archive, so the held-out set is small.",
                  table(["model", "accuracy", "precision", "recall"], rows)]
    parts += [
        "## Export parity (torch vs onnxruntime, held-out beats and N(0, I) latents)",
        "Worst max-abs error over all outputs at each onnxruntime optimization level; multiply-adds per beat "
        "of each graph (the literal seed decoder for comparison).",
        table(["bundle", "atol", "max abs, DISABLE_ALL", "max abs, ENABLE_ALL", "encoder MACs", "decoder MACs",
               "literal decoder MACs"], _parity_rows(manifests)),
        "## The runtime on a raw signal",
        f"The lean runtime alone (numpy + onnxruntime) took the raw 30-minute MIT-BIH record "
        f"({raw['signal_seconds']:.0f} s of ECG), filtered it, found {raw['beats_found']} beats "
        f"({raw['annotated_beats_found']:.1%} of the {raw['annotated_beats']} annotated beats within 50 ms), "
        f"scored them and flagged {raw['flagged']}, in {raw['processing_seconds']:.2f} s.",
        "![samples](samples.png)",
    ]
    from .evaluation.cross import demo_markdown

    parts += [section for section in [demo_markdown(root)] if section]
    parts += summary.get("sections", [])
    parts += quality_section()
    if "uses" in summary:
        from .evaluation.uses import uses_section

        parts.append(uses_section(summary["uses"]))
    bench_md = root / "bench" / "bench.md"
    if bench_md.is_file():
        body = bench_md.read_text().split("\n", 1)[-1]  # drop its own title
        parts += ["## Benchmark (chapter AE, MIT-BIH, L = 450)", body.replace("](", "](bench/")]
    if (root / "archive" / "archive_bench.md").is_file():  # written by ecgae.archive.bench
        parts.append((root / "archive" / "archive_bench.md").read_text())
    path = root / "report.md"
    atomic_write_bytes(path, ("\n\n".join(parts) + "\n").encode())
    return path
