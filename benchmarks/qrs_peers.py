"""The runtime's beat finder beside open QRS detectors, on the same signals in one run: wfdb's XQRS and
gqrs, and NeuroKit2's methods (each with its own cleaning, as NeuroKit2 pairs them). NeuroKit2 is a
benchmark extra (``pip install '.[dev]'``), never a runtime dependency; without it the table has the
peers that are installed and says which are missing.

Each detector gets the raw lead in mV at the recording's own rate and returns R-peak sample indices;
detections are matched to the reference within 150 ms (ANSI/AAMI EC57), leaving out the reference's
episodes of ventricular flutter (EC57 does: their flutter waves are not beats to count). Speed is the total time each
detector took over the same inputs, as a ratio to the runtime's, so it holds on a shared machine.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from itertools import product

import numpy as np

from ..runtime.preprocess import Preprocessing, r_peaks, resample
from ..training.build_field import ANNOTATED, FIELD, PACED, load_annotations
from ..training.build_others import load_record
from ..training.synthetic import with_ventricular_beats
from .detection import (
    MATCH_S,
    SYMBOL_CLASS,
    apply_condition,
    conditions,
    flutter_episodes,
    pct,
    record_100,
    score_detections,
)
from .generated import eight_bit, slower, with_pacing_spikes
from .markdown import table

Detector = Callable[[np.ndarray, float], np.ndarray]
OURS = "ecgae"
NEUROKIT_METHODS = ("neurokit", "pantompkins1985", "hamilton2002", "elgendi2010", "engzeemod2012")
SPIKE_RATES = (125.0, 250.0, 360.0, 1000.0)
SLOW_BPM = (45.0, 38.0, 30.0)  # record 100 (75 bpm) with a slow heart: empty seconds between beats
QUICK_SECONDS = 300.0  # quick mode (tests): record 100's first 5 minutes
PROGRESS_EVERY = 10  # inputs between two progress lines: the full comparison runs for minutes
STRIP_S = 10.0  # short strips: a wearable's or a challenge's 10-s recording, each detector starting cold


@dataclass(frozen=True)
class Input:
    """One signal to find beats in: a lead in mV, its rate, the reference beats and their symbols, and the
    reference's flutter episodes, which no detector is scored in."""

    name: str
    kind: str  # "annotated" (a real record as annotated) or "generated" (a condition made from one)
    x: np.ndarray
    fs: float
    ref: np.ndarray
    symbols: np.ndarray
    excluded: np.ndarray = field(default_factory=lambda: np.zeros((0, 2), np.int64))  # [E, 2] flutter_episodes


def xqrs(x: np.ndarray, fs: float) -> np.ndarray:
    """wfdb's XQRS with its defaults."""
    from wfdb import processing

    logging.getLogger("wfdb").setLevel(logging.ERROR)
    return np.asarray(processing.xqrs_detect(x, fs=fs, verbose=False), dtype=np.int64)


def gqrs(x: np.ndarray, fs: float) -> np.ndarray:
    """wfdb's gqrs (a port of PhysioNet's gqrs) with its defaults, the signal given in mV."""
    from wfdb import processing

    return np.asarray(processing.gqrs_detect(x, fs=fs), dtype=np.int64)


def neurokit(method: str) -> Detector:
    """NeuroKit2's ``ecg_peaks`` with ``method``, on the signal cleaned by ``ecg_clean`` with the same method
    (the pairing NeuroKit2's ``ecg_process`` uses)."""
    import neurokit2 as nk

    def detect(x: np.ndarray, fs: float) -> np.ndarray:
        clean = nk.ecg_clean(x, sampling_rate=int(round(fs)), method=method)
        _, info = nk.ecg_peaks(clean, sampling_rate=int(round(fs)), method=method)
        return np.asarray(info["ECG_R_Peaks"], dtype=np.int64)

    return detect


def peers(prep: Preprocessing) -> tuple[dict[str, Detector], list[str]]:
    """(name -> detector, the runtime's first; names of peers not installed)."""
    found: dict[str, Detector] = {OURS: lambda x, fs: r_peaks(x, fs, prep)}
    missing = []
    try:
        import wfdb  # noqa: F401

        found |= {"wfdb xqrs": xqrs, "wfdb gqrs": gqrs}
    except ImportError:
        missing += ["wfdb xqrs", "wfdb gqrs"]
    try:
        import neurokit2  # noqa: F401

        found |= {f"nk {m}": neurokit(m) for m in NEUROKIT_METHODS}
    except ImportError:
        missing += [f"nk {m}" for m in NEUROKIT_METHODS]
    return found, missing


def reference(samples: np.ndarray, symbols: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(beat samples, their symbols, flutter episodes [E, 2]) of a record's reference annotations."""
    beat = np.array([s in SYMBOL_CLASS for s in symbols], dtype=bool)
    return (np.asarray(samples, dtype=np.int64)[beat], np.asarray(symbols)[beat],
            flutter_episodes(samples, symbols))


def annotated(quick: bool = False) -> Iterator[Input]:
    """Every annotated MIT-BIH record the project ships: record 100 (MLII), 106, 118 and 200 (MLII) and 24
    one-minute records (MLII, else V5); ``quick`` (for tests): record 100's first 5 minutes and the four
    paced minutes only. (``ecgae detect-eval --peers RECORD...`` takes any other.)"""
    leads, fs, ann, sym = _record_100(QUICK_SECONDS if quick else None)
    yield Input("mitdb 100 MLII", "annotated", leads["MLII"], fs, ann, sym)
    for key in PACED if quick else ANNOTATED:
        x, rate, names = load_record(key, FIELD)
        name = key.split("_")[1] + (" (60 s, paced)" if key in PACED else " (60 s)" if key.endswith("_60s") else "")
        yield Input(f"mitdb {name} {names[0]}", "annotated", x[:, 0], rate, *reference(*load_annotations(key, FIELD)))


def _record_100(seconds: float | None = None) -> tuple[dict[str, np.ndarray], float, np.ndarray, np.ndarray]:
    """Record 100's leads and annotated beats; with ``seconds``, cut midway between the last beat before
    then and the next, so no beat is cut in half."""
    leads, fs, ann, sym = record_100()
    if seconds is None:
        return leads, fs, ann, sym
    k = int(np.searchsorted(ann, seconds * fs))
    n = (ann[k - 1] + ann[k]) // 2
    return {name: v[:n] for name, v in leads.items()}, fs, ann[:k], sym[:k]


def generated(quick: bool = False) -> Iterator[Input]:
    """Record 100 under the detector benchmark's stress conditions and synthetic ventricular beats, through
    an 8-bit ADC (at 360 and 125 Hz), slowed to 30-45 bpm, and with a pacemaker-like spike before every
    beat at 125-1000 Hz.
    ``quick`` (for tests): the first 5 minutes, the 8-bit and spike conditions only."""
    leads, fs, ann, sym = _record_100(QUICK_SECONDS if quick else None)
    for name, lead, change, value, seed in ([] if quick else conditions(quick)):
        if change != "none":  # record 100 as recorded is an annotated input already
            yield Input(f"100 {name}", "generated", *apply_condition(leads[lead], fs, ann, change, value, seed), sym)
    for every, shape, width, size in ([] if quick else product((5, 2), ("up", "down", "bi"), (0.025, 0.04),
                                                                 (0.7, 1.5, 3.0))):
        x, ref, s = with_ventricular_beats(leads["MLII"], fs, ann, every, width, size, shape)
        yield Input(f"100 MLII + V every {every}, {shape}, sd {width * 1e3:.0f} ms, x{size}", "generated",
                    x, fs, ref, s)
    for rate in (fs, 125.0):
        x = leads["MLII"] if rate == fs else resample(leads["MLII"], fs, rate)
        yield Input(f"100 MLII 8-bit at {rate:g} Hz", "generated", eight_bit(x), rate,
                    np.round(ann * rate / fs).astype(np.int64), sym)
    for lead, bpm in product(("MLII", "V5"), () if quick else SLOW_BPM):
        x, ref = slower(leads[lead], fs, ann, bpm)
        yield Input(f"100 {lead} slowed to {bpm:g} bpm", "generated", x, fs, ref, sym)
    for rate in SPIKE_RATES:
        x = leads["MLII"] if rate == fs else resample(leads["MLII"], fs, rate)
        ref = np.round(ann * rate / fs).astype(np.int64)
        yield Input(f"100 MLII + pacing spikes at {rate:g} Hz", "generated", with_pacing_spikes(x, rate, ref)[0],
                    rate, ref, sym)


def _quiet(*_: object) -> None:
    return None


def compare(inputs: Iterator[Input], detectors: dict[str, Detector], log: Callable[..., object] = _quiet,
            found_by: dict[tuple[int, str], np.ndarray] | None = None) -> list[dict]:
    """Every detector on every input: Se, +P, FN, FP and seconds (a detector that raises scores nothing
    and its error is kept). Every PROGRESS_EVERY inputs, ``log`` hears how many are done. ``found_by``, when
    given, keeps the detections by (input's position, detector), so that ``strips`` need not run them again
    (by position: two records of one name in two folders are two inputs)."""
    rows = []
    for i, inp in enumerate(inputs):
        row = {"input": inp.name, "kind": inp.kind, "fs": inp.fs, "seconds": inp.x.size / inp.fs,
               "reference_beats": int(inp.ref.size), "detectors": {}}
        for name, detect in detectors.items():
            t0 = time.perf_counter()
            try:
                found = detect(inp.x, inp.fs)
            except Exception as e:  # a peer's failure is a result of the comparison, not a crash of it
                row["detectors"][name] = {"error": f"{type(e).__name__}: {e}"[:200],
                                          "time_s": time.perf_counter() - t0}
                continue
            took = time.perf_counter() - t0
            if found_by is not None:
                found_by[i, name] = np.asarray(found)
            r = score_detections(inp.ref, found, inp.fs, excluded=inp.excluded)
            row["detectors"][name] = {k: r[k] for k in ("se", "ppv", "fn", "fp")} | {"time_s": took}
        rows.append(row)
        if len(rows) % PROGRESS_EVERY == 0:
            log(f"    {len(rows)} inputs done (the last: {inp.name})")
    return rows


def strips(inputs: list[Input], detectors: dict[str, Detector], found_by: dict[tuple[int, str], np.ndarray],
           seconds: float = STRIP_S) -> dict:
    """Every annotated input cut into consecutive ``seconds`` strips, every detector run on each strip on its
    own (cold: no signal before it), beside its detections on the whole input (``found_by``, kept by
    ``compare`` on the same list; none where it failed there); per detector, both pooled over the same
    spans. A strip's first and last MATCH_S are not scored: a beat cut in half there can be asked of no
    detector. The difference between the two is what starting on a strip costs a detector."""
    out = {name: {"strip": np.zeros(3, np.int64), "whole": np.zeros(3, np.int64), "errors": 0} for name in detectors}
    count = 0
    for i, inp in enumerate(inputs):
        if inp.kind != "annotated":
            continue
        n, edge = int(seconds * inp.fs), int(round(MATCH_S * inp.fs))
        starts = range(0, inp.x.size - n + 1, n)
        count += len(starts)
        for name, detect in detectors.items():
            whole = found_by.get((i, name))
            for s0 in starts:
                try:
                    alone = np.asarray(detect(inp.x[s0 : s0 + n], inp.fs)) + s0
                except Exception:  # a peer's failure is a result, as in compare
                    out[name]["errors"] += 1
                    continue
                span = (s0 + edge, s0 + n - edge)
                ref = inp.ref[(inp.ref >= span[0]) & (inp.ref < span[1])]
                for key, found in (("strip", alone), ("whole", whole)):
                    if found is not None:
                        r = score_detections(ref, found[(found >= span[0]) & (found < span[1])], inp.fs,
                                             excluded=inp.excluded)
                        out[name][key] += [r["tp"], r["fn"], r["fp"]]
    return {"seconds": seconds, "strips": count, "unscored_edge_s": MATCH_S,
            "detectors": {name: {"errors": v["errors"], **{key: _rates(v[key]) for key in ("strip", "whole")}}
                          for name, v in out.items()}}


def _rates(counts: np.ndarray) -> dict:
    tp, fn, fp = (int(c) for c in counts)
    return {"tp": tp, "fn": fn, "fp": fp, "se": tp / (tp + fn) if tp + fn else None,
            "ppv": tp / (tp + fp) if tp + fp else None}


def _best_peer(row: dict, key: str) -> tuple[str, float] | None:
    scored = [(v[key], n) for n, v in row["detectors"].items() if n != OURS and v.get(key) is not None]
    return (max(scored)[1], max(scored)[0]) if scored else None


def shortfalls(rows: list[dict]) -> list[dict]:
    """Inputs where the runtime's Se or +P is below the best peer's on that input."""
    out = []
    for row in rows:
        ours = row["detectors"].get(OURS, {})
        for key in ("se", "ppv"):
            best = _best_peer(row, key)
            if best and ours.get(key) is not None and ours[key] < best[1]:
                out.append({"input": row["input"], "measure": key, "ecgae": ours[key], "best_peer": best[0],
                            "best": best[1]})
    return out


def summary(rows: list[dict], names: list[str]) -> dict[str, dict]:
    """Per detector over all inputs: pooled Se and +P, the inputs it failed on, and its time as a ratio to
    the runtime's over the same inputs."""
    out = {}
    for name in names:
        ok = [r for r in rows if "se" in r["detectors"].get(name, {})]
        tp = sum(r["reference_beats"] - r["detectors"][name]["fn"] for r in ok)
        fn = sum(r["detectors"][name]["fn"] for r in ok)
        fp = sum(r["detectors"][name]["fp"] for r in ok)
        t = sum(r["detectors"][name]["time_s"] for r in ok)
        t_ours = sum(r["detectors"][OURS]["time_s"] for r in ok if "time_s" in r["detectors"].get(OURS, {}))
        out[name] = {"inputs": len(ok), "failed": len(rows) - len(ok), "se": tp / max(tp + fn, 1),
                     "ppv": tp / max(tp + fp, 1), "time_s": t, "time_vs_ecgae": t / t_ours if t_ours else None}
    return out


def speed(detectors: dict[str, Detector], repeats: int = 3, seconds: float | None = None) -> dict[str, dict]:
    """Seconds each detector takes on the raw record 100 (MLII; all 30 minutes unless ``seconds``) on one
    core, best of ``repeats``, and as a ratio to the runtime's (> 1: slower than ecgae)."""
    leads, fs, _, _ = _record_100(seconds)
    best = {}
    for name, detect in detectors.items():
        detect(leads["MLII"][: int(10 * fs)], fs)  # warm-up: imports, filter design
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            detect(leads["MLII"], fs)
            times.append(time.perf_counter() - t0)
        best[name] = min(times)
    return {"signal_seconds": leads["MLII"].size / fs, "repeats": repeats,
            "detectors": {n: {"seconds": t, "vs_ecgae": t / best[OURS]} for n, t in best.items()}}


def default_inputs(quick: bool = False) -> list[Input]:
    """Every annotated input, then every generated one."""
    return list(annotated(quick)) + list(generated(quick))


def measure(prep: Preprocessing, inputs: list[Input], quick: bool = False,
            log: Callable[..., object] = _quiet) -> dict:
    """The peer comparison: every installed detector on every input, the annotated ones also in short strips,
    and their speed on record 100 (quick: its first 5 minutes, once). ``log`` hears each stage's start."""
    detectors, missing = peers(prep)
    log(f"  {len(detectors)} detectors ({', '.join(detectors)}) on {len(inputs)} inputs")
    found_by: dict[tuple[int, str], np.ndarray] = {}
    rows = compare(iter(inputs), detectors, log, found_by)
    log(f"  the same detectors on {STRIP_S:g}-s strips of the "
        f"{sum(i.kind == 'annotated' for i in inputs)} annotated inputs")
    cold = strips(inputs, detectors, found_by)
    log("  their speed on record 100")
    return {"match_window_s": MATCH_S, "detectors": list(detectors), "missing": missing, "rows": rows,
            "summary": summary(rows, list(detectors)), "shortfalls": shortfalls(rows), "strips": cold,
            "speed_record_100": speed(detectors, 1 if quick else 3, QUICK_SECONDS if quick else None)}


def _cell(v: dict) -> str:
    return "error" if "error" in v else f"{pct(v['se'])} / {pct(v['ppv'])}"


def markdown(d: dict) -> list[str]:
    """The peer comparison as Markdown lines: per input Se / +P of every detector, the pooled summary with
    speed ratios, and where the runtime is below the best peer."""
    names = d["detectors"]
    rows = [[r["input"], f"{r['fs']:g}", str(r["reference_beats"]), *(_cell(r["detectors"][n]) for n in names)]
            for r in d["rows"]]
    s = d["summary"]
    sp = d["speed_record_100"]
    v = sp["detectors"]
    pooled = [[n, str(s[n]["inputs"]), str(s[n]["failed"]), pct(s[n]["se"]), pct(s[n]["ppv"]),
               f"{s[n]['time_s']:.2f}", "-" if s[n]["time_vs_ecgae"] is None else f"{s[n]['time_vs_ecgae']:.2f}",
               f"{v[n]['seconds']:.3f}", f"{v[n]['vs_ecgae']:.2f}"] for n in names]
    lines = ["## Beat finding beside open detectors", "",
             f"Se % / +P % within {d['match_window_s'] * 1e3:.0f} ms of the reference (EC57), every detector on "
             "the same raw lead at the recording's rate, in one run.", "",
             *table(["input", "Hz", "beats", *names], rows), "",
             "Pooled over all inputs; time is each detector's total over the inputs it scored, and its ratio to "
             "the runtime's over the same inputs (> 1: slower than ecgae); then the raw record 100 (MLII, "
             f"{sp['signal_seconds'] / 60:.0f} min) on one core, best of {sp['repeats']}, in the same run:", "",
             *table(["detector", "inputs", "failed", "Se %", "+P %", "seconds", "time / ecgae", "100: s",
                     "100: time / ecgae"], pooled)]
    if d["missing"]:
        lines += ["", f"Not installed, so not compared: {', '.join(d['missing'])}."]
    lines += _strips_markdown(d["strips"])
    short = [[f["input"], "Se" if f["measure"] == "se" else "+P", pct(f["ecgae"]), pct(f["best"]), f["best_peer"]]
             for f in d["shortfalls"]]
    lines += ["", f"Where ecgae is below the best peer ({len(short)} of {2 * len(d['rows'])} figures):", ""]
    lines += table(["input", "measure", "ecgae %", "best peer %", "best peer"], short) if short else ["none"]
    return lines


def _strips_markdown(st: dict) -> list[str]:
    rows = [[n, *(cell for key in ("strip", "whole") for cell in (f"{pct(v[key]['se'])} / {pct(v[key]['ppv'])}",
                                                                  str(v[key]["fn"]), str(v[key]["fp"]))),
             str(v["errors"])] for n, v in st["detectors"].items()]
    return ["", f"Short strips: every annotated input above cut into {st['strips']} consecutive "
            f"{st['seconds']:g}-s strips, each detector run on each strip alone (it starts cold, as on a wearable's "
            f"or a challenge's short recording), beside the same detector on the whole input over the same spans. "
            f"A strip's first and last {st['unscored_edge_s'] * 1e3:.0f} ms are not scored (a beat cut in half "
            "there cannot be asked for).", "",
            *table(["detector", "strips: Se % / +P %", "FN", "FP", "whole input: Se % / +P %", "FN", "FP",
                    "strips failed"], rows)]
