"""The streaming Monitor and ``ecgae monitor``: events equal Model.analyze's over a recording, whatever the
block sizes; enrolment from the stream's first seconds; bad blocks; the CLI at the end of a pipe."""

from __future__ import annotations

import importlib.resources
import json
import subprocess
import sys

import numpy as np
import pytest
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


def test_events_equal_analyze_without_a_profile(model, signal):
    rng = np.random.default_rng(0)
    assert_like_analyze(run_monitor(Monitor(model, FS), signal, rng.integers(1, 2000, signal.size)),
                        model.analyze(signal, FS))


def test_events_equal_analyze_with_a_profile_at_any_block_size(model, signal):
    profile = model.calibrate(signal, FS, seconds=120)
    want = model.analyze(signal, FS, profile)
    for sizes in (np.full(signal.size, 360), np.random.default_rng(1).integers(1, 100, signal.size), [signal.size]):
        assert_like_analyze(run_monitor(Monitor(model, FS, profile=profile), signal, sizes), want)


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
    for bad, message in ((np.array([np.nan, 1.0]), "finite"), (np.zeros((3, 2)), "1-D"),
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
