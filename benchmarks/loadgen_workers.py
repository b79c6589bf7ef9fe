"""`clsbench loadgen --workers N` on the trained proxy (MnasNet1.0, ONNX Runtime fp32, batch 8):
for each N, LoadGen's Offline throughput and its Server peak at the --percentile latency <=
--bound-ms (`--find-peak`; default p90 <= 100 ms, the bound the tune's 0.32 was measured at,
with LoadGen's early-stopping minimum of 64 queries a try: at p99 each try needs 662, minutes
at the loads one worker holds here), both with N workers (each its own session of usable CPUs / N threads, fed by
the one batcher), and their ratio (issue 36's target: Server peak >= 0.8x Offline). Prints a
table; every run's folder (loadgen.json, LoadGen's logs, report.html) stays under --work.

    .venv/bin/python benchmarks/loadgen_workers.py [--workers 1,2] [--bound-ms 100] [--percentile 90] [--work /tmp/loadgen-workers]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from clsbench.data.proxy_task import write_images

PROXY = Path(__file__).resolve().parents[1] / "src" / "clsbench" / "data" / "proxy_mnasnet1_0.pth"
CLI = [sys.executable, "-m", "clsbench.cli"]


def loadgen(model: Path, data: Path, out: Path, *args: str) -> dict:
    subprocess.run([*CLI, "loadgen", "-q", "--model", str(model), "--data", str(data), "--output", str(out), *args],
                   check=False, stdout=subprocess.DEVNULL)
    return json.loads((out / "loadgen.json").read_text())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--workers", default="1,2")
    ap.add_argument("--batch-size", default="8")
    ap.add_argument("--bound-ms", default="100")
    ap.add_argument("--percentile", type=float, default=90.0, help="the Server bound's percentile (99: MLPerf's)")
    ap.add_argument("--duration", default="5", help="seconds of each LoadGen run (Server tries also hold 64 "
                                                    "queries at p90, 662 at p99)")
    ap.add_argument("--peak-steps", default="3")
    ap.add_argument("--images", type=int, default=64)
    ap.add_argument("--work", default="/tmp/loadgen-workers")
    a = ap.parse_args()
    work = Path(a.work)
    data, model = work / "data", work / "proxy.onnx"
    if not (data / "val_label.txt").is_file():
        write_images(data, a.images, seed=4242)
    if not model.is_file():
        subprocess.run([*CLI, "export", "-q", "--weights", str(PROXY), "--model", "mnasnet1_0", "--output", str(model)],
                       check=True, stdout=subprocess.DEVNULL)
    rows = []
    for w in a.workers.split(","):
        common = ("--batch-size", a.batch_size, "--duration", a.duration, "--workers", w)
        t0 = time.monotonic()
        off = loadgen(model, data, work / f"offline-w{w}", "--scenario", "offline", *common)
        srv = loadgen(model, data, work / f"server-w{w}", "--scenario", "server", "--find-peak",
                      "--latency-bound-ms", a.bound_ms, "--peak-steps", a.peak_steps, *common,
                      "--setting", f"target_latency_percentile={a.percentile:g}",
                      "--setting", f"min_query_count={64 if a.percentile <= 90 else 662}")
        ips = off["runs"]["performance"]["summary"]["fields"].get("Samples per second")
        peak = srv["peak"]["peak_qps"]
        rows.append((w, srv["target"].get("threads"), ips, peak, peak / ips if peak and ips else None,
                     time.monotonic() - t0))
        print(f"workers {w}: offline {ips} img/s, server peak {peak} QPS ({rows[-1][-1]:.0f} s)", file=sys.stderr)
    print(f"\nproxy MnasNet1.0 · onnxruntime fp32 · batch {a.batch_size} · p{a.percentile:g} <= {a.bound_ms} ms · "
          f"{os.cpu_count()} CPUs ({len(os.sched_getaffinity(0))} usable) · {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    print("| workers | threads each | Offline img/s | Server peak QPS | Server ÷ Offline | wall s |")
    print("|---:|---:|---:|---:|---:|---:|")
    for w, t, ips, peak, ratio, wall in rows:
        print(f"| {w} | {t or 'default'} | {ips:,.1f} | {f'{peak:,.2f}' if peak is not None else '—'} | "
              f"{f'{ratio:.2f}' if ratio else '—'} | {wall:.0f} |")


if __name__ == "__main__":
    main()
