"""Inference backends behind one small interface (MLPerf style: one file per runtime).

A backend loads one model for one batch size and precision, runs a batch, and describes
itself for the record. Backends are imported lazily so an absent runtime costs nothing
until it is asked for, and then gives a clear message instead of a traceback.
"""
from __future__ import annotations

import importlib
from abc import ABC, abstractmethod

import numpy as np

from .. import ClsbenchError


class Backend(ABC):
    name: str = "?"

    def __init__(self, model_path: str, *, batch_size: int, threads: int | None = None,
                 device_id: int = 0, precision: str = "fp32"):
        self.model_path = model_path
        self.batch_size = batch_size
        self.threads = threads
        self.device_id = device_id
        self.precision = precision

    @property
    @abstractmethod
    def input_shape(self) -> tuple[int, int, int]:
        """(C, H, W) of one sample."""

    @abstractmethod
    def run(self, batch: np.ndarray) -> np.ndarray:
        """float32 (batch_size, C, H, W) -> float32 (batch_size, classes)."""

    @abstractmethod
    def describe(self) -> dict:
        """Runtime, version, device, precision, threads: what produced a number."""


_REGISTRY = {
    "onnxruntime": ("clsbench.backends.onnxruntime", "OnnxRuntimeBackend", "onnxruntime"),
    "openvino": ("clsbench.backends.openvino", "OpenVinoBackend", "openvino (pip install 'clsbench[openvino]')"),
    "torch": ("clsbench.backends.torch", "TorchBackend", "torch (pip install 'clsbench[export]')"),
    "cuda": ("clsbench.backends.cuda", "CudaBackend", "torch with CUDA (pip install 'clsbench[export]')"),
}

# which model file each backend runs
MODEL_KIND = {"onnxruntime": ".onnx", "openvino": ".onnx or .xml", "torch": ".pth", "cuda": ".pth"}


def available() -> list[str]:
    return sorted(_REGISTRY)


def get_backend(name: str) -> type[Backend]:
    if name not in _REGISTRY:
        raise ClsbenchError(f"unknown backend {name!r}; available: {', '.join(available())}")
    module, cls, package = _REGISTRY[name]
    try:
        return getattr(importlib.import_module(module), cls)
    except ImportError as e:
        raise ClsbenchError(f"backend {name!r} needs {package}, which is not installed ({e})") from None
