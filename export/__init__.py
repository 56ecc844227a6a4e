"""ecgae.export: torch -> ONNX bundles (BatchNorm folded, exact fast seed decoder, parity at export).

``export_run`` is loaded on first use so ``ecgae.export.parity`` stays importable without torch.
"""


def __getattr__(name: str):
    if name == "export_run":
        from .bundle import export_run

        return export_run
    raise AttributeError(f"module 'ecgae.export' has no attribute {name!r}")
