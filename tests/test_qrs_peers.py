"""The detector peer comparison: which peers run, how a shortfall and a failing peer are reported, and
``ecgae detect-eval --peers``."""

from __future__ import annotations

import json

import numpy as np
import pytest
from ecgae.benchmarks import detection, qrs_peers
from ecgae.cli import main


def _minute() -> qrs_peers.Input:
    leads, fs, ann, sym = detection.record_100()
    n = int(60 * fs)
    keep = ann < n
    return qrs_peers.Input("100 first minute", "annotated", leads["MLII"][:n], fs, ann[keep], sym[keep])


def test_every_installed_peer_finds_record_100():
    """The runtime first, wfdb's two detectors, and NeuroKit2's five methods when it is installed; each
    finds a clean minute of record 100."""
    pytest.importorskip("wfdb")
    pytest.importorskip("neurokit2", reason="NeuroKit2 is a benchmark extra ('.[dev]')")
    found, missing = qrs_peers.peers(detection.default_preprocessing())
    assert list(found)[:3] == [qrs_peers.OURS, "wfdb xqrs", "wfdb gqrs"] and not missing
    assert [n for n in found if n.startswith("nk ")] == [f"nk {m}" for m in qrs_peers.NEUROKIT_METHODS]
    rows = qrs_peers.compare(iter([_minute()]), found)
    for name, r in rows[0]["detectors"].items():
        assert r["se"] >= 0.98 and r["ppv"] >= 0.98, (name, r)


def test_a_shortfall_and_a_failing_peer_are_reported():
    inp = _minute()

    def broken(x, fs):
        raise RuntimeError("no beats today")

    detectors = {qrs_peers.OURS: lambda x, fs: inp.ref[::2], "exact": lambda x, fs: inp.ref, "broken": broken}
    rows = qrs_peers.compare(iter([inp]), detectors)
    assert rows[0]["detectors"]["broken"]["error"] == "RuntimeError: no beats today"
    short = qrs_peers.shortfalls(rows)
    assert [(s["measure"], s["best_peer"], s["best"]) for s in short] == [("se", "exact", 1.0)]
    assert short[0]["ecgae"] == pytest.approx(np.ceil(inp.ref.size / 2) / inp.ref.size)
    s = qrs_peers.summary(rows, list(detectors))
    assert s["broken"]["failed"] == 1 and s["exact"]["se"] == 1.0 and s["exact"]["time_vs_ecgae"] > 0


def test_generated_inputs_include_the_8_bit_and_spike_conditions():
    names = [i.name for i in qrs_peers.generated(quick=True)]
    assert "100 MLII 8-bit at 125 Hz" in names and "100 MLII 8-bit at 360 Hz" in names
    assert [n for n in names if "spikes" in n] == [f"100 MLII + pacing spikes at {r:g} Hz"
                                                    for r in qrs_peers.SPIKE_RATES]
    assert "100 MLII" not in names  # record 100 as recorded is an annotated input


def test_detect_eval_runs_the_peers(tmp_path, capsys, monkeypatch):
    wfdb = pytest.importorskip("wfdb")
    inp = _minute()
    wfdb.wrsamp("rec", fs=inp.fs, units=["mV"], sig_name=["MLII"], p_signal=inp.x[:, None], fmt=["16"],
                write_dir=str(tmp_path))
    wfdb.wrann("rec", "atr", inp.ref, symbol=list(inp.symbols), write_dir=str(tmp_path))
    ours = qrs_peers.peers(detection.default_preprocessing())[0][qrs_peers.OURS]
    late = lambda x, fs: ours(x, fs) + int(0.2 * fs)  # noqa: E731  a peer that misses every beat by 200 ms
    monkeypatch.setattr(qrs_peers, "peers", lambda prep: ({qrs_peers.OURS: ours, "late": late}, ["nk neurokit"]))
    out = tmp_path / "eval.json"
    assert main(["detect-eval", str(tmp_path / "rec"), "--peers", "--json", str(out)]) == 0
    peers = json.loads(out.read_text())["peers"]
    assert peers["detectors"] == [qrs_peers.OURS, "late"] and peers["missing"] == ["nk neurokit"]
    assert peers["rows"][0]["detectors"][qrs_peers.OURS]["se"] == 1.0
    assert peers["rows"][0]["detectors"]["late"]["se"] == 0.0 and peers["shortfalls"] == []
    assert peers["speed_record_100"]["detectors"][qrs_peers.OURS]["vs_ecgae"] == 1.0
    text = capsys.readouterr()
    assert "## Beat finding beside open detectors" in text.out
    assert "Not installed, so not compared: nk neurokit." in text.out
    assert text.err.splitlines() == ["  2 detectors (ecgae, late) on 1 inputs",
                                     "  the same detectors on 10-s strips of the 1 annotated inputs",
                                     "  their speed on record 100"]


def test_the_comparison_tells_its_progress():
    """The full comparison runs for minutes: every PROGRESS_EVERY inputs, a line says how far it is."""
    inp = _minute()
    heard: list[str] = []
    qrs_peers.compare(iter([inp] * 25), {"exact": lambda x, fs: inp.ref}, heard.append)
    assert heard == [f"    {k} inputs done (the last: 100 first minute)" for k in (10, 20)]


def test_short_strips_measure_what_starting_cold_costs():
    """A minute is six 10-s strips. The runtime finds every scored beat on each strip alone; a detector that
    needs 2 s to start finds none in a strip's first 2 s, which on the whole minute costs it the first strip's
    only."""
    inp = _minute()
    ours = qrs_peers.peers(detection.default_preprocessing())[0][qrs_peers.OURS]

    def cold(x, fs):
        found = ours(x, fs)
        return found[found >= 2 * fs]

    detectors, found_by = {qrs_peers.OURS: ours, "cold": cold}, {}
    qrs_peers.compare(iter([inp]), detectors, found_by=found_by)
    st = qrs_peers.strips([inp], detectors, found_by)
    assert st["strips"] == 6 and st["seconds"] == qrs_peers.STRIP_S
    for key in ("strip", "whole"):
        assert st["detectors"][qrs_peers.OURS][key]["se"] == st["detectors"][qrs_peers.OURS][key]["ppv"] == 1.0
    c = st["detectors"]["cold"]
    per_strip_start = c["strip"]["fn"] / 6
    assert 1 <= c["whole"]["fn"] <= 3 and 1.5 <= per_strip_start <= 3 and c["strip"]["fp"] == c["whole"]["fp"] == 0
    lines = qrs_peers._strips_markdown(st)
    assert any(line.startswith("| cold |") for line in lines)
