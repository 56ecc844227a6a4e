"""A loaded bundle: verified graphs, one onnxruntime session each, and the model-level operations.

The Model holds only immutable state after load (sessions, names, manifest), so one instance can serve
several threads at once: onnxruntime's ``InferenceSession.run`` is thread-safe.
"""

from __future__ import annotations

import copy
import os
from pathlib import Path

import numpy as np
import onnxruntime as ort

from . import bundle as bundle_io
from . import validate
from .errors import BundleError, EcgaeError, InputError, describe
from .preprocess import Preprocessing
from .preprocess import beats_from_signal as _beats_from_signal
from .session import make_session

CHUNK = 64  # beats per onnxruntime call: activations stay in cache; 1.7x (encode) to 2.3x (reconstruct)
# the throughput of 4096-beat calls on 4096 beats, measured on a 2-core Xeon
ROLE = {"encoder": "beats", "decoder": "z"}  # what callers call each graph's input, for error messages
MAX_SAMPLE_BYTES = 1 << 31  # sample() output cap: a typo'd n should be refused, not exhaust memory


class _Graph:
    """One verified ONNX graph, its session and its declared input/output names."""

    def __init__(self, name: str, path: Path, session: ort.InferenceSession, inputs: list[str], outputs: list[str]):
        self.name, self.path, self.session = name, path, session
        self.input, self.outputs = inputs[0], list(outputs)

    @classmethod
    def load(cls, bundle_dir: Path, manifest: dict, name: str, width: int, **session_args) -> _Graph:
        """Hash-check, open, and compare the session's interface with what the manifest declares."""
        entry = manifest["graphs"][name]
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

    def run(self, x: np.ndarray, chunk: int) -> dict[str, np.ndarray]:
        """All outputs for a validated float32 batch, computed ``chunk`` rows per onnxruntime call."""
        try:
            chunks = [self.session.run(self.outputs, {self.input: x[start : start + chunk]})
                      for start in range(0, len(x), chunk)]
        except Exception as e:  # inputs are validated; reaching this means the graph itself is at fault
            reason = " ".join(str(e).split())
            raise EcgaeError(f"{self.name} ({self.path.name}): onnxruntime failed on {describe(x)}: "
                             f"{reason}") from None
        result = {o: chunks[0][i] if len(chunks) == 1 else np.concatenate([c[i] for c in chunks])
                  for i, o in enumerate(self.outputs)}
        if not all(np.isfinite(v).all() for v in result.values()):
            raise InputError(f"{ROLE[self.name]}: expected values of a size the model can compute on (beats are "
                             f"z-scored, latents of order 1), received {describe(x)} with max |x| = "
                             f"{float(np.abs(x).max()):.3g}, which overflowed float32 in the {self.name}")
        return result

    def first(self, x: np.ndarray, chunk: int) -> np.ndarray:
        """The primary output: z or mu for the encoder, x_hat for the decoder."""
        return self.run(x, chunk)[self.outputs[0]]


class Model:
    """An exported AE or VAE, ready to encode, reconstruct, sample and score beats on CPU."""

    def __init__(self, bundle_dir: Path, manifest: dict, encoder: _Graph, decoder: _Graph, chunk: int):
        self.bundle_dir = bundle_dir
        self._manifest = manifest
        self._encoder, self._decoder, self._chunk = encoder, decoder, chunk
        self.kind: str = manifest["model"]["kind"]
        self.input_length: int = manifest["model"]["input_length"]
        self.latent_dim: int = manifest["model"]["latent_dim"]
        self.preprocessing: Preprocessing = bundle_io.preprocessing(manifest, bundle_dir)
        self.threshold: float | None = _threshold(manifest, bundle_dir)
        self.sealed: bool = bundle_io.is_sealed(manifest)  # False for a format 1 (unsealed) manifest

    @classmethod
    def load(cls, bundle_dir: str | os.PathLike, threads: int = 1, providers: list[str] | None = None,
             optimization: str = "all", chunk: int = CHUNK) -> Model:
        """Verify the manifest (format, version) and each graph's sha256, then create the two sessions once.

        ``threads`` is onnxruntime's intra-op thread count (spinning stays off); ``chunk`` caps beats per call.
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
        providers = None if providers is None else list(providers)
        args = dict(threads=threads, optimization=optimization, providers=providers)
        model = manifest["model"]
        encoder = _Graph.load(bundle_dir, manifest, "encoder", model["input_length"], **args)
        decoder = _Graph.load(bundle_dir, manifest, "decoder", model["latent_dim"], **args)
        return cls(bundle_dir, manifest, encoder, decoder, chunk)

    @property
    def manifest(self) -> dict:
        """A copy of the manifest: callers may not alter what the model was loaded with."""
        return copy.deepcopy(self._manifest)

    def encoder_outputs(self, beats: object) -> dict[str, np.ndarray]:
        """Every encoder output by name: ``z`` (AE) or ``mu`` and ``logvar`` (VAE), each [B, latent]."""
        return self._encoder.run(validate.as_beats(beats, self.input_length), self._chunk)

    def encode(self, beats: object) -> np.ndarray:
        """Beats -> latents [B, latent]: z for an AE, the posterior mean mu for a VAE (deterministic)."""
        return self._encoder.first(validate.as_beats(beats, self.input_length), self._chunk)

    def decode(self, z: object) -> np.ndarray:
        """Latents [B, latent] -> beats [B, L]."""
        return self._decoder.first(validate.as_latents(z, self.latent_dim), self._chunk)[:, 0, :]

    def reconstruct(self, beats: object) -> np.ndarray:
        """Beats -> reconstructed beats [B, L] through z (AE) or mu (VAE), as training scores them."""
        return self._reconstruct(validate.as_beats(beats, self.input_length))[:, 0, :]

    def _reconstruct(self, x: np.ndarray) -> np.ndarray:
        """Validated [B, 1, L] -> [B, 1, L], chunk by chunk end to end so no [B, latent] detour is kept."""
        parts = []
        for start in range(0, len(x), self._chunk):
            parts.append(self._decoder.first(self._encoder.first(x[start : start + self._chunk], self._chunk),
                                             self._chunk))
        return np.concatenate(parts)

    def sample(self, n: int, seed: int | np.random.Generator | None = None) -> np.ndarray:
        """Decode ``n`` draws of z ~ N(0, I) [n, L]; the same integer seed gives the same beats."""
        n = validate.positive_int(n, "n", maximum=MAX_SAMPLE_BYTES // (4 * self.input_length))
        z = validate.rng(seed).standard_normal((n, self.latent_dim), dtype=np.float32)
        return self._decoder.first(z, self._chunk)[:, 0, :]

    def score(self, beats: object) -> np.ndarray:
        """Per-beat anomaly score [B] float64: mean squared reconstruction error over samples, as in training."""
        x = validate.as_beats(beats, self.input_length)
        return np.square(self._reconstruct(x).astype(np.float64) - x).mean(axis=(1, 2))  # float64: no overflow

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

    def check_parity(self) -> dict[str, float]:
        """Max |runtime - export-time torch| per output on the bundle's reference.npz, so a device can
        re-check the graphs it runs. BundleError when an element breaks the manifest's criterion
        |actual - expected| <= atol + rtol * |expected| (the one export certified)."""
        ref = bundle_io.load_reference(self.bundle_dir, self._manifest)
        parity = self._manifest.get("parity") if isinstance(self._manifest.get("parity"), dict) else {}
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
