#!/usr/bin/env python3
"""Which int8 settings keep accuracy: calibration size, calibration method, per-channel
weights, bias correction — measured, to decide clsbench's defaults.

    python benchmarks/quant.py [--images 1000] [--calib 300]

The trained proxy (src/clsbench/data/proxy_mnasnet1_0.pth) and --images labelled images of
its task: calibration takes the first --calib (or 32), Top-1 is measured on every image after
position --calib (held out from all variants). For each variant: Top-1, its drop against
fp32 with a 95 % interval from the paired per-image differences, top-1 agreement with fp32,
the mean relative logit error against fp32, and compile seconds. ONNX Runtime variants use
compile's own quantizer (`ort_control.quantizer`: QDQ, u8 activations, s8 weights; its
calibration ranges cached per data and method, so a variant that changes only the weights
reuses them) with one setting changed; OpenVINO variants call nncf.quantize (MIXED preset)
with one setting changed. The first row of each backend is
clsbench's default.

    python benchmarks/quant.py --control [--batch 8] [--runs 5]

Accuracy control where it acts: 160 proxy-task images (seed 11; the first 32 calibrate, the
next 64 steer, the last 64 are held out). For ONNX Runtime and OpenVINO: fp32, plain int8 and
`clsbench compile --max-drop` int8 — Top-1 on the held-out images, what stayed in float, the
compile seconds, and images/s at --batch (random input, every configuration timed in turn,
--runs rounds of 2 s, medians) as a ratio to plain int8: the speed the kept nodes cost.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

import numpy as np  # noqa: E402


def ort_variant(pre: str, dst: str, calib: np.ndarray, **settings) -> None:
    """clsbench's own ONNX Runtime quantizer (compile's), with one setting changed."""
    from clsbench.compile.ort_control import quantizer

    quantizer(pre, calib, Path(dst).parent, **settings)(dst, [])


def ov_variant(src: str, dst: str, calib: np.ndarray, **kw) -> None:
    import nncf
    import openvino as ov

    model = ov.Core().read_model(src)
    ds = nncf.Dataset([calib[i:i + 1] for i in range(len(calib))])
    model = nncf.quantize(model, ds, subset_size=len(calib), preset=nncf.QuantizationPreset.MIXED, **kw)
    ov.save_model(model, dst, compress_to_fp16=False)


def logits(backend: str, model: str, x: np.ndarray, precision: str = "int8") -> np.ndarray:
    from clsbench.runtime.backends import open_backend
    from clsbench.runtime.stages import run_all

    return run_all(open_backend(backend, model, batch_size=16, precision=precision), x, 16)


def rel_err(got: np.ndarray, ref: np.ndarray) -> float:
    """Mean over images of ||got - ref|| / ||ref||: tells apart variants whose predictions agree."""
    return float(np.mean(np.linalg.norm(got - ref, axis=1) / np.linalg.norm(ref, axis=1)))


def control(batch: int, runs: int) -> int:
    import statistics

    from clsbench.runtime.backends import open_backend
    from clsbench.compile.artifacts import compile_model
    from clsbench.data.folders import read_labels
    from clsbench.compile.export import export_onnx
    from clsbench.model.table import get_model
    from clsbench.runtime.timing import environment
    from clsbench.data.preprocess import load_folder
    from clsbench.data.proxy_task import write_images

    work = Path(tempfile.mkdtemp(prefix="clsbench-control-"))
    src = str(work / "proxy.onnx")
    export_onnx(str(ROOT / "src/clsbench/data/proxy_mnasnet1_0.pth"), src)
    write_images(work / "data", 160, seed=11)
    data, labels = str(work / "data" / "val"), read_labels(str(work / "data" / "val_label.txt"))
    held = load_folder(data, get_model("mnasnet1_0").preprocessing, 96, 64)
    y = np.array([labels[n] for n in held.names])
    rows = [("onnxruntime", "fp32", src, None, "–", 0.0)]
    for backend, bound in (("onnxruntime", 0.5), ("openvino", 0.0)):
        for max_drop in (None, bound):
            rec = compile_model(src, backend=backend, precision="int8", output_dir=str(work / f"{backend}-{max_drop}"),
                                data=data, calib_images=32, parity_images=0, labels=labels, tune_images=64,
                                max_drop=max_drop)
            c = rec.get("accuracy_control") or {}
            kept = c.get("kept_in_float") or [k for n in rec["notes"] if "reverted back" in n
                                               for k in n.rsplit(": ", 1)[1].split(", ")]
            rows.append((backend, "int8" if max_drop is None else f"int8 --max-drop {max_drop}", rec["artifact"],
                         max_drop, f"{len(kept)}: {', '.join(kept)}" if max_drop is not None else "–",
                         rec["compile_seconds"]))
    x = np.random.default_rng(0).standard_normal((batch, 3, 224, 224), dtype=np.float32)
    rts = [open_backend(b, m, batch_size=batch, precision=None if m != src else "fp32") for b, _, m, *_ in rows]
    rates = [[] for _ in rows]
    for _ in range(runs):
        for i, rt in enumerate(rts):
            rt.run(x)
            n, t0 = 0, time.perf_counter()
            while time.perf_counter() - t0 < 2 or n < 3:
                rt.run(x)
                n += 1
            rates[i].append(n * batch / (time.perf_counter() - t0))
    med = [statistics.median(r) for r in rates]
    env = environment()
    print(f"# accuracy control where it acts: 160 proxy-task images (32 calibrate, 64 steer, 64 held out); "
          f"batch {batch}, median of {runs} interleaved 2-s runs; {env['cpu']}, {env['logical_cpus']} CPUs\n")
    print("| backend | artifact | held-out Top-1 % | kept in float | compile s | img/s | × plain int8 |")
    print("|---|---|---:|---|---:|---:|---:|")
    for i, (backend, name, model, max_drop, kept, secs) in enumerate(rows):
        from clsbench.runtime.stages import run_all

        got = run_all(open_backend(backend, model, batch_size=16, precision=None if model != src else "fp32"),
                      held.x, 16)
        plain = next((j for j, r in enumerate(rows) if r[0] == backend and r[1] == "int8"), i)
        print(f"| {backend} | {name} | {100 * np.mean(got.argmax(1) == y):.2f} | {kept} | {secs} | {med[i]:.1f} | "
              f"{med[i] / med[plain]:.2f} |")
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, default=1000)
    ap.add_argument("--calib", type=int, default=300)
    ap.add_argument("--control", action="store_true", help="accuracy control where it acts, and its speed cost")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--runs", type=int, default=5)
    a = ap.parse_args()
    if a.control:
        return control(a.batch, a.runs)

    from onnx import version_converter
    from onnxruntime.quantization.shape_inference import quant_pre_process

    import onnx
    from clsbench.data.folders import read_labels
    from clsbench.compile.export import export_onnx
    from clsbench.model.table import get_model
    from clsbench.runtime.timing import environment
    from clsbench.data.preprocess import load_folder
    from clsbench.data.proxy_task import write_images

    work = Path(tempfile.mkdtemp(prefix="clsbench-quant-"))
    src = str(work / "proxy.onnx")
    export_onnx(str(ROOT / "src/clsbench/data/proxy_mnasnet1_0.pth"), src)
    write_images(work / "data", a.images, seed=5)
    pp = get_model("mnasnet1_0").preprocessing
    labels = read_labels(str(work / "data" / "val_label.txt"))
    calib = load_folder(str(work / "data" / "val"), pp, 0, a.calib)
    held = load_folder(str(work / "data" / "val"), pp, calib.end, a.images)
    y = np.array([labels[n] for n in held.names])
    pre = str(work / "pre.onnx")
    onnx.save(version_converter.convert_version(onnx.load(src), 13), str(work / "op13.onnx"))
    quant_pre_process(str(work / "op13.onnx"), pre, skip_symbolic_shape=False)
    ref = logits("onnxruntime", src, held.x, "fp32")
    ok_ref = ref.argmax(1) == y
    small = calib.x[:32]
    variants = [
        ("onnxruntime", "default: MinMax, per-channel, all calibration images", {}),
        ("onnxruntime", "32 calibration images", {"calib": small}),
        ("onnxruntime", "per-tensor weights", {"per_channel": False}),
        ("onnxruntime", "Entropy calibration", {"method": "Entropy"}),
        ("onnxruntime", "Percentile calibration", {"method": "Percentile"}),
        ("openvino", "default: MIXED, fast bias correction, all calibration images", {}),
        ("openvino", "32 calibration images", {"calib": small}),
        ("openvino", "full bias correction", {"fast_bias_correction": False}),
        ("openvino", "no bias correction", {"no_bc": True}),
    ]
    env = environment()
    print(f"# proxy MnasNet1.0, {len(y)} held-out images (after {len(calib.names)} calibration images); "
          f"{env['cpu']}, onnxruntime {env.get('onnxruntime')}")
    print(f"# fp32 Top-1 {100 * ok_ref.mean():.2f} %\n")
    print("| backend | variant | Top-1 % | drop (points) | 95 % interval | agreement with fp32 | "
          "rel. logit error | compile s |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for i, (backend, name, kw) in enumerate(variants):
        kw = dict(kw)
        c = kw.pop("calib", calib.x)
        t0 = time.perf_counter()
        if backend == "onnxruntime":
            dst = str(work / f"v{i}.onnx")
            ort_variant(pre, dst, c, **kw)
        else:
            import nncf

            dst = str(work / f"v{i}.xml")
            if kw.pop("no_bc", False):
                kw["advanced_parameters"] = nncf.AdvancedQuantizationParameters(disable_bias_correction=True)
            ov_variant(src, dst, c, **kw)
        secs = time.perf_counter() - t0
        got = logits(backend, dst, held.x)
        ok = got.argmax(1) == y
        d = ok_ref.astype(float) - ok.astype(float)
        half = 1.96 * d.std(ddof=1) / np.sqrt(len(d)) * 100
        print(f"| {backend} | {name} | {100 * ok.mean():.2f} | {100 * d.mean():+.2f} | ±{half:.2f} | "
              f"{np.mean(got.argmax(1) == ref.argmax(1)):.3f} | {rel_err(got, ref):.4f} | {secs:.1f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
