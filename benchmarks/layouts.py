"""PyTorch's speed by memory layout, on images as clsbench's preprocessing leaves them
(channels-last views of HWC arrays) and on an NCHW copy of the same pixels: the float64
reference of the export check, and the torch backend's fp32 / bf16. Prints a table.

    taskset -c 0 .venv/bin/python benchmarks/layouts.py [--model mnasnet1_0] [--images 15] [--repeats 3]
"""
from __future__ import annotations

import argparse
import copy
import time

import numpy as np


def median_s(fn, repeats: int) -> float:
    fn()  # warm-up
    ts = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return float(np.median(ts))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="mnasnet1_0")
    ap.add_argument("--images", type=int, default=15)
    ap.add_argument("--repeats", type=int, default=3)
    a = ap.parse_args()
    import torch

    from clsbench.flows.demo import calibration_batch
    from clsbench.model.weights import build_model
    from clsbench.model.table import get_model

    spec = get_model(a.model)
    x = calibration_batch(spec.preprocessing, n=a.images)  # real photos, preprocessed
    net = build_model(spec)
    n64 = copy.deepcopy(net).double()
    rows = []
    with torch.inference_mode():
        for label, arr in (("as preprocessed (channels-last view)", x), ("NCHW copy", np.ascontiguousarray(x))):
            t = torch.from_numpy(arr)
            rows.append((label, median_s(lambda: n64(t.double()), a.repeats), median_s(lambda: net(t), a.repeats),
                         median_s(lambda: net.to(torch.bfloat16)(t.to(torch.bfloat16)), a.repeats)))
            net.float()
    print(f"{a.model}, {len(x)} images, median of {a.repeats}, torch threads {torch.get_num_threads()}")
    print(f"{'input layout':40} {'float64 s':>10} {'fp32 s':>8} {'bf16 s':>8}")
    for label, f64, f32, bf16 in rows:
        print(f"{label:40} {f64:10.2f} {f32:8.2f} {bf16:8.2f}")


if __name__ == "__main__":
    main()
