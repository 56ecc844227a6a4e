"""Numerical agreement of the bundle with torch on held-out real beats, at ORT_DISABLE_ALL (the graph as
exported) and ORT_ENABLE_ALL (what deployment runs). The comparison itself is export's, reused.

With a run, the reference is torch computed now with the chapter's literal decoder on the run's
held-out (test) beats; without one, it is the torch output stored in the bundle's reference.npz.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..export.parity import LEVELS, bundle_outputs, error_stats
from ..runtime.bundle import load_reference


def reference_from_bundle(bundle_dir: Path, manifest: dict) -> dict:
    """Beats, latents and torch's outputs for them, as the bundle's export stored them."""
    ref = load_reference(bundle_dir, manifest)
    expected = {f"encoder.{name}": ref[name] for name in manifest["graphs"]["encoder"]["outputs"]}
    expected |= {"decoder.x_hat": ref["x_sample"], "reconstruct.x_hat": ref["x_hat"]}
    return {"source": "bundle reference.npz (torch at export time)", "beats": ref["x"], "latents": ref["z_sample"],
            "expected": expected}


def reference_from_torch(model: object, kind: str, beats: np.ndarray, n_latents: int) -> dict:
    """torch's outputs now, with the chapter's literal decoder, for held-out beats and N(0, I) latents."""
    from ..export.bundle import LATENT_SEED, reference_model, torch_outputs

    latents = np.random.default_rng(LATENT_SEED).standard_normal((n_latents, model.latent_dim)).astype(np.float32)
    return {"source": "torch eager now, literal decoder, run's held-out (test) beats", "beats": beats,
            "latents": latents, "expected": torch_outputs(reference_model(model), kind, beats, latents)}


def measure_parity(bundle_dir: Path, manifest: dict, reference: dict) -> dict:
    """max / mean / p99 absolute error of every output at each optimization level."""
    graphs = manifest["graphs"]
    encoder, decoder = bundle_dir / graphs["encoder"]["file"], bundle_dir / graphs["decoder"]["file"]
    levels = {}
    for level, optimization in LEVELS.items():
        actual = bundle_outputs(encoder, decoder, reference["beats"], reference["latents"], optimization)
        levels[level] = {key: error_stats(want, actual[key]) for key, want in reference["expected"].items()}
    return {"source": reference["source"], "n_beats": int(len(reference["beats"])),
            "n_latents": int(len(reference["latents"])), "levels": levels}
