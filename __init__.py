"""ecgae: ECG heartbeat autoencoders from PyTorch training to a lean onnxruntime runtime."""

__version__ = "0.1.0"
