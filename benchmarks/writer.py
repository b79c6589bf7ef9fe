#!/usr/bin/env python3
"""Would a dedicated writer help on this machine? ONNX Runtime with and without intra-op
spinning, the I/O of `clsbench infer` (read a batch of .bin files, format and write the
guide's text outputs atomically) done inline or on a writer thread, against the bare loop.

    python benchmarks/writer.py [--batch 16] [--images 320] [--runs 5] [--model M.onnx]

Default model: the proxy MnasNet1.0 exported from src/clsbench/data/proxy_mnasnet1_0.pth.
2 runtime threads; all six loops timed in turn, --runs rounds, medians; ratios to the bare
loop with spinning (ONNX Runtime's default, and clsbench's).
"""
import argparse
import os
import queue
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

import numpy as np  # noqa: E402
import onnxruntime as ort  # noqa: E402

from clsbench._io import atomic_write_bytes  # noqa: E402
from clsbench.runtime.outputs import format_scores  # noqa: E402


def session(model: str, spin: bool):
    so = ort.SessionOptions()
    so.intra_op_num_threads = 2
    so.inter_op_num_threads = 1
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.log_severity_level = 3
    if not spin:
        so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(model, so, providers=["CPUExecutionProvider"])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--images", type=int, default=320)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--model")
    a = ap.parse_args()
    bs, n = a.batch, a.images
    work = Path(tempfile.mkdtemp(prefix="clsbench-writer-"))
    model = a.model
    if not model:
        from clsbench.compile.export import export_onnx

        model = str(work / "proxy.onnx")
        export_onnx(str(ROOT / "src/clsbench/data/proxy_mnasnet1_0.pth"), model)
    x = np.random.default_rng(0).standard_normal((bs, 3, 224, 224), dtype=np.float32)
    bins, out = work / "bins", work / "out"
    bins.mkdir()
    out.mkdir()
    for i in range(bs):
        x[i].tofile(bins / f"{i}.bin")

    def read_batch(buf):
        for i in range(bs):
            with open(bins / f"{i}.bin", "rb") as f:
                f.readinto(memoryview(buf[i]).cast("B"))

    def write(it, logits):
        for j, blob in enumerate(format_scores(logits)):
            atomic_write_bytes(out / f"{it}_{j}_1.txt", blob)

    def bare(s):
        name = s.get_inputs()[0].name
        s.run(None, {name: x})
        t0 = time.perf_counter()
        for _ in range(n // bs):
            s.run(None, {name: x})
        return n // bs * bs / (time.perf_counter() - t0)

    def inline(s):
        name, buf = s.get_inputs()[0].name, np.empty_like(x)
        s.run(None, {name: x})
        t0 = time.perf_counter()
        for it in range(n // bs):
            read_batch(buf)
            write(it, s.run(None, {name: buf})[0])
        return n // bs * bs / (time.perf_counter() - t0)

    def threaded(s):
        name, buf = s.get_inputs()[0].name, np.empty_like(x)
        s.run(None, {name: x})
        q: queue.Queue = queue.Queue(4)

        def writer():
            while (item := q.get()) is not None:
                write(*item)

        th = threading.Thread(target=writer)
        th.start()
        t0 = time.perf_counter()
        for it in range(n // bs):
            read_batch(buf)
            q.put((it, s.run(None, {name: buf})[0]))
        q.put(None)
        th.join()
        return n // bs * bs / (time.perf_counter() - t0)

    sessions = {True: session(model, True), False: session(model, False)}
    loops = {"bare loop": bare, "I/O inline (clsbench infer)": inline, "I/O on a writer thread": threaded}
    res: dict = {}
    for _ in range(a.runs):
        for spin, s in sessions.items():
            for name, f in loops.items():
                res.setdefault((name, spin), []).append(f(s))
    base = statistics.median(res["bare loop", True])
    print(f"# batch {bs}, {n // bs * bs} images per loop, 2 threads, median of {a.runs}; onnxruntime {ort.__version__}\n")
    print("| loop | spinning | img/s | ÷ bare loop with spinning |")
    print("|---|---|---:|---:|")
    for (name, spin), v in res.items():
        print(f"| {name} | {'on' if spin else 'off'} | {statistics.median(v):.1f} | {statistics.median(v) / base:.3f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
