"""Restoring beats with the model: completing missing stretches (lead dropout, saturation) and denoising.

Gap filling: the hidden samples are taken from the decoded beat a * decode(z) + b whose latent z (and offset b, gain a)
best explain the observed samples: masked reconstruction. z starts at the encoding of the beat with its
gaps bridged by straight lines and is refined by a few damped Gauss-Newton (Levenberg-Marquardt) steps,
the Jacobian by finite differences through the decoder graph, so it needs nothing but onnxruntime.
Denoising: the beat's reconstruction, put back at the gain and offset that best fit the noisy window, blended
with the window by weights measured at export (``calibrate_denoising``). The model knows the beats it was
trained on; a beat it cannot reproduce (a ventricular beat, say) keeps its window, and such beats do not
count towards the batch's noise level.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from .errors import BundleError, InputError
from .model import Model
from .preprocess import Preprocessing, fir_filter, normalise_beats
from .robust import typical

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
    and offset are fitted), and the values at hidden samples are ignored. A beat whose observed samples in
    its own part the model fits worse than 99 % of clean validation beats (the calibration's clean
    ``unlike``) is one it cannot reproduce, as a ventricular beat is to a model of normal ones: its gaps
    are bridged by straight lines instead of a normal-shaped fill. Bundles without a denoising calibration
    fill every beat from the model.
    """
    x, m = _check(model, beats, observed)
    linear = interpolate_gaps(x, m)
    z = model.encode(normalise_beats(linear))
    _, d, a, b = fit_latents(model, z, x, m, iterations)
    fit, cal = a[:, None] * d + b[:, None], _calibration(model)
    if cal is not None:
        own = np.zeros(m.shape, bool)
        own[:, cal["own"]] = True
        seen = np.where((m & own).any(axis=1, keepdims=True), m & own, m)  # the own part all hidden: all observed
        power = ((x - fit) ** 2 * seen).sum(axis=1) / seen.sum(axis=1) / np.maximum(a * a, 1e-300)
        fit = np.where((power > cal["unlike"][0])[:, None], linear, fit)
    return np.where(m, x, fit)


def clean_mse(model: Model) -> float:
    """The model's reconstruction MSE on clean z-scored beats: its validation figure from training."""
    training = model.manifest.get("training")
    value = training.get("last_epoch", {}).get("val_recon") if isinstance(training, dict) else None
    if not isinstance(value, int | float) or not 0 <= value < np.inf:
        raise BundleError(f"bundle {model.bundle_dir}: expected training.last_epoch.val_recon (the validation "
                          f"reconstruction MSE) in the manifest, received {value!r}")
    return float(value)


CALIBRATION_LEVELS = (0.0, *(10.0 ** np.arange(-3.0, 1.01, 0.5)))  # added noise power, z-scored beats (power 1)
CLEAN_QUANTILE = 0.9  # residuals up to this quantile of clean validation beats' count as the model's own error
UNLIKE_QUANTILE = 0.99  # a beat above this quantile of beats at the batch's noise level is one the model cannot
# reproduce: its window is kept
OWN_S = (0.2, 0.35)  # seconds before and after R whose residual measures noise: the window's ends hold the
# neighbouring beats, which a premature or ventricular neighbour makes unlike anything the model saw
CALIBRATION_SEED = 0


def own_part(prep: Preprocessing) -> slice:
    """The samples of a window that belong to its own beat (OWN_S around R); the whole window for pre-cut beats."""
    if prep.sample_rate is None or prep.pre is None:
        return slice(0, prep.length)
    before, after = (int(round(s * prep.sample_rate)) for s in OWN_S)
    return slice(max(prep.pre - before, 0), min(prep.pre + after, prep.length))


def _estimate(reconstruct: Callable[[np.ndarray], np.ndarray], x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The model's estimate of windows x [N, L] (reconstruction at the least-squares gain a and offset b)
    and the squared gains a**2, which take the reconstruction's (z-scored) units to the window's."""
    d = np.asarray(reconstruct(normalise_beats(x)), dtype=np.float64)
    a, b = affine_fit(d, x, np.ones(x.shape, bool))
    return a[:, None] * d + b[:, None], a * a


def _residual_power(x: np.ndarray, estimate: np.ndarray, a2: np.ndarray, part: slice = slice(None)) -> np.ndarray:
    """Each window's residual power over ``part`` in the reconstruction's units: mean((x - estimate)**2) / a**2."""
    return ((x - estimate)[:, part] ** 2).mean(axis=1) / np.maximum(a2, 1e-300)


def calibrate_denoising(reconstruct: Callable[[np.ndarray], np.ndarray], beats: np.ndarray,
                        taps: np.ndarray | None, own: slice = slice(None)) -> dict:
    """The blend weights ``denoise`` uses, measured on clean z-scored beats [N, L] (validation beats).

    White noise, band-passed by ``taps`` as the runtime filters a recording, is added at each of
    ``CALIBRATION_LEVELS``; for each level this records the median and the UNLIKE_QUANTILE of the windows'
    residual powers over their ``own`` part (what ``denoise`` can observe) and, per sample, the weight
    w_j = <(s - e)(x - e)> / <(x - e)**2> of the window x against the estimate e that minimises the error
    against the clean beat s. It covers what an assumed error cannot: the model's error differs along the
    window, and noise leaks into the estimate."""
    s = np.asarray(beats, dtype=np.float64)
    n, length = s.shape
    pad = 2 * len(taps) if taps is not None else 0  # filter edges left out
    white = np.random.default_rng(CALIBRATION_SEED).standard_normal(n * length + 2 * pad)
    if taps is not None:
        white = fir_filter(white, taps)[pad : pad + n * length]
    white = (white / white.std()).reshape(n, length)
    residual, unlike, weights, clean = [], [], [], None
    for level in CALIBRATION_LEVELS:
        x = s + np.sqrt(level) * white
        e, a2 = _estimate(reconstruct, x)
        power = _residual_power(x, e, a2, own)
        clean = power if clean is None else clean
        r = x - e
        residual.append(float(np.median(power)))
        unlike.append(float(np.quantile(power, UNLIKE_QUANTILE)))
        weights.append(np.clip(((s - e) * r).sum(axis=0) / np.maximum((r * r).sum(axis=0), 1e-300), 0.0, 1.0))
    # a level whose residual is no larger than a lower one's cannot be told from it: the lower one stands
    keep = np.asarray(residual) > np.maximum.accumulate([-np.inf, *residual[:-1]])
    return {"noise": "white, band-passed by the bundle's filter", "beats": n,
            "own": [own.start or 0, length if own.stop is None else own.stop],
            "levels": np.asarray(CALIBRATION_LEVELS)[keep].tolist(), "residual": np.asarray(residual)[keep].tolist(),
            "unlike": np.asarray(unlike)[keep].tolist(), "clean_residual": float(np.quantile(clean, CLEAN_QUANTILE)),
            "weights": np.round(np.stack(weights)[keep], 4).tolist()}


def _calibration(model: Model) -> dict | None:
    """The manifest's denoising calibration, checked; None for bundles exported without one."""
    training = model.manifest.get("training")
    cal = training.get("denoising") if isinstance(training, dict) else None
    if cal is None:
        return None
    if "unlike" not in cal or "own" not in cal:
        raise BundleError(f"bundle {model.bundle_dir}: training.denoising: calibrated before denoising kept the "
                          "beats the model cannot reproduce; export the run again")
    try:
        residual, weights = np.asarray(cal["residual"], np.float64), np.asarray(cal["weights"], np.float64)
        unlike, clean = np.asarray(cal["unlike"], np.float64), float(cal["clean_residual"])
        start, stop = (int(i) for i in cal["own"])
    except (KeyError, TypeError, ValueError):
        residual = weights = unlike = None
        start = stop = 0
    if (residual is None or residual.ndim != 1 or weights.shape != (residual.size, model.input_length)
            or residual.size < 2 or not (np.diff(residual) > 0).all() or not np.isfinite(weights).all()
            or unlike.shape != residual.shape or not (unlike >= residual).all() or not np.isfinite(clean)
            or not 0 <= start < stop <= model.input_length):
        raise BundleError(f"bundle {model.bundle_dir}: training.denoising: expected increasing residual powers, "
                          f"their upper quantiles, one row of {model.input_length} weights per noise level and an "
                          "own part inside the window, received a malformed section")
    return {"residual": residual, "unlike": unlike, "weights": weights, "clean": clean, "own": slice(start, stop)}


def denoise(model: Model, windows: object, blend: bool = True) -> np.ndarray:
    """Filtered beat windows [N, L] (any offset and scale) -> denoised windows.

    The model's estimate is the beat's reconstruction at the gain a and offset b that best fit the window:
    what the model keeps of a beat is its shape. With ``blend`` the output is window x estimate blended
    per sample by the weights measured at export (``calibrate_denoising``) for the noise the batch shows:
    the median residual power over its beats' own parts (a recording's noise is steadier than the model's
    per-beat error), less the spread of clean beats' residuals (up to the 90th percentile of clean
    validation beats, a residual is the model's own error: such batches are returned as they are). Beats
    the model cannot reproduce are left out of that median (``robust.typical``) and keep their window: those
    above the UNLIKE_QUANTILE of beats at that noise level, as a ventricular beat is to a model of normal
    ones, whose estimate would be a normal beat in its place. Bundles without a calibration blend with one
    weight per beat, model error = validation MSE x a**2 against the residual power beyond it.
    """
    x = np.asarray(windows, dtype=np.float64)
    if x.ndim != 2 or x.shape[1] != model.input_length or not np.isfinite(x).all():
        raise InputError(f"windows: expected finite values of shape [N, {model.input_length}], "
                         f"received {x.dtype} {x.shape}")
    estimate, a2 = _estimate(model.reconstruct, x)
    if not blend:
        return estimate
    cal = _calibration(model)
    if cal is None:
        model_err = clean_mse(model) * a2
        noise = max(float(np.median(((x - estimate) ** 2).mean(axis=1) - model_err)), 0.0)
        w = (model_err / np.maximum(model_err + noise, 1e-300))[:, None]
    else:
        r, own = cal["residual"], _residual_power(x, estimate, a2, cal["own"])
        seen = max(float(np.median(own[typical(own)])) - (cal["clean"] - r[0]), r[0])
        w = np.array([np.interp(seen, r, column) for column in cal["weights"].T])[None, :]
        w = np.where((own > np.interp(seen, r, cal["unlike"]))[:, None], 1.0, w)
    return w * x + (1 - w) * estimate
