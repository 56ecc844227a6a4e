"""Held-out experiments of the runtime's beat restoration: denoising and gap filling, on record 100.

Denoising: noise of each kind (training/noise.py) is added to the raw record at several SNRs (against
the clean signal's power in the model's band); beats are cut at the reference R peaks (so detection
errors do not enter) from the band-passed noisy signal and restored by runtime.restore.denoise (the
model's estimate alone, and blended with the window); the restored windows are joined as the codec
joins them (runtime.codec.rebuild). The band-pass output and the two restored signals are compared with
the band-passed clean signal over the span the windows cover:
output SNR = 10 log10(clean power / power of the error).

With ectopy: the same stretch carries synthetic multiform ventricular beats every 4-6 beats
(training/synthetic.py); the normal and the ventricular beats' own parts (runtime.restore.own_part) are
scored apart, for a denoiser that knows normal beats must not turn the others into normal ones.

Gap filling: each held-out beat loses one stretch of a stated length at a random place (or, for
saturation, every sample above half its R-peak height); the hidden samples are filled by
runtime.restore.fill_gaps and by straight lines, and compared with the truth.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..runtime import Model
from ..runtime.codec import rebuild
from ..runtime.preprocess import Preprocessing, fir_filter, normalise_beats, window_beats
from ..runtime.restore import denoise, fill_gaps, interpolate_gaps, own_part
from ..training.datasets import bundled_mitdb, held_out_mitdb, load_beats
from ..training.noise import NOISES, add_noise
from ..training.synthetic import with_multiform_beats

SNRS_DB = (12, 6, 0, -6)
ECTOPY_SNRS_DB = (12, 6, 0)
ECTOPY_EVERY = (4, 6)  # a multiform ventricular beat every 4 to 6 beats
GAPS_MS = (50, 100, 200)


def output_snr_db(clean: np.ndarray, estimate: np.ndarray) -> float:
    """10 log10(clean signal power around its mean / power of the error)."""
    return float(10 * np.log10(((clean - clean.mean()) ** 2).sum() / ((estimate - clean) ** 2).sum()))


def _noisy(raw: np.ndarray, power: float, fs: float, prep: Preprocessing, peaks: np.ndarray,
           snrs: tuple[int, ...], seed: int):
    """(kind, input SNR, band-passed noisy signal, its windows at ``peaks``) for every noise kind and SNR,
    each noise drawn from its own seed."""
    for k, kind in enumerate([*NOISES, "all four"]):
        for snr in snrs:
            noisy_f = fir_filter(add_noise(raw, power, kind, snr, fs, np.random.default_rng([seed, k, snr + 100])),
                                 prep.taps)
            yield kind, snr, noisy_f, window_beats(noisy_f, peaks, prep.pre, prep.length)[0]


def evaluate_denoising(bundle: Path, snrs: tuple[int, ...] = SNRS_DB, seed: int = 0) -> dict:
    """Output SNR of band-pass alone and band-pass + model, per noise kind and input SNR."""
    model = Model.load(bundle)
    prep = model.preprocessing
    rec = held_out_mitdb()
    first = rec.start - 2 * len(prep.taps)  # the held-out stretch and enough before it for the filter to settle
    rec.raw, rec.peaks, rec.start = rec.raw[first:], rec.peaks - first, rec.start - first
    clean_f = fir_filter(rec.raw, prep.taps)
    clean, keep = window_beats(clean_f, rec.peaks, prep.pre, prep.length)
    power = float(clean_f[rec.start :].var())
    peaks = rec.peaks[keep]
    span = slice(int(peaks[0] - prep.pre), int(peaks[-1] - prep.pre + prep.length))
    truth = clean_f[span]
    rows, example = [], {}
    for kind, snr, noisy_f, noisy in _noisy(rec.raw, power, rec.fs, prep, peaks, snrs, seed):
        outputs = {"bandpass_db": noisy_f[span]}
        for key, blend in (("model_db", False), ("blend_db", True)):
            outputs[key] = rebuild(denoise(model, noisy, blend), peaks - span.start, prep.pre, len(truth))
        rows.append({"noise": kind, "snr_in_db": snr} | {k2: output_snr_db(truth, v) for k2, v in outputs.items()})
        if kind == "all four" and snr == 0:
            cut = slice(0, int(3 * rec.fs))
            example = {"clean": truth[cut], "noisy": outputs["bandpass_db"][cut], "model": outputs["model_db"][cut],
                       "blend": outputs["blend_db"][cut], "fs": rec.fs}
    margins = [r["blend_db"] - r["bandpass_db"] for r in rows]
    return {"bundle": str(bundle), "beats": int(len(clean)), "rows": rows, "min_margin_db": float(min(margins)),
            "example": {k: v.tolist() if isinstance(v, np.ndarray) else v for k, v in example.items()}}


@dataclass
class EctopicStretch:
    """The held-out stretch of record 100 with synthetic multiform ventricular beats every ECTOPY_EVERY beats."""

    raw: np.ndarray  # the whole record with the ventricular beats, mV
    fs: float
    power: float  # the band-passed signal's power over the held-out stretch
    windows: np.ndarray  # [N, L] band-passed windows of the held-out beats
    peaks: np.ndarray
    labels: np.ndarray  # "N", "A" or "V"


def ectopic_stretch(prep: Preprocessing, seed: int = 0) -> EctopicStretch:
    raw, fs, ann, symbols = bundled_mitdb()
    rec = held_out_mitdb()
    first = rec.start - 2 * len(prep.taps)
    ann = ann[np.isin(symbols, list("NAV")) & (ann > first) & (ann < len(raw) - prep.length)]
    x, peaks, labels = with_multiform_beats(raw, fs, ann, ECTOPY_EVERY, seed)
    clean_f = fir_filter(x, prep.taps)
    later = peaks - prep.pre >= rec.start
    clean, keep = window_beats(clean_f, peaks[later], prep.pre, prep.length)
    return EctopicStretch(x, fs, float(clean_f[rec.start :].var()), clean, peaks[later][keep], labels[later][keep])


def evaluate_denoising_ectopy(bundle: Path, snrs: tuple[int, ...] = ECTOPY_SNRS_DB, seed: int = 0) -> dict:
    """Output SNR of the normal and of the ventricular beats' own parts, band-pass alone and ``denoise``,
    on the held-out stretch with synthetic multiform ventricular beats every ECTOPY_EVERY beats."""
    model = Model.load(bundle)
    prep = model.preprocessing
    e, own = ectopic_stretch(prep, seed), own_part(prep)
    clean, labels = e.windows, e.labels
    rows, example = [], {}
    for kind, snr, _, noisy in _noisy(e.raw, e.power, e.fs, prep, e.peaks, snrs, seed):
        out = denoise(model, noisy)
        row = {"noise": kind, "snr_in_db": snr}
        for name, label in (("normal", "N"), ("ventricular", "V")):
            truth = clean[labels == label][:, own]
            row[f"{name}_bandpass_db"] = output_snr_db(truth, noisy[labels == label][:, own])
            row[f"{name}_denoised_db"] = output_snr_db(truth, out[labels == label][:, own])
        rows.append(row)
        if kind == "EMG-like" and snr == snrs[min(1, len(snrs) - 1)]:  # the first ventricular beat, neighbours
            i = max(int(np.argmax(labels == "V")) - 1, 0)
            example = {"clean": clean[i : i + 3], "noisy": noisy[i : i + 3], "denoised": out[i : i + 3],
                       "labels": labels[i : i + 3].tolist(), "snr_in_db": snr, "fs": e.fs}
    return {"bundle": str(bundle), "beats": int(len(labels)), "ventricular": int((labels == "V").sum()), "rows": rows,
            "example": {k: v.tolist() if isinstance(v, np.ndarray) else v for k, v in example.items()}}


def _random_gaps(n: int, length: int, width: int, rng: np.random.Generator) -> np.ndarray:
    starts = rng.integers(0, length - width + 1, size=n)
    cols = np.arange(length)[None, :]
    return ~((cols >= starts[:, None]) & (cols < starts[:, None] + width))


def _errors(truth: np.ndarray, estimate: np.ndarray, observed: np.ndarray) -> np.ndarray:
    """Per-beat RMS error over the hidden samples."""
    hidden = ~observed
    return np.sqrt(((estimate - truth) ** 2 * hidden).sum(axis=1) / hidden.sum(axis=1))


def evaluate_gap_filling(bundle: Path, gaps_ms: tuple[int, ...] = GAPS_MS, seed: int = 0, iterations: int = 5) -> dict:
    """RMS error on hidden samples (z-scored beats) of the model's completion and of linear interpolation."""
    model = Model.load(bundle)
    bs = load_beats(model.manifest["training"]["config"]["data"])
    x = bs.beats[bs.split()["test"]].astype(np.float64)
    fs, length = model.preprocessing.sample_rate, model.input_length
    masks = {f"{g} ms gap": _random_gaps(len(x), length, int(round(g * fs / 1000)), np.random.default_rng([seed, g]))
             for g in gaps_ms}
    masks["saturation (above half the R peak)"] = x <= 0.5 * x.max(axis=1, keepdims=True)
    rows, example = [], {}
    ectopic = ectopic_stretch(model.preprocessing, seed) if fs is not None else None
    for name, observed in masks.items():
        filled, lin = fill_gaps(model, x, observed, iterations), interpolate_gaps(x, observed)
        e_model, e_lin = _errors(x, filled, observed), _errors(x, lin, observed)
        rows.append({"mask": name, "hidden_samples_per_beat": float((~observed).sum(axis=1).mean()),
                     "model_rmse": float(e_model.mean()), "linear_rmse": float(e_lin.mean()),
                     "model_better_share": float((e_model < e_lin).mean())})
        if name == f"{gaps_ms[-1]} ms gap":
            i = int(np.argsort(e_model)[len(e_model) // 2])  # the beat of median model error: a typical case
            example = {"truth": x[i], "observed": observed[i].astype(float), "model": filled[i], "linear": lin[i]}
    return {"bundle": str(bundle), "beats": int(len(x)), "iterations": iterations, "rows": rows,
            "example": {k: v.tolist() for k, v in example.items()},
            "ectopy_rows": [] if ectopic is None else _gap_rows_by_label(model, ectopic, gaps_ms, seed, iterations)}


def _gap_rows_by_label(model: Model, e: EctopicStretch, gaps_ms: tuple[int, ...], seed: int, iterations: int) -> list:
    """Gap-filling errors on the ectopic stretch's windows (z-scored), normal and ventricular beats apart."""
    x, fs, rows = normalise_beats(e.windows), e.fs, []
    for g in gaps_ms:
        observed = _random_gaps(len(x), x.shape[1], int(round(g * fs / 1000)), np.random.default_rng([seed, g]))
        e_model = _errors(x, fill_gaps(model, x, observed, iterations), observed)
        e_lin = _errors(x, interpolate_gaps(x, observed), observed)
        for name, label in (("normal", "N"), ("ventricular", "V")):
            rows.append({"mask": f"{g} ms gap", "beats": name, "model_rmse": float(e_model[e.labels == label].mean()),
                         "linear_rmse": float(e_lin[e.labels == label].mean())})
    return rows
