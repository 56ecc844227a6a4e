"""Beat classes from the wearer's templates: what each rule does, on record 100 and on beats built to test it."""

from __future__ import annotations

import importlib.resources

import numpy as np
import pytest
from ecgae.runtime import InputError, Model, beatclass, wearer
from ecgae.runtime.beatclass import Book, Geometry, Templates, learn, nn_prematurity
from ecgae.runtime.preprocess import cut_beats

FS = 360.0


@pytest.fixture(scope="module")
def record() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Record 100's MLII in mV and its reference beats (sample, symbol)."""
    path = importlib.resources.files("ecgae.training") / "data" / "bundled.npz"
    with path.open("rb") as f, np.load(f, allow_pickle=False) as z:
        x = (z["mitdb_100_adc"].astype(np.float64) - z["mitdb_100_baseline"]) / z["mitdb_100_gain"]
        return x, z["mitdb_100_ann_sample"], z["mitdb_100_ann_symbol"]


@pytest.fixture(scope="module")
def model(mitdb_bundle) -> Model:
    return Model.load(mitdb_bundle)


def matched(result, sample: np.ndarray, symbol: np.ndarray, after: float) -> tuple[np.ndarray, np.ndarray]:
    """(reference symbol, label) of the beats found within 150 ms of a reference beat after ``after`` seconds."""
    beat = np.isin(symbol, list("NAV"))
    sample, symbol = sample[beat], symbol[beat]
    j = np.clip(np.searchsorted(sample, result.r_peak), 1, len(sample) - 1)
    j = np.where(np.abs(sample[j] - result.r_peak) < np.abs(sample[j - 1] - result.r_peak), j, j - 1)
    keep = (np.abs(sample[j] - result.r_peak) <= 0.15 * FS) & (result.r_peak >= after * FS)
    return symbol[j][keep], result.label[keep]


def test_record_100_normal_beats_stay_normal_and_its_atrial_premature_beats_are_found(model, record):
    """Record 100 after a 2-minute enrolment: at most 1 % of its normal beats flagged, and its atrial premature
    beats (A: a normal QRS, early) found as S by their timing against the normal-to-normal rhythm."""
    x, sample, symbol = record
    result = model.analyze(x, FS, model.calibrate(x, FS, seconds=120))
    ref, label = matched(result, sample, symbol, after=120)
    assert (label[ref == "N"] != "N").mean() <= 0.01
    assert (label[ref == "A"] == "S").mean() >= 0.9 and (ref == "A").sum() >= 25
    assert (label[ref == "V"] == "V").all()


def ectopic(x: np.ndarray, sample: np.ndarray, symbol: np.ndarray, every: int, start_s: float):
    """Record 100's first 5 minutes with every ``every``-th normal beat after ``start_s`` replaced by the
    record's own ventricular beat (its one V, a wide inverted complex), 35 % early, followed by a compensatory
    pause: a real morphology in a planted rhythm. Returns (signal, V beat samples, N beat samples after
    ``start_s``)."""
    v = int(sample[symbol == "V"][0])
    wave = x[v - 90 : v + 160] - np.linspace(x[v - 90], x[v + 159], 250)
    y = x[: int(300 * FS)].copy()
    normal = sample[(symbol == "N") & (sample > start_s * FS) & (sample < y.size - 400)]
    planted = []
    for i in range(0, len(normal) - 1, every):
        prev, here = normal[i], normal[i + 1]
        at = prev + int(0.65 * (here - prev))  # premature: 65 % of the sinus interval
        seg = slice(at - 90, at + 160)
        y[seg] = np.linspace(y[seg.start], y[seg.stop - 1], 250) + wave
        y[here - 90 : here + 160] = np.linspace(y[here - 90], y[here + 159], 250)  # the sinus beat it replaces
        planted.append(at)
    return y, np.array(planted), np.setdiff1d(normal, normal[1::every][: len(planted)])


@pytest.mark.parametrize("every", [2, 5])
def test_planted_ventricular_beats_are_found_at_frequent_burden(model, record, every):
    """Bigeminy (every 2nd beat) and every 5th beat ventricular, from the enrolment on: the ventricular beats
    form templates of their own, unlike the dominant one, and are V; the normal beats stay N."""
    x, sample, symbol = record
    y, v_at, n_at = ectopic(x, sample, symbol, every, start_s=20)
    result = model.analyze(y, FS, model.calibrate(y, FS, seconds=120))
    late = result.r_peak >= 120 * FS

    def labels_at(points):
        j = np.searchsorted(result.r_peak, points)
        j = np.clip(j, 1, len(result.r_peak) - 1)
        j = np.where(np.abs(result.r_peak[j] - points) < np.abs(result.r_peak[j - 1] - points), j, j - 1)
        ok = (np.abs(result.r_peak[j] - points) <= 0.15 * FS) & late[j]
        return result.label[j[ok]]

    v, n = labels_at(v_at), labels_at(n_at)
    assert len(v) >= 20 and (v == "V").mean() >= 0.95
    assert (n == "N").mean() >= 0.98


def test_new_shapes_after_enrolment_get_templates_and_a_class(model, record):
    """Ventricular beats that first appear after the enrolment start a template of their own."""
    x, sample, symbol = record
    y, v_at, _ = ectopic(x, sample, symbol, every=4, start_s=150)
    profile = model.calibrate(y, FS, seconds=120)
    result = model.analyze(y, FS, profile)
    assert len(profile.templates.core) <= 2  # record 100's own shapes only: one V came before 150 s at most
    new = np.unique(result.template[result.label == "V"])
    assert new.size >= 1 and (new >= len(profile.templates.core)).all()
    assert (result.label == "V").sum() >= 0.9 * len(v_at)


def test_a_new_shape_on_time_like_most_of_its_beats_is_normal_and_one_whose_beats_came_early_is_ventricular(
        model, record):
    """Ventricular ectopy comes early (or, as an escape, late): a shape never seen that keeps arriving when the
    next sinus beat is due is the conducted beat seen differently (noise, or a lead whose shape drifted, as
    on a bedside monitor over hours), so it is N while most of its beats so far came on time. A shape whose
    beats came early is V, even in a beat that happens to come on time."""
    x, sample, symbol = record
    v = int(sample[symbol == "V"][0])
    wave = x[v - 90 : v + 160] - np.linspace(x[v - 90], x[v + 159], 250)

    def plant(y: np.ndarray, at: int, shape: np.ndarray = wave) -> None:
        y[at - 90 : at + 160] = np.linspace(y[at - 90], y[at + 159], 250) + shape

    def labels(result, points) -> list[str]:
        at = [int(np.argmin(np.abs(result.r_peak - a))) for a in points]
        assert all(abs(result.r_peak[j] - a) <= 0.15 * FS for j, a in zip(at, points))
        assert len(set(result.template[at])) == 1 and result.template[at[0]] >= 0  # one new template
        return list(result.label[at])

    y = x[: int(300 * FS)].copy()
    normal = sample[(symbol == "N") & (sample > 150 * FS) & (sample < y.size - 400)]
    on_time = normal[[10, 45, 80]]  # three sinus beats replaced, in place, by the record's ventricular shape
    for at in on_time:
        plant(y, at)
    assert labels(model.analyze(y, FS, model.calibrate(y, FS, seconds=120)), on_time) == ["N", "N", "N"]

    y2, v_at, n_at = ectopic(x, sample, symbol, every=20, start_s=150)  # the same shape 35 % early: V
    late = n_at[n_at > v_at[3] + 5 * FS][0]  # then once on time, after four early ones: the same 250 samples
    first = y2[v_at[0] - 90 : v_at[0] + 160]  # as the first early one (with the T wave it fell on)
    plant(y2, late, first - np.linspace(first[0], first[-1], 250))
    result = model.analyze(y2, FS, model.calibrate(y2, FS, seconds=120))
    assert labels(result, [*v_at[:4], late]) == ["V"] * 5


def test_nn_prematurity_uses_normal_to_normal_intervals_and_carries_across_batches():
    rr = np.array([1.0, 1.0, 1.0, 1.0, 0.6, 1.4, 1.0, 1.0, 0.6, 1.4])
    normal = np.array([True, True, True, True, False, True, True, True, False, True])
    prem, _, _ = nn_prematurity(rr, normal)
    assert np.isnan(prem[:4]).all()  # fewer than 3 normal-to-normal intervals known (the first RR's start is not)
    assert prem[4] == pytest.approx(0.6) and prem[5] == pytest.approx(1.4)  # the pause is not an NN interval
    parts, state = [], (None, False)
    for a, b in ((0, 4), (4, 5), (5, 6), (6, 10)):
        p, *state = nn_prematurity(rr[a:b], normal[a:b], *state)
        parts.append(p)
    np.testing.assert_array_equal(np.concatenate(parts), prem)


def test_batches_classify_like_one_call(model, record):
    x, sample, symbol = record
    y, _, _ = ectopic(x, sample, symbol, every=3, start_s=100)
    profile = model.calibrate(y, FS, seconds=120)
    cut = cut_beats(y, FS, model.preprocessing)
    whole = wearer.book(model, profile).classify(cut.beats, cut.rr, cut.usable)
    book, parts = wearer.book(model, profile), []
    for a in range(0, len(cut.beats), 29):
        parts.append(book.classify(cut.beats[a : a + 29], cut.rr[a : a + 29], cut.usable[a : a + 29]))
    np.testing.assert_array_equal(np.concatenate([p[0] for p in parts]), whole[0])
    np.testing.assert_array_equal(np.concatenate([p[1] for p in parts]), whole[1])


def test_templates_round_trip_and_refuse_damage():
    geom = Geometry(450, 150, 360.0)
    rng = np.random.default_rng(0)
    beats = np.tile(np.sin(np.linspace(0, 6, 450)), (30, 1)) + 0.01 * rng.standard_normal((30, 450))
    t = learn(geom, beats, np.full(30, 0.8))
    again = Templates.from_dict(t.to_dict())
    np.testing.assert_array_equal(again.core, t.core)
    assert again.premature_log == t.premature_log == -beatclass.PREMATURE_MIN
    assert again.normal_join == t.normal_join == beatclass.JOIN  # R-aligned cores keep the fixed correlation
    np.testing.assert_array_equal(again.offset, t.offset)
    assert again.dominant == t.dominant
    older = {k: v for k, v in t.to_dict().items() if k != "normal_join"}  # a profile saved before it existed
    assert Templates.from_dict(older).normal_join == beatclass.JOIN
    for damage in ({"offset": [np.nan] * len(t.core)}, {"offset": []}, {"dominant": len(t.core)}, {"dominant": -1}):
        with pytest.raises(InputError, match="templates"):
            Templates.from_dict({**t.to_dict(), **damage})
    with pytest.raises(InputError, match="templates"):
        Templates.from_dict({**t.to_dict(), "normal_join": 2.0})
    with pytest.raises(InputError, match="templates"):
        Templates.from_dict({**t.to_dict(), "count": []})
    with pytest.raises(InputError, match="templates"):
        Book(t, Geometry(300, 100, 250.0))  # another rate: cores of another width


def test_the_monitor_classifies_as_analyze_does(model, record):
    """New templates found mid-stream carry from push to push: the classes equal analyze's at any block size."""
    from ecgae.runtime.monitor import Monitor

    x, sample, symbol = record
    y, _, _ = ectopic(x, sample, symbol, every=3, start_s=150)
    profile = model.calibrate(y, FS, seconds=120)
    want = model.analyze(y, FS, profile)
    monitor, events, i = Monitor(model, FS, profile=profile), [], 0
    for n in np.random.default_rng(3).integers(1, 2000, y.size):
        if i >= y.size:
            break
        events += monitor.push(y[i : i + n])
        i += n
    events += monitor.flush()
    assert (want.label == "V").sum() >= 20
    np.testing.assert_array_equal([e.label for e in events], want.label)
    np.testing.assert_array_equal([e.template for e in events], want.template)
    np.testing.assert_array_equal([e.flag for e in events], want.flag)


def test_a_stable_rhythm_of_identical_beats_with_drift_is_not_flagged(model, record):
    """One of record 100's beats repeated 300 times at 75 bpm, its amplitude drifting by 0.5 % per beat with a
    little noise: the robust spread of the enrolment's scores is tiny, which made a score threshold flag later
    beats with ordinary drift; the templates and the timing see one shape on time."""
    x, sample, _ = record
    r = int(sample[10])
    beat = x[r - 144 : r + 144] - np.median(x[r - 144 : r + 144])
    rng = np.random.default_rng(5)
    y = np.concatenate([beat * (1 + 0.005 * k) + 0.005 * rng.standard_normal(beat.size) for k in range(300)])
    result = model.analyze(y, FS, model.calibrate(y, FS, seconds=60))
    late = result.r_peak >= 60 * FS
    assert result.usable[late].mean() >= 0.99
    assert result.flag[late].mean() <= 0.02 and (result.label[late] == "N").mean() >= 0.98


def test_the_normal_correlation_of_pre_cut_beats_splits_two_groups_apart_and_only_then():
    """Two groups of correlations apart are split between them; one group (peaked, skewed or flat), or two that
    overlap, is all normal: the threshold is its lowest correlation, so a clean enrolment is not cut in two."""
    rng = np.random.default_rng(0)
    normal, abnormal = rng.normal(0.93, 0.03, 100), rng.normal(0.4, 0.1, 40)
    split = beatclass.normal_join(np.r_[normal, abnormal])
    assert abnormal.max() < split < normal.min()
    for one in (normal, 1 - rng.exponential(0.05, 150), rng.uniform(0.5, 0.9, 400),
                np.r_[normal, rng.normal(0.88, 0.03, 40)]):
        assert beatclass.normal_join(one) == min(beatclass.JOIN, one.min())
    assert beatclass.normal_join(np.array([0.95, 0.2])) == beatclass.JOIN  # too few to tell


def test_pre_cut_beats_are_classified_by_their_own_correlation_with_the_largest_template():
    """Without an R peak to align on, the whole beat is the core: the dominant template is the largest (no QRS
    width to compare), the enrolment's split sets the correlation of the normal shape, and each later beat is
    judged by its own correlation with the dominant core, as the split was made."""
    t_ = np.linspace(0, 1, 140)
    rng = np.random.default_rng(1)
    normal = np.sin(2 * np.pi * 3 * t_)  # two shapes: the normal one and another, a third of the enrolment
    other = np.exp(-(((t_ - 0.5) / 0.1) ** 2))
    enrol = np.vstack([normal + 0.1 * rng.standard_normal(140) for _ in range(60)]
                      + [other + 0.05 * rng.standard_normal(140) for _ in range(30)])
    geom = Geometry(140, None, None)
    t = learn(geom, enrol[rng.permutation(90)], None)
    book = Book(t, geom)
    assert not geom.aligned and np.corrcoef(t.core[book.dominant], normal)[0, 1] > 0.9
    assert 0.3 < t.normal_join < beatclass.JOIN
    later = np.vstack([normal + 0.1 * rng.standard_normal((20, 140)), other + 0.05 * rng.standard_normal((10, 140))])
    label, _ = book.classify(later, None, np.ones(30, dtype=bool))
    assert list(label) == ["N"] * 20 + ["V"] * 10


def test_a_shape_is_judged_against_the_dominant_whole_wherever_its_fiducial_sat():
    """A template is of the normal shape when its core, cut afresh where it best matches the dominant's within
    +-100 ms, correlates with it: the dominant beat with its fiducial 70 ms before the QRS (on another lobe) is
    normal, and an early one is S; a beat that matches the dominant only on the part of the cores that overlap
    (its QRS is the dominant's, 83 ms late, followed at once by a large wave where the dominant has its ST
    segment) is another shape, and an early one is V."""
    n, pre = 450, 150
    geom = Geometry(n, pre, FS)
    t = np.arange(n, dtype=np.float64)

    def beat(qrs: float, extra: float = 0.0) -> np.ndarray:
        d = (t - qrs) / 8
        return (-d * np.exp(-d * d / 2) + 0.3 * np.exp(-(((t - qrs - 90) / 25) ** 2))
                + extra * np.exp(-(((t - qrs - 55) / 10) ** 2)))

    rng = np.random.default_rng(2)
    enrol = np.vstack([beat(pre) + 0.01 * rng.standard_normal(n) for _ in range(20)])
    templates = learn(geom, enrol, np.full(20, 0.8))
    assert len(templates.core) == 1
    lobe, partial = beat(pre + 25), beat(pre + 30, extra=1.5)
    for shape, label in ((lobe, "S"), (partial, "V")):
        book = Book(templates, geom)
        beats = np.vstack([*enrol[:10], shape])
        got, template = book.classify(beats, np.r_[np.full(10, 0.8), 0.5], np.ones(11, dtype=bool))
        assert template[-1] == 1 and got[-1] == label


def test_a_fiducial_alternating_between_two_lobes_does_not_make_beats_premature():
    """A regular rhythm (0.8 s) whose largest deflection sits now on the QRS's main lobe, now on a lobe 94 ms
    before it (a biphasic complex, as in a limb lead): the raw intervals alternate 0.71 and 0.89 s, and the
    short ones are 12 % early, beyond the 10 % that makes a beat premature. The beats on the other lobe form a
    template of the normal shape whose offset says where the dominant's fiducial sits on them; timed from
    there, every beat is on time and normal. Without the offsets, the short ones read as S once the rhythm
    is known."""
    n, pre, lobe = 450, 150, 34
    geom = Geometry(n, pre, FS)
    t = np.arange(n, dtype=np.float64)

    def beat(qrs: float) -> np.ndarray:
        d = (t - qrs) / 8
        return -d * np.exp(-d * d / 2) + 0.3 * np.exp(-(((t - qrs - 90) / 25) ** 2))

    rng = np.random.default_rng(3)
    flipped = np.arange(40) % 3 == 2  # every third beat's fiducial on the earlier lobe
    beats = np.vstack([beat(pre + lobe * f) + 0.01 * rng.standard_normal(n) for f in flipped])
    rr = 0.8 + (np.r_[False, flipped[:-1]].astype(float) - flipped) * lobe / FS  # seconds between fiducials
    templates = learn(geom, beats[:20], rr[:20])
    assert len(templates.core) == 2 and templates.normal.all()
    assert abs(templates.offset[1] - lobe) <= 1 and templates.offset[0] == 0
    got, template = Book(templates, geom).classify(beats[20:], rr[20:], np.ones(20, dtype=bool))
    np.testing.assert_array_equal(template, flipped[20:].astype(int))
    assert (got == "N").all()
    unaligned = Templates.from_dict({**templates.to_dict(), "offset": [0.0, 0.0]})
    got, _ = Book(unaligned, geom).classify(beats[20:], rr[20:], np.ones(20, dtype=bool))
    assert (got[flipped[20:]][2:] == "S").all()  # the first two come before the book has NN_MIN intervals


def test_of_two_large_templates_alike_in_width_the_one_ending_the_longer_intervals_is_dominant():
    """Bigeminy of two wide shapes alike in width (a bundle branch block beside ventricular beats, record 207):
    the ectopic beats, a few more of them and the narrower by a little, end the short coupling intervals; the
    conducted ones end the long pauses, and they are the wearer's normal. Where the widths differ by WIDER, the
    narrowest stays dominant whatever the timing (ventricular beats are never narrower)."""
    n, pre = 450, 150
    geom = Geometry(n, pre, FS)
    t = np.arange(n, dtype=np.float64)

    def beat(sd: float, sign: float) -> np.ndarray:
        d = (t - pre) / sd
        return sign * d * np.exp(-d * d / 2)

    rng = np.random.default_rng(4)
    for conducted_sd, ectopic_sd, want in ((11.0, 10.0, "conducted"), (14.0, 10.0, "narrowest")):
        ectopic = np.arange(41) % 2 == 0  # 21 ectopic, 20 conducted
        beats = np.vstack([beat(ectopic_sd, 1.0) if e else beat(conducted_sd, -1.0) for e in ectopic])
        beats += 0.01 * rng.standard_normal(beats.shape)
        rr = np.where(ectopic, 0.5, 1.3)
        t_ = learn(geom, beats, rr)
        assert len(t_.core) == 2 and t_.count.tolist() == [21, 20]
        wider = t_.width[1] / t_.width[0]
        assert (wider < beatclass.WIDER) == (want == "conducted")
        assert t_.dominant == (1 if want == "conducted" else 0)
        assert t_.normal.tolist() == [t_.dominant == 0, t_.dominant == 1]
