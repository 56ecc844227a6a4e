"""Pacemaker spikes: found at any rate, taken out before beat finding, reported per beat; none on real ECG."""

from __future__ import annotations

import importlib.resources

import numpy as np
import pytest
from ecgae.runtime import Model, pacing
from ecgae.runtime.monitor import Monitor
from ecgae.runtime.preprocess import resample

FS = 360.0
SPIKE_MV = 5.0
BEFORE_S = 0.2  # an atrial (or AV-sequential) spike: far enough before the QRS to be a "QRS" of its own


@pytest.fixture(scope="module")
def record() -> tuple[np.ndarray, np.ndarray]:
    """Record 100's first 3 minutes of MLII in mV and its beats."""
    path = importlib.resources.files("ecgae.training") / "data" / "bundled.npz"
    with path.open("rb") as f, np.load(f, allow_pickle=False) as z:
        x = (z["mitdb_100_adc"].astype(np.float64) - z["mitdb_100_baseline"]) / z["mitdb_100_gain"]
        beats = z["mitdb_100_ann_sample"][np.isin(z["mitdb_100_ann_symbol"], list("NAV"))]
    n = int(180 * FS)
    return x[:n], beats[beats < n]


@pytest.fixture(scope="module")
def model(mitdb_bundle) -> Model:
    return Model.load(mitdb_bundle)


def with_spikes(x: np.ndarray, beats: np.ndarray, fs: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(record 100 at ``fs``, the same with a 2-ms spike BEFORE_S before every beat, the spikes' samples)."""
    y = resample(x, FS, fs)
    at = np.round(beats * fs / FS).astype(np.int64) - int(round(BEFORE_S * fs))
    at = at[at > 0]
    z = y.copy()
    for k in range(max(1, int(0.002 * fs))):
        z[at + k] += SPIKE_MV
    return y, z, at


@pytest.mark.parametrize("fs", [125.0, 250.0, 360.0, 1000.0])
def test_spikes_are_found_and_taken_out_at_any_rate(record, fs):
    y, z, at = with_spikes(*record, fs)
    clean, found = pacing.despike(z, fs)
    first = int(pacing.REFERENCE_S * fs / 10)  # the first tenth of the reference span has no past to judge by
    assert np.isin(at[at >= first], found).all() and found.size <= at.size
    assert np.abs(clean - y)[first:].max() < 0.05 * np.ptp(y)  # what is left is the line across two samples


@pytest.mark.parametrize("fs", [125.0, 250.0, 360.0, 1000.0])
def test_spikes_before_every_beat_leave_the_heart_rate_unchanged_and_the_beats_paced(model, record, fs):
    """Without the spikes taken out, spikes 200 ms before each QRS are detected as the beats and their QRS and
    T waves counted as more (at 125 and 250 Hz almost none of the beats was found where it is)."""
    y, z, _ = with_spikes(*record, fs)
    plain, spiked = model.analyze(y, fs), model.analyze(z, fs)
    assert abs(len(spiked) - len(plain)) <= 0.01 * len(plain)
    np.testing.assert_allclose(spiked.r_peak, plain.r_peak, atol=0.01 * fs)
    assert spiked.paced[spiked.r_peak > 1.5 * fs].all() and not plain.paced.any()


def test_real_recordings_have_no_spikes(record):
    """Record 100 and the bundled recordings of other people (PTB at 1000 Hz, a103l at 250 Hz with its motion
    artefact): no sample is taken for a pacing spike."""
    assert pacing.despike(record[0], FS)[1].size == 0
    path = importlib.resources.files("ecgae.training") / "data" / "others.npz"
    with path.open("rb") as f, np.load(f, allow_pickle=False) as z:
        for key in ("mitdb_100_v5", "ptb_s0010_re", "c2015_a103l"):
            x = (z[f"{key}_adc"].astype(np.float64) - z[f"{key}_baseline"]) / z[f"{key}_gain"]
            for j in range(x.shape[1]):
                assert pacing.despike(x[:, j], float(z[f"{key}_fs"]))[1].size == 0, (key, j)


@pytest.mark.parametrize("codes", [2, 3, 4])
def test_a_coarse_converters_rounding_is_not_a_spike_and_a_spike_of_a_few_codes_is(record, codes):
    """Record 100 at 125 Hz through a converter so coarse that the whole trace spans 2 to 4 codes (a bedside
    monitor's small lead): its one-code toggles, on the baseline and inside the QRS, stand out from flat
    flanks and reach a third of the recent range, and were taken for spikes (67 to 131 in 3 minutes). A
    stimulus of 6 codes before every beat is still found."""
    x, beats = record
    fs = 125.0
    y = resample(x, FS, fs)
    step = np.ptp(y) / codes
    coarse = np.round(y / step) * step
    assert pacing.despike(coarse, fs)[1].size == 0
    at = np.round(beats * fs / FS).astype(np.int64) - int(round(BEFORE_S * fs))
    at = at[at > int(pacing.REFERENCE_S * fs / 10)]
    spiked = coarse.copy()
    spiked[at] += 6 * step
    found = pacing.despike(spiked, fs)[1]
    assert np.isin(at, found).all() and found.size == at.size


def test_the_despiker_streams_what_one_pass_gives(record):
    _, z, _ = with_spikes(*record, 250.0)
    clean, found = pacing.despike(z, 250.0)
    d, parts, i = pacing.Despiker(250.0), [], 0
    for n in np.random.default_rng(4).integers(1, 900, z.size):
        if i >= z.size:
            break
        parts.append(d.push(z[i : i + n]))
        i += n
    parts.append(d.push(np.zeros(0), final=True))
    np.testing.assert_array_equal(np.concatenate(parts), clean)
    np.testing.assert_array_equal(d.spikes, found)


def test_the_monitor_reports_paced_beats_as_analyze_does(model, record):
    _, z, _ = with_spikes(*record, 250.0)
    profile = model.calibrate(z, 250.0, seconds=90)
    want = model.analyze(z, 250.0, profile)
    monitor, events = Monitor(model, 250.0, profile=profile), []
    for start in range(0, z.size, 250):
        events += monitor.push(z[start : start + 250])
    events += monitor.flush()
    np.testing.assert_array_equal([e.r_peak for e in events], want.r_peak)
    np.testing.assert_array_equal([e.paced for e in events], want.paced)
    np.testing.assert_array_equal([e.label for e in events], want.label)
    assert want.paced.mean() > 0.95 and set(want.label[want.paced]) <= {"/", "S", "V"}


def test_despiking_never_writes_the_recording_and_copies_only_when_it_must(model, record):
    """``analyze`` takes a day-long recording without a float64 copy of it: a recording without spikes comes
    back from ``despike`` as the same array, one with spikes as a cleaned copy, and the caller's array is
    never written (a read-only one is analysed as it is)."""
    x = record[0][: int(120 * FS)].copy()
    assert pacing.despike(x, FS)[0] is x
    y, z, _ = with_spikes(*record, 250.0)
    before = z.copy()
    clean, found = pacing.despike(z, 250.0)
    assert clean is not z and found.size and np.array_equal(z, before)
    z.flags.writeable = False
    assert np.array_equal(model.analyze(z, 250.0).r_peak, model.analyze(before, 250.0).r_peak)
    np.testing.assert_array_equal(z, before)
