"""Wearer enrolment in the lean runtime: Model.calibrate / analyze, WearerProfile files, the CLI.

Runs in the torch-free venv too (make test-runtime). Real ECG: record 100 and ECG5000 from the package's
bundled.npz, read with numpy; the raw-signal bundle is the tiny record-100 AE of ecgae.export.fixtures.
"""

from __future__ import annotations

import importlib.resources
import json

import numpy as np
import pytest
from ecgae.cli import main
from ecgae.runtime import InputError, Model, wearer
from ecgae.runtime.preprocess import cut_beats, normalise_beats

ENROL = 120.0  # seconds of baseline, as a wearer enrols


@pytest.fixture(scope="module")
def data() -> dict:
    path = importlib.resources.files("ecgae.training") / "data" / "bundled.npz"
    with path.open("rb") as f, np.load(f, allow_pickle=False) as z:
        d = {k: z[k] for k in z.files}
    return {"signal": (d["mitdb_100_adc"].astype(np.float64) - d["mitdb_100_baseline"]) / d["mitdb_100_gain"],
            "fs": float(d["mitdb_100_fs"]), "ecg5000": normalise_beats(d["ecg5000_beats"]),
            "labels": d["ecg5000_labels"],
            "ann_sample": d["mitdb_100_ann_sample"][np.isin(d["mitdb_100_ann_symbol"], list("NAV"))]}


@pytest.fixture(scope="module")
def model(mitdb_bundle) -> Model:
    return Model.load(mitdb_bundle)


@pytest.fixture(scope="module")
def signal(data) -> np.ndarray:
    """The first five minutes of record 100: two to enrol on, three to score."""
    return data["signal"][: int(300 * data["fs"])]


@pytest.fixture(scope="module")
def profile(model, signal, data) -> wearer.WearerProfile:
    return model.calibrate(signal, data["fs"], seconds=ENROL)


def test_profile_round_trip_scores_identically(model, profile, signal, data, tmp_path):
    path = tmp_path / "wearer.json"
    profile.save(path)
    d = json.loads(path.read_text())
    assert d["format"] == wearer.FORMAT and d["format_version"] == wearer.FORMAT_VERSION
    assert d["graphs"]["encoder"] == model.manifest["graphs"]["encoder"]["sha256"]
    assert path.stat().st_size < 64_000  # small enough to keep per wearer on a device
    loaded = wearer.WearerProfile.load(path)
    assert loaded.to_dict() == profile.to_dict()
    a, b = model.analyze(signal, data["fs"], profile), model.analyze(signal, data["fs"], loaded)
    np.testing.assert_array_equal(a.score, b.score)
    np.testing.assert_array_equal(a.flag, b.flag)


def test_analyze_fields(model, profile, signal, data):
    fs = data["fs"]
    result = model.analyze(signal, fs, profile)
    beats, peaks = model.beats_from_signal(signal, fs)
    np.testing.assert_array_equal(result.r_peak, peaks)
    # RR runs to the previous beat found, which for the first windowed beat lies before the window's reach
    assert 0.3 < result.rr[0] < 2.0 and np.allclose(result.rr[1:], np.diff(peaks) / fs)
    np.testing.assert_array_equal(result.z, model.encode(beats))
    np.testing.assert_array_equal(result.flag, np.isin(result.label, ["S", "V"]))  # flagged: ectopic beats
    assert set(result.label) <= {"N", "S", "V"} and result.usable.all()  # Q only for unusable beats
    assert (result.template >= 0).all()
    assert result.threshold == profile.threshold and len(result) == len(peaks)
    # record 100's first five minutes hold 4 atrial premature beats among ~370: few flags at a 1 % target
    assert result.flag.mean() < 0.05
    plain = model.analyze(signal, fs)  # without a profile: today's score and the bundle's threshold
    np.testing.assert_allclose(plain.score, model.score(beats))
    assert plain.threshold == model.threshold
    np.testing.assert_array_equal(plain.flag, plain.score > model.threshold)
    assert set(plain.label) == {"Q"} and (plain.template == -1).all()  # no templates without an enrolment


def test_batches_score_like_the_whole_recording(model, profile, signal, data):
    """Each beat's score depends on that beat, past RR intervals and the profile only: a stream sees the same."""
    fs = data["fs"]
    whole = model.analyze(signal, fs, profile)
    cut = cut_beats(signal, fs, model.preprocessing)
    beats, rr = cut.beats, cut.rr
    parts = []
    for start in range(0, len(beats), 37):  # batches of 37 beats, each with the RR intervals seen before it
        s, _ = wearer.score_beats(model, beats[start : start + 37], rr[start : start + 37], profile,
                                  rr_history=rr[:start], usable=cut.usable[start : start + 37],
                                  next_gap=cut.next_gap[start : start + 37])
        parts.append(s)
    np.testing.assert_allclose(np.concatenate(parts), whole.score, rtol=1e-12, atol=1e-12)


def test_calibration_is_deterministic(model, profile, signal, data):
    again = model.calibrate(signal, data["fs"], seconds=ENROL)
    assert again.to_dict() == profile.to_dict()
    np.testing.assert_array_equal(model.analyze(signal, data["fs"], again).score,
                                  model.analyze(signal, data["fs"], profile).score)


@pytest.mark.parametrize("score", ["template", "residual"])
def test_contamination_tolerance(bundles, data, score):
    """A baseline holding 30 % abnormal beats (ECG5000 classes 2-5) gives the wearer's median beat and the
    ranking of held-out beats nearly as a clean one does, and the threshold stays above normal beats."""
    model = Model.load(bundles["ae"])
    x, y = data["ecg5000"], data["labels"]
    normal, abnormal = np.flatnonzero(y == "1"), np.flatnonzero(y != "1")
    calib_n, test_n, calib_a, test_a = normal[::2], normal[1::2], abnormal[::2], abnormal[1::2]
    picked = calib_a[np.linspace(0, len(calib_a) - 1, round(0.3 / 0.7 * len(calib_n))).astype(int)]
    clean = wearer.calibrate_beats(model, x[calib_n], None, score)
    dirty = wearer.calibrate_beats(model, x[np.r_[calib_n, picked]], None, score)
    assert len(picked) / (len(picked) + len(calib_n)) == pytest.approx(0.3, abs=0.01)
    # the median beat moves by less than a tenth of a beat's spread (beats are z-scored: spread 1)
    assert np.sqrt(np.square(dirty.template - clean.template).mean()) < 0.1
    aucs = {}
    for name, p in (("clean", clean), ("dirty", dirty)):
        sn, _ = wearer.score_beats(model, x[test_n], None, p)
        sa, _ = wearer.score_beats(model, x[test_a], None, p)
        aucs[name] = (sa[:, None] > sn[None, :]).mean() + 0.5 * (sa[:, None] == sn[None, :]).mean()
        assert (sn > p.threshold).mean() <= 0.05  # held-out normal beats: the false-alarm target holds
    assert aucs["clean"] > 0.9 and aucs["dirty"] > aucs["clean"] - 0.02


def test_refuses_a_profile_of_another_bundle(model, profile, bundles, signal, data, tmp_path):
    other = dict(profile.to_dict(), graphs={"encoder": "0" * 64, "decoder": "1" * 64})
    foreign = wearer.WearerProfile.from_dict(other)
    with pytest.raises(InputError, match="calibrate again with this bundle"):
        model.analyze(signal, data["fs"], foreign)
    ecg = Model.load(bundles["ae"])  # another model entirely (L = 140)
    with pytest.raises(InputError, match="calibrated with this bundle"):
        profile.check_bundle(wearer.model_graphs(ecg), ecg.input_length, ecg.latent_dim)


@pytest.mark.parametrize("damage", ["truncated", "version", "nan_threshold", "missing", "short_template",
                                    "zero_scale", "unknown_score"])
def test_refuses_a_damaged_profile(profile, tmp_path, damage):
    d = profile.to_dict()
    path = tmp_path / "wearer.json"
    if damage == "truncated":
        text = json.dumps(d)[:-200]
    else:
        if damage == "version":
            d["format_version"] = 99
        elif damage == "nan_threshold":
            d["threshold"] = float("nan")
        elif damage == "missing":
            del d["latent_precision"]
        elif damage == "short_template":
            d["median_residual"] = d["median_residual"][:-1]
        elif damage == "zero_scale":
            d["feature_scale"]["residual"] = 0.0
        else:
            d["score"] = "magic"
        text = json.dumps(d)
    path.write_text(text)
    with pytest.raises(InputError, match="profile"):
        wearer.WearerProfile.load(path)


def test_calibration_refuses_bad_arguments(model, signal, data):
    with pytest.raises(InputError, match="at least 20 usable beats"):
        model.calibrate(signal, data["fs"], seconds=5.0)
    noise = np.random.default_rng(0).normal(0.0, 1.0, int(120 * data["fs"]))
    with pytest.raises(InputError, match=r"usable beats .* \(unusable: \d+ noise\)"):
        model.calibrate(noise, data["fs"])
    with pytest.raises(InputError, match="false_alarm_rate"):
        model.calibrate(signal, data["fs"], false_alarm_rate=0.7)
    with pytest.raises(InputError, match="score"):
        model.calibrate(signal, data["fs"], score="magic")
    with pytest.raises(InputError, match="seconds"):
        model.calibrate(signal, data["fs"], seconds=float("nan"))


def test_cli_calibrate_then_score_with_the_profile(model, mitdb_bundle, signal, data, tmp_path, capsys):
    raw, prof, out = tmp_path / "ecg.npy", tmp_path / "wearer.json", tmp_path / "scores.csv"
    np.save(raw, signal)
    assert main(["calibrate", str(mitdb_bundle), str(raw), "--fs", "360", "--seconds", "120",
                 "--out", str(prof)]) == 0
    assert "threshold" in capsys.readouterr().out
    assert main(["score", str(mitdb_bundle), str(raw), "--fs", "360", "--profile", str(prof),
                 "--out", str(out)]) == 0
    rows = np.loadtxt(out, delimiter=",", skiprows=1)  # the header row
    expected = model.analyze(signal, data["fs"], wearer.WearerProfile.load(prof))
    np.testing.assert_array_equal(rows[:, 0], expected.r_peak)
    np.testing.assert_allclose(rows[:, 1], expected.score, rtol=1e-8)
    np.testing.assert_array_equal(rows[:, 2].astype(bool), expected.flag)
    capsys.readouterr()
    prof.write_text(prof.read_text()[:100])  # damaged: exit code 2 and one line, no traceback
    assert main(["score", str(mitdb_bundle), str(raw), "--fs", "360", "--profile", str(prof),
                 "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "profile" in err and "Traceback" not in err
    assert main(["score", str(mitdb_bundle), str(raw), "--fs", "360", "--profile", str(prof), "--threshold", "1",
                 "--out", str(out)]) == 2


def test_an_early_next_beat_does_not_change_a_beats_features(model, profile, signal, data):
    """What comes after NEXT_ONSET_S before the next R is the next beat's, not this one's morphology."""
    cut = cut_beats(signal, data["fs"], model.preprocessing)
    beats = cut.beats[10:20, None, :].copy()
    gap = np.full(len(beats), int(0.5 * 360))  # the next R 0.5 s after this one: premature
    start = model.preprocessing.pre + gap[0] - int(round(wearer.NEXT_ONSET_S * 360))
    other = beats.copy()
    other[:, 0, start:] += 4.0 * np.exp(-0.5 * ((np.arange(start, model.input_length) - start - 60) / 15.0) ** 2)
    a, za = wearer.features(model, beats, None, profile, gap)
    b, zb = wearer.features(model, other, None, profile, gap)
    for name in ("residual", "template", "latent"):
        np.testing.assert_array_equal(a[name], b[name])
    np.testing.assert_array_equal(za, model.encode(beats))  # the latent reported is the window's own
    assert not np.allclose(zb, za)
    c, _ = wearer.features(model, other, None, profile)  # without the gap the intrusion counts
    assert (c["residual"] > a["residual"]).all()


@pytest.mark.parametrize("every, shape", [(5, "down"), (3, "up"), (3, "bi")])
def test_premature_ventricular_beats_are_flagged_and_their_neighbours_not(model, data, every, shape):
    """Synthetic ventricular beats in the enrolment too (20 and 33 %): found, and normal beats spared."""
    from ecgae.training.synthetic import with_ventricular_beats

    fs, n = data["fs"], int(600 * data["fs"])
    ann = data["ann_sample"][(data["ann_sample"] < n - int(fs))]
    x, ref, sym = with_ventricular_beats(data["signal"][:n], fs, ann, every, 0.04, 1.0, shape)
    result = model.analyze(x, fs, model.calibrate(x, fs, seconds=120))
    later = result.r_peak >= 120 * fs
    nearest = np.abs(ref[None, :] - result.r_peak[later, None]).argmin(axis=1)
    ventricular = sym[nearest] == "V"
    assert ventricular.mean() > 0.15
    assert result.flag[later][ventricular].mean() >= 0.9 and result.flag[later][~ventricular].mean() <= 0.1


def test_a_large_abnormal_group_is_found_and_a_skewed_normal_one_is_left_whole():
    """Two clear score groups (30 % abnormal) set the threshold on the lower one; one skewed group rarely
    splits (a wrong split would put the threshold inside the wearer's normal tail)."""
    rng = np.random.default_rng(0)
    found = [wearer._abnormal_group(np.r_[rng.normal(0, 1, 7 * n), rng.normal(6, 1, 3 * n)]) for n in (5, 15, 30)
             for _ in range(20)]
    assert sum(g is not None for g in found) >= 58  # of 60; from 50 beats up
    normal, mean, sd = found[-1]
    assert normal[:210].all() and not normal[210:].any() and abs(mean) < 0.3 and 0.8 < sd < 1.2
    threshold, kept = wearer._threshold(np.r_[rng.normal(0, 1, 210), rng.normal(6, 1, 90)], 0.01)
    assert 2.0 < threshold < 3.0 and kept == 210
    skewed = [rng.normal(size=150), rng.standard_t(3, 150), rng.lognormal(0, 1, 150), rng.laplace(size=150)]
    splits = sum(wearer._abnormal_group(s) is not None for s in skewed) + sum(
        wearer._abnormal_group(rng.lognormal(0, 0.5, 150)) is not None for _ in range(40))
    assert splits <= 4  # of 44


def test_two_nearby_score_groups_are_both_normal():
    """A model's normal beats may score in two groups (here 30 % of them 2.7 SDs above the rest, a compact
    group: every other test of _abnormal_group passes). Within INLIER_Z of the lower group's SDs the upper
    one is no more abnormal than the exclusion would call it, so it is not split off: the threshold stays
    at the whole baseline's 1 % quantile instead of flagging the upper group."""
    rng = np.random.default_rng(1)
    s = np.r_[rng.normal(0, 0.6, 210), rng.normal(1.6, 0.2, 90)]
    assert wearer._abnormal_group(s) is None
    threshold, kept = wearer._threshold(s, 0.01)
    assert kept == 300 and np.mean(s > threshold) <= 0.02
    assert wearer._abnormal_group(np.r_[rng.normal(0, 0.6, 210), rng.normal(3.0, 0.2, 90)]) is not None  # 5 SDs


def test_a_next_beat_beyond_the_window_does_not_cut_the_own_part(model):
    """next_gap at its cap means no next beat in the window: the own part is the profile's, however long."""
    prep, length = model.preprocessing, model.input_length
    capped = np.full(3, prep.length - prep.pre)
    np.testing.assert_array_equal(wearer.own_mask(model, length, 3, capped), wearer.own_mask(model, length, 3, None))
    early = wearer.own_mask(model, length, 1, np.array([int(0.5 * prep.sample_rate)]))
    assert early.sum() == prep.pre + int(0.5 * prep.sample_rate) - int(round(wearer.NEXT_ONSET_S * prep.sample_rate))


def test_prematurity_is_not_thrown_by_one_missed_beat():
    """A beat the detector missed doubles one RR; with the mean of the past 8 as the expected interval the
    next beats looked up to 11 % early (a run of false alarms after every artefact), with the median not."""
    rr = np.r_[np.full(10, 0.8), 1.6, np.full(10, 0.8), 0.48, 0.8]
    prem = wearer.prematurity(rr)
    assert np.isnan(prem[: wearer.RR_MIN_HISTORY]).all()  # too little history: no expectation
    np.testing.assert_allclose(prem[wearer.RR_MIN_HISTORY : 10], 1.0)
    assert prem[10] == pytest.approx(2.0)
    np.testing.assert_allclose(prem[11:21], 1.0)
    assert prem[21] == pytest.approx(0.6)  # a premature beat still is
    after_gap = wearer.prematurity(np.r_[0.8, 0.8, np.nan, np.nan, np.nan, np.nan, np.nan, np.nan, 1.6, 0.8])
    assert np.isnan(after_gap[-1])  # one known interval in the past 8 is not enough
    stream = wearer.prematurity(rr[12:], history=rr[:12])
    np.testing.assert_array_equal(stream, prem[12:])
