"""``ecgae score-archive``: outputs per recording, error isolation, resume, atomic writes under a kill, and
Ray Data's output equal to the in-process run's."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch", reason="the raw-signal bundle is trained here: needs the [train] extra")
pa = pytest.importorskip("pyarrow", reason="needs the [archive] extra")
pq = pytest.importorskip("pyarrow.parquet")
edfio = pytest.importorskip("edfio")
wfdb = pytest.importorskip("wfdb")

from ecgae.archive import engine, store  # noqa: E402
from ecgae.archive.sources import Recording, choose_lead, expand_inputs, read_recording  # noqa: E402
from ecgae.cli import main as cli  # noqa: E402
from ecgae.runtime import InputError, Model  # noqa: E402
from ecgae.runtime.bundle import SEAL  # noqa: E402
from ecgae.runtime.seal import seal  # noqa: E402
from ecgae.training.build_others import load_record  # noqa: E402

FS = 360.0


@pytest.fixture(scope="session")
def mitdb_bundle(tmp_path_factory) -> Path:
    """A 1-epoch AE on bundled record 100 (raw signal, 360 Hz, L = 450), exported: seconds."""
    from ecgae.export.bundle import export_run
    from ecgae.training.train import TrainConfig, train

    root = tmp_path_factory.mktemp("mitdb")
    train(TrainConfig(model="ae", data="bundled:mitdb", epochs=1, seed=0), root / "run", log=lambda *a, **k: None)
    export_run(root / "run", root / "bundle", log=lambda *a, **k: None)
    return root / "bundle"


def _mlii() -> np.ndarray:
    from importlib.resources import files

    with np.load(files("ecgae.training") / "data" / "bundled.npz", allow_pickle=False) as z:
        return (z["mitdb_100_adc"] - z["mitdb_100_baseline"]) / z["mitdb_100_gain"]


@pytest.fixture(scope="session")
def archive(tmp_path_factory) -> Path:
    """Short recordings in every input format, plus one flat and one unreadable file."""
    root = tmp_path_factory.mktemp("archive")
    ml, rng = _mlii(), np.random.default_rng(0)
    for i in range(3):  # 40 s slices, the last two with added noise
        part = ml[i * 14400 : i * 14400 + 14400]
        np.save(root / f"slice{i}.npy", part + (0.02 * i) * rng.standard_normal(part.size))
    v5 = load_record("mitdb_100_v5")[0][:, 0]
    edfio.Edf([edfio.EdfSignal(v5[:14400], sampling_frequency=FS, label="ECG V5", physical_dimension="mV"),
               edfio.EdfSignal(ml[:14400], sampling_frequency=FS, label="ECG MLII", physical_dimension="mV")]
              ).write(root / "two_leads.edf")
    c2015, fs_c, leads = load_record("c2015_a103l")
    edfio.Edf([edfio.EdfSignal(c2015[: int(60 * fs_c), i], sampling_frequency=fs_c, label=name,
                               physical_dimension="mV") for i, name in enumerate(leads)]).write(root / "icu.edf")
    (root / "wfdb").mkdir()
    wfdb.wrsamp("rec100", fs=FS, units=["mV"], sig_name=["MLII"], p_signal=ml[20000:34400, None], fmt=["16"],
                write_dir=str(root / "wfdb"))
    np.save(root / "flat.npy", np.zeros(14400))
    (root / "broken.edf").write_bytes(b"not an EDF file " * 20)
    return root


def _run(bundle: Path, inputs: list[Path], out: Path, **kw) -> dict[str, dict]:
    recordings = expand_inputs([str(p) for p in inputs])
    options = engine.Options(str(bundle), str(out), store.bundle_sha256(bundle), fs=FS)
    return {r["record"]: r for r in engine.run(recordings, options, **kw)}


def _tables(out: Path) -> dict[str, pa.Table]:
    return {p.stem: pq.read_table(p) for p in sorted(out.glob("*.parquet")) if p.name != store.SUMMARY}


def test_each_recording_scored_and_failures_isolated(mitdb_bundle, archive, tmp_path):
    rows = _run(mitdb_bundle, [archive], tmp_path)
    assert {k: r["status"] for k, r in rows.items()} == {
        "slice0": "scored", "slice1": "scored", "slice2": "scored", "two_leads": "scored", "icu": "scored",
        "rec100": "scored", "flat": "failed", "broken": "failed"}
    errors = {e["record"]: e["error"] for e in map(json.loads, (tmp_path / store.ERRORS).read_text().splitlines())}
    assert set(errors) == {"flat", "broken"}
    assert "flat signal" in errors["flat"] and "cannot read the file" in errors["broken"]
    assert rows["two_leads"]["lead"] == "ECG MLII" and rows["icu"]["lead"] == "II" and rows["icu"]["fs"] == 250

    # the Parquet rows are the model's own scores of that lead, beat for beat
    model = Model.load(mitdb_bundle)
    table = pq.read_table(tmp_path / "slice0.parquet")
    assert table.column_names == ["record", "r_peak", "time", "score", "flag", "usable", "rr", "latent"]
    assert all(table["usable"].to_pylist())  # a clean slice of record 100
    beats, peaks = model.beats_from_signal(np.load(archive / "slice0.npy"), FS)
    np.testing.assert_array_equal(table["r_peak"].to_numpy(), peaks)
    np.testing.assert_array_equal(table["score"].to_numpy(), model.score(beats))
    np.testing.assert_array_equal(table["flag"].to_numpy(), model.score(beats) > model.threshold)
    np.testing.assert_array_equal(np.stack(table["latent"].to_numpy(zero_copy_only=False)), model.encode(beats))
    np.testing.assert_allclose(table["rr"].to_numpy(zero_copy_only=False)[1:], np.diff(peaks) / FS)
    # the first windowed beat's RR runs to the beat found before it, too close to the start for a window
    assert table["rr"].null_count == 0 and set(table["record"].to_pylist()) == {"slice0"}
    meta = table.schema.metadata
    assert meta[store.BUNDLE_KEY].decode() == store.bundle_sha256(mitdb_bundle)
    summary = json.loads(meta[store.SUMMARY_KEY])
    assert summary["beats"] == len(peaks) == rows["slice0"]["beats"] and summary["duration_s"] == 40.0
    assert 60 < summary["hr_median_bpm"] < 90  # record 100 is in sinus rhythm near 75 bpm

    overview = pq.read_table(tmp_path / store.SUMMARY).to_pylist()
    assert [r["record"] for r in overview] == list(rows)
    assert next(r for r in overview if r["record"] == "flat")["error"] == errors["flat"]


def test_inputs_mix_files_records_and_globs(archive):
    recs = expand_inputs([str(archive / "slice*.npy"), str(archive / "wfdb" / "rec100"), str(archive / "icu.edf"),
                          str(archive / "slice0.npy")])
    assert [(r.name, r.kind) for r in recs] == [("slice0", "array"), ("slice1", "array"), ("slice2", "array"),
                                                ("rec100", "wfdb"), ("icu", "edf")]
    with pytest.raises(InputError, match="does not exist"):
        expand_inputs([str(archive / "nothing-here")])


def test_colliding_stems_get_distinct_names(tmp_path):
    for sub in ("a", "b"):
        (tmp_path / sub).mkdir()
        np.save(tmp_path / sub / "rec.npy", np.zeros(10))
    names = [r.name for r in expand_inputs([str(tmp_path)])]
    assert len(set(names)) == 2 and all(n.startswith("rec-") for n in names)


def test_lead_choice():
    assert choose_lead(["V5", "MLII"], None, "x") == 1
    assert choose_lead(["ECG V1", "ECG II"], None, "x") == 1
    assert choose_lead(["PLETH", "ABP", "ECG1"], None, "x") == 2
    assert choose_lead(["Resp", "aVF", "V"], None, "x") == 1
    assert choose_lead(["", ""], None, "x") == 0
    assert choose_lead(["V5", "MLII"], "v5", "x") == 0 and choose_lead(["V5", "MLII"], "1", "x") == 1
    with pytest.raises(InputError, match="--lead"):
        choose_lead(["V5", "MLII"], "III", "x")
    with pytest.raises(InputError, match="expected an ECG lead"):
        choose_lead(["PLETH", "ABP"], None, "x")
    with pytest.raises(InputError, match="--fs"):
        read_recording(Recording("r", "r.npy", "array"))


def test_resume_reuses_only_outputs_of_the_same_bundle(mitdb_bundle, archive, tmp_path):
    out = tmp_path / "out"
    _run(mitdb_bundle, [archive], out)
    before = {p.name: p.stat().st_mtime_ns for p in out.glob("slice*.parquet")}
    (out / "slice1.parquet").write_bytes((out / "slice1.parquet").read_bytes()[:100])  # damaged: redone
    rows = _run(mitdb_bundle, [archive], out)
    assert {k: r["status"] for k, r in rows.items() if k.startswith("slice")} == {
        "slice0": "reused", "slice1": "scored", "slice2": "reused"}
    assert rows["flat"]["status"] == "failed"  # failures are retried, not remembered
    assert (out / "slice0.parquet").stat().st_mtime_ns == before["slice0.parquet"]
    assert rows["slice0"]["beats"] == pq.read_table(out / "slice0.parquet").num_rows

    other = tmp_path / "other-bundle"  # same graphs, another threshold: another bundle, so rescored
    shutil.copytree(mitdb_bundle, other)
    manifest = json.loads((other / "manifest.json").read_text())
    manifest["anomaly"]["threshold"] = 0.0
    (other / "manifest.json").write_bytes(seal(manifest, SEAL))  # sealed again, as export seals it
    rows = _run(other, [archive / "slice0.npy"], out)
    assert rows["slice0"]["status"] == "scored"
    assert pq.read_table(out / "slice0.parquet")["flag"].to_numpy().all()


def test_an_interrupted_write_leaves_no_output(mitdb_bundle, archive, tmp_path, monkeypatch):
    calls: list = []

    def replace_then_die(src, dst):
        if str(dst).endswith(".parquet"):
            calls.append(dst)
        if len(calls) == 2:  # the second recording's rename never happens
            raise KeyboardInterrupt
        os.rename(src, dst)

    monkeypatch.setattr(os, "replace", replace_then_die)
    with pytest.raises(KeyboardInterrupt):
        _run(mitdb_bundle, [archive / "slice0.npy", archive / "slice1.npy"], tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["errors.jsonl", "slice0.parquet"]


def test_killed_run_restarts_where_it_stopped(mitdb_bundle, tmp_path):
    ml = _mlii()
    inputs = tmp_path / "in"
    inputs.mkdir()
    for i in range(16):  # 16 five-minute recordings: the kill lands well before the end
        np.save(inputs / f"r{i:02d}.npy", np.roll(ml, i * 3000)[:108000])
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "ecgae.cli", "score-archive", str(mitdb_bundle), str(inputs), "--fs", "360",
           "--out", str(out)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while not list(out.glob("r*.parquet")) and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    survivors = sorted(out.glob("r*.parquet"))
    assert 1 <= len(survivors) < 16, "the kill should land mid-run"
    for p in survivors:  # every file present is whole: readable, tagged, with its stated number of beats
        table = pq.read_table(p)
        assert table.num_rows == json.loads(table.schema.metadata[store.SUMMARY_KEY])["beats"] > 300

    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert f"{16 - len(survivors)} scored, {len(survivors)} reused" in done.stdout
    assert not list(out.glob(".*")) and len(list(out.glob("r*.parquet"))) == 16

    clean = _run(mitdb_bundle, [inputs], tmp_path / "clean")
    assert all(r["status"] == "scored" for r in clean.values())
    restarted, fresh = _tables(out), _tables(tmp_path / "clean")
    assert restarted.keys() == fresh.keys() and all(restarted[k].equals(fresh[k]) for k in fresh)


def test_cli_refuses_bad_arguments_with_exit_code_2(mitdb_bundle, bundles, archive, tmp_path, capsys):
    base = ["score-archive", str(mitdb_bundle), str(archive / "slice0.npy"), "--fs", "360", "--out", str(tmp_path)]
    assert cli(base + ["--calibrate-seconds", "-5"]) == 2
    assert "calibrate-seconds" in capsys.readouterr().err
    assert cli(["score-archive", str(bundles["ae"]), str(archive / "slice0.npy"), "--out", str(tmp_path)]) == 2
    assert "pre-cut beats" in capsys.readouterr().err
    assert cli(base[:2] + [str(tmp_path / "missing.edf")] + base[3:]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert cli(base + ["--workers", "0"]) == 2
    assert not list(tmp_path.glob("*.parquet"))
    assert cli(base) == 0
    assert "1 recordings: 1 scored" in capsys.readouterr().out
    assert cli(base + ["--calibrate-seconds", "60"]) == 0  # wearer-relative scores: not the plain run's output
    assert "1 recordings: 1 scored" in capsys.readouterr().out


def test_ray_output_equals_in_process(mitdb_bundle, archive, tmp_path):
    pytest.importorskip("ray", reason="needs the [archive] extra")
    local = _run(mitdb_bundle, [archive], tmp_path / "local")
    on_ray = _run(mitdb_bundle, [archive], tmp_path / "ray", workers=2)
    assert len({r["pid"] for r in on_ray.values()} - {os.getpid()}) == 2  # two actors did the work
    strip = ("seconds", "cpu_seconds", "pid", "rss_mb")
    assert {k: {f: v for f, v in r.items() if f not in strip} for k, r in on_ray.items()} == \
        {k: {f: v for f, v in r.items() if f not in strip} for k, r in local.items()}
    a, b = _tables(tmp_path / "local"), _tables(tmp_path / "ray")
    assert a.keys() == b.keys() and len(a) == 6
    for name in a:  # same rows, same scores, bit for bit; same summary and bundle tag
        assert a[name].equals(b[name]) and a[name].schema.metadata == b[name].schema.metadata, name
    assert pq.read_table(tmp_path / "local" / store.SUMMARY).equals(pq.read_table(tmp_path / "ray" / store.SUMMARY))


def test_a_spawned_worker_reports_its_own_peak_memory_not_its_parents():
    """A worker spawned from a large process (the in-process leg of the archive bench, from the demo) reports
    its own peak RSS: ru_maxrss survives exec and gave the parent's."""
    import multiprocessing

    held = np.ones(300 * 2**20 // 8)  # 300 MB resident in this process
    held += 1
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        child = pool.apply_async(engine.peak_rss_mb).get(timeout=120)
    assert engine.peak_rss_mb() >= 300
    assert child < engine.peak_rss_mb() - 200, (child, engine.peak_rss_mb())
