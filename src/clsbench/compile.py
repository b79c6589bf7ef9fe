"""`clsbench compile`: the guide's "onnx -> om" step for the backends here.

From one ONNX model, the artifact each backend runs best, per precision:
- onnxruntime fp32: an offline-optimized ONNX (graph fusions done once, at compile time);
- onnxruntime int8: static QDQ quantization (per-channel weights, calibrated activations);
  QDQ needs opset >= 13, so an opset-11 model is converted to 13 first (and the record says so);
- openvino fp32 / bf16: OpenVINO IR; bf16 is a run-time precision of the same IR;
- openvino int8: NNCF post-training quantization to an int8 IR.
Calibration uses the first --calib-images images of the user's dataset; the parity record
(top-1 agreement, top-5 overlap, relative logit error against the fp32 ONNX reference) uses
the held-out images after them, so nothing is judged on the data it was calibrated with.
"""
from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np

from . import ClsbenchError, __version__
from ._io import atomic_write_json
from .export import parity
from .models import Preprocessing
from .preprocess import load_folder

SUPPORTED = {"onnxruntime": ("fp32", "int8"), "openvino": ("fp32", "bf16", "int8")}


def artifact_name(onnx_path: str, backend: str, precision: str) -> str:
    stem = Path(onnx_path).stem
    return f"{stem}.{backend}.{precision}" + (".xml" if backend == "openvino" else ".onnx")


def record_path(artifact: str) -> str:
    return str(Path(artifact).with_suffix("")) + ".compile.json"


def _ort_fp32(src: str, dst: str, notes: list) -> None:
    import onnxruntime as ort

    so = ort.SessionOptions()
    # EXTENDED, not ALL: ALL adds layout changes specific to this CPU's instruction set
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
    so.optimized_model_filepath = dst
    ort.InferenceSession(src, so, providers=["CPUExecutionProvider"])
    notes.append("graph optimized offline at ORT_ENABLE_EXTENDED")


def _ort_int8(src: str, dst: str, calib: np.ndarray, notes: list, work: Path) -> None:
    import onnx
    from onnx import version_converter
    from onnxruntime.quantization import (CalibrationDataReader, CalibrationMethod, QuantFormat,
                                          QuantType, quantize_static)
    from onnxruntime.quantization.shape_inference import quant_pre_process

    model = onnx.load(src)
    opset = next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))
    if opset < 13:
        model = version_converter.convert_version(model, 13)
        notes.append(f"converted opset {opset} -> 13: QDQ quantization needs opset >= 13")
    up = work / "opset13.onnx"
    onnx.save(model, up)
    pre = work / "pre.onnx"
    quant_pre_process(str(up), str(pre), skip_symbolic_shape=False)

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.it = iter(calib[i:i + 1] for i in range(len(calib)))

        def get_next(self):
            x = next(self.it, None)
            return None if x is None else {"image": x}

    quantize_static(str(pre), dst, Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                    calibrate_method=CalibrationMethod.MinMax)
    notes.append(f"static QDQ int8: per-channel s8 weights, u8 activations, MinMax over {len(calib)} images")


def _ov(src: str, dst: str, precision: str, calib: np.ndarray | None, notes: list) -> None:
    import openvino as ov

    model = ov.Core().read_model(src)  # not ov.convert_model: that one sends telemetry
    if precision == "int8":
        import nncf

        ds = nncf.Dataset([calib[i:i + 1] for i in range(len(calib))])
        model = nncf.quantize(model, ds, subset_size=len(calib), preset=nncf.QuantizationPreset.MIXED)
        notes.append(f"NNCF post-training quantization (MIXED preset) over {len(calib)} images")
    elif precision == "bf16":
        notes.append("same IR as fp32; bf16 is OpenVINO's run-time INFERENCE_PRECISION_HINT")
    ov.save_model(model, dst, compress_to_fp16=False)


def compile_model(onnx_path: str, *, backend: str, precision: str, output_dir: str,
                  data: str | None = None, calib_images: int = 300, parity_images: int = 200,
                  pp: Preprocessing | None = None, overwrite: bool = False) -> dict:
    """Compile one artifact; an existing one made from the same source with the same
    settings is reused (a killed compile is redone whole: artifacts appear atomically)."""
    import json

    from ._io import file_sha256
    from .models import PRESETS

    pp = pp or PRESETS["mnasnet"]
    if backend not in SUPPORTED:
        raise ClsbenchError(f"compile: backend {backend!r} has no compiled form; choose from {', '.join(SUPPORTED)}")
    if precision not in SUPPORTED[backend]:
        why = {("onnxruntime", "bf16"): "ONNX Runtime's CPU provider has no bf16 kernels for these ops",
               ("onnxruntime", "fp16"): "ONNX Runtime's CPU provider runs fp16 slower than fp32"}.get(
            (backend, precision), "not offered")
        raise ClsbenchError(f"compile: {backend} {precision}: {why}; supported: {', '.join(SUPPORTED[backend])}")
    if not os.path.isfile(onnx_path):
        raise ClsbenchError(f"{onnx_path}: model file not found")
    if precision == "int8" and not data:
        raise ClsbenchError("int8 needs calibration images: --data DIR (a folder of your images)")
    out_dir = Path(output_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    dst = str(out_dir / artifact_name(onnx_path, backend, precision))
    settings = {"source_sha256": file_sha256(onnx_path), "data": os.path.abspath(data) if data else None,
                "calib_images": calib_images if precision == "int8" else 0,
                "parity_images": parity_images if data else 0, "preprocessing": pp.as_dict()}
    if not overwrite and os.path.exists(dst) and os.path.exists(record_path(dst)):
        try:
            old = json.loads(Path(record_path(dst)).read_text())
            if old.get("settings") == json.loads(json.dumps(settings)):
                return {**old, "reused": True}
        except ValueError:
            pass
    work = out_dir / f".work-{backend}-{precision}"
    work.mkdir(exist_ok=True)
    calib = None
    if data and precision == "int8":
        calib, _ = load_folder(data, pp, 0, calib_images)
    notes: list[str] = []
    t0 = time.perf_counter()
    tmp = str(work / Path(dst).name)
    if backend == "onnxruntime":
        (_ort_fp32(onnx_path, tmp, notes) if precision == "fp32" else _ort_int8(onnx_path, tmp, calib, notes, work))
    else:
        _ov(onnx_path, tmp, precision, calib, notes)
    seconds = time.perf_counter() - t0
    # move into place only once whole (an IR is two files: .xml and .bin)
    if backend == "openvino":
        os.replace(str(Path(tmp).with_suffix(".bin")), str(Path(dst).with_suffix(".bin")))
    os.replace(tmp, dst)
    for p in work.iterdir():
        p.unlink()
    work.rmdir()

    record = {"tool": f"clsbench {__version__}", "source": os.path.abspath(onnx_path), "artifact": dst,
              "settings": settings,
              "backend": backend, "precision": precision, "compile_seconds": round(seconds, 2),
              "notes": notes, "calibration_images": 0 if calib is None else len(calib)}
    if data:
        held, _ = load_folder(data, pp, calib_images if calib is not None else 0, parity_images)
        record["parity"] = measure_parity(onnx_path, dst, backend, precision, held)
        record["parity"]["inputs"] = f"{len(held)} held-out images of {os.path.abspath(data)}"
    atomic_write_json(record_path(dst), record)
    return record


def measure_parity(reference_onnx: str, artifact: str, backend: str, precision: str,
                   x: np.ndarray, batch: int = 16) -> dict:
    from .backends import get_backend

    def run_all(rt):
        outs = []
        for i in range(0, len(x), batch):
            chunk = x[i:i + batch]
            pad = batch - len(chunk)
            if pad:
                chunk = np.concatenate([chunk, np.repeat(chunk[-1:], pad, 0)])
            outs.append(rt.run(np.ascontiguousarray(chunk))[:batch - pad])
        return np.concatenate(outs)

    ref = run_all(get_backend("onnxruntime")(reference_onnx, batch_size=batch))
    got = run_all(get_backend(backend)(artifact, batch_size=batch, precision=precision))
    return {"reference": "onnxruntime fp32 on the exported ONNX (itself checked against PyTorch)",
            **parity(ref, got)}
