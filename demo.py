"""``make demo``: train on the bundled beats, export, verify parity, evaluate through the runtime,
benchmark, and write ``demo/report.md`` with its figures; with ``--results`` and ``--readme`` (as make demo
runs it) also the documentation's results page and the README's results block, from the same measurements.

Re-running continues where it stopped: finished runs are kept, interrupted ones resume from their
checkpoint, bundles are replaced only by bundles that passed parity.
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from .cli import main as cli
from .runtime.io import atomic_write_bytes, write_json


@dataclass
class Run:
    """One training run of the demo and why it is there."""

    name: str
    model: str
    arch: str
    data: str
    latent: int
    epochs: int
    purpose: str
    train_classes: list[str] = field(default_factory=list)
    threshold_rule: str = "p99"
    lr: float = 1e-3
    beta: float | None = None  # the VAE's KL weight; None: the chapter's


def plan(quick: bool) -> list[Run]:
    """The chapter's runs (all beats, latent 2), latent 8/16 comparisons, and the anomaly protocol."""
    ep_mit, ep_ecg = (2, 3) if quick else (30, 60)
    runs = [Run(f"{m}-{a}-{d}", m, a, f"bundled:{d}", 2, ep_mit if d == "mitdb" else ep_ecg, "chapter")
            for d in ("mitdb", "ecg5000") for a in ("seed", "upsample") for m in ("ae", "vae")]
    if quick:
        return runs[:1] + runs[4:6]
    runs += [Run(f"ae-{a}-mitdb-z{k}", "ae", a, "bundled:mitdb", k, ep_mit, "latent size")
             for k in (8, 16) for a in ("seed", "upsample")]
    runs += [Run(f"ae-{a}-mitdb-normal", "ae", a, "bundled:mitdb", 2, ep_mit, "anomaly (train on N)", ["N"])
             for a in ("seed", "upsample")]
    runs += [Run(f"ae-{a}-ecg5000-tf", "ae", a, "bundled:ecg5000", 2, ep_ecg, "TF tutorial protocol", ["1"],
                 "mean+1std") for a in ("seed", "upsample")]
    runs += [Run(f"ae-{a}-mitdb-z{k}", "ae", a, "bundled:mitdb", k, 60, why, lr=3e-3)
             for a, why in (("conv", "decoder capacity"), ("conv-flat", "encoder positions, other uses"))
             for k in (2, 16)]
    # the chapter's KL weight collapses this VAE's posterior (README, "Decoder capacity"): a tenth of it
    runs.append(Run("vae-conv-flat-mitdb-z16", "vae", "conv-flat", "bundled:mitdb", 16, 60, "gap filling (VAE)",
                    lr=3e-3, beta=5e-4))
    return runs


def _train_args(r: Run, out: Path) -> list[str]:
    args = ["train", "--model", r.model, "--arch", r.arch, "--data", r.data, "--latent-dim", str(r.latent),
            "--epochs", str(r.epochs), "--threshold-rule", r.threshold_rule, "--lr", str(r.lr), "--out", str(out)]
    args += ["--beta", str(r.beta)] if r.beta is not None else []
    return args + (["--train-classes", ",".join(r.train_classes)] if r.train_classes else [])


def _call(args: list[str]) -> None:
    print(f"\n$ ecgae {' '.join(args)}", flush=True)
    if cli(args) != 0:
        raise SystemExit(f"demo: 'ecgae {args[0]}' failed; see the message above")


def train_all(runs: list[Run], root: Path) -> int:
    """Train every run not finished earlier (resuming interrupted ones); returns how many were trained.
    Each run opens with its place in the plan and, from the second one trained, the training time left
    (the time per epoch so far times the epochs to go)."""
    todo = [r for r in runs if not (root / "runs" / r.name / "metrics.json").is_file()]
    epochs_left, epochs_done, t0 = sum(r.epochs for r in todo), 0, time.perf_counter()
    for k, r in enumerate(runs, 1):
        out = root / "runs" / r.name
        if r not in todo:
            print(f"\n[run {k} of {len(runs)}] {r.name}: finished earlier, kept")
            continue
        left = (f", about {_duration((time.perf_counter() - t0) / epochs_done * epochs_left)} of training left"
                if epochs_done else "")
        print(f"\n[run {k} of {len(runs)}{left}] {r.name}: {r.purpose}", flush=True)
        _call(_train_args(r, out) + (["--resume"] if (out / "checkpoint.pt").is_file() else []))
        epochs_done, epochs_left = epochs_done + r.epochs, epochs_left - r.epochs
    return len(todo)


def _duration(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 90 else f"{seconds / 60:.0f} min"


def export_all(runs: list[Run], root: Path) -> dict[str, dict]:
    manifests = {}
    for r in runs:
        bundle = root / "bundles" / r.name
        _call(["export", str(root / "runs" / r.name), "--out", str(bundle), "--force"]
              + (["--int8", "--ort"] if r is runs[0] else []))  # the benchmarked bundle: edge formats too
        manifests[r.name] = json.loads((bundle / "manifest.json").read_text())
    return manifests


def evaluate_all(runs: list[Run], root: Path) -> dict[str, dict]:
    """Held-out metrics of every bundle, computed through the lean runtime, with what says a model does not
    work (a collapsed VAE, an AUC below 0.5)."""
    from .evaluation.cli import model_warnings
    from .training.evaluate import evaluate

    results = {}
    for r in runs:
        results[r.name] = evaluate(root / "bundles" / r.name)
        results[r.name]["warnings"] = model_warnings(root / "bundles" / r.name, results[r.name])
        write_json(root / "runs" / r.name / "evaluation.json", results[r.name])
        a = results[r.name]["anomaly"]
        print(f"{r.name:28s} held-out MSE {results[r.name]['reconstruction']['mse']:.4f}   "
              f"AUC normal vs abnormal {a.get('auc_all', float('nan')):.3f}")
    return results


def raw_signal_demo(bundle: Path) -> dict:
    """A device's view: raw MLII samples in, beats found, scored and flagged by the runtime alone."""
    from importlib.resources import files

    from .runtime import Model

    with np.load(files("ecgae.training") / "data" / "bundled.npz", allow_pickle=False) as z:
        signal = (z["mitdb_100_adc"] - z["mitdb_100_baseline"]) / z["mitdb_100_gain"]
        fs = float(z["mitdb_100_fs"])
        ann = z["mitdb_100_ann_sample"][np.isin(z["mitdb_100_ann_symbol"], ["N", "A", "V"])]
    model = Model.load(bundle)
    t = time.perf_counter()
    beats, peaks = model.beats_from_signal(signal, fs)
    flagged = model.is_anomalous(beats)
    seconds = time.perf_counter() - t
    matched = np.abs(ann[:, None] - peaks[None, :]).min(axis=1) <= int(0.05 * fs)
    return {"signal_seconds": len(signal) / fs, "processing_seconds": seconds, "beats_found": int(len(peaks)),
            "annotated_beats": int(len(ann)), "annotated_beats_found": float(matched.mean()),
            "flagged": int(flagged.sum())}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("demo"))
    ap.add_argument("--quick", action="store_true", help="a few epochs and a short benchmark (for tests)")
    ap.add_argument("--results", type=Path, help="also write the documentation's results page here")
    ap.add_argument("--readme", type=Path, help="also rewrite this README's results block")
    args = ap.parse_args(argv)
    root: Path = args.out
    t0 = time.perf_counter()
    runs = plan(args.quick)
    trained = train_all(runs, root)
    t_train = time.perf_counter() - t0
    manifests = export_all(runs, root)
    print("\nHeld-out evaluation through the runtime (onnxruntime, no torch in the loop):")
    results = evaluate_all(runs, root)
    from .evaluation.cross import run_demo

    print("\nCross-wearer scoring (calibrated on each person's first minutes):")
    run_demo(root, [r.name for r in runs])
    from .evaluation.summary import cross_results, deploy_choice, plot_examples

    deploy = deploy_choice(cross_results(root))
    if deploy is not None:
        plot_examples(root / "bundles" / deploy, root / "examples.png")
    chapter = root / "bundles" / runs[0].name
    wearer_bundle = root / "bundles" / next((r.name for r in runs if r.train_classes == ["N"]), runs[0].name)
    precut = root / "bundles" / next(r.name for r in runs if r.data == "bundled:ecg5000" and r.model == "ae")
    sections = real_recordings(wearer_bundle, precut, root, args.quick)
    raw = raw_signal_demo(chapter)
    print(f"\nraw signal -> runtime: {raw['beats_found']} beats found in {raw['signal_seconds']:.0f} s of ECG "
          f"({raw['annotated_beats_found']:.1%} of annotated beats) in {raw['processing_seconds']:.2f} s; "
          f"{raw['flagged']} flagged")
    vae = next(r for r in runs if r.model == "vae")
    _call(["sample", str(root / "bundles" / vae.name), "-n", "3", "--seed", "0",
           "--out", str(root / "samples.npy"), "--plot", str(root / "samples.png")])
    _call(["bench", str(chapter), "--run", str(root / "runs" / runs[0].name), "--out", str(root / "bench")]
          + (["--quick"] if args.quick else []))
    from .archive.bench import write_bench as archive_bench  # the [archive] extra: pyarrow, Ray, edfio

    archive_bench(chapter, root / "archive", quick=args.quick)
    from .evaluation.uses import evaluate_uses

    uses = evaluate_uses(runs, root, args.quick)
    summary = {"wall_seconds": time.perf_counter() - t0, "train_seconds": t_train, "trained": trained,
               "quick": args.quick, "runs": [asdict(r) for r in runs], "raw_signal": raw, "uses": uses,
               "sections": sections}
    write_json(root / "demo.json", summary | {"evaluation": results})
    from .report import write_report

    report = write_report(root, runs, manifests, results, summary)
    print(f"\nwrote {report} in {summary['wall_seconds']:.0f} s on {platform.processor() or platform.machine()}")
    if args.results or args.readme:
        publish(root, args.results, args.readme, results, summary, manifests)
    return 0


def real_recordings(bundle: Path, precut: Path, root: Path, quick: bool) -> list[str]:
    """The report's sections on real recordings of other people and devices, with the wearer's bundle: beat
    classes as EC57 reports them (real annotated records and GENERATED ectopy; pre-cut ECG5000 beats with the
    ``precut`` bundle), the field table, and the bundle's C on an emulated Cortex-M4F when its toolchain is
    installed (``make mcu``)."""
    from .benchmarks.mcu import report_section as mcu_section
    from .evaluation.ec57_report import report_section as ec57_section
    from .evaluation.ec57_report import stored_recordings
    from .evaluation.field import markdown as field_markdown
    from .evaluation.field import write_field_table
    from .evaluation.precut import markdown as precut_markdown
    from .evaluation.precut import precut_rows
    from .runtime import Model

    print("\nBeat classes (EC57) on real annotated records and generated ectopy:")
    model = Model.load(bundle)
    records = stored_recordings(() if quick else ("mitdb_106", "mitdb_118", "mitdb_200"), minutes=not quick)
    ec57 = ec57_section(model, root / "ec57", records, **({"burdens": (0.2,), "patterns": ("bigeminy",),
                                                           "leads": ("MLII",)} if quick else {}))
    sections = [f"## Beat classes (ANSI/AAMI EC57), bundle `{bundle.name}`\n\n{ec57.replace('](', '](ec57/')}",
                f"## Beat classes of pre-cut beats (ECG5000)\n\n"
                f"{precut_markdown(precut.name, precut_rows(Model.load(precut)))}"]
    if not quick:
        print("\nField table (other people's and devices' recordings):")
        sections.append("\n".join(field_markdown(write_field_table(model, root / "field"))))
    sections.append(mcu_section([bundle], root / "mcu"))
    return sections


def publish(root: Path, results_page: Path | None, readme: Path | None, results: dict, summary: dict,
            manifests: dict) -> None:
    """The results page (with the reconstructions figure beside it) and the README's results block."""
    from .benchmarks.machine import describe_machine
    from .evaluation import summary as pages

    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    if results_page is not None:
        figure = None
        if (root / "examples.png").is_file():
            (results_page.parent / "figures").mkdir(parents=True, exist_ok=True)
            shutil.copyfile(root / "examples.png", results_page.parent / "figures" / "examples.png")
            figure = "figures/examples.png"
        text = pages.results_page(root, results, summary, manifests, describe_machine(), when, figure)
        atomic_write_bytes(results_page, (text + "\n").encode())
        report = pages.report_page(root, results_page.parent / "report.md")
        print(f"wrote {results_page} and {report}")
    if readme is not None:
        pages.replace_readme_block(readme, pages.readme_block(root, results, summary, manifests, when))
        print(f"updated the results block of {readme}")


if __name__ == "__main__":
    raise SystemExit(main())
