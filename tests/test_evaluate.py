"""Evaluation metrics on cases with known answers, threshold calibration, and bundle-vs-torch agreement."""

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("sklearn")

from ecgae.runtime.errors import InputError  # noqa: E402
from ecgae.training.evaluate import (  # noqa: E402
    anomaly_metrics,
    auc_interval,
    detection_figures,
    evaluate,
    prd,
    probe_metrics,
    roc_auc,
)
from ecgae.training.train import threshold_from_scores  # noqa: E402


def test_auc_of_a_perfect_separator_is_one_and_of_a_reversed_one_zero():
    assert roc_auc(np.array([0.1, 0.2, 0.3]), np.array([0.5, 0.9])) == 1.0
    assert roc_auc(np.array([0.5, 0.9]), np.array([0.1, 0.2])) == 0.0
    assert roc_auc(np.array([1.0, 1.0]), np.array([1.0, 1.0])) == 0.5


def test_prd_of_exact_reconstruction_is_zero_and_of_zero_output_is_100():
    x = np.random.default_rng(0).standard_normal((5, 50))
    assert np.allclose(prd(x, x), 0)
    assert np.allclose(prd(x, np.zeros_like(x)), 100)


def test_detection_figures_by_hand():
    truth = np.array([True, True, False, False])
    pred = np.array([True, False, True, False])
    assert detection_figures(truth, pred) == {"accuracy": 0.5, "precision": 0.5, "recall": 0.5}
    assert detection_figures(truth, np.zeros(4, bool))["precision"] is None


def test_anomaly_metrics_per_class_and_at_threshold():
    scores = np.array([0.1, 0.2, 0.3, 0.9, 0.8, 0.25])
    labels = np.array(["N", "N", "N", "V", "V", "A"])
    m = anomaly_metrics(scores, labels, "N", threshold=0.5)
    assert m["auc_by_class"] == pytest.approx({"A": 2 / 3, "V": 1.0})
    assert m["abnormal_positive"] == pytest.approx({"accuracy": 5 / 6, "precision": 1.0, "recall": 2 / 3})
    assert m["normal_positive"]["recall"] == 1.0
    assert "note" in anomaly_metrics(scores, np.array(["N"] * 6), "N", 0.5)


def test_probe_separates_separable_latents():
    rng = np.random.default_rng(0)
    z = np.r_[rng.normal(-3, 1, (50, 2)), rng.normal(3, 1, (50, 2))]
    y = np.array(["a"] * 50 + ["b"] * 50)
    assert probe_metrics(z, y, z, y)["balanced_accuracy"] > 0.95
    assert "note" in probe_metrics(z, np.array(["a"] * 100), z, y)


def test_threshold_rules():
    s = np.arange(101, dtype=float)
    assert threshold_from_scores(s, "p99") == 99.0
    assert threshold_from_scores(s, "mean+1std") == pytest.approx(50 + s.std())
    assert threshold_from_scores(s, "mean+2.5std") == pytest.approx(50 + 2.5 * s.std())
    for bad in ("p98", "mean+std", "mean+xstd", ""):
        with pytest.raises(InputError):
            threshold_from_scores(s, bad)


@pytest.mark.parametrize("kind", ["ae", "vae"])
def test_evaluation_through_bundle_equals_torch(tiny_runs, bundles, kind):
    torch_m, ort_m = evaluate(tiny_runs[kind]), evaluate(bundles[kind])
    assert torch_m["model"]["engine"] == "torch" and ort_m["model"]["engine"] == "onnxruntime"
    assert torch_m["data"] == ort_m["data"]
    atol = 1e-4
    assert ort_m["reconstruction"]["mse"] == pytest.approx(torch_m["reconstruction"]["mse"], abs=atol)
    assert ort_m["reconstruction"]["prd_percent"] == pytest.approx(torch_m["reconstruction"]["prd_percent"], abs=1e-2)
    assert ort_m["anomaly"]["auc_all"] == pytest.approx(torch_m["anomaly"]["auc_all"], abs=0.01)
    assert ort_m["anomaly"]["threshold"] == torch_m["anomaly"]["threshold"]


def test_evaluate_refuses_what_is_not_a_model(tmp_path):
    with pytest.raises(InputError, match="run directory"):
        evaluate(tmp_path)


def test_cli_evaluate_writes_metrics(tiny_runs, tmp_path, capsys):
    import json

    from ecgae.cli import main

    out = tmp_path / "m.json"
    assert main(["evaluate", str(tiny_runs["ae"]), "--out", str(out)]) == 0
    m = json.loads(out.read_text())
    assert set(m) == {"model", "data", "reconstruction", "anomaly", "latent_probe", "warnings"}
    assert m["reconstruction"]["compression_ratio"] == 70.0 and "auc_all" in m["anomaly"]
    assert main(["evaluate", str(tmp_path), "--out", str(tmp_path / "x.json")]) == 2
    assert "expected a run directory" in capsys.readouterr().err and not (tmp_path / "x.json").exists()


def test_auc_interval_matches_the_mann_whitney_variance_under_the_null():
    """At AUC 0.5 the Hanley-McNeil variance is the exact one of the Mann-Whitney statistic,
    (n1 + n2 + 1) / (12 n1 n2); the interval narrows as beats are added and stays inside [0, 1]."""
    lo, hi = auc_interval(0.5, 100, 60)
    assert (hi - lo) / 2 == pytest.approx(1.96 * np.sqrt(161 / (12 * 100 * 60)), rel=1e-9)
    narrow = auc_interval(0.9, 400, 240)
    assert narrow[1] - narrow[0] < auc_interval(0.9, 100, 60)[1] - auc_interval(0.9, 100, 60)[0]
    assert auc_interval(0.999, 20, 5)[1] == 1.0
