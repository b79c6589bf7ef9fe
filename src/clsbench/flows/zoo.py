"""Many models × configs in one resumable run: `clsbench zoo`.

For each model: its weights (`<weights_dir>/<torchvision's file name>` or `<name>.pth`; or,
asked for with `stand_in_weights`, realistic stand-in weights: right for speed, meaningless
for accuracy, and marked so in every row), the export with its parity check (reused when a
passing one is there), then `perf.sweep` over the configs and batch sizes with one checkpoint
per model, so a killed run measures only what is missing. Writes zoo.csv (timm's benchmark
CSV columns, plus backend, precision, reference accuracy, weights and the environment),
zoo.md, zoo.json and zoo.png: measured img/s (log x) against each model's reference Top-1,
one mark per model × config, with each config's accuracy/speed frontier. The reference is the
plan's (plan.resolve_runnable: by the weights' provenance, recorded in every row): official
weights get torchvision's figure, the proxy its own record, other and stand-in weights none,
and only official weights' rows are on the plot.
"""
from __future__ import annotations

import csv
import io
import logging
import os
from dataclasses import dataclass
from pathlib import Path

from ..defaults import default
from .. import ClsbenchError

log = logging.getLogger("clsbench")

CSV_COLUMNS = ["model", "infer_samples_per_sec", "infer_step_time", "infer_batch_size", "infer_img_size",
               "infer_gflops", "param_count", "backend", "precision", "reference_top1", "reference_top5",
               "weights", "provenance", "provenance_text", "reference_source", "threads", "cpu", "runtime_version",
               "clsbench"]


def parse_models(text: str) -> list:
    from ..model.table import all_models, get_model

    if text.strip() == "all":
        return list(all_models(""))
    specs = [get_model(k.strip()) for k in text.split(",") if k.strip()]
    if not specs:
        raise ClsbenchError("--models: give at least one NAME[:TAG], or all")
    return specs


def find_weights(spec, weights_dir: str | None, work: Path, stand_in: bool) -> tuple[str, str]:
    """(path, kind): the user's file, else stand-in weights when allowed, else an error."""
    names = ([spec.official.filename] if spec.official else []) + [f"{spec.name}.pth"]
    for n in names if weights_dir else []:
        p = os.path.join(weights_dir, n)
        if os.path.isfile(p):
            return p, "given"
    if not stand_in:
        where = f"in {weights_dir} " if weights_dir else ""
        raise ClsbenchError(f"{spec.key}: no weights {where}(looked for {', '.join(names)}); give --weights-dir, "
                            f"or --stand-in-weights to measure speed with realistic random weights")
    path = work / "weights" / f"{spec.key.replace(':', '_')}.pth"
    if not path.is_file():
        from .demo import calibration_batch
        from ..model.stand_in import save_realistic_weights

        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        save_realistic_weights(spec, calibration_batch(spec.preprocessing, n=8), str(tmp))
        os.replace(tmp, path)
    return str(path), "stand-in (speed only)"


def exported(spec, weights: str, work: Path, stand_in: bool = False) -> str:
    """The model's ONNX; stand-in weights are recorded in it as such (no run judges their accuracy)."""
    from ..compile.export import current_export, export_onnx

    provenance = "stand-in" if stand_in else None
    onnx_path = work / "models" / f"{spec.key.replace(':', '_')}.onnx"
    if current_export(onnx_path, spec, weights, provenance):
        return str(onnx_path)
    onnx_path.parent.mkdir(parents=True, exist_ok=True)
    log.info(f"export {spec.key} → {onnx_path}")
    export_onnx(weights, str(onnx_path), model=spec.key, parity_batch=2, provenance=provenance)
    return str(onnx_path)


@dataclass
class ZooOptions:
    configs: str = default("zoo", "configs")
    batches: str = default("zoo", "batches")
    output: str = default("zoo", "output")
    weights_dir: str | None = None
    stand_in_weights: bool = False
    duration: float = default("zoo", "duration")
    iterations: int = default("zoo", "iterations")
    warmup: int = default("zoo", "warmup")
    threads: int | None = None
    show_progress: bool = True


def run_zoo(models: str, options: ZooOptions | None = None, **kw) -> dict:
    """Each model: its weights, its export, the perf sweep of the configs; one checkpoint per
    model under cells/, so a rerun measures only what is missing."""
    from .._io import atomic_write_json, atomic_write_text, folder_lock
    from ..runtime.timing import Timing, parse_batches
    from ..measure.sweep import resolve_configs, sweep
    from ..plan import RunnableRequest, resolve_runnable
    from ..ui import progress

    o = options or ZooOptions(**kw)
    specs = parse_models(models)
    sizes = parse_batches(o.batches)
    timing = Timing(o.duration, o.iterations, o.warmup, o.threads)
    work = Path(o.output)
    (work / "cells").mkdir(parents=True, exist_ok=True)
    rows, results = [], {}
    with folder_lock(work), progress(len(specs), "zoo", o.show_progress) as advance:
        for spec in specs:
            weights, kind = find_weights(spec, o.weights_dir, work, o.stand_in_weights)
            onnx_path = exported(spec, weights, work, stand_in=kind.startswith("stand-in"))
            cfgs = resolve_configs(o.configs, model=onnx_path, weights=weights, compiled=str(work / "compiled"))
            res = sweep(cfgs, sizes, timing,
                        checkpoint=str(work / "cells" / f"{spec.key.replace(':', '_')}.json"))
            plan = resolve_runnable(onnx_path, RunnableRequest()).as_dict()  # the reference, by provenance
            results[spec.key] = {**res, "plan": plan}
            rows += [csv_row(spec, r, kind, res["environment"], plan["model"]) for r in res["rows"]]
            advance()
        atomic_write_text(work / "zoo.csv", to_csv(rows))
        atomic_write_text(work / "zoo.md", to_markdown(rows))
        atomic_write_json(work / "zoo.json", {"rows": rows, "sweeps": results})
        png = frontier_plot(rows, str(work / "zoo.png"))
    return {"rows": rows, "files": {"csv": str(work / "zoo.csv"), "md": str(work / "zoo.md"),
                                    "json": str(work / "zoo.json"), "png": png}}


def csv_row(spec, r: dict, weights_kind: str, env: dict, model: dict) -> dict:
    """One row; its reference Top-1/Top-5 are the plan's (`model`: plan.ModelPlan.as_dict()),
    None unless the weights are official (torchvision's table) or the proxy (its own record)."""
    rt = r["runtime"]
    return {"model": spec.key, "infer_samples_per_sec": round(r["throughput_compute"], 2),
            "infer_step_time": round(r["latency_ms"]["p50"], 3) if r["latency_ms"] else None, "infer_batch_size": r["batch_size"],
            "infer_img_size": spec.preprocessing.crop, "infer_gflops": spec.gflops,
            "param_count": round(spec.params / 1e6, 2), "backend": r["backend"], "precision": r["precision"],
            "reference_top1": model["reference_top1"], "reference_top5": model["reference_top5"],
            "weights": weights_kind, "provenance": model["provenance"], "provenance_text": model["provenance_text"],
            "reference_source": model["reference_source"],
            "threads": rt.get("threads"), "cpu": env.get("cpu"), "runtime_version": rt.get("version"),
            "clsbench": env.get("clsbench")}


def to_csv(rows: list[dict]) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=CSV_COLUMNS, lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    return buf.getvalue()


def on_plot(r: dict) -> bool:
    """Whether a row is on zoo.png, whose y axis is the reference ImageNet Top-1: only rows of
    official weights with a published figure (the proxy's reference is its own 16-class task's;
    stand-in and other weights have none)."""
    return r.get("reference_top1") is not None and r.get("provenance") == "official"


def _weights(r: dict) -> str:
    return f"{r['weights']}, {r['provenance']}" if r.get("provenance") else r["weights"]


def to_markdown(rows: list[dict]) -> str:
    head = ["model", "backend", "precision", "batch", "img/s", "p50 ms/batch", "ref. Top-1", "GFLOPS", "params (M)",
            "weights"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    best = {}
    for r in rows:
        best[r["model"]] = max(best.get(r["model"], 0.0), r["infer_samples_per_sec"])
    # models fastest first; a model's own rows by backend, precision and batch, smallest first
    for r in sorted(rows, key=lambda r: (-best[r["model"]], r["model"], r["backend"], r["precision"],
                                         r["infer_batch_size"])):
        ref = "–" if r["reference_top1"] is None else r["reference_top1"]
        lines.append(f"| {r['model']} | {r['backend']} | {r['precision']} | {r['infer_batch_size']} | "
                     f"{r['infer_samples_per_sec']:,.1f} | {r['infer_step_time']:.2f} | {ref} | "
                     f"{r['infer_gflops']} | {r['param_count']} | {_weights(r)} |")
    env = rows[0] if rows else {}
    lines += ["", f"CPU: {env.get('cpu')}, {env.get('threads')} threads; clsbench {env.get('clsbench')}. "
              "img/s is compute only: batch × runs / time inside the runtime (as `clsbench perf`); "
              "ref. Top-1 is not measured here: it is the reference of the weights as their provenance decides."]
    models = {r["model"]: r for r in rows}
    lines += [""] + [f"- {k}: {r['provenance_text']}; ref. Top-1: "
                     + (f"{r['reference_top1']} ({r.get('reference_source')})" if r["reference_top1"] is not None
                        else "none") for k, r in models.items() if r.get("provenance_text")]
    off = [k for k, r in models.items() if not on_plot(r)]
    if off:
        lines += ["", f"Not on zoo.png (its y axis is the reference ImageNet Top-1 of official weights): "
                      f"{', '.join(off)}."]
    return "\n".join(lines) + "\n"


def frontier(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """The points no other point beats in both speed and accuracy, fastest first."""
    best, out = float("-inf"), []
    for x, y in sorted(points, key=lambda p: (-p[0], -p[1])):
        if y > best:
            out.append((x, y))
            best = y
    return out


def frontier_plot(rows: list[dict], path: str) -> str | None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    fig, ax = plt.subplots(figsize=(9, 6), dpi=120)
    groups: dict = {}
    for r in rows:
        groups.setdefault((r["backend"], r["precision"], r["infer_batch_size"]), []).append(r)
    markers = "osD^vP*X"
    for i, ((b, p, bs), rs) in enumerate(sorted(groups.items())):
        pts = [(r["infer_samples_per_sec"], r["reference_top1"]) for r in rs if on_plot(r)]
        if not pts:
            continue
        sc = ax.scatter(*zip(*pts), s=36, marker=markers[i % len(markers)], label=f"{b} {p}, batch {bs}",
                        zorder=3, alpha=0.85)
        f = sorted(frontier(pts))
        ax.plot(*zip(*f), color=sc.get_facecolor()[0], alpha=0.5, lw=1.5, zorder=2)
    fastest: dict = {}  # one label per model, at its fastest mark
    for r in rows:
        if on_plot(r) and r["infer_samples_per_sec"] > fastest.get(r["model"], {}).get(
                "infer_samples_per_sec", 0):
            fastest[r["model"]] = r
    import math

    placed: list = []
    for r in sorted(fastest.values(), key=lambda r: r["infer_samples_per_sec"]):
        x, y = math.log10(r["infer_samples_per_sec"]), r["reference_top1"]
        near = sum(1 for px, py in placed if abs(px - x) < 0.25 and abs(py - y) < 0.8)  # label would overlap
        placed.append((x, y))
        ax.annotate(r["model"].split(":")[0], (r["infer_samples_per_sec"], y), textcoords="offset points",
                    xytext=(5, 3 - 10 * near), fontsize=7, color="#333")
    ax.set_xscale("log")
    ax.set_xlabel("measured images/s (compute only, log scale)")
    ax.set_ylabel("reference ImageNet Top-1 (%)")
    cpu = rows[0]["cpu"] if rows else ""
    ax.set_title(f"Accuracy / speed frontier on this machine\n{cpu}, {rows[0]['threads'] if rows else ''} threads",
                 fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    if fastest:
        ax.legend(fontsize=8, loc="lower left")
    else:
        ax.text(0.5, 0.5, "no row has a reference ImageNet Top-1 (see zoo.md)", transform=ax.transAxes,
                ha="center", fontsize=9, color="#666")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path
