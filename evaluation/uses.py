"""The demo's section on the chapter's other uses: compression, denoising and gap filling.

Runs the three held-out experiments (evaluation/compression.py, evaluation/restoration.py) on the demo's
record-100 bundles, draws their figures into ``demo/uses/`` and returns the report's Markdown section.
The bundles used: every MIT-BIH AE of the ``conv-flat`` and ``conv`` archs for compression (any MIT-BIH
AE when there is none, as in quick mode); for denoising the one of them that reconstructs best
(``conv-flat`` first, then the largest latent); for gap filling that AE and the VAE of the same arch and
latent when there is one (the chapter names filling gaps as a VAE's use).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..benchmarks.markdown import values_table as table

CAPABLE = ("conv-flat", "conv")  # the archs whose decoders have real capacity, the best reconstruction first


def _pick(runs, root: Path) -> dict:
    mitdb = [r for r in runs if r.data == "bundled:mitdb" and not r.train_classes]
    aes = [r for r in mitdb if r.model == "ae" and r.arch in CAPABLE] or [r for r in mitdb if r.model == "ae"]
    best = max(aes, key=lambda r: (r.arch == CAPABLE[0], r.latent))
    gap = [r for r in mitdb if (r.arch, r.latent) == (best.arch, best.latent)]
    order = sorted(aes, key=lambda r: (r.arch != CAPABLE[0], r.latent))
    return {"compression": {r.name: root / "bundles" / r.name for r in order},
            "denoising": (best.name, root / "bundles" / best.name),
            "gap_filling": {r.name: root / "bundles" / r.name for r in sorted(gap, key=lambda r: r.model != "vae")}}


def evaluate_uses(runs, root: Path, quick: bool = False) -> dict:
    """Run the three experiments on the demo's bundles (one setting each when ``quick``); figures go to
    root/uses."""
    from .compression import BITS, evaluate_compression
    from .restoration import (
        ECTOPY_SNRS_DB,
        GAPS_MS,
        SNRS_DB,
        evaluate_denoising,
        evaluate_denoising_ectopy,
        evaluate_gap_filling,
    )

    chosen = _pick(runs, root)
    den_name, den = chosen["denoising"]
    out = {"compression": evaluate_compression(chosen["compression"], (8,) if quick else BITS),
           "denoising": evaluate_denoising(den, (0,) if quick else SNRS_DB) | {"run": den_name},
           "denoising_ectopy": evaluate_denoising_ectopy(den, (0,) if quick else ECTOPY_SNRS_DB),
           "gap_filling": [evaluate_gap_filling(path, (50,) if quick else GAPS_MS) | {"run": name}
                           for name, path in chosen["gap_filling"].items()]}
    _figures(out, root / "uses")
    return out


def _figures(res: dict, folder: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ..training.plots import save_figure

    c = res["compression"]
    fig, ax = plt.subplots(figsize=(6.5, 4))
    for name, fit in dict.fromkeys((r["bundle"], r["fit"]) for r in c["rows"]):
        rows = [r for r in c["rows"] if (r["bundle"], r["fit"]) == (name, fit)]
        ax.plot([r["bits_per_second"] for r in rows], [r["prd_percent"] for r in rows], "o-" if fit else "o--",
                label=f"{name} (latent {rows[0]['latent']}, " + (f"fitted, {fit} steps)" if fit else "encoder)"))
        for r in rows:
            ax.annotate(f"{r['bits']} b", (r["bits_per_second"], r["prd_percent"]), fontsize=7)
    ax.axvline(c["raw_bits_per_second"], color="k", ls="--", lw=1, label="raw MIT-BIH, 11 bit x 360 Hz")
    ax.axhline(10, color="grey", ls=":", lw=1, label="PRD 10 %")
    ax.set(xscale="log", xlabel="bit/s of ECG (whole file)", ylabel="PRD % (band-passed signal)",
           title="Compression of the held-out stretch of record 100")
    ax.legend(fontsize=7)
    save_figure(fig, folder, "compression")
    ex = c["example"]
    t = np.arange(len(ex["original"])) / ex["fs"]
    fig, ax = plt.subplots(figsize=(9, 3))
    ax.plot(t, ex["original"], lw=1, label="band-passed original")
    ax.plot(t, ex["rebuilt"], lw=1, label=f"decompressed ({ex['bundle']}, 8 bits, fit {ex['fit']})")
    ax.set(xlabel="s", ylabel="mV", title="Start of the held-out stretch")
    ax.legend(fontsize=7)
    save_figure(fig, folder, "compression_example")

    d = res["denoising"]
    kinds = list(dict.fromkeys(r["noise"] for r in d["rows"]))
    fig, axes = plt.subplots(1, len(kinds), figsize=(3 * len(kinds), 3), sharey=True)
    for ax, kind in zip(np.atleast_1d(axes), kinds):
        rows = [r for r in d["rows"] if r["noise"] == kind]
        snr = [r["snr_in_db"] for r in rows]
        ax.plot(snr, [r["bandpass_db"] for r in rows], "o-", label="band-pass only")
        ax.plot(snr, [r["model_db"] for r in rows], "s--", label="model estimate")
        ax.plot(snr, [r["blend_db"] for r in rows], "^-", label="blend (denoise)")
        ax.set(title=kind, xlabel="input SNR (dB)")
    np.atleast_1d(axes)[0].set(ylabel="output SNR (dB)")
    np.atleast_1d(axes)[0].legend(fontsize=7)
    save_figure(fig, folder, "denoising")
    ex = d["example"]
    fig, ax = plt.subplots(figsize=(9, 3))
    t = np.arange(len(ex["clean"])) / ex["fs"]
    for key, label in (("noisy", "band-pass only"), ("blend", "denoised (blend)"), ("clean", "clean, band-passed")):
        ax.plot(t, ex[key], lw=1.5 if key == "clean" else 1, label=label)
    ax.set(xlabel="s", ylabel="mV", title="Start of the held-out stretch, all four noises at 0 dB input SNR")
    ax.legend(fontsize=7)
    save_figure(fig, folder, "denoising_example")

    ex = res["denoising_ectopy"]["example"]
    fig, axes = plt.subplots(1, len(ex["labels"]), figsize=(9, 3), sharey=True)
    for ax, label, clean, noisy, out in zip(axes, ex["labels"], ex["clean"], ex["noisy"], ex["denoised"]):
        t = np.arange(len(clean)) / ex["fs"]
        ax.plot(t, noisy, lw=0.8, color="0.6", label="band-pass only")
        ax.plot(t, out, lw=1, label="denoise")
        ax.plot(t, clean, "k", lw=1, ls="--", label="clean")
        ax.set(title={"N": "normal beat", "V": "ventricular beat (synthetic)"}.get(label, label), xlabel="s")
    axes[0].set(ylabel="band-passed window")
    axes[0].legend(fontsize=7)
    fig.suptitle(f"EMG-like noise at {ex['snr_in_db']} dB: a beat the model cannot reproduce keeps its window",
                 fontsize=9, y=1.04)
    save_figure(fig, folder, "denoising_ectopy")

    g = res["gap_filling"][0]["example"]
    hidden = np.flatnonzero(np.asarray(g["observed"]) == 0)
    fig, ax = plt.subplots(figsize=(8, 3))
    ax.plot(g["truth"], "k", lw=1, label="truth")
    ax.plot(hidden, np.asarray(g["linear"])[hidden], lw=1.5, label="linear interpolation")
    ax.plot(hidden, np.asarray(g["model"])[hidden], lw=1.5, label="model (masked reconstruction)")
    ax.axvspan(hidden[0], hidden[-1], color="grey", alpha=0.15)
    ax.set(xlabel="sample", ylabel="z-scored amplitude",
           title=f"A held-out beat of median model error ({res['gap_filling'][0]['run']})")
    ax.legend(fontsize=7)
    save_figure(fig, folder, "gap_filling")


def uses_section(res: dict) -> str:
    """The report's Markdown for the three experiments (figures linked relative to the report)."""
    c, d, g, v = res["compression"], res["denoising"], res["gap_filling"], res["denoising_ectopy"]
    comp_rows = [[r["bundle"], r["latent"], r["fit"], r["bits"], r["bytes"], r["bits_per_second"],
                  f"{r['compression_ratio']:.0f}:1", r["prd_percent"]] for r in c["rows"]]
    den_rows = [[r["noise"], r["snr_in_db"], r["bandpass_db"], r["model_db"], r["blend_db"],
                 r["blend_db"] - r["bandpass_db"]] for r in d["rows"]]
    best = min((r for r in c["rows"] if r["prd_percent"] <= 10), key=lambda r: r["bits_per_second"], default=None)
    ectopy_rows = [[r["noise"], r["snr_in_db"], r["normal_bandpass_db"], r["normal_denoised_db"],
                    r["ventricular_bandpass_db"], r["ventricular_denoised_db"]] for r in v["rows"]]
    gap_rows = [[run["run"], r["mask"], r["hidden_samples_per_beat"], r["linear_rmse"], r["model_rmse"],
                 f"{r['model_better_share']:.0%}"] for run in g for r in run["rows"]]
    return "\n\n".join([
        "## Compression (`ecgae compress` / `ecgae decompress`)",
        f"The held-out stretch of record 100 ({c['seconds']:.0f} s, {c['beats']} beats found by the runtime) "
        "stored as per-beat latents quantised to the stated bits, R-R intervals, and each beat's offset and "
        "gain (float16); the file's every byte is counted. The rebuild takes each sample from the beat that "
        "owns it (midway between R peaks); `fit` 0 stores the encoder's latents, `fit` N latents refined by N "
        "Gauss-Newton steps to rebuild each beat's own part (`ecgae compress --fit N`). PRD against the "
        "band-passed signal the model sees (zero-mean, so PRDN) over the span the windows cover; raw MIT-BIH "
        f"format: {c['raw_bits_per_second']} bit/s.",
        table(["bundle", "latent", "fit", "bits", "bytes", "bit/s", "vs raw", "PRD %"], comp_rows),
        (f"Lowest bit rate at PRD <= 10 %: {best['bits_per_second']:.0f} bit/s ({best['compression_ratio']:.0f}:1, "
         f"{best['bundle']}, fit {best['fit']}, {best['bits']} bits)." if best else
         "No point reaches PRD <= 10 %."),
        "![compression](uses/compression.png)\n\n![example](uses/compression_example.png)",
        f"## Denoising (`{d['run']}`)",
        f"Noise added to the raw record; the {d['beats']} held-out beats cut at their reference R peaks from the "
        "band-passed noisy signal; each window replaced by the model's estimate (its reconstruction at the "
        "least-squares gain and offset) or by the blend of window and estimate, per sample, with the weights the "
        "export measured on validation beats under band-passed white noise, taken at the batch's median residual "
        "(`ecgae.runtime.restore.denoise`); windows joined as the codec joins them. Output SNR against "
        "the band-passed clean signal over the windows' span; input SNR against the clean signal's power in the "
        f"model's band. Smallest margin of the blend over the band-pass alone: {d['min_margin_db']:.1f} dB.",
        table(["noise", "input SNR dB", "band-pass dB", "model estimate dB", "blend dB", "blend - band-pass dB"],
              den_rows),
        "![denoising](uses/denoising.png)\n\n![example](uses/denoising_example.png)",
        f"With ventricular beats: the same stretch with synthetic multiform ventricular beats every 4-6 beats "
        f"({v['ventricular']} of {v['beats']} beats); output SNR over each beat's own part (0.2 s before R to "
        "0.35 s after), normal and ventricular beats apart. A beat the model cannot reproduce keeps its window "
        "and does not count towards the batch's noise level.",
        table(["noise", "input SNR dB", "normal: band-pass dB", "normal: denoise dB", "ventricular: band-pass dB",
               "ventricular: denoise dB"], ectopy_rows),
        "![denoising with ventricular beats](uses/denoising_ectopy.png)",
        "## Gap filling (" + ", ".join(f"`{run['run']}`" for run in g) + ")",
        f"Each of the {g[0]['beats']} held-out beats (z-scored) loses one stretch at a random place, or every sample "
        "above half its R-peak height (saturation); the hidden samples are filled by masked reconstruction "
        "(the latent, gain and offset that best fit the observed samples; a VAE's latent is its mean; "
        f"{g[0]['iterations']} damped Gauss-Newton steps) and by "
        "straight lines. RMS error on the hidden samples, mean over beats:",
        table(["bundle", "mask", "hidden samples/beat", "linear RMSE", "model RMSE", "beats model better"], gap_rows),
        "![gap filling](uses/gap_filling.png)",
        "On the stretch with ventricular beats (as for denoising above), normal and ventricular beats apart: a beat "
        "whose observed samples the model fits worse than 99 % of clean validation beats gets straight lines, "
        "not a normal-shaped fill.",
        table(["bundle", "mask", "beats", "linear RMSE", "model RMSE"],
              [[run["run"], r["mask"], r["beats"], r["linear_rmse"], r["model_rmse"]]
               for run in g for r in run["ectopy_rows"]]),
    ])
