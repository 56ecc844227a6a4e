"""A loaded bundle: verified graphs, one onnxruntime session each, and the model-level operations.

The Model holds only immutable state after load (sessions, names, manifest), so one instance can serve
several threads at once: onnxruntime's ``InferenceSession.run`` is thread-safe.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import onnxruntime as ort

from . import bundle as bundle_io
from . import pacing, validate, wearer
from .errors import BundleError, EcgaeError, InputError, describe
from .gaps import cut_pieces, gap_spans
from .preprocess import CUT_FIELDS, CutBeats, Preprocessing
from .preprocess import beats_from_signal as _beats_from_signal
from .session import direct_run, make_session

CHUNK = 64  # beats per onnxruntime call: activations stay in cache; 1.7x (encode) to 2.3x (reconstruct)
# the throughput of 4096-beat calls on 4096 beats, measured on a 2-core Xeon
ROLE = {"x": "beats", "z": "z"}  # what callers call each graph input, for error messages
STAGE = {"z": "encoder", "mu": "encoder", "logvar": "encoder", "x_hat": "decoder", "score": "decoder"}
MAX_SAMPLE_BYTES = 1 << 31  # sample() output cap: a typo'd n should be refused, not exhaust memory


class _Graph:
    """One verified ONNX graph, its session and its declared input/output names."""

    def __init__(self, name: str, path: Path, session: ort.InferenceSession, inputs: list[str], outputs: list[str]):
        self.name, self.path, self.session = name, path, session
        self.input, self.outputs = inputs[0], list(outputs)
        self.primary = self.outputs[:1]  # z or mu for the encoder and the score graph, x_hat for the decoder
        self._run = direct_run(session)  # names were checked against the manifest above

    @classmethod
    def load(cls, bundle_dir: Path, manifest: dict, name: str, width: int, entry: dict | None = None,
             **session_args) -> _Graph:
        """Hash-check, open, and compare the session's interface with what the manifest declares;
        ``entry`` is the graph's manifest entry when it is not the FP32 one (``graphs.<name>``)."""
        entry = manifest["graphs"][name] if entry is None else entry
        path = bundle_io.verified_file(bundle_dir, entry, f"graphs.{name}")
        try:
            session = make_session(path, **session_args)
        except EcgaeError:
            raise
        except Exception as e:  # onnxruntime raises its own types for unparsable or invalid graphs
            reason = " ".join(str(e).split())  # one line: the CLI prints errors as one line
            raise BundleError(f"bundle {bundle_dir}: onnxruntime cannot load {path.name} ({reason})") from None
        inputs = [i.name for i in session.get_inputs()]
        outputs = [o.name for o in session.get_outputs()]
        if inputs != entry["inputs"] or outputs != entry["outputs"]:
            raise BundleError(f"bundle {bundle_dir}: {path.name}: expected inputs {entry['inputs']} and outputs "
                              f"{entry['outputs']} (manifest), received {inputs} and {outputs} (graph)")
        declared = session.get_inputs()[0].shape[-1]
        if isinstance(declared, int) and declared != width:
            raise BundleError(f"bundle {bundle_dir}: {path.name}: expected input width {width} (manifest), "
                              f"received {declared} (graph)")
        return cls(name, path, session, inputs, outputs)

    def run(self, x: np.ndarray, chunk: int, outputs: list[str] | None = None) -> list[np.ndarray]:
        """``outputs`` (default: all) for a validated float32 batch, ``chunk`` rows per onnxruntime call; a
        batch that fits in one chunk is passed as it is, without slicing or concatenation."""
        names = self.outputs if outputs is None else outputs
        try:
            if len(x) <= chunk:
                result = self._run(names, {self.input: x}, None)
            else:
                parts = [self._run(names, {self.input: x[start : start + chunk]}, None)
                         for start in range(0, len(x), chunk)]
                result = [np.concatenate(values) for values in zip(*parts)]
        except Exception as e:  # inputs are validated; reaching this means the graph itself is at fault
            reason = " ".join(str(e).split())
            raise EcgaeError(f"{self.name} ({self.path.name}): onnxruntime failed on {describe(x)}: "
                             f"{reason}") from None
        for name, value in zip(names, result):
            if not validate.all_finite(value):
                raise InputError(f"{ROLE[self.input]}: expected values of a size the model can compute on (beats "
                                 f"are z-scored, latents of order 1), received {describe(x)} with max |x| = "
                                 f"{float(np.abs(x).max()):.3g}, which overflowed float32 in the {STAGE[name]}")
        return result

    def named(self, x: np.ndarray, chunk: int) -> dict[str, np.ndarray]:
        """Every output by name."""
        return dict(zip(self.outputs, self.run(x, chunk)))

    def first(self, x: np.ndarray, chunk: int) -> np.ndarray:
        """The primary output alone; the others (a VAE's logvar) are not fetched, copied or checked."""
        return self.run(x, chunk, self.primary)[0]


class Model:
    """An exported AE or VAE, ready to encode, reconstruct, sample and score beats on CPU."""

    def __init__(self, bundle_dir: Path, manifest: dict, encoder: _Graph, decoder: _Graph, chunk: int,
                 scorer: _Graph | None = None):
        self.bundle_dir = bundle_dir
        self._manifest = manifest
        self._encoder, self._decoder, self._chunk = encoder, decoder, chunk
        self._scorer = scorer  # x -> (z or mu, x_hat, score) in one call; None in bundles written before it
        if scorer is not None:  # what reconstruct and score fetch; z always, so that its overflow is refused
            self._fetch_x_hat, self._fetch_score = scorer.outputs[:2], scorer.outputs[::2]
        self.kind: str = manifest["model"]["kind"]
        self.input_length: int = manifest["model"]["input_length"]
        self.latent_dim: int = manifest["model"]["latent_dim"]
        self.preprocessing: Preprocessing = bundle_io.preprocessing(manifest, bundle_dir)
        self.threshold: float | None = _threshold(manifest, bundle_dir)
        self.precision, self.graph_format = "fp32", "onnx"
        self._parity = manifest.get("parity")
        self.sealed: bool = bundle_io.is_sealed(manifest)  # False for a format 1 (unsealed) manifest

    @classmethod
    def load(cls, bundle_dir: str | os.PathLike, threads: int = 1, providers: list[str] | None = None,
             optimization: str = "all", chunk: int = CHUNK, precision: str = "fp32",
             graph_format: str = "onnx") -> Model:
        """Verify the manifest (format, version) and each graph's sha256, then create the two sessions once.

        ``threads`` is onnxruntime's intra-op thread count (spinning stays off); ``chunk`` caps beats per call.
        ``precision`` ("fp32" or "int8") and ``graph_format`` ("onnx" or "ort") pick the graphs; INT8 brings
        its own anomaly threshold and parity figures.
        """
        if not isinstance(bundle_dir, str | os.PathLike):
            raise InputError(f"bundle_dir: expected a folder path, received {describe(bundle_dir)}")
        bundle_dir = Path(bundle_dir)
        chunk = validate.positive_int(chunk, "chunk")
        available = ort.get_available_providers()
        if providers is not None and (not isinstance(providers, list | tuple) or not providers
                                      or any(p not in available for p in providers)):
            raise InputError(f"providers: expected a non-empty list drawn from {available}, received {providers!r}")
        manifest = bundle_io.read_manifest(bundle_dir)
        bundle_io.verify_reference(bundle_dir, manifest)
        bundle_io.verify_present_files(bundle_dir, manifest)
        providers = None if providers is None else list(providers)
        args = dict(threads=threads, optimization=optimization, providers=providers)
        model = manifest["model"]
        chosen = bundle_io.variant(manifest, bundle_dir, precision, graph_format)
        encoder = _Graph.load(bundle_dir, manifest, "encoder", model["input_length"],
                              chosen["graphs"]["encoder"], **args)
        decoder = _Graph.load(bundle_dir, manifest, "decoder", model["latent_dim"], chosen["graphs"]["decoder"],
                              **args)
        scorer = None
        if "score" in chosen["graphs"]:  # the one-call scoring graph (FP32 .onnx only)
            scorer = _Graph.load(bundle_dir, manifest, "score", model["input_length"], chosen["graphs"]["score"],
                                 **args)
            if scorer.outputs != [encoder.outputs[0], "x_hat", "score"]:
                raise BundleError(f"bundle {bundle_dir}: graphs.score.outputs: expected "
                                  f"{[encoder.outputs[0], 'x_hat', 'score']}, received {scorer.outputs}")
        loaded = cls(bundle_dir, manifest, encoder, decoder, chunk, scorer)
        if chosen is not manifest:
            loaded.precision, loaded.graph_format = precision, graph_format
            loaded.threshold = _threshold(chosen, bundle_dir)
            loaded._parity = chosen.get("parity")
        return loaded

    @property
    def manifest(self) -> dict:
        """A copy of the manifest: callers may not alter what the model was loaded with."""
        return copy.deepcopy(self._manifest)

    def encoder_outputs(self, beats: object) -> dict[str, np.ndarray]:
        """Every encoder output by name: ``z`` (AE) or ``mu`` and ``logvar`` (VAE), each [B, latent]."""
        return self._encoder.named(validate.as_beats(beats, self.input_length), self._chunk)

    def encode(self, beats: object) -> np.ndarray:
        """Beats -> latents [B, latent]: z for an AE, the posterior mean mu for a VAE (deterministic)."""
        return self._encoder.first(validate.as_beats(beats, self.input_length), self._chunk)

    def decode(self, z: object) -> np.ndarray:
        """Latents [B, latent] -> beats [B, L]."""
        return self._decoder.first(validate.as_latents(z, self.latent_dim), self._chunk)[:, 0, :]

    def reconstruct(self, beats: object) -> np.ndarray:
        """Beats -> reconstructed beats [B, L] through z (AE) or mu (VAE), as training scores them."""
        x = validate.as_beats(beats, self.input_length)
        if self._scorer is not None:
            return self._scorer.run(x, self._chunk, self._fetch_x_hat)[1][:, 0, :]
        return self._reconstruct(x)[:, 0, :]

    def _reconstruct(self, x: np.ndarray) -> np.ndarray:
        """Validated [B, 1, L] -> [B, 1, L] through the two graphs, chunk by chunk end to end so no
        [B, latent] detour is kept."""
        chunk, encoder, decoder = self._chunk, self._encoder, self._decoder
        if len(x) <= chunk:
            return decoder.first(encoder.first(x, chunk), chunk)
        return np.concatenate([decoder.first(encoder.first(x[start : start + chunk], chunk), chunk)
                               for start in range(0, len(x), chunk)])

    def sample(self, n: int, seed: int | np.random.Generator | None = None) -> np.ndarray:
        """Decode ``n`` draws of z ~ N(0, I) [n, L]; the same integer seed gives the same beats."""
        n = validate.positive_int(n, "n", maximum=MAX_SAMPLE_BYTES // (4 * self.input_length))
        z = validate.rng(seed).standard_normal((n, self.latent_dim), dtype=np.float32)
        return self._decoder.first(z, self._chunk)[:, 0, :]

    def score(self, beats: object) -> np.ndarray:
        """Per-beat anomaly score [B] float64: mean squared reconstruction error over samples, as in training."""
        x = validate.as_beats(beats, self.input_length)
        if self._scorer is not None:  # a finite score implies a finite x_hat, which is not fetched
            return self._scorer.run(x, self._chunk, self._fetch_score)[1]
        return self._mse(self._reconstruct(x), x)

    def score_and_encode(self, beats: object) -> tuple[np.ndarray, np.ndarray]:
        """(``score`` [B], ``encode`` [B, latent]) from one pass through the graphs: analyze and the Monitor
        need both, and the score graph computes the latent anyway."""
        x = validate.as_beats(beats, self.input_length)
        if self._scorer is not None:
            z, scores = self._scorer.run(x, self._chunk, self._fetch_score)
            return scores, z
        z = self._encoder.first(x, self._chunk)
        return self._mse(self._decoder.first(z, self._chunk), x), z

    def _mse(self, x_hat: np.ndarray, x: np.ndarray) -> np.ndarray:
        error = np.subtract(x_hat, x, dtype=np.float64)  # float64: neither overflows nor rounds
        return np.matmul(error, error.transpose(0, 2, 1)).ravel() / self.input_length  # [B,1,L] @ [B,L,1]

    def decision_threshold(self, threshold: float | None = None) -> float:
        """``threshold`` if given, else the bundle's calibrated one; BundleError when there is neither."""
        if threshold is not None:
            return validate.finite_real(threshold, "threshold")
        if self.threshold is None:
            raise BundleError(f"bundle {self.bundle_dir}: expected a calibrated anomaly threshold "
                              "(manifest anomaly.threshold), received none; pass a threshold explicitly")
        return self.threshold

    def is_anomalous(self, beats: object, threshold: float | None = None) -> np.ndarray:
        """score > threshold per beat [B] bool, with the bundle's calibrated threshold unless one is given."""
        limit = self.decision_threshold(threshold)  # first: no work wasted on a bundle without one
        return self.score(beats) > limit

    def beats_from_signal(self, signal: object, fs: float) -> tuple[np.ndarray, np.ndarray]:
        """Raw single-lead ECG at ``fs`` Hz -> (model-ready beats [N, L], R-peak sample index of each in
        ``signal``), with the filter, window and normalisation the model was trained with."""
        fs = validate.sample_rate(fs)
        return _beats_from_signal(validate.as_numeric(signal, "signal"), fs, self.preprocessing)

    def calibrate(self, signal: object, fs: float, seconds: float | None = None, score: str = wearer.DEFAULT_SCORE,
                  false_alarm_rate: float = wearer.DEFAULT_FALSE_ALARM_RATE) -> wearer.WearerProfile:
        """A wearer's profile from their unlabelled raw ECG, which may hold some abnormal beats (see
        ecgae.runtime.wearer): the beats whose R peak falls in the first ``seconds`` (default all), cut from
        the whole ``signal`` exactly as ``analyze`` and a ``Monitor`` cut them; beats the quality gate finds
        unusable are left out."""
        fs = validate.sample_rate(fs)
        if seconds is not None and not validate.finite_real(seconds, "seconds") > 0:
            raise InputError(f"seconds: expected a baseline duration > 0, received {seconds!r}")
        end = None if seconds is None else int(round(seconds * fs))
        cuts = cut_pieces(_raw(signal), fs, self.preprocessing)
        base = _concat(c if end is None else c.take(c.r_peak < end) for c, _ in cuts)
        return wearer.calibrate_cut(self, base, score, false_alarm_rate)

    def analyze(self, signal: object, fs: float, profile: wearer.WearerProfile | None = None) -> wearer.Beats:
        """Raw ECG -> per-beat R peak, RR, latent, score, flag and quality: wearer-relative with a profile, else
        the reconstruction MSE against the bundle's threshold. Beats in unusable signal are reported, not
        scored (NaN score and latent, no flag). The recording is cut and scored five minutes at a time, so memory
        does not grow with its length."""
        if profile is not None:
            profile.check_bundle(wearer.model_graphs(self), self.input_length, self.latent_dim)
        x, fs = _raw(signal), validate.sample_rate(fs)
        book = None if profile is None else wearer.book(self, profile)  # carried from chunk to chunk
        parts, spikes, history, limit = [], np.zeros(0, np.int64), np.zeros(0), None
        for cut, found in cut_pieces(x, fs, self.preprocessing):
            spikes = np.r_[spikes, found]  # a piece's spikes come before its beats
            if cut.r_peak.size == 0:
                continue
            paced = pacing.paced(cut.r_peak, spikes, fs)
            s = wearer.score_batch(self, cut.beats, cut.rr, profile, history, usable=cut.usable,
                                   next_gap=cut.next_gap, templates=book, paced=paced)
            history = np.concatenate((history, cut.rr))[-wearer.RR_HISTORY :]  # prematurity looks back 8 RR
            limit = s.threshold
            parts.append((cut.r_peak, cut.rr, s.z, s.score, s.flag, cut.usable, cut.reason, s.label, s.template,
                          paced))
        r_peak, rr, z, scores, flags, usable, reason, label, template, paced = (np.concatenate(c) for c in zip(*parts))
        return wearer.Beats(r_peak, rr, z, scores, flags, limit, usable, reason, label, template, paced, gap_spans(x))

    def check_parity(self) -> dict[str, float]:
        """Max |runtime - export-time torch| per output on the bundle's reference.npz, so a device can
        re-check the graphs it runs. BundleError when an element breaks the manifest's criterion
        |actual - expected| <= atol + rtol * |expected| (the one export certified)."""
        ref = bundle_io.load_reference(self.bundle_dir, self._manifest)
        parity = self._parity if isinstance(self._parity, dict) else {}
        try:
            atol = validate.finite_real(parity.get("atol", 1e-4), "parity.atol")
            rtol = validate.finite_real(parity.get("rtol", 0.0), "parity.rtol")
        except InputError as e:  # the manifest's fault, not the caller's
            raise BundleError(f"bundle {self.bundle_dir}: {bundle_io.MANIFEST} {e}") from None
        try:
            x, z_sample = ref["x"], ref["z_sample"]
            expected = {f"encoder.{o}": ref[o] for o in self._encoder.outputs}
            expected |= {"reconstruct.x_hat": ref["x_hat"], "decoder.x_hat": ref["x_sample"]}
        except KeyError as e:
            raise BundleError(f"bundle {self.bundle_dir}: reference.npz lacks the array {e}") from None
        actual = {f"encoder.{o}": v for o, v in self.encoder_outputs(x).items()}
        actual |= {"reconstruct.x_hat": self.reconstruct(x), "decoder.x_hat": self.decode(z_sample)}
        diffs = {}
        for key, want in expected.items():
            if actual[key].size != want.size:
                raise BundleError(f"bundle {self.bundle_dir}: reference {key}: expected shape {want.shape}, "
                                  f"runtime produced {actual[key].shape}")
            err = np.abs(actual[key].reshape(want.shape).astype(np.float64) - want)
            diffs[key] = float(err.max())
            if not (err <= atol + rtol * np.abs(want)).all():
                raise BundleError(f"bundle {self.bundle_dir}: parity {key}: expected |runtime - torch| <= "
                                  f"{atol:g} + {rtol:g} * |torch|, received max {diffs[key]:.3g}")
        return diffs


def _raw(signal: object) -> np.ndarray:
    """A raw single-lead recording as float64 [n], the caller's own array when it is one (nothing writes to it:
    the view is read-only, and despiking copies); NaN/Inf samples stay: they are gaps (ecgae.runtime.gaps)."""
    x = np.ascontiguousarray(validate.as_numeric(signal, "signal"), dtype=np.float64).squeeze().view()
    x.flags.writeable = False
    if x.ndim != 1 or x.size == 0:
        raise InputError(f"signal: expected a non-empty 1-D single-lead array, received shape {np.shape(signal)}")
    return x


def _threshold(manifest: dict, bundle_dir: Path) -> float | None:
    """The calibrated anomaly threshold, None when the bundle has none, BundleError when it is not a number."""
    anomaly = manifest.get("anomaly")
    value = anomaly.get("threshold") if isinstance(anomaly, dict) else None
    if value is None:
        return None
    try:
        return validate.finite_real(value, "anomaly.threshold")
    except InputError as e:
        raise BundleError(f"bundle {bundle_dir}: {bundle_io.MANIFEST} {e}") from None


def _concat(cuts: Iterable[CutBeats]) -> CutBeats:
    parts = list(cuts)
    return CutBeats(*(np.concatenate([getattr(p, k) for p in parts]) for k in CUT_FIELDS))
