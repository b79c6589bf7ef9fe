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

from ..defaults import default
from .. import __version__
from .._io import atomic_write_json, atomic_write_text, file_sha256, folder_lock
from ..data.folders import gen_bin_info, labels_from_class_folders, list_images, read_labels, write_labels
from ..accuracy.evaluate import evaluate, write_result
from ..runtime.outputs import dump_dir
from ..runtime.timing import DEFAULT_PERCENTILES
from ..report.tables import accuracy_markdown, backend_line, perf_rows

log = logging.getLogger("clsbench")


def write_class_labels(val: Path, work: Path) -> Path:
    """val/<wnid>/ class folders: their labels, written as val_label.txt in the work dir."""
    labels = work / "val_label.txt"
    write_labels(labels, labels_from_class_folders(list_images(val)))
    return labels


@dataclass
class RunOptions:
    """What the user asked for; `plan.resolve` fills every default and checks every combination."""

    model: str | None = None  # NAME[:TAG]; None: what the model file records (plan.DEFAULT_MODEL for a .pth)
    # preprocessing flags, each applied on top of the model's own preset (None: the preset's)
    resize: int | None = None
    crop: int | None = None
    interpolation: str | None = None
    mean: tuple | None = None
    std: tuple | None = None
    exif_transpose: bool = False
    batch_size: int = default("run", "batch_size")
    work_dir: str = default("run", "work_dir")
    device_id: int = default("run", "device_id")
    threads: int | None = None
    backend: str | None = None  # None: what the model file is (plan.resolve_target)
    precision: str | None = None
    outfmt: str = default("run", "outfmt")
    workers: int | None = None
    tolerance: float = default("run", "tolerance")
    check: bool = False  # the caller exits non-zero on a failed accuracy verdict: refuse runs with none
    stand_in_weights: bool = False  # the weights are stand-ins (realistic random): no accuracy verdict
    overwrite: bool = False
    strict: bool = False
    stream: bool = False
    calib_data: str | None = None
    calib_images: int | None = None  # None: 300, fewer on a smaller folder (compile.compile_model says so)
    decode: str = default("run", "decode")  # with stream and the cuda backend: "gpu" decodes on the GPU (not exact)
    cuda_mode: str = default("run", "cuda_mode")  # cuda backend: graph, eager or compile
    openvino_hint: str = default("run", "openvino_hint")  # openvino backend: latency or throughput
    backend_options: dict = field(default_factory=dict)  # passed to the backend (tests: device="cpu")
    show_progress: bool = True
    command: str | None = None  # the command line, recorded for the report (the CLI sets it)
    percentiles: tuple = DEFAULT_PERCENTILES  # latency percentiles per batch
    engine: str = default("run", "engine")  # local (this machine's cores) or ray (Ray Data; implies streaming)
    ray_address: str | None = None  # with engine ray: join this cluster (None: start a local instance)
    ray_timeout: float = default("run", "ray_timeout")  # seconds to reach ray_address before giving up
    label_set: str | None = None  # imagenet-a | imagenet-r: score on that 200-class subset (labelsets)
    real_labels: bool = False  # ImageNet-ReaL Top-1/Top-5 beside the original labels'


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


def plan_run(weights: str, data: str, options: RunOptions | None = None, **kw):
    """The run's plan (plan.resolve), printed: what `run` would do, before any slow step."""
    from ..plan import resolve

    p = resolve(str(weights), str(data), options or RunOptions(**kw))
    for i, line in enumerate(p.describe()):
        log.info(("plan: " if i == 0 else "      ") + line)
    return p


def run(weights: str, data: str, options: RunOptions | None = None, **kw) -> dict:
    """The whole flow; returns the summary (also written as summary.json and summary.md)."""
    o = options or RunOptions(**kw)
    plan = plan_run(weights, data, o)
    work = Path(plan.work_dir)
    work.mkdir(parents=True, exist_ok=True)
    with folder_lock(work):
        return _run_locked(plan, o, work)


def _run_locked(plan, o: RunOptions, work: Path) -> dict:
    from ..runtime.backends import target

    timer = Timer()
    spec, t = plan.spec, target(plan.target.backend, plan.target.precision)
    val = Path(plan.data.images)
    label_file, labels = _labels(plan, val, work)
    with timer("export"):
        model_file, exported = _model_for(plan, work, val, o)
    with timer("compile" if plan.target.artifact == "compile" else "resolve"):
        runnable, compiled = _artifact_for(model_file, plan, t, work, val, labels, o)
    timer.seconds.pop("resolve", None)
    with timer("preprocess+infer" if plan.stream else "preprocess"):
        prep = _preprocess(val, work, plan, o)
    perf = _infer(runnable, val, prep, work, plan, o, timer, labels)
    dump = dump_dir(work / "result", o.device_id, o.outfmt)
    if plan.data.labelled:
        log.info("[5/5] evaluate")
        with timer("eval"):
            acc = evaluate(dump, label_file, strict=o.strict, scoring=plan.scoring)
            write_result(acc, work, "result.json")
            outside = None
            if compiled and compiled.get("calibrated_on_data"):
                outside = evaluate(dump, label_file, exclude=set(compiled["calibration_names"]),
                                   scoring=plan.scoring)
        scored = (acc, outside, labels)
    else:
        log.info("[5/5] predictions (no labels: no accuracy)")
        with timer("predictions"):
            acc, scored = None, _predictions(plan, dump, work)
    summary = _summary(plan, (exported, compiled), (prep, perf), scored, label_file, o, timer)
    atomic_write_json(work / "summary.json", summary)
    atomic_write_text(work / "summary.md", summary_markdown(summary, acc, spec))
    from ..report.html import write_report

    write_report(str(work))
    summary["_accuracy"], summary["_spec"], summary["_plan"] = acc, spec, plan
    return summary


def _labels(plan, val: Path, work: Path):
    """(label file, labels) of the data, or (None, None) for predictions only."""
    if not plan.data.labelled:
        return None, None
    label_file = Path(plan.data.labels) if plan.data.labels else write_class_labels(val, work)
    if not plan.data.labels:
        log.info(f"labels: {val} has ImageNet class folders; wrote {label_file} from their wnids")
    return label_file, read_labels(label_file, plan.spec.num_classes)  # a bad label stops us here


def _predictions(plan, dump: Path, work: Path) -> dict:
    from ..accuracy.evaluate import Outputs
    from ..data.labelsets import class_names
    from ..accuracy.predict import predictions, record, write_predictions

    # named by the outputs' own width: an unnamed model's plan cannot know it, and a 1001-class
    # output's column 0 is the background class (its names shift by one)
    width = next(Outputs(dump).batches())[2].shape[1]
    names = class_names(width, plan.model.provenance)
    rows = predictions(dump, names)
    path = write_predictions(rows, work / "predictions.csv")
    names_from = (None if names is None else "the trained proxy's task" if plan.model.provenance == "proxy"
                  else "ImageNet-1k (torchvision's class names)")
    log.info(f"      {len(rows)} images → {path}")
    return record(rows, path, names_from)


def _model_for(plan, work: Path, val: Path, o: RunOptions):
    """The ONNX (or IR) model the run uses: exported from a .pth, or the file given."""
    from ..compile.export import cache_key, current_export, export_onnx, from_cache, to_cache

    weights = plan.weights
    if plan.target.artifact == "weights":
        log.info(f"[1/5] export: not needed ({plan.target.backend} runs the PyTorch weights eagerly)")
        return weights, None
    if plan.weights_kind != "pth":
        log.info(f"[1/5] export: {weights} is already an {'ONNX model' if plan.weights_kind == 'onnx' else 'OpenVINO IR'}; "
                 f"not exported (its parity with PyTorch is not checked here)")
        return weights, None
    onnx_path = work / "model.onnx"
    spec = plan.model.spec
    rec = None if o.overwrite else current_export(onnx_path, spec, weights, plan.model.provenance)
    # the plan hashed the weights and fingerprinted every image already: the cache key reuses both
    key = cache_key(plan.model.weights_sha256, spec, plan.model.provenance, plan.data.fingerprint)
    cached = None if rec or o.overwrite else from_cache(key, onnx_path, weights)
    if rec:
        log.info(f"[1/5] export: {onnx_path} is current (parity record matches the weights)")
    elif cached and current_export(onnx_path, spec, weights, plan.model.provenance):
        rec = cached
        log.info(f"[1/5] export: {onnx_path} copied from the export cache {cached['from_cache']} (the same "
                 f"weights, model, images and exporter; CLSBENCH_CACHE=off or --overwrite to export anew)")
    else:
        log.info(f"[1/5] export {weights} → {onnx_path}")
        rec = export_onnx(weights, str(onnx_path), model=spec.key, parity_images=str(val),
                          provenance=plan.model.provenance)
        if rec.get("passed"):
            to_cache(key, onnx_path)
    p = rec["parity"]
    log.info(f"      {rec['weights']['verdict']}")
    log.info(f"      parity vs PyTorch float64: rel. L2 error {p['rel_l2_error']:.2e} "
             f"(bound {p.get('bound_rel_l2_error', 0):.2e}), top-1 agreement {p['top1_agreement']:.1%}")
    return str(onnx_path), rec


def _artifact_for(model_file, plan, t, work: Path, val: Path, labels, o: RunOptions):
    """What the backend runs, as the plan decided: the weights (torch, cuda), the model file
    itself, or an artifact compiled here."""
    from ..compile.artifacts import compile_model

    if plan.target.artifact == "weights":
        return plan.weights, None
    if plan.target.artifact != "compile":
        return model_file, None
    if not o.calib_data:
        log.warning(f"no --calib-data: {t.label} calibrates on the first {o.calib_images or 'up to 300'} images of "
                    f"{val}; accuracy is also reported on the images outside that set")
    log.info(f"[1/5] compile {t.label} (calibration: {o.calib_data or val})")
    rec = compile_model(model_file, backend=t.backend, precision=t.precision, output_dir=str(work / "compiled"),
                        data=str(val), calib_data=o.calib_data, calib_images=o.calib_images,
                        pp=plan.preset.pp, labels=labels, overwrite=o.overwrite)
    rec["calibrated_on_data"] = not o.calib_data
    return rec["artifact"], rec


def _preprocess(val: Path, work: Path, plan, o: RunOptions):
    from ..data.preprocess import preprocess_dir

    if plan.stream:
        log.info("[2/5] preprocess: streamed (each worker process decodes, resizes and runs; no intermediate files)")
        log.info("[3/5] dataset info: not needed when streaming")
        return None
    prep = work / "prep_dataset"
    log.info(f"[2/5] preprocess {val} → {prep} ({plan.preset.pp.describe()})")
    rep = preprocess_dir(val, prep, plan.preset.pp, workers=o.workers, overwrite=o.overwrite,
                         strict=o.strict, show_progress=o.show_progress)
    log.info(f"      {rep.written} written, {rep.resumed} already done, {len(rep.failed)} unreadable, "
             f"{len(rep.ignored)} non-image entries ignored")
    return rep


def _infer(runnable, val, rep, work: Path, plan, o: RunOptions, timer, labels) -> dict:
    from ..measure.infer import infer_offline

    result = work / "result"
    t = plan.target
    common = dict(batch_size=plan.batch_size, output=str(result), device_id=o.device_id, outfmt=o.outfmt,
                  backend=t.backend, precision=t.precision, threads=t.threads, overwrite=o.overwrite,
                  show_progress=o.show_progress, backend_options=dict(t.options),
                  percentiles=o.percentiles, labels=labels, input_identity=False,
                  resolved=plan.runnable(str(runnable)))
    if plan.stream:
        log.info(f"[4/5] infer bs{plan.batch_size} with {t.label}, streaming from {val}"
                 + (f" on Ray ({o.ray_address or 'a local instance'})" if plan.engine == "ray" else ""))
        with timer("preprocess+infer"):
            perf = infer_offline(runnable, images=str(val), preprocessing=plan.preset.pp,
                                 workers=o.workers, strict=o.strict, decode=o.decode, engine=plan.engine,
                                 ray_address=o.ray_address, ray_timeout=o.ray_timeout, **common)
    else:
        info_path = work / "prep_bin.info"
        log.info(f"[3/5] dataset info → {info_path}")
        crop = plan.preset.pp.crop
        with timer("info"):
            gen_bin_info(str(work / "prep_dataset"), str(info_path), crop, crop)
        log.info(f"[4/5] infer bs{plan.batch_size} with {t.label}")
        with timer("infer"):
            perf = infer_offline(runnable, str(info_path), **common)
    if perf.get("from_earlier_run"):
        log.info(f"      nothing left to infer: all {perf['total']} outputs exist for these inputs; the "
                 f"throughput figures are from the earlier run that wrote them ({perf.get('finished_at', '?')})")
    return perf


def _accuracy(plan, acc, outside, labels: dict, o: RunOptions) -> dict:
    from ..plan import judge_accuracy

    model = plan.model
    if acc.label_set:
        import dataclasses

        model = dataclasses.replace(model, reference_top1=None, reference_top5=None,
                                    reference_source=f"scored on {acc.label_set}: the reference is ImageNet-1k's")
    verdict = judge_accuracy(model, acc.percent(1), acc.images, o.tolerance, max(labels.values()))
    on_task = verdict["judged"] and plan.model.reference_classes
    accuracy = {"images": acc.images, "classes": plan.model.reference_classes if on_task else acc.num_classes,
                "output_width": acc.num_classes, **{f"top{k}": acc.percent(k) for k in range(1, 6)}, **verdict,
                "labels_without_output": acc.labels_without_output,
                "outputs_without_label": len(acc.unlabelled_outputs),
                "label_set": acc.label_set, "real": acc.real}
    if outside is not None:
        accuracy["outside_calibration"] = {"images": outside.images,
                                           **{f"top{k}": outside.percent(k) for k in range(1, 6)}}
    return accuracy


def _files(plan, exported, compiled, label_file, work: Path, result_json, o: RunOptions) -> dict:
    from ..runtime.timing import perf_file_name

    result = work / "result"
    files = {"weights": str(plan.weights)}
    if exported:
        files.update(onnx=str(work / "model.onnx"), parity=str(work / "model.parity.json"))
    if compiled:
        files["compiled"] = compiled["artifact"]
    if not plan.stream:
        files.update(prep_dataset=str(work / "prep_dataset"), info=str(work / "prep_bin.info"))
    if label_file:
        files["labels"] = str(label_file)
    files.update(outputs=str(dump_dir(result, o.device_id, o.outfmt)),
                 perf=str(result / perf_file_name(plan.batch_size, o.device_id)))
    files.update({"result_json": str(result_json)} if label_file else {"predictions": str(work / "predictions.csv")})
    files.update(summary_json=str(work / "summary.json"),
                 summary_md=str(work / "summary.md"), report=str(work / "report.html"))
    return files


def _summary(plan, artifacts, stages, scored, label_file, o: RunOptions, timer) -> dict:
    """summary.json: the plan, and what each stage made of it (`scored`: (accuracy, accuracy
    outside the calibration set, labels), or the predictions' record when there are no labels)."""
    (exported, compiled), (rep, perf) = artifacts, stages
    work = Path(plan.work_dir)
    result_json = work / "result.json"
    failed = ([(f["file"], f["error"]) for f in perf["failed"]] if plan.stream else rep.failed)
    spec = plan.spec
    weights = plan.weights
    labelled = plan.data.labelled
    return {
        "tool": f"clsbench {__version__}", "command": o.command, "plan": plan.as_dict(),
        "model": spec.name, "weights_tag": spec.tag,
        "weights": exported["weights"] if exported else {"path": os.path.abspath(weights),
                                                         "sha256": file_sha256(weights)},
        "parity": exported["parity"] if exported else None,
        "compiled": {k: v for k, v in compiled.items() if k != "calibration_names"} if compiled else None,
        "preprocessing": {"preset": plan.preset.describe(), **plan.preset.pp.as_dict()},
        "dataset": {"images": plan.data.images, "labels": str(Path(label_file).resolve()) if labelled else None,
                    "layout": plan.data.layout, "fingerprint": plan.data.fingerprint,
                    "preprocessed": None if plan.stream else len(rep.outputs), "streamed": plan.stream,
                    "unreadable": [{"file": f, "error": e} for f, e in failed],
                    "ignored": [] if plan.stream else rep.ignored},
        "accuracy": _accuracy(plan, *scored, o) if labelled else None,
        "predictions": None if labelled else scored,
        "performance": perf, "stage_seconds": timer.seconds,
        "files": _files(plan, exported, compiled, label_file, work, result_json, o),
    }


def summary_markdown(s: dict, acc, spec) -> str:
    perf = s["performance"]
    lines = [f"# clsbench run: {s['model']}", "",
             f"- weights: {s['weights']['path']} — {s['weights'].get('verdict', 'a model file, used as is')}"]
    if s["parity"]:
        lines.append(f"- parity vs PyTorch float64: rel. L2 error {s['parity']['rel_l2_error']:.2e}, "
                     f"top-1 agreement {s['parity']['top1_agreement']:.1%}")
    lines += [f"- preprocessing: {s['preprocessing']}", f"- measured with: {backend_line(perf)}",
              f"- stage seconds: {s['stage_seconds']}", ""]
    lines += ["## Accuracy", "", accuracy_markdown(acc, spec)] if acc else _predictions_markdown(s["predictions"])
    lines += ["## Throughput", "", "| stage | figure | value |", "|---|---|---:|"]
    lines += [f"| {a} | {b} | {c} |" for a, b, c in perf_rows(perf)]
    lines += ["", "## Files", ""] + [f"- {k}: `{v}`" for k, v in s["files"].items()]
    return "\n".join(lines) + "\n"


def _predictions_markdown(p: dict) -> list[str]:
    lines = ["## Predictions (no labels: no accuracy)", "", f"{p['images']} images; all in `{p['file']}`.", "",
             "| image | #1 | #2 | #3 |", "|---|---|---|---|"]
    for row in p["shown"]:
        lines.append(f"| {row['image']} | " + " | ".join(f"{c['name'] or c['class']} ({c['prob']:.1%})"
                                                       for c in row["top5"][:3]) + " |")
    return lines + [""]
