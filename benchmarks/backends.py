#!/usr/bin/env python3
"""Backends x precisions for MnasNet1.0 on this CPU, as ratios over PyTorch eager fp32.

Uses the trained proxy weights (src/clsbench/data/proxy_mnasnet1_0.pth), so the top-1 agreement
of each reduced-precision artifact with fp32 (held-out proxy-task images, from its
`clsbench compile` parity record) means something. For each batch size, every configuration
is timed in turn, `--runs` rounds interleaved in one process; medians are quoted.

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

from clsbench.backends import get_backend  # noqa: E402
from clsbench.backends import default_threads  # noqa: E402
from clsbench.compile import compile_model  # noqa: E402
from clsbench.export import export_onnx  # noqa: E402
from clsbench.perf import environment  # noqa: E402
from clsbench.proxy_task import write_images  # noqa: E402


def rate(rt, x, seconds: float) -> float:
    rt.run(x)
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds or n < 3:
        rt.run(x)
        n += 1
    return n * len(x) / (time.perf_counter() - t0)


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
    configs = [("torch", "fp32", a.weights, None), ("onnxruntime", "fp32", onnx_path, None)]
    agreement = {("torch", "fp32"): "reference", ("onnxruntime", "fp32"): "1.000 (export parity)"}
    for backend, precision in [("onnxruntime", "int8"), ("openvino", "fp32"), ("openvino", "bf16"),
                               ("openvino", "int8")]:
        rec = compile_model(onnx_path, backend=backend, precision=precision, output_dir=str(work / "c"),
                            data=str(work / "data" / "val"), calib_images=300, parity_images=200)
        configs.append((backend, precision, rec["artifact"], rec))
        agreement[(backend, precision)] = f"{rec['parity']['top1_agreement']:.3f}"

    env = environment()
    print(f"# MnasNet1.0, img/s (median of {a.runs} interleaved runs, {a.seconds:.0f} s each), "
          f"{a.threads} threads, random input")
    print(f"# {env['cpu']}, {env['logical_cpus']} CPUs, onnxruntime {env.get('onnxruntime')}, "
          f"clsbench {env['clsbench']}")
    versions = {}
    print()
    print("| batch | config | img/s | × eager fp32 | top-1 agreement with fp32 (held-out, 200 imgs) |")
    print("|---:|---|---:|---:|---:|")
    for bs in [int(b) for b in a.batches.split(",")]:
        x = np.random.default_rng(0).standard_normal((bs, 3, 224, 224), dtype=np.float32)
        rts = []
        for backend, precision, model, _ in configs:
            rt = get_backend(backend)(model, batch_size=bs, threads=a.threads, precision=precision)
            versions[backend] = rt.describe()["version"]
            rts.append(rt)
        samples = [[] for _ in configs]
        for _ in range(a.runs):
            for i, rt in enumerate(rts):
                samples[i].append(rate(rt, x, a.seconds))
        med = [statistics.median(s) for s in samples]
        for (backend, precision, _, _), m in zip(configs, med):
            print(f"| {bs} | {backend} {precision} | {m:.1f} | {m / med[0]:.2f} | "
                  f"{agreement[(backend, precision)]} |", flush=True)
        del rts
    print()
    print("# versions: " + ", ".join(f"{k} {v}" for k, v in versions.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
