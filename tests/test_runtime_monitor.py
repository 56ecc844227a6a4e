"""The streaming Monitor and ``ecgae monitor``: events equal Model.analyze's over a recording, whatever the
block sizes; enrolment from the stream's first seconds; bad blocks; the CLI at the end of a pipe."""

from __future__ import annotations

import importlib.resources
import json
import subprocess
import sys

import numpy as np
import pytest
from ecgae.benchmarks.quality import into_rail
from ecgae.cli import main
from ecgae.runtime import InputError, Model
from ecgae.runtime.monitor import Monitor

FS = 360.0
SECONDS = 200  # long enough for a 120-s enrolment and scoring after it


@pytest.fixture(scope="module")
def adc() -> np.ndarray:
    path = importlib.resources.files("ecgae.training") / "data" / "bundled.npz"
    with path.open("rb") as f, np.load(f, allow_pickle=False) as z:
        return z["mitdb_100_adc"][: int(SECONDS * FS)].astype(np.int16)


@pytest.fixture(scope="module")
def signal(adc) -> np.ndarray:
    return (adc.astype(np.float64) - 1024.0) / 200.0


@pytest.fixture(scope="module")
def model(mitdb_bundle) -> Model:
    return Model.load(mitdb_bundle)


def run_monitor(monitor: Monitor, x: np.ndarray, sizes) -> list:
    events, i = [], 0
    for n in sizes:
        if i >= x.size:
            break
        events += monitor.push(x[i : i + n])
        i += n
    return events + monitor.flush()


def assert_like_analyze(events, result) -> None:
    np.testing.assert_array_equal([e.r_peak for e in events], result.r_peak)
    np.testing.assert_allclose([e.score for e in events], result.score, rtol=0, atol=1e-5)
    np.testing.assert_array_equal([e.flag for e in events], result.flag)
    np.testing.assert_allclose(np.array([e.rr for e in events]), result.rr, rtol=0, atol=1e-12)
    np.testing.assert_allclose(np.stack([e.z for e in events]), result.z, rtol=0, atol=1e-5)
    np.testing.assert_array_equal([e.usable for e in events], result.usable)
    np.testing.assert_array_equal([e.reason for e in events], result.reason)
    np.testing.assert_array_equal([e.label for e in events], result.label)
    np.testing.assert_array_equal([e.template for e in events], result.template)


@pytest.fixture(scope="module")
def damaged(signal) -> np.ndarray:
    """The recording with noise at 30-36 s, a dropout at 130-133 s and clipping at 160-166 s."""
    x = signal.copy()
    x[int(30 * FS) : int(36 * FS)] += np.random.default_rng(0).normal(0.0, 0.5, int(6 * FS))
    x[int(130 * FS) : int(133 * FS)] = 0.0
    clip = slice(int(160 * FS), int(166 * FS))
    x[clip] = into_rail(x[clip], 0.3)
    return x


def test_events_equal_analyze_without_a_profile(model, signal):
    rng = np.random.default_rng(0)
    assert_like_analyze(run_monitor(Monitor(model, FS), signal, rng.integers(1, 2000, signal.size)),
                        model.analyze(signal, FS))


def test_events_equal_analyze_with_a_profile_at_any_block_size(model, signal):
    profile = model.calibrate(signal, FS, seconds=120)
    want = model.analyze(signal, FS, profile)
    for sizes in (np.full(signal.size, 360), np.random.default_rng(1).integers(1, 100, signal.size), [signal.size]):
        assert_like_analyze(run_monitor(Monitor(model, FS, profile=profile), signal, sizes), want)


def test_unusable_beats_are_reported_not_scored_and_the_stream_agrees(model, damaged):
    want = model.analyze(damaged, FS)
    bad = ~want.usable
    assert 5 <= bad.sum() <= 40 and set(want.reason[bad]) <= {"noise", "flat", "clipped"}
    assert np.isnan(want.score[bad]).all() and not want.flag[bad].any() and np.isnan(want.z[bad]).all()
    assert np.isfinite(want.score[~bad]).all()
    after_bad = np.r_[False, bad[:-1]]
    assert np.isnan(want.rr[bad | after_bad]).all()  # no rhythm across unusable signal
    for t0, t1 in ((30, 36), (130, 133), (160, 166)):  # every beat inside a damaged stretch is caught
        inside = (want.r_peak > (t0 + 1.2) * FS) & (want.r_peak < (t1 - 0.9) * FS)
        assert bad[inside].all()
    assert_like_analyze(run_monitor(Monitor(model, FS), damaged, np.full(damaged.size, 500)), want)


def test_enrolment_leaves_unusable_beats_out(model, damaged):
    monitor = Monitor(model, FS, calibrate_seconds=120)
    events = run_monitor(monitor, damaged, np.full(damaged.size, 720))
    profile = model.calibrate(damaged, FS, seconds=120)
    cut = model.analyze(damaged, FS)
    assert profile.n_beats == int((cut.usable & (cut.r_peak < 120 * FS)).sum()) < int((cut.r_peak < 120 * FS).sum())
    assert monitor.profile.to_dict() == profile.to_dict()
    assert_like_analyze(events, model.analyze(damaged, FS, profile))


def test_enrols_from_the_streams_first_seconds(model, signal):
    monitor = Monitor(model, FS, calibrate_seconds=120)
    events = run_monitor(monitor, signal, np.full(signal.size, 720))
    profile = model.calibrate(signal, FS, seconds=120)
    assert monitor.profile.to_dict() == profile.to_dict()
    assert_like_analyze(events, model.analyze(signal, FS, profile))


def test_bad_blocks_are_refused_and_the_monitor_goes_on(model, signal):
    monitor, events = Monitor(model, FS), []
    half = signal.size // 2
    events += monitor.push(signal[:half])
    for bad, message in ((np.array([np.inf, 1.0], dtype=object), "real numbers"), (np.zeros((3, 2)), "1-D"),
                         (np.array(["x"]), "real numbers")):
        with pytest.raises(InputError, match=message):
            monitor.push(bad)
    events += monitor.push(signal[half:]) + monitor.flush()
    np.testing.assert_array_equal([e.r_peak for e in events], model.analyze(signal, FS).r_peak)


def test_refuses_a_profile_with_calibrate_seconds(model, signal):
    profile = model.calibrate(signal, FS, seconds=120)
    with pytest.raises(InputError, match="calibrate_seconds"):
        Monitor(model, FS, profile=profile, calibrate_seconds=60)


def test_cli_writes_one_line_per_beat_in_a_pipe(model, mitdb_bundle, adc, signal):
    """int16 ADC samples through a pipe in small writes; --scale turns them into mV (gain 200, baseline 0
    does not matter after the band-pass). One JSON line per beat, as analyze finds them."""
    proc = subprocess.Popen([sys.executable, "-m", "ecgae.cli", "monitor", str(mitdb_bundle), "--fs", "360",
                             "--format", "int16", "--scale", "0.005"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    raw = adc.astype("<i2").tobytes()
    for i in range(0, len(raw), 1000):  # 500 samples a write, odd-sized chunks would split samples
        proc.stdin.write(raw[i : i + 1000])
    out, err = proc.communicate()
    assert proc.returncode == 0, err.decode()
    lines = [json.loads(line) for line in out.decode().splitlines()]
    want = model.analyze(adc.astype(np.float64) * 0.005, FS)
    assert [e["r_peak"] for e in lines] == want.r_peak.tolist()
    np.testing.assert_allclose([e["score"] for e in lines], want.score, rtol=0, atol=1e-5)
    assert f"{len(lines)} beats" in err.decode()


def test_cli_reports_a_bad_text_line_and_goes_on(mitdb_bundle, signal):
    text = "\n".join(f"{v:.6f}" for v in signal[:3600]) + "\nnot-a-number\n" + \
        "\n".join(f"{v:.6f}" for v in signal[3600:])
    proc = subprocess.run([sys.executable, "-m", "ecgae.cli", "monitor", str(mitdb_bundle), "--fs", "360"],
                          input=text.encode(), capture_output=True)
    assert proc.returncode == 0
    assert '"error"' in proc.stderr.decode() and "not-a-number" in proc.stderr.decode()
    assert len(proc.stdout.decode().splitlines()) > 200


def test_cli_score_counts_unusable_beats_and_writes_their_verdict(model, mitdb_bundle, damaged, tmp_path, capsys):
    np.save(tmp_path / "ecg.npy", damaged)
    assert main(["score", str(mitdb_bundle), str(tmp_path / "ecg.npy"), "--fs", "360",
                 "--out", str(tmp_path / "s.csv")]) == 0
    want = model.analyze(damaged, FS)
    bad = int((~want.usable).sum())
    assert f"{bad} in unusable signal, not scored" in capsys.readouterr().out
    rows = np.loadtxt(tmp_path / "s.csv", delimiter=",", skiprows=1)  # the header row
    np.testing.assert_array_equal(rows[:, 0], want.r_peak)
    np.testing.assert_array_equal(rows[:, 3], want.usable)
    assert np.isnan(rows[rows[:, 3] == 0, 1]).all() and not rows[rows[:, 3] == 0, 2].any()


def test_a_coarse_recording_with_a_repeated_value_and_a_rail_streams_like_analyze(model, signal):
    """The gate's history (the recording's resolution, its recent holds, the levels it held) is carried
    between pushes: an 8-bit trace at 125 Hz with a lost packet's repeated value and a rail hit gives the
    same verdicts pushed in any blocks as analysed whole."""
    from ecgae.runtime.preprocess import resample

    rate = 125.0
    x = np.round(resample(signal, FS, rate) * 26) / 26
    x[int(50 * rate) : int(51 * rate)] = x[int(50 * rate)]  # a lost packet: the last value repeated for 1 s
    x[int(90 * rate) : int(96 * rate)] = into_rail(x[int(90 * rate) : int(96 * rate)], 0.3)
    want = model.analyze(x, rate)
    assert {"flat", "clipped"} <= set(want.reason) and want.usable.mean() >= 0.9
    for sizes in (np.random.default_rng(2).integers(1, 300, x.size), [x.size]):
        events = run_monitor(Monitor(model, rate), x, sizes)
        np.testing.assert_array_equal([e.reason for e in events], want.reason)
        assert_like_analyze(events, want)
