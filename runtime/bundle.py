"""Reading and verifying a bundle (docs/bundle.md): refuse unknown formats and tampered files up front,
so that nothing downstream ever runs a graph the manifest does not vouch for."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np

from . import files
from .errors import BundleError, InputError, describe
from .preprocess import Preprocessing
from .seal import check_seal

FORMAT = "ecgae-bundle"
FORMAT_VERSION = 2  # 2: manifest.json sealed by the sha256 of its own bytes (field SEAL)
LEGACY_VERSIONS = (1,)  # unsealed manifests, still loaded; Model.sealed and `ecgae info` say so
MANIFEST = "manifest.json"
SEAL = "manifest_sha256"
KINDS = ("ae", "vae")
PRECISIONS = ("fp32", "int8")
GRAPH_FORMATS = ("onnx", "ort")


def sha256_file(path: str | os.PathLike, name: str = "file") -> str:
    """Hex sha256 of a file, read in blocks so large graphs need no extra memory."""
    h = hashlib.sha256()
    with files.open_regular(path, name, BundleError) as f:
        try:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
        except OSError as e:
            raise BundleError(f"{name}: cannot read {files.shown(path)!r} ({e.strerror or e})") from None
    return h.hexdigest()


def _field(manifest: dict, dotted: str, kind: type, bundle: Path):
    """``manifest[a][b]...`` of the given type, or a BundleError naming the field."""
    value: object = manifest
    for key in dotted.split("."):
        if not isinstance(value, dict) or key not in value:
            raise BundleError(f"bundle {bundle}: {MANIFEST} lacks the field {dotted!r}")
        value = value[key]
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is int):
        raise BundleError(f"bundle {bundle}: {MANIFEST} field {dotted!r}: expected "
                          f"{kind.__name__}, received {value!r}")
    return value


def read_manifest(bundle_dir: str | os.PathLike) -> dict:
    """Parse and check ``manifest.json``: known format and version, its seal (format 2), the model and graph
    fields present."""
    bundle = Path(bundle_dir)
    if not bundle.is_dir() or not os.path.lexists(bundle / MANIFEST):
        what = "not a folder" if not bundle.is_dir() else f"no {MANIFEST} in it"
        raise BundleError(f"bundle: expected a folder holding {MANIFEST}, received {files.shown(bundle)!r} ({what})")
    raw = files.read_bytes(bundle / MANIFEST, f"bundle {files.shown(bundle)}: {MANIFEST}", files.MAX_JSON_BYTES,
                           BundleError)
    name = f"bundle {files.shown(bundle)}: {MANIFEST}"
    manifest = files.parse_json(raw, name, BundleError)
    if not isinstance(manifest, dict):
        raise BundleError(f"{name}: expected a JSON object, received {type(manifest).__name__}")
    fmt, version = manifest.get("format"), manifest.get("format_version")
    if fmt != FORMAT or type(version) is not int or version not in (FORMAT_VERSION, *LEGACY_VERSIONS):
        raise BundleError(f"bundle {files.shown(bundle)}: expected format {FORMAT!r} version "
                          f"{' or '.join(map(str, (FORMAT_VERSION, *LEGACY_VERSIONS)))}, received format {fmt!r} "
                          f"version {version!r}; export the model again with this ecgae or install the ecgae "
                          "version that wrote it")
    if not check_seal(raw, manifest, SEAL, name, BundleError) and version == FORMAT_VERSION:
        raise BundleError(f"{name}: expected the seal {SEAL!r} that every version {FORMAT_VERSION} manifest "
                          "carries, received none; the file was modified")
    kind = _field(manifest, "model.kind", str, bundle)
    if kind not in KINDS:
        raise BundleError(f"bundle {bundle}: model.kind: expected one of {KINDS}, received {kind!r}")
    for dotted in ("model.input_length", "model.latent_dim"):
        if (size := _field(manifest, dotted, int, bundle)) < 1:
            raise BundleError(f"bundle {bundle}: {dotted}: expected >= 1, received {size}")
    _check_graphs(manifest, "graphs", bundle)
    return manifest


def _check_graphs(manifest: dict, prefix: str, bundle: Path) -> None:
    """The encoder, decoder and (optional) score entries under ``prefix``: file, sha256, input/output names."""
    graphs = _field(manifest, prefix, dict, bundle)
    for graph in ("encoder", "decoder", *(["score"] if "score" in graphs else [])):
        for key in ("file", "sha256"):
            _field(manifest, f"{prefix}.{graph}.{key}", str, bundle)
        for key in ("inputs", "outputs"):
            names = _field(manifest, f"{prefix}.{graph}.{key}", list, bundle)
            if not names or not all(isinstance(n, str) for n in names):
                raise BundleError(f"bundle {bundle}: {prefix}.{graph}.{key}: expected a non-empty list of "
                                  f"names, received {names!r}")


def variant_key(precision: str, graph_format: str) -> str | None:
    """The manifest's ``variants`` key of a precision and format (None: the FP32 .onnx ``graphs``), or an
    InputError naming the unknown value."""
    if precision not in PRECISIONS:
        raise InputError(f"precision: expected one of {PRECISIONS}, received {precision!r}")
    if graph_format not in GRAPH_FORMATS:
        raise InputError(f"graph_format: expected one of {GRAPH_FORMATS}, received {graph_format!r}")
    parts = [p for p in (precision, graph_format) if p not in ("fp32", "onnx")]
    return "_".join(parts) or None


def variant(manifest: dict, bundle_dir: str | os.PathLike, precision: str = "fp32",
            graph_format: str = "onnx") -> dict:
    """The section describing one precision and format: ``graphs`` (encoder, decoder), ``parity`` and
    ``anomaly``; the manifest's own for FP32 .onnx, else its ``variants`` entry (bundles exported with
    ``--int8`` and/or ``--ort``). BundleError when the bundle does not hold that variant."""
    key, bundle = variant_key(precision, graph_format), Path(bundle_dir)
    if key is None:
        return manifest
    held = manifest.get("variants") if isinstance(manifest.get("variants"), dict) else {}
    if key not in held:
        flag = {"int8": "--int8", "ort": "--ort", "int8_ort": "--int8 --ort"}[key]
        raise BundleError(f"bundle {bundle}: expected {precision} graphs in {graph_format} format (variants.{key}), "
                          f"received a bundle holding {['fp32', *held] if held else ['fp32']}; "
                          f"export it with 'ecgae export RUN {flag}'")
    _check_graphs(manifest, f"variants.{key}.graphs", bundle)
    return held[key]


def preprocessing(manifest: dict, bundle_dir: str | os.PathLike) -> Preprocessing:
    """The bundle's Preprocessing, refusing specs that would silently produce wrong beats; a malformed spec
    is the bundle's fault, so it is a BundleError."""
    try:
        prep = Preprocessing.from_dict(_field(manifest, "preprocessing", dict, Path(bundle_dir)))
    except ValueError as e:  # InputError from from_dict, or a value float()/int() could not convert
        raise BundleError(f"bundle {bundle_dir}: {MANIFEST} preprocessing: {e}") from None
    taps = prep.taps
    problems = {
        "window.length": (prep.length, prep.length == manifest["model"]["input_length"],
                          f"the model's input length {manifest['model']['input_length']}"),
        "sample_rate": (prep.sample_rate, prep.sample_rate is None or 0 < prep.sample_rate < np.inf,
                        "null or a finite rate > 0"),
        "window.pre": (prep.pre, prep.pre is None or 0 <= prep.pre < prep.length, f"null or 0 <= pre < {prep.length}"),
        "filter.taps": (describe(taps),
                        taps is None or (taps.ndim == 1 and taps.size % 2 == 1 and np.isfinite(taps).all()),
                        "an odd number of finite coefficients"),
        "normalisation.eps": (prep.eps, 0 < prep.eps < np.inf, "a finite number > 0"),
    }
    for name, (received, ok, expected) in problems.items():
        if not ok:
            raise BundleError(f"bundle {bundle_dir}: preprocessing.{name}: expected {expected}, received {received}")
    return prep


def verified_file(bundle_dir: str | os.PathLike, entry: dict, what: str) -> Path:
    """Path of a file the manifest lists (``{"file", "sha256"}``) after checking it exists and its hash."""
    bundle = Path(bundle_dir)
    name, expected = entry.get("file"), entry.get("sha256")
    if not isinstance(name, str) or not name or Path(name).name != name:
        raise BundleError(f"bundle {bundle}: {what}.file: expected a file name inside the bundle, received {name!r}")
    path = bundle / name
    actual = sha256_file(path, f"bundle {files.shown(bundle)}: {what}")
    if actual != expected:
        raise BundleError(f"bundle {bundle}: {name} does not match its manifest hash (expected sha256 "
                          f"{expected}, received {actual}); the file is truncated or was modified, "
                          "so the bundle is refused: export it again")
    return path


def verify_reference(bundle_dir: str | os.PathLike, manifest: dict) -> None:
    """Hash-check the parity reference at load time too, so that a changed byte in any file of a bundle is
    refused up front, not only when parity is re-checked."""
    entry = manifest.get("reference")
    if entry is not None:
        if not isinstance(entry, dict):
            raise BundleError(f"bundle {files.shown(bundle_dir)}: {MANIFEST} field 'reference': expected an "
                              f"object with file and sha256, received {entry!r}")
        verified_file(bundle_dir, entry, "reference")


def verify_present_files(bundle_dir: str | os.PathLike, manifest: dict) -> None:
    """Hash-check every other file the manifest lists that is present: the graphs of every precision and
    format and the minimal-build config. A device may ship only the variant it runs, so an absent file is
    not an error here (loading a variant needs its own files); a changed one always is."""
    entries = [(f"graphs.{name}", e) for name, e in (manifest.get("graphs") or {}).items()]
    entries.append(("ort_build", manifest.get("ort_build")))
    variants = manifest.get("variants")
    for key, v in (variants.items() if isinstance(variants, dict) else ()):
        graphs = v.get("graphs") if isinstance(v, dict) else None
        if isinstance(graphs, dict):
            entries += [(f"variants.{key}.graphs.{g}", e) for g, e in graphs.items()]
    for what, entry in entries:  # malformed entries are left to the checks that name the missing field
        listed = isinstance(entry, dict) and all(isinstance(entry.get(k), str) for k in ("file", "sha256"))
        if not listed:
            continue
        if (Path(bundle_dir) / entry["file"]).exists():
            verified_file(bundle_dir, entry, what)


def load_reference(bundle_dir: str | os.PathLike, manifest: dict) -> dict[str, np.ndarray]:
    """The export-time parity reference (reference.npz), hash-checked and loaded without pickles."""
    entry = manifest.get("reference")
    if not isinstance(entry, dict):
        raise BundleError(f"bundle {bundle_dir}: {MANIFEST} lists no parity reference (field 'reference')")
    path = verified_file(bundle_dir, entry, "reference")
    return files.read_npz(path, f"bundle {files.shown(bundle_dir)}: reference", BundleError)


def is_sealed(manifest: dict) -> bool:
    """Whether the manifest carried a verified seal (format 2); legacy format 1 manifests carry none."""
    return SEAL in manifest
