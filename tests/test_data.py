"""Loaders on real records and on malformed inputs; splits that keep neighbouring beats together."""

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")
wfdb = pytest.importorskip("wfdb")

from ecgae.runtime.errors import InputError  # noqa: E402
from ecgae.training.datasets import PRE, WINDOW, load_beats  # noqa: E402
from ecgae.training.splits import split_indices  # noqa: E402

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
needs_shared = pytest.mark.skipif(not (SHARED / "mitdb" / "100.hea").is_file(), reason="shared records absent")


def test_bundled_mitdb_beats_are_real_and_labelled():
    bs = load_beats("bundled")
    assert bs.beats.shape[1] == WINDOW and bs.beats.dtype == np.float32
    counts = dict(zip(*np.unique(bs.labels, return_counts=True)))
    assert counts["N"] > 2200 and counts["A"] == 33 and counts["V"] == 1
    assert np.allclose(bs.beats.mean(axis=1), 0, atol=1e-5) and np.allclose(bs.beats.std(axis=1), 1, atol=1e-3)
    # the R peak sits PRE samples into the window: the window's maximum is there for most beats
    assert np.median(np.abs(np.argmax(bs.beats, axis=1) - PRE)) <= 3
    assert len(bs.prep.taps) % 2 == 1 and bs.prep.sample_rate == 360.0


def test_bundled_ecg5000_keeps_classes():
    bs = load_beats("bundled:ecg5000")
    assert bs.beats.shape == (500, 140)
    assert dict(zip(*np.unique(bs.labels, return_counts=True))) == {"1": 292, "2": 177, "3": 10, "4": 19, "5": 2}


@needs_shared
def test_wfdb_folder_matches_bundled(tmp_path):
    for f in (SHARED / "mitdb").glob("100.*"):  # record 100 alone: the shared folder holds other records too
        (tmp_path / f.name).symlink_to(f)
    a, b = load_beats(f"wfdb:{tmp_path}"), load_beats("bundled")
    assert np.allclose(a.beats, b.beats, atol=1e-5) and (a.labels == b.labels).all()


@needs_shared
def test_ucr_file_and_resampling(tmp_path):
    bs = load_beats(f"ucr:{SHARED / 'ucr' / 'ECG5000_TRAIN.txt'}", length=200)
    assert bs.beats.shape == (500, 200)


def _write_records(folder: Path, n: int, annotate: bool = True) -> None:
    """Cut record 100 into ``n`` shorter real records (with their annotations) in WFDB format."""
    rec = wfdb.rdrecord(str(SHARED / "mitdb" / "100"), channel_names=["MLII"], sampto=n * 36000)
    ann = wfdb.rdann(str(SHARED / "mitdb" / "100"), "atr", sampto=n * 36000)
    for i in range(n):
        lo, hi = i * 36000, (i + 1) * 36000
        name = f"r{i}"
        wfdb.wrsamp(name, fs=360, units=["mV"], sig_name=["MLII"], p_signal=rec.p_signal[lo:hi],
                    fmt=["212"], adc_gain=[200], baseline=[1024], write_dir=str(folder))
        if annotate:
            m = (ann.sample >= lo) & (ann.sample < hi)
            wfdb.wrann(name, "atr", ann.sample[m] - lo, np.asarray(ann.symbol)[m].tolist(), write_dir=str(folder))


@needs_shared
def test_split_by_record_keeps_each_record_on_one_side(tmp_path):
    _write_records(tmp_path, 5)
    bs = load_beats(f"wfdb:{tmp_path}")
    parts = bs.split()
    sides = {name: set(bs.records[idx]) for name, idx in parts.items()}
    assert all(sides.values())
    assert not (sides["train"] & sides["val"]) and not (sides["train"] & sides["test"]) and not (
        sides["val"] & sides["test"])


@needs_shared
def test_unannotated_record_uses_xqrs(tmp_path):
    _write_records(tmp_path, 1, annotate=False)
    bs = load_beats(f"wfdb:{tmp_path}")
    assert 100 < len(bs) < 160 and set(bs.labels) == {"?"}  # about 120 beats in 100 s


def test_single_record_split_is_contiguous_with_a_guard():
    bs = load_beats("bundled")
    parts = bs.split()
    tr, va, te = (bs.positions[parts[k]] for k in ("train", "val", "test"))
    assert tr.max() < va.min() and va.max() < te.min()
    assert va.min() - tr.max() >= WINDOW and te.min() - va.max() >= WINDOW  # no shared samples


def test_unordered_rows_reach_every_side_with_every_common_class():
    bs = load_beats("bundled:ecg5000")
    parts = bs.split()
    for idx in parts.values():
        assert {"1", "2"} <= set(bs.labels[idx])
    assert sum(len(i) for i in parts.values()) == len(bs)
    assert len(set().union(*[set(i.tolist()) for i in parts.values()])) == len(bs)


@pytest.mark.parametrize("spec, message", [
    ("nope", "data spec"),
    ("bundled:other", "bundled:other"),
    ("wfdb:/nonexistent-folder", "not a folder"),
    ("ucr:/nonexistent.txt", "not found"),
    ("npy:/nonexistent.npy", "not found"),
])
def test_bad_specs(spec, message):
    with pytest.raises(InputError, match=message):
        load_beats(spec)


def test_malformed_beat_files(tmp_path):
    np.save(tmp_path / "nan.npy", np.array([[0.0, np.nan, 1.0], [1.0, 2.0, 3.0]]))
    np.save(tmp_path / "1d.npy", np.zeros(10))
    np.save(tmp_path / "empty.npy", np.zeros((0, 10)))
    np.save(tmp_path / "obj.npy", np.array([[1, "a"]], dtype=object), allow_pickle=True)
    (tmp_path / "text.csv").write_text("1,2,x\n4,5,6\n")
    cases = {"npy:nan.npy": "NaN/Inf in 1 rows", "npy:1d.npy": "shape", "npy:empty.npy": "shape",
             "npy:obj.npy": "obj.npy", "csv:text.csv": "not a numeric"}
    for spec, message in cases.items():
        kind, name = spec.split(":")
        with pytest.raises(InputError, match=message):
            load_beats(f"{kind}:{tmp_path / name}")


@needs_shared
def test_malformed_wfdb(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(InputError, match="no|none"):
        load_beats(f"wfdb:{empty}")
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "x.hea").write_text("this is not a header\n")
    with pytest.raises(InputError, match="x.hea"):
        load_beats(f"wfdb:{broken}")
    short = tmp_path / "short"
    short.mkdir()
    rec = wfdb.rdrecord(str(SHARED / "mitdb" / "100"), channel_names=["MLII"], sampto=300)
    wfdb.wrsamp("s", fs=360, units=["mV"], sig_name=["MLII"], p_signal=rec.p_signal, fmt=["212"],
                adc_gain=[200], baseline=[1024], write_dir=str(short))
    with pytest.raises(InputError, match="shorter than one window"):
        load_beats(f"wfdb:{short}")
    missing_dat = tmp_path / "nodat"
    missing_dat.mkdir()
    (missing_dat / "100.hea").write_text((SHARED / "mitdb" / "100.hea").read_text())
    with pytest.raises(InputError, match="100.hea"):
        load_beats(f"wfdb:{missing_dat}")


def test_split_refuses_too_little_data():
    with pytest.raises(InputError, match="at least"):
        split_indices(np.array(["a", "a"]), np.array([0, 1]), 1)
