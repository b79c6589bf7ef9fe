"""What each output format costs the process that writes it, and the eval that reads it back.

    python benchmarks/outfmt.py [--images 4096] [--classes 1000] [--batch 16] [--repeats 5]

Writes --images rows of random float32 logits through the writer `clsbench infer` uses for
each --outfmt (`outputs.open_outputs`: a file per image for txt/bin/npy, a Parquet part per
4,096 rows), a batch at a time, into a fresh folder under the temp folder; then evaluates
them (`evaluate.evaluate`). Prints per-image milliseconds (median of --repeats) and bytes
per image. This is the driver's cost per image on the Ray engine (docs/scale.md), and the
writer's share of a local run.
"""
from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))


def one(fmt: str, logits, keys, labels_file: Path, root: Path, batch: int) -> tuple[float, float, int]:
    from clsbench.accuracy.evaluate import evaluate
    from clsbench.runtime.outputs import open_outputs

    out = open_outputs(root, 0, fmt)
    out.prepare({"bench": fmt}, overwrite=True)
    t0 = time.perf_counter()
    for s in range(0, len(keys), batch):
        out.write(keys[s:s + batch], logits[s:s + batch])
    out.finish()
    t1 = time.perf_counter()
    acc = evaluate(out.dir, labels_file)
    t2 = time.perf_counter()
    assert acc.images == len(keys)
    size = sum(p.stat().st_size for p in out.dir.iterdir())
    shutil.rmtree(out.dir)
    return (t1 - t0) * 1e3 / len(keys), (t2 - t1) * 1e3 / len(keys), size // len(keys)


def main() -> None:
    import numpy as np

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=4096)
    ap.add_argument("--classes", type=int, default=1000)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--repeats", type=int, default=5)
    a = ap.parse_args()
    rng = np.random.default_rng(0)
    logits = rng.standard_normal((a.images, a.classes), dtype=np.float32) * 3
    keys = [f"ILSVRC2012_val_{i:08d}" for i in range(1, a.images + 1)]
    with tempfile.TemporaryDirectory(prefix="outfmt-") as tmp:
        root = Path(tmp)
        labels = root / "val_label.txt"
        labels.write_text("".join(f"{k}.JPEG {i % a.classes}\n" for i, k in enumerate(keys)))
        print(f"{a.images} images × {a.classes} classes, batches of {a.batch}, median of {a.repeats}; "
              f"folder under {tmp}")
        print(f"{'outfmt':8} {'write ms/image':>15} {'eval ms/image':>14} {'bytes/image':>12}")
        for fmt in ("txt", "bin", "npy", "parquet"):
            runs = [one(fmt, logits, keys, labels, root, a.batch) for _ in range(a.repeats)]
            w = statistics.median(r[0] for r in runs)
            e = statistics.median(r[1] for r in runs)
            print(f"{fmt:8} {w:15.4f} {e:14.4f} {runs[0][2]:12,}")


if __name__ == "__main__":
    main()
