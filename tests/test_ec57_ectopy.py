"""GENERATED ectopy on record 100 (bundled data only): burden, patterns, timing, annotations at the beats."""

import re

import numpy as np
import pytest
from ecgae.evaluation import aami, ectopy, ectopy_sources
from ecgae.evaluation.beat_baselines import beat_windows
from ecgae.evaluation.ec57 import detect
from ecgae.runtime.errors import InputError

MINUTES = 10


@pytest.fixture(scope="module")
def base():
    """The first 10 minutes of record 100 MLII, its annotations and all five ventricular templates."""
    x, fs, s, y = ectopy_sources.record100("MLII")
    n = int(MINUTES * 60 * fs)
    keep = s < n - int(fs)
    own = ectopy.ventricular_template(x, fs, s, y, "own")
    return x[:n], fs, s[keep], y[keep], [own] + ectopy_sources.foreign_templates()


def _make(base, pattern, burden, seed=7):
    x, fs, s, y, templates = base
    return ectopy.generate(x, fs, s, y, templates, pattern, burden, seed=seed)


def _sequence(g) -> str:
    return "".join(c for c in g.ann_symbol if c in "NAVF")


def _groups(seq: str) -> list[int]:
    return [len(m) for m in re.findall("V+", seq)]


@pytest.mark.parametrize("pattern", ectopy.PATTERNS)
@pytest.mark.parametrize("burden", [0.1, 0.3])
def test_burden_and_pattern(base, pattern, burden):
    g = _make(base, pattern, burden)
    seq, groups = _sequence(g), _groups(_sequence(g))
    assert g.generated and g.burden == pytest.approx(burden, abs=0.04)
    assert sum(groups) == g.count("V") and sorted(g.runs.elements()) == sorted(groups)
    if pattern == "couplets":
        assert set(groups) == {2}
    elif pattern == "runs":
        assert min(groups) >= 3 and max(groups) <= 10 and len(set(groups)) > 3
    else:
        assert set(groups) == {1}
    if pattern == "bigeminy":
        assert "NVNVNVNV" in seq
    if pattern == "trigeminy":
        assert "NNVNNVNNV" in seq and "VNV" not in seq
    if pattern == "fusion":
        assert g.count("F") == round(ectopy.FUSION_SHARE * g.count("V"))
    else:
        assert g.count("F") == 0


def test_compensatory_pause_and_interpolation(base):
    """A premature beat's two normal neighbours are about 2 RR apart; an interpolated one's well under."""
    for pattern, low, high in (("isolated", 1.8, 2.2), ("interpolated", 1.05, 1.5)):
        g = _make(base, pattern, 0.1)
        beat = np.isin(g.ann_symbol, list("NAV"))
        t, y = g.ann_sample[beat], g.ann_symbol[beat]
        rr = np.median(np.diff(t[y == "N"]))
        v = np.flatnonzero(y[1:-1] == "V") + 1
        v = v[(y[v - 1] == "N") & (y[v + 1] == "N")]
        span = (t[v + 1] - t[v - 1]) / rr
        assert len(v) > 20 and low < np.median(span) < high
        coupling = (t[v] - t[v - 1]) / rr
        assert np.all(coupling < 0.8)


def test_annotations_sit_at_the_inserted_r_peaks(base):
    g = _make(base, "multiform", 0.3)
    fs = g.fs
    v = g.ann_sample[g.ann_symbol == "V"]
    w = beat_windows(g.signal, fs, v, pre_s=0.05, post_s=0.05)
    offset = np.abs(w).argmax(axis=1) - int(round(0.05 * fs))
    assert np.mean(np.abs(offset) <= 0.02 * fs) > 0.95
    # several morphologies: many V beats far from the unifocal (own) template's shape
    own = beat_windows(g.signal, fs, v, pre_s=0.1, post_s=0.3)
    r = np.corrcoef(own)[0]
    assert np.mean(r < 0.8) > 0.3
    # and the runtime's detector finds the edited record's beats
    s = aami.statistics(aami.confusion(g.ann_sample, g.ann_symbol, detect(g.signal, fs),
                                       np.full(len(detect(g.signal, fs)), "N"), fs))
    assert s["beat_se"] > 0.99 and s["beat_pp"] > 0.99


def test_seeded(base):
    a, b, c = _make(base, "runs", 0.2, seed=1), _make(base, "runs", 0.2, seed=1), _make(base, "runs", 0.2, seed=2)
    assert np.array_equal(a.signal, b.signal) and np.array_equal(a.ann_sample, b.ann_sample)
    assert not np.array_equal(a.ann_sample, c.ann_sample)


def test_refusals(base):
    x, fs, s, y, templates = base
    with pytest.raises(InputError, match="burden"):
        ectopy.generate(x, fs, s, y, templates, "trigeminy", 0.4)
    with pytest.raises(InputError, match="templates"):
        ectopy.generate(x, fs, s, y, templates[:1], "multiform", 0.2)
    with pytest.raises(InputError, match="pattern"):
        ectopy.generate(x, fs, s, y, templates, "salvos", 0.2)
