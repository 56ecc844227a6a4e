"""BeatStream: raw samples in any block size give exactly the beats beats_from_signal cuts from the
whole recording; state stays bounded; a bad block is refused and the stream goes on (numpy only)."""

from __future__ import annotations

import numpy as np
import pytest
from ecgae.runtime.errors import InputError
from ecgae.runtime.preprocess import CUT_FIELDS, Preprocessing, beats_from_signal, cut_beats, design_bandpass, resample
from ecgae.runtime.stream import BeatStream, cut_in_chunks

FS = 360.0


@pytest.fixture(scope="module")
def prep() -> Preprocessing:
    return Preprocessing(FS, 450, 150, design_bandpass(FS, (0.5, 40.0)), (0.5, 40.0))


def stream(prep: Preprocessing, x: np.ndarray, fs: float, sizes) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    s, parts, i = BeatStream(prep, fs), [], 0
    for n in sizes:
        if i >= x.size:
            break
        parts.append(s.push(x[i : i + n]))
        i += n
    assert i >= x.size
    parts.append(s.flush())
    return tuple(np.concatenate([getattr(p, k) for p in parts]) for k in ("beats", "r_peak", "rr"))


@pytest.mark.parametrize("fs", [360.0, 250.0, 1000.0])
def test_random_block_sizes_give_the_batch_beats_exactly(mlii, prep, fs):
    x = resample(mlii[: int(45 * FS)], FS, fs)
    want_beats, want_peaks = beats_from_signal(x, fs, prep)
    rng = np.random.default_rng(int(fs))
    for sizes in (rng.integers(1, 40, size=x.size), rng.integers(300, 5000, size=x.size), [x.size]):
        beats, peaks, rr = stream(prep, x, fs, sizes)
        np.testing.assert_array_equal(peaks, want_peaks)
        np.testing.assert_array_equal(beats, want_beats)
        assert np.isnan(rr[0]) or rr[0] > 0
        np.testing.assert_allclose(rr[1:], np.diff(peaks) / fs)


def test_one_sample_at_a_time(mlii, prep):
    x = mlii[: int(25 * FS)]
    beats, peaks, _ = stream(prep, x, FS, np.ones(x.size, dtype=int))
    want_beats, want_peaks = beats_from_signal(x, FS, prep)
    np.testing.assert_array_equal(peaks, want_peaks)
    np.testing.assert_array_equal(beats, want_beats)


def test_state_stays_bounded_over_a_long_stream(mlii, prep):
    s = BeatStream(prep, FS)
    sizes = []
    for _ in range(3):  # 90 minutes: record 100 three times
        for i in range(0, mlii.size, 3600):
            s.push(mlii[i : i + 3600])
            sizes.append(s._f.size + s._x_tail.size)
    limit = (16.0 + 10.0 + 4.0) * FS + 3600  # lead-in + the longest gap kept + a window and a block
    assert max(sizes) < limit, max(sizes)


@pytest.mark.parametrize("block, message", [
    (np.array([1.0, np.nan]), "finite"),
    (np.zeros((2, 3)), "1-D"),
    (np.array(["a"]), "real numbers"),
    (np.array([1 + 2j]), "real numbers"),
])
def test_a_bad_block_is_refused_and_the_stream_goes_on(mlii, prep, block, message):
    x = mlii[: int(30 * FS)]
    s = BeatStream(prep, FS)
    got = [s.push(x[: x.size // 2])]
    with pytest.raises(InputError, match=message):
        s.push(block)
    got += [s.push(x[x.size // 2 :]), s.flush()]
    np.testing.assert_array_equal(np.concatenate([g.r_peak for g in got]), beats_from_signal(x, FS, prep)[1])


def test_a_recording_cut_in_chunks_equals_cut_beats(mlii, prep):
    """Model.analyze and calibrate cut a recording a chunk at a time (memory bounded by the chunk): every
    field equals cut_beats on the whole, whatever the chunk."""
    x = mlii[: int(120 * FS)].copy()
    x[int(30 * FS) : int(36 * FS)] += np.random.default_rng(0).normal(0.0, 0.5, int(6 * FS))
    x[int(70 * FS) : int(74 * FS)] = 0.0
    want = cut_beats(x, FS, prep)
    for chunk_s in (0.7, 13.0, 60.0, 1000.0):
        parts = list(cut_in_chunks(x, FS, prep, chunk_s))
        for field in CUT_FIELDS:
            np.testing.assert_array_equal(np.concatenate([getattr(p, field) for p in parts]), getattr(want, field))


@pytest.mark.parametrize("signal, message", [
    (np.zeros(int(20 * FS)), "flat signal"),
    (np.ones(100), "at least one window"),
    (np.array([1.0, np.nan] * 300), "300 NaN"),
    (np.zeros((2, 900)), "1-D"),
])
def test_chunked_cut_refuses_what_cut_beats_refuses(prep, signal, message):
    with pytest.raises(InputError, match=message) as batch:
        cut_beats(signal, FS, prep)
    with pytest.raises(InputError) as chunked:
        list(cut_in_chunks(signal, FS, prep))
    assert str(chunked.value) == str(batch.value)
