#!/usr/bin/env python3
"""Backends x precisions for MnasNet1.0 on this CPU, as ratios over PyTorch eager fp32.

Uses the trained proxy weights (src/clsbench/data/proxy_mnasnet1_0.pth) and 500 labelled
images of its task: int8 calibrates on the first 300, the accuracy-controlled int8
(`--max-drop 0.5`) is steered by the next 100, and every configuration's Top-1 is measured
here on the last 100 (held out from all of them) beside its top-1 agreement with fp32 there.
OpenVINO configs run with the latency hint (one synchronous request) and, marked "tput",
the throughput hint (streams and requests in flight, `run_many`). For each batch size, every
configuration is timed in turn, `--runs` rounds interleaved in one process; medians quoted.

    python benchmarks/backends.py [--batches 1,8,32] [--runs 5] [--seconds 2]
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

import numpy as np  # noqa: E402

from clsbench.runtime.backends import get_backend  # noqa: E402
from clsbench.runtime.backends import default_threads  # noqa: E402
from clsbench.compile.artifacts import compile_model  # noqa: E402
from clsbench.compile.export import export_onnx  # noqa: E402
from clsbench.runtime.timing import environment  # noqa: E402
from clsbench.data.proxy_task import write_images  # noqa: E402


def rate(rt, x, seconds: float) -> float:
    rt.run(x)
    n, t0 = 0, time.perf_counter()
    if getattr(rt, "hint", None) == "throughput":
        def batches():
            nonlocal n
            while time.perf_counter() - t0 < seconds or n < 3:
                n += 1
                yield x
        for _ in rt.run_many(batches()):
            pass
        return n * len(x) / (time.perf_counter() - t0)
    while time.perf_counter() - t0 < seconds or n < 3:
        rt.run(x)
        n += 1
    return n * len(x) / (time.perf_counter() - t0)


def held_out(work: Path, n: int = 100):
    """The last n proxy-task images, preprocessed exactly, and their labels."""
    from clsbench.data.folders import read_labels
    from clsbench.model.table import get_model
    from clsbench.data.preprocess import preprocess_image

    labels = read_labels(str(work / "data" / "val_label.txt"))
    images = sorted((work / "data" / "val").iterdir())[-n:]
    pp = get_model("mnasnet1_0").preprocessing
    return (np.stack([preprocess_image(p, pp) for p in images]),
            np.array([labels[p.name.split(".")[0]] for p in images]))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batches", default="1,8,32")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--seconds", type=float, default=2.0, help="timed seconds per configuration per run")
    ap.add_argument("--threads", type=int, default=default_threads())
    ap.add_argument("--weights", default=str(ROOT / "src/clsbench/data/proxy_mnasnet1_0.pth"))
    a = ap.parse_args()

    work = Path(tempfile.mkdtemp(prefix="clsbench-backends-"))
    onnx_path = str(work / "mnasnet1.0.onnx")
    export_onnx(a.weights, onnx_path)
    write_images(work / "data", 500, seed=7)
    configs = [("torch", "fp32", a.weights, {}), ("onnxruntime", "fp32", onnx_path, {})]
    labels_file = str(work / "data" / "val_label.txt")
    from clsbench.data.folders import read_labels

    labels = read_labels(labels_file)
    for backend, precision, extra in [("onnxruntime", "int8", {}), ("openvino", "fp32", {}), ("openvino", "bf16", {}),
                                      ("openvino", "int8", {}), ("openvino", "int8", {"max_drop": 0.5})]:
        rec = compile_model(onnx_path, backend=backend, precision=precision,
                            output_dir=str(work / ("ctl" if extra else "c")), data=str(work / "data" / "val"),
                            calib_images=300, parity_images=100, labels=labels, tune_images=100, **extra)
        configs.append((backend, precision, rec["artifact"], {"control": bool(extra)}))
        if backend == "openvino":
            configs.append((backend, precision, rec["artifact"], {"control": bool(extra), "hint": "throughput"}))
    x_held, y_held = held_out(work)
    quality = {}
    for backend, precision, model, opts in configs:
        rt = get_backend(backend)(model, batch_size=len(x_held), threads=a.threads, precision=precision)
        quality[model, precision] = rt.run(x_held)
    ref = quality[onnx_path, "fp32"]

    def label(backend, precision, opts):
        return (f"{backend} {precision}" + (" max-drop 0.5" if opts.get("control") else "")
                + (" tput" if opts.get("hint") else ""))

    env = environment()
    print(f"# MnasNet1.0 proxy, img/s (median of {a.runs} interleaved runs, {a.seconds:g} s each), "
          f"{a.threads} threads, random input")
    print(f"# {env['cpu']}, {env['logical_cpus']} CPUs, onnxruntime {env.get('onnxruntime')}, "
          f"clsbench {env['clsbench']}")
    versions = {}
    print()
    print(f"| batch | config | img/s | × eager fp32 | top-1 agreement with fp32 | Top-1 % (fp32 "
          f"{100 * np.mean(ref.argmax(1) == y_held):.1f}) | drop (points) |")
    print("|---:|---|---:|---:|---:|---:|---:|")
    for bs in [int(b) for b in a.batches.split(",")]:
        x = np.random.default_rng(0).standard_normal((bs, 3, 224, 224), dtype=np.float32)
        rts = []
        for backend, precision, model, opts in configs:
            kw = {"hint": opts["hint"]} if opts.get("hint") else {}
            rt = get_backend(backend)(model, batch_size=bs, threads=a.threads, precision=precision, **kw)
            versions[backend] = rt.describe()["version"]
            rts.append(rt)
        samples = [[] for _ in configs]
        for _ in range(a.runs):
            for i, rt in enumerate(rts):
                samples[i].append(rate(rt, x, a.seconds))
        med = [statistics.median(s) for s in samples]
        for (backend, precision, model, opts), m in zip(configs, med):
            q = quality[model, precision]
            top1 = 100 * np.mean(q.argmax(1) == y_held)
            agree = np.mean(q.argmax(1) == ref.argmax(1))
            print(f"| {bs} | {label(backend, precision, opts)} | {m:.1f} | {m / med[0]:.2f} | {agree:.3f} | "
                  f"{top1:.1f} | {100 * np.mean(ref.argmax(1) == y_held) - top1:+.1f} |", flush=True)
        del rts
    print(f"\n# Top-1 and agreement on the last {len(y_held)} of 500 labelled proxy-task images, held out from "
          f"calibration (first 300) and from the accuracy control's tuning images (next 100)")
    print()
    print("# versions: " + ", ".join(f"{k} {v}" for k, v in versions.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
