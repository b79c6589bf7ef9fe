#!/usr/bin/env python3
"""JPEG -> result.json end to end with exact preprocessing, streamed (`clsbench run --stream`).

Generates ImageNet-val-like JPEGs once (about 500x375, portrait and landscape, quality 90,
photographic content: crops of scikit-image's photographs with mild sensor-like noise so
the mean file size is close to ImageNet val's ~110-130 KB; decode cost grows with it).
`--distinct` images are encoded and the rest are hard links to them under other names
(decoding cost is the same; generation stays fast). Then times streaming inference plus
evaluation, and samples the resident memory of the whole process tree (main + workers).

    python benchmarks/e2e.py --images 5000 [--images 50000] [--batch-size 16]
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

from clsbench.data.folders import write_labels  # noqa: E402
from clsbench.flows.demo import skimage_data_dir  # noqa: E402

PHOTOS = ["hubble_deep_field.jpg", "retina.jpg", "astronaut.png", "motorcycle_left.png", "rocket.jpg",
          "coffee.png", "chelsea.png", "ihc.png", "color.png"]


def make_dataset(root: Path, n: int, distinct: int, noise: float, seed: int = 0) -> Path:
    val = root / "val"
    val.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    photos = [Image.open(skimage_data_dir() / p).convert("RGB") for p in PHOTOS]
    originals = []
    for i in range(distinct):
        p = val / f"ILSVRC2012_val_{i + 1:08d}.JPEG"
        originals.append(p)
        if p.exists():
            continue
        src = photos[i % len(photos)]
        w, h = (500, 375) if rng.random() < 0.7 else (375, 500)
        s = max(w / src.width, h / src.height) * rng.uniform(1.0, 1.6)
        big = src.resize((int(src.width * s) + 1, int(src.height * s) + 1), Image.BICUBIC)
        left, top = int(rng.integers(0, big.width - w + 1)), int(rng.integers(0, big.height - h + 1))
        a = np.asarray(big.crop((left, top, left + w, top + h)), dtype=np.float32)
        a += rng.normal(0, noise, a.shape)  # sensor-like noise: real photos carry fine detail
        Image.fromarray(np.clip(a, 0, 255).astype(np.uint8)).save(p, quality=90)
    pairs = []
    for i in range(n):
        p = val / f"ILSVRC2012_val_{i + 1:08d}.JPEG"
        if i >= distinct and not p.exists():
            os.link(originals[i % distinct], p)
        pairs.append((p.name, int(i % 1000)))
    for extra in sorted(val.iterdir())[n:]:
        extra.unlink()
    write_labels(root / "val_label.txt", pairs)
    return root


class TreeRSS(threading.Thread):
    """Peak resident set size of this process plus all its descendants, sampled."""

    def __init__(self, interval=0.2):
        super().__init__(daemon=True)
        self.peak, self.interval, self.stop = 0, interval, threading.Event()

    @staticmethod
    def tree_rss(pid: int) -> int:
        total, stack = 0, [pid]
        while stack:
            p = stack.pop()
            try:
                with open(f"/proc/{p}/status") as f:
                    for line in f:
                        if line.startswith("VmRSS:"):
                            total += int(line.split()[1]) * 1024
                with open(f"/proc/{p}/task/{p}/children") as f:
                    stack += [int(c) for c in f.read().split()]
            except (FileNotFoundError, ProcessLookupError):
                continue
        return total

    def run(self):
        while not self.stop.is_set():
            self.peak = max(self.peak, self.tree_rss(os.getpid()))
            time.sleep(self.interval)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, default=5000)
    ap.add_argument("--distinct", type=int, default=1000)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--workers", type=int, default=None,
                    help="pipeline processes, one runtime thread each (default: all CPUs)")
    ap.add_argument("--noise", type=float, default=26.0,
                    help="noise sigma; 26 gives a mean JPEG size near ImageNet val's (~110-130 KB)")
    ap.add_argument("--data", default=str(Path(tempfile.gettempdir()) / "clsbench-e2e-data"))
    ap.add_argument("--weights", default=str(ROOT / "src/clsbench/data/proxy_mnasnet1_0.pth"))
    a = ap.parse_args()

    from clsbench.accuracy.evaluate import evaluate, write_result
    from clsbench.measure.infer import infer_offline
    from clsbench.model.table import get_model
    from clsbench.runtime.timing import environment

    data = make_dataset(Path(a.data) / f"noise{a.noise:g}", a.images, min(a.distinct, a.images), a.noise)
    files = sorted((data / "val").iterdir())[: a.distinct]
    mean_kb = np.mean([f.stat().st_size for f in files]) / 1024
    work = Path(tempfile.mkdtemp(prefix="clsbench-e2e-"))
    onnx_path = str(work / "m.onnx")
    # export in a child process: this process, whose memory is measured, never loads torch
    import subprocess

    subprocess.run([sys.executable, "-m", "clsbench.cli.commands", "export", "--weights", a.weights,
                    "--output", onnx_path], check=True, capture_output=True)
    spec = get_model("mnasnet1_0")

    rss = TreeRSS()
    rss.start()
    t0 = time.perf_counter()
    rec = infer_offline(onnx_path, images=str(data / "val"), preprocessing=spec.preprocessing,
                        workers=a.workers, batch_size=a.batch_size,
                        output=str(work / "result"), show_progress=False)
    acc = evaluate(work / "result" / "dumpOutput_device0", data / "val_label.txt")
    write_result(acc, work, "result.json")
    wall = time.perf_counter() - t0
    rss.stop.set()
    rss.join()
    env = environment()
    st = rec["stages"]
    print(f"# JPEG -> result.json, exact preprocessing, streamed; {env['cpu']}, {env['logical_cpus']} CPUs, "
          f"onnxruntime {env.get('onnxruntime')} fp32, {rec['backend']['threads']} threads, "
          f"batch {a.batch_size}, {rec['backend'].get('processes', 1)} processes, clsbench {env['clsbench']}")
    print(f"# {a.images} JPEGs ({min(a.distinct, a.images)} distinct, mean {mean_kb:.0f} KB); "
          f"top-1 on them is meaningless (random labels): this measures speed")
    print()
    print("| images | wall s | img/s end to end | peak RSS (tree) MiB | decode+resize ms/img | compute-only img/s |")
    print("|---:|---:|---:|---:|---:|---:|")
    print(f"| {a.images} | {wall:.1f} | {a.images / wall:.1f} | {rss.peak / 2**20:.0f} | "
          f"{st['data read']['moduleLatency'] * rec['backend'].get('processes', 1):.2f} | "
          f"{st['infer']['Interface throughputRate']:.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
