"""The project's own error types: the only exceptions a user of ecgae should ever see."""


class EcgaeError(Exception):
    """Base of every error ecgae raises on purpose."""


class InputError(EcgaeError, ValueError):
    """Input data (beats, signals, files, arguments) is not what was expected."""


class BundleError(EcgaeError):
    """A bundle is missing, unreadable, tampered with, or of an unknown format."""


def describe(x: object) -> str:
    """Short description of a received value for error messages (shape and dtype for arrays)."""
    shape, dtype = getattr(x, "shape", None), getattr(x, "dtype", None)
    if shape is not None and dtype is not None:
        return f"array of shape {tuple(shape)} and dtype {dtype}"
    return f"{type(x).__name__}"
