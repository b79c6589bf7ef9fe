"""`clsbench run`: the guide's steps 3.1, 4.2, 4.3, 5.2 and 6.1 in one resumable command.

Work-directory layout (every file the guide's scripts would make, in the guide's formats):
    model.onnx, model.parity.json   export + parity with PyTorch
    prep_dataset/<stem>.bin         preprocessed tensors
    prep_bin.info                   dataset info file
    result/dumpOutput_device<d>/    one output per image; result/perf_vision_*.txt|json
    result.json                     accuracy, the guide's JSON
    summary.json, summary.md        everything above in one record
Each step is skipped when its output is already complete, so an interrupted run resumes.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

from . import ClsbenchError, __version__
from ._io import atomic_write_json, atomic_write_text
from .dataset import gen_bin_info, labels_from_class_folders, list_images, write_labels
from .evaluate import evaluate, write_result
from .models import get_model
from .perf import perf_file_name
from .report import accuracy_markdown, backend_line, perf_rows


def locate_dataset(data: str | os.PathLike, work: Path) -> tuple[Path, Path]:
    """(image dir, label file) of an ImageNet-layout directory: val/ + val_label.txt."""
    data = Path(data)
    val = data / "val" if (data / "val").is_dir() else data
    for cand in (data / "val_label.txt", val / "val_label.txt"):
        if cand.is_file():
            return val, cand
    listing = list_images(val)
    if listing.layout == "class-folders":
        labels = work / "val_label.txt"
        write_labels(labels, labels_from_class_folders(listing))
        return val, labels
    raise ClsbenchError(f"{data}: no val_label.txt next to the images, and no class folders "
                        f"to derive labels from")


def _export_is_current(onnx_path: Path, weights: str, model: str) -> bool:
    from .export import read_parity

    rec = read_parity(str(onnx_path))
    if not (onnx_path.is_file() and rec and rec.get("passed") and rec.get("model") == model):
        return False
    from ._io import file_sha256

    return rec["weights"]["sha256"] == file_sha256(weights)


def run(weights: str, data: str, *, model: str = "mnasnet1_0", batch_size: int = 16,
        work_dir: str = "runs/latest", device_id: int = 0, threads: int | None = None,
        backend: str = "onnxruntime", precision: str = "fp32", outfmt: str = "txt",
        workers: int | None = None,
        tolerance: float = 1.0, overwrite: bool = False, strict: bool = False,
        stream: bool = False, show_progress: bool = True) -> dict:
    from .export import export_onnx, read_parity
    from .infer import infer_offline
    from .preprocess import preprocess_dir
    from .ui import info

    spec = get_model(model)
    work = Path(work_dir)
    work.mkdir(parents=True, exist_ok=True)
    val, label_file = locate_dataset(data, work)

    onnx_path = work / "model.onnx"
    if not overwrite and _export_is_current(onnx_path, weights, spec.name):
        info(f"[1/5] export: {onnx_path} is current (parity record matches the weights)")
        exported = read_parity(str(onnx_path))
    else:
        info(f"[1/5] export {weights} → {onnx_path}")
        exported = export_onnx(weights, str(onnx_path), model=spec.name, parity_images=str(val))
    p = exported["parity"]
    info(f"      {exported['weights']['verdict']}")
    info(f"      parity vs PyTorch: rel. L2 error {p['rel_l2_error']:.2e}, "
         f"top-1 agreement {p['top1_agreement']:.1%}, top-5 overlap {p['top5_overlap']:.1%}")

    # the torch and cuda backends run the weights themselves, the others the exported ONNX
    runnable = weights if backend in ("torch", "cuda") else str(onnx_path)
    prep = work / "prep_dataset"
    info_path = work / "prep_bin.info"
    result = work / "result"
    crop = spec.preprocessing.crop
    if stream:
        info("[2/5] preprocess: streamed (each worker process decodes, resizes and runs; no intermediate files)")
        info("[3/5] dataset info: not needed when streaming")
        info(f"[4/5] infer bs{batch_size} with {backend}, streaming from {val}")
        perf = infer_offline(runnable, images=str(val), preprocessing=spec.preprocessing,
                             workers=workers, strict=strict, batch_size=batch_size, output=str(result),
                             device_id=device_id, outfmt=outfmt, backend=backend, precision=precision,
                             threads=threads, overwrite=overwrite, show_progress=show_progress)
        failed = [(f["file"], f["error"]) for f in perf["failed"]]
        layout, preprocessed, ignored = list_images(val).layout, perf["total"] - len(failed), []
    else:
        info(f"[2/5] preprocess {val} → {prep} ({spec.preset} preset)")
        rep = preprocess_dir(val, prep, spec.preprocessing, workers=workers, overwrite=overwrite,
                             strict=strict, show_progress=show_progress)
        info(f"      {rep.written} written, {rep.resumed} already done, {len(rep.failed)} unreadable, "
             f"{len(rep.ignored)} non-image entries ignored")
        failed, layout, preprocessed, ignored = rep.failed, rep.layout, len(rep.outputs), rep.ignored
        info(f"[3/5] dataset info → {info_path}")
        gen_bin_info(str(prep), str(info_path), crop, crop)
        info(f"[4/5] infer bs{batch_size} with {backend}")
        perf = infer_offline(runnable, str(info_path), batch_size=batch_size, output=str(result),
                             device_id=device_id, outfmt=outfmt, backend=backend, precision=precision,
                             threads=threads, overwrite=overwrite, show_progress=show_progress)
    perf_json = result / perf_file_name(batch_size, device_id).replace(".txt", ".json")
    if not perf["samples"] and perf_json.is_file():
        perf = json.loads(perf_json.read_text())  # nothing left to run: the earlier figures stand

    info("[5/5] evaluate")
    dump = result / f"dumpOutput_device{device_id}"
    acc = evaluate(dump, label_file, strict=strict)
    result_json = write_result(acc, work, "result.json")

    summary = {
        "tool": f"clsbench {__version__}", "model": spec.name, "weights": exported["weights"],
        "parity": p, "preprocessing": {"preset": spec.preset, **spec.preprocessing.as_dict()},
        "dataset": {"images": str(val.resolve()), "labels": str(label_file.resolve()),
                    "layout": layout, "preprocessed": preprocessed, "streamed": stream,
                    "unreadable": [{"file": f, "error": e} for f, e in failed],
                    "ignored": ignored},
        "accuracy": {"images": acc.images, "classes": acc.num_classes,
                     **{f"top{k}": acc.percent(k) for k in range(1, 6)},
                     "reference_top1": spec.top1, "reference_top5": spec.top5,
                     "top1_drop": spec.top1 - acc.percent(1), "tolerance": tolerance,
                     "within_tolerance": spec.top1 - acc.percent(1) <= tolerance,
                     "labels_without_output": acc.labels_without_output,
                     "outputs_without_label": len(acc.unlabelled_outputs)},
        "performance": perf,
        "files": {"onnx": str(onnx_path), "parity": str(onnx_path.with_suffix("")) + ".parity.json",
                  **({} if stream else {"prep_dataset": str(prep), "info": str(info_path)}),
                  "outputs": str(dump),
                  "perf": str(result / perf_file_name(batch_size, device_id)),
                  "perf_json": str(perf_json), "result_json": str(result_json),
                  "summary_json": str(work / "summary.json"), "summary_md": str(work / "summary.md")},
    }
    atomic_write_json(work / "summary.json", summary)
    atomic_write_text(work / "summary.md", summary_markdown(summary, acc, spec))
    summary["_accuracy"] = acc
    return summary


def summary_markdown(s: dict, acc, spec) -> str:
    perf = s["performance"]
    lines = [f"# clsbench run: {s['model']}", "",
             f"- weights: {s['weights']['path']} — {s['weights']['verdict']}",
             f"- parity vs PyTorch: rel. L2 error {s['parity']['rel_l2_error']:.2e}, "
             f"top-1 agreement {s['parity']['top1_agreement']:.1%}",
             f"- preprocessing: {s['preprocessing']}",
             f"- measured with: {backend_line(perf)}", "",
             "## Accuracy", "", accuracy_markdown(acc, spec),
             "## Throughput", "", "| stage | figure | value |", "|---|---|---:|"]
    lines += [f"| {a} | {b} | {c} |" for a, b, c in perf_rows(perf)]
    lines += ["", "## Files", ""] + [f"- {k}: `{v}`" for k, v in s["files"].items()]
    return "\n".join(lines) + "\n"
