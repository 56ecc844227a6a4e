"""ecgae.runtime: run an exported ECG autoencoder bundle with numpy + onnxruntime only.

    from ecgae.runtime import Model
    model = Model.load("bundle/")
    beats, where = model.beats_from_signal(signal, fs=360)
    flags = model.is_anomalous(beats)
"""

from .bundle import FORMAT, FORMAT_VERSION, read_manifest
from .errors import BundleError, EcgaeError, InputError
from .model import Model
from .monitor import BeatEvent, Monitor
from .preprocess import Preprocessing
from .wearer import Beats, WearerProfile

__all__ = ["FORMAT", "FORMAT_VERSION", "BundleError", "EcgaeError", "InputError", "Model", "Preprocessing",
           "read_manifest"]
__all__ += ["BeatEvent", "Beats", "Monitor", "WearerProfile"]
