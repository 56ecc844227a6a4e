"""The signal-quality gate: record 100 stays usable, each kind of damage is caught, noise yields no beat."""

from __future__ import annotations

import numpy as np
import pytest
from ecgae.benchmarks.quality import KINDS, evaluate, record_100
from ecgae.runtime import EcgaeError, InputError
from ecgae.runtime.quality import beat_quality, judge, segment_quality, stretches
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

FS = 360.0


@pytest.fixture(scope="module")
def figures() -> dict:
    return evaluate(seed=0)


def test_record_100_is_usable(figures):
    clean = figures["clean"]
    assert clean["segments_usable"] >= 0.995 and clean["beats_usable"] >= 0.995


@pytest.mark.parametrize("kind", KINDS)
def test_each_kind_of_damage_is_caught(figures, kind):
    damaged = figures["damaged"][kind]
    assert damaged["segments"] >= 40 and damaged["segments_caught"] >= 0.95 and damaged["beats_caught"] >= 0.95


def test_untouched_parts_of_a_damaged_record_stay_usable(figures):
    untouched = figures["damaged"]["untouched"]
    assert untouched["segments_usable"] >= 0.99 and untouched["beats_usable"] >= 0.995


def test_ventricular_beats_are_not_taken_for_bad_signal(figures):
    """Wide, large, inverted or biphasic beats in bigeminy: broad T tops are no clipping, wide QRS no noise."""
    v = figures["ventricular"]
    assert v["settings"] == 36 and v["beats_usable_min"] >= 0.995


def test_other_peoples_recordings_stay_usable_and_a103l_artefact_is_caught(figures):
    """Other leads, rates and people: clean stretches stay usable; a103l's rails (reached through resampling
    overshoot, which hid them before) are caught on both leads."""
    o = figures["others"]
    assert o["clean_usable"] == 1.0 and o["a103l_before_usable"] == 1.0
    assert o["a103l_after_caught"] >= 40


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


def test_a_beat_is_judged_on_the_stretch_that_ends_with_its_window():
    signal, fs, peaks = record_100()
    x = signal[: int(20 * fs)].copy()
    x[int(8 * fs) : int(10 * fs)] = 0.0  # 8-10 s drop out
    q = segment_quality(x, fs)
    assert list(q.usable) == [True] * 4 + [False] + [True] * 5
    post, r = 300, peaks[(peaks > int(2 * fs)) & (peaks < int(19 * fs))]
    usable, reason = beat_quality(x, fs, r, post)
    # the stretch of 2 s ending at r + post holds 0.1 s or more of the dropout for the beats between 7.3 and
    # 11.1 s; the other beats' stretches never touch it
    overlap = np.minimum(r + post, int(10 * fs)) - np.maximum(r + post - int(2 * fs), int(8 * fs))
    assert (overlap >= 0.1 * fs).sum() >= 4 and not usable[overlap >= 0.1 * fs].any() and usable[overlap <= 0].all()
    assert set(reason[~usable]) <= {"flat", "clipped"}  # a run of zeros may sit at the stretch's extreme


def test_a_clipped_trace_resampled_after_clipping_is_still_clipped():
    """Archives deliver traces recorded at a lower rate by band-limited interpolation: the samples between
    the original ones overshoot the rail, so the rail is not the stretch's extreme (a real recording of
    another person showed it); the long plateau is caught all the same, and nothing else is."""
    signal, fs, _ = record_100()
    x = signal[: int(12 * fs)].copy()
    t = np.arange(x.size) / fs
    x = np.minimum(x + 3.0 * ((t >= 5.2) & (t < 5.7)), 2.0)  # a motion step into the amplifier's rail
    half = x[::2]  # recorded at 180 Hz, delivered at 360 Hz
    up = np.fft.irfft(np.r_[np.fft.rfft(half), np.zeros(half.size // 2)], 2 * half.size) * 2
    assert up.max() > 2.0 + 0.1  # the overshoot: the rail is well inside the stretch's range
    assert list(segment_quality(up, fs).reason) == ["ok", "ok", "clipped", "ok", "ok", "ok"]


def test_the_three_sample_median_is_numpys():
    from ecgae.runtime.quality import _median3

    w = np.random.default_rng(0).standard_normal((7, 300))
    expected = w.copy()
    expected[:, 1:-1] = np.median(np.lib.stride_tricks.sliding_window_view(w, 3, axis=1), axis=2)
    np.testing.assert_array_equal(_median3(w), expected)


def test_the_flat_test_uses_only_the_past():
    """A beat's verdict does not change with what comes after it (a stream cannot know that)."""
    signal, fs, peaks = record_100()
    x, r = signal[: int(60 * fs)], peaks[(peaks > 400) & (peaks < int(55 * fs))]
    usable, reason = beat_quality(x, fs, r, 300)
    quiet = x.copy()
    quiet[int(56 * fs) :] *= 1e-3  # later signal much weaker: a whole-recording reference would move
    np.testing.assert_array_equal(beat_quality(quiet, fs, r, 300)[1], reason)
    rows = stretches(x, r + 300, int(2 * fs))
    head, history = judge(rows[:40], fs)
    tail, _ = judge(rows[40:], fs, history)
    np.testing.assert_array_equal(np.r_[head, tail], reason)


def test_weak_activity_after_normal_activity_is_flat():
    signal, fs, _ = record_100()
    x = signal[: int(40 * fs)].copy()
    x[int(30 * fs) :] = np.random.default_rng(0).normal(0.0, 0.002, x.size - int(30 * fs))
    q = segment_quality(x, fs)
    assert q.usable[:15].all() and set(q.reason[15:]) == {"flat"}


@pytest.mark.parametrize("call, message", [
    (lambda: segment_quality(np.zeros((3, 3)), FS), "1-D"),
    (lambda: segment_quality([], FS), "non-empty"),
    (lambda: segment_quality([1.0, np.nan], FS), "finite"),
    (lambda: segment_quality(np.zeros(100), 0.0), "sample rate"),
    (lambda: segment_quality(np.zeros(100), FS, segment_s=0.0), "segment_s"),
    (lambda: beat_quality(np.zeros(100), FS, [1.5], 10), "whole sample indices"),
    (lambda: beat_quality(np.zeros(100), FS, [[1]], 10), "1-D"),
    (lambda: beat_quality(np.zeros(100), FS, [1], 0), "post"),
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
    usable, reason = beat_quality(signal, fs, peaks, 5)
    assert usable.shape == reason.shape == peaks.shape


@pytest.mark.parametrize("rate", [125.0, 250.0, 360.0])
@pytest.mark.parametrize("codes_per_mv", [52, 38, 26, 11, 5])
def test_a_low_resolution_recording_stays_usable(rate, codes_per_mv):
    """Record 100 as an 8-bit bedside monitor writes it (MIMIC-II: 26 and 11 ADC codes per mV at 125 Hz): the
    baseline holds one code between beats and the R peaks span a few dozen codes. Neither is a dropout or a
    rail; before the gate judged holds and plateaus against the quantisation step, almost none of it passed.
    Between 8 and 11 bits (38, 52 codes per mV) the trace's stretches are now coarse, now not: judged stretch
    by stretch, 10-22 % were called dropouts at 125 Hz; judged on the recording so far, none is."""
    from ecgae.runtime.preprocess import resample

    signal, fs, peaks = record_100()
    x = np.round(resample(signal, fs, rate) * codes_per_mv) / codes_per_mv
    r = np.round(peaks * rate / fs).astype(np.int64)
    r = r[r < x.size - rate]
    assert segment_quality(x, rate).usable_fraction() >= 0.99
    assert beat_quality(x, rate, r, int(300 * rate / 360))[0].mean() >= 0.99


@pytest.mark.parametrize(("rate", "codes_per_mv", "hold_s", "share"), [(360.0, None, 0.15, 1.0), (125.0, 26, 1.0, 0.7)])
def test_a_value_repeated_for_a_lost_packet_is_a_dropout(rate, codes_per_mv, hold_s, share):
    """A device that loses a packet repeats the last value. In an 11-bit trace 150 ms of it is caught always; in
    an 8-bit one, whose live trace holds its resting code for 150 ms on average, 1 s is caught in most
    stretches (a stretch-by-stretch resolution verdict caught 1 in 30), and no other stretch is called a
    dropout."""
    from ecgae.runtime.preprocess import resample

    signal, fs, _ = record_100()
    x = signal[: int(300 * fs)]
    x = x.copy() if rate == fs else np.round(resample(x, fs, rate) * codes_per_mv) / codes_per_mv
    seg, held = int(2 * rate), np.zeros(int(300 * rate / (2 * rate)), bool)
    held[20:140:4] = True  # every fourth segment after the first 40 s holds a value from a third of the way in
    for k in np.flatnonzero(held):
        a = k * seg + seg // 3
        x[a : a + int(hold_s * rate)] = x[a]
    q = segment_quality(x, rate)
    assert (q.reason[held] == "flat").mean() >= share and (q.reason[~held] == "ok").all()


def test_a_rail_in_a_low_resolution_recording_is_still_caught():
    """The same 8-bit trace driven into a rail below its R peaks is clipped: the R wave jumps onto the plateau
    by many codes, away from where the trace rests."""
    signal, fs, _ = record_100()
    x = np.round(signal[: int(60 * fs)] * 26) / 26
    level = np.median(x) + (x.max() - np.median(x)) / 3
    q = segment_quality(np.minimum(x, level), fs)
    assert (q.reason == "clipped").mean() >= 0.95


def test_a_small_qrs_below_earlier_beats_is_no_rail():
    """MIMIC-II 0006's MCL1 (8-bit, 125 Hz): in minutes 100-150 the QRS shrinks to about 0.3 mV, and its top,
    held three samples by the coarse converter and reached by a jump of several codes, is its stretch's
    extreme: within the stretch it looks like a rail. It lies far below the levels the recording held
    before, which a rail never does; a rail reached after them (as on a103l) still is one (the benchmark)."""
    from ecgae.training.build_field import FIELD
    from ecgae.training.build_others import load_record

    x, fs, leads = load_record("mimic2_0006", FIELD)
    q = segment_quality(x[:, leads.index("MCL1")], fs)
    minutes = q.starts / fs / 60
    weak = (minutes >= 100) & (minutes < 150)
    assert weak.sum() == 1500 and (q.reason[weak] == "clipped").sum() <= 5  # 340 before the rail test
    assert q.usable[weak].mean() >= 0.98
