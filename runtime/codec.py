"""ECG compression with a bundle: a recording stored as per-beat latents, R peaks, and beat offset and gain.

Per-beat z-scoring discards each window's offset and amplitude, so an offset and a gain per beat (the
least-squares fit of the decoded beat to the part of the signal it rebuilds) are stored beside the latent.
File layout (``.ecgz``, version 1), read without pickles:

    8 bytes   magic b"ECGAEZ\\x00\\x01" (format name, version)
    4 bytes   header length H, little-endian uint32
    H bytes   UTF-8 JSON header: format, version, the bundle's graph hashes, sample rate, signal length,
              window placement, bits per latent value, per-dimension quantiser ranges, beat count,
              first R peak, bits per R-R interval
    rest      zlib-compressed payload: R-R intervals (unsigned, ``rr_bits`` each, big-endian bit packed),
              latents (``bits`` each, uniform over each dimension's [lo, hi]), then beat offsets and gains
              as float16

The signal is rebuilt at the model's sample rate, band-passed as the model sees it: each beat's decoded
window is scaled back and contributes only its own part, from midway between the previous R peak and its
own to midway between its own and the next, with a short cross-fade (``beat_weights``); samples no window
covers (pauses longer than a window) are joined by a straight line, and those before the first or after
the last window are zero.
"""

from __future__ import annotations

import json
import struct
import zlib
from dataclasses import dataclass

import numpy as np

from .errors import InputError
from .model import Model
from .preprocess import fir_filter, normalise_beats, resample, window_beats
from .restore import affine_fit, fit_latents

MAGIC = b"ECGAEZ\x00\x01"
FORMAT = "ecgae-compressed"
FORMAT_VERSION = 1
MAX_BITS = 16
FADE_PER_WINDOW = 16  # the cross-fade between two beats: 1/16 of a window, 28 samples (78 ms) at L = 450


@dataclass(frozen=True)
class Compressed:
    """A decoded .ecgz file: its header and the per-beat arrays."""

    header: dict
    peaks: np.ndarray  # int64 [N], R peaks at the model's rate
    codes: np.ndarray  # int64 [N, latent], quantised latents
    mean: np.ndarray  # float32 [N], offset of each decoded beat in the filtered signal
    scale: np.ndarray  # float32 [N], gain of each decoded beat


def _graph_hashes(model: Model) -> dict[str, str]:
    graphs = model.manifest["graphs"]
    return {name: graphs[name]["sha256"] for name in ("encoder", "decoder")}


def _pack(values: np.ndarray, bits: int) -> bytes:
    """Unsigned integers < 2**bits, ``bits`` each, most significant bit first."""
    v = np.ascontiguousarray(values, dtype=">u4").view(np.uint8).reshape(-1, 4)
    return np.packbits(np.unpackbits(v, axis=1)[:, 32 - bits:].ravel()).tobytes()


def _unpack(data: bytes, count: int, bits: int) -> np.ndarray:
    need = (count * bits + 7) // 8
    if len(data) < need:
        raise InputError(f"compressed file: expected {need} payload bytes for {count} values of {bits} bits, "
                         f"received {len(data)}")
    b = np.unpackbits(np.frombuffer(data[:need], np.uint8))[: count * bits].reshape(count, bits)
    full = np.zeros((count, 32), np.uint8)
    full[:, 32 - bits:] = b
    return np.packbits(full, axis=1).view(">u4").ravel().astype(np.int64)


def filtered_windows(model: Model, signal: np.ndarray, fs: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(signal at the model rate after its band-pass, R peaks in it, their windows [N, L]) with the
    bundle's own beat finding (``Model.beats_from_signal``); the windows before z-scoring."""
    prep = model.preprocessing
    _, peaks_in = model.beats_from_signal(signal, fs)
    x = resample(np.asarray(signal, dtype=np.float64).squeeze(), float(fs), prep.sample_rate)
    if prep.taps is not None:
        x = fir_filter(x, prep.taps)
    peaks = np.round(peaks_in * prep.sample_rate / float(fs)).astype(np.int64)
    windows, keep = window_beats(x, peaks, prep.pre, prep.length)
    return x, peaks[keep], windows


def _dequantise(codes: np.ndarray, lo: np.ndarray, hi: np.ndarray, bits: int) -> np.ndarray:
    return (lo + codes / ((1 << bits) - 1) * (hi - lo)).astype(np.float32)


def compress(model: Model, signal: object, fs: float, bits: int = 8, fit: int = 0) -> bytes:
    """A raw single-lead recording at ``fs`` Hz -> the bytes of an .ecgz file bound to ``model``'s graphs.

    Each beat's latent is the encoder's, refined by ``fit`` Gauss-Newton steps (``restore.fit_latents``) to
    rebuild the beat's own part best when ``fit`` > 0: the encoder averages over its whole window and
    cannot aim at the part the rebuild uses. The stored offset and gain are the least-squares fit of the
    decoded, quantised beat to that part.
    """
    if isinstance(bits, bool) or not isinstance(bits, int | np.integer) or not 1 <= bits <= MAX_BITS:
        raise InputError(f"bits: expected an integer in 1..{MAX_BITS}, received {bits!r}")
    if isinstance(fit, bool) or not isinstance(fit, int | np.integer) or fit < 0:
        raise InputError(f"fit: expected a number of Gauss-Newton steps >= 0, received {fit!r}")
    bits = int(bits)
    x, peaks, windows = filtered_windows(model, signal, fs)
    prep = model.preprocessing
    own = beat_weights(peaks, prep.pre, prep.length) > 0
    z = model.encode(normalise_beats(windows, prep.eps)).astype(np.float64)
    if fit:
        z = fit_latents(model, z, windows, own, int(fit))[0]
    lo, hi = z.min(axis=0), z.max(axis=0)
    codes = np.round((z - lo) / np.where(hi > lo, hi - lo, 1.0) * ((1 << bits) - 1)).astype(np.int64)
    gain, offset = affine_fit(model.decode(_dequantise(codes, lo, hi, bits)).astype(np.float64), windows, own)
    rr = np.diff(peaks)
    rr_bits = max(1, int(rr.max()).bit_length()) if rr.size else 1
    header = {
        "format": FORMAT, "format_version": FORMAT_VERSION, "graphs_sha256": _graph_hashes(model),
        "sample_rate": prep.sample_rate, "signal_length": int(x.size), "pre": prep.pre, "length": prep.length,
        "latent_dim": model.latent_dim, "bits": bits, "lo": lo.tolist(), "hi": hi.tolist(),
        "beats": int(len(peaks)), "first_peak": int(peaks[0]), "rr_bits": rr_bits,
    }
    payload = (_pack(rr, rr_bits) + _pack(codes.ravel(), bits)
               + offset.astype("<f2").tobytes() + gain.astype("<f2").tobytes())
    head = json.dumps(header, separators=(",", ":")).encode()
    return MAGIC + struct.pack("<I", len(head)) + head + zlib.compress(payload, 9)


def read(data: bytes) -> Compressed:
    """Parse .ecgz bytes; InputError naming what is wrong when they are not a version-1 file."""
    if not isinstance(data, bytes | bytearray) or data[: len(MAGIC)] != MAGIC or len(data) < len(MAGIC) + 4:
        head = bytes(data[: len(MAGIC)]) if isinstance(data, bytes | bytearray) else type(data).__name__
        raise InputError(f"compressed file: expected {FORMAT} version {FORMAT_VERSION} (magic {MAGIC!r}), "
                         f"received {head!r}")
    (n,) = struct.unpack("<I", data[len(MAGIC) : len(MAGIC) + 4])
    start = len(MAGIC) + 4
    try:
        header = json.loads(data[start : start + n].decode())
        payload = zlib.decompress(data[start + n :])
        beats, latent, bits, rr_bits = (int(header[k]) for k in ("beats", "latent_dim", "bits", "rr_bits"))
    except (UnicodeDecodeError, json.JSONDecodeError, zlib.error, KeyError, TypeError, ValueError) as e:
        raise InputError(f"compressed file: header or payload is damaged ({type(e).__name__}: {e})") from None
    if header.get("format") != FORMAT or header.get("format_version") != FORMAT_VERSION:
        raise InputError(f"compressed file: expected format {FORMAT!r} version {FORMAT_VERSION}, received "
                         f"{header.get('format')!r} version {header.get('format_version')!r}")
    if beats < 1 or not 1 <= bits <= MAX_BITS or not 1 <= rr_bits <= 32:
        raise InputError(f"compressed file: expected >= 1 beat and 1..{MAX_BITS} bits, received {beats} beats, "
                         f"{bits} bits, {rr_bits} R-R bits")
    rr_bytes, code_bytes = ((beats - 1) * rr_bits + 7) // 8, (beats * latent * bits + 7) // 8
    if len(payload) != rr_bytes + code_bytes + 4 * beats:
        raise InputError(f"compressed file: expected a payload of {rr_bytes + code_bytes + 4 * beats} bytes for "
                         f"{beats} beats, received {len(payload)}")
    ranges = [np.asarray(header.get(k), dtype=object) for k in ("lo", "hi")]
    if any(r.shape != (latent,) or not all(isinstance(v, int | float) for v in r) for r in ranges):
        raise InputError(f"compressed file: expected lo and hi as {latent} numbers each, received "
                         f"{header.get('lo')!r} and {header.get('hi')!r}")
    rr = _unpack(payload[:rr_bytes], beats - 1, rr_bits)
    codes = _unpack(payload[rr_bytes : rr_bytes + code_bytes], beats * latent, bits).reshape(beats, latent)
    tail = np.frombuffer(payload[rr_bytes + code_bytes :], "<f2").astype(np.float32)
    peaks = int(header["first_peak"]) + np.concatenate([[0], np.cumsum(rr)]).astype(np.int64)
    return Compressed(header, peaks, codes, tail[:beats], tail[beats:])


def beat_weights(peaks: np.ndarray, pre: int, length: int) -> np.ndarray:
    """Each beat's weight [N, L] over its window in the rebuilt signal: its own part only.

    A beat owns the samples from midway between the previous R peak and its own to midway between its
    own and the next (moved inside the two windows' overlap when the midpoint falls outside it), with a
    linear cross-fade of up to ``length // FADE_PER_WINDOW`` samples centred there. A window's ends hold
    the neighbouring beats, where a model that averages over the whole window cannot place them; the
    weights of overlapping windows sum to one, and where windows do not overlap (a pause) each keeps its
    whole window.
    """
    p = np.asarray(peaks, np.int64)
    starts, ends = p - pre, p - pre + length
    t = starts[:, None] + np.arange(length)[None, :]
    w = np.ones((len(p), length))
    joined = ends[:-1] > starts[1:]  # consecutive windows overlap
    mid = np.clip((p[:-1] + p[1:]) // 2, starts[1:], ends[:-1])
    half = np.minimum.reduce([np.full(mid.shape, length // FADE_PER_WINDOW // 2), mid - starts[1:],
                              ends[:-1] - mid, mid - p[:-1], p[1:] - mid])  # inside both windows, between the peaks
    half = np.where(joined, half, 0)
    fade_in = np.clip((t[1:] - mid[:, None] + half[:, None] + 1) / (2 * half[:, None] + 1), 0, 1)
    fade_out = np.clip((mid[:, None] + half[:, None] - t[:-1]) / (2 * half[:, None] + 1), 0, 1)
    w[1:] *= np.where(joined[:, None], fade_in, 1.0)
    w[:-1] *= np.where(joined[:, None], fade_out, 1.0)
    return w


def rebuild(windows: np.ndarray, peaks: np.ndarray, pre: int, n_samples: int) -> np.ndarray:
    """Join per-beat windows [N, L] starting ``pre`` samples before each peak into one signal.

    Each sample comes from the beat that owns it (``beat_weights``); stretches no window covers (pauses)
    are joined by a straight line from one window's last sample to the next one's first; the rest is zero.
    """
    length = windows.shape[1]
    p = np.asarray(peaks, np.int64)
    idx = (p - pre)[:, None] + np.arange(length)[None, :]
    inside = (idx >= 0) & (idx < n_samples)
    out = np.bincount(idx[inside], (windows * beat_weights(p, pre, length))[inside], minlength=n_samples)
    for i in np.flatnonzero(p[1:] - p[:-1] > length):  # a pause after beat i
        a, b = p[i] - pre + length - 1, p[i + 1] - pre  # last sample of window i, first of window i + 1
        t = np.arange(a + 1, b)
        seg = windows[i, -1] + (t - a) / (b - a) * (windows[i + 1, 0] - windows[i, -1])
        keep = (t >= 0) & (t < n_samples)
        out[t[keep]] = seg[keep]
    return out


def decompress(model: Model, data: bytes) -> tuple[np.ndarray, float]:
    """.ecgz bytes -> (band-passed signal at the model's rate float32, that rate); refuses a file written
    with other graphs than ``model``'s."""
    c = read(data)
    h = c.header
    if h.get("graphs_sha256") != _graph_hashes(model):
        raise InputError(f"compressed file: expected one written with this bundle's graphs "
                         f"{_graph_hashes(model)}, received {h.get('graphs_sha256')}; decompress with the "
                         "bundle that compressed it")
    z = _dequantise(c.codes, np.asarray(h["lo"], np.float64), np.asarray(h["hi"], np.float64), int(h["bits"]))
    beats = model.decode(z).astype(np.float64) * c.scale[:, None] + c.mean[:, None]
    signal = rebuild(beats, c.peaks, int(h["pre"]), int(h["signal_length"]))
    return signal.astype(np.float32), float(h["sample_rate"])


def prd_percent(reference: np.ndarray, estimate: np.ndarray) -> float:
    """Percent root-mean-square difference, ECG compression's measure (PRDN when the reference is zero-mean)."""
    return float(100 * np.sqrt(((estimate - reference) ** 2).sum() / (reference**2).sum()))


def reached_prd(model: Model, signal: object, fs: float, data: bytes) -> float:
    """The PRD of ``data`` decompressed against the band-passed signal it was made from, over the span the beat
    windows cover (what the file represents: the model's band, at the model's rate)."""
    reference, peaks, _ = filtered_windows(model, signal, fs)
    rebuilt, _ = decompress(model, data)
    pre, length = model.preprocessing.pre, model.preprocessing.length
    span = slice(int(peaks[0] - pre), int(peaks[-1] - pre + length))
    return prd_percent(reference[span], rebuilt[span])
