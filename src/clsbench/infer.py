"""Offline inference over a .info file, the guide's vendor `benchmark` step (formats.md §5).

Each batch is read from its .bin files, padded, run, and written as one output file per
input. Only the backend's own run() is counted as compute, so "Interface throughputRate"
is the pure compute rate and [e2e] is what a user waits for.
"""
from __future__ import annotations

import io
import json
import os
import time
from pathlib import Path

import numpy as np

from . import ClsbenchError, __version__
from ._io import (atomic_write_bytes, atomic_write_json, atomic_write_text, file_sha256,
                  remove_stale_temps)
from .backends import get_backend
from .dataset import InfoEntry, check_unique, read_info, stem
from .perf import (StageTimes, environment, format_perf_file, latency_stats, perf_file_name)

OUTFMTS = ("txt", "bin", "npy")
MANIFEST = ".clsbench_infer.json"


_P10 = 10.0 ** np.arange(-60, 61)
_PAIRS = np.array([[48 + i // 10, 48 + i % 10] for i in range(100)], np.uint8)


def format_scores(a: np.ndarray) -> list[bytes]:
    """float32 (B, C) -> B text lines, each value as Python's '%+.8e', space-separated.

    Vectorized (about 2x faster than %-formatting, which dominated the writer's CPU time
    on 2 cores) and byte-identical to it (tests check random bit patterns). Nine
    significant digits round-trip every float32, so scores read back rank identically;
    the explicit sign keeps every field the same width.
    """
    b, c = a.shape
    x = a.astype(np.float64).ravel()
    ax = np.abs(x)
    nz = ax > 0
    with np.errstate(divide="ignore"):
        e = np.floor(np.log10(np.where(nz, ax, 1.0))).astype(np.int32)
    m = np.rint(ax * _P10[68 - e])  # the 9-digit mantissa
    off = (m >= 1e9) | (nz & (m < 1e8))  # log10 landed one decade off
    if off.any():
        i = np.flatnonzero(off)
        e[i] += np.where(m[i] >= 1e9, 1, -1)
        m[i] = np.rint(ax[i] * _P10[68 - e[i]])
    m = m.astype(np.int32)
    out = np.empty((x.size, 16), np.uint8)
    out[:, 0] = np.where(np.signbit(x), 45, 43)  # '-' / '+'
    lead, rest = np.divmod(m, 100_000_000)
    out[:, 1] = lead + 48
    out[:, 2] = 46  # '.'
    hi, lo = np.divmod(rest, 10_000)
    for col, part in ((3, hi // 100), (5, hi % 100), (7, lo // 100), (9, lo % 100)):
        out[:, col:col + 2] = _PAIRS[part]
    out[:, 11] = 101  # 'e'
    out[:, 12] = np.where(e < 0, 45, 43)
    out[:, 13:15] = _PAIRS[np.abs(e)]
    out[:, 15] = 32
    out = out.reshape(b, c * 16)
    out[:, -1] = 10  # each line ends in a newline instead of the last space
    return [r.tobytes() for r in out]


class OutputEncoder:
    def __init__(self, outfmt: str):
        if outfmt not in OUTFMTS:
            raise ClsbenchError(f"unknown output format {outfmt!r}; choose from {', '.join(OUTFMTS)}")
        self.outfmt = outfmt

    def encode(self, rows: np.ndarray) -> list[bytes]:
        """One file's bytes per row of a (B, classes) float32 batch."""
        if self.outfmt == "txt":
            return format_scores(rows)
        if self.outfmt == "bin":
            return [np.ascontiguousarray(r, dtype="<f4").tobytes() for r in rows]
        blobs = []
        for r in rows:
            buf = io.BytesIO()
            np.save(buf, np.ascontiguousarray(r, dtype="<f4"), allow_pickle=False)
            blobs.append(buf.getvalue())
        return blobs


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
    """Refuse to mix outputs of different runs; --overwrite clears the folder's outputs."""
    dump.mkdir(parents=True, exist_ok=True)
    mpath = dump / MANIFEST
    if overwrite:
        _clear_outputs(dump)
    elif mpath.exists():
        old = json.loads(mpath.read_text())
        keys = ("model_sha256", "batch_size", "outfmt", "backend", "precision", "input")
        diff = {k: (old.get(k), manifest[k]) for k in keys if old.get(k) != manifest[k]}
        if diff:
            raise ClsbenchError(f"{dump}: holds outputs of another run ({diff}); use another "
                                f"--output or --device-id, or --overwrite to replace them")
    elif any(n.endswith(OUTFMTS) for n in os.listdir(dump)):
        raise ClsbenchError(f"{dump}: holds outputs that clsbench did not write; "
                            f"use --overwrite to replace them")
    remove_stale_temps(dump)
    atomic_write_json(mpath, manifest)


def _clear_outputs(dump: Path) -> None:
    for p in dump.iterdir():
        if p.is_file() and p.name.endswith(OUTFMTS):
            p.unlink()


class _Source:
    """Where batches come from. items: (key, source) pairs; key names the output file."""

    items: list
    where: str
    unavailable: list
    failed: list

    def start(self, pending) -> None:
        self._pending, self._pos = pending, 0

    def next_group(self, batch_size: int, batch: np.ndarray) -> list:
        """The next items (at most batch_size), their data read into `batch`; [] at the end."""
        group = self._pending[self._pos:self._pos + batch_size]
        self._pos += len(group)
        if group:
            self.read(group, batch)
        return group

    def read(self, group, batch: np.ndarray) -> None:
        raise NotImplementedError

    def preprocess(self, n: int, batch: np.ndarray) -> None:
        pass  # .bin files are model-ready; a store normalizes here


class _BinFiles(_Source):
    """Inputs listed in a .info file: one float32 .bin per image (the guide's format)."""

    def __init__(self, info: str, shape: tuple[int, int, int]):
        entries = read_info(info)
        _check_inputs(entries, info, shape)
        self.items = [(stem(e.path), e.path) for e in entries]
        self.where = os.path.abspath(info)
        self.unavailable, self.failed = [], []

    def read(self, group, batch: np.ndarray) -> None:
        for i, (_, path) in enumerate(group):
            with open(path, "rb", buffering=0) as f:  # straight into the batch
                if f.readinto(memoryview(batch[i]).cast("B")) != batch[i].nbytes:
                    raise ClsbenchError(f"{path}: shorter than expected (changed during the run?)")


class _StoreSource(_Source):
    """Inputs from a compact uint8 store: gathered, then normalized per batch."""

    def __init__(self, root: str, shape: tuple[int, int, int]):
        from .store import Store

        self.store = Store(root)
        c = self.store.pp.crop
        if (3, c, c) != tuple(shape):
            raise ClsbenchError(f"{root}: crops are 3x{c}x{c}, the model takes {shape}")
        self.items = [(n, i) for i, n in enumerate(self.store.names) if self.store.done[i]]
        self.unavailable = [n for i, n in enumerate(self.store.names) if not self.store.done[i]]
        self.where = os.path.abspath(root)
        self.failed = []

    def read(self, group, batch: np.ndarray) -> None:
        first, last = group[0][1], group[-1][1]
        idx = [i for _, i in group]
        # contiguous slots (the usual case) are one memcpy from the mapping
        self._u8 = (self.store.crops[first:last + 1] if last - first + 1 == len(idx)
                    else self.store.crops[idx])

    def preprocess(self, n: int, batch: np.ndarray) -> None:
        from .preprocess import normalize_batch

        normalize_batch(self._u8, self.store.pp, out=batch[:n])


class _ImageFolder(_Source):
    """An image folder for streaming (see stream.py): only its listing is needed here."""

    def __init__(self, images: str, shape: tuple[int, int, int], pp):
        from .dataset import list_images

        c = pp.crop
        if (3, c, c) != tuple(shape):
            raise ClsbenchError(f"preset crop 3x{c}x{c} does not match the model input {shape}")
        listing = list_images(images)
        if not listing.images:
            raise ClsbenchError(f"{images}: holds no images")
        self.items = [(stem(p.name), os.path.join(images, str(p))) for p in listing.images]
        self.where = os.path.abspath(images)
        self.unavailable, self.failed = [], []


def infer_offline(model: str, info: str | None = None, *, batch_size: int, store: str | None = None,
                  images: str | None = None, preprocessing=None, workers: int | None = None,
                  strict: bool = False, output: str = "result", device_id: int = 0, outfmt: str = "txt",
                  backend: str = "onnxruntime", threads: int | None = None, precision: str = "fp32",
                  overwrite: bool = False, show_progress: bool = True) -> dict:
    """Run every input of `info`, of a compact `store`, or of an image folder decoded on the
    fly (`images`, streaming); returns the perf record (also written as the vendor's perf
    .txt and a .json)."""
    from .ui import progress

    if batch_size < 1:
        raise ClsbenchError(f"batch size must be >= 1, got {batch_size}")
    if sum(x is not None for x in (info, store, images)) != 1:
        raise ClsbenchError("give exactly one input: an .info file, a store or an image folder")
    if info is not None:
        read_info(info)  # a malformed .info is reported before the model is loaded
    rt = get_backend(backend)(model, batch_size=batch_size, threads=threads, device_id=device_id,
                              precision=precision)
    shape = rt.input_shape
    if info is not None:
        source = _BinFiles(info, shape)
    elif store is not None:
        source = _StoreSource(store, shape)
    else:
        from .models import PRESETS

        preprocessing = preprocessing or PRESETS["mnasnet"]
        source = _ImageFolder(images, shape, preprocessing)
    out_root = Path(output)
    dump = out_root / f"dumpOutput_device{device_id}"
    manifest = {"tool": f"clsbench {__version__}", "model": os.path.abspath(model),
                "model_sha256": file_sha256(model), "batch_size": batch_size, "outfmt": outfmt,
                "backend": backend, "precision": precision, "input": source.where}
    names = [f"{key}_1.{outfmt}" for key, _ in source.items]
    check_unique(zip(names, (src for _, src in source.items)), source.where)
    _prepare_output_dir(dump, manifest, overwrite)
    done = set(os.listdir(dump))
    pending = [item for item, n in zip(source.items, names) if n not in done]
    resumed = len(source.items) - len(pending)

    # warm-up: the first run allocates and plans; it is not part of any figure
    probe = rt.run(np.zeros((batch_size, *shape), dtype=np.float32))
    num_classes = int(probe.shape[-1])
    encoder = OutputEncoder(outfmt)
    description = rt.describe()

    if images is not None:
        from .stream import run_stream

        del rt  # each worker loads its own single-threaded copy
        t_start = time.perf_counter()
        with progress(len(pending), f"stream bs{batch_size} → {dump}", show_progress) as advance:
            r = run_stream(pending, model=model, backend=backend, precision=precision,
                           batch_size=batch_size, pp=preprocessing, dump=dump, outfmt=outfmt,
                           workers=workers, strict=strict, advance=advance)
        wall = time.perf_counter() - t_start
        source.failed = r["failed"]
        description.update(threads=1, processes=r["workers"],
                           layout="one single-threaded pipeline (decode..write) per process")
        n = r["workers"]
        # stage times are summed over the worker processes; divided by their number they
        # are the wall time each stage would take alone, comparable with the other modes
        st = StageTimes(samples=r["done"], computed=len(r["compute_ms"]) * batch_size, wall_s=wall,
                        read_s=r["decode"] / n, preprocess_s=r["pre"] / n,
                        infer_s=sum(r["compute_ms"]) / 1e3 / n, post_s=r["post"] / n)
        return _finish(st, r["compute_ms"], source, resumed, batch_size, device_id, outfmt, dump,
                       out_root, num_classes, description, "stream")

    batch = np.empty((batch_size, *shape), dtype=np.float32)
    compute_ms: list[float] = []
    read_s = pre_s = post_s = 0.0
    t_start = time.perf_counter()
    # One thread, in order: read -> run -> write. On a machine whose cores all run the
    # runtime, overlapping I/O threads measured slower (they preempt the runtime's
    # spinning workers mid-layer) than doing the I/O between runs; see docs/performance.md.
    source.start(pending)
    with progress(len(pending), f"infer bs{batch_size} → {dump}", show_progress) as advance:
        while True:
            t0 = time.perf_counter()
            group = source.next_group(batch_size, batch)
            if not group:
                break
            t1 = time.perf_counter()
            source.preprocess(len(group), batch)
            # pad the last partial batch with its last sample; padding outputs are dropped
            batch[len(group):] = batch[len(group) - 1]
            t2 = time.perf_counter()
            logits = rt.run(batch)
            t3 = time.perf_counter()
            if logits.shape != (batch_size, num_classes):
                raise ClsbenchError(f"{model}: output shape {logits.shape}, expected "
                                    f"({batch_size}, {num_classes})")
            logits = logits[:len(group)]
            bad = ~np.isfinite(logits).all(axis=1)
            if bad.any():
                raise ClsbenchError(f"{model}: NaN or infinite output for {group[int(np.argmax(bad))][1]}")
            for (key, _), blob in zip(group, encoder.encode(logits)):
                atomic_write_bytes(dump / f"{key}_1.{outfmt}", blob)
            t4 = time.perf_counter()
            read_s += t1 - t0
            pre_s += t2 - t1
            compute_ms.append((t3 - t2) * 1e3)
            post_s += t4 - t3
            advance(len(group))
    wall = time.perf_counter() - t_start
    n_done = len(pending) - len(source.failed)

    st = StageTimes(samples=n_done, computed=len(compute_ms) * batch_size, wall_s=wall,
                    read_s=read_s, preprocess_s=pre_s, infer_s=sum(compute_ms) / 1e3, post_s=post_s)
    return _finish(st, compute_ms, source, resumed, batch_size, device_id, outfmt, dump, out_root,
                   num_classes, description, "offline")


def _finish(st: StageTimes, compute_ms, source, resumed, batch_size, device_id, outfmt, dump, out_root,
            num_classes, description, mode) -> dict:
    """The perf record; written as the vendor's perf .txt and a .json when anything ran."""
    record = {
        "mode": mode, "samples": st.samples, "resumed": resumed, "total": len(source.items),
        "unavailable": source.unavailable,
        "failed": [{"file": f, "error": e} for f, e in source.failed],
        "batch_size": batch_size, "device_id": device_id, "outfmt": outfmt, "warmup_runs": 1,
        "input": source.where, "outputs": str(dump.resolve()),
        "stages": st.rates() if st.samples else {},
        "compute_latency_ms_per_batch": latency_stats(compute_ms),
        "num_classes": num_classes, "backend": description, "environment": environment(),
    }
    if st.samples:
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
