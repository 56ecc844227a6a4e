"""The soak checks at a small size (``make soak`` runs them at full size with python -m ecgae.benchmarks.soak):
threads share one Model safely, memory stays flat, and kill -9 never leaves a damaged file behind."""

from __future__ import annotations

import shutil
import sys

import pytest
from ecgae.benchmarks.soak import (
    kill_calibrate,
    kill_export,
    kill_score,
    monitor_day,
    rss_growth,
    threads_vs_sequential,
)


def test_eight_threads_on_one_model_equal_sequential_results(bundles):
    r = threads_vs_sequential(bundles["vae"], threads=8, calls=150)
    assert r["calls"] == 1200 and r["mismatches"] == 0 and not r["errors"]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads VmRSS from /proc")
def test_rss_stays_flat_over_score_calls(bundles):
    r = rss_growth(bundles["ae"], calls=20_000, warmup=2_000)
    assert r["calls"] == 20_000 and r["growth_mb"] < 5


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads VmRSS from /proc")
def test_a_monitor_over_a_looped_recording_equals_analyze_with_flat_memory(mitdb_bundle):
    r = monitor_day(mitdb_bundle, hours=0.25)
    assert r["events"] == r["analyze_beats"] > 1000 and r["mismatches"] == 0
    assert r["growth_mb"] < 1 and not r["torch_imported"] and not r["onnx_imported"]


def test_kill_9_during_score_out_leaves_the_old_file_or_the_whole_new_one(bundles, tmp_path):
    r = kill_score(bundles["ae"], trials=4, root=tmp_path)
    assert r["trials"] == 4 and r["damaged"] == 0 and r["unchanged"] + r["replaced"] == 4


def test_kill_9_during_calibrate_out_leaves_the_old_profile_or_the_whole_new_one(mitdb_bundle, tmp_path):
    r = kill_calibrate(mitdb_bundle, trials=3, root=tmp_path)
    assert r["trials"] == 3 and r["damaged"] == 0 and r["unchanged"] + r["replaced"] == 3


def test_kill_9_during_export_force_leaves_a_loadable_bundle(tiny_runs, bundles, tmp_path):
    target = shutil.copytree(bundles["ae"], tmp_path / "b")
    r = kill_export(tiny_runs["ae"], target, trials=2)
    assert r["damaged"] == 0 and r["unchanged"] + r["replaced"] == 2
