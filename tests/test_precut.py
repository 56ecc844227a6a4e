"""Pre-cut beats without timing (ECG5000) classified through the runtime's own path, as the demo reports them:
the classes use the beats' shapes only, so a bundle trained for two epochs classifies as a trained one does."""

from __future__ import annotations

import numpy as np
import pytest
from ecgae.evaluation.precut import markdown, precut_rows
from ecgae.runtime import Model


def test_pre_cut_beats_reach_the_operating_point_with_an_enrolment_holding_abnormal_beats(bundles):
    """A third of the enrolment abnormal (the most a wearer's baseline may hold) and the archive's own 41 %:
    sensitivity >= 0.90 at specificity >= 0.95 on the 150 held-out rows, and the correlation with the dominant
    template ranks them at AUC >= 0.97. With the fixed correlation of R-aligned cores (0.90) the specificity
    was 0.64 and 0.00."""
    model = Model.load(bundles["ae"])
    rows = precut_rows(model, (0.3, None))
    for r in rows:
        assert r["held_out"] == 150 and r["sensitivity"] >= 0.9 and r["specificity"] >= 0.95, r
        assert r["auc_shape"] >= 0.97 and 0.3 < r["normal_join"] < 0.9, r
    assert [round(r["abnormal_share"], 2) for r in rows] == [0.3, 0.41]
    table = markdown("ae", rows)
    assert "| 30% |" in table and "| 41% |" in table and np.isfinite([r["auc_score"] for r in rows]).all()


def test_the_table_is_printed_for_a_pre_cut_bundle_and_a_raw_signal_bundle_is_refused(bundles, mitdb_bundle, capsys):
    from ecgae.evaluation.precut import main

    assert main([str(bundles["ae"])]) == 0
    assert "| 41% |" in capsys.readouterr().out
    with pytest.raises(SystemExit) as refused:
        main([str(mitdb_bundle)])
    assert refused.value.code == 2 and "expected one trained on pre-cut beats" in capsys.readouterr().err
