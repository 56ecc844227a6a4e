"""``ecgae evaluate --cross``: a bundle trained on record 100, calibrated and scored on other people's data."""

import json

import pytest

pytest.importorskip("sklearn")

from ecgae.cli import main  # noqa: E402


def test_cross_wearer_evaluation(mitdb_bundle, tmp_path, capsys):
    """Every case runs on a raw-signal bundle; each table has the no-model baseline beside the model."""
    out = tmp_path / "cross.json"
    assert main(["evaluate", str(mitdb_bundle), "--cross", "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    assert set(result["cases"]) == {"mitdb100_heldout", "mitdb100_v5", "ptb_s0010_re", "c2015_a103l", "ecg5000"}
    held = result["cases"]["mitdb100_heldout"]
    assert held["today"]["normal"] > 400 and held["today"]["abnormal"] >= 5  # labels matched to detections
    for case in result["cases"].values():
        assert {"template", "template+rr", result["default_score"]} <= set(case["scores"])
        for figures in case["scores"].values():
            assert figures["beats"] == case["today"]["beats"] and 0 <= figures["flagged_share"] <= 1
    assert result["contamination"]["0.30"]["abnormal_share"] == pytest.approx(0.3, abs=0.01)
    printed = capsys.readouterr().out
    assert "(no model)" in printed and "**Contamination tolerance**" in printed


def test_cross_refuses_a_data_spec_and_a_run(mitdb_bundle, tmp_path, capsys):
    out = tmp_path / "cross.json"
    assert main(["evaluate", str(mitdb_bundle), "--cross", "--data", "bundled", "--out", str(out)]) == 2
    assert main(["evaluate", str(tmp_path), "--cross", "--out", str(out)]) == 2
    assert "expected an exported bundle" in capsys.readouterr().err
