"""The field data shipped in the project and the field table built on it: loaders, provenance against the
source recordings (when ../shared is beside the clone), and a table row on a short excerpt."""

from __future__ import annotations

import importlib
import json
from pathlib import Path

import numpy as np
import pytest
from ecgae.cli import COMMANDS, main
from ecgae.evaluation import field
from ecgae.runtime import Model
from ecgae.training.build_dataset import write_npz
from ecgae.training.build_field import ANNOTATED, FIELD, MIMIC, PACED, build, load_annotations
from ecgae.training.build_others import load_record

SOURCE = Path(__file__).resolve().parents[2] / "shared" / "data"


def test_mimic_segments_load_as_the_monitors_8_bit_codes():
    for key, minutes in zip(MIMIC, (120.8, 174.0)):
        x, fs, leads = load_record(key, FIELD)
        assert fs == 125.0 and leads == ["MCL1", "V"] and x.shape[0] / fs / 60 == pytest.approx(minutes, abs=0.1)
        assert np.isfinite(x).all()  # the format's invalid code (-128) does not occur in these segments
        for lead, gain in zip(range(2), (26.0, 11.0)):
            steps = np.diff(np.unique(x[:, lead]))
            assert steps.min() == pytest.approx(1 / gain)  # one ADC code


def test_paced_minutes_load_with_their_annotations():
    counts = {"mitdb_102_60s": 73, "mitdb_104_60s": 52, "mitdb_107_60s": 71, "mitdb_217_60s": 70}
    for key in PACED:
        x, fs, leads = load_record(key, FIELD)
        samples, symbols = load_annotations(key)
        assert fs == 360.0 and x.shape == (21600, 1) and leads[0] in ("MLII", "V5")
        assert np.all(np.diff(samples) > 0) and samples.max() < x.shape[0]
        assert int((symbols == "/").sum()) == counts[key]
    with pytest.raises(KeyError, match="mitdb_102_60s"):
        load_annotations("mimic2_0005")


def test_every_annotated_record_loads_one_lead_with_its_beats():
    minutes = {"mitdb_106": 29.25, "mitdb_118": 30.1, "mitdb_200": 30.1}
    for key in ANNOTATED:
        x, fs, leads = load_record(key, FIELD)
        samples, symbols = load_annotations(key)
        assert fs == 360.0 and x.shape[1] == 1 and leads[0] in ("MLII", "V5") and np.isfinite(x).all()
        assert x.shape[0] / fs / 60 == pytest.approx(minutes.get(key, 1.0), abs=0.1)
        beats = np.isin(symbols, list("NLRBAaJSVrFejnE/fQ"))
        assert samples.max() < x.shape[0] and beats.sum() >= 0.6 * x.shape[0] / fs  # at least ~36 beats a minute


def test_invalid_codes_read_as_nan(tmp_path):
    adc = np.array([[10], [-128], [-128], [12]], dtype=np.int8)
    write_npz(tmp_path / "f.npz", {"k_adc": adc, "k_gain": np.array([2.0]), "k_baseline": np.array([0.0]),
                                   "k_fs": np.float64(125), "k_leads": np.array(["II"]), "k_invalid": np.int64(-128)})
    x, _, _ = load_record("k", tmp_path / "f.npz")
    np.testing.assert_array_equal(np.isnan(x[:, 0]), [False, True, True, False])
    assert field.nan_runs(x[:, 0]) == (1, 2)
    assert field.nan_runs(np.array([np.nan, 1.0, np.inf, np.nan, 2.0, np.nan])) == (3, 4)


@pytest.mark.skipif(not (SOURCE / "mimic2").is_dir(), reason="needs ../shared/data beside the clone")
def test_field_data_is_what_the_builder_reads_from_the_sources(tmp_path):
    built = build(SOURCE, tmp_path / "field.npz", minutes=1.0)
    with np.load(FIELD) as shipped:
        for k, v in built.items():
            stored = shipped[k]
            if k.startswith("mimic2") and k.endswith("_adc"):
                stored = stored[: v.shape[0]]  # the shipped segments are whole; the build above kept a minute
            np.testing.assert_array_equal(v, stored, err_msg=k)


def test_a_field_row_on_two_minutes_of_the_8_bit_monitor(mitdb_bundle):
    model = Model.load(mitdb_bundle)
    x, fs, _ = load_record("mimic2_0005", FIELD)
    rec = field.Recording("mimic2 0005", "MCL1", x[: int(120 * fs), 0], fs)
    row = field.field_row(model, rec)
    assert row["enrol_seconds"] == 60.0 and row["gap_runs"] == 0 and row["paced_reference"] is None
    assert ("enrolment_beats" in row) != ("enrolment_error" in row)
    assert 0.0 <= row["usable_share"] <= 1.0 and row["later_beats"] > 50
    assert row["bpm"] == pytest.approx(row["xqrs_bpm"], rel=0.1)  # a clean trace: both find every beat
    assert row["vs_xqrs"]["se"] > 0.95 and row["vs_xqrs"]["ppv"] > 0.95
    assert row["paced"] is None or row["paced"] <= 0.05 * row["beats"]  # this patient is not paced
    gapped = rec.x.copy()
    gapped[5000:5003] = np.nan
    row = field.field_row(model, field.Recording("mimic2 0005", "MCL1", gapped, fs))
    assert (row["gap_runs"], row["gap_samples"]) == (1, 3)
    assert "analyze_error" in row or row["later_beats"] > 50  # refused today, analysed once gaps are handled
    lines = field.markdown({"enrol_seconds": 300.0, "short_seconds": 420.0, "rows": [row]})
    assert lines[-1].startswith("| mimic2 0005 | MCL1 | 125 |") and lines[-1].count("|") == 13


def test_a_bundle_of_pre_cut_beats_gets_no_rows_and_says_why(bundles):
    d = field.field_table(bundles["ae"])
    assert d["rows"] == [] and "pre-cut beats" in d["skipped"]
    assert field.markdown(d)[-1] == f"Not measured: {d['skipped']}."


def test_evaluate_cross_writes_the_field_table_beside_its_json(mitdb_bundle, tmp_path, monkeypatch, capsys):
    """The hook in ``ecgae evaluate --cross``, with the cross cases stubbed and one short recording."""
    cli = importlib.import_module(COMMANDS["evaluate"][0])
    cross = importlib.import_module(f"{cli.__package__}.cross")  # wherever the command keeps its cases
    monkeypatch.setattr(cross, "evaluate_cross", lambda bundle: {"cases": {}})
    monkeypatch.setattr(cross, "markdown", lambda result: "cross tables")
    x, fs, _ = load_record("mimic2_0006", FIELD)
    monkeypatch.setattr(field, "recordings", lambda: [field.Recording("mimic2 0006", "V", x[: int(90 * fs), 1], fs)])
    monkeypatch.setattr(field, "generated_recordings", lambda: [])
    assert main(["evaluate", str(mitdb_bundle), "--cross", "--out", str(tmp_path / "cross.json")]) == 0
    written = (tmp_path / "field.md").read_text()
    assert "| mimic2 0006 | V | 125 | 1.5 | 45 s" in written and "8-bit ADC" not in written
    assert written in capsys.readouterr().out + "\n"
    rows = json.loads((tmp_path / "field.json").read_text())["rows"]
    assert len(rows) == 1 and rows[0]["later_beats"] > 30


def test_generated_recordings_isolate_one_mechanism_each_at_every_rate():
    recs = field.generated_recordings()
    assert [(r.record, r.fs) for r in recs[:3]] == [("100 (10 min)", 125.0), ("100 (10 min) 8-bit", 125.0),
                                                    ("100 (10 min) + spikes", 125.0)]
    assert sorted({r.fs for r in recs}) == list(field.GENERATED_RATES) and len(recs) == 3 * len(field.GENERATED_RATES)
    for plain, eight, spiked in zip(recs[::3], recs[1::3], recs[2::3]):
        assert plain.x.size == eight.x.size == spiked.x.size == int(field.GENERATED_SECONDS * plain.fs)
        assert np.abs(eight.x - plain.x).max() <= 0.5 / 26 + 1e-9
        assert 700 < np.count_nonzero(spiked.x != plain.x) <= 2 * 800  # ~750 beats in 10 min, 1-2 samples each
