"""The detection benchmark and ``ecgae detect-eval``: EC57 matching, per-class figures, synthetic
ventricular beats, and the CLI on a WFDB record written from the bundled data."""

from __future__ import annotations

import json

import numpy as np
import pytest
from ecgae.benchmarks import detection
from ecgae.cli import main


def test_matching_pairs_each_reference_beat_with_one_detection():
    m = detection.match(np.array([100, 200, 300, 400]), np.array([103, 199, 201, 520]), tolerance=10)
    np.testing.assert_array_equal(m.found, [True, True, False, False])
    np.testing.assert_array_equal(m.true, [True, True, False, False])  # 201 lost to 199; 520 is too far
    np.testing.assert_array_equal(m.offset, [3, -1])
    r = detection.score_detections(np.array([100, 200, 300]), np.array([100, 200, 900]), 360.0,
                                   np.array(["N", "V", "A"]))
    assert (r["tp"], r["fn"], r["fp"]) == (2, 1, 1) and r["der"] == pytest.approx(2 / 3)
    assert r["by_class"]["V"]["found"] == 1 and r["by_class"]["S"]["found"] == 0


def test_flutter_episodes_are_left_out_of_the_detection_score():
    """Detections among flutter waves ([ ... ], one left open to the end) are neither true nor false: EC57
    does not score a detector there. Outside them every miss and extra still counts."""
    samples = np.array([100, 150, 200, 260, 300, 400, 450, 500, 560])
    symbols = np.array(["N", "[", "!", "!", "]", "N", "[", "!", "!"])
    episodes = detection.flutter_episodes(samples, symbols)
    assert episodes[0].tolist() == [150, 300] and episodes[1, 0] == 450 and episodes[1, 1] > 10**9
    np.testing.assert_array_equal(detection.outside(np.array([149, 150, 300, 301, 449, 900]), episodes),
                                  [True, False, False, True, True, False])
    ref = np.array([100, 400])  # the beats (flutter waves are not beats)
    found = np.array([100, 180, 230, 280, 330, 470, 520])  # four in the episodes, one extra at 330, 400 missed
    plain = detection.score_detections(ref, found, 360.0)
    scored = detection.score_detections(ref, found, 360.0, excluded=episodes)
    assert (plain["tp"], plain["fn"], plain["fp"]) == (1, 1, 6)
    assert (scored["tp"], scored["fn"], scored["fp"]) == (1, 1, 1)


def test_synthetic_ventricular_beats_are_found_whatever_their_width_or_polarity():
    """Isolated wide beats (sd 25 and 40 ms), upright, inverted and biphasic, 0.7 to 3 times R: >= 99 %
    of them found and no false detection."""
    prep = detection.default_preprocessing()
    leads, fs, ann, _ = detection.record_100()
    n = int(600 * fs)  # ten minutes keep the test short
    x, ann = leads["MLII"][:n], ann[ann < n - fs]
    for shape in ("up", "down", "bi"):
        for width in (0.025, 0.04):
            for size in (0.7, 3.0):
                signal, ref, sym = detection.with_ventricular_beats(x, fs, ann, 5, width, size, shape)
                r = detection.score_detections(ref, detection.r_peaks(signal, fs, prep), fs, sym)
                assert r["by_class"]["V"]["se"] >= 0.99 and r["ppv"] >= 0.998, (shape, width, size, r)


def test_detect_eval_scores_a_wfdb_record(tmp_path, capsys):
    wfdb = pytest.importorskip("wfdb")
    leads, fs, ann, symbols = detection.record_100()
    n = int(300 * fs)
    keep = ann < n
    wfdb.wrsamp("rec", fs=fs, units=["mV"], sig_name=["MLII"], p_signal=leads["MLII"][:n, None], fmt=["16"],
                write_dir=str(tmp_path))
    wfdb.wrann("rec", "atr", ann[keep], symbol=list(symbols[keep]), write_dir=str(tmp_path))
    out = tmp_path / "eval.json"
    assert main(["detect-eval", str(tmp_path / "rec"), "--json", str(out)]) == 0
    result = json.loads(out.read_text())["records"][0]
    assert result["reference_beats"] == int(keep.sum()) and result["se"] == 1.0 and result["ppv"] == 1.0
    assert "| 100.00 | 100.00 | 0.00 |" in capsys.readouterr().out
    assert main(["detect-eval", str(tmp_path / "missing")]) == 2
    assert "no " in capsys.readouterr().err
    assert main(["detect-eval", str(tmp_path / "rec"), "--ann", "qrs"]) == 2
    assert "annotations" in capsys.readouterr().err
