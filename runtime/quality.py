"""Signal-quality gate: which stretches of a raw single-lead ECG can carry heartbeats at all.

A QRS detector finds peaks in anything, including white noise, a flat line with rounding noise, or a
clipped trace; scoring those "beats" produces confident nonsense. The gate looks at short segments of
the raw signal (numpy only) and marks a segment unusable when it is

- ``flat``: lead off or dropped out: almost no activity, or one value held for a run long for any ECG and
  long for this recording (a coarse converter holds the resting trace between beats);
- ``clipped``: the trace sits at its extreme for a plateau no R wave has (saturated amplifier or ADC), entered
  by a jump of several quantisation steps, away from the level where the trace rests, and at the recording's
  extreme so far: a rail is a fixed level no sample before it got past, so a small QRS's top held for a few
  samples by a coarse converter, below where earlier beats reached, is none;
- ``mains``: power at 50 or 60 Hz dominates;
- ``noise``: broadband power above the ECG band dominates, or the 5-30 Hz band has none of the sharp
  QRS bursts a heartbeat makes (its kurtosis is that of Gaussian noise).

:func:`segment_quality` gives per-segment flags and reasons for a recording; :func:`beat_quality` says
whether each beat is usable, judged on the stretch of raw signal that ends where the beat's window ends: a stream knows
that verdict as soon as it has the beat's window, so ``BeatStream`` and ``Model.analyze`` agree exactly.
Every check looks only at the stretch itself and at stretches before it (carried as a :class:`History`), never
at later signal.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

import numpy as np

from .errors import InputError
from .robust import nan_median_rows, trailing_windows
from .validate import as_numeric, sample_rate

SEGMENT_S = 2.0  # seconds per segment: two or more beats at any resting rate
FLAT_RATIO = 0.05  # activity below this fraction of the median of recent stretches' activity: lead off
FLAT_HISTORY = 30  # stretches (this one and those before it) whose median activity is the reference
HOLD_S = 0.1  # one value held this long: a dropout (no ECG holds a sample value for 100 ms) ...
HOLD_FACTOR = 3.0  # ... where it is also this many times the median longest hold of the recent stretches: a
# coarse converter holds the resting trace for long (a live stretch's longest hold is at most 2.9 times the
# recording's median, from record 100 at 26-100 codes per mV and 125-360 Hz to MIMIC-II's 8-bit leads)
PLATEAU_S = 0.015  # at the segment's extreme this long, entered or left abruptly: clipped (an R peak's top
# lasts a few ms)
ABRUPT = 0.01  # share of the span between a plateau and the sample next to it that makes its edge abrupt: a
# smooth broad wave (a T wave) leaves its top by about the tolerance, a clipped QRS by far more
LONG_PLATEAU_S = 0.1  # at the extreme this long: clipped however slowly the trace got there
REST = 0.2  # in a coarse trace, an extreme within this share of the span of the stretch's median is where the
# trace rests (a flat baseline between beats of one polarity, as a low-resolution monitor writes it), not a rail
COARSE = 0.5  # share of "no move" among the recording's smallest moves (at most EDGE_STEPS quantisation steps),
# pooled over the stretches so far, above which its resolution is coarser than its quiet movement: an 8-bit
# monitor holds its baseline between every two beats (0.6-0.99 on MIMIC-II), where 11- and 16-bit records move
# by a step or two (0.25-0.40); record 100 through an 8-bit converter at 125 Hz pools to 0.59 (its stretches
# alone range 0.42-0.73, so a stretch-by-stretch verdict flips)
RAIL_SHARE = 0.05  # a plateau is at the recording's extreme when its level lies within this share of the
# recording's range so far of the highest (lowest) level held before: a rail's level moves only by rounding and
# ringing (0.001 on Challenge 2015 a103l's rails), a small QRS's top in a bedside monitor's weak stretch lies
# 0.2-0.4 below the earlier beats' (MIMIC-II)
EDGE_STEPS = 2  # a rail's edge is a jump of more than this many of the recording's quantisation steps: a wave
# that rises to its top code one step at a time is rounded by the resolution, not clipped
MAINS_HZ = (50.0, 60.0)
MAINS_FRACTION = 0.3  # share of segment power within 1 Hz of the mains frequency
NOISE_BAND_HZ = 40.0  # ECG power lies below this
NOISE_FRACTION = 0.35  # share of segment power above NOISE_BAND_HZ (mains excluded)
QRS_BAND_HZ = (5.0, 30.0)
QRS_KURTOSIS = 4.0  # of the 5-30 Hz band: Gaussian noise 3 (99% of 2 s segments < 4); ECG leads 5 to 20
BURSTLESS_FRACTION = 0.1  # ... counts as noise with this share of power above NOISE_BAND_HZ (clean ECG: < 2 %)
REASONS = ("ok", "flat", "clipped", "mains", "noise")
CHUNK = 128  # stretches judged together


@dataclass(frozen=True)
class History:
    """What the gate carries from the stretches judged before: the activity of the last FLAT_HISTORY - 1 (the
    flat test's reference), the highest and lowest levels any of them held for a plateau's length (where a
    rail can be), and how their samples moved (how coarse the recording is, how long it holds a value). A stream
    keeps one between pushes; a recording cut at its gaps starts one per piece."""

    activity: np.ndarray = field(default_factory=lambda: np.zeros(0))
    top: float = -np.inf
    bottom: float = np.inf
    moves: tuple[float, float] = (0.0, 0.0)  # of the stretches so far: smallest moves that were none, and all
    holds: np.ndarray = field(default_factory=lambda: np.zeros(0))  # longest hold of the last FLAT_HISTORY - 1
    # stretches not held whole (``_resolution``)


@dataclass(frozen=True)
class Quality:
    """Per-segment verdicts for a signal of ``n_samples`` samples at ``fs`` Hz, cut into segments of
    ``segment`` samples (the last one may be shorter; it is judged on the last full-length stretch)."""

    fs: float
    segment: int
    n_samples: int
    usable: np.ndarray  # [S] bool
    reason: np.ndarray  # [S] str: one of REASONS ("ok" when usable)

    @property
    def starts(self) -> np.ndarray:
        """First sample index of each segment."""
        return np.arange(len(self.usable)) * self.segment

    def usable_fraction(self) -> float:
        return float(self.usable.mean()) if len(self.usable) else 0.0


def segment_quality(signal: object, fs: float, segment_s: float = SEGMENT_S) -> Quality:
    """Judge each ``segment_s``-second segment of a raw single-lead signal: usable or not, and why."""
    fs = sample_rate(fs)
    x = as_signal(signal)
    seg = segment_samples(fs, segment_s)
    n_seg = -(-x.size // seg)
    starts = np.minimum(np.arange(n_seg) * seg, max(x.size - seg, 0))
    width = min(seg, x.size)
    reason, _ = judge(x[starts[:, None] + np.arange(width)[None, :]], fs)
    return Quality(fs, seg, x.size, reason == "ok", reason)


def beat_quality(signal: object, fs: float, r_peaks: object, post: int, segment_s: float = SEGMENT_S,
                 ) -> tuple[np.ndarray, np.ndarray]:
    """(usable [N] bool, reason [N] str) per R peak: each beat is judged on the ``segment_s`` seconds of raw
    signal that end ``post`` samples after its R peak (where the model's window ends), or on the signal's
    first or last ``segment_s`` seconds where that stretch would leave the signal."""
    fs = sample_rate(fs)
    x = as_signal(signal)
    r = as_numeric(r_peaks, "r_peaks")
    if r.ndim != 1 or (r.dtype.kind == "f" and not np.all(np.isfinite(r) & (r == np.round(r)))):
        raise InputError(f"r_peaks: expected a 1-D array of whole sample indices, received {r.dtype} {r.shape}")
    if not (isinstance(post, int) and post >= 1):
        raise InputError(f"post: expected an integer >= 1 (samples from the R peak to the window's end), "
                         f"received {post!r}")
    seg = segment_samples(fs, segment_s)
    reason, _ = judge(stretches(x, r.astype(np.int64) + post, seg), fs)
    return reason == "ok", reason


def as_signal(signal: object) -> np.ndarray:
    """A raw single-lead signal as finite float64 [n]; InputError otherwise."""
    x = as_numeric(signal, "signal").astype(np.float64).squeeze()
    if x.ndim != 1 or x.size == 0:
        raise InputError(f"signal: expected a non-empty 1-D single-lead array, received shape {np.shape(signal)}")
    if not np.isfinite(x).all():
        raise InputError(f"signal: expected finite values, received {int((~np.isfinite(x)).sum())} NaN/Inf")
    return x


def segment_samples(fs: float, segment_s: float = SEGMENT_S) -> int:
    """Samples per judged stretch at ``fs``."""
    if not (isinstance(segment_s, int | float) and 0.5 <= segment_s <= 60):
        raise InputError(f"segment_s: expected seconds in [0.5, 60], received {segment_s!r}")
    return max(4, round(min(segment_s * fs, 2**40)))  # min first: a huge fs must not reach round(inf)


def stretches(x: np.ndarray, ends: np.ndarray, seg: int, offset: int = 0) -> np.ndarray:
    """Rows [N, min(seg, n)] of ``x``: the ``seg`` samples before each end index, shifted to lie inside
    the signal of ``offset + x.size`` samples whose samples from index ``offset`` on ``x`` holds."""
    n = offset + x.size
    width = min(seg, n)
    first = np.clip(ends - seg, 0, max(n - seg, 0)) - offset
    if first.size and first.min() < 0:
        raise InputError(f"stretches: expected the signal from sample {offset + first.min()} on, received it "
                         f"from sample {offset}")
    return x[first[:, None] + np.arange(width)[None, :]]


def judge(windows: np.ndarray, fs: float, history: History | None = None) -> tuple[np.ndarray, History]:
    """(reason [N], history after them) of raw stretches [N, width] in time order. ``history`` is what the
    stretches judged before these left (a stream's earlier beats), so the flat and rail tests compare each
    stretch with the same past as on the whole recording."""
    past = History() if history is None else history
    reason = np.full(len(windows), "ok", dtype="<U7")
    activity = np.zeros(len(windows))
    held = np.zeros((len(windows), 2))  # the highest and lowest level each stretch holds for a plateau's length
    plateau = _plateau(fs)
    grid = _grid(windows.shape[1], float(fs))
    clipped = np.zeros((len(windows), 2), dtype=bool)  # a rail-like plateau at the stretch's top, at its bottom
    pooled, holds = np.array(past.moves), past.holds
    for i in range(0, len(windows), CHUNK):  # rows a few at a time: the arrays stay in cache
        w = windows[i : i + CHUNK]
        with np.errstate(over="ignore", invalid="ignore"):
            peak = np.abs(w).max(axis=1, keepdims=True)
            w = w / np.where(peak > 0, peak, 1.0)  # each test is scale-free; this keeps huge inputs finite
            d = w - w.mean(axis=1, keepdims=True) - np.outer(w @ grid.t / grid.tt, grid.t)  # minus the LSQ line:
            relative = np.ptp(d, axis=1)  # baseline wander must not count as signal power
            activity[i : i + CHUNK] = np.where(relative <= 1e-9, 0.0, relative * peak[:, 0])
            held[i : i + CHUNK] = _held_levels(w, plateau) * peak
        spectrum = np.fft.rfft(d * grid.hann, axis=1)
        power = spectrum.real**2 + spectrum.imag**2
        moves = np.abs(np.diff(w, axis=1))  # the holds and the quantisation step both tests judge against
        step = _step(moves)
        coarse, dropout, pooled, holds = _resolution(moves, step, fs, pooled, holds)
        clipped[i : i + CHUNK] = _clipped(w, fs, step, coarse)
        for name, bad in (("noise", _noise(d, power, grid)), ("mains", _mains(power, grid)), ("flat", dropout)):
            reason[i : i + CHUNK][bad] = name  # later checks take precedence: a flat trace is "flat", not "noise"
    top = np.maximum.accumulate(np.r_[past.top, held[:, 0]])[1:]  # the recording's held extremes so far
    bottom = np.minimum.accumulate(np.r_[past.bottom, held[:, 1]])[1:]
    near = RAIL_SHARE * (top - bottom)
    rail = (clipped[:, 0] & (held[:, 0] >= top - near)) | (clipped[:, 1] & (held[:, 1] <= bottom + near))
    reason[rail] = "clipped"  # a value held at the recording's extreme is "clipped", not "flat"
    weak = _weak(activity, past.activity) & ((reason == "ok") | (reason == "noise") | (reason == "mains"))
    reason[weak] = "flat"
    tail = np.r_[past.activity, activity][-(FLAT_HISTORY - 1) :]
    return reason, History(tail, float(top[-1]) if top.size else past.top,
                           float(bottom[-1]) if bottom.size else past.bottom, tuple(map(float, pooled)), holds)


@dataclass(frozen=True)
class _Grid:
    """What every stretch of one width at one rate shares: the detrending line, the Hann window, and which
    frequency bins each test sums."""

    t: np.ndarray
    tt: float
    hann: np.ndarray
    outside_qrs: np.ndarray
    mains: np.ndarray | None  # None: mains lies above Nyquist (aliased, not measurable here)
    total: np.ndarray
    keep: np.ndarray  # ECG-band bins without mains
    high: np.ndarray | None  # of them, those above NOISE_BAND_HZ; None where the rate leaves no such band


@functools.lru_cache(maxsize=16)
def _grid(width: int, fs: float) -> _Grid:
    t = np.linspace(-1.0, 1.0, width)
    freqs = np.fft.rfftfreq(width, 1.0 / fs)
    mains = np.any([np.abs(freqs - f) <= 1.0 for f in MAINS_HZ], axis=0)
    keep = ~mains & (freqs >= 0.5)
    return _Grid(t, float(t @ t), np.hanning(width), (freqs < QRS_BAND_HZ[0]) | (freqs > QRS_BAND_HZ[1]),
                 None if fs / 2 <= min(MAINS_HZ) + 1 else mains, freqs >= 0.5, keep,
                 None if fs / 2 <= NOISE_BAND_HZ * 1.25 else keep & (freqs > NOISE_BAND_HZ))


def _mains(power: np.ndarray, grid: _Grid) -> np.ndarray:
    if grid.mains is None:
        return np.zeros(len(power), dtype=bool)
    total = power[:, grid.total].sum(axis=1)
    return power[:, grid.mains].sum(axis=1) > MAINS_FRACTION * np.maximum(total, 1e-300)


def _noise(d: np.ndarray, power: np.ndarray, grid: _Grid) -> np.ndarray:
    """Broadband noise: power above the ECG band dominates, or the QRS band has none of the sharp bursts a
    heartbeat makes while some power lies above the ECG band (large wide beats in bigeminy also fill the
    QRS band, but leave nothing above it). Where the rate leaves no band above 40 Hz, bursts alone decide."""
    spectrum = np.fft.rfft(d, axis=1)
    spectrum[:, grid.outside_qrs] = 0
    qrs = np.fft.irfft(spectrum, d.shape[1], axis=1)
    sq = qrs * qrs
    var = sq.mean(axis=1)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore", under="ignore"):
        kurtosis = (sq * sq).mean(axis=1) / (var * var)  # NaN/Inf only for a constant row, which "flat" takes
    no_bursts = kurtosis < QRS_KURTOSIS
    if grid.high is None:
        return no_bursts
    high = power[:, grid.high].sum(axis=1) / np.maximum(power[:, grid.keep].sum(axis=1), 1e-300)
    return (high > NOISE_FRACTION) | (no_bursts & (high > BURSTLESS_FRACTION))


def _has_run(mask: np.ndarray, k: int, edge: np.ndarray | None = None) -> np.ndarray:
    """Per row: True where ``mask`` holds a run of at least ``k`` consecutive True values; with ``edge``, only
    a run of k that starts right after or ends right before an ``edge`` sample."""
    n = mask.shape[1]
    if k > n:
        return np.zeros(len(mask), dtype=bool)
    c = np.zeros((len(mask), n + 1), dtype=np.int32)
    np.cumsum(mask, axis=1, out=c[:, 1:])
    full = (c[:, k:] - c[:, :-k]) >= k  # [rows, n - k + 1]: samples j .. j + k - 1 all True
    if edge is not None:
        before = np.zeros_like(full)
        before[:, 1:] = edge[:, : n - k]  # sample j - 1
        after = np.zeros_like(full)
        after[:, :-1] = edge[:, k:]  # sample j + k
        full &= before | after
    return full.any(axis=1)


def _clipped(w: np.ndarray, fs: float, step: np.ndarray, coarse: np.ndarray) -> np.ndarray:
    """[N, 2]: the trace stays at its top (column 0) or bottom (column 1), within 0.1 % of its span, for
    PLATEAU_S with an abrupt edge, as at a rail the QRS runs into, or for LONG_PLATEAU_S however it got there;
    a broad smooth T-wave top is neither, and nor is an extreme that lies at the trace's resting level
    (``REST``). The long test looks at the trace without single-sample overshoots (``_median3``); the short
    one not, as a median filter flattens a noisy trough into a short plateau of its own. ``step`` and
    ``coarse``: see ``_step`` and ``_resolution``. Whether the plateau lies at the recording's extreme is
    ``judge``'s."""
    plateau = _plateau(fs)
    long = max(plateau, int(round(LONG_PLATEAU_S * fs)))
    edge = EDGE_STEPS * step
    return (_at_extreme(w, plateau, np.maximum(ABRUPT * np.ptp(w, axis=1), edge), coarse)
            | _at_extreme(_median3(w), long, edge, coarse))


def _plateau(fs: float) -> int:
    """Samples a rail's plateau lasts at least (PLATEAU_S, three at low rates)."""
    return max(3, int(round(PLATEAU_S * fs)))


def _held_levels(w: np.ndarray, k: int) -> np.ndarray:
    """[N, 2]: the highest level each row stays at or above for ``k`` samples in a row, and the lowest it stays
    at or below: a rail's level, where a band-limited overshoot past it (a sample or two) does not count."""
    k = min(k, w.shape[1])
    low = high = w[:, : w.shape[1] - k + 1]
    for j in range(1, k):
        shifted = w[:, j : w.shape[1] - k + 1 + j]
        low, high = np.minimum(low, shifted), np.maximum(high, shifted)
    return np.stack((low.max(axis=1), high.min(axis=1)), axis=1)


def _step(moves: np.ndarray) -> np.ndarray:
    """Per row: the quantisation step, estimated as the smallest non-zero difference between samples (``moves``:
    their absolute differences; one ADC code; near zero for a fine or resampled trace)."""
    return np.where(moves > 0, moves, np.inf).min(axis=1, initial=np.inf)


def _at_extreme(w: np.ndarray, k: int, edge: np.ndarray, coarse: np.ndarray) -> np.ndarray:
    """[N, 2]: a run of ``k`` samples within 0.1 % of the span of the row's maximum (column 0) or minimum
    (column 1), entered or left by a jump of more than ``edge`` (per row); in ``coarse`` rows only at an
    extreme away from the level where the trace rests (a fine trace never holds its rest level, a coarse one
    does between beats)."""
    span = np.ptp(w, axis=1, keepdims=True)
    rest = np.median(w, axis=1)
    out = np.zeros((len(w), 2), dtype=bool)
    for side, (dist, off_rest) in enumerate(((w.max(axis=1, keepdims=True) - w, w.max(axis=1) - rest),
                                             (w - w.min(axis=1, keepdims=True), rest - w.min(axis=1)))):
        away = ~coarse | (off_rest > REST * span[:, 0])
        out[:, side] = _has_run(dist <= 1e-3 * span, k, edge=dist > edge[:, None]) & away & (span[:, 0] > 0)
    return out


def _resolution(moves: np.ndarray, step: np.ndarray, fs: float, pooled: np.ndarray, holds: np.ndarray,
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(coarse [N], dropout [N], pooled and holds after them) of rows in time order, judged on the recording
    so far (``pooled``, ``holds``: ``History.moves``, ``History.holds``), as the resolution is the recording's,
    not one stretch's:

    - coarse: most of the smallest moves (at most EDGE_STEPS quantisation steps) up to and with this stretch
      are no move at all, so the resolution is coarser than the trace's quiet movement (``COARSE``);
    - dropout: one value held for HOLD_S and HOLD_FACTOR times the median longest hold of the last
      FLAT_HISTORY - 1 stretches before it that were not held whole (lead-off is ``_weak``'s); with none
      before it, only where the stretch is not coarse.

    Each row's longest hold is left out of the move counts: it is what the dropout test judges."""
    still = moves == 0
    longest = _longest_run(still)
    counts = np.cumsum(np.stack((still.sum(axis=1) - longest,
                                 (moves <= EDGE_STEPS * step[:, None]).sum(axis=1) - longest), axis=1), axis=0
                       ) + pooled
    coarse = counts[:, 0] > COARSE * np.maximum(counts[:, 1], 1)
    live = longest < moves.shape[1]
    k = FLAT_HISTORY - 1
    seq = np.r_[holds, longest[live]]
    typical = nan_median_rows(trailing_windows(seq, holds.size + np.cumsum(live) - live, k))  # the live ones before
    with np.errstate(invalid="ignore"):
        limit = np.where(np.isnan(typical), np.where(coarse, np.inf, 0.0), HOLD_FACTOR * typical)
    dropout = longest >= np.maximum(max(3, int(round(HOLD_S * fs))) - 1, limit)
    return coarse, dropout, counts[-1] if len(counts) else pooled, seq[-k:]


def _longest_run(mask: np.ndarray) -> np.ndarray:
    """Per row: the length of the longest run of True values."""
    idx = np.arange(mask.shape[1])
    return (idx - np.maximum.accumulate(np.where(mask, -1, idx), axis=1)).max(axis=1, initial=0)


def _median3(w: np.ndarray) -> np.ndarray:
    """Each sample replaced by the median of it and its two neighbours: a trace resampled after it was clipped
    overshoots the rail on single interpolated samples, which would otherwise be the stretch's extremes."""
    if w.shape[1] < 3:
        return w
    a, b, c = w[:, :-2], w[:, 1:-1], w[:, 2:]
    out = w.copy()
    out[:, 1:-1] = np.maximum(np.minimum(a, b), np.minimum(np.maximum(a, b), c))  # median of three, elementwise
    return out


def _weak(activity: np.ndarray, past: np.ndarray) -> np.ndarray:
    """Activity zero or far below the median of this and the FLAT_HISTORY - 1 stretches before it (dead
    ones left out): a lead off with a little amplifier noise left."""
    if activity.size == 0:
        return np.zeros(0, dtype=bool)
    seq = np.r_[past, activity]
    live = np.where(seq > 0, seq, np.nan)
    recent = trailing_windows(live, past.size + np.arange(1, activity.size + 1), FLAT_HISTORY)  # this one included
    return (activity == 0) | (activity < FLAT_RATIO * nan_median_rows(recent))
