"""Proof that the generated C computes what the bundle computes: a driver (export/c/driver.c) runs it on
the bundle's reference beats and latents and prints every output bit for bit; the same outputs from
onnxruntime on the same graph files are the expectation. The host build (``make test``) and the emulated
Cortex-M4F build (``make mcu``) run the same driver.
"""

from __future__ import annotations

import shutil
import subprocess
from importlib import resources
from pathlib import Path

import numpy as np
import onnxruntime as ort

from ..runtime import bundle as bundle_io
from ..runtime.errors import EcgaeError
from ..runtime.io import atomic_write_bytes
from .c_graph import Constants
from .c_int8 import int8_section
from .emit_c import HEADER, SOURCE, emit_c

C_FLAGS = ("-std=c99", "-Wall", "-Wextra", "-Werror", "-O2")
FP32_ATOL = 1e-5  # |C - onnxruntime| on every output of every reference beat, FP32 graphs
OUTPUTS = ("z", "score", "score_z", "x_hat", "decode")


def driver_source() -> str:
    return resources.files("ecgae.export").joinpath("c/driver.c").read_text()


def reference_inputs(bundle_dir: Path, beats: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The bundle's reference beats [N, L] and latents [N, latent] (reference.npz, hash-checked)."""
    manifest = bundle_io.read_manifest(bundle_dir)
    ref = bundle_io.load_reference(bundle_dir, manifest)
    x = np.asarray(ref["x"], np.float32).reshape(len(ref["x"]), -1)
    z = np.asarray(ref["z_sample"], np.float32)
    return x[:beats], z[:beats]


def write_harness(bundle_dir: Path, out_dir: Path, beats: int | None = None, precision: str = "fp32") -> None:
    """ecgae_model.c/.h from the bundle, its reference inputs as C arrays, and the driver, into out_dir."""
    emit_c(bundle_dir, out_dir, precision=precision)
    x, z = reference_inputs(bundle_dir, beats)
    arrays = Constants("ecgae_ref_")
    rows = lambda a: ",\n".join("{" + arrays.literals(r) + "}" for r in a)  # noqa: E731
    source = "\n".join([
        '#include "ecgae_reference.h"',
        f"const float ecgae_ref_beats[{len(x)}][{x.shape[1]}] = {{\n{rows(x)}}};",
        f"const float ecgae_ref_latents[{len(z)}][{z.shape[1]}] = {{\n{rows(z)}}};",
        ""])
    header = "\n".join([
        "#ifndef ECGAE_REFERENCE_H", "#define ECGAE_REFERENCE_H",
        f"#define ECGAE_REF_BEATS {len(x)}", f"#define ECGAE_REF_LATENTS {len(z)}",
        f"extern const float ecgae_ref_beats[{len(x)}][{x.shape[1]}];",
        f"extern const float ecgae_ref_latents[{len(z)}][{z.shape[1]}];",
        "#endif", ""])
    atomic_write_bytes(out_dir / "ecgae_reference.c", source.encode())
    atomic_write_bytes(out_dir / "ecgae_reference.h", header.encode())
    atomic_write_bytes(out_dir / "driver.c", driver_source().encode())


def host_compiler() -> str | None:
    return shutil.which("gcc") or shutil.which("cc")


def build_host(out_dir: Path, cc: str) -> Path:
    """Compile the harness in out_dir with the host compiler, warnings as errors."""
    exe = out_dir / "ecgae_host"
    cmd = [cc, *C_FLAGS, "-I", str(out_dir), str(out_dir / SOURCE), str(out_dir / "ecgae_reference.c"),
           str(out_dir / "driver.c"), "-o", str(exe), "-lm"]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        raise EcgaeError(f"{cc} failed on the generated C ({HEADER}):\n{done.stderr[-4000:]}")
    return exe


def parse(text: str) -> tuple[dict[str, np.ndarray], list[list[int]]]:
    """The driver's printout -> outputs by name ([rows, n], from the hex of their bits) and cost lines."""
    values: dict[str, dict[int, np.ndarray]] = {}
    costs = []
    finished = False
    for line in text.splitlines():
        parts = line.split()
        if not parts:
            continue
        if parts[0] == "done":
            finished = True
        elif parts[0] == "error":
            raise EcgaeError(f"generated C returned error code {parts[3]} in {parts[1]} on row {parts[2]}")
        elif parts[0] == "cost":
            costs.append([int(p) for p in parts[1:]])
        elif parts[0] in OUTPUTS:
            words = parts[2:]
            dtype = np.float64 if parts[0] == "score" else np.float32
            bits = np.array([int(w, 16) for w in words], np.uint64 if dtype == np.float64 else np.uint32)
            values.setdefault(parts[0], {})[int(parts[1])] = bits.view(dtype)
    if not finished:
        raise EcgaeError(f"the driver stopped before its end; its last lines: {text[-500:]!r}")
    return {k: np.stack([rows[i] for i in sorted(rows)]) for k, rows in values.items()}, costs


def onnxruntime_outputs(bundle_dir: Path, beats: np.ndarray, latents: np.ndarray,
                        precision: str = "fp32") -> dict[str, np.ndarray]:
    """What the bundle's graphs of ``precision`` give in onnxruntime, keyed like :func:`parse` (INT8 has no
    score graph: its score is the runtime's, the MSE of the decoded latent in double)."""
    manifest = bundle_io.read_manifest(bundle_dir)
    graphs = manifest["graphs"] if precision == "fp32" else int8_section(bundle_dir, manifest)["graphs"]

    def run(name: str, feed: np.ndarray) -> list[np.ndarray]:
        path = bundle_io.verified_file(bundle_dir, graphs[name], f"graphs.{name}")
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        return session.run(None, {session.get_inputs()[0].name: feed})

    x = beats[:, None, :]
    z = run("encoder", x)[0]
    if "score" in graphs:
        score_z, x_hat, score = run("score", x)
    else:
        score_z, x_hat = z, run("decoder", z)[0]
        score = _mse(x_hat, x)
    decoded = run("decoder", latents)[0]
    return {"z": z, "score": score[:, None], "score_z": score_z, "x_hat": x_hat.reshape(len(x), -1),
            "decode": decoded.reshape(len(latents), -1)}


def torch_reference(bundle_dir: Path) -> dict[str, np.ndarray]:
    """The export-time torch outputs stored in reference.npz, keyed like :func:`parse`: what the bundle's
    INT8 tolerance is measured against."""
    manifest = bundle_io.read_manifest(bundle_dir)
    ref = bundle_io.load_reference(bundle_dir, manifest)
    primary = ref["z"] if "z" in ref else ref["mu"]
    x, x_hat = ref["x"], ref["x_hat"]
    return {"z": primary, "score": _mse(x_hat, x)[:, None], "score_z": primary,
            "x_hat": x_hat.reshape(len(x), -1), "decode": ref["x_sample"].reshape(len(x_hat), -1)}


def _mse(x_hat: np.ndarray, x: np.ndarray) -> np.ndarray:
    error = x_hat.astype(np.float64) - x
    return (error * error).mean(axis=(1, 2))


def differences(actual: dict[str, np.ndarray], expected: dict[str, np.ndarray]) -> dict[str, float]:
    """max |C - onnxruntime| per output; a missing or misshapen output is an error, not a number."""
    out = {}
    for name, want in expected.items():
        got = actual.get(name)
        if got is None or got.shape != want.shape:
            raise EcgaeError(f"generated C output {name!r}: expected shape {want.shape}, received "
                             f"{None if got is None else got.shape}")
        out[name] = float(np.abs(got.astype(np.float64) - want.astype(np.float64)).max())
    return out


def verdict(bundle_dir: Path, actual: dict[str, np.ndarray], precision: str = "fp32") -> dict:
    """The generated C's outputs judged: FP32 against onnxruntime on the same graphs (max abs <= 1e-5);
    INT8 against the export-time torch outputs within the tolerance the bundle recorded for its INT8 graphs
    (the criterion export certified them by), with its distance to onnxruntime's INT8 reported too."""
    beats, latents = reference_inputs(bundle_dir)
    out = {"precision": precision, "vs_onnxruntime": differences(actual, onnxruntime_outputs(bundle_dir, beats,
                                                                                            latents, precision))}
    if precision == "fp32":
        out |= {"atol": FP32_ATOL, "criterion": "max |C - onnxruntime|"}
        worst = max(out["vs_onnxruntime"].values())
    else:
        manifest = bundle_io.read_manifest(bundle_dir)
        out |= {"vs_torch": differences(actual, torch_reference(bundle_dir)),
                "atol": float(int8_section(bundle_dir, manifest)["parity"]["atol"]),
                "criterion": "max |C - torch| (the bundle's INT8 tolerance)"}
        worst = max(v for k, v in out["vs_torch"].items() if k != "score")  # export checks z and x_hat, not score
    return out | {"worst": worst, "passed": worst <= out["atol"]}


def run_host(work_dir: Path, cc: str) -> dict[str, np.ndarray]:
    """Compile and run the harness in work_dir on this machine; its outputs."""
    exe = build_host(work_dir, cc)
    done = subprocess.run([str(exe)], capture_output=True, text=True, timeout=120)
    if done.returncode != 0:
        raise EcgaeError(f"the host build of the generated C exited with {done.returncode}: {done.stdout[-500:]}")
    return parse(done.stdout)[0]


def host_parity(bundle_dir: Path, work_dir: Path, cc: str, precision: str = "fp32") -> dict:
    """Generate, compile and run the bundle's C on this machine, and judge it (:func:`verdict`)."""
    write_harness(bundle_dir, work_dir, precision=precision)
    return verdict(bundle_dir, run_host(work_dir, cc), precision)
