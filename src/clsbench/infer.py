"""Offline inference over a .info file, the guide's vendor `benchmark` step (formats.md §5).

Three threads overlap the work like the vendor tool's pipeline: a reader fills batch
buffers from the .bin files, the caller's thread runs the backend, a writer formats and
writes one output file per input. Only the backend's own run() is counted as compute, so
"Interface throughputRate" is the pure compute rate and [e2e] is what a user waits for.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import queue
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import ClsbenchError, __version__
from ._io import atomic_write_bytes, atomic_write_json, atomic_write_text, remove_stale_temps
from .backends import get_backend
from .dataset import InfoEntry, read_info, stem
from .perf import (StageTimes, environment, format_perf_file, latency_stats, perf_file_name)

OUTFMTS = ("txt", "bin", "npy")
MANIFEST = ".clsbench_infer.json"


def file_sha256(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def output_name(entry_path: str, outfmt: str) -> str:
    """`<input-stem>_1.<fmt>`: output index 1, as the guide's benchmark tool names it."""
    return f"{stem(entry_path)}_1.{outfmt}"


def _put(q: queue.Queue, item, give_up) -> bool:
    """put() that stops waiting once give_up() is true, so no thread blocks forever."""
    while True:
        try:
            q.put(item, timeout=0.1)
            return True
        except queue.Full:
            if give_up():
                return False


class OutputEncoder:
    def __init__(self, outfmt: str, num_classes: int):
        if outfmt not in OUTFMTS:
            raise ClsbenchError(f"unknown output format {outfmt!r}; choose from {', '.join(OUTFMTS)}")
        self.outfmt = outfmt
        # %.9g round-trips every float32 exactly, so scores read back rank identically
        self._fmt = " ".join(["%.9g"] * num_classes) + "\n"

    def encode(self, row: np.ndarray) -> bytes:
        if self.outfmt == "txt":
            return (self._fmt % tuple(row.tolist())).encode()
        if self.outfmt == "bin":
            return np.ascontiguousarray(row, dtype="<f4").tobytes()
        buf = io.BytesIO()
        np.save(buf, np.ascontiguousarray(row, dtype="<f4"), allow_pickle=False)
        return buf.getvalue()


@dataclass
class _Batch:
    entries: list[InfoEntry]
    data: np.ndarray  # a view of one ring buffer
    read_s: float


def _check_inputs(entries: list[InfoEntry], info: str, shape: tuple[int, int, int]) -> None:
    c, h, w = shape
    want = c * h * w * 4
    for e in entries:
        if (e.width, e.height) != (w, h):
            raise ClsbenchError(f"{info}: idx {e.idx} ({e.path}) is {e.width}x{e.height}, "
                                f"the model takes {w}x{h}")
        try:
            size = os.stat(e.path).st_size
        except FileNotFoundError:
            raise ClsbenchError(f"{e.path}: listed in {info} as idx {e.idx} but missing") from None
        if size != want:
            raise ClsbenchError(f"{e.path}: {size} bytes, expected {want} "
                                f"(float32 {c}x{h}x{w}); truncated or not a preprocessed tensor")


def _prepare_output_dir(dump: Path, manifest: dict, overwrite: bool) -> None:
    dump.mkdir(parents=True, exist_ok=True)
    mpath = dump / MANIFEST
    if mpath.exists():
        old = json.loads(mpath.read_text())
        keys = ("model_sha256", "batch_size", "outfmt", "backend", "precision")
        diff = {k: (old.get(k), manifest[k]) for k in keys if old.get(k) != manifest[k]}
        if diff and not overwrite:
            raise ClsbenchError(f"{dump}: holds outputs of another run ({diff}); use another "
                                f"--output or --device-id, or --overwrite to replace them")
        if diff:
            _clear_outputs(dump)
    elif any(n.endswith(OUTFMTS) for n in os.listdir(dump)):
        if not overwrite:
            raise ClsbenchError(f"{dump}: holds outputs that clsbench did not write; "
                                f"use --overwrite to replace them")
        _clear_outputs(dump)
    remove_stale_temps(dump)
    atomic_write_json(mpath, manifest)


def _clear_outputs(dump: Path) -> None:
    for p in dump.iterdir():
        if p.is_file() and p.name.endswith(OUTFMTS):
            p.unlink()


def infer_offline(model: str, info: str, *, batch_size: int, output: str = "result",
                  device_id: int = 0, outfmt: str = "txt", backend: str = "onnxruntime",
                  threads: int | None = None, precision: str = "fp32", overwrite: bool = False,
                  show_progress: bool = True) -> dict:
    """Run every input of `info`; returns the perf record (also written as .txt and .json)."""
    from .ui import progress

    if batch_size < 1:
        raise ClsbenchError(f"batch size must be >= 1, got {batch_size}")
    entries = read_info(info)
    rt = get_backend(backend)(model, batch_size=batch_size, threads=threads,
                              device_id=device_id, precision=precision)
    shape = rt.input_shape
    _check_inputs(entries, info, shape)
    out_root = Path(output)
    dump = out_root / f"dumpOutput_device{device_id}"
    manifest = {"tool": f"clsbench {__version__}", "model": os.path.abspath(model),
                "model_sha256": file_sha256(model), "batch_size": batch_size, "outfmt": outfmt,
                "backend": backend, "precision": precision, "info": os.path.abspath(info)}
    names = [output_name(e.path, outfmt) for e in entries]
    if len(set(names)) != len(names):
        seen = {}
        for e, n in zip(entries, names):
            if n in seen:
                raise ClsbenchError(f"{info}: {e.path} and {seen[n]} would both write {n}")
            seen[n] = e.path
    _prepare_output_dir(dump, manifest, overwrite)
    done = {n for n in os.listdir(dump)}
    pending = [e for e, n in zip(entries, names) if n not in done]
    resumed = len(entries) - len(pending)

    # warm-up: the first run allocates and plans; it is not part of any figure
    warm = np.zeros((batch_size, *shape), dtype=np.float32)
    probe = rt.run(warm)
    num_classes = int(probe.shape[-1])
    encoder = OutputEncoder(outfmt, num_classes)

    batches = [pending[i:i + batch_size] for i in range(0, len(pending), batch_size)]
    ring = [np.empty((batch_size, *shape), dtype=np.float32) for _ in range(4)]
    to_infer: queue.Queue = queue.Queue(maxsize=2)
    to_write: queue.Queue = queue.Queue(maxsize=4)
    errors: list[BaseException] = []
    stop = threading.Event()
    times = {"read": 0.0, "pre": 0.0, "post": 0.0}

    def reader():
        try:
            for k, group in enumerate(batches):
                buf = ring[k % len(ring)]
                t0 = time.perf_counter()
                for i, e in enumerate(group):
                    with open(e.path, "rb") as f:
                        if f.readinto(memoryview(buf[i]).cast("B")) != buf[i].nbytes:
                            raise ClsbenchError(f"{e.path}: shorter than expected (changed during the run?)")
                t1 = time.perf_counter()
                # pad the last partial batch with its last sample; padding outputs are dropped
                buf[len(group):] = buf[len(group) - 1]
                times["read"] += t1 - t0
                times["pre"] += time.perf_counter() - t1
                if not _put(to_infer, _Batch(group, buf, t1 - t0), stop.is_set):
                    return
        except BaseException as e:  # surfaced in the caller's thread
            errors.append(e)
        finally:
            _put(to_infer, None, lambda: stop.is_set())

    def writer():
        try:
            while True:
                item = to_write.get()
                if item is None:
                    return
                group, logits = item
                t0 = time.perf_counter()
                for e, row in zip(group, logits):
                    atomic_write_bytes(dump / output_name(e.path, outfmt), encoder.encode(row))
                times["post"] += time.perf_counter() - t0
                advance(len(group))
        except BaseException as e:
            errors.append(e)
            stop.set()

    compute_ms: list[float] = []
    t_start = time.perf_counter()
    with progress(len(pending), f"infer bs{batch_size} → {dump}", show_progress) as advance:
        threads_ = [threading.Thread(target=reader, daemon=True),
                    threading.Thread(target=writer, daemon=True)]
        for t in threads_:
            t.start()
        try:
            while True:
                item = to_infer.get()
                if item is None or errors:
                    break
                t0 = time.perf_counter()
                logits = rt.run(item.data)
                compute_ms.append((time.perf_counter() - t0) * 1e3)
                if logits.shape != (batch_size, num_classes):
                    raise ClsbenchError(f"{model}: output shape {logits.shape}, expected "
                                        f"({batch_size}, {num_classes})")
                _put(to_write, (item.entries, logits[:len(item.entries)]), lambda: bool(errors))
        finally:
            stop.set()
            while True:  # unblock a reader waiting on a full queue
                try:
                    to_infer.get_nowait()
                except queue.Empty:
                    break
            _put(to_write, None, lambda: not threads_[1].is_alive())
            for t in threads_:
                t.join()
    if errors:
        raise errors[0]
    wall = time.perf_counter() - t_start

    st = StageTimes(samples=len(pending), computed=len(compute_ms) * batch_size, wall_s=wall,
                    read_s=times["read"], preprocess_s=times["pre"],
                    infer_s=sum(compute_ms) / 1e3, post_s=times["post"])
    record = {
        "mode": "offline", "samples": len(pending), "resumed": resumed, "total": len(entries),
        "batch_size": batch_size, "device_id": device_id, "outfmt": outfmt, "warmup_runs": 1,
        "info": os.path.abspath(info), "outputs": str(dump.resolve()),
        "stages": st.rates() if pending else {},
        "compute_latency_ms_per_batch": latency_stats(compute_ms),
        "num_classes": num_classes, "backend": rt.describe(), "environment": environment(),
    }
    if pending:
        # a resumed run measured only its own part; the perf file says what it measured
        atomic_write_text(out_root / perf_file_name(batch_size, device_id), format_perf_file(st))
        atomic_write_json(out_root / perf_file_name(batch_size, device_id).replace(".txt", ".json"), record)
    return record


def pure_inference(model: str, *, batch_size: int, loop: int, warmup: int = 5,
                   backend: str = "onnxruntime", threads: int | None = None,
                   precision: str = "fp32", device_id: int = 0, seed: int = 0,
                   output: str | None = None) -> dict:
    """The vendor tool's pure-inference mode: random input, `loop` timed runs."""
    if loop < 1:
        raise ClsbenchError(f"--loop must be >= 1, got {loop}")
    rt = get_backend(backend)(model, batch_size=batch_size, threads=threads,
                              device_id=device_id, precision=precision)
    x = np.random.default_rng(seed).standard_normal((batch_size, *rt.input_shape), dtype=np.float32)
    for _ in range(warmup):
        rt.run(x)
    ms = []
    for _ in range(loop):
        t0 = time.perf_counter()
        rt.run(x)
        ms.append((time.perf_counter() - t0) * 1e3)
    stats = latency_stats(ms)
    record = {"mode": "pure-inference", "input": f"random normal, seed {seed}",
              "batch_size": batch_size, "loop": loop, "warmup_runs": warmup,
              "ave_throughputRate": 1e3 * batch_size / stats["mean"],
              "ave_latency": stats["mean"], "latency_ms_per_batch": stats,
              "backend": rt.describe(), "environment": environment()}
    if output:
        Path(output).mkdir(parents=True, exist_ok=True)
        atomic_write_json(Path(output) / f"perf_pure_batchsize_{batch_size}_device_{device_id}.json", record)
    return record
