"""Restoring beats with the model: completing missing stretches (lead dropout, saturation) and denoising.

Gap filling: the hidden samples are taken from the decoded beat a * decode(z) + b whose latent z (and offset b, gain a)
best explain the observed samples: masked reconstruction. z starts at the encoding of the beat with its
gaps bridged by straight lines and is refined by a few damped Gauss-Newton (Levenberg-Marquardt) steps,
the Jacobian by finite differences through the decoder graph, so it needs nothing but onnxruntime.
Denoising: the beat's reconstruction, put back at the gain and offset that best fit the noisy window.
"""

from __future__ import annotations

import numpy as np

from .errors import BundleError, InputError
from .model import Model
from .preprocess import normalise_beats

STEP = 1e-3  # finite-difference step in latent units (latents are of order 1)
CHUNK = 256  # beats per Gauss-Newton batch: its probes take CHUNK x latent decoded windows


def _check(model: Model, beats: object, observed: object) -> tuple[np.ndarray, np.ndarray]:
    x = np.asarray(beats, dtype=np.float64)
    m = np.asarray(observed)
    if x.ndim != 2 or x.shape[1] != model.input_length:
        raise InputError(f"beats: expected shape [N, {model.input_length}], received {x.shape}")
    if m.shape != x.shape or m.dtype != bool:
        raise InputError(f"observed: expected a bool mask of shape {x.shape}, received {m.dtype} {m.shape}")
    need = model.latent_dim + 2
    short = np.flatnonzero(m.sum(axis=1) < need)
    if short.size:
        raise InputError(f"observed: expected >= {need} observed samples per beat (latent + gain + offset), "
                         f"received {int(m[short[0]].sum())} in beat {int(short[0])}")
    if not np.isfinite(x[m]).all():
        raise InputError("beats: expected finite values at the observed samples, received NaN/Inf")
    return np.where(m, x, 0.0), m


def interpolate_gaps(beats: object, observed: object) -> np.ndarray:
    """Each beat's hidden samples by straight lines between its observed neighbours (flat at the ends)."""
    x, m = np.asarray(beats, dtype=np.float64), np.asarray(observed, dtype=bool)
    t = np.arange(x.shape[1])
    return np.stack([np.interp(t, t[mi], xi[mi]) for xi, mi in zip(x, m)])


def affine_fit(d: np.ndarray, x: np.ndarray, m: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-beat least-squares gain a and offset b of x ~ a * d + b over the observed samples."""
    n = m.sum(axis=1)
    dm, xm = (d * m).sum(axis=1) / n, (x * m).sum(axis=1) / n
    dc = (d - dm[:, None]) * m
    a = (dc * (x - xm[:, None])).sum(axis=1) / np.maximum((dc * dc).sum(axis=1), 1e-12)
    return a, xm - a * dm


def _fit(model: Model, z: np.ndarray, x: np.ndarray, m: np.ndarray):
    """Decoded beats at z, their affine fit to the observed samples, and the masked squared error."""
    d = model.decode(z.astype(np.float32)).astype(np.float64)
    a, b = affine_fit(d, x, m)
    r = (x - a[:, None] * d - b[:, None]) * m
    return d, a, b, (r * r).sum(axis=1)


def fit_latents(model: Model, z: np.ndarray, x: np.ndarray, m: np.ndarray,
                iterations: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Refine latents z [N, k] so that a * decode(z) + b best fits x [N, L] where m is True: damped
    Gauss-Newton steps from z, each kept only where it lowers the masked error. Returns (z, decoded beats,
    a, b). Beats go through in chunks of ``CHUNK``, which bounds the memory the Jacobian probes take."""
    parts = [_fit_chunk(model, z[i : i + CHUNK], x[i : i + CHUNK], m[i : i + CHUNK], iterations)
             for i in range(0, len(x), CHUNK)]
    return tuple(np.concatenate(p) for p in zip(*parts))


def _fit_chunk(model: Model, z: np.ndarray, x: np.ndarray, m: np.ndarray, iterations: int):
    n, k = len(x), model.latent_dim
    z = np.asarray(z, np.float64)
    d, a, b, cost = _fit(model, z, x, m)
    damping = np.full(n, 1e-2)
    eye = np.eye(k)
    for _ in range(iterations):
        probes = z[:, None, :] + STEP * eye[None]  # [N, k, k]: z moved along each latent axis
        dk = model.decode(probes.reshape(n * k, k).astype(np.float32)).astype(np.float64).reshape(n, k, -1)
        jac = a[:, None, None] * (dk - d[:, None, :]) / STEP * m[:, None, :]  # [N, k, L]
        resid = (x - a[:, None] * d - b[:, None]) * m
        jtj = jac @ jac.transpose(0, 2, 1)
        lhs = jtj + damping[:, None, None] * (np.einsum("nii->ni", jtj)[:, :, None] * eye + 1e-9 * eye)
        step = np.linalg.solve(lhs, (jac @ resid[:, :, None]))[:, :, 0]
        d_new, a_new, b_new, cost_new = _fit(model, z + step, x, m)
        better = cost_new < cost
        z = np.where(better[:, None], z + step, z)
        d = np.where(better[:, None], d_new, d)
        a, b, cost = np.where(better, a_new, a), np.where(better, b_new, b), np.where(better, cost_new, cost)
        damping = np.where(better, damping / 3, damping * 4)
    return z, d, a, b


def fill_gaps(model: Model, beats: object, observed: object, iterations: int = 10) -> np.ndarray:
    """Beats [N, L] with the samples where ``observed`` is False completed by masked reconstruction.

    Observed samples are returned unchanged; the beats may be in any offset and scale (each beat's gain
    and offset are fitted), and the values at hidden samples are ignored.
    """
    x, m = _check(model, beats, observed)
    z = model.encode(normalise_beats(interpolate_gaps(x, m)))
    _, d, a, b = fit_latents(model, z, x, m, iterations)
    return np.where(m, x, a[:, None] * d + b[:, None])


def clean_mse(model: Model) -> float:
    """The model's reconstruction MSE on clean z-scored beats: its validation figure from training."""
    training = model.manifest.get("training")
    value = training.get("last_epoch", {}).get("val_recon") if isinstance(training, dict) else None
    if not isinstance(value, int | float) or not 0 <= value < np.inf:
        raise BundleError(f"bundle {model.bundle_dir}: expected training.last_epoch.val_recon (the validation "
                          f"reconstruction MSE) in the manifest, received {value!r}")
    return float(value)


def denoise(model: Model, windows: object, blend: bool = True) -> np.ndarray:
    """Filtered beat windows [N, L] (any offset and scale) -> denoised windows.

    The model's estimate is the beat's reconstruction at the gain a and offset b that best fit the window:
    what the model keeps of a beat is its shape. With ``blend`` the output weights the window and that
    estimate by their expected errors, as for two independent estimates: the model's is its validation MSE
    times a**2; the windows' noise power is what the residuals hold beyond that, one figure for the batch
    (the median over its beats: a recording's noise is steadier than the model's per-beat error). Clean
    windows are then kept nearly as they are, and noisy ones are replaced by the model's estimate.
    """
    x = np.asarray(windows, dtype=np.float64)
    if x.ndim != 2 or x.shape[1] != model.input_length or not np.isfinite(x).all():
        raise InputError(f"windows: expected finite values of shape [N, {model.input_length}], "
                         f"received {x.dtype} {x.shape}")
    d = model.reconstruct(normalise_beats(x)).astype(np.float64)
    a, b = affine_fit(d, x, np.ones(x.shape, bool))
    estimate = a[:, None] * d + b[:, None]
    if not blend:
        return estimate
    model_err = clean_mse(model) * a**2
    noise = max(float(np.median(((x - estimate) ** 2).mean(axis=1) - model_err)), 0.0)
    w = (model_err / np.maximum(model_err + noise, 1e-300))[:, None]
    return w * x + (1 - w) * estimate
