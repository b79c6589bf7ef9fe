"""Ray engine vs local engine, JPEG folder → result.json, exact preprocessing.

    python benchmarks/ray.py [--images 5000] [--small 1000] [--repeats 2] [--batch-size 16]

Runs itself inside a loopback-only network namespace (`unshare -n`; Ray probes outside
addresses and binds every interface when it starts), usage stats off, Ray's temp folder
removed afterwards. For each engine (and for Ray with --outfmt parquet), runs of --small and --images images (fresh work
folders, the same model): the marginal rate is (N - n) / (T_N - T_n) — what each extra
image costs once everything is started — and start-up is T_n - n / marginal. Each figure is
the median of --repeats. Then the same on a simulated two-node cluster
(`ray.cluster_utils.Cluster`: a head and a worker node on loopback, on this same machine).
Prints a table and the per-image figures docs/scale.md's capacity model is built from.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# this file is named ray.py: its folder must not shadow the ray package
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
sys.path.insert(0, str(ROOT / "src"))


def dataset(root: Path, n: int) -> Path:
    """n ImageNet-like JPEGs (the demo's photo variants), labels beside them; cached."""
    from clsbench.flows.demo import build_demo_dataset

    d = root / f"jpegs{n}"
    if not (d / "val_label.txt").exists():
        build_demo_dataset(d, per_class=-(-n // 5))
        names = sorted(os.listdir(d / "val"))
        for extra in names[n:]:
            (d / "val" / extra).unlink()
        lines = (d / "val_label.txt").read_text().splitlines()[:n]
        (d / "val_label.txt").write_text("\n".join(lines) + "\n")
    return d


def model(root: Path) -> str:
    from clsbench.compile.export import export_onnx

    out = root / "proxy.onnx"
    if not out.exists():
        export_onnx(str(ROOT / "src/clsbench/data/proxy_mnasnet1_0.pth"), str(out))
    return str(out)


def one_run(onnx: str, data: Path, work: Path, batch: int, **engine) -> dict:
    from clsbench.flows.run import RunOptions, run

    shutil.rmtree(work, ignore_errors=True)
    t0 = time.perf_counter()
    s = run(onnx, str(data), RunOptions(work_dir=str(work), batch_size=batch, stream=True, show_progress=False,
                                        **engine))
    wall = time.perf_counter() - t0
    return {"wall": wall, "images": s["accuracy"]["images"], "summary": s}


def engine_figures(onnx, small, big, work, batch, repeats, **engine) -> dict:
    t_small = [one_run(onnx, small, work, batch, **engine)["wall"] for _ in range(repeats)]
    runs = [one_run(onnx, big, work, batch, **engine) for _ in range(repeats)]
    n_small, n_big = count(small), count(big)
    ts, tb = statistics.median(t_small), statistics.median(r["wall"] for r in runs)
    marginal = (n_big - n_small) / (tb - ts)
    return {"small_s": ts, "big_s": tb, "marginal": marginal, "startup_s": ts - n_small / marginal,
            "overall": n_big / tb, "last": runs[-1]["summary"], "walls": [r["wall"] for r in runs]}


def count(d: Path) -> int:
    return len(os.listdir(d / "val"))


def per_image(s: dict) -> dict:
    """Core-milliseconds per image by stage, from a run's own record."""
    p = s["performance"]
    st, b = p["stages"], p["backend"]
    procs = b.get("processes") or 1
    return {"decode_core_ms": st["data read"]["moduleLatency"] * procs,
            "infer_core_ms": st["infer"]["moduleLatency"] * procs * (b.get("threads") or 1),
            "driver_write_ms": st["post"]["moduleLatency"] * (1 if b.get("engine") == "ray" else procs)}


def cluster_run(onnx, data, work, batch) -> dict:
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 2, "include_dashboard": False})
    cluster.add_node(num_cpus=2)
    cluster.wait_for_nodes()
    try:
        r = one_run(onnx, data, work, batch, engine="ray", ray_address=cluster.address, workers=2)
    finally:
        cluster.shutdown()
    return r


def main(a) -> None:
    import numpy as np

    root = Path(a.cache)
    root.mkdir(parents=True, exist_ok=True)
    big, small = dataset(root, a.images), dataset(root, a.small)
    onnx = model(root)
    work = Path(tempfile.mkdtemp(prefix="raybench-"))
    jpeg_bytes = float(np.mean([os.path.getsize(big / "val" / f) for f in os.listdir(big / "val")]))
    try:
        local = engine_figures(onnx, small, big, work / "w", a.batch_size, a.repeats)
        ray1 = engine_figures(onnx, small, big, work / "w", a.batch_size, a.repeats, engine="ray")
        rayp = engine_figures(onnx, small, big, work / "w", a.batch_size, a.repeats, engine="ray",
                              outfmt="parquet")
        ray_ = engine_figures(onnx, small, big, work / "w", a.batch_size, a.repeats, engine="ray",
                              threads=os.cpu_count(), workers=max(1, os.cpu_count() // 2) if os.cpu_count() > 2 else 1)
        two = cluster_run(onnx, big, work / "c", a.batch_size)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    b = ray_["last"]["performance"]["backend"]
    rows = [("local engine (one pipeline per core)", local),
            (f"Ray Data, local instance, defaults ({ray1['last']['performance']['backend']['processes']} actor(s) × 1 "
             f"thread)", ray1),
            (f"Ray Data, local instance, {b['processes']} actor(s) × {b['threads']} threads", ray_),
            ("Ray Data, local instance, defaults, --outfmt parquet", rayp)]
    print(f"\n{a.images} JPEGs (mean {jpeg_bytes / 1e3:.0f} kB), exact preprocessing, batch {a.batch_size}, "
          f"{os.cpu_count()} CPUs; median of {a.repeats}\n")
    print("| engine | start-up s | marginal images/s | overall images/s | ratio to local (marginal) |")
    print("|---|---:|---:|---:|---:|")
    for name, f in rows:
        print(f"| {name} | {f['startup_s']:.1f} | {f['marginal']:.1f} | {f['overall']:.1f} | "
              f"{f['marginal'] / local['marginal']:.2f} |")
    print(f"| Ray Data, simulated 2-node cluster (2+2 logical CPUs on these {os.cpu_count()} cores) | – | – | "
          f"{count(big) / two['wall']:.1f} | – |")
    same = (two["summary"]["accuracy"] == local["last"]["accuracy"] == ray_["last"]["accuracy"]
            == rayp["last"]["accuracy"])
    print(f"\nresult.json accuracy identical across all runs: {same}")
    figs = {"jpeg_bytes": jpeg_bytes,
            "crop_bytes": 3 * 224 * 224, "logits_bytes": 4 * 1000,
            "ray_overhead_ms_per_image": 1e3 / ray_["marginal"] - 1e3 / local["marginal"],
            "local": {**per_image(local["last"]), "marginal": local["marginal"], "startup_s": local["startup_s"]},
            "ray": {**per_image(ray_["last"]), "marginal": ray_["marginal"], "startup_s": ray_["startup_s"]},
            "ray_parquet": {**per_image(rayp["last"]), "marginal": rayp["marginal"], "startup_s": rayp["startup_s"]},
            "two_node_images_s": count(big) / two["wall"]}
    print("\nper-image figures for the capacity model (docs/scale.md):")
    print(json.dumps(figs, indent=1))


def reexec_in_namespace() -> None:
    """Everything below runs in `unshare -n` with only loopback up."""
    if os.environ.get("CLSBENCH_IN_NETNS"):
        return
    tmp = tempfile.mkdtemp(prefix="cbray-")
    env = dict(os.environ, CLSBENCH_IN_NETNS="1", RAY_USAGE_STATS_ENABLED="0", RAY_TMPDIR=tmp,
               RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=os.urandom(16).hex())
    inner = "(ip link set lo up 2>/dev/null || true); exec " + " ".join(
        f"'{x}'" for x in [sys.executable, *sys.argv])
    try:
        rc = subprocess.run(["unshare", "-n", "sh", "-c", inner], env=env).returncode
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    sys.exit(rc)


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=5000)
    ap.add_argument("--small", type=int, default=1000)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--cache", default=os.path.join(tempfile.gettempdir(), "clsbench-raybench"))
    args = ap.parse_args()
    reexec_in_namespace()
    main(args)
