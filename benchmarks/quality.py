"""Figures of the signal-quality gate (ecgae.runtime.quality) on MIT-BIH record 100, clean and damaged.

Damage is added to 6-second stretches at random places, one kind per stretch: white noise burying the
QRS, clipping (an electrode offset pushes the trace into the converter's rail), dropouts to zero, a lead-off
trace (tiny noise only) and strong 60 Hz mains.
A segment is counted as damaged when it lies wholly inside a damaged stretch and as clean when it
touches none; a beat likewise, by the stretch of raw signal the gate judges it on (the 2 s that end where
its window ends). ``python -m ecgae.benchmarks.quality`` prints the table the README quotes.
"""

from __future__ import annotations

import argparse
import importlib.resources
import itertools
import sys

import numpy as np

from ..runtime.preprocess import Preprocessing, cut_beats
from ..runtime.quality import REASONS, SEGMENT_S, beat_quality, segment_quality

STRETCH_S = 6.0
PER_KIND = 20
WINDOW = (150, 300)  # the bundled MIT-BIH models' beat window: samples before and from the R peak
RAIL_MV = (2047 - 1024) / 200  # record 100's converter's top: 11 bits, 200 codes per mV, zero at code 1024
NOISE_MV = 0.5  # white-noise std (mV): several times the ECG's own std, the QRS is buried
MAINS_MV = 1.0  # 60 Hz amplitude (mV)


def record_100() -> tuple[np.ndarray, float, np.ndarray]:
    """Lead MLII of record 100 in mV, its rate, and the annotated beat R peaks (N, A, V)."""
    path = importlib.resources.files("ecgae.training") / "data" / "bundled.npz"
    with path.open("rb") as f, np.load(f, allow_pickle=False) as z:
        signal = (z["mitdb_100_adc"].astype(np.float64) - z["mitdb_100_baseline"]) / z["mitdb_100_gain"]
        peaks = z["mitdb_100_ann_sample"][np.isin(z["mitdb_100_ann_symbol"], list("NAV"))]
        return signal, float(z["mitdb_100_fs"]), peaks


def damage(x: np.ndarray, kind: str, fs: float, rng: np.random.Generator) -> np.ndarray:
    """One stretch ``x`` with damage of ``kind`` applied."""
    if kind == "noise":
        return x + rng.normal(0.0, NOISE_MV, x.size)
    if kind == "clipping":
        return into_rail(x, 1 / 3)
    if kind == "dropout":
        return np.zeros_like(x)
    if kind == "lead-off":
        return rng.normal(0.0, 0.002, x.size)
    if kind == "mains":
        return x + MAINS_MV * np.sin(2 * np.pi * 60.0 * np.arange(x.size) / fs)
    raise ValueError(kind)


def into_rail(x: np.ndarray, share: float, rail: float = RAIL_MV) -> np.ndarray:
    """``x`` shifted up, as an electrode's offset potential shifts it, until the level ``share`` of the way from
    its median to its top meets the converter's ``rail``, and clipped there: the beats run into a level no
    sample before them got past, which is what a rail is."""
    level = np.median(x) + share * (x.max() - np.median(x))
    return np.minimum(x + (rail - level), rail)


KINDS = ("noise", "clipping", "dropout", "lead-off", "mains")


def evaluate(seed: int = 0) -> dict:
    """Every figure of the gate: clean record, each damage kind, and pure white noise."""
    signal, fs, peaks = record_100()
    clean_q = segment_quality(signal, fs)
    pre, post = WINDOW
    judged = int(round(SEGMENT_S * fs))  # samples of the stretch each beat is judged on, ending at r + post
    out: dict = {
        "clean": {"segments": len(clean_q.usable), "segments_usable": clean_q.usable_fraction(),
                  "beats": len(peaks), "beats_usable": float(beat_quality(signal, fs, peaks, post)[0].mean())},
    }
    rng = np.random.default_rng(seed)
    stretch = int(STRETCH_S * fs)
    slots = rng.permutation(len(signal) // stretch)[: PER_KIND * len(KINDS)]
    damaged = signal.copy()
    kind_of = np.full(len(signal), "", dtype="<U8")
    for i, slot in enumerate(slots):
        kind = KINDS[i % len(KINDS)]
        s = slice(slot * stretch, (slot + 1) * stretch)
        damaged[s] = damage(signal[s], kind, fs, rng)
        kind_of[s] = kind
    q = segment_quality(damaged, fs)
    usable, _ = beat_quality(damaged, fs, peaks, post)
    seg_kinds = [set(kind_of[a : a + q.segment]) for a in q.starts]
    beat_kinds = [set(kind_of[max(r + post - judged, 0) : r + post]) for r in peaks]
    out["damaged"] = {}
    for kind in KINDS:
        inside = np.array([k == {kind} for k in seg_kinds])
        beats_inside = np.array([k == {kind} for k in beat_kinds])
        out["damaged"][kind] = {
            "segments": int(inside.sum()), "segments_caught": float((~q.usable[inside]).mean()),
            "reasons": {r: int((q.reason[inside] == r).sum()) for r in REASONS if (q.reason[inside] == r).any()},
            "beats": int(beats_inside.sum()), "beats_caught": float((~usable[beats_inside]).mean()),
        }
    untouched = np.array([k == {""} for k in seg_kinds])
    clear = np.array([k == {""} for k in beat_kinds])
    out["damaged"]["untouched"] = {
        "segments": int(untouched.sum()), "segments_usable": float(q.usable[untouched].mean()),
        "beats": int(clear.sum()), "beats_usable": float(usable[clear].mean()),
    }
    out["ventricular"] = ventricular_usable(signal, fs, peaks)
    out["others"] = others_usable()
    noise = np.random.default_rng(seed + 1).standard_normal(int(60 * fs))
    cut = cut_beats(noise, fs, Preprocessing(fs, sum(WINDOW), pre))
    out["white_noise_60s"] = {"beats_cut_by_detector": len(cut.r_peak), "beats_usable": int(cut.usable.sum())}
    return out


def ventricular_usable(signal: np.ndarray, fs: float, peaks: np.ndarray, minutes: float = 10.0) -> dict:
    """Usable share of the beats of record 100's first ``minutes`` with synthetic ventricular beats (every
    5th or bigeminy; upright, inverted or biphasic; QRS sd 25 or 40 ms; 0.7 to 3 times R): a gate must not
    take an arrhythmia for bad signal."""
    from ..training.synthetic import with_ventricular_beats

    n = int(minutes * 60 * fs)
    ann = peaks[peaks < n - int(fs)]
    shares = []
    for every, shape, width, size in itertools.product((5, 2), ("up", "down", "bi"), (0.025, 0.04), (0.7, 1.5, 3.0)):
        x, ref, _ = with_ventricular_beats(signal[:n], fs, ann, every, width, size, shape)
        shares.append(float(beat_quality(x, fs, ref, WINDOW[1])[0].mean()))
    return {"settings": len(shares), "beats_usable_min": min(shares), "beats_usable_mean": float(np.mean(shares))}


A103L_ARTEFACT_S = 240.0  # Challenge 2015 a103l: from 4:00 on, motion artefact drives the trace into its rails


def others_usable() -> dict:
    """The other people's bundled recordings (record 100's V5, PTB s0010_re's 15 leads, Challenge 2015 a103l's
    two leads), each beat judged as ``cut_beats`` judges it: the usable share of the clean ones and of a103l
    before 4:00, and how many of a103l's beats after 4:00, where motion artefact clips the trace, are caught."""
    from ..training.build_others import load_record

    clean, a103l_before, a103l_after = [], [], []
    for key in ("mitdb_100_v5", "ptb_s0010_re", "c2015_a103l"):
        x, fs, leads = load_record(key)
        prep = Preprocessing(fs, int(round(sum(WINDOW) * fs / 360.0)), int(round(WINDOW[0] * fs / 360.0)))
        for j in range(len(leads)):
            cut = cut_beats(x[:, j], fs, prep)
            if key != "c2015_a103l":
                clean.append(cut.usable)
            else:
                late = cut.r_peak >= A103L_ARTEFACT_S * fs
                a103l_before.append(cut.usable[~late])
                a103l_after.append(cut.usable[late])
    return {"clean_beats": int(sum(map(len, clean))), "clean_usable": float(np.concatenate(clean).mean()),
            "a103l_before_beats": int(sum(map(len, a103l_before))),
            "a103l_before_usable": float(np.concatenate(a103l_before).mean()),
            "a103l_after_beats": int(sum(map(len, a103l_after))),
            "a103l_after_caught": int(sum(int((~u).sum()) for u in a103l_after))}


def markdown(r: dict) -> str:
    """The figures as the README's table."""
    c, d, n = r["clean"], r["damaged"], r["white_noise_60s"]
    rows = [
        "| signal | segments (2 s) | caught as unusable | beats | beats judged |",
        "|---|---|---|---|---|",
        f"| record 100, clean | {c['segments']} | {1 - c['segments_usable']:.1%} | {c['beats']} | "
        f"{c['beats_usable']:.2%} usable |",
    ]
    for kind in KINDS:
        k = d[kind]
        why = ", ".join(f"{v} {r_}" for r_, v in k["reasons"].items())
        rows.append(f"| record 100 + {kind} | {k['segments']} | {k['segments_caught']:.1%} ({why}) | {k['beats']} | "
                    f"{k['beats_caught']:.1%} unusable |")
    u = d["untouched"]
    rows.append(f"| record 100 damaged, untouched parts | {u['segments']} | {1 - u['segments_usable']:.1%} | "
                f"{u['beats']} | {u['beats_usable']:.2%} usable |")
    v = r["ventricular"]
    rows.append(f"| record 100 (10 min) + synthetic ventricular beats, {v['settings']} settings | | | | "
                f"{v['beats_usable_min']:.2%} usable in the worst setting |")
    o = r["others"]
    rows.append(f"| other people: record 100 via V5, PTB s0010_re (15 leads) | | | {o['clean_beats']} | "
                f"{o['clean_usable']:.2%} usable |")
    rows.append(f"| Challenge 2015 a103l (2 leads), before 4:00 | | | {o['a103l_before_beats']} | "
                f"{o['a103l_before_usable']:.2%} usable |")
    rows.append(f"| a103l after 4:00 (motion artefact, the trace in its rails) | | | {o['a103l_after_beats']} | "
                f"{o['a103l_after_caught']} unusable (clipped) |")
    rows.append(f"| 60 s white noise | | | {n['beats_cut_by_detector']} cut by the detector | "
                f"{n['beats_usable']} usable |")
    return "\n".join(rows)


def report_section() -> list[str]:
    """The demo report's section: the gate's figures, measured now."""
    return ["## Signal-quality gate (MIT-BIH record 100, clean and damaged)",
            "2-second segments, and each beat on the 2 s of raw signal that end with its window, judged by "
            "`ecgae.runtime.quality`; 6-second stretches of each kind of damage at "
            "random places (seed 0); `python -m ecgae.benchmarks.quality` reproduces the table.",
            markdown(evaluate())]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ecgae.benchmarks.quality", description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0, help="where the damage goes (default 0)")
    print(markdown(evaluate(parser.parse_args(argv).seed)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
