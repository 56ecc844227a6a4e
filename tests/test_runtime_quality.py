"""The signal-quality gate: record 100 stays usable, each kind of damage is caught, noise yields no beat."""

from __future__ import annotations

import numpy as np
import pytest
from ecgae.benchmarks.quality import KINDS, evaluate, record_100
from ecgae.runtime import EcgaeError, InputError
from ecgae.runtime.quality import beat_usable, segment_quality
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

FS = 360.0


@pytest.fixture(scope="module")
def figures() -> dict:
    return evaluate(seed=0)


def test_record_100_is_usable(figures):
    clean = figures["clean"]
    assert clean["segments_usable"] >= 0.995
    assert clean["beats_usable_at_peak"] >= 0.995 and clean["beats_usable_whole_window"] >= 0.995


@pytest.mark.parametrize("kind", KINDS)
def test_each_kind_of_damage_is_caught(figures, kind):
    damaged = figures["damaged"][kind]
    assert damaged["segments"] >= 40 and damaged["segments_caught"] >= 0.95 and damaged["beats_caught"] >= 0.95


def test_untouched_parts_of_a_damaged_record_stay_usable(figures):
    untouched = figures["damaged"]["untouched"]
    assert untouched["segments_usable"] >= 0.99 and untouched["beats_usable_whole_window"] >= 0.995


def test_no_beat_is_found_usable_in_pure_noise(figures):
    noise = figures["white_noise_60s"]
    assert noise["beats_cut_by_detector"] > 0 and noise["beats_usable"] == 0


@pytest.mark.parametrize("make, reason", [
    (lambda n, t: np.zeros(n), "flat"),
    (lambda n, t: np.full(n, 3.7), "flat"),
    (lambda n, t: np.random.default_rng(0).standard_normal(n), "noise"),
    (lambda n, t: np.sin(2 * np.pi * 50 * t), "mains"),
    (lambda n, t: np.clip(np.sin(2 * np.pi * 1.2 * t) ** 21, -0.2, 0.2), "clipped"),
])
def test_synthetic_unusable_signals_name_their_reason(make, reason):
    t = np.arange(int(10 * FS)) / FS
    q = segment_quality(make(t.size, t), FS)
    assert not q.usable.any() and set(q.reason) == {reason}


def test_beat_usable_demands_the_whole_window_in_usable_segments():
    signal, fs, peaks = record_100()
    x = signal[: int(20 * fs)].copy()
    x[int(8 * fs) : int(10 * fs)] = 0.0  # segment 4 (8-10 s) drops out
    q = segment_quality(x, fs)
    assert list(q.usable) == [True] * 4 + [False] + [True] * 5
    r = np.array([int(7.9 * fs), int(9 * fs), int(10.1 * fs), int(15 * fs), -1, x.size])
    assert list(beat_usable(q, r)) == [True, False, True, True, False, False]
    assert list(beat_usable(q, r, pre=100, post=100)) == [False, False, False, True, False, False]


@pytest.mark.parametrize("call, message", [
    (lambda: segment_quality(np.zeros((3, 3)), FS), "1-D"),
    (lambda: segment_quality([], FS), "non-empty"),
    (lambda: segment_quality([1.0, np.nan], FS), "finite"),
    (lambda: segment_quality(np.zeros(100), 0.0), "sample rate"),
    (lambda: segment_quality(np.zeros(100), FS, segment_s=0.0), "segment_s"),
    (lambda: beat_usable(segment_quality(np.zeros(100), FS), [1.5]), "whole sample indices"),
    (lambda: beat_usable(segment_quality(np.zeros(100), FS), [1], pre=-1), "pre, post"),
])
def test_bad_arguments_raise_input_errors(call, message):
    with pytest.raises(InputError, match=message):
        call()


@settings(max_examples=80, deadline=None)
@given(signal=hnp.arrays(st.sampled_from([np.float64, np.float32, np.int16, np.uint8]),
                         st.integers(1, 3000)),
       fs=st.one_of(st.floats(), st.sampled_from([10.0, 125.0, 360.0, 1000.0])),
       peaks=hnp.arrays(np.int64, st.integers(0, 5), elements=st.integers(-10, 4000)))
def test_any_signal_gets_a_verdict_or_an_ecgae_error(signal, fs, peaks):
    try:
        q = segment_quality(signal, fs)
    except EcgaeError:
        return
    assert q.usable.shape == q.reason.shape == (-(-signal.size // q.segment),)
    assert beat_usable(q, peaks, 5, 5).shape == peaks.shape
