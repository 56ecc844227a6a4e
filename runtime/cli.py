"""``ecgae encode|reconstruct|score|sample|info``: the runtime commands, numpy + onnxruntime only.

wfdb (for WFDB records) and matplotlib (for --plot) are imported only when asked for, with a clear error
naming the extra to install when they are missing.
"""

from __future__ import annotations

import argparse
import io
import sys
from pathlib import Path

import numpy as np

from . import validate, wearer
from .errors import EcgaeError, InputError
from .files import check_wfdb_record, shown
from .io import atomic_write_bytes, read_array, write_array
from .leads import choose_lead
from .model import Model

ARRAY_SUFFIXES = (".npy", ".csv")
PLOT_SUFFIXES = (".png", ".svg", ".pdf")
PLOTTED = 8  # sampled beats drawn by --plot: enough to see variety, few enough to tell apart

SCORE_COLUMNS = ["index", "score", "flag", "usable"]
UNUSABLE_WARNING = 0.5  # warn when more than this share of a recording's beats are in unusable signal
OUTPUTS = {
    "encode": "latents [B, latent] (AE: z; VAE: mu)",
    "reconstruct": "reconstructed beats [B, L]",
    "score": "[B, 4] rows of (index, score, flag, usable): index is the R-peak sample for a signal or record "
             "and the row for beats; score the reconstruction MSE (or the wearer-relative score with --profile), "
             "NaN for a beat in unusable signal; flag 1 when score > threshold (with --profile: when the beat is "
             "ectopic, class S or V); usable 0 when the quality gate "
             "found the signal around the beat to be noise, flat, clipped or mains (always 1 for beats)",
}


def add_model_options(parser: argparse.ArgumentParser) -> None:
    """How the bundle is run: threads, and which of its graphs (export --int8 / --ort add the variants)."""
    parser.add_argument("--precision", choices=("fp32", "int8"), default="fp32",
                        help="the bundle's FP32 graphs or its INT8 ones (from 'ecgae export --int8'), which bring "
                             "their own threshold")
    parser.add_argument("--graph-format", choices=("onnx", "ort"), default="onnx",
                        help="ONNX graphs or onnxruntime's own .ort format (from 'ecgae export --ort')")
    parser.add_argument("--threads", type=int, default=1, help="onnxruntime intra-op threads")


def load_model(args: argparse.Namespace) -> Model:
    """The bundle with the graphs the options chose."""
    return Model.load(args.bundle, threads=args.threads, precision=getattr(args, "precision", "fp32"),
                      graph_format=getattr(args, "graph_format", "onnx"))


def check_out(out: str | Path, suffixes: tuple[str, ...], name: str = "--out") -> Path:
    """Refuse an output name before any work: its suffix, and that it is not a folder."""
    path = Path(out)
    if path.suffix.lower() not in suffixes:
        raise InputError(f"{name}: expected a {' or '.join(suffixes)} file name, received {shown(path.name)!r}")
    if path.is_dir():
        raise InputError(f"{name}: expected a file name, received the folder {shown(path)!r}")
    return path


def add_arguments(parser: argparse.ArgumentParser, name: str) -> None:
    """Register the options of sub-command ``name`` (encode, reconstruct, score, sample or info)."""
    parser.add_argument("bundle", metavar="BUNDLE", help="bundle folder (manifest.json, encoder.onnx, decoder.onnx)")
    if name in OUTPUTS:
        parser.add_argument("input", metavar="INPUT",
                            help="beats, one per row, in .npy or .csv; or a WFDB record (path without extension) "
                                 "or, with --fs, a 1-D raw signal in .npy/.csv, cut into beats first")
        parser.add_argument("--out", required=True, metavar="FILE", help=f".npy or .csv: {OUTPUTS[name]}")
        parser.add_argument("--fs", type=float, metavar="HZ", help="INPUT is a raw single-lead signal at HZ")
        parser.add_argument("--lead", metavar="NAME|INDEX", help="WFDB channel (default MLII, else II, else the "
                            "first ECG lead)")
    if name == "score":
        parser.add_argument("--threshold", type=float, help="flag threshold (default: the bundle's calibrated one)")
        parser.add_argument("--profile", metavar="FILE",
                            help="wearer profile from 'ecgae calibrate': wearer-relative scores and threshold")
    if name == "sample":
        parser.add_argument("-n", type=int, required=True, help="number of beats to draw")
        parser.add_argument("--seed", type=int, default=0, help="seed of z ~ N(0, I) (default 0: reproducible)")
        parser.add_argument("--out", required=True, metavar="FILE", help=".npy or .csv: sampled beats [n, L]")
        parser.add_argument("--plot", metavar="FILE",
                            help=f"also draw the first {PLOTTED} beats ({', '.join(PLOT_SUFFIXES)})")
    if name == "info":
        parser.add_argument("--parity", action="store_true",
                            help="re-run the bundle's reference beats and compare with the export-time outputs")
    add_model_options(parser)


def run(args: argparse.Namespace) -> int:
    """Run one parsed sub-command; errors are the project's own, which ecgae.cli turns into exit code 2."""
    if args.command != "info":
        check_out(args.out, ARRAY_SUFFIXES)
    if getattr(args, "plot", None):
        check_out(args.plot, PLOT_SUFFIXES, "--plot")
    model = load_model(args)
    if args.command == "info":
        return _info(model, args.parity)
    if args.command == "sample":
        beats = model.sample(args.n, seed=args.seed)
        if args.plot:
            _plot(beats, Path(args.plot))
        return _write(args.out, beats, "x")
    if args.command == "score":
        return _write(args.out, score_input(model, args), SCORE_COLUMNS)
    beats, _ = _read_input(model, args)
    if args.command == "encode":
        return _write(args.out, model.encode(beats), "z")
    return _write(args.out, model.reconstruct(beats), "x")


def _write(out: str, arr: np.ndarray, columns: list[str] | str) -> int:
    """Write rows; a CSV gets a header row (``columns``, or a prefix numbered per column)."""
    width = int(np.prod(arr.shape[1:])) if arr.ndim > 1 else 1
    names = columns if isinstance(columns, list) else [f"{columns}{i}" for i in range(width)]
    write_array(out, arr, names)
    print(f"wrote {shown(out)}: {arr.shape[0]} rows" + (f" x {arr.shape[1]}" if arr.ndim > 1 else ""))
    return 0


def read_input(model: Model, args: argparse.Namespace) -> tuple[np.ndarray | None, float | None, np.ndarray | None]:
    """(signal, fs, None) for a raw signal (.npy/.csv with --fs) or WFDB record, (None, None, beats [B, 1, L])
    for beats one per row: how every command that takes INPUT reads it."""
    path = Path(args.input)
    if path.suffix.lower() in ARRAY_SUFFIXES:
        arr = read_array(path, "INPUT")
        if args.fs is None:
            return None, None, validate.as_beats(arr, model.input_length, f"INPUT {shown(path)}")
        fs = validate.sample_rate(args.fs, "--fs")
        _note_resampling(model, fs)
        return arr, fs, None
    if args.fs is not None:
        raise InputError(f"--fs: expected only with a .npy/.csv signal (a WFDB record states its own rate), "
                         f"received --fs {args.fs} with {shown(path)!r}")
    signal, fs, lead = read_wfdb_lead(path, args.lead)
    print(f"read lead {lead} of {shown(path)} ({signal.size} samples at {fs:g} Hz)")
    _note_resampling(model, fs)
    return signal, fs, None


def _note_resampling(model: Model, fs: float) -> None:
    """Say so when the signal is resampled to the bundle's rate: a wrong --fs shows up here first."""
    rate = model.preprocessing.sample_rate
    if rate is not None and abs(fs - rate) > 1e-9:
        print(f"resampled from {fs:g} Hz to the bundle's {rate:g} Hz")


def _read_input(model: Model, args: argparse.Namespace) -> tuple[np.ndarray, np.ndarray]:
    """(beats [B, 1, L] float32, index [B]): the R-peak sample of each beat cut from a signal, else its row."""
    signal, fs, beats = read_input(model, args)
    if beats is not None:
        return beats, np.arange(len(beats))
    try:
        beats, index = model.beats_from_signal(signal, fs)
    except InputError as e:
        raise InputError(f"INPUT {shown(args.input)}: {e}") from None
    print(f"{len(beats)} beats cut from {shown(args.input)} ({np.asarray(signal).size} samples at {fs:g} Hz)")
    return beats, index


def read_wfdb(path: Path, lead: str | None) -> tuple[np.ndarray, float]:
    """One lead of a WFDB record in physical units, and its sample rate."""
    signal, fs, _ = read_wfdb_lead(path, lead)
    return signal, fs


def read_wfdb_lead(path: Path, lead: str | None) -> tuple[np.ndarray, float, str]:
    """One lead of a WFDB record in physical units, its sample rate and its name (``leads.choose_lead``)."""
    record = path.with_suffix("") if path.suffix.lower() in (".hea", ".dat") else path
    if not record.with_name(record.name + ".hea").is_file():
        raise InputError(f"INPUT: expected a .npy or .csv file or a WFDB record (RECORD with RECORD.hea beside "
                         f"it), received {shown(path)!r}")
    try:
        import wfdb
    except ImportError:
        raise InputError(f"INPUT {shown(path)}: reading a WFDB record needs the wfdb package, which is not installed: "
                         "pip install '.[wfdb]' in the ecgae source folder") from None
    check_wfdb_record(record, f"INPUT {shown(path)}")
    try:
        rec = wfdb.rdrecord(str(record))
    except Exception as e:  # wfdb raises plain ValueError/OSError/... for damaged records
        reason = " ".join(str(e).split())
        raise InputError(f"INPUT {shown(path)}: cannot read the WFDB record ({type(e).__name__}: {reason})") from None
    if rec.p_signal is None or not rec.n_sig:
        raise InputError(f"INPUT {shown(path)}: expected a WFDB record with at least one signal, received none")
    names = [str(n) for n in (rec.sig_name or [""] * rec.n_sig)]
    channel = choose_lead(names, lead, f"INPUT {shown(path)}")
    return rec.p_signal[:, channel], float(rec.fs), names[channel] or f"#{channel}"


def _plot(beats: np.ndarray, path: Path) -> None:
    """Draw the first sampled beats, written atomically; matplotlib only when asked for."""
    if path.suffix.lower() not in PLOT_SUFFIXES:
        raise InputError(f"--plot: expected a file name ending in {', '.join(PLOT_SUFFIXES)}, received {path.name!r}")
    try:
        from matplotlib.figure import Figure
    except ImportError:
        raise EcgaeError("--plot: needs matplotlib, which is not installed: "
                         "pip install '.[plot]' in the ecgae source folder") from None
    fig = Figure(figsize=(8, 3), layout="constrained")
    ax = fig.add_subplot()
    for i, beat in enumerate(beats[:PLOTTED]):
        ax.plot(beat, lw=1, label=f"sample {i}")
    ax.set(xlabel="sample", ylabel="z-scored amplitude", title=f"{len(beats)} beats decoded from z ~ N(0, I)")
    buf = io.BytesIO()
    fig.savefig(buf, format=path.suffix[1:].lower(), dpi=120)
    atomic_write_bytes(path, buf.getvalue())


def _info(model: Model, parity: bool) -> int:
    """Print the manifest summary of a bundle that has passed format and hash checks."""
    m = model.manifest
    prep = model.preprocessing
    anomaly, parity_at_export = (m.get(k) if isinstance(m.get(k), dict) else {} for k in ("anomaly", "parity"))
    window = "pre-cut beats (no raw-signal windowing)" if prep.pre is None else \
        f"{prep.length} samples at {prep.sample_rate:g} Hz, {prep.pre} before the R peak"
    lines = [
        f"bundle        {shown(model.bundle_dir)} (format {m['format']} v{m['format_version']}, "
        f"created {m.get('created_utc', '?')}); graphs verified by sha256",
        "manifest      " + ("sealed: its own sha256 verified" if model.sealed else
                            "not sealed (format 1 bundle: export it again so any changed byte is refused)"),
        f"model         {model.kind.upper()}, arch {m['model'].get('arch', '?')}, L = {model.input_length}, "
        f"latent = {model.latent_dim}, decoder graph {m['model'].get('decoder_graph', '?')}",
        f"window        {window}",
        f"filter        {'none' if prep.taps is None else f'{prep.taps.size}-tap zero-phase FIR {prep.band_hz} Hz'}",
        "anomaly       " + (f"score > {model.threshold:.6g} ({anomaly.get('rule', '?')} of {anomaly.get('score', '?')})"
                            if model.threshold is not None else "no calibrated threshold"),
        f"onnx          {m.get('onnx', {})}",
        f"parity        passed={parity_at_export.get('passed', '?')} at atol {parity_at_export.get('atol', '?')} "
        "(export time)",
        f"versions      {m.get('versions', {})}",
        f"variants      {_variants(m)}",
    ]
    print("\n".join(lines))
    if parity:
        diffs = model.check_parity()
        print("parity now    " + ", ".join(f"{k} {v:.2g}" for k, v in diffs.items()) + " (max |runtime - torch|)")
    return 0


def _variants(manifest: dict) -> str:
    """The bundle's edge graphs (export --int8 / --ort) by precision and format, or that it has none."""
    held = manifest.get("variants") if isinstance(manifest.get("variants"), dict) else {}
    parts = [f"{v.get('precision', '?')} .{v.get('format', '?')}: "
             + ", ".join(str(g.get("file")) for g in v.get("graphs", {}).values() if isinstance(g, dict))
             for v in held.values() if isinstance(v, dict)]
    return "; ".join(parts) + " (--precision, --graph-format)" if parts else "none (FP32 .onnx only)"


def score_input(model: Model, args: argparse.Namespace) -> np.ndarray:
    """[B, 4] rows of (index, score, flag, usable) of INPUT: against ``args.profile`` when given, else the
    bundle's score and threshold (or ``args.threshold``). A raw signal goes through ``Model.analyze``, so
    beats in unusable signal are reported and counted, not scored."""
    profile = None
    if args.profile:
        if args.threshold is not None:
            raise InputError("--threshold: expected either --threshold or --profile (which holds the wearer's "
                             "threshold), received both")
        profile = wearer.WearerProfile.load(args.profile)
        profile.check_bundle(wearer.model_graphs(model), model.input_length, model.latent_dim)
    limit = profile.threshold if profile is not None else model.decision_threshold(args.threshold)
    signal, fs, beats = read_input(model, args)
    if signal is None:
        index = np.arange(len(beats))
        result = wearer.score_batch(model, beats, None, profile) if profile is not None else None
        scores = model.score(beats) if result is None else result.score
        usable = np.ones(len(beats), dtype=bool)
    else:
        try:
            result = model.analyze(signal, fs, profile)
        except InputError as e:
            raise InputError(f"INPUT {shown(args.input)}: {e}") from None
        scores, index, usable = result.score, result.r_peak, result.usable
        why = ", ".join(f"{int((result.reason == r).sum())} {r}" for r in np.unique(result.reason[~usable]))
        missing = int(np.diff(result.gaps).sum())
        gaps = f"; {len(result.gaps)} gaps (NaN/Inf, {missing / fs:.3g} s missing)" if len(result.gaps) else ""
        rate = heart_rate(np.diff(result.r_peak) / fs)
        print(f"{len(index)} beats cut from {shown(args.input)} ({np.asarray(signal).size} samples at {fs:g} Hz"
              f"{gaps}{'' if rate is None else f', median {rate:.0f} beats/min'}); {int((~usable).sum())} in "
              "unusable signal, not scored" + (f" ({why})" if why else ""))
        warn_if_unusable(len(index), int((~usable).sum()), args.input)
    if profile is not None:
        flagged = result.flag
        classes = ", ".join(f"{int((result.label == c).sum())} {c}" for c in ("N", "S", "V", "/", "Q"))
        print(f"{int(flagged.sum())} of {int(usable.sum())} classified beats ectopic (flagged): {classes}")
    else:
        with np.errstate(invalid="ignore"):
            flagged = usable & (scores > limit)
        print(f"{int(flagged.sum())} of {int(usable.sum())} scored beats above the threshold {limit:.6g}")
    return np.column_stack([index, scores, flagged, usable]).astype(np.float64)


def heart_rate(rr: np.ndarray) -> float | None:
    """Median beats per minute over intervals between found beats (seconds), None without any. A signal read
    at the wrong --fs gives a rate a person may well have (the detector finds P, QRS and T apart when it is
    read too slowly, parts of stretched beats when too fast), so no bound can catch it: the summary says the
    rate for the user to check against the wearer's."""
    rr = np.asarray(rr, dtype=np.float64)
    rr = rr[np.isfinite(rr) & (rr > 0)]
    return None if rr.size == 0 else float(60.0 / np.median(rr))


def warn_if_unusable(beats: int, unusable: int, source: object) -> None:
    """A recording with no beats, or with most of them in unusable signal, is most often read wrongly:
    say so on stderr with what to check, rather than report it as scored."""
    check = ("check --fs (the signal's own sample rate), the units (mV expected; ADC counts need a scale such as "
             "--scale 1/200 in 'ecgae monitor'), --format for binary streams, and --lead")
    if beats == 0:
        print(f"warning: no beats found in {shown(source)}: {check}", file=sys.stderr)
    elif unusable > UNUSABLE_WARNING * beats:
        print(f"warning: {unusable} of {beats} beats ({unusable / beats:.0%}) are in unusable signal, so this "
              f"recording is mostly not scored: {check}", file=sys.stderr)
