"""PeakTracker: the batch QRS detector run incrementally gives exactly detect_r_peaks's peaks at any block
size, on clean, damaged and search-back signals, and never reports a peak before its frontier said so."""

from __future__ import annotations

import importlib.resources

import numpy as np
import pytest
from ecgae.runtime import detector, tracker
from ecgae.runtime.detector import detect_r_peaks
from ecgae.runtime.errors import InputError
from ecgae.runtime.preprocess import design_bandpass, fir_filter, resample
from ecgae.runtime.tracker import PeakTracker

FS = 360.0


def filtered(x: np.ndarray, fs: float = FS) -> np.ndarray:
    return fir_filter(x, design_bandpass(fs, (0.5, 40.0)))


def track(x: np.ndarray, fs: float, sizes) -> np.ndarray:
    """Peaks of ``x`` pushed in blocks of ``sizes``; asserts every push's peaks lie at or after the frontier
    the tracker announced before it."""
    t, got, i = PeakTracker(fs), [], 0
    for n in sizes:
        if i >= x.size:
            break
        frontier = t.frontier
        peaks = t.push(x[i : i + n])
        assert peaks.size == 0 or peaks[0] >= frontier
        got.append(peaks)
        i += n
    frontier = t.frontier
    last = t.finish()
    assert last.size == 0 or last[0] >= frontier
    return np.concatenate(got + [last])


def damaged(x: np.ndarray) -> np.ndarray:
    """Noise, a flat dropout and a stretch of white noise alone: levels, candidates and search-back at work."""
    y = x.copy()
    rng = np.random.default_rng(0)
    y[int(30 * FS) : int(36 * FS)] += rng.normal(0.0, 0.5, int(6 * FS))
    y[int(60 * FS) : int(75 * FS)] = 0.0
    y[int(100 * FS) : int(110 * FS)] = rng.normal(0.0, 0.2, int(10 * FS))
    return y


@pytest.mark.parametrize("seconds", [0.005, 4, 8.5, 40])
def test_short_signals_equal_the_batch_detector(mlii, seconds):
    x = filtered(mlii[: max(3, int(seconds * FS))])
    want = detect_r_peaks(x, FS)
    for sizes in ([x.size], np.full(x.size, 100), np.ones(x.size, dtype=int)):
        np.testing.assert_array_equal(track(x, FS, sizes), want)


@pytest.mark.parametrize("fs", [360.0, 250.0, 1000.0])
def test_any_block_size_equals_the_batch_detector(mlii, fs):
    x = filtered(damaged(mlii[: int(150 * FS)]))
    x = resample(x, FS, fs)
    want = detect_r_peaks(x, fs)
    assert want.size > 120
    rng = np.random.default_rng(int(fs))
    for sizes in ([x.size], np.full(x.size, int(fs)), rng.integers(1, 60, x.size), rng.integers(200, 9000, x.size)):
        np.testing.assert_array_equal(track(x, fs, sizes), want)


def test_search_back_finds_equal_the_batch_detector(mlii, monkeypatch):
    """Beats shrunk to a fifth are below the threshold: only search-back finds them."""
    x = mlii[: int(120 * FS)].copy()
    peaks = detect_r_peaks(filtered(x), FS)
    for p in peaks[40:120:6]:
        x[p - 40 : p + 60] *= 0.2
    y = filtered(x)
    want = detect_r_peaks(y, FS)
    monkeypatch.setattr(detector, "SEARCH_ROUNDS", 0)
    assert detect_r_peaks(y, FS).size < want.size  # the signal does exercise search-back
    monkeypatch.undo()
    for sizes in ([y.size], np.full(y.size, 360), np.random.default_rng(2).integers(1, 500, y.size)):
        np.testing.assert_array_equal(track(y, FS, sizes), want)


def test_state_stays_bounded(mlii):
    t = PeakTracker(FS)
    x = filtered(mlii)
    held = []
    for i in range(0, x.size, 3600):
        t.push(x[i : i + 3600])
        held.append(t._x.size + len(t._stats) + len(t._pool))
    assert max(held[10:]) < 3600 + 10 * FS, max(held)


def test_a_push_after_finish_is_refused(mlii):
    t = PeakTracker(FS)
    t.push(filtered(mlii[: int(10 * FS)]))
    t.finish()
    with pytest.raises(InputError, match="after finish"):
        t.push(np.zeros(10))
    assert t.finish().size == 0


def test_t_wave_verdicts_equal_the_batch_detector(wide_after_sharp, monkeypatch):
    """Wide beats 300 ms after sharp ones, larger but gentler: kept as beats, by the stream as by the batch; and
    with the size test off (every gentler detection that close a T wave), dropped by both alike."""
    y = filtered(wide_after_sharp[0])
    for size_matters in (True, False):
        if not size_matters:
            monkeypatch.setattr(detector, "_is_t_wave", lambda gap, steep, size, steep_before, size_before, limit:
                                (gap < limit) & (steep < 0.5 * steep_before))
            monkeypatch.setattr(tracker, "_is_t_wave", detector._is_t_wave)
        want = detect_r_peaks(y, FS)
        assert want.size == (96 if size_matters else 48)
        for sizes in ([y.size], np.full(y.size, 360), np.random.default_rng(5).integers(1, 500, y.size)):
            np.testing.assert_array_equal(track(y, FS, sizes), want)


def test_noise_dropped_between_beats_equals_the_batch_detector(monkeypatch):
    """Record 200's muscle noise (minutes 10-11): bursts that split an interval are dropped only once the next
    beat is known, or once none can come early enough to make them noise; the stream equals the batch."""
    path = importlib.resources.files("ecgae.training") / "data" / "field.npz"
    with path.open("rb") as f, np.load(f, allow_pickle=False) as z:
        x = (z["mitdb_200_adc"][:, 0].astype(np.float64) - z["mitdb_200_baseline"][0]) / z["mitdb_200_gain"][0]
    y = filtered(x[int(600 * FS) : int(660 * FS)])
    want = detect_r_peaks(y, FS)
    monkeypatch.setattr(detector, "WEAK", 0.0)
    assert detect_r_peaks(y, FS).size > want.size  # the signal does exercise the rule
    monkeypatch.undo()
    for sizes in ([y.size], np.full(y.size, 360), np.random.default_rng(4).integers(1, 500, y.size)):
        np.testing.assert_array_equal(track(y, FS, sizes), want)
