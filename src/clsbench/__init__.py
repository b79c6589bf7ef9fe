"""clsbench: ImageNet classifier from PyTorch weights to measured numbers on real backends.

Importing clsbench switches ONNX Runtime's telemetry off before onnxruntime can be
imported: a benchmarking tool must not phone home (onnxruntime >= 1.32 otherwise writes a
device id under ~/.cache and looks up a vendor events host from long-lived Linux processes).
"""
import os as _os

_os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")

__version__ = "0.1.0"


class ClsbenchError(Exception):
    """An error a user can act on: the message names the file (and line) at fault."""
