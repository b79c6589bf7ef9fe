"""Streaming for a device backend (cuda): many CPU processes decode, ONE process runs the model.

stream.py gives every worker process its own runtime, which is right for CPU runtimes but
would put 16 CUDA contexts on one GPU. Here decode workers send back uint8 crops (the exact
path: PIL decode, resize, crop; 150 KB per 224x224 image), the parent batches them (the pixels travel through a shared-memory file, not the pipes: with
pickled arrays the parent was the bottleneck, at 2,184 img/s on 16 cores), uploads
them on a copy stream while the previous batch computes (`CudaBackend.pipelined`),
normalizes on the GPU, and hands the logits to writer threads. With `decode="gpu"` the
parent reads the files and the GPU decodes them (gpudecode.py: opt-in, not pixel-exact).
"""
from __future__ import annotations

import os
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from ... import ClsbenchError
from ..._io import usable_cpus

_PP: dict = {}


def _init(pp, parent: int) -> None:
    from ..._io import worker_start

    worker_start(parent)  # Ctrl-C is the parent's; dies with it
    _PP["pp"] = pp


def _crops(items, strict, slots, slot):
    """Worker: decode, resize, crop `items` into shared slot `slot`; (kept items, failures,
    seconds). The pixels travel through the shared file, not the pipe."""
    from ...data.preprocess import crop_chw

    t0 = time.perf_counter()
    view = _PP.get(slots.path)
    if view is None:
        view = _PP[slots.path] = slots.open()
    kept, failed = [], []
    for key, path in items:
        try:
            view[slot, len(kept)] = crop_chw(path, _PP["pp"])
            kept.append((key, path))
        except ClsbenchError as e:
            if strict:
                raise
            failed.append((path, str(e)))
    return kept, failed, time.perf_counter() - t0


class _Slots:
    """Shared memory for decoded crops: `count` slots of `chunk` uint8 images, a file in
    /dev/shm (or the temp folder when /dev/shm is small) that every worker maps."""

    def __init__(self, count, chunk, shape):
        import tempfile

        self.shape = (count, chunk, *shape)
        size = int(np.prod(self.shape))
        where = "/dev/shm" if os.path.isdir("/dev/shm") else tempfile.gettempdir()
        if where == "/dev/shm":
            st = os.statvfs(where)
            if st.f_bavail * st.f_frsize < 2 * size:
                where = tempfile.gettempdir()
        fd, self.path = tempfile.mkstemp(prefix="clsbench-crops-", dir=where)
        os.ftruncate(fd, size)
        os.close(fd)

    def open(self):
        return np.memmap(self.path, np.uint8, "r+", shape=self.shape)

    def close(self):
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass


def _cpu_chunks(pending, pp, workers, strict, chunk, stats, shape):
    """(kept, crops, failed) per chunk, in order, from a pool of decode processes; `crops`
    is a view of a shared slot, valid until the next item is asked for."""
    from concurrent.futures import ProcessPoolExecutor
    from multiprocessing import get_context

    from ...data.preprocess import sigint_ignored

    depth = 2 * workers + 2
    slots = _Slots(depth, chunk, shape)
    view = slots.open()
    with sigint_ignored():  # workers start with SIGINT ignored
        pool = ProcessPoolExecutor(workers, mp_context=get_context("spawn"), initializer=_init, initargs=(pp, os.getpid()))
    try:
        window: deque = deque()
        free = list(range(depth))
        todo = iter(range(0, len(pending), chunk))
        while True:
            while free:
                i = next(todo, None)
                if i is None:
                    break
                slot = free.pop()
                window.append((slot, pool.submit(_crops, pending[i:i + chunk], strict, slots, slot)))
            if not window:
                return
            t0 = time.perf_counter()
            slot, fut = window.popleft()
            kept, failed, busy = fut.result()
            stats["wait"] += time.perf_counter() - t0
            stats["decode"] += busy
            yield kept, view[slot, :len(kept)], failed
            free.append(slot)
    finally:
        pool.shutdown(cancel_futures=True)
        del view
        slots.close()


def _batches(chunks, batch_size, shape, meta, failed):
    """Re-cut chunks into full uint8 batches (the last padded); (kept, n) go to `meta`."""
    buf, kept = np.empty((batch_size, *shape), np.uint8), []
    for k, crops, f in chunks:
        failed += f
        j = 0
        while j < len(k):
            take = min(batch_size - len(kept), len(k) - j)
            buf[len(kept):len(kept) + take] = crops[j:j + take]
            kept += k[j:j + take]
            j += take
            if len(kept) == batch_size:
                meta.append(kept)
                yield buf
                buf, kept = np.empty_like(buf), []
    if kept:
        buf[len(kept):] = buf[len(kept) - 1]
        meta.append(kept)
        yield buf


class _Writers:
    """Output encoding and writing on threads, a bounded number of batches in flight."""

    def __init__(self, out, n):
        self.out, self.pool, self.window = out, ThreadPoolExecutor(n), deque()
        self.n = n

    def put(self, keys, logits):
        self.window.append(self.pool.submit(self.out.write, keys, logits))
        while len(self.window) > 2 * self.n:
            self.window.popleft().result()

    def close(self):
        for f in self.window:
            f.result()
        self.pool.shutdown()


def run_feeder(pending, *, step, pp, out, workers, strict, advance, decode="cpu") -> dict:
    """Process `pending` (key, path) items through `step` (a BatchStep over a device
    backend) into `out`; returns stage times (seconds) and failures, like stream.run_stream."""
    rt, bs = step.rt, step.batch_size
    rt.set_normalization(pp)
    workers = max(1, workers or usable_cpus())
    stats = {"wait": 0.0, "decode": 0.0, "infer": 0.0, "post": 0.0}
    failed: list = []
    # one writer thread for a central output (Parquet): rows land in the order they were run
    writers = _Writers(out, 1 if out.central else max(2, min(8, workers // 2)))
    done = 0
    try:
        if decode == "gpu":
            results = _gpu_results(pending, rt, pp, bs, stats, failed, strict)
        else:
            meta: deque = deque()
            chunks = _cpu_chunks(pending, pp, workers, strict, max(64, bs), stats, rt.input_shape)
            logits_it = rt.pipelined(_batches(chunks, bs, rt.input_shape, meta, failed))
            results = ((meta.popleft(), lg) for lg in logits_it)
        while True:
            t0 = time.perf_counter()
            r = next(results, None)
            stats["infer"] += time.perf_counter() - t0
            if r is None:
                break
            kept, logits = r
            t1 = time.perf_counter()
            writers.put([k for k, _ in kept], step.check(logits, len(kept), [p for _, p in kept]).copy())
            stats["post"] += time.perf_counter() - t1
            done += len(kept)
            advance(len(kept))
    finally:
        writers.close()
    advance(len(failed))
    stats["infer"] -= stats.pop("wait")  # next() also waited for decoded input
    return {"done": done, "failed": failed, "workers": workers, **stats}


def _gpu_results(pending, rt, pp, bs, stats, failed, strict):
    """(kept, logits) per batch: files read ahead on threads, decoded and run on the GPU."""
    from ..gpudecode import DeviceDecoder

    dec = DeviceDecoder(pp, rt.dev)

    def read(group):
        blobs = []
        for _, path in group:
            with open(path, "rb") as f:
                blobs.append(f.read())
        return group, blobs

    with ThreadPoolExecutor(4) as io:
        todo = iter(range(0, len(pending), bs))
        ahead: deque = deque()
        while True:
            while len(ahead) < 8:  # bounded read-ahead: memory stays flat
                i = next(todo, None)
                if i is None:
                    break
                ahead.append(io.submit(read, pending[i:i + bs]))
            if not ahead:
                break
            t0 = time.perf_counter()
            group, blobs = ahead.popleft().result()
            try:
                u8 = dec(blobs, [p for _, p in group])
            except ClsbenchError as e:
                if strict:
                    raise
                failed.append((group[0][1], str(e)))  # rare: redo one by one to keep the good ones
                group, u8 = _one_by_one(dec, group, failed)
                if not group:
                    continue
            n = len(group)
            if n < bs:
                u8 = rt.torch.cat([u8, u8[-1:].expand(bs - n, *u8.shape[1:])])
            stats["decode"] += time.perf_counter() - t0
            stats["wait"] += time.perf_counter() - t0
            # Batch by batch, on purpose. torchvision's nvJPEG decoder writes on its own stream
            # into memory handed out in the current stream's order, so decoding batch i+1 while
            # batch i is in flight can overwrite inputs not yet read (NaN outputs on an H100);
            # and overlapping with a wait for the input copy measured slower (6,203 img/s)
            # than this (7,410 img/s), both on an H100 (docs/performance.md).
            yield group, rt.run_device_uint8(u8)


def _one_by_one(dec, group, failed):
    failed.pop()
    kept, parts = [], []
    for key, path in group:
        with open(path, "rb") as f:
            blob = f.read()
        try:
            parts.append(dec([blob], [path]))
            kept.append((key, path))
        except ClsbenchError as e:
            failed.append((path, str(e)))
    return kept, (dec.torch.cat(parts) if parts else None)
