"""Inference backends behind one small interface (MLPerf style: one file per runtime), and
THE table of (backend, precision) pairs: which exist, what file each runs, whether it needs
a `clsbench compile` artifact and calibration images, how it is verified.

Every command asks this table (`target`, `artifact_name`, `open_backend`); no other module
keeps its own list. Backends are imported lazily, so an absent runtime costs nothing until
it is asked for, and then gives a clear message instead of a traceback.
"""
from __future__ import annotations

import functools
import importlib
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ... import ClsbenchError


class Backend(ABC):
    name: str = "?"
    input_dtype = np.float32  # uint8 for a model with the normalization folded in (fold.py)

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


def default_threads() -> int:
    from ..._io import usable_cpus

    return usable_cpus()


@dataclass(frozen=True)
class Target:
    backend: str
    precision: str
    runs: tuple[str, ...]  # model file kinds the backend reads (modelfile.kind)
    compiled: bool  # needs a `clsbench compile` artifact (cannot run the export as is)
    calibration: bool  # compiling it needs calibration images
    artifact_ext: str | None  # what `clsbench compile` writes for it; None: nothing to compile
    verify: str  # what its parity is measured against

    @property
    def label(self) -> str:
        return f"{self.backend}:{self.precision}"


_ORT, _OV = ("onnx",), ("onnx", "ir")
_VS_FP32 = "ONNX Runtime fp32 on the exported ONNX, on held-out images"
TARGETS: dict[tuple[str, str], Target] = {t[:2]: Target(*t) for t in [
    ("onnxruntime", "fp32", _ORT, False, False, ".onnx", "PyTorch float64 (export parity)"),
    ("onnxruntime", "int8", _ORT, True, True, ".onnx", _VS_FP32),
    ("openvino", "fp32", _OV, False, False, ".xml", _VS_FP32),
    ("openvino", "bf16", _OV, False, False, ".xml", _VS_FP32),
    ("openvino", "int8", _OV, True, True, ".xml", _VS_FP32),
    ("torch", "fp32", ("pth",), False, False, None, "itself: the reference"),
    ("torch", "bf16", ("pth",), False, False, None, "PyTorch fp32"),
    ("cuda", "fp32", ("pth",), False, False, None, "PyTorch fp32 on the CPU"),
    ("cuda", "fp16", ("pth",), False, False, None, "PyTorch fp32 on the CPU"),
    ("cuda", "bf16", ("pth",), False, False, None, "PyTorch fp32 on the CPU"),
    # Ascend NPUs: ONNX Runtime's CANN provider runs the ONNX as is; `compile --backend cann`
    # writes the guide's .om files for the vendor's tools (ascend.py), not an artifact clsbench runs
    ("cann", "fp16", _ORT, False, False, None, "ONNX Runtime fp32 on the CPU (needs an Ascend NPU)"),
    ("cann", "fp32", _ORT, False, False, None, "ONNX Runtime fp32 on the CPU (needs an Ascend NPU)"),
]}

_REGISTRY = {
    "onnxruntime": ("clsbench.runtime.backends.onnxruntime", "OnnxRuntimeBackend", "onnxruntime"),
    "openvino": ("clsbench.runtime.backends.openvino", "OpenVinoBackend", "openvino (pip install 'clsbench[openvino]')"),
    "torch": ("clsbench.runtime.backends.torch", "TorchBackend", "torch (pip install 'clsbench[export]')"),
    "cuda": ("clsbench.runtime.backends.cuda", "CudaBackend", "torch with CUDA (pip install 'clsbench[export]')"),
    "cann": ("clsbench.runtime.backends.cann", "CannBackend", "onnxruntime-cann (pip install 'clsbench[cann]')"),
}
# the options each backend takes beyond the common ones (open_backend refuses others)
# (torch and cuda build the architecture `arch` themselves and take the run's `preprocessing`)
OPTIONS = {"openvino": {"hint"}, "torch": {"arch", "preprocessing"}, "cuda": {"arch", "mode", "device", "preprocessing"}}
DEFAULT_PRECISION = {"onnxruntime": "fp32", "openvino": "fp32", "torch": "fp32", "cuda": "fp16", "cann": "fp16"}


def available() -> list[str]:
    return sorted(_REGISTRY)


def precisions(backend: str) -> list[str]:
    return [p for (b, p) in TARGETS if b == backend]


def all_labels() -> list[str]:
    return [t.label for t in TARGETS.values()]


def target(backend: str, precision: str) -> Target:
    if backend not in _REGISTRY:
        raise ClsbenchError(f"unknown backend {backend!r}; available: {', '.join(available())}")
    t = TARGETS.get((backend, precision))
    if t is None:
        raise ClsbenchError(f"{backend} has no {precision!r} precision; it offers "
                            f"{', '.join(precisions(backend))} (all pairs: {', '.join(all_labels())})")
    return t


def artifact_name(onnx_path: str, backend: str, precision: str, uint8_input: bool = False) -> str:
    """The file `clsbench compile` writes for (backend, precision) from `onnx_path`; `.u8`
    marks the variant with the normalization folded in (uint8 input, fold.py)."""
    t = target(backend, precision)
    if t.artifact_ext is None:
        raise ClsbenchError(f"{t.label} runs the PyTorch weights; there is nothing to compile")
    return f"{Path(onnx_path).stem}.{backend}.{precision}{'.u8' if uint8_input else ''}{t.artifact_ext}"


def get_backend(name: str) -> type[Backend]:
    if name not in _REGISTRY:
        raise ClsbenchError(f"unknown backend {name!r}; available: {', '.join(available())}")
    module, cls, package = _REGISTRY[name]
    try:
        return getattr(importlib.import_module(module), cls)
    except ImportError as e:
        raise ClsbenchError(f"backend {name!r} needs {package}, which is not installed ({e})") from None


def resolve(model: str, backend: str | None = None, precision: str | None = None) -> Target:
    """(backend, precision) for running `model`: unset values come from the file itself
    (its kind, the precision clsbench recorded in it, int8 if it is quantized); values given
    that contradict the file are errors."""
    from ...model.files import check_external_data, check_ir_weights, kind, read_metadata, stored_precision

    k = kind(model)
    if k == "onnx":
        check_external_data(model)
    elif k == "ir":
        check_ir_weights(model)
    meta = read_metadata(model, k)
    backend = backend or meta.get("backend") or {"pth": "torch", "ir": "openvino"}.get(k, "onnxruntime")
    stored = stored_precision(model, k)
    precision = precision or stored or DEFAULT_PRECISION.get(backend, "fp32")
    t = target(backend, precision)
    if k not in t.runs:
        what = {"pth": "a PyTorch state dict", "onnx": "an ONNX model", "ir": "an OpenVINO IR"}[k]
        raise ClsbenchError(f"{model}: {what}; the {backend} backend runs "
                            f"{' or '.join(t.runs)} files")
    if (stored == "int8") != (precision == "int8"):
        raise ClsbenchError(f"{model}: {'an int8' if stored == 'int8' else 'a float'} model, but precision "
                            f"{precision!r} was asked for" + ("" if stored == "int8" else
                            f"; make one with `clsbench compile --backend {backend} --precision int8`"))
    return t


@functools.lru_cache(maxsize=None)
def openvino_cpu() -> tuple[str, tuple[str, ...]]:
    """(FULL_DEVICE_NAME, OPTIMIZATION_CAPABILITIES) of OpenVINO's CPU device, as OpenVINO
    reports them (asked once per process)."""
    try:
        import openvino as ov
    except ImportError as e:
        raise ClsbenchError(f"backend 'openvino' needs {_REGISTRY['openvino'][2]}, which is not installed "
                            f"({e})") from None
    core = ov.Core()
    return (str(core.get_property("CPU", "FULL_DEVICE_NAME")),
            tuple(str(c) for c in core.get_property("CPU", "OPTIMIZATION_CAPABILITIES")))


def precision_unsupported(backend: str, precision: str) -> str | None:
    """Why this machine cannot execute (backend, precision) as asked, or None. OpenVINO's CPU
    plugin given INFERENCE_PRECISION_HINT bf16 on a CPU without bf16 runs fp32 (a record would
    say bf16): decided by OpenVINO's own capability list. Free for any other pair."""
    if (backend, precision) != ("openvino", "bf16"):
        return None
    name, caps = openvino_cpu()
    if "BF16" in caps:
        return None
    return (f"this CPU ({name}) has no bf16 (OpenVINO's CPU capabilities: {', '.join(caps)}); "
            f"OpenVINO would run fp32 and call it bf16")


def check_precision_supported(backend: str, precision: str) -> None:
    """Raises ClsbenchError (one line: the CPU's capability, what to type instead) where
    `precision_unsupported` gives a reason."""
    why = precision_unsupported(backend, precision)
    if why:
        raise ClsbenchError(f"{backend}:{precision}: {why}. Ask for fp32 instead (--precision fp32; in perf's "
                            f"and zoo's --configs {backend}:fp32), or use a CPU with AVX512-BF16 or AMX")


def open_backend(backend: str | None, model: str, *, batch_size: int, precision: str | None = None,
                 threads: int | None = None, device_id: int = 0, **kw) -> Backend:
    """THE way to load a model for inference: checks the file, resolves (backend, precision)
    with `resolve`, validates the settings, then loads."""
    if batch_size < 1:
        raise ClsbenchError(f"batch size must be >= 1, got {batch_size}")
    if threads is not None and threads < 1:
        raise ClsbenchError(f"threads must be >= 1, got {threads}")
    t = resolve(model, backend, precision)
    extra = sorted(set(kw) - OPTIONS.get(t.backend, set()))
    if extra:
        raise ClsbenchError(f"the {t.backend} backend has no option {', '.join(extra)}"
                            + (" (--openvino-hint applies to the openvino backend)" if "hint" in extra else ""))
    return get_backend(t.backend)(model, batch_size=batch_size, threads=threads, device_id=device_id,
                                  precision=t.precision, **kw)
