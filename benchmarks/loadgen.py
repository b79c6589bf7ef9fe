#!/usr/bin/env python3
"""What LoadGen's scenarios cost and carry: Offline through the SUT against the runtime's own
back-to-back compute rate, and the Server peak at a p99 bound against Offline.

For each backend: one backend object at --batch-size (the same threads for both), the trained
proxy (MnasNet1.0) on its task's images preprocessed into memory. --rounds rounds, each: the
compute-only rate (backend.run back to back for --seconds on in-memory batches, what `clsbench
perf` times) then a LoadGen Offline run of --seconds; medians of the rounds and the ratio of
the medians. Then `find_peak` at each --bounds (p99 ms), each try a LoadGen Server run.

    python benchmarks/loadgen.py [--backends onnxruntime,openvino] [--batch-size 8] [--rounds 3]
"""
from __future__ import annotations

import argparse
import json
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

from clsbench.measure.loadgen import Bench, LoadgenOptions, batch_sizes, find_peak, load_samples, open_at, open_target, run_once
from clsbench.runtime.timing import environment  # noqa: E402


def compute_rate(backend, x: np.ndarray, seconds: float) -> float:
    bs = backend.batch_size
    batches = [x[i:i + bs] for i in range(0, len(x) - bs + 1, bs)]
    backend.run(batches[0])
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        backend.run(batches[n % len(batches)])
        n += 1
    return n * bs / (time.perf_counter() - t0)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--backends", default="onnxruntime,openvino")
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--bounds", default="15,50", help="p99 bounds (ms) of the Server peak searches")
    ap.add_argument("--peak-seconds", type=float, default=5.0, help="min duration of each peak try")
    ap.add_argument("--images", type=int, default=128)
    ap.add_argument("--json", default=None, help="also write the figures here")
    a = ap.parse_args()
    from clsbench.compile.export import export_onnx
    from clsbench.data.proxy_task import write_images

    tmp = Path(tempfile.mkdtemp(prefix="clsbench-lg-"))
    write_images(tmp / "data", a.images, seed=5)
    onnx = str(tmp / "proxy.onnx")
    export_onnx(str(ROOT / "src/clsbench/data/proxy_mnasnet1_0.pth"), onnx, model="mnasnet1_0")
    rows = []
    for backend in a.backends.split(","):
        o = LoadgenOptions(scenario="offline", backend=backend, batch_size=a.batch_size, duration_s=a.seconds)
        be, r = open_target(onnx, o, a.batch_size)
        t = r.target
        samples = load_samples(str(tmp / "data"), lambda: r.preset.pp)
        comp, off = [], []
        for r in range(a.rounds):
            comp.append(compute_rate(be, samples.x, a.seconds))
            lat = a.batch_size * 1e3 / comp[-1]
            b = Bench(be, samples, o, expected_qps=comp[-1], expected_latency_ms=lat)
            rec = run_once(b, tmp / f"{backend}-offline-{r}", "performance")
            off.append(rec["summary"]["fields"]["Samples per second"])
            print(f"{backend} round {r + 1}: compute {comp[-1]:.1f}/s, LoadGen Offline {off[-1]:.1f}/s "
                  f"({rec['summary']['result']})", flush=True)
        row = {"backend": f"{t.label}", "runtime": be.describe(), "batch": a.batch_size,
               "compute_img_s": statistics.median(comp), "offline_img_s": statistics.median(off),
               "rounds": {"compute": comp, "offline": off}}
        row["offline_over_compute"] = row["offline_img_s"] / row["compute_img_s"]
        for bound in (float(x) for x in a.bounds.split(",")):
            so = LoadgenOptions(scenario="server", backend=backend, batch_size=a.batch_size,
                                duration_s=a.peak_seconds, latency_bound_ms=bound, peak_steps=4, find_peak=True)
            backends = (be if getattr(be, "any_batch", False) else
                        {n: (be if n == a.batch_size else open_at(r, n)) for n in batch_sizes(so)})
            b = Bench(backends, samples, so, expected_qps=row["offline_img_s"],
                      expected_latency_ms=a.batch_size * 1e3 / row["compute_img_s"])
            pk = find_peak(b, tmp / f"{backend}-peak-{bound:g}")
            row[f"server_peak_p99_{bound:g}ms"] = pk["peak_qps"]
            row[f"server_peak_p99_{bound:g}ms_bracket"] = pk["bracket"]
            row[f"server_tries_{bound:g}ms"] = [(t["target_qps"], t["valid"], t["p99_ms"]) for t in pk["tries"]]
            print(f"{backend} Server peak at p99 <= {bound:g} ms: {pk['peak_qps']} QPS (bracket {pk['bracket']})",
                  flush=True)
        rows.append(row)
    env = environment()
    print(f"\nLoadGen on {env['cpu']} ({env.get('logical_cpus')} CPUs), trained proxy (MnasNet1.0), batch "
          f"{a.batch_size}, {a.images} images in memory; medians of {a.rounds} rounds of {a.seconds:g} s\n")
    bounds = [f"{float(x):g}" for x in a.bounds.split(",")]
    print("| backend | compute-only img/s | LoadGen Offline img/s | Offline ÷ compute | "
          + " | ".join(f"Server peak p99≤{b} ms (÷ Offline)" for b in bounds) + " |")
    print("|---|---:|---:|---:|" + "---:|" * len(bounds))
    for r in rows:
        peaks = []
        for b in bounds:
            q = r[f"server_peak_p99_{b}ms"]
            peaks.append(f"{q:,.1f} ({q / r['offline_img_s']:.2f})" if q else "none VALID")
        print(f"| {r['backend']} | {r['compute_img_s']:,.1f} | {r['offline_img_s']:,.1f} | "
              f"{r['offline_over_compute']:.3f} | " + " | ".join(peaks) + " |")
    if a.json:
        Path(a.json).write_text(json.dumps({"environment": env, "rows": rows}, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
