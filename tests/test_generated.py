"""The generated recording conditions: an 8-bit ADC's steps and rails, pacing spikes where and as wide
as documented, and a slowed heart whose beats keep their shape; the detector on the slow heart."""

from __future__ import annotations

import numpy as np
import pytest
from ecgae.benchmarks import detection, generated
from ecgae.runtime.preprocess import r_peaks, resample


def test_quantise_rounds_to_whole_codes_and_clips_to_the_adc_range():
    x = np.linspace(-10.0, 10.0, 10_001)
    step = 0.1
    y = generated.quantise(x, step)
    np.testing.assert_allclose(y / step, np.round(y / step), atol=1e-9)
    assert np.abs(y - x).max() <= step / 2 + 1e-12
    y = generated.quantise(x, step, levels=16)  # codes -8..7 around the median 0
    assert np.unique(np.round(y / step)).tolist() == list(range(-8, 8))
    with pytest.raises(ValueError, match="step"):
        generated.quantise(x, 0.0)


def test_eight_bit_record_100_has_the_monitor_step_and_at_most_256_levels():
    leads, fs, _, _ = detection.record_100()
    x = leads["MLII"][: int(60 * fs)]
    y = generated.eight_bit(x)
    levels = np.unique(y)
    assert 20 < levels.size <= 256  # record 100's beats span tens of codes at 26 codes per mV
    assert np.diff(levels).min() == pytest.approx(1 / generated.MIMIC_GAIN)
    assert np.abs(y - x).max() <= 0.5 / generated.MIMIC_GAIN + 1e-9  # record 100 stays within the rails


@pytest.mark.parametrize(("fs", "width"), [(125.0, 1), (250.0, 1), (360.0, 1), (1000.0, 2)])
def test_pacing_spikes_sit_before_each_beat_one_or_two_samples_wide(fs, width):
    leads, rate, ann, _ = detection.record_100()
    n = int(30 * rate)
    x = resample(leads["MLII"][:n], rate, fs) if fs != rate else leads["MLII"][:n]
    r = np.round(ann[ann < n] * fs / rate).astype(np.int64)
    y, at = generated.with_pacing_spikes(x, fs, r)
    lead = (r[-at.size:] - at) / fs
    assert np.all((0.04 <= lead) & (lead <= 0.08))
    added = np.flatnonzero(y != x)
    expected = np.sort((at[:, None] + np.arange(width)).ravel())
    np.testing.assert_array_equal(added, expected[expected < x.size])
    np.testing.assert_allclose((y - x)[added], generated.SPIKE_MV)


def test_a_slowed_heart_keeps_each_beat_and_only_lengthens_its_diastole():
    leads, fs, ann, _ = detection.record_100()
    n = int(120 * fs)
    x, r = leads["MLII"][:n], ann[ann < n - int(0.5 * fs)]
    y, moved = generated.slower(x, fs, r, 30.0)
    assert moved.size == r.size
    rr = np.diff(moved) / fs
    assert np.all(rr >= np.diff(r) / fs - 1e-9) and np.median(rr) == pytest.approx(2.0, abs=1 / fs)
    before, after = (int(round(s * fs)) for s in generated.SYSTOLE_S)
    for old, new in zip(r[1:-1], moved[1:-1]):  # P, QRS and T exactly as recorded
        np.testing.assert_array_equal(y[new - before : new + after], x[old - before : old + after])
    with pytest.raises(ValueError, match="rate_bpm"):
        generated.slower(x, fs, r, 0.0)


def test_the_detector_holds_on_a_slow_heart():
    """At 30 bpm every other one-second block holds no beat: record 100's 5 first minutes (MLII) keep Se and
    +P >= 99 %. (V5, whose T wave is nearly as tall as its QRS, is in the benchmark's peer table.)"""
    leads, fs, ann, _ = detection.record_100()
    n = int(300 * fs)
    y, ref = generated.slower(leads["MLII"][:n], fs, ann[ann < n - int(0.5 * fs)], 30.0)
    r = detection.score_detections(ref, r_peaks(y, fs, detection.default_preprocessing()), fs)
    assert r["se"] >= 0.99 and r["ppv"] >= 0.99, r
