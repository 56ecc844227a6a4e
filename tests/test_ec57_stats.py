"""EC57 beat-by-beat statistics on hand-made annotation sets whose answers are counted by hand."""

import numpy as np
import pytest
from ecgae.evaluation import aami
from ecgae.runtime.errors import InputError

FS = 360.0  # the match window is 54 samples


def test_mitbih_symbols_map_to_aami_classes():
    symbols = list("NLRejAaJSVEF/fQ+~|![]x")
    expected = list("NNNNNSSSSVVFQQQ") + [""] * 7
    assert aami.aami_class(np.array(symbols)).tolist() == expected


def test_algorithm_labels_paced_is_q_and_unknown_is_refused():
    assert aami.algorithm_class(np.array(["N", "/", "V"])).tolist() == ["N", "Q", "V"]
    with pytest.raises(InputError, match="labels"):
        aami.algorithm_class(np.array(["N", "A"]))


def test_matching_pairs_within_150_ms_and_prefers_the_closer_neighbour():
    ref = np.array([100, 400, 700, 1000])
    test = np.array([150, 380, 395, 900])  # 50 in window; 380 and 395 both near 400: 395 wins; 900 is 100 off
    t_of, r_of = aami.match_beats(ref, test, 54)
    assert t_of.tolist() == [0, 2, -1, -1]
    assert r_of.tolist() == [0, -1, 1, -1]


def _record():
    """Reference: 10 beats 300 samples apart, then flutter, then 2 more beats; '+' rhythm marks between."""
    sample = np.array([300 * k for k in range(1, 11)] + [3100, 3200, 3300, 3600, 3900, 150, 2500])
    symbol = np.array(list("NNVNANVNFN") + ["[", "!", "]", "N", "V", "+", "+"])
    return sample, symbol


def test_confusion_and_statistics_known_answers():
    sample, symbol = _record()
    # detections: every reference beat but the 5th (A, missed), jittered by up to 40 samples; one extra
    # beat at 1650 called V; one detection inside the flutter episode (3200), which must not count
    r_peak = np.array([310, 640, 880, 1200, 1650, 1830, 2100, 2430, 2700, 3000, 3200, 3600, 3910])
    m = aami.confusion(sample, symbol, r_peak, np.array(list("NVVNVVVNFNVNN")), FS)
    rows, cols = aami.ROWS, aami.COLS
    got = {(rows[i], cols[j]): int(m[i, j]) for i in range(6) for j in range(6) if m[i, j]}
    # beats: 300 N->N, 600 N->V, 900 V->V, 1200 N->N, 1500 A missed, 1800 N->V, 2100 V->V, 2400 N->N,
    # 2700 F->F, 3000 N->N, 3600 N->N, 3900 V->N; extra: 1650 -> V
    assert got == {("N", "N"): 5, ("N", "V"): 2, ("V", "V"): 2, ("V", "N"): 1, ("S", "O"): 1, ("F", "F"): 1,
                   ("X", "V"): 1}
    s = aami.statistics(m)
    assert s["matched"] == 11 and s["missed"] == 1 and s["extra"] == 1
    assert s["beat_se"] == pytest.approx(11 / 12) and s["beat_pp"] == pytest.approx(11 / 12)
    assert s["veb_se"] == pytest.approx(2 / 3) and s["veb_pp"] == pytest.approx(2 / 5)
    assert s["n_spec"] == pytest.approx(5 / 7) and s["n_found"] == 7
    assert s["sveb_se"] == 0.0 and s["sveb_pp"] is None


def test_fusion_called_v_is_neither_true_nor_false_veb():
    sample = np.array([300, 600, 900])
    m = aami.confusion(sample, np.array(list("NFV")), sample, np.array(list("NVV")), FS)
    s = aami.statistics(m)
    assert s["veb_tp"] == 1 and s["veb_fp"] == 0 and s["veb_fn"] == 0 and s["veb_pp"] == 1.0


def test_sveb_counts():
    sample = np.arange(1, 9) * 300
    m = aami.confusion(sample, np.array(list("NANASNVN")), sample, np.array(list("SSNNSNSN")), FS)
    s = aami.statistics(m)
    # S refs at 2, 4, 5 -> S, N, S: TP 2, FN 1; FP: N called S (beat 1), V called S (beat 7)
    assert (s["sveb_tp"], s["sveb_fn"], s["sveb_fp"]) == (2, 1, 2)
    assert s["n_spec"] == pytest.approx(3 / 4)


def test_enrolment_start_leaves_early_beats_out():
    sample = np.arange(1, 11) * 300
    labels = np.array(list("VVVVVNNNNN"))  # every beat before sample 1600 wrongly V
    s = aami.statistics(aami.confusion(sample, np.array(["N"] * 10), sample, labels, FS, start=1600))
    assert s["n_found"] == 5 and s["n_spec"] == 1.0 and s["veb_fp"] == 0
    s0 = aami.statistics(aami.confusion(sample, np.array(["N"] * 10), sample, labels, FS))
    assert s0["n_spec"] == 0.5 and s0["veb_fp"] == 5


def test_mismatched_lengths_are_refused():
    with pytest.raises(InputError, match="labels"):
        aami.confusion(np.array([1, 2]), np.array(["N", "N"]), np.array([1, 2]), np.array(["N"]), FS)
    with pytest.raises(InputError, match="increasing"):
        aami.match_beats(np.array([5, 1]), np.array([1]), 3)
