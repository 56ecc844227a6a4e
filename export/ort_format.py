""".onnx graphs -> onnxruntime's own ``.ort`` format and the operator list of a minimal onnxruntime build.

A minimal (reduced-operator) onnxruntime build loads only ``.ort`` files and only holds the kernels
named in a config file; ``convert_onnx_models_to_ort`` writes both. The graphs are optimized at
conversion ("Fixed" style, level all, without the x86-only NCHWc layout, so a file runs on ARM too),
and the config lists the types each operator needs (type reduction), the smallest build there is.
"""

from __future__ import annotations

import contextlib
import io
import shutil
import tempfile
from pathlib import Path

from ..runtime.errors import EcgaeError
from ..runtime.io import atomic_write_bytes
from .quantize import quiet_logging

CONFIG = "required_operators.config"  # ORT's "required_operators_and_types.config" under the bundle's name


def convert_to_ort(onnx_files: list[Path], out_dir: Path) -> tuple[dict[str, Path], Path]:
    """``out_dir/<stem>.ort`` for each file (``encoder.int8.onnx`` -> ``encoder.int8.ort``) and the
    minimal-build config covering all of them at ``out_dir/required_operators.config``."""
    from onnxruntime.tools.convert_onnx_models_to_ort import OptimizationStyle, convert_onnx_models_to_ort

    with tempfile.TemporaryDirectory(prefix="ecgae-ort-") as tmp:
        src, dst = Path(tmp) / "onnx", Path(tmp) / "ort"
        src.mkdir()
        for f in onnx_files:
            shutil.copyfile(f, src / f.name)
        log = io.StringIO()
        try:
            with contextlib.redirect_stdout(log), quiet_logging():  # the tool prints a line per step
                convert_onnx_models_to_ort(src, output_dir=dst, optimization_styles=[OptimizationStyle.Fixed],
                                           enable_type_reduction=True)
        except Exception as e:
            raise EcgaeError(f"--ort: onnxruntime could not convert the graphs ({e})") from None
        converted = {}
        for f in onnx_files:
            name = f.with_suffix(".ort").name
            atomic_write_bytes(out_dir / name, (dst / name).read_bytes())
            converted[f.name] = out_dir / name
        (config,) = dst.glob("required_operators*.config")
        # the tool names its input files with their temp paths in comments: keep the bare file names
        lines = [f"# - {Path(line[4:]).name}" if line.startswith("# - ") else line
                 for line in config.read_text().splitlines()]
    atomic_write_bytes(out_dir / CONFIG, ("\n".join(lines) + "\n").encode())
    return converted, out_dir / CONFIG
