"""The local offline engine: batches from a source (.bin files or a store) through one
runtime, in order, on this machine; or several requests in flight (OpenVINO's throughput
hint). Each returns its stage times and latency log; infer.py turns them into the record."""
from __future__ import annotations

import time

import numpy as np

from ..timing import LatencyLog, StageTimes


def run_offline(ctx, pending, show_progress):
    """One thread, in order: read -> preprocess -> run -> write; returns (StageTimes, LatencyLog, mode)."""
    from ...ui import progress

    batch = np.empty((ctx.batch_size, *ctx.rt.input_shape), dtype=ctx.rt.input_dtype)
    read_s = pre_s = post_s = 0.0
    t_start = time.perf_counter()
    # One thread, in order: read -> run -> write. On a machine whose cores all run the
    # runtime, overlapping I/O threads measured slower (they preempt the runtime's
    # spinning workers mid-layer) than doing the I/O between runs; see docs/performance.md.
    with LatencyLog(ctx.latencies_csv) as compute_ms:  # streamed to disk as measured
        ctx.source.start(pending)
        with progress(len(pending), f"infer bs{ctx.batch_size} → {ctx.out.dir}", show_progress) as advance:
            while True:
                t0 = time.perf_counter()
                group = ctx.source.next_group(ctx.batch_size, batch)
                if not group:
                    break
                t1 = time.perf_counter()
                ctx.source.preprocess(len(group), batch)
                t2 = time.perf_counter()
                logits, ms = ctx.step(batch, len(group), [src for _, src in group])
                t3 = time.perf_counter()
                ctx.out.write([key for key, _ in group], logits)
                read_s += t1 - t0
                pre_s += t2 - t1
                compute_ms.add(ms)
                post_s += time.perf_counter() - t3
                advance(len(group))
    wall = time.perf_counter() - t_start
    ms = compute_ms.values
    st = StageTimes(samples=len(pending), computed=len(ms) * ctx.batch_size, wall_s=wall,
                    read_s=read_s, preprocess_s=pre_s, infer_s=sum(ms) / 1e3, post_s=post_s)
    return st, compute_ms, "offline"


def run_offline_async(ctx, pending, show_progress):
    """Several requests in flight (OpenVINO's throughput hint): batches are read and
    submitted while earlier ones run; results come back in order and are checked and
    written as they arrive. Per-batch compute times do not exist here, only the wall."""
    from collections import deque

    from ...ui import progress

    bs = ctx.batch_size
    buf = np.empty((bs, *ctx.rt.input_shape), dtype=ctx.rt.input_dtype)
    groups: deque = deque()
    t = {"read": 0.0, "pre": 0.0, "post": 0.0}

    def batches():
        while True:
            t0 = time.perf_counter()
            group = ctx.source.next_group(bs, buf)
            if not group:
                return
            t1 = time.perf_counter()
            ctx.source.preprocess(len(group), buf)
            buf[len(group):] = buf[len(group) - 1]  # padding, as BatchStep does
            t["read"] += t1 - t0
            t["pre"] += time.perf_counter() - t1
            groups.append(group)
            yield buf  # copied when submitted

    t_start = time.perf_counter()
    ctx.source.start(pending)
    with progress(len(pending), f"infer bs{bs} (async) → {ctx.out.dir}", show_progress) as advance:
        for logits in ctx.rt.run_many(batches()):
            t0 = time.perf_counter()
            group = groups.popleft()
            logits = ctx.step.check(logits, len(group), [src for _, src in group])
            ctx.out.write([key for key, _ in group], logits)
            t["post"] += time.perf_counter() - t0
            advance(len(group))
    wall = time.perf_counter() - t_start
    n_batches = -(-len(pending) // bs)
    st = StageTimes(samples=len(pending), computed=n_batches * bs, wall_s=wall, read_s=t["read"],
                    preprocess_s=t["pre"], infer_s=max(wall - t["read"] - t["pre"] - t["post"], 1e-9),
                    post_s=t["post"])
    return st, LatencyLog(None), "offline-async"
