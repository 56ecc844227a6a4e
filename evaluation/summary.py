"""The demo's opening summary and the documentation's results page: what works, what does not, which bundle
to deploy, and the headline figures, each beside the command that reproduces it.

Every figure is read from the demo's own measurements (its evaluation, cross-wearer, benchmark and
experiment results), so the README's results block and ``docs/results.md`` never drift from what
``make demo`` measured: no figure here is typed by hand.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np

from ..benchmarks.markdown import table
from ..runtime import Model
from ..runtime.io import atomic_write_bytes
from .cross import DEMO_BUNDLES, labels_at, signal_cases

README_START = "<!-- results: written by make demo from its own run; do not edit by hand -->"
README_END = "<!-- end of results -->"


def cross_results(root: Path) -> dict[str, dict]:
    """The cross-wearer results the demo wrote, by bundle name, in DEMO_BUNDLES order."""
    return {n: json.loads((root / "cross" / f"{n}.json").read_text()) for n in DEMO_BUNDLES
            if (root / "cross" / f"{n}.json").is_file()}


def _annotated(result: dict, key: str) -> list[float]:
    """The AUCs of ``key`` ('today' or a score name) over the cases that have both classes."""
    out = []
    for case in result["cases"].values():
        f = case["today"] if key == "today" else case["scores"][key]
        if f.get("auc") is not None:
            out.append(f["auc"])
    return out


def _flagged_unannotated(result: dict, key: str) -> list[float]:
    """The flagged shares of ``key`` on the cases without annotations (mostly normal beats: false alarms)."""
    out = []
    for case in result["cases"].values():
        f = case["today"] if key == "today" else case["scores"][key]
        if f.get("normal", 0) + f.get("abnormal", 0) == 0 and f.get("flagged_share") is not None:
            out.append(f["flagged_share"])
    return out


def deploy_choice(cross: dict[str, dict]) -> str | None:
    """The bundle to deploy: the one whose default-score AUC is highest in its worst annotated case."""
    scored = {n: min(_annotated(r, r["default_score"]), default=0.0) for n, r in cross.items()}
    return max(scored, key=scored.get) if scored else None


def _span(values: list[float], fmt: str) -> str:
    if not values:
        return "-"
    lo, hi = min(values), max(values)
    return format(lo, fmt) if format(lo, fmt) == format(hi, fmt) else f"{format(lo, fmt)} to {format(hi, fmt)}"


def summary(root: Path, results: dict[str, dict], docs: str) -> str:
    """The opening paragraphs: what works, which bundle to deploy, what does not. ``docs`` is the path
    prefix from the page being written to the documentation pages ('' in docs/, '../docs/' in demo/)."""
    cross = cross_results(root)
    name = deploy_choice(cross)
    parts = []
    if name is not None:
        r = cross[name]
        d = r["default_score"]
        parts += [
            f"**What works: scoring a wearer against their own enrolment.** `{name}` (an AE trained on one person's "
            f"normal beats), calibrated on each person's first {r['calibration_seconds']:g} s, default score "
            f"`{d}`: AUC {_span(_annotated(r, d), '.3f')} over the {len(_annotated(r, d))} annotated cases; on the "
            f"unannotated records of other people it flags {_span(_flagged_unannotated(r, d), '.1%')} of the beats "
            f"(mostly normal beats: a false-alarm rate). See [enrolment]({docs}enrolment.md).",
            f"**Deploy `demo/bundles/{name}`** with a profile per wearer: `ecgae calibrate demo/bundles/{name} "
            "RECORDING --seconds 120 --out wearer.json`, then `ecgae score ... --profile wearer.json` or "
            "`ecgae monitor ... --profile wearer.json`.",
            f"**What does not work: one threshold for everyone.** Without enrolment the same bundle's reconstruction "
            f"error gives AUC {_span(_annotated(r, 'today'), '.3f')} on those cases and flags "
            f"{_span(_flagged_unannotated(r, 'today'), '.1%')} of the unannotated people's beats.",
        ]
    collapsed = [n for n, m in results.items()
                 if any("collapsed" in w or "one beat" in w for w in m.get("warnings", []))]
    if collapsed:
        parts.append(f"**Collapsed VAEs:** {', '.join(f'`{n}`' for n in collapsed)}: their posterior carries "
                     "nothing and their samples are one beat (`ecgae train` and `ecgae evaluate` say so). A VAE "
                     f"needs a smaller KL weight here (`--beta 0.0005`). See [models and training]({docs}models.md).")
    below = [n for n, m in results.items() if "mitdb" in n and (m["anomaly"].get("auc_all") or 1.0) < 0.5]
    if below:
        parts.append(f"**Below chance on record 100 without enrolment:** {len(below)} of "
                     f"{sum('mitdb' in n for n in results)} MIT-BIH bundles rank the record's few held-out abnormal "
                     "beats below its normal ones: the chapter's window holds the next beat, so the error follows the "
                     f"rhythm more than the beat's shape ([models and training]({docs}models.md)).")
    return "\n\n".join(parts)


def headline_rows(root: Path, results: dict[str, dict], demo: dict, manifests: dict[str, dict]) -> list[list[str]]:
    """[figure, measured, command] rows of the handful of figures a reader asks for first."""
    rows = []
    cross = cross_results(root)
    name = deploy_choice(cross)
    if name is not None:
        r = cross[name]
        rows.append(["cross-wearer AUC with enrolment (default score), annotated cases",
                     _span(_annotated(r, r["default_score"]), ".3f"), f"`ecgae evaluate demo/bundles/{name} --cross`"])
        rows.append(["false alarms on other people, with / without enrolment",
                     f"{_span(_flagged_unannotated(r, r['default_score']), '.1%')} / "
                     f"{_span(_flagged_unannotated(r, 'today'), '.1%')}",
                     f"`ecgae evaluate demo/bundles/{name} --cross`"])
    mse = {n: m["reconstruction"]["mse"] for n, m in results.items()}
    if "ae-seed-mitdb" in mse and "ae-upsample-mitdb" in mse:
        rows.append(["held-out MSE, chapter decoder vs corrected (AE, record 100)",
                     f"{mse['ae-seed-mitdb']:.3f} vs {mse['ae-upsample-mitdb']:.3f}",
                     "`ecgae evaluate demo/bundles/ae-upsample-mitdb --out m.json`"])
    raw = demo.get("raw_signal")
    if raw:
        rows.append(["raw 30-min record -> beats -> scores, one core",
                     f"{raw['signal_seconds'] / raw['processing_seconds']:,.0f}x real time; "
                     f"{raw['annotated_beats_found']:.1%} of annotated beats found", "`make demo`"])
    if manifests:
        worst = max(max(v["max_abs"] for outs in m["parity"]["levels"].values() for v in outs.values())
                    for m in manifests.values())
        rows.append(["export parity, torch vs onnxruntime, worst max abs error", f"{worst:.1e}",
                     "`ecgae info BUNDLE --parity`"])
    rows += _beat_class_rows(root)
    comp = demo.get("uses", {}).get("compression", {}).get("rows", [])
    best = min((c for c in comp if c["prd_percent"] <= 10), key=lambda c: c["bits_per_second"], default=None)
    if best:
        rows.append(["compression at PRD <= 10 %", f"{best['bits_per_second']:.0f} bit/s "
                     f"({best['compression_ratio']:.0f}:1 against MIT-BIH's format), PRD {best['prd_percent']:.1f} %",
                     f"`ecgae compress demo/bundles/{best['bundle']} RECORD --bits {best['bits']} --out r.ecgz`"])
    return rows


def results_page(root: Path, results: dict, demo: dict, manifests: dict, machine: dict, when: str,
                 figure: str | None = None) -> str:
    """``docs/results.md``: where and when, the summary, the headline table (and ``figure``, a path relative
    to the page, of the reconstructions), and where every other table is."""
    header = ["figure", "measured", "reproduce with"]
    return "\n\n".join([
        "# Results",
        f"Written by `make demo` on {when} on {machine['cpu_model']} ({machine['usable_cores']} usable cores, load "
        f"average {machine['load_average_1m']:.1f} at the start), in {demo['wall_seconds']:.0f} s "
        f"({len(demo['runs'])} runs{', quick mode' if demo['quick'] else ''}). Nothing on this page is typed by "
        "hand: run `make demo` again to measure it on your machine.",
        summary(root, results, ""),
        "## Headline figures",
        "\n".join(table(header, headline_rows(root, results, demo, manifests))),
        f"![Reconstructions: typical, worst and abnormal beats]({figure})" if figure else "",
        "## Every table",
        "The same run wrote [every figure and table](report.md) (`demo/report.md`): held-out metrics of every "
        "run, export parity, the benchmark, cross-wearer scoring with every score candidate, beat classes, the "
        "field table, the quality gate, archive-scale scoring, compression, denoising and gap filling. The pages "
        "of this site explain each of them and link to their tables there.",
    ]).replace("\n\n\n\n", "\n\n")


def readme_block(root: Path, results: dict, demo: dict, manifests: dict, when: str) -> str:
    """The README's results table, between its markers."""
    rows = headline_rows(root, results, demo, manifests)
    return "\n".join([README_START, f"Measured by `make demo` on {when} ([all results](docs/results.md)):", "",
                      *table(["figure", "measured", "reproduce with"], rows), README_END])


def replace_readme_block(readme: Path, block: str) -> None:
    """Swap the README's results block (between the markers) for ``block``; a README without them is left."""
    text = readme.read_text()
    start, end = text.find(README_START), text.find(README_END)
    if start < 0 or end < start:
        return
    atomic_write_bytes(readme, (text[:start] + block + text[end + len(README_END):]).encode())


def plot_examples(bundle: Path, out: Path) -> Path:
    """Record 100's held-out part through ``bundle``: the typical normal beat (median score), the worst one,
    and the abnormal beat of highest score, each with its reconstruction."""
    from ..training.plots import plt, save_figure

    model = Model.load(bundle)
    case = signal_cases()[0]
    beats, peaks = model.beats_from_signal(case.signal, case.fs)
    scores = model.score(beats)
    labels = labels_at(peaks, case.fs, case.ann_sample, case.ann_symbol)
    normal = np.flatnonzero(labels == "N")
    abnormal = np.flatnonzero((labels != "N") & (labels != "?"))
    picks = [("typical normal beat", normal[np.argsort(scores[normal])[len(normal) // 2]]),
             ("worst beat", int(np.argmax(scores)))]
    if abnormal.size:
        picks.append((f"abnormal beat ({labels[abnormal[np.argmax(scores[abnormal])]]})",
                      abnormal[np.argmax(scores[abnormal])]))
    rebuilt = model.reconstruct(beats[[i for _, i in picks]])
    fig, axes = plt.subplots(1, len(picks), figsize=(4 * len(picks), 3), sharey=True)
    for ax, (what, i), x_hat in zip(np.atleast_1d(axes), picks, rebuilt):
        ax.plot(np.asarray(beats[i]).ravel(), "k", lw=1, label="beat")
        ax.plot(np.asarray(x_hat).ravel(), lw=1, label="reconstruction")
        ax.set(title=f"{what}, score {scores[i]:.2f}", xlabel="sample")
    np.atleast_1d(axes)[0].legend(fontsize=7)
    fig.suptitle(f"{Path(bundle).name} on record 100's held-out part", fontsize=10)
    save_figure(fig, out.parent, out.stem)
    return out


def _beat_class_rows(root: Path) -> list[list[str]]:
    """The EC57 gross figures on the real long records and the field table's spread, when the demo ran them."""
    rows = []
    ec57 = root / "ec57" / "ec57.json"
    real = json.loads(ec57.read_text())["gross"].get("real", {}).get("model") if ec57.is_file() else None
    if real:
        rows.append(["beat classes after a 2-min enrolment, real MIT-BIH records (EC57 gross): VEB Se / +P, N Sp",
                     f"{real['veb_se']:.3f} / {real['veb_pp']:.3f}, {real['n_spec']:.3f}",
                     "`ecgae evaluate BUNDLE --ec57 RECORD... --out ec57.json`"])
    field = root / "field" / "field.json"
    if field.is_file():
        d = json.loads(field.read_text())
        done = [r for r in d["rows"] if r.get("usable_share") is not None]
        rows.append([f"other people's and devices' recordings ({len(done)} leads): usable / flagged after enrolment",
                     f"{_span([r['usable_share'] for r in done], '.1%')} / "
                     f"{_span([r['flagged_share'] for r in done], '.1%')}",
                     "`ecgae evaluate BUNDLE --cross --out cross.json`"])
    return rows


REPORT_LINK = re.compile(r"(!?)\[([^\]]*)\]\(([^)#\s]*)(#[^)\s]*)?\)")


def report_page(root: Path, page: Path) -> Path:
    """``docs/report.md``: the demo's full report as a page of the site, so the explanatory pages link to the
    tables a run wrote instead of carrying copies typed by hand. The images it shows are copied into a folder
    named after the page (a stale one from an earlier run is removed first), its links to the site's pages
    made relative to the site, and a link to any other file of the run left as its name."""
    text = (root / "report.md").read_text()
    images = page.parent / page.stem
    if images.is_dir():
        shutil.rmtree(images)

    def relink(m: re.Match) -> str:
        bang, label, target, anchor = m.group(1), m.group(2), m.group(3), m.group(4) or ""
        if target.startswith("../docs/"):
            return f"{bang}[{label}]({target.removeprefix('../docs/')}{anchor})"
        if not target or target.startswith(("http://", "https://")):
            return m.group(0)
        if bang and (root / target).is_file():
            (images / target).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(root / target, images / target)
            return f"![{label}]({page.stem}/{target})"
        return f"{label} (`{target}` in the demo's output)"

    atomic_write_bytes(page, (REPORT_LINK.sub(relink, text).rstrip() + "\n").encode())
    return page
