"""A trained run -> a deployable bundle (docs/bundle.md), certified by parity and written atomically.

The bundle is assembled in a hidden temp folder next to ``out_dir`` and renamed into place only after
every graph exported, checked and passed parity, so a failure leaves nothing behind and never touches
an existing good bundle.
"""

from __future__ import annotations

import copy
import ctypes
import errno
import hashlib
import io
import json
import math
import os
import platform
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

import numpy as np
import onnx
import onnxruntime
import torch
from torch import nn

from ..runtime.bundle import FORMAT, FORMAT_VERSION, MANIFEST, SEAL
from ..runtime.errors import EcgaeError, InputError
from ..runtime.io import atomic_write_bytes
from ..runtime.preprocess import Preprocessing
from ..runtime.restore import calibrate_denoising, own_part
from ..runtime.seal import seal
from ..training.datasets import load_beats
from ..training.train import load_model, read_run_json, reconstruct
from .conv2d import as_2d
from .fold import fold_batchnorm
from .graphs import (
    ENCODER_OUTPUTS,
    MIN_ONNXRUNTIME,
    SCORE_OUTPUTS,
    DecoderGraph,
    EncoderGraph,
    ScoreGraph,
    check_opset,
    pinned_ir_version,
    to_onnx,
)
from .macs import graph_macs
from .parity import bundle_parity, format_table

N_PARITY = 256  # held-out beats and N(0, I) latents compared at export
N_REFERENCE = 32  # of each, stored in reference.npz
LATENT_SEED = 0


class ParityError(EcgaeError):
    """ONNX Runtime does not reproduce torch within tolerance: the bundle is not written."""


def reference_model(model: nn.Module) -> nn.Module:
    """The parity reference: the unfused eval model running the chapter's literal decoder, if it has one."""
    ref = copy.deepcopy(model).eval()
    if hasattr(ref, "literal"):
        ref.literal = True
    return ref


@torch.no_grad()
def torch_outputs(model: nn.Module, kind: str, beats: np.ndarray, latents: np.ndarray) -> dict[str, np.ndarray]:
    """torch outputs keyed like :func:`ecgae.export.parity.bundle_outputs`, for beats [N,1,L] and latents."""
    enc = model.encode(torch.from_numpy(beats))
    enc = enc if isinstance(enc, tuple) else (enc,)
    out = {f"encoder.{name}": t.numpy() for name, t in zip(ENCODER_OUTPUTS[kind], enc)}
    out["decoder.x_hat"] = model.decode(torch.from_numpy(latents)).numpy()
    out["reconstruct.x_hat"] = model.decode(enc[0]).numpy()
    return out


def score_outputs(expected: dict[str, np.ndarray], kind: str, beats: np.ndarray) -> dict[str, np.ndarray]:
    """The score graph's expected outputs, from torch's: its latent and reconstruction, and the per-beat
    MSE of that reconstruction taken in float64."""
    primary, x_hat = ENCODER_OUTPUTS[kind][0], expected["reconstruct.x_hat"]
    error = x_hat.astype(np.float64) - beats
    return {f"score.{primary}": expected[f"encoder.{primary}"], "score.x_hat": x_hat,
            "score.score": (error * error).mean(axis=(1, 2))}


def _load_run(run: Path) -> tuple[nn.Module, dict, dict, np.ndarray, np.ndarray]:
    """Model, config, metrics summary, held-out beats [N,1,L] (the run's test split) and validation beats
    [M,L] (its val split) of a run directory."""
    if not run.is_dir():
        raise InputError(f"run directory: expected an existing folder, received {str(run)!r} (not found)")
    try:
        model, cfg = load_model(run)
        kind, data, length = cfg["train"]["model"], cfg["train"]["data"], cfg["train"]["length"]
        split = read_run_json(run, "split.json")
        metrics = read_run_json(run, "metrics.json")
        summary = {"anomaly": metrics["anomaly"], "last_epoch": metrics["epochs"][-1],
                   "test_recon_mse": metrics["test_recon_mse"]}
    except KeyError as e:
        raise InputError(f"run {run}: expected key {e} in its config.json/split.json/metrics.json, missing") from None
    except IndexError:
        raise InputError(f"run {run}: metrics.json: expected at least one epoch, received none") from None
    except InputError:
        raise
    except ValueError as e:  # model construction refusing the config (unknown arch, bad length)
        raise InputError(f"run {run}: {e}") from None
    missing = [key for key in ("length", "source", "normal_label", "preprocessing") if key not in cfg]
    if missing:
        raise InputError(f"run {run}: expected keys {missing} in config.json, missing")
    if kind not in ENCODER_OUTPUTS:
        raise InputError(f"run {run}: expected model kind in {sorted(ENCODER_OUTPUTS)}, received {kind!r}")
    beats = load_beats(data, length).beats
    if beats.shape[1] != cfg["length"]:
        raise InputError(f"run {run}: data {data!r} gives beats of length {beats.shape[1]}, "
                         f"expected L={cfg['length']} from config.json")
    test, val = (_split_rows(run, split, key, len(beats)) for key in ("test", "val"))
    return model, cfg, summary, beats[test[:N_PARITY], None, :], beats[val]


def _split_rows(run: Path, split: dict, key: str, n: int) -> np.ndarray:
    """The row indices of one part of a run's split.json, checked against the data's ``n`` rows."""
    if key not in split:
        raise InputError(f"run {run}: expected key {key!r} in its split.json, missing")
    try:
        rows = np.asarray(split[key], dtype=np.int64)
    except (TypeError, ValueError, OverflowError):
        rows = None
    if rows is None or rows.ndim != 1:
        raise InputError(f"run {run}: split.json {key} indices: expected a list of integers, received "
                         f"{split[key]!r:.60}")
    if len(rows) == 0 or rows.min() < 0 or rows.max() >= n:
        raise InputError(f"run {run}: split.json {key} indices: expected a non-empty subset of 0..{n - 1}, "
                         f"received {len(rows)} indices" + (f" in {rows.min()}..{rows.max()}" if len(rows) else ""))
    return rows


def _check_target(out: Path, force: bool) -> None:
    if out.is_file() or out.is_symlink():
        raise InputError(f"--out: expected a folder for the bundle, received an existing file or link {str(out)!r}")
    if out.is_dir():
        if not force:
            raise InputError(f"--out: {str(out)!r} already exists; expected a new folder (pass --force to replace it)")
        if any(out.iterdir()) and not (out / "manifest.json").is_file():
            raise InputError(f"--out --force: expected an existing bundle (a folder with manifest.json) to replace, "
                             f"received {str(out)!r}, which is not one; refusing to delete it")


@contextmanager
def _staging(out: Path) -> Iterator[Path]:
    """Yield an empty temp folder next to ``out``; on success it replaces ``out``, on failure it is removed
    together with any parent folder this call created."""
    parent = out.absolute().parent
    created = next((p for p in reversed([parent, *parent.parents]) if not p.exists()), None)
    try:
        parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=parent, prefix=f".{out.name}.", suffix=".tmp"))
    except OSError as e:
        if created is not None:
            shutil.rmtree(created, ignore_errors=True)
        raise InputError(f"--out: expected a writable folder for {str(out)!r}, received {parent} "
                         f"({e.strerror or e})") from None
    try:
        yield tmp
        os.chmod(tmp, 0o755)
        _replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        if created is not None:
            shutil.rmtree(created, ignore_errors=True)
        raise


def _replace(new: Path, out: Path) -> None:
    """Rename ``new`` to ``out``; an existing ``out`` is moved aside first and restored if that fails."""
    if not out.exists():
        os.rename(new, out)
        return
    if _exchange(new, out):  # one atomic step: a kill at any instant leaves the old or the new bundle
        shutil.rmtree(new, ignore_errors=True)
        return
    old = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.", suffix=".old"))
    try:
        os.rename(out, old / "bundle")
        try:
            os.rename(new, out)
        except BaseException:
            os.rename(old / "bundle", out)
            raise
    except BaseException:
        with suppress(OSError):
            old.rmdir()  # empty once the old bundle is back in place; never deletes it
        raise
    shutil.rmtree(old, ignore_errors=True)


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths atomically with Linux's renameat2(RENAME_EXCHANGE); False where it is unavailable."""
    try:
        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd, rename_exchange = -100, 2
    if renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP):
        return False
    raise OSError(err, os.strerror(err), os.fsdecode(b))


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _versions() -> dict[str, str]:
    return {"ecgae": metadata.version("ecgae"), "torch": torch.__version__, "onnx": onnx.__version__,
            "onnxruntime": onnxruntime.__version__, "numpy": np.__version__, "python": platform.python_version()}


def _graph_metadata(model_section: dict, sample_rate: float | None, graph: str,
                    precision: str = "fp32") -> dict[str, str]:
    """Key manifest fields as strings (JSON for non-strings), so a bare .onnx file describes itself."""
    fields = {"format_version": FORMAT_VERSION, "kind": model_section["kind"], "arch": model_section["arch"],
              "input_length": model_section["input_length"], "latent_dim": model_section["latent_dim"],
              "sample_rate": sample_rate, "decoder_graph": model_section["decoder_graph"], "graph": graph,
              "precision": precision}
    return {k: v if isinstance(v, str) else json.dumps(v) for k, v in fields.items()}


def _npz_bytes(arrays: dict[str, np.ndarray]) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def export_run(run_dir: str | os.PathLike, out_dir: str | os.PathLike, *, naive: bool = False, atol: float = 1e-4,
               force: bool = False, opset: int = 17, int8: bool = False, ort: bool = False,
               log: Callable[..., object] = print) -> dict:
    """Export a run to a bundle in ``out_dir`` and return its manifest.

    ``naive`` exports the chapter's literal seed decoder instead of the exact tiled rewrite (for
    benchmarks). Raises :class:`ParityError` (nothing written) when onnxruntime and torch differ by more
    than ``atol``; ``force`` replaces an existing bundle, only once the new one is complete and certified.
    ``int8`` adds static INT8 QDQ graphs, ``ort`` adds ``.ort`` files and a minimal-build config (``variants``).
    """
    run, out = Path(run_dir), Path(out_dir)
    if not (isinstance(atol, (int, float)) and math.isfinite(atol) and atol > 0):
        raise InputError(f"--atol: expected a finite number > 0, received {atol!r}")
    check_opset(opset)
    _check_target(out, force)
    model, cfg, summary, beats, val_beats = _load_run(run)
    kind, arch, length, latent = cfg["train"]["model"], cfg["train"]["arch"], cfg["length"], cfg["train"]["latent_dim"]
    has_literal = hasattr(model, "literal")
    if naive and not has_literal:
        raise InputError(f"--naive: expected a seed-arch run (the only decoder with a literal form), "
                         f"received arch {arch!r}")
    section = {"kind": kind, "arch": arch, "input_length": length, "latent_dim": latent,
               "decoder_graph": "literal" if naive else "rewritten"}
    prep = cfg["preprocessing"]

    deployed = fold_batchnorm(model)
    deployed.encoder = as_2d(deployed.encoder)
    if has_literal:
        deployed.literal = naive
    log(f"Exporting {kind}/{arch} (L={length}, latent={latent}, {section['decoder_graph']} decoder), opset {opset}")
    enc_outputs = ENCODER_OUTPUTS[kind]
    graphs = {
        "encoder": to_onnx(EncoderGraph(deployed), torch.zeros(3, 1, length), "x", enc_outputs, opset,
                           _graph_metadata(section, prep["sample_rate"], "encoder")),
        "decoder": to_onnx(DecoderGraph(deployed), torch.zeros(3, latent), "z", ("x_hat",), opset,
                           _graph_metadata(section, prep["sample_rate"], "decoder")),
        "score": to_onnx(ScoreGraph(deployed), torch.zeros(3, 1, length), "x", SCORE_OUTPUTS[kind], opset,
                         _graph_metadata(section, prep["sample_rate"], "score")),
    }
    latents = np.random.default_rng(LATENT_SEED).standard_normal((N_PARITY, latent)).astype(np.float32)
    ref = reference_model(model)
    expected = torch_outputs(ref, kind, beats, latents)
    expected |= score_outputs(expected, kind, beats)
    taps = prep["filter"]["taps"] if prep.get("filter") else None
    denoising = calibrate_denoising(lambda x: reconstruct(ref, np.asarray(x, np.float32)), val_beats,
                                    None if taps is None else np.asarray(taps, np.float64),
                                    own_part(Preprocessing.from_dict(prep)))
    reference = {"x": beats[:N_REFERENCE],
                 **{name: expected[f"encoder.{name}"][:N_REFERENCE] for name in enc_outputs},
                 "x_hat": expected["reconstruct.x_hat"][:N_REFERENCE],
                 "z_sample": latents[:N_REFERENCE], "x_sample": expected["decoder.x_hat"][:N_REFERENCE]}
    macs = {name: graph_macs(data) for name, data in graphs.items()}
    literal_macs = macs["decoder"]
    if has_literal and not naive:  # count the chapter's form too, from its own graph
        literal = copy.deepcopy(deployed)
        literal.literal = True
        literal_macs = graph_macs(to_onnx(DecoderGraph(literal), torch.zeros(3, latent), "z", ("x_hat",), opset, {}))

    with _staging(out) as tmp:
        for name, data in graphs.items():
            atomic_write_bytes(tmp / f"{name}.onnx", data)
        parity, failures = bundle_parity(tmp / "encoder.onnx", tmp / "decoder.onnx", beats, latents, expected, atol,
                                         score=tmp / "score.onnx")
        log(format_table(parity))
        if failures:
            raise ParityError(f"parity failed (atol {atol:g}, {len(failures)} output(s)): " + "; ".join(failures))
        reference_bytes = _npz_bytes(reference)
        atomic_write_bytes(tmp / "reference.npz", reference_bytes)
        manifest = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "created_utc": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "model": section,
            "graphs": {
                "encoder": {"file": "encoder.onnx", "sha256": _sha256(graphs["encoder"]), "precision": "fp32",
                            "format": "onnx", "bytes": len(graphs["encoder"]), "inputs": ["x"],
                            "outputs": list(enc_outputs), "macs_per_beat": macs["encoder"]},
                "decoder": {"file": "decoder.onnx", "sha256": _sha256(graphs["decoder"]), "precision": "fp32",
                            "format": "onnx", "bytes": len(graphs["decoder"]), "inputs": ["z"],
                            "outputs": ["x_hat"], "macs_per_beat": macs["decoder"],
                            "macs_per_beat_literal": literal_macs},
                "score": {"file": "score.onnx", "sha256": _sha256(graphs["score"]), "precision": "fp32",
                          "format": "onnx", "bytes": len(graphs["score"]), "inputs": ["x"],
                          "outputs": list(SCORE_OUTPUTS[kind]), "macs_per_beat": macs["score"]},
            },
            "reference": {"file": "reference.npz", "sha256": _sha256(reference_bytes)},
            "onnx": {"opset": opset, "ir_version": pinned_ir_version(opset), "min_onnxruntime": MIN_ONNXRUNTIME},
            "preprocessing": prep,
            "normal_label": cfg["normal_label"],
            "anomaly": summary["anomaly"],
            "training": {"config": cfg["train"], "source": cfg["source"], "last_epoch": summary["last_epoch"],
                         "test_recon_mse": summary["test_recon_mse"], "denoising": denoising},
            "parity": {**parity, "n_beats": len(beats), "n_latents": len(latents)},
            "versions": _versions(),
        }
        if int8 or ort:  # the variants hold the encoder and decoder; the one-call score graph stays FP32 .onnx
            sources = {name: graphs[name] for name in ("encoder", "decoder")}
            if int8:  # the 1-D encoder quantizes to faster INT8 kernels than the 2-D one (docs/bundle.md)
                sources["encoder"] = to_onnx(EncoderGraph(fold_batchnorm(model)), torch.zeros(3, 1, length), "x",
                                             enc_outputs, opset, {})
            _add_variants(tmp, run, cfg, sources, manifest, (beats, latents, expected), int8, ort,
                          lambda name: _graph_metadata(section, prep["sample_rate"], name, "int8"), log)
        sealed = seal(manifest, SEAL)
        atomic_write_bytes(tmp / MANIFEST, sealed)
        manifest = json.loads(sealed)
    log(f"Wrote {out}: encoder {macs['encoder']:,} MACs/beat, decoder {macs['decoder']:,} MACs/beat "
        f"(literal form {literal_macs:,})")
    return manifest


def _add_variants(tmp: Path, run: Path, cfg: dict, graphs: dict[str, bytes], manifest: dict, data: tuple,
                  int8: bool, ort: bool, metadata: Callable[[str], dict[str, str]], log: Callable[..., object]) -> None:
    """Write the INT8 and/or .ort graphs into ``tmp`` and record them in ``manifest["variants"]``; ``graphs``
    are the FP32 graphs to quantize."""
    from .edge import add_int8, add_ort  # onnxruntime.quantization and .tools load only when asked for

    variants: dict = {}
    if int8:
        variants["int8"] = add_int8(tmp, run, cfg, graphs, manifest, *data, metadata, log)
    if ort:
        ort_variants, manifest["ort_build"] = add_ort(tmp, manifest, variants, *data, log)
        variants |= ort_variants
    manifest["variants"] = variants
