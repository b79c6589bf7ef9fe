"""`clsbench compile`: the guide's "onnx -> om" step for the backends here.

From one ONNX model, the artifact each backend runs best, per precision (the pairs and
their files are `backends.TARGETS`'s):
- onnxruntime fp32: an offline-optimized ONNX (graph fusions done once, at compile time);
- onnxruntime int8: static QDQ quantization (per-channel weights, calibrated activations);
  QDQ needs opset >= 13, so an opset-11 model is converted to 13 first (and the record says so);
- openvino fp32 / bf16: OpenVINO IR; bf16 is a run-time precision of the same IR;
- openvino int8: NNCF post-training quantization to an int8 IR.
Every artifact carries its identity (backend, precision, and the source model's metadata)
inside the file, so `infer` and `perf` know what it is without being told.
Calibration uses the first --calib-images images of the calibration folder; the parity
record (top-1 agreement, top-5 overlap, relative logit error against the fp32 ONNX, and
with labels the accuracy of both) uses held-out images only, so nothing is judged on the
data it was calibrated with.
"""
from __future__ import annotations

import contextlib
import io

import dataclasses
import json
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..defaults import default
from .. import ClsbenchError, __version__
from .._io import atomic_write_json, file_sha256, reusable_record
from ..runtime.backends import artifact_name, open_backend, target
from .export import parity
from ..model.table import Preprocessing
from ..data.folders import list_images
from ..data.preprocess import load_folder


def record_path(artifact: str) -> str:
    return str(Path(artifact).with_suffix("")) + ".compile.json"


def artifact_files(artifact: str) -> list[str]:
    """The files an artifact is: itself, and an OpenVINO IR's weights (.bin)."""
    return [artifact] + ([str(Path(artifact).with_suffix(".bin"))] if artifact.endswith(".xml") else [])


def artifact_digests(artifact: str) -> dict:
    """file name -> SHA-256 of each of the artifact's files, as the compile record keeps them."""
    return {os.path.basename(f): file_sha256(f) for f in artifact_files(artifact)}


def artifact_changed(artifact: str, record: dict, sha=file_sha256) -> str | None:
    """Why the artifact's files are not the bytes its compile record vouches for (its
    `artifact_sha256`, taken once they were in place), or None when they are: asked before
    compile reuses an artifact and before perf times one (a file copied over it in place keeps
    its name and its record)."""
    want = record.get("artifact_sha256")
    if not isinstance(want, dict):
        return f"its record {record_path(artifact)} holds no SHA-256 of the compiled files"
    for f in artifact_files(artifact):
        was = want.get(os.path.basename(f))
        if not os.path.isfile(f):
            return f"{f} is missing"
        now = sha(f)
        if was != now:
            said = f"{was[:12]}…" if isinstance(was, str) else "none"
            return (f"{f} is not the file compiled (SHA-256 {now[:12]}…; its record {record_path(artifact)} "
                    f"says {said})")
    return None


def _ort_fp32(src: str, dst: str, notes: list) -> None:
    import onnxruntime as ort

    so = ort.SessionOptions()
    # EXTENDED, not ALL: ALL adds layout changes specific to this CPU's instruction set
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
    so.optimized_model_filepath = dst
    ort.InferenceSession(src, so, providers=["CPUExecutionProvider"])
    notes.append("graph optimized offline at ORT_ENABLE_EXTENDED")


def _ort_tools_without_torch() -> None:
    """quant_pre_process imports onnxruntime.tools.symbolic_shape_infer, and the package's
    __init__ imports torch whenever it is installed, for a PyTorch export helper (infer_input_info)
    nothing here uses: 5 s of imports on this 2-core VM, and torch in a compile that needs none.
    The package is registered without running that __init__; its modules import as usual."""
    import importlib.util
    import sys

    import onnxruntime

    if "onnxruntime.tools" in sys.modules:
        return
    spec = importlib.util.find_spec("onnxruntime.tools")
    if spec is None or spec.submodule_search_locations is None:
        return
    package = importlib.util.module_from_spec(spec)
    sys.modules["onnxruntime.tools"] = package
    onnxruntime.tools = package


def _ort_int8(src: str, dst: str, calib: np.ndarray, notes: list, work: Path, tune=None,
              max_drop: float | None = None) -> dict | None:
    import onnx
    from onnx import version_converter
    from onnxruntime.quantization.shape_inference import quant_pre_process

    from .ort_control import control, quantizer

    model = onnx.load(src)
    opset = next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))
    if opset < 13:
        model = version_converter.convert_version(model, 13)
        notes.append(f"converted opset {opset} -> 13: QDQ quantization needs opset >= 13")
    up = work / "opset13.onnx"
    onnx.save(model, up)
    pre = work / "pre.onnx"
    _ort_tools_without_torch()
    quant_pre_process(str(up), str(pre), skip_symbolic_shape=False)
    notes.append(f"static QDQ int8: per-channel s8 weights, u8 activations, MinMax over {len(calib)} images")
    if max_drop is None:
        quantizer(str(pre), calib, work)(dst, [])
        return None
    c = control(str(pre), dst, calib, tune, max_drop, work)
    kept = c["kept_in_float"]
    notes.append(f"accuracy control: Top-1 drop <= {max_drop} points on {len(tune[1])} labelled tuning images; "
                 f"{len(kept)} of {c['candidates']} compute nodes kept in float, most sensitive first "
                 f"(ranked by the relative error each adds): {', '.join(kept) or 'none needed'}")
    return c


def _ov(src: str, dst: str, precision: str, calib: np.ndarray | None, notes: list, meta: dict,
        tune=None, max_drop: float | None = None) -> None:
    import openvino as ov

    model = ov.Core().read_model(src)  # not ov.convert_model: that one sends telemetry
    if precision == "int8":
        import nncf

        ds = nncf.Dataset([calib[i:i + 1] for i in range(len(calib))])
        # NNCF draws its own "Statistics collection" bars on stdout (rich's console) and logs
        # INFO lines there through a handler of its own: both kept out of clsbench's output
        # (what matters of them goes into the record's notes)
        with contextlib.redirect_stdout(io.StringIO()), _nncf_handlers([]):
            if max_drop is None:
                model = nncf.quantize(model, ds, subset_size=len(calib), preset=nncf.QuantizationPreset.MIXED)
                notes.append(f"NNCF post-training quantization (MIXED preset) over {len(calib)} images")
            else:
                model = _ov_accuracy_control(model, ds, len(calib), tune, max_drop, notes)
    elif precision == "bf16":
        notes.append("same IR as fp32; bf16 is OpenVINO's run-time INFERENCE_PRECISION_HINT")
    for k, v in meta.items():
        model.set_rt_info(str(v), ["clsbench", k])
    ov.save_model(model, dst, compress_to_fp16=False)


@contextlib.contextmanager
def _nncf_handlers(handlers: list):
    """The "nncf" logger's handlers replaced by `handlers` for a while (its own writes INFO
    lines to stdout, which does not propagate to clsbench's logger)."""
    import logging

    lg = logging.getLogger("nncf")
    own = lg.handlers[:]
    lg.handlers = list(handlers)
    try:
        yield
    finally:
        lg.handlers = own


def _ov_accuracy_control(model, calib_ds, n_calib: int, tune, max_drop: float, notes: list):
    """NNCF's quantize_with_accuracy_control: quantize, then put back in floating point the
    operations that cost Top-1 on the tuning images (labelled, apart from calibration and
    from the held-out images the record is measured on) until the drop is <= max_drop points."""
    import logging

    import nncf

    x, y, _ = tune
    items = [(x[i:i + 1], int(y[i])) for i in range(len(y))]

    def top1(compiled, data):
        out = compiled.outputs[0]
        hits = [float(np.argmax(compiled(xi)[out]) == yi) for xi, yi in data]
        return (float(np.mean(hits)) if hits else 0.0), hits

    said: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record):
            m = record.getMessage()
            if "reverted back" in m or m.startswith(("Accuracy drop", "Algorithm completed", "The algorithm could")):
                said.append(" ".join(m.split()))

    with _nncf_handlers([Keep()]):
        model = nncf.quantize_with_accuracy_control(
            model, calibration_dataset=calib_ds, validation_dataset=nncf.Dataset(items, lambda it: it[0]),
            validation_fn=top1, max_drop=max_drop / 100, drop_type=nncf.DropType.ABSOLUTE,
            subset_size=n_calib, preset=nncf.QuantizationPreset.MIXED)
    notes.append(f"NNCF quantization with accuracy control (MIXED preset, {n_calib} calibration images): "
                 f"Top-1 drop <= {max_drop} points on {len(items)} labelled tuning images")
    notes += [f"NNCF: {m}" for m in said]
    return model


def _stamp_onnx(path: str, meta: dict) -> None:
    import onnx

    from ..model.files import set_onnx_metadata

    m = onnx.load(path)
    set_onnx_metadata(m, meta)
    onnx.save(m, path)


def _validate_control(t, max_drop, labels, data):
    if max_drop is None:
        return
    if t.label not in ("openvino:int8", "onnxruntime:int8"):
        raise ClsbenchError(f"--max-drop controls int8 (openvino: NNCF's accuracy control; onnxruntime: nodes "
                            f"kept in float by sensitivity), not {t.label}")
    if max_drop < 0 or not labels or not data:
        raise ClsbenchError("--max-drop needs a bound >= 0, --data IMAGES and --labels for them (the drop "
                            "is Top-1 on labelled images)")


def _validate(onnx_path, backend, precision, data, calib_images, parity_images):
    from ..model.files import check_external_data, kind

    from ..runtime.backends import check_precision_supported

    t = target(backend, precision)
    if t.artifact_ext is None:
        raise ClsbenchError(f"compile: {t.label} runs the PyTorch weights; there is nothing to compile")
    check_precision_supported(t.backend, t.precision)  # an IR labelled bf16 that this CPU would run in fp32

    if kind(onnx_path) != "onnx":
        raise ClsbenchError(f"{onnx_path}: compile takes an ONNX model (see `clsbench export`)")
    check_external_data(onnx_path)
    if (calib_images is not None and calib_images < 1) or parity_images < 0:
        raise ClsbenchError(f"--calib-images must be >= 1 and --parity-images >= 0, got "
                            f"{calib_images} and {parity_images}")
    if t.calibration and not data:
        raise ClsbenchError(f"{t.label} needs calibration images: --data DIR (a folder of your images)")
    if data and not list_images(data).images:
        raise ClsbenchError(f"{data}: holds no images")
    return t


DEFAULT_CALIB_IMAGES = 300  # --calib-images when not given: adapted to a smaller folder
MIN_CALIB_IMAGES = 8  # below this, no adapted default: MinMax ranges of a handful of images


def _calibration_count(o: "CompileOptions", t, calib_data: str | None) -> tuple[int, dict | None]:
    """How many images calibrate: --calib-images as given (more than the folder holds is an
    error naming both numbers), else the default 300; where the folder holds fewer, what is
    there less the images held out for parity (and tuning), said in one line. Returns the
    count and, when the default was adapted, what was decided (for the record)."""
    from ..ui import info

    if not t.calibration:
        return o.calib_images or 0, None
    n = len(list_images(calib_data).images)
    if o.calib_images is not None:
        if n < o.calib_images:
            raise ClsbenchError(f"{calib_data}: holds {n} images; {t.label} calibrates on --calib-images "
                                f"{o.calib_images}")
        return o.calib_images, None
    if n >= DEFAULT_CALIB_IMAGES:
        return DEFAULT_CALIB_IMAGES, None
    separate = bool(o.calib_data) and os.path.realpath(o.calib_data) != os.path.realpath(o.data or "")
    wanted = (o.parity_images if o.data else 0) + (o.tune_images if o.max_drop is not None else 0)
    held = 0 if separate else min(wanted, n // 3)
    use = n - held
    if use < MIN_CALIB_IMAGES:
        raise ClsbenchError(f"{calib_data}: holds {n} images; {t.label} calibrates on at least {MIN_CALIB_IMAGES} "
                            f"({held} held out for parity); give a folder with more images")
    info(f"--calib-images: the default {DEFAULT_CALIB_IMAGES} is more than the {n} images of {calib_data}: "
         f"calibrating on {use}" + (f", the last {held} held out for parity" if held else ""))
    return use, {"default": DEFAULT_CALIB_IMAGES, "folder_images": n, "used": use, "held_out": held}


def _check_outputs(onnx_path: str, dst: str, o: "CompileOptions", calib_data: str | None) -> None:
    """Before anything is written: the artifact (its record, an IR's weights) is never the
    model compiled, and the output folder is never a folder of images read."""
    from .._io import check_not_input

    folders = {"the --data folder": o.data} if o.data else {}
    if calib_data:
        folders["the calibration folder"] = calib_data
    check_not_input(o.output_dir, what="--output folder", folders=folders)
    for path in (dst, record_path(dst), str(Path(dst).with_suffix(".bin"))):
        check_not_input(path, {"the --model file": onnx_path}, "--output folder")


@dataclass
class CompileOptions:
    """One artifact to compile: `backend`, `precision`, `output_dir` are required."""

    backend: str = ""
    precision: str = ""
    output_dir: str = default("compile", "output")  # --output
    data: str | None = None  # images: calibration (unless calib_data) and held-out parity
    calib_images: int | None = None  # None: DEFAULT_CALIB_IMAGES, fewer where the folder holds fewer
    parity_images: int = default("compile", "parity_images")
    pp: Preprocessing | None = None  # None: the preset the ONNX records
    labels: dict | None = None  # image stem -> class: accuracy on the held-out images
    calib_data: str | None = None
    overwrite: bool = False
    cann: dict | None = None  # for cann: batches, soc_version (compile/ascend.py)
    max_drop: float | None = None  # int8 accuracy control
    tune_images: int = default("compile", "tune_images")
    uint8_input: bool = False  # fold the normalization in


def compile_model(onnx_path: str, options: CompileOptions | None = None, **kw) -> dict:
    """Compile one artifact (for cann: the guide's .om per batch size, `cann` holding
    batches and soc_version; see compile/ascend.py); an existing one made from the same source with the same
    settings and data is reused (a killed compile is redone whole: artifacts appear atomically).
    Calibration takes the first `calib_images` of `calib_data` (default: of `data`, and then
    the held-out images start after them); parity is measured on held-out images of `data`.
    With `labels` (image stem -> class), the record holds fp32 and compiled accuracy there."""
    o = options or CompileOptions(**kw)
    if o.backend == "cann":  # the guide's .om files, through the vendor's compiler
        from .ascend import compile_om

        return compile_om(onnx_path, output_dir=o.output_dir, precision=o.precision, **(o.cann or {}))
    if o.pp is None:
        from ..model.files import identity_of
        from ..plan import resolve_preset

        o = dataclasses.replace(o, pp=resolve_preset(identity_of(onnx_path, "onnx")[1], "the model file", {}).pp)
    calib_data = o.calib_data or o.data
    t = _validate(onnx_path, o.backend, o.precision, calib_data, o.calib_images, o.parity_images)
    _validate_control(t, o.max_drop, o.labels, o.data)
    if o.uint8_input and t.calibration:
        raise ClsbenchError(f"--uint8-input: {t.label} calibrates on normalized images; fold the normalization "
                            f"into fp32 or bf16 artifacts")
    dst = str(Path(o.output_dir) / artifact_name(onnx_path, o.backend, o.precision, o.uint8_input))
    _check_outputs(onnx_path, dst, o, calib_data)
    count, adapted = _calibration_count(o, t, calib_data)
    o = dataclasses.replace(o, calib_images=count)
    Path(o.output_dir).mkdir(parents=True, exist_ok=True)
    identity = _identity(onnx_path, o, t, calib_data)
    old = reusable_record(record_path(dst), identity) if os.path.exists(dst) else None
    if old and not o.overwrite:
        changed = artifact_changed(dst, old)
        if changed is None:
            return {**old, "reused": True}
        from ..ui import info

        info(f"compile: {changed}: compiling again")
    plan = compile_plan(onnx_path, o, t)  # before the slow step: a refusal leaves no artifact without a record
    record = _compile(onnx_path, dst, o, t, identity)
    record["artifact_sha256"] = artifact_digests(dst)  # the bytes moved into place, for reuse and perf
    record["plan"] = plan
    if adapted:
        record["calib_images_adapted"] = adapted
        record["notes"].append(f"--calib-images not given: {adapted['used']} calibration images, the "
                               f"{adapted['folder_images']} of the folder less {adapted['held_out']} held out "
                               f"(the default {adapted['default']} is more than the folder holds)")
    atomic_write_json(record_path(dst), record)
    return record


def compile_plan(onnx_path: str, o: CompileOptions, t) -> dict:
    """The record's plan, in the schema of every record's: the source model as the resolver
    sees it (model, provenance, reference), the preset the images were preprocessed with (the
    model file's, or the flags given: then so sourced), the target compiled for."""
    from ..plan import RunnableRequest, TargetPlan, resolve_runnable, target_dict

    r = resolve_runnable(onnx_path, RunnableRequest())
    preset = r.preset.as_dict()
    if o.pp.as_dict() != r.preset.pp.as_dict():
        own, used = r.preset.pp.as_dict(), o.pp.as_dict()
        preset = {**used, "sources": {f: "compile's --preset or flags" if used.get(f) != own.get(f) else s
                                      for f, s in preset["sources"].items()}}
    return {**r.as_dict(), "preset": preset, "target": target_dict(TargetPlan(t.backend, t.precision, "compile", (), None))}


def _identity(onnx_path: str, o: CompileOptions, t, calib_data: str | None) -> dict:
    """What an artifact depends on: the source's bytes, the settings, the data's fingerprint."""
    from .._io import fingerprint
    from ..plan import folder_fingerprint

    cal = bool(calib_data and t.calibration)
    return {"source_sha256": file_sha256(onnx_path), "data": os.path.abspath(o.data) if o.data else None,
            "data_fingerprint": folder_fingerprint(o.data) if o.data else None,
            "calib_data": os.path.abspath(calib_data) if cal else None,
            "calib_fingerprint": folder_fingerprint(calib_data) if cal else None,
            "calib_images": o.calib_images if t.calibration else 0,
            "parity_images": o.parity_images if o.data else 0, "preprocessing": o.pp.as_dict(),
            "labels": fingerprint(sorted(o.labels.items())) if o.labels else None,
            **({"max_drop": o.max_drop, "tune_images": o.tune_images} if o.max_drop is not None else {}),
            **({"uint8_input": True} if o.uint8_input else {})}


def _compile(onnx_path: str, dst: str, o: CompileOptions, t, identity: dict) -> dict:
    """Calibrate, build, and measure the artifact against the fp32 ONNX on held-out images."""
    from ..model.files import read_metadata

    separate = bool(o.calib_data) and os.path.realpath(o.calib_data) != os.path.realpath(o.data or "")
    meta = {**read_metadata(onnx_path, "onnx"), "backend": o.backend, "precision": o.precision,
            "source_sha256": identity["source_sha256"]}
    calib = load_folder(o.calib_data or o.data, o.pp, 0, o.calib_images) if t.calibration else None
    start = calib.end if calib and not separate else 0
    tune = None
    if o.max_drop is not None:  # labelled tuning images: after calibration, before the held-out ones
        got = load_folder(o.data, o.pp, start, o.tune_images)
        have = [i for i, n in enumerate(got.names) if n in o.labels]
        tune = (got.x[have], np.array([o.labels[got.names[i]] for i in have]), [got.names[i] for i in have])
        start = got.end
    notes: list[str] = []
    src = _folded_source(onnx_path, Path(o.output_dir), o.pp, meta, notes) if o.uint8_input else onnx_path
    seconds, control = _build(src, dst, o, calib and calib.x, notes, meta, tune)
    if src != onnx_path:
        os.remove(src)
    record = {"tool": f"clsbench {__version__}", "source": os.path.abspath(onnx_path), "artifact": dst,
              "identity": identity, "backend": o.backend, "precision": o.precision,
              "compile_seconds": round(seconds, 2), "notes": notes,
              "calibration_images": 0 if calib is None else len(calib.names),
              "calibration_names": [] if calib is None else calib.names, "verified_against": t.verify}
    if tune is not None:
        record["accuracy_control"] = {**_control_record(onnx_path, dst, tune, o.labels, o.max_drop),
                                      "tuning_names": tune[2]}
        if control:
            record["accuracy_control"].update(kept_in_float=control["kept_in_float"], tries=control["tries"],
                                              candidates=control["candidates"])
    parity = _held_out_parity(onnx_path, dst, o, start, tune is not None)
    if parity:
        record["parity"] = parity
    return record


def _held_out_parity(onnx_path: str, dst: str, o: CompileOptions, start: int, tuned: bool) -> dict | None:
    """The artifact against the fp32 ONNX on the images after the calibration (and tuning) ones."""
    if o.uint8_input and o.data and o.parity_images:
        return _uint8_parity(onnx_path, dst, o.data, o.pp, start, o.parity_images)
    if not (o.data and o.parity_images and start < len(list_images(o.data).images)):
        return None
    held = load_folder(o.data, o.pp, start, o.parity_images)
    p = measure_parity(onnx_path, dst, held.x, names=held.names, labels=o.labels)
    p["held_out_names"] = held.names  # disjoint from calibration_names (tested)
    p["inputs"] = (f"{len(held.names)} held-out images of {os.path.abspath(o.data)} (from position {start}, "
                   f"after the calibration{' and tuning' if tuned else ''} images)")
    return p


def _folded_source(onnx_path, out_dir, pp, meta, notes) -> str:
    from ..model.fold import FOLDED_KEY, fold_normalization

    path = str(out_dir / f".{Path(onnx_path).stem}.folded.onnx")
    f = fold_normalization(onnx_path, path, pp)
    meta[FOLDED_KEY] = json.dumps(f)
    notes.append(f"normalization folded in: uint8 NCHW input, /255, -mean {f['mean']}, /std {f['std']} "
                 f"(float32, the CPU path's order)")
    return path


def _uint8_parity(onnx_path, dst, data, pp, start, n) -> dict:
    """The folded artifact on uint8 crops against the fp32 ONNX on the same crops normalized
    on the CPU (the .bin path's numbers)."""
    from ..data.preprocess import crop_chw, normalize_batch
    from ..runtime.stages import run_all

    paths = list_images(data).images[start:start + n]
    crops = np.stack([crop_chw(os.path.join(data, str(p)), pp) for p in paths])
    ref = run_all(open_backend("onnxruntime", onnx_path, batch_size=8, precision="fp32"),
                  normalize_batch(crops, pp), 8)
    got = run_all(open_backend(None, dst, batch_size=8), crops, 8)
    return {"reference": "the fp32 ONNX on the same crops normalized on the CPU (the .bin path)",
            **parity(ref, got), "bit_identical": bool(np.array_equal(ref, got)),
            "inputs": f"{len(paths)} images of {os.path.abspath(data)} from position {start}"}


def _control_record(onnx_path, dst, tune, labels, max_drop) -> dict:
    """Top-1 of fp32 and of the controlled int8 on the tuning images (what NNCF steered by)."""
    q = measure_parity(onnx_path, dst, tune[0], names=tune[2], labels=labels)["accuracy"]
    return {"max_drop_points": max_drop, "tuning_images": len(tune[1]), "tuning_fp32_top1": q["fp32_top1"],
            "tuning_top1": q["top1"], "tuning_drop": q["top1_drop"], "bound_met": q["top1_drop"] <= max_drop + 1e-9}


def _build(onnx_path, dst, o: CompileOptions, calib, notes, meta, tune=None) -> tuple[float, dict | None]:
    """Seconds it took, and for ONNX Runtime's accuracy control its record (nodes kept in float, tries)."""
    backend, precision, max_drop = o.backend, o.precision, o.max_drop
    work = Path(o.output_dir) / f".work-{backend}-{precision}"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir()
    t0 = time.perf_counter()
    tmp = str(work / Path(dst).name)
    control = None
    if backend == "onnxruntime":
        if precision == "fp32":
            _ort_fp32(onnx_path, tmp, notes)
        else:
            control = _ort_int8(onnx_path, tmp, calib, notes, work, tune, max_drop)
        _stamp_onnx(tmp, meta)
    else:
        _ov(onnx_path, tmp, precision, calib, notes, meta, tune=tune, max_drop=max_drop)
    seconds = time.perf_counter() - t0
    # move into place only once whole (an IR is two files: .xml and .bin)
    if backend == "openvino":
        os.replace(str(Path(tmp).with_suffix(".bin")), str(Path(dst).with_suffix(".bin")))
    os.replace(tmp, dst)
    shutil.rmtree(work, ignore_errors=True)
    return seconds, control


_REFERENCE: dict = {}  # (file fingerprint, batch, images digest) -> fp32 logits


def _reference_logits(reference_onnx: str, x: np.ndarray, batch: int) -> np.ndarray:
    """The fp32 ONNX's logits on x, computed once per process for the same file version and
    the same images: the demo's three precisions are each judged against the same reference
    (it was run again for each)."""
    import hashlib

    from .._io import file_fingerprint
    from ..runtime.stages import run_all

    key = (*file_fingerprint(reference_onnx), batch, x.shape, hashlib.sha256(np.ascontiguousarray(x).data).hexdigest())
    if key not in _REFERENCE:
        if len(_REFERENCE) >= 4:
            _REFERENCE.clear()
        _REFERENCE[key] = run_all(open_backend("onnxruntime", reference_onnx, batch_size=batch, precision="fp32"),
                                  x, batch)
    return _REFERENCE[key].copy()


def measure_parity(reference_onnx: str, artifact: str, x: np.ndarray, *, names=None, labels=None,
                   batch: int = 16) -> dict:
    """Compiled artifact vs the fp32 ONNX on x; with labels, both accuracies and the drop."""
    from ..runtime.stages import run_all

    ref = _reference_logits(reference_onnx, x, batch)
    got = run_all(open_backend(None, artifact, batch_size=batch), x, batch)
    rec = {"reference": "onnxruntime fp32 on the exported ONNX (itself checked against PyTorch)",
           **parity(ref, got)}
    if labels and names:
        have = [i for i, n in enumerate(names) if n in labels]
        if have:
            y = np.array([labels[names[i]] for i in have])
            top1_ref = float((ref[have].argmax(1) == y).mean() * 100)
            top1_got = float((got[have].argmax(1) == y).mean() * 100)
            rec["accuracy"] = {"labelled_images": len(have), "fp32_top1": top1_ref,
                               "top1": top1_got, "top1_drop": top1_ref - top1_got}
    return rec
