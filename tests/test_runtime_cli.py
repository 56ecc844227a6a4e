"""The ``ecgae`` command as a new user meets it, through the entry point as typed: the help, options in any
order, fractions, CSV headers, outputs checked before work, the lead and the resampling said, the edge
variants, denoise and fill-gaps, the PRD of compress, and the warnings for input that was read wrongly.

Runs in the torch-free venv too (make test-runtime).
"""

from __future__ import annotations

import numpy as np
import pytest
from ecgae import __version__
from ecgae.cli import COMMANDS, main
from ecgae.runtime import Model
from ecgae.runtime.codec import filtered_windows, reached_prd, rebuild
from ecgae.runtime.io import read_array
from ecgae.runtime.restore import denoise, fill_gaps

RUNTIME_VERBS = ["example", "encode", "reconstruct", "score", "sample", "info", "calibrate", "monitor", "compress",
                 "decompress", "denoise", "fill-gaps"]


@pytest.fixture(scope="module")
def record(tmp_path_factory) -> str:
    """The first minute of MIT-BIH record 100 (MLII, mV, 360 Hz), written as a user would get it."""
    path = tmp_path_factory.mktemp("rec") / "rec.npy"
    assert main(["example", "mitdb100", "--seconds", "60", "--out", str(path)]) == 0
    return str(path)


def _help(argv: list[str], capsys) -> str:
    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code == 0
    return capsys.readouterr().out


def test_help_lists_every_verb_with_its_purpose_and_version(capsys):
    text = _help(["--help"], capsys)
    for name, (_, purpose, _) in COMMANDS.items():
        assert name in text and purpose.split()[0] in text, name
    assert _help(["--version"], capsys).strip() == f"ecgae {__version__}"


@pytest.mark.parametrize("verb", RUNTIME_VERBS)
def test_each_verbs_help_has_an_example_and_its_defaults(verb, capsys):
    text = _help([verb, "--help"], capsys)
    assert f"example:\n  ecgae {verb} " in text
    if verb not in ("info", "sample", "decompress", "example"):
        assert "(default: 1)" in text or "(default: " in text  # e.g. --threads, --scale
    if verb in ("score", "monitor"):
        assert "--precision {fp32,int8}" in text and "--graph-format {onnx,ort}" in text


def test_monitor_takes_its_options_in_any_order_and_scale_as_a_fraction(mitdb_bundle, tmp_path, capsys):
    stream = tmp_path / "s.i16"
    assert main(["example", "mitdb100", "--seconds", "30", "--format", "int16", "--out", str(stream)]) == 0
    capsys.readouterr()
    b = str(mitdb_bundle)
    runs = [["monitor", b, str(stream), "--fs", "360", "--format", "int16", "--scale", "0.005"],
            ["monitor", b, "--fs", "360", "--format", "int16", "--scale", "1/200", str(stream)]]
    outs = []
    for argv in runs:
        assert main(argv) == 0
        outs.append(capsys.readouterr().out)
    assert outs[0] == outs[1] and len(outs[0].splitlines()) > 20
    with pytest.raises(SystemExit):
        main(["monitor", b, "--fs", "360", "--scale", "1/0", str(stream)])
    assert "--scale: expected a number or a fraction such as 1/200, received '1/0'" in capsys.readouterr().err


def test_score_writes_a_csv_header_says_lead_and_resampling_and_reads_csv_with_a_header(
        mitdb_bundle, record, tmp_path, capsys):
    b, out = str(mitdb_bundle), tmp_path / "s.csv"
    signal = np.load(record)
    at250 = np.interp(np.arange(0, len(signal) / 360, 1 / 250), np.arange(len(signal)) / 360, signal)
    np.save(tmp_path / "r250.npy", at250)
    assert main(["score", b, "--out", str(out), str(tmp_path / "r250.npy"), "--fs", "250"]) == 0
    printed = capsys.readouterr().out
    assert "resampled from 250 Hz to the bundle's 360 Hz" in printed
    assert out.read_text().splitlines()[0] == "index,score,flag,usable"
    rows = read_array(out)  # the header row is skipped on reading
    assert rows.shape[1] == 4 and len(rows) > 50
    beats = tmp_path / "beats.csv"
    model = Model.load(mitdb_bundle)
    x, _ = model.beats_from_signal(signal, 360)
    np.savetxt(beats, x[:5], delimiter=",", header=",".join(f"x{i}" for i in range(x.shape[-1])), comments="")
    assert main(["score", b, str(beats), "--out", str(tmp_path / "b.npy")]) == 0
    np.testing.assert_allclose(np.load(tmp_path / "b.npy")[:, 1], model.score(x[:5]), rtol=1e-5)


def test_score_reads_the_same_default_lead_as_score_archive(mitdb_bundle, record, tmp_path, capsys):
    wfdb = pytest.importorskip("wfdb")
    from ecgae.runtime.leads import choose_lead

    signal = np.load(record)
    wfdb.wrsamp("two", fs=360, units=["mV", "mV"], sig_name=["V5", "II"], p_signal=np.column_stack([-signal, signal]),
                fmt=["16", "16"], write_dir=str(tmp_path))
    assert main(["score", str(mitdb_bundle), str(tmp_path / "two"), "--out", str(tmp_path / "s.npy")]) == 0
    assert f"read lead II of {tmp_path / 'two'}" in capsys.readouterr().out
    assert choose_lead(["V5", "II"], None, "x") == 1


def test_out_is_checked_before_any_work(mitdb_bundle, record, capsys):
    assert main(["score", str(mitdb_bundle), record, "--fs", "360", "--out", "s.txt"]) == 2
    captured = capsys.readouterr()
    assert "--out: expected a .npy or .csv file name, received 's.txt'" in captured.err
    assert "beats cut" not in captured.out
    assert main(["calibrate", str(mitdb_bundle), record, "--fs", "360", "--out", "w.txt"]) == 2
    assert main(["compress", str(mitdb_bundle), record, "--fs", "360", "--out", "r.npy"]) == 2
    assert "expected a .ecgz file name" in capsys.readouterr().err


def test_score_and_monitor_run_the_int8_and_ort_graphs(bundles, tmp_path):
    beats = np.random.default_rng(0).standard_normal((6, Model.load(bundles["ae"]).input_length))
    np.save(tmp_path / "beats.npy", beats.astype(np.float32))
    for precision, fmt in (("int8", "onnx"), ("fp32", "ort"), ("int8", "ort")):
        out = tmp_path / f"{precision}-{fmt}.npy"
        assert main(["score", str(bundles["ae"]), str(tmp_path / "beats.npy"), "--precision", precision,
                     "--graph-format", fmt, "--out", str(out)]) == 0
        want = Model.load(bundles["ae"], precision=precision, graph_format=fmt).score(beats.astype(np.float32))
        np.testing.assert_allclose(np.load(out)[:, 1], want, rtol=1e-6)


def test_monitor_loads_the_graphs_its_options_name(mitdb_bundle, tmp_path, capsys):
    """The raw-signal test bundle holds FP32 graphs only: asking the monitor for INT8 reaches Model.load,
    which names what the bundle holds (the INT8 graphs themselves are compared above through score)."""
    (tmp_path / "s.txt").write_text("0.1\n")
    assert main(["monitor", str(mitdb_bundle), "--fs", "360", "--precision", "int8", str(tmp_path / "s.txt")]) == 2
    assert "expected int8 graphs in onnx format" in capsys.readouterr().err


def test_denoise_and_fill_gaps_match_the_runtime_functions(mitdb_bundle, record, tmp_path, capsys):
    b, model = str(mitdb_bundle), Model.load(mitdb_bundle)
    assert main(["denoise", b, record, "--fs", "360", "--out", str(tmp_path / "d.npy")]) == 0
    filtered, peaks, windows = filtered_windows(model, np.load(record), 360)
    want = rebuild(denoise(model, windows), peaks, model.preprocessing.pre, filtered.size)
    np.testing.assert_allclose(np.load(tmp_path / "d.npy"), want, atol=1e-6)
    x, _ = model.beats_from_signal(np.load(record), 360)
    beats = x[:4].astype(np.float64)
    holes = beats.copy()
    holes[:, 200:240] = np.nan
    np.save(tmp_path / "holes.npy", holes)
    assert main(["fill-gaps", b, str(tmp_path / "holes.npy"), "--out", str(tmp_path / "f.npy")]) == 0
    assert "filled 160 missing samples in 4 of 4 beats" in capsys.readouterr().out
    observed = np.isfinite(holes)
    np.testing.assert_allclose(np.load(tmp_path / "f.npy"), fill_gaps(model, np.where(observed, holes, 0), observed),
                               atol=1e-6)


def test_compress_prints_the_prd_it_reached(mitdb_bundle, record, tmp_path, capsys):
    out = tmp_path / "r.ecgz"
    assert main(["compress", str(mitdb_bundle), record, "--fs", "360", "--bits", "6", "--out", str(out)]) == 0
    prd = reached_prd(Model.load(mitdb_bundle), np.load(record), 360, out.read_bytes())
    assert f"PRD {prd:.1f} % against the band-passed signal" in capsys.readouterr().out


def test_warnings_for_an_empty_stream_a_binary_stream_read_as_text_and_a_mostly_unusable_recording(
        mitdb_bundle, tmp_path, capsys):
    b = str(mitdb_bundle)
    (tmp_path / "empty.txt").write_text("")
    assert main(["monitor", b, "--fs", "360", str(tmp_path / "empty.txt")]) == 0
    assert "warning: no beats found" in capsys.readouterr().err
    stream = tmp_path / "s.i16"
    assert main(["example", "mitdb100", "--seconds", "20", "--format", "int16", "--out", str(stream)]) == 0
    assert main(["monitor", b, "--fs", "360", str(stream)]) == 0  # int16 read as text
    err = capsys.readouterr().err
    assert "is the stream binary? choose --format int16 or float32" in err and "warning: no beats found" in err
    assert len([line for line in err.splitlines() if line.startswith('{"error"')]) <= 3
    noise = np.random.default_rng(1).standard_normal(360 * 60) * 0.5
    np.save(tmp_path / "noise.npy", noise)
    assert main(["score", b, str(tmp_path / "noise.npy"), "--fs", "360", "--out", str(tmp_path / "n.csv")]) == 0
    err = capsys.readouterr().err
    assert "are in unusable signal, so this recording is mostly not scored" in err and "check --fs" in err


def test_score_gives_the_heart_rate_so_a_wrong_sample_rate_shows(mitdb_bundle, record, tmp_path, capsys):
    """A wrong --fs gives beats at a rate a person may have, so nothing can refuse it; the summary line gives
    the median heart rate, which then differs from the wearer's (record 100 runs at about 75 beats/min)."""
    b, out = str(mitdb_bundle), str(tmp_path / "s.csv")

    def rate(fs: str) -> float:
        assert main(["score", b, record, "--fs", fs, "--out", out]) == 0
        return float(capsys.readouterr().out.split("median ")[1].split(" beats/min")[0])
    assert 70 <= rate("360") <= 80
    assert not 60 <= rate("1440") <= 90 and not 60 <= rate("250") <= 90


def test_example_writes_each_bundled_recording(tmp_path, capsys):
    assert main(["example", "c2015-a103l", "--seconds", "10", "--out", str(tmp_path / "a.csv"), "--format",
                 "csv"]) == 0
    assert "250 Hz" in capsys.readouterr().out
    assert read_array(tmp_path / "a.csv").shape == (2500, 1)
    assert main(["example", "mitdb100", "--out", str(tmp_path / "a.txt")]) == 2  # npy by default


def test_score_archive_gives_a_mostly_unusable_recording_its_own_status(mitdb_bundle, tmp_path, capsys):
    pq = pytest.importorskip("pyarrow.parquet")
    pytest.importorskip("tqdm")
    np.save(tmp_path / "noise.npy", np.random.default_rng(1).standard_normal(360 * 60) * 0.5)
    assert main(["score-archive", str(mitdb_bundle), str(tmp_path / "noise.npy"), "--fs", "360",
                 "--out", str(tmp_path / "out")]) == 0
    captured = capsys.readouterr()
    assert "1 mostly unusable" in captured.out
    assert "warning: 1 recordings gave no beats or mostly unusable" in captured.err
    assert pq.read_table(tmp_path / "out" / "summary.parquet").to_pylist()[0]["status"] == "mostly unusable"
