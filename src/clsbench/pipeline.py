"""`clsbench run`: the guide's steps 3.1, 3.2, 4.2, 4.3, 5.2 and 6.1 in one resumable command.

Work-directory layout (every file the guide's scripts would make, in the guide's formats):
    model.onnx, model.parity.json   export + parity with PyTorch (skipped for an ONNX/IR --weights)
    compiled/                       the artifact a (backend, precision) needs, when it needs one
    prep_dataset/<stem>.bin         preprocessed tensors (prep_dataset.clsbench.json beside it)
    prep_bin.info                   dataset info file
    result/dumpOutput_device<d>/    one output per image; result/perf_vision_*.txt|json
    result.json                     accuracy, the guide's JSON
    summary.json, summary.md        everything above in one record
Each step is skipped when its output is already complete, so an interrupted run resumes.
The library reports through the `clsbench` logger; it prints nothing itself.
"""
from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from . import ClsbenchError, __version__
from ._io import atomic_write_json, atomic_write_text, file_sha256, folder_lock
from .dataset import (check_no_whitespace, gen_bin_info, labels_from_class_folders, list_images,
                      read_labels, write_labels)
from .evaluate import evaluate, write_result
from .models import get_model
from .outputs import dump_dir
from .perf import DEFAULT_PERCENTILES
from .report import accuracy_markdown, backend_line, perf_rows

log = logging.getLogger("clsbench")


def locate_dataset(data: str | os.PathLike, work: Path) -> tuple[Path, Path, bool]:
    """(image dir, label file, whether clsbench wrote the label file) of an ImageNet-layout
    directory: val/ + val_label.txt, or val/<wnid>/ class folders."""
    data = Path(data)
    val = data / "val" if (data / "val").is_dir() else data
    for cand in (data / "val_label.txt", val / "val_label.txt"):
        if cand.is_file():
            return val, cand, False
    listing = list_images(val)
    if not listing.images:
        raise ClsbenchError(f"{val}: holds no images")
    if listing.layout == "class-folders":
        labels = work / "val_label.txt"
        write_labels(labels, labels_from_class_folders(listing))
        return val, labels, True
    raise ClsbenchError(f"{data}: no val_label.txt next to the images, and no class folders "
                        f"to derive labels from")


@dataclass
class RunOptions:
    model: str | None = None  # NAME[:TAG]; None: what the model file records, else mnasnet1_0
    preprocessing: object = None  # a Preprocessing that replaces the model's preset
    batch_size: int = 16
    work_dir: str = "runs/latest"
    device_id: int = 0
    threads: int | None = None
    backend: str | None = None  # None: openvino for an IR, else onnxruntime
    precision: str | None = None
    outfmt: str = "txt"
    workers: int | None = None
    tolerance: float = 1.0
    overwrite: bool = False
    strict: bool = False
    stream: bool = False
    calib_data: str | None = None
    calib_images: int = 300
    decode: str = "cpu"  # with stream and the cuda backend: "gpu" decodes on the GPU (not exact)
    cuda_mode: str = "graph"  # cuda backend: graph, eager or compile
    openvino_hint: str = "latency"  # openvino backend: latency or throughput
    backend_options: dict = field(default_factory=dict)  # passed to the backend (tests: device="cpu")
    show_progress: bool = True
    command: str | None = None  # the command line, recorded for the report (the CLI sets it)
    percentiles: tuple = DEFAULT_PERCENTILES  # latency percentiles per batch
    engine: str = "local"  # local (this machine's cores) or ray (Ray Data; implies streaming)
    ray_address: str | None = None  # with engine ray: join this cluster (None: start a local instance)


@dataclass
class Timer:
    seconds: dict = field(default_factory=dict)

    def __call__(self, name):
        timer = self

        class _T:
            def __enter__(self):
                self.t0 = time.perf_counter()

            def __exit__(self, *exc):
                timer.seconds[name] = round(timer.seconds.get(name, 0) + time.perf_counter() - self.t0, 3)
        return _T()


def validate(weights: str, data: str, o: RunOptions):
    """Every argument checked before any slow step."""
    from .backends import DEFAULT_PRECISION, target

    if o.batch_size < 1:
        raise ClsbenchError(f"--batch-size must be >= 1, got {o.batch_size}")
    if o.threads is not None and o.threads < 1:
        raise ClsbenchError(f"--threads must be >= 1, got {o.threads}")
    if o.workers is not None and o.workers < 1:
        raise ClsbenchError(f"--workers must be >= 1, got {o.workers}")
    if o.calib_images < 1:
        raise ClsbenchError(f"--calib-images must be >= 1, got {o.calib_images}")
    if o.decode != "cpu" and not (o.stream and o.backend == "cuda" and o.engine == "local"):
        raise ClsbenchError("--decode gpu needs --stream, --backend cuda and the local engine")
    if o.engine not in ("local", "ray"):
        raise ClsbenchError(f"--engine must be local or ray, got {o.engine!r}")
    if o.ray_address and o.engine != "ray":
        raise ClsbenchError("--ray-address needs --engine ray")
    if not os.path.exists(weights):
        raise ClsbenchError(f"{weights}: weights/model file not found")
    if not os.path.isdir(data):
        raise ClsbenchError(f"{data}: data directory not found")
    for path, what in ((o.work_dir, "the work directory"), (data, "the data path")):
        check_no_whitespace(os.path.abspath(path), what)
    from .modelfile import kind

    k = kind(weights)
    backend = o.backend or {"ir": "openvino"}.get(k, "onnxruntime")  # a .pth is exported to ONNX
    t = target(backend, o.precision or DEFAULT_PRECISION.get(backend, "fp32"))
    # a .pth is exported to ONNX for the ONNX backends; an ONNX or IR file is used as is
    if ("pth" in t.runs and k != "pth") or (k == "ir" and "ir" not in t.runs):
        what = {"pth": "PyTorch weights", "onnx": "an ONNX model", "ir": "an OpenVINO IR"}[k]
        raise ClsbenchError(f"{weights}: {what}, but {t.label} runs {' or '.join(t.runs)} files")
    return t


def resolve_spec(weights: str, model: str | None, pp=None):
    """The model a run is about: what an ONNX/IR file records (clsbench's export writes it),
    else --model, else the guide's mnasnet1_0; a --model that contradicts the file is an
    error. `pp` replaces the preset (an ONNX model from elsewhere)."""
    import dataclasses

    from .modelfile import identity_of

    recorded, _ = identity_of(weights)
    asked = get_model(model) if model else None
    if recorded and asked and recorded.key != asked.key:
        raise ClsbenchError(f"{weights}: exported from {recorded.key}; --model {model} ({asked.key}) "
                            f"contradicts it (leave --model out)")
    spec = recorded or asked or get_model("mnasnet1_0")
    if not (recorded or asked):
        from .modelfile import kind

        if kind(weights) != "pth":
            log.warning(f"{weights} records no model: comparing with {spec.key}'s reference accuracy "
                        f"and preset (pass --model NAME[:TAG] or the preset flags)")
    return dataclasses.replace(spec, preprocessing=pp) if pp is not None else spec


def run(weights: str, data: str, options: RunOptions | None = None, **kw) -> dict:
    """The whole flow; returns the summary (also written as summary.json and summary.md)."""
    import dataclasses

    o = options or RunOptions(**kw)
    if o.engine == "ray":  # Ray decodes on the cluster: the streaming layout, no .bin files
        o = dataclasses.replace(o, stream=True)
    t = validate(weights, data, o)
    spec = resolve_spec(weights, o.model, o.preprocessing)
    work = Path(o.work_dir)
    work.mkdir(parents=True, exist_ok=True)
    with folder_lock(work):
        return _run_locked(weights, data, o, t, spec, work)


def _run_locked(weights, data, o: RunOptions, t, spec, work: Path) -> dict:
    from .modelfile import kind

    timer = Timer()
    val, label_file, wrote_labels = locate_dataset(data, work)
    if wrote_labels:
        log.info(f"labels: {val} has ImageNet class folders; wrote {label_file} from their wnids")
    labels = read_labels(label_file, spec.num_classes)  # a bad label stops us before any slow step
    with timer("export"):
        model_file, exported = _model_for(weights, kind(weights), spec, work, val, o)
    with timer("compile" if t.compiled else "resolve"):
        runnable, compiled = _artifact_for(model_file, weights, t, spec, work, val, labels, o)
    timer.seconds.pop("resolve", None)
    with timer("preprocess+infer" if o.stream else "preprocess"):
        prep = _preprocess(val, work, spec, o)
    perf = _infer(runnable, val, prep, work, spec, t, o, timer, labels)
    log.info("[5/5] evaluate")
    with timer("eval"):
        dump = dump_dir(work / "result", o.device_id, o.outfmt)
        acc = evaluate(dump, label_file, strict=o.strict)
        result_json = write_result(acc, work, "result.json")
        outside = None
        if compiled and compiled.get("calibrated_on_data"):
            outside = evaluate(dump, label_file, exclude=set(compiled["calibration_names"]))
    summary = _summary(spec, weights, exported, compiled, prep, perf, acc, outside, val, label_file,
                       work, result_json, o, timer)
    atomic_write_json(work / "summary.json", summary)
    atomic_write_text(work / "summary.md", summary_markdown(summary, acc, spec))
    from .htmlreport import write_report

    write_report(str(work))
    summary["_accuracy"], summary["_spec"] = acc, spec
    return summary


def _model_for(weights, weights_kind, spec, work: Path, val: Path, o: RunOptions):
    """The ONNX (or IR) model the run uses: exported from a .pth, or the file given."""
    from .export import current_export, export_onnx

    if weights_kind != "pth":
        log.info(f"[1/5] export: {weights} is already an {'ONNX model' if weights_kind == 'onnx' else 'OpenVINO IR'}; "
                 f"not exported (its parity with PyTorch is not checked here)")
        return weights, None
    onnx_path = work / "model.onnx"
    rec = None if o.overwrite else current_export(onnx_path, spec, weights)
    if rec:
        log.info(f"[1/5] export: {onnx_path} is current (parity record matches the weights)")
    else:
        log.info(f"[1/5] export {weights} → {onnx_path}")
        rec = export_onnx(weights, str(onnx_path), model=spec.key, parity_images=str(val))
    p = rec["parity"]
    log.info(f"      {rec['weights']['verdict']}")
    log.info(f"      parity vs PyTorch float64: rel. L2 error {p['rel_l2_error']:.2e} "
             f"(bound {p.get('bound_rel_l2_error', 0):.2e}), top-1 agreement {p['top1_agreement']:.1%}")
    return str(onnx_path), rec


def _artifact_for(model_file, weights, t, spec, work: Path, val: Path, labels, o: RunOptions):
    """What the backend runs: the weights (torch, cuda), the model itself, or a compiled
    artifact, compiled here when (backend, precision) needs one."""
    from .compile import compile_model

    if "pth" in t.runs:
        return weights, None
    if not t.compiled:
        return model_file, None
    if not o.calib_data:
        log.warning(f"no --calib-data: {t.label} calibrates on the first {o.calib_images} images of "
                    f"{val}; accuracy is also reported on the images outside that set")
    log.info(f"[1/5] compile {t.label} (calibration: {o.calib_data or val})")
    rec = compile_model(model_file, backend=t.backend, precision=t.precision, output_dir=str(work / "compiled"),
                        data=str(val), calib_data=o.calib_data, calib_images=o.calib_images,
                        pp=spec.preprocessing, labels=labels, overwrite=o.overwrite)
    rec["calibrated_on_data"] = not o.calib_data
    return rec["artifact"], rec


def _preprocess(val: Path, work: Path, spec, o: RunOptions):
    from .preprocess import preprocess_dir

    if o.stream:
        log.info("[2/5] preprocess: streamed (each worker process decodes, resizes and runs; no intermediate files)")
        log.info("[3/5] dataset info: not needed when streaming")
        return None
    prep = work / "prep_dataset"
    log.info(f"[2/5] preprocess {val} → {prep} ({spec.preset} preset)")
    rep = preprocess_dir(val, prep, spec.preprocessing, workers=o.workers, overwrite=o.overwrite,
                         strict=o.strict, show_progress=o.show_progress)
    log.info(f"      {rep.written} written, {rep.resumed} already done, {len(rep.failed)} unreadable, "
             f"{len(rep.ignored)} non-image entries ignored")
    return rep


def _backend_options(t, spec, o: RunOptions) -> dict:
    """The PyTorch backends build the architecture themselves: tell them which."""
    opts = {"arch": spec.key} if t.backend in ("torch", "cuda") else {}
    if t.backend == "cuda":
        opts["mode"] = o.cuda_mode
    if t.backend == "openvino" and o.openvino_hint != "latency":
        opts["hint"] = o.openvino_hint
    return {**opts, **o.backend_options}


def _infer(runnable, val, rep, work: Path, spec, t, o: RunOptions, timer, labels) -> dict:
    from .infer import infer_offline

    result = work / "result"
    common = dict(batch_size=o.batch_size, output=str(result), device_id=o.device_id, outfmt=o.outfmt,
                  backend=t.backend, precision=t.precision, threads=o.threads, overwrite=o.overwrite,
                  show_progress=o.show_progress, backend_options=_backend_options(t, spec, o),
                  percentiles=o.percentiles, labels=labels)
    if o.stream:
        log.info(f"[4/5] infer bs{o.batch_size} with {t.label}, streaming from {val}"
                 + (f" on Ray ({o.ray_address or 'a local instance'})" if o.engine == "ray" else ""))
        with timer("preprocess+infer"):
            perf = infer_offline(runnable, images=str(val), preprocessing=spec.preprocessing,
                                 workers=o.workers, strict=o.strict, decode=o.decode, engine=o.engine,
                                 ray_address=o.ray_address, **common)
    else:
        info_path = work / "prep_bin.info"
        log.info(f"[3/5] dataset info → {info_path}")
        crop = spec.preprocessing.crop
        with timer("info"):
            gen_bin_info(str(work / "prep_dataset"), str(info_path), crop, crop)
        log.info(f"[4/5] infer bs{o.batch_size} with {t.label}")
        with timer("infer"):
            perf = infer_offline(runnable, str(info_path), **common)
    if perf.get("from_earlier_run"):
        log.info(f"      nothing left to infer: all {perf['total']} outputs exist; the throughput "
                 f"figures are from the earlier run that wrote them ({perf.get('finished_at', '?')})")
    return perf


def _summary(spec, weights, exported, compiled, rep, perf, acc, outside, val, label_file, work, result_json,
             o: RunOptions, timer) -> dict:
    from .perf import perf_file_name

    failed = ([(f["file"], f["error"]) for f in perf["failed"]] if o.stream
              else rep.failed)
    result = work / "result"
    accuracy = {"images": acc.images, "classes": acc.num_classes,
                **{f"top{k}": acc.percent(k) for k in range(1, 6)},
                "reference_top1": spec.top1, "reference_top5": spec.top5,
                "top1_drop": None if spec.top1 is None else spec.top1 - acc.percent(1), "tolerance": o.tolerance,
                "within_tolerance": None if spec.top1 is None else spec.top1 - acc.percent(1) <= o.tolerance,
                "labels_without_output": acc.labels_without_output,
                "outputs_without_label": len(acc.unlabelled_outputs)}
    if outside is not None:
        accuracy["outside_calibration"] = {"images": outside.images,
                                           **{f"top{k}": outside.percent(k) for k in range(1, 6)}}
    files = {"weights": str(weights)}
    if exported:
        files.update(onnx=str(work / "model.onnx"), parity=str(work / "model.parity.json"))
    if compiled:
        files["compiled"] = compiled["artifact"]
    if not o.stream:
        files.update(prep_dataset=str(work / "prep_dataset"), info=str(work / "prep_bin.info"))
    files.update(labels=str(label_file), outputs=str(dump_dir(result, o.device_id, o.outfmt)),
                 perf=str(result / perf_file_name(o.batch_size, o.device_id)),
                 result_json=str(result_json), summary_json=str(work / "summary.json"),
                 summary_md=str(work / "summary.md"), report=str(work / "report.html"))
    return {
        "tool": f"clsbench {__version__}", "command": o.command, "model": spec.name, "weights_tag": spec.tag,
        "weights": exported["weights"] if exported else {"path": os.path.abspath(weights),
                                                         "sha256": file_sha256(weights)},
        "parity": exported["parity"] if exported else None,
        "compiled": {k: v for k, v in compiled.items() if k != "calibration_names"} if compiled else None,
        "preprocessing": {"preset": spec.preset, **spec.preprocessing.as_dict()},
        "dataset": {"images": str(val.resolve()), "labels": str(Path(label_file).resolve()),
                    "layout": list_images(val).layout,
                    "preprocessed": None if o.stream else len(rep.outputs), "streamed": o.stream,
                    "unreadable": [{"file": f, "error": e} for f, e in failed],
                    "ignored": [] if o.stream else rep.ignored},
        "accuracy": accuracy, "performance": perf, "stage_seconds": timer.seconds, "files": files,
    }


def summary_markdown(s: dict, acc, spec) -> str:
    perf = s["performance"]
    lines = [f"# clsbench run: {s['model']}", "",
             f"- weights: {s['weights']['path']} — {s['weights'].get('verdict', 'a model file, used as is')}"]
    if s["parity"]:
        lines.append(f"- parity vs PyTorch float64: rel. L2 error {s['parity']['rel_l2_error']:.2e}, "
                     f"top-1 agreement {s['parity']['top1_agreement']:.1%}")
    lines += [f"- preprocessing: {s['preprocessing']}", f"- measured with: {backend_line(perf)}",
              f"- stage seconds: {s['stage_seconds']}", "",
              "## Accuracy", "", accuracy_markdown(acc, spec),
              "## Throughput", "", "| stage | figure | value |", "|---|---|---:|"]
    lines += [f"| {a} | {b} | {c} |" for a, b, c in perf_rows(perf)]
    lines += ["", "## Files", ""] + [f"- {k}: `{v}`" for k, v in s["files"].items()]
    return "\n".join(lines) + "\n"
