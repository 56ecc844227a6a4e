"""NaN/Inf samples in a raw recording are gaps: analysed around, never refused, never bridged."""

from __future__ import annotations

import importlib.resources

import numpy as np
import pytest
from ecgae.runtime import InputError, Model
from ecgae.runtime.gaps import finite_pieces, gap_spans
from ecgae.runtime.monitor import Monitor

FS = 360.0
SECONDS = 200
GAPS = ((30.0, 1), (70.0, int(FS)), (120.0, int(10 * FS)), (160.0, 3))  # (start s, samples): 1 sample to 10 s


@pytest.fixture(scope="module")
def signal() -> np.ndarray:
    path = importlib.resources.files("ecgae.training") / "data" / "bundled.npz"
    with path.open("rb") as f, np.load(f, allow_pickle=False) as z:
        return (z["mitdb_100_adc"][: int(SECONDS * FS)].astype(np.float64) - 1024.0) / 200.0


@pytest.fixture(scope="module")
def gapped(signal) -> np.ndarray:
    x = signal.copy()
    for t, n in GAPS:
        x[int(t * FS) : int(t * FS) + n] = np.nan
    x[int(160 * FS) + 1] = np.inf  # NaN and Inf alike
    return x


@pytest.fixture(scope="module")
def model(mitdb_bundle) -> Model:
    return Model.load(mitdb_bundle)


def test_pieces_and_spans_split_at_every_non_finite_run():
    x = np.array([np.nan, 1, 2, np.nan, np.inf, 3, np.nan])
    np.testing.assert_array_equal(finite_pieces(x), [[1, 3], [5, 6]])
    np.testing.assert_array_equal(gap_spans(x), [[0, 1], [3, 5], [6, 7]])


def test_a_recording_with_gaps_equals_its_pieces_analysed_one_by_one(model, gapped):
    profile = model.calibrate(gapped, FS, seconds=100)
    got = model.analyze(gapped, FS, profile)
    np.testing.assert_array_equal(got.gaps, gap_spans(gapped))
    assert len(got.gaps) == len(GAPS)
    pieces = [model.analyze(gapped[a:b], FS, profile) for a, b in finite_pieces(gapped)]
    np.testing.assert_array_equal(got.r_peak, np.concatenate([p.r_peak + a for p, (a, _) in
                                                              zip(pieces, finite_pieces(gapped))]))
    np.testing.assert_array_equal(got.usable, np.concatenate([p.usable for p in pieces]))
    # scores depend on the RR history, which runs on across a gap (it is the wearer's rhythm) while no RR
    # interval spans one: the first beat after each gap has no RR
    np.testing.assert_allclose(got.rr, np.concatenate([p.rr for p in pieces]), rtol=0, atol=1e-12)
    previous = got.r_peak - np.round(got.rr * FS)  # where each beat's RR interval starts
    for _, b in got.gaps:
        after = got.r_peak >= b
        assert not (after & (previous < b)).any()  # no interval starts before a gap and ends after it
    for (a, b) in got.gaps:  # no beat's window reaches into a gap
        pre, post = model.preprocessing.pre, model.preprocessing.length - model.preprocessing.pre
        assert not ((got.r_peak - pre < b) & (got.r_peak + post > a)).any()


def test_the_monitor_splits_the_stream_at_gaps_as_analyze_does(model, gapped):
    profile = model.calibrate(gapped, FS, seconds=100)
    want = model.analyze(gapped, FS, profile)
    for sizes in (np.full(gapped.size, 360), np.random.default_rng(2).integers(1, 3000, gapped.size)):
        monitor, events, i = Monitor(model, FS, profile=profile), [], 0
        for n in sizes:
            if i >= gapped.size:
                break
            events += monitor.push(gapped[i : i + n])
            i += n
        events += monitor.flush()
        np.testing.assert_array_equal([e.r_peak for e in events], want.r_peak)
        np.testing.assert_allclose([e.score for e in events], want.score, rtol=0, atol=1e-5)
        np.testing.assert_array_equal([e.flag for e in events], want.flag)
        np.testing.assert_allclose([e.rr for e in events], want.rr, rtol=0, atol=1e-12)
        np.testing.assert_array_equal(np.array(monitor.gaps), want.gaps)
        np.testing.assert_array_equal([e.label for e in events], want.label)


def test_only_gaps_is_refused_by_name(model):
    with pytest.raises(InputError, match="NaN/Inf and nothing else"):
        model.analyze(np.full(5000, np.nan), FS)


def test_beats_with_nan_keep_their_clear_error(model):
    with pytest.raises(InputError, match="finite"):
        model.score(np.full((2, model.input_length), np.nan, np.float32))
