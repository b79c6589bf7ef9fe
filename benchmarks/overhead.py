#!/usr/bin/env python3
"""Overhead of `clsbench infer` vs a bare runtime loop.

For each batch size: clsbench's offline inference over N preprocessed .bin files (reading,
padding, running, writing one output file per image: its [e2e] throughput) against a bare
loop over one in-memory batch with the same model, batch size and threads — onnxruntime's
session.run, OpenVINO's InferRequest.infer, or the torch module's forward (--backend).
Runs alternate (bare, tool, bare, tool, ...) so drift hits both alike; medians are quoted.

    python benchmarks/overhead.py                      # realistic random MnasNet1.0 (needs torch)
    python benchmarks/overhead.py --backend openvino --precision bf16
    python benchmarks/overhead.py --model m.onnx --data DIR_WITH_IMAGES
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
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

import numpy as np  # noqa: E402

from clsbench.runtime.backends import get_backend  # noqa: E402
from clsbench.runtime.backends import default_threads  # noqa: E402
from clsbench.data.folders import gen_bin_info  # noqa: E402
from clsbench.measure.infer import infer_offline  # noqa: E402
from clsbench.model.table import get_model  # noqa: E402
from clsbench.runtime.timing import environment  # noqa: E402
from clsbench.data.preprocess import preprocess_dir  # noqa: E402


def bare_loop(backend: str, precision: str, model: str, batch: int, threads: int, n_images: int,
              hint: str = "latency") -> float:
    """img/s of the runtime's own call on one in-memory batch, as many images as the tool runs
    (OpenVINO's throughput hint: its AsyncInferQueue kept full, the same batch each time)."""
    kw = {"hint": hint} if backend == "openvino" else {}
    rt = get_backend(backend)(model, batch_size=batch, threads=threads, precision=precision, **kw)
    x = np.random.default_rng(0).standard_normal((batch, *rt.input_shape), dtype=np.float32)
    iters = -(-n_images // batch)
    if hint == "throughput":
        import openvino as ov

        queue = ov.AsyncInferQueue(rt.compiled, rt.requests)
        queue.start_async({0: x})
        queue.wait_all()  # warm-up
        t0 = time.perf_counter()
        for _ in range(iters):
            queue.start_async({0: x}, share_inputs=True)
        queue.wait_all()
        rate = iters * batch / (time.perf_counter() - t0)
        del queue
        return rate
    if backend == "onnxruntime":
        def call():
            rt.session.run(None, {rt.input_name: x})
    elif backend == "openvino":
        def call():
            rt.request.infer([x])
    else:
        import torch

        xt = torch.from_numpy(x)

        def call():
            with torch.inference_mode():
                rt.net(xt)
    call()  # warm-up, as clsbench does
    t0 = time.perf_counter()
    for _ in range(iters):
        call()
    return iters * batch / (time.perf_counter() - t0)


def encode_cost(outfmt: str, batch: int = 256, runs: int = 7) -> int:
    """Microseconds per image to encode 1,000 float32 scores as `outfmt` (the guide's text is
    '%+.8e' per value), median of `runs` batches of random scores."""
    from clsbench.runtime.outputs import encode

    x = np.random.default_rng(0).standard_normal((batch, 1000), dtype=np.float32)
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        encode(x, outfmt)
        times.append((time.perf_counter() - t0) / batch * 1e6)
    env = environment()
    print(f"# {env['cpu']}, clsbench {env['clsbench']}: encoding one image's 1,000 scores as {outfmt}: "
          f"{statistics.median(times):.0f} µs (median of {runs} batches of {batch})")
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", help="ONNX model (default: export realistic random MnasNet1.0)")
    ap.add_argument("--data", help="folder of images (default: the demo's photos)")
    ap.add_argument("--images", type=int, default=320, help="images per run (default 320)")
    ap.add_argument("--batches", default="1,16,32")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--threads", type=int, default=default_threads())
    ap.add_argument("--outfmt", default="txt", choices=("txt", "bin", "npy"))
    ap.add_argument("--backend", default="onnxruntime", choices=("onnxruntime", "openvino", "torch"))
    ap.add_argument("--precision", default="fp32")
    ap.add_argument("--openvino-hint", default="latency", choices=("latency", "throughput"),
                    help="openvino: the tool and the bare loop both in this mode")
    ap.add_argument("--uint8-input", action="store_true",
                    help="with --input store: the tool runs the model with the normalization folded in "
                         "(compile --uint8-input); the bare loop runs the float model")
    ap.add_argument("--input", default="bin", choices=("bin", "store"),
                    help="the guide's float32 .bin files, or the compact uint8 store")
    ap.add_argument("--encode-only", action="store_true",
                    help="only time the per-image output encoding (--outfmt) and exit")
    a = ap.parse_args()
    if a.encode_only:
        return encode_cost(a.outfmt)

    spec = get_model("mnasnet1_0")
    work = Path(tempfile.mkdtemp(prefix="clsbench-overhead-"))
    data = a.data
    if not data:
        from clsbench.flows.demo import build_demo_dataset

        data = str(build_demo_dataset(work / "data", per_class=-(-a.images // 5)) / "val")
    model = a.model
    if not model:
        from clsbench.flows.demo import calibration_batch
        from clsbench.compile.export import export_onnx
        from clsbench.model.stand_in import save_realistic_weights

        w = save_realistic_weights(spec, calibration_batch(spec.preprocessing), str(work / "w.pth"))
        model = str(work / "model.onnx")
        export_onnx(w, model)
        if a.backend == "torch":
            model = w
    preprocess_dir(data, work / "prep", spec.preprocessing, show_progress=False)
    if a.input == "store":
        from clsbench.data.store import build_store

        build_store(data, work / "store", spec.preprocessing, show_progress=False)
    tool_model = model
    if a.uint8_input:
        from clsbench.compile.artifacts import compile_model

        if a.input != "store" or a.backend == "torch":
            sys.exit("--uint8-input needs --input store and an ONNX backend")
        tool_model = compile_model(model, backend=a.backend, precision=a.precision, output_dir=str(work / "c"),
                                   uint8_input=True)["artifact"]
    entries = gen_bin_info(str(work / "prep"), str(work / "all.info"), 224, 224)[: a.images]
    info = work / "x.info"
    info.write_text("".join(f"{e.idx} {e.path} 224 224\n" for e in entries))
    n = len(entries)

    env = environment()
    print(f"# clsbench infer vs bare {a.backend} loop — {n} images/run, {a.runs} runs, median")
    print(f"# {env['cpu']}, {env['logical_cpus']} CPUs, {a.backend} {a.precision}, "
          f"{a.threads} threads, input {a.input}{' (uint8 into the folded model)' if a.uint8_input else ''}, "
          f"outfmt {a.outfmt}, openvino hint {a.openvino_hint}, "
          f"clsbench {env['clsbench']}")
    print()
    print(f"| batch | bare {a.backend} img/s | clsbench infer e2e img/s | ratio | clsbench compute-only img/s |")
    print("|---:|---:|---:|---:|---:|")
    for bs in [int(b) for b in a.batches.split(",")]:
        bare, tool, compute = [], [], []
        for r in range(a.runs):
            bare.append(bare_loop(a.backend, a.precision, model, bs, a.threads, n, a.openvino_hint))
            src = {"info": str(info)} if a.input == "bin" else {"store": str(work / "store")}
            rec = infer_offline(tool_model, **src, batch_size=bs, output=str(work / f"r{bs}_{r}"),
                                outfmt=a.outfmt, threads=a.threads, backend=a.backend,
                                precision=a.precision, show_progress=False,
                                backend_options={"hint": a.openvino_hint} if a.openvino_hint != "latency" else None)
            tool.append(rec["stages"]["e2e"]["throughputRate"])
            compute.append(rec["stages"]["infer"]["Interface throughputRate"])
        b, t = statistics.median(bare), statistics.median(tool)
        print(f"| {bs} | {b:.1f} | {t:.1f} | {t / b:.3f} | {statistics.median(compute):.1f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
