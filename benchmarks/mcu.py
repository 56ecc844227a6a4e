"""``make mcu``: each bundle's generated C built for a Cortex-M4F and run in QEMU (MPS2 AN386 board), its
outputs compared with onnxruntime, its flash, RAM and instructions per beat measured.

    python -m ecgae.benchmarks.mcu --fixtures .mcu-bundles --out mcu      # 1-epoch bundles of every arch
    python -m ecgae.benchmarks.mcu BUNDLE [BUNDLE ...] --out DIR

Flash and static RAM are the model's own object file (``arm-none-eabi-size``: text + data, data + bss),
not the test program's. The stack is the high-water mark of one call, found by painting the free stack.
Instructions are counted by QEMU's ``-icount shift=0`` (one instruction = 1 ns of emulated time) read
through SysTick at the board's 25 MHz, so one tick is 40 instructions; a loop of known length calibrates
this in every run. QEMU does not model cycles: on silicon, loads, branches and flash wait states make a
cycle count higher than the instruction count.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from importlib import resources
from pathlib import Path

import numpy as np

from ..runtime import bundle as bundle_io
from ..runtime.errors import EcgaeError
from ..runtime.io import atomic_write_bytes, write_json
from .machine import describe_machine
from .markdown import table

CPU_FLAGS = ("-mcpu=cortex-m4", "-mthumb", "-mfpu=fpv4-sp-d16", "-mfloat-abi=hard")
C_FLAGS = ("-O2", "-std=c99", "-Wall", "-Wextra", "-Werror", "-ffunction-sections", "-fdata-sections")
QEMU = ("qemu-system-arm", "-M", "mps2-an386", "-cpu", "cortex-m4", "-nographic", "-monitor", "none",
        "-serial", "none", "-semihosting-config", "enable=on,target=native", "-icount", "shift=0")
PART = {"flash": 256 * 1024, "ram": 64 * 1024}  # the smallest part the issue targets
MCU_FILES = ("mcu.h", "startup.c", "mps2_an386.ld")
FIXTURE_ARCHS = ("seed", "upsample", "conv", "conv-flat")


def _tools() -> None:
    missing = [t for t in ("arm-none-eabi-gcc", "arm-none-eabi-size", "qemu-system-arm") if not shutil.which(t)]
    if missing:
        raise EcgaeError(f"mcu: expected {missing} on PATH; 'make mcu' installs gcc-arm-none-eabi, "
                         "libnewlib-arm-none-eabi and qemu-system-arm")


def _run(cmd: list[str], what: str, timeout: float = 600) -> str:
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        raise EcgaeError(f"{what} failed ({done.returncode}): {(done.stderr or done.stdout)[-3000:]}")
    return done.stdout


def build(work: Path) -> tuple[Path, dict[str, int]]:
    """The harness in ``work`` (see c_harness.write_harness) linked for the board; the model object's sizes."""
    for name in MCU_FILES:
        atomic_write_bytes(work / name, resources.files("ecgae.export").joinpath(f"c/{name}").read_bytes())
    cc = _compiler(work)
    model_o = _compile(work)
    elf = work / "ecgae.elf"
    _run([*cc, "--specs=rdimon.specs", "-nostartfiles", "-T", str(work / "mps2_an386.ld"), "-Wl,--gc-sections",
          str(model_o), *(str(work / f) for f in ("ecgae_reference.c", "driver.c", "startup.c")),
          "-o", str(elf), "-lm"], "arm-none-eabi-gcc (link)")
    return elf, _sizes(model_o, "model") | _sizes(elf, "elf")


def _compiler(work: Path) -> list[str]:
    return ["arm-none-eabi-gcc", *CPU_FLAGS, *C_FLAGS, "-DECGAE_MCU", "-I", str(work)]


def _compile(work: Path) -> Path:
    """work/ecgae_model.c -> work/ecgae_model.o for the M4F."""
    out = work / "ecgae_model.o"
    _run([*_compiler(work), "-c", str(work / "ecgae_model.c"), "-o", str(out)], "arm-none-eabi-gcc (model)")
    return out


def _sizes(path: Path, label: str) -> dict[str, int]:
    """text (code and const), data and bss of an object or ELF file, from arm-none-eabi-size."""
    text, data, bss = (int(v) for v in _run(["arm-none-eabi-size", str(path)], "size").splitlines()[1].split()[:3])
    return {f"{label}_text": text, f"{label}_data": data, f"{label}_bss": bss}


def encoder_alone(bundle: Path, work: Path, precision: str) -> dict[str, int]:
    """Flash and static RAM of ecgae_encode generated alone: what a wearable that sends z carries."""
    from ..export.emit_c import emit_c

    emit_c(bundle, work, ("ecgae_encode",), precision)
    sizes = _sizes(_compile(work), "encode")
    return {"flash_bytes": sizes["encode_text"] + sizes["encode_data"],
            "static_ram_bytes": sizes["encode_data"] + sizes["encode_bss"]}


def measure(bundle: Path, work: Path, precision: str = "fp32") -> dict:
    """Generate, build, run in QEMU and judge one bundle's graphs of one precision; the row of the report."""
    from ..export.c_harness import host_compiler, parse, reference_inputs, run_host, verdict, write_harness
    from ..export.macs import graph_macs

    manifest = bundle_io.read_manifest(bundle)
    macs = {entry: graph_macs(bundle_io.verified_file(bundle, manifest["graphs"][graph], graph).read_bytes())
            for entry, graph in (("encode", "encoder"), ("score", "score"))}
    write_harness(bundle, work, precision=precision)
    elf, sizes = build(work)
    out = _run([*QEMU, "-kernel", str(elf)], "qemu-system-arm", timeout=1200)
    actual, costs = parse(out)
    calibration = next(line.split()[1:] for line in out.splitlines() if line.startswith("calibration "))
    per_tick = int(calibration[1]) / int(calibration[0])
    beats, _ = reference_inputs(bundle)
    parity = verdict(bundle, actual, precision)
    cost = np.array(costs)  # row, encode ticks, score ticks, encode stack, score stack
    host, same_bits = None, None
    cc = host_compiler()
    if cc is not None:  # the same source built for this machine: its outputs, and whether they are the same bits
        host_out = run_host(work, cc)
        host = verdict(bundle, host_out, precision)["worst"]
        same_bits = all(np.array_equal(host_out[k].view(np.uint8), actual[k].view(np.uint8)) for k in host_out)
    alone = encoder_alone(bundle, work / "encode", precision)
    alone["ram_bytes"] = alone["static_ram_bytes"] + int(cost[:, 3].max())
    alone["fits"] = {"flash": alone["flash_bytes"] <= PART["flash"], "ram": alone["ram_bytes"] <= PART["ram"]}
    model = manifest["model"]
    summary = json.loads((work / "ecgae_model.json").read_text())
    flash = sizes["model_text"] + sizes["model_data"]
    stack = int(cost[:, 3:].max())
    ram = sizes["model_data"] + sizes["model_bss"] + stack
    return {
        "bundle": str(bundle), "precision": precision, "kind": model["kind"], "arch": model["arch"],
        "input_length": model["input_length"],
        "latent_dim": model["latent_dim"], "weights_bytes": summary["const_bytes"],
        "scratch_bytes": summary["scratch_bytes"], "sizes": sizes, "flash_bytes": flash,
        "stack_bytes": {"encode": int(cost[:, 3].max()), "score": int(cost[:, 4].max())},
        "ram_bytes": ram,
        "fits": {"flash": flash <= PART["flash"], "ram": ram <= PART["ram"]},
        "encoder_alone": alone,
        "parity": parity | {"host_worst": host, "qemu_bits_equal_host": same_bits},
        "instructions_per_beat": {"encode": int(np.median(cost[:, 1]) * per_tick),
                                  "score": int(np.median(cost[:, 2]) * per_tick),
                                  "resolution": per_tick},
        "macs_per_beat": macs,
        "calibration": {"ticks": int(calibration[0]), "instructions": int(calibration[1])},
        "beats": len(beats),
    }


def fixtures(root: Path) -> list[Path]:
    """One 1-epoch AE and VAE bundle (with its INT8 variant) per architecture on the bundled MIT-BIH beats
    (L = 450, the chapter's window), made once: parity and cost do not depend on how well a model is trained."""
    from ..export.bundle import export_run
    from ..training.train import TrainConfig, train

    out = []
    for arch in FIXTURE_ARCHS:
        for kind in ("ae", "vae"):
            bundle = root / f"{kind}-{arch}"
            if not (bundle / "manifest.json").is_file() or precisions(bundle) != ["fp32", "int8"]:
                with tempfile.TemporaryDirectory() as runs:
                    run = Path(runs) / "run"
                    train(TrainConfig(model=kind, arch=arch, data="bundled", epochs=1, latent_dim=2), run,
                          log=lambda *_: None)
                    export_run(run, bundle, force=True, int8=True, log=lambda *_: None)
            out.append(bundle)
    return out


def _parity_cell(p: dict) -> str:
    against = "ORT" if p["precision"] == "fp32" else "torch"
    return f"{p['worst']:.1e} vs {against} (<= {p['atol']:.1g})"


def _kb(n: int) -> str:
    return f"{n / 1024:.1f}"


def markdown(rows: list[dict]) -> str:
    """The report section: one row per bundle, then what fits a 256 KB-flash / 64 KB-RAM part."""
    header = ["bundle", "L", "latent", "flash KB", "RAM KB (static + stack)", "parity on the M4F: max abs (limit)",
              "instr/beat encode", "instr/beat score", "instr/MAC score", "encoder alone: flash / RAM KB",
              f"fits {PART['flash'] // 1024} KB / {PART['ram'] // 1024} KB"]
    body = []
    for r in rows:
        ins = r["instructions_per_beat"]
        fits = "yes" if all(r["fits"].values()) else "no (" + ", ".join(k for k, v in r["fits"].items() if not v) + ")"
        body.append([f"{r['kind']}-{r['arch']} {r['precision']}", str(r["input_length"]), str(r["latent_dim"]),
                     _kb(r["flash_bytes"]),
                     f"{_kb(r['ram_bytes'])} ({_kb(r['sizes']['model_data'] + r['sizes']['model_bss'])} + "
                     f"{max(r['stack_bytes'].values())} B)",
                     _parity_cell(r["parity"]),
                     f"{ins['encode']:,}", f"{ins['score']:,}", f"{ins['score'] / r['macs_per_beat']['score']:.1f}",
                     f"{_kb(r['encoder_alone']['flash_bytes'])} / {_kb(r['encoder_alone']['ram_bytes'])}", fits])
    fitting = [f"{r['kind']}-{r['arch']} {r['precision']}" for r in rows if all(r["fits"].values())]
    same = [r["parity"]["qemu_bits_equal_host"] for r in rows if r["parity"]["qemu_bits_equal_host"] is not None]
    lines = ["## On a Cortex-M4F (emulated)", "",
             "The bundle's graphs as C (`ecgae emit-c`), built with `arm-none-eabi-gcc -O2 -mcpu=cortex-m4 "
             "-mfpu=fpv4-sp-d16 -mfloat-abi=hard` and run in QEMU's MPS2 AN386 board on each bundle's "
             f"{rows[0]['beats'] if rows else 0} reference beats. Flash is the model's object file (weights "
             "and code of encode, decode and score); RAM is its static scratch plus the deepest stack of one "
             "call. Instructions per beat are QEMU's instruction count (`-icount shift=0`, read through "
             "SysTick, calibrated on a loop of known length); QEMU does not model cycles, so cycles on "
             "silicon are higher.", "",
             *table(header, body), "",
             f"Fits a {PART['flash'] // 1024} KB-flash / {PART['ram'] // 1024} KB-RAM part (the model alone, "
             f"before the firmware around it): {', '.join(fitting) if fitting else 'none'}.",
             "", f"Outputs on the M4F bit for bit equal to the same C built with the host's gcc: {sum(same)} of "
                 f"{len(same)} builds. INT8 rows are judged as export judged the INT8 graphs: against torch, "
                 "within the bundle's recorded INT8 tolerance; their distance to onnxruntime's INT8 graphs is "
                 "in mcu.json."]
    return "\n".join(lines) + "\n"


def precisions(bundle: Path) -> list[str]:
    """fp32, and int8 when the bundle has an INT8 ONNX variant."""
    variants = bundle_io.read_manifest(bundle).get("variants") or {}
    return ["fp32"] + (["int8"] if (variants.get("int8") or {}).get("format") == "onnx" else [])


def measure_all(bundles: list[Path], out: Path, log=print) -> list[dict]:
    """Measure every bundle, one line each to ``log``; write out/mcu.json and out/mcu.md."""
    rows = []
    for bundle, precision in ((b, p) for b in bundles for p in precisions(b)):
        with tempfile.TemporaryDirectory() as work:
            row = measure(bundle, Path(work), precision)
        log(f"{row['kind']}-{row['arch']} {precision}: flash {row['flash_bytes']} B, RAM {row['ram_bytes']} B, "
            f"parity {_parity_cell(row['parity'])}, "
            f"{row['instructions_per_beat']['score']:,} instructions per scored beat")
        rows.append(row)
    write_json(out / "mcu.json", {"part": PART, "bundles": rows})
    atomic_write_bytes(out / "mcu.md", markdown(rows).encode())
    return rows


def report_section(bundles: list[Path], out: Path) -> str:
    """For ``make demo``'s report: measure ``bundles`` into ``out`` and return the Markdown section, or a line
    saying how to get it when the cross compiler or QEMU is missing (the demo does not install them)."""
    try:
        _tools()
    except EcgaeError as e:
        return f"## On a Cortex-M4F (emulated)\n\nNot measured in this run: {e}.\n"
    return markdown(measure_all(bundles, out))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ecgae.benchmarks.mcu", description=__doc__.splitlines()[0])
    parser.add_argument("bundles", nargs="*", type=Path, metavar="BUNDLE")
    parser.add_argument("--fixtures", type=Path, metavar="DIR",
                        help="make (once) and measure 1-epoch bundles of every arch in DIR")
    parser.add_argument("--out", type=Path, required=True, metavar="DIR", help="receives mcu.json and mcu.md")
    parser.add_argument("--docs", type=Path, metavar="FILE",
                        help="also write the table, with the date and machine, for the documentation to include")
    args = parser.parse_args(argv)
    _tools()
    bundles = list(args.bundles) + (fixtures(args.fixtures) if args.fixtures else [])
    if not bundles:
        parser.error("expected BUNDLE arguments or --fixtures DIR")
    rows = measure_all(bundles, args.out, lambda line: print(line, flush=True))
    if args.docs:
        machine, when = describe_machine(), time.strftime("%Y-%m-%d", time.gmtime())
        stamp = f"Written by `make mcu` on {when} on {machine['cpu_model']}, from the 1-epoch bundles it makes.\n\n"
        args.docs.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(args.docs, (stamp + "#" + markdown(rows)).encode())  # a subsection of the page
    failed = [f"{r['bundle']} {r['precision']}" for r in rows if not r["parity"]["passed"]]
    if failed:
        print(f"mcu: parity outside its limit for {failed}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
