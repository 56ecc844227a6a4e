"""Beat loaders behind one interface, selected by a spec string.

Specs: ``bundled`` (= ``bundled:mitdb``), ``bundled:ecg5000``, ``wfdb:DIR``, ``ucr:FILE``,
``npy:FILE``, ``csv:FILE``. Every loader returns a :class:`BeatSet` whose beats went through the
runtime's preprocessing, so training sees exactly what a deployed model will see.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..runtime.errors import InputError
from ..runtime.io import read_array
from ..runtime.preprocess import (
    Preprocessing,
    design_bandpass,
    fir_filter,
    normalise_beats,
    resample,
    resample_beats,
    window_beats,
)
from .build_dataset import BUNDLED
from .splits import split_indices

MODEL_RATE = 360.0  # Hz: MIT-BIH's rate and the chapter's setting
WINDOW = 450  # samples, 1.25 s at 360 Hz
PRE = 150  # samples before the R peak: P wave and PR segment fit, T wave and the next beat's onset follow
BAND_HZ = (0.5, 40.0)  # baseline wander below, mains and muscle noise above
BEAT_SYMBOLS = frozenset("NLRBAaJSVrFejnE/fQ?")  # WFDB beat annotation codes (rhythm marks excluded)
NO_LABEL = "?"


@dataclass
class BeatSet:
    """Model-ready beats with what is known about each: label, recording, position in it."""

    beats: np.ndarray  # float32 [N, L], per-beat z-scored
    labels: np.ndarray  # str [N]: beat symbol or class; NO_LABEL when unknown. Never used by the loss.
    records: np.ndarray  # str [N]: recording each beat comes from
    positions: np.ndarray  # int64 [N]: R-peak sample (continuous sources) or row index (beat sources)
    prep: Preprocessing
    source: str
    normal_label: str  # the label that means "normal beat" for evaluation
    time_ordered: bool = True  # False: rows carry no time order (UCR), so splits need not keep blocks

    def __len__(self) -> int:
        return len(self.beats)

    def subset(self, idx: np.ndarray) -> BeatSet:
        return BeatSet(self.beats[idx], self.labels[idx], self.records[idx], self.positions[idx],
                       self.prep, self.source, self.normal_label, self.time_ordered)

    def split(self) -> dict[str, np.ndarray]:
        """Train/val/test indices that keep neighbouring beats on one side (see splits.py)."""
        guard = self.prep.length if self.prep.pre is not None else 1
        return split_indices(self.records, self.positions, guard, self.time_ordered)


def design_filter(fs: float, band: tuple[float, float] = BAND_HZ) -> np.ndarray:
    """The training band-pass: a linear-phase FIR of about 2 s (odd length), stored in every run."""
    return design_bandpass(fs, band)


def check_lead(signal: np.ndarray, fs: float, record: str, source: str) -> None:
    """Refuse a lead with NaN/Inf or shorter than one window, naming the record."""
    if not np.all(np.isfinite(signal)):
        raise InputError(f"{source}: record {record} has {int((~np.isfinite(signal)).sum())} NaN/Inf samples")
    n = int(round(signal.size * MODEL_RATE / fs))
    if n < WINDOW:
        raise InputError(f"{source}: record {record} is shorter than one window: expected >= {WINDOW} "
                         f"samples at {MODEL_RATE:g} Hz, received {n}")


def beats_at_peaks(signal: np.ndarray, fs: float, peaks: np.ndarray, labels: np.ndarray, record: str,
                   source: str) -> BeatSet:
    """Resample a continuous lead to the model rate, filter it, and cut windows at the given R peaks."""
    check_lead(signal, fs, record, source)
    x = resample(np.asarray(signal, dtype=np.float64), fs, MODEL_RATE)
    taps = design_filter(MODEL_RATE)
    prep = Preprocessing(MODEL_RATE, WINDOW, PRE, taps, BAND_HZ)
    peaks = np.round(np.asarray(peaks) * MODEL_RATE / fs).astype(np.int64)
    windows, keep = window_beats(fir_filter(x, taps), peaks, PRE, WINDOW)
    return BeatSet(normalise_beats(windows, prep.eps), np.asarray(labels)[keep].astype(str),
                   np.full(len(keep), record), peaks[keep], prep, source, "N")


def _annotated_beats(samples: np.ndarray, symbols: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    is_beat = np.isin(symbols, list(BEAT_SYMBOLS))
    return samples[is_beat], symbols[is_beat]


def _check_bundled() -> None:
    if not BUNDLED.is_file():
        raise InputError(f"bundled: expected the bundled data set at {BUNDLED}, which is missing; "
                         "reinstall ecgae or rebuild it with python -m ecgae.training.build_dataset")


def bundled_mitdb() -> tuple[np.ndarray, float, np.ndarray, np.ndarray]:
    """Record 100's lead MLII in mV, its sample rate, and its annotated beats (R-peak sample, symbol)."""
    _check_bundled()
    with np.load(BUNDLED, allow_pickle=False) as z:
        signal = (z["mitdb_100_adc"].astype(np.float64) - z["mitdb_100_baseline"]) / z["mitdb_100_gain"]
        peaks, labels = _annotated_beats(z["mitdb_100_ann_sample"], z["mitdb_100_ann_symbol"])
        return signal, float(z["mitdb_100_fs"]), peaks, labels


def load_bundled(name: str) -> BeatSet:
    if name == "mitdb":
        signal, fs, peaks, labels = bundled_mitdb()
        return beats_at_peaks(signal, fs, peaks, labels, "mitdb/100", "bundled:mitdb")
    _check_bundled()
    with np.load(BUNDLED, allow_pickle=False) as z:
        if name == "ecg5000":
            return _beat_rows(z["ecg5000_beats"], z["ecg5000_labels"], "ecg5000", "bundled:ecg5000", None, False)
    raise InputError(f"data spec: expected 'bundled', 'bundled:mitdb' or 'bundled:ecg5000', received 'bundled:{name}'")


def _lead_index(names: list[str]) -> int:
    """Prefer MLII (the chapter's lead), otherwise the first channel."""
    return names.index("MLII") if "MLII" in names else 0


def load_wfdb(folder: Path) -> BeatSet:
    """Every record in a WFDB folder; reference annotations (.atr) when present, else XQRS R peaks."""
    import wfdb
    from wfdb import processing

    if not folder.is_dir():
        raise InputError(f"wfdb: expected a folder of WFDB records, received {str(folder)!r} (not a folder)")
    headers = sorted(folder.glob("*.hea"))
    if not headers:
        raise InputError(f"wfdb: expected at least one .hea header in {folder}, found none")
    sets = []
    for hea in headers:
        stem = str(hea.with_suffix(""))
        try:
            rec = wfdb.rdrecord(stem)
        except Exception as e:  # wfdb raises many types for bad headers and data files
            raise InputError(f"wfdb: cannot read record {hea.name}: {type(e).__name__}: {e}") from None
        if rec.p_signal is None or rec.p_signal.ndim != 2 or rec.p_signal.shape[0] == 0:
            raise InputError(f"wfdb: record {hea.stem} has no samples")
        lead = rec.p_signal[:, _lead_index(list(rec.sig_name or []))]
        if hea.with_suffix(".atr").is_file():
            try:
                ann = wfdb.rdann(stem, "atr")
            except Exception as e:
                raise InputError(f"wfdb: cannot read annotations {hea.stem}.atr: {type(e).__name__}: {e}") from None
            peaks, labels = _annotated_beats(ann.sample, np.asarray(ann.symbol))
        else:
            check_lead(lead, rec.fs, hea.stem, f"wfdb:{folder}")
            peaks = processing.xqrs_detect(lead, fs=rec.fs, verbose=False)
            labels = np.full(len(peaks), NO_LABEL)
        sets.append(beats_at_peaks(lead, rec.fs, peaks, labels, hea.stem, f"wfdb:{folder}"))
    return _concat(sets)


def _concat(sets: list[BeatSet]) -> BeatSet:
    first = sets[0]
    return BeatSet(np.concatenate([s.beats for s in sets]), np.concatenate([s.labels for s in sets]),
                   np.concatenate([s.records for s in sets]), np.concatenate([s.positions for s in sets]),
                   first.prep, first.source, first.normal_label, first.time_ordered)


def _beat_rows(beats: np.ndarray, labels: np.ndarray | None, record: str, source: str,
               length: int | None, time_ordered: bool) -> BeatSet:
    """Pre-cut beats, one per row: check, stretch to ``length`` if asked, z-score."""
    if beats.ndim != 2 or beats.shape[0] == 0 or beats.shape[1] < 2:
        raise InputError(f"{source}: expected a 2-D array with one beat per row, received shape {beats.shape}")
    bad = ~np.isfinite(beats)
    if bad.any():
        rows = np.flatnonzero(bad.any(axis=1))
        raise InputError(f"{source}: expected finite values, received NaN/Inf in {len(rows)} rows "
                         f"(first: row {rows[0]})")
    beats = resample_beats(beats.astype(np.float64), length or beats.shape[1])
    prep = Preprocessing(None, beats.shape[1], None)
    labels = np.full(len(beats), NO_LABEL) if labels is None else np.asarray(labels).astype(str)
    return BeatSet(normalise_beats(beats, prep.eps), labels, np.full(len(beats), record),
                   np.arange(len(beats), dtype=np.int64), prep, source, "1", time_ordered)


def load_ucr(path: Path, length: int | None) -> BeatSet:
    """UCR archive text or tsv: the class in column 0, then the beat."""
    if not path.is_file():
        raise InputError(f"ucr: expected an existing UCR text/tsv file, received {str(path)!r} (not found)")
    try:
        table = np.loadtxt(path, delimiter="\t" if path.suffix.lower() == ".tsv" else None, ndmin=2)
    except ValueError as e:
        raise InputError(f"ucr: {path.name} is not a numeric table ({e})") from None
    if table.shape[1] < 3:
        raise InputError(f"ucr: expected a class column and >= 2 samples per row in {path.name}, "
                         f"received shape {table.shape}")
    labels = np.where(table[:, 0] == np.round(table[:, 0]), table[:, 0].astype(np.int64).astype(str),
                      table[:, 0].astype(str))
    return _beat_rows(table[:, 1:], labels, path.stem, f"ucr:{path}", length, False)


def load_beats(spec: str, length: int | None = None) -> BeatSet:
    """Load beats by spec; ``length`` stretches pre-cut beats (ucr/npy/csv) to the model's L."""
    kind, _, arg = spec.partition(":")
    if kind == "bundled":
        bs = load_bundled(arg or "mitdb")
    elif kind == "wfdb" and arg:
        bs = load_wfdb(Path(arg))
    elif kind == "ucr" and arg:
        return load_ucr(Path(arg), length)
    elif kind in ("npy", "csv") and arg:
        return _beat_rows(read_array(arg, kind), None, Path(arg).stem, spec, length, True)
    else:
        raise InputError(f"data spec: expected one of bundled, bundled:mitdb, bundled:ecg5000, wfdb:DIR, "
                         f"ucr:FILE, npy:FILE, csv:FILE; received {spec!r}")
    if len(bs) == 0:
        raise InputError(f"{spec}: no beat has a full {WINDOW}-sample window (empty selection)")
    if length is not None and length != bs.prep.length:
        raise InputError(f"{spec}: continuous records are cut into {bs.prep.length}-sample windows; "
                         f"received a request for L={length}")
    return bs


@dataclass
class HeldOutRecord:
    """Record 100 with the annotated R peaks of its held-out (test) beats, for signal-level experiments."""

    raw: np.ndarray  # the whole lead MLII in mV
    fs: float
    peaks: np.ndarray  # annotated R peaks of the test split's beats
    start: int  # first sample of the held-out stretch: the first test window's start


def held_out_mitdb() -> HeldOutRecord:
    """The bundled record and the stretch the time split holds out (the last 15% of its beats)."""
    raw, fs, _, _ = bundled_mitdb()
    bs = load_bundled("mitdb")
    peaks = bs.positions[bs.split()["test"]]
    return HeldOutRecord(raw, fs, peaks, int(peaks[0] - bs.prep.pre))
