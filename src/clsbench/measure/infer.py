"""Offline inference over a .info file, the guide's vendor `benchmark` step (formats.md §5).

Each batch is read from its .bin files, padded, run, and written as one output file per
input (`outputs.OutputFolder`, through `stages.BatchStep`). Only the backend's own run()
is counted as compute, so "Interface throughputRate" is the pure compute rate and [e2e]
is what a user waits for.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..defaults import default
from .. import ClsbenchError, __version__
from .._io import atomic_write_json, atomic_write_text, file_sha256, folder_lock, read_record
from ..runtime.backends import open_backend
from ..data.folders import InfoEntry, check_unique, read_info, stem
from ..runtime.outputs import open_outputs
from ..runtime.timing import DEFAULT_PERCENTILES, LatencyLog, StageTimes, environment, format_perf_file, latencies_file_name, latency_stats, perf_file_name, stability
from ..runtime.stages import BatchStep


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
            side = int(round((size / 12) ** 0.5))
            hint = (f"; a {side}x{side} crop: preprocessed for another model?"
                    if 12 * side * side == size else "; truncated or not a preprocessed tensor")
            raise ClsbenchError(f"{e.path}: {size} bytes, expected {want} (float32 {c}x{h}x{w}){hint}")


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

    def fingerprint(self, src) -> list:
        """What an output computed from item `src` depends on (plan.file_fingerprint): a file
        replaced in place, or another file under the same name, is another input."""
        from .._io import file_fingerprint

        return file_fingerprint(src)


class _BinFiles(_Source):
    """Inputs listed in a .info file: one float32 .bin per image (the guide's format)."""

    def __init__(self, info: str, shape: tuple[int, int, int]):
        entries = read_info(info)
        _check_inputs(entries, info, shape)
        self.items = [(stem(e.path), e.path) for e in entries]
        self.where = os.path.abspath(info)
        self.unavailable, self.failed = [], []
        used: dict = {}
        for e in entries:
            used.setdefault(os.path.dirname(os.path.abspath(e.path)), []).append(os.path.basename(e.path))
        self.made_with = recorded_preset(info, used)
        self.folders = sorted(used)

    def read(self, group, batch: np.ndarray) -> None:
        for i, (_, path) in enumerate(group):
            with open(path, "rb", buffering=0) as f:  # straight into the batch
                if f.readinto(memoryview(batch[i]).cast("B")) != batch[i].nbytes:
                    raise ClsbenchError(f"{path}: shorter than expected (changed during the run?)")


def recorded_preset(info: str, folders):
    """The preset the .bin files were made with, from each folder's record beside it
    (`<folder>.clsbench.json`, written by `clsbench preprocess`); None where none says.
    `folders`: folder -> the .bin names used from it (a set of folders: every .bin there).
    A record vouches only for the files it lists: one it does not list is of unknown
    preprocessing, and folders of different presets would mix: both are errors."""
    from .._io import read_record, sidecar
    from ..model.table import Preprocessing

    if not isinstance(folders, dict):
        folders = {f: sorted(n for n in os.listdir(f) if n.endswith(".bin")) for f in folders}
    found = {}
    for folder in sorted(folders):
        rec = read_record(sidecar(folder)) or {}
        pp = rec.get("identity", {}).get("preprocessing")
        if pp is None:
            continue
        found[folder] = Preprocessing.from_dict(pp, f"{sidecar(folder)}: identity.preprocessing")
        stray = [n for n in folders[folder] if n not in (rec.get("sources") or {})]
        if stray:
            raise ClsbenchError(f"{os.path.join(folder, stray[0])}: not among the files {sidecar(folder)} records "
                                f"(made by `clsbench preprocess`), so of unknown preprocessing among checked ones"
                                + (f" ({len(stray)} such files)" if len(stray) > 1 else ""))
    if len({p.describe() for p in found.values()}) > 1:
        raise ClsbenchError(f"{info}: lists .bin files of folders made with different presets: "
                            + "; ".join(f"{f}: {p.describe()}" for f, p in found.items()))
    if found and len(found) < len(folders):
        missing = sorted(set(folders) - set(found))
        raise ClsbenchError(f"{info}: some .bin folders record their preset and {missing[0]} does not: "
                            f"tensors of unknown preprocessing among checked ones")
    return next(iter(found.values()), None)


class _StoreSource(_Source):
    """Inputs from a compact uint8 store: gathered, then normalized per batch."""

    def __init__(self, root: str, shape: tuple[int, int, int]):
        from ..data.store import Store

        self.store = Store(root)
        c = self.store.pp.crop
        if (3, c, c) != tuple(shape):
            raise ClsbenchError(f"{root}: crops are 3x{c}x{c}, the model takes {shape}")
        self.items = [(n, i) for i, n in enumerate(self.store.names) if self.store.done[i]]
        self.unavailable = [n for i, n in enumerate(self.store.names) if not self.store.done[i]]
        self.where = os.path.abspath(root)
        self.failed = []
        self.made_with = self.store.pp
        self.folders = [self.where]

    def read(self, group, batch: np.ndarray) -> None:
        first, last = group[0][1], group[-1][1]
        idx = [i for _, i in group]
        # contiguous slots (the usual case) are one memcpy from the mapping
        self._u8 = (self.store.crops[first:last + 1] if last - first + 1 == len(idx)
                    else self.store.crops[idx])

    def fingerprint(self, src) -> list:
        return [str(self.store.root.resolve()), self.store.names[src], self.store.fingerprint(src)]

    def preprocess(self, n: int, batch: np.ndarray) -> None:
        from ..data.preprocess import normalize_batch

        if batch.dtype == np.uint8:  # the model normalizes (checked against the store in _open_source)
            batch[:n] = self._u8
        else:
            normalize_batch(self._u8, self.store.pp, out=batch[:n])


def _uint8_source(rt, info, store) -> _Source:
    """A model with the normalization folded in takes a store's uint8 crops, and only crops
    made with the mean and std it folded in."""
    from ..model.fold import folded
    from ..model.files import read_metadata

    if store is None:
        raise ClsbenchError(f"{rt.model_path}: takes uint8 crops (the normalization is folded in): give "
                            f"--store (`clsbench preprocess --format store`), not "
                            f"{'an .info of normalized .bin files' if info else 'an image folder'}")
    src = _StoreSource(store, rt.input_shape)
    want = folded(read_metadata(rt.model_path))
    pp = src.store.pp
    if want is None or [list(pp.mean), list(pp.std)] != [want["mean"], want["std"]]:
        raise ClsbenchError(f"{store}: crops for mean {list(pp.mean)}, std {list(pp.std)}; the model folded in "
                            f"{want or 'an unrecorded normalization'}")
    return src


class _ImageFolder(_Source):
    """An image folder for streaming (see stream.py): only its listing is needed here."""

    def __init__(self, images: str, shape: tuple[int, int, int], pp):
        from ..data.folders import list_images

        c = pp.crop
        if (3, c, c) != tuple(shape):
            raise ClsbenchError(f"preprocessing crops 3x{c}x{c}, but the model takes {shape}")
        listing = list_images(images)
        if not listing.images:
            raise ClsbenchError(f"{images}: holds no images")
        self.items = [(stem(p.name), os.path.join(images, str(p))) for p in listing.images]
        self.where = os.path.abspath(images)
        self.unavailable, self.failed = [], []
        self.made_with = pp
        self.folders = [self.where]


def _open_source(rt, info, store, images, preprocessing) -> _Source:
    if rt.input_dtype == np.uint8:
        return _uint8_source(rt, info, store)
    if info is not None:
        return _BinFiles(info, rt.input_shape)
    if store is not None:
        return _StoreSource(store, rt.input_shape)
    if preprocessing is None:
        raise ClsbenchError("streaming from images needs their preprocessing (a model or preset)")
    return _ImageFolder(images, rt.input_shape, preprocessing)


@dataclass
class InferOptions:
    """`infer_offline`'s settings; exactly one input (an .info file, `store` or `images`)."""

    batch_size: int = default("infer", "batch_size")
    store: str | None = None  # a compact store (`preprocess --format store`)
    images: str | None = None  # an image folder, decoded on the fly (streaming)
    preprocessing: object = None  # models.Preprocessing, for `images`
    workers: int | None = None
    strict: bool = False
    output: str = default("infer", "output")
    device_id: int = default("infer", "device_id")
    outfmt: str = default("infer", "outfmt")
    backend: str | None = None  # None: what the model file is
    threads: int | None = None
    precision: str | None = None
    overwrite: bool = False
    show_progress: bool = True
    decode: str = default("infer", "decode")
    backend_options: dict = field(default_factory=dict)
    percentiles: tuple = DEFAULT_PERCENTILES
    engine: str = default("infer", "engine")
    ray_address: str | None = None
    ray_timeout: float = default("infer", "ray_timeout")  # seconds to reach --ray-address
    labels: dict | None = None  # image key -> class: the label column of `outfmt="parquet"` outputs
    arch: str | None = None  # NAME[:TAG]: the architecture of a .pth (plan.resolve_runnable)
    accept_preset_mismatch: bool = False  # run tensors of another preset anyway (recorded)
    resolved: object = None  # a plan.Runnable decided already (`run`'s plan); None: resolved here
    # False (a `run`'s own work dir): outputs of another input folder are replaced like those of
    # a changed file, instead of refused
    input_identity: bool = True

    def check(self, info: str | None) -> None:
        if self.batch_size < 1:
            raise ClsbenchError(f"batch size must be >= 1, got {self.batch_size}")
        if sum(x is not None for x in (info, self.store, self.images)) != 1:
            raise ClsbenchError("give exactly one input: an .info file, a store or an image folder")
        if info is not None:
            read_info(info)  # a malformed .info is reported before the model is loaded
        if self.decode not in ("cpu", "gpu"):
            raise ClsbenchError(f"decode must be cpu or gpu, got {self.decode!r}")
        if self.decode != "cpu" and self.images is None:
            raise ClsbenchError("--decode gpu applies to streaming from an image folder")
        if self.engine not in ("local", "ray"):
            raise ClsbenchError(f"engine must be local or ray, got {self.engine!r}")
        if self.engine == "ray" and self.images is None:
            raise ClsbenchError("--engine ray streams from an image folder (it decodes on the cluster)")


def infer_offline(model: str, info: str | None = None, options: InferOptions | None = None, **kw) -> dict:
    """Run every input of `info`, of a compact `store`, or of an image folder decoded on the
    fly (`images`, streaming); returns the perf record (also written as the vendor's perf
    .txt and a .json, each batch's compute latency as a .csv beside them). A rerun resumes;
    one with nothing left returns the earlier record, marked `from_earlier_run`. An output is
    reused only when it was computed from the very input file it has now (_io.still_valid).
    Settings: InferOptions (or its fields as keywords)."""
    from .._io import check_memory

    from .._io import check_not_input
    from ..plan import check_tensor_preset

    o = options or InferOptions(**kw)
    o.check(info)
    r = o.resolved or resolve_for(model, o)
    rt = open_backend(model=model, batch_size=o.batch_size, device_id=o.device_id, **r.open_kwargs())
    check_memory(3 * o.batch_size * int(np.prod(rt.input_shape)) * 4, f"{model}: a batch of {o.batch_size}")
    source = _open_source(rt, info, o.store, o.images, o.preprocessing)
    tensors = check_tensor_preset(source.where, source.made_with, r, o.accept_preset_mismatch)
    check_not_input(o.output, {}, "--output", folders={f"the inputs' folder {f}": f for f in source.folders})
    out = open_outputs(o.output, o.device_id, o.outfmt, o.labels)
    names = [out.name(key) for key, _ in source.items]
    check_unique(zip(names, (src for _, src in source.items)), source.where)
    identity = {"model_sha256": file_sha256(model), "batch_size": o.batch_size, "outfmt": o.outfmt,
                "backend": rt.name, "precision": rt.precision, **({"input": source.where} if o.input_identity else {}),
                "decode": o.decode, "model": _model_identity(r),
                **({"preprocessing": o.preprocessing.as_dict()} if o.images is not None else {})}
    sources = {n: source.fingerprint(src) for n, (_, src) in zip(names, source.items)}
    with folder_lock(out.dir):
        done = out.prepare(identity, o.overwrite, sources)
        pending = [item for item, n in zip(source.items, names) if n not in done]
        ctx = _Run(rt, source, out, o, resumed=len(source.items) - len(pending))
        ctx.resolved, ctx.plan = r, {**r.as_dict(), "tensors": tensors}
        if not pending:
            earlier = read_record(ctx.perf_json)
            if earlier is not None:
                return {**earlier, "from_earlier_run": True, "resumed": ctx.resumed}
        try:
            return _engine(ctx, pending, model)
        except KeyboardInterrupt:
            from ..ui import current

            current["done"] = out.count() - ctx.resumed  # what is on disk, not what was reported
            raise
        finally:
            out.finish()


def resolve_for(model: str, o: InferOptions):
    """The plan's model, preset and target of `model` for an infer (plan.resolve_runnable):
    a .pth is the weights of --arch (default: the guide's model) and runs only on torch/cuda
    here; infer exports and compiles nothing."""
    from ..plan import RunnableRequest, resolve_runnable

    opts = dict(o.backend_options)
    hint, mode = opts.pop("hint", None), opts.pop("mode", None)
    if opts:
        raise ClsbenchError(f"infer: no backend option {', '.join(sorted(opts))}")
    return resolve_runnable(model, RunnableRequest(model=o.arch, backend=o.backend, precision=o.precision,
                                                   threads=o.threads, hint=hint, cuda_mode=mode))


def _model_identity(r) -> dict:
    """What the outputs are of, recorded beside them: `eval` judges by it (plan.outputs_reference)."""
    return {"key": r.model.key, "provenance": r.model.provenance, "weights_sha256": r.model.weights_sha256}


def _engine(ctx, pending, model) -> dict:
    """Which engine runs the pending items: Ray, local streaming (a process per pipeline, or
    the device feeder), several requests in flight (OpenVINO's throughput hint), or offline."""
    o = ctx.options
    if o.images is not None and o.engine == "ray":
        return _ray(ctx, pending, model)
    if o.images is not None:
        return _stream(ctx, pending, model)
    from ..runtime.engines.local import run_offline, run_offline_async

    if getattr(ctx.rt, "hint", None) == "throughput":
        return _finish(ctx, *run_offline_async(ctx, pending, o.show_progress))
    return _finish(ctx, *run_offline(ctx, pending, o.show_progress))


class _Run:
    """What one inference run shares between its loop and its record."""

    def __init__(self, rt, source, out, options: InferOptions, resumed: int):
        self.rt, self.source, self.out, self.options = rt, source, out, options
        self.batch_size, self.device_id, self.resumed = options.batch_size, options.device_id, resumed
        self.percentiles = options.percentiles
        self.root = Path(options.output)
        batch_size, device_id = self.batch_size, self.device_id
        self.step = BatchStep(rt, batch_size)
        self.num_classes = self.step.warm_up()
        self.description = rt.describe()
        self.perf_txt = self.root / perf_file_name(batch_size, device_id)
        self.perf_json = self.perf_txt.with_suffix(".json")
        self.latencies_csv = self.root / latencies_file_name(batch_size, device_id)


def _job(ctx: _Run, model: str, threads: int | None = None):
    from ..runtime.stages import Job

    o = ctx.options
    return Job(model, ctx.rt.name, ctx.rt.precision, ctx.batch_size, o.preprocessing, threads,
               dict(ctx.resolved.target.options))


def _stream(ctx: _Run, pending, model) -> dict:
    from ..ui import progress

    rt, o = ctx.rt, ctx.options
    preprocessing, workers, strict, decode = o.preprocessing, o.workers, o.strict, o.decode
    feeds = getattr(rt, "feeds_uint8", False)
    if decode != "cpu" and not feeds:
        raise ClsbenchError(f"--decode {decode} needs the cuda backend, not {rt.name}")
    t_start = time.perf_counter()
    with progress(len(pending), f"stream bs{ctx.batch_size} → {ctx.out.dir}", o.show_progress) as advance:
        if feeds:
            from ..runtime.engines.feeder import run_feeder

            r = run_feeder(pending, step=ctx.step, pp=preprocessing, out=ctx.out, workers=workers,
                           strict=strict, advance=advance, decode=decode)
        else:
            from ..runtime.engines.stream import run_stream

            r = run_stream(pending, _job(ctx, model), ctx.out, workers=workers, strict=strict, advance=advance)
    wall = time.perf_counter() - t_start
    ctx.source.failed = r["failed"]
    if feeds:
        return _finish(ctx, _feeder_times(ctx, r, wall, decode), LatencyLog(None), "stream")
    ctx.description.update(threads=1, processes=r["workers"],
                           layout="one single-threaded pipeline (decode..write) per process")
    return _finish(ctx, *_summed_times(ctx, r, wall, post_s=r["post"] / r["workers"]), "stream")


def _ray(ctx: _Run, pending, model) -> dict:
    """The same streaming run on Ray Data (engines/raydata.py): decode tasks feeding an actor
    pool, outputs written here, so the record below is built as the local engine's."""
    from ..runtime.engines.raydata import Cluster, run_ray
    from ..ui import progress

    o = ctx.options
    t_start = time.perf_counter()
    with progress(len(pending), f"ray bs{ctx.batch_size} → {ctx.out.dir}", o.show_progress) as advance:
        r = run_ray(pending, _job(ctx, model, o.threads), ctx.out, workers=o.workers, strict=o.strict,
                    advance=advance, cluster=Cluster(o.ray_address, o.ray_timeout))
    wall = time.perf_counter() - t_start
    ctx.source.failed = r["failed"]
    ctx.description.update(engine="ray", threads=r["threads"], processes=r["workers"],
                           cluster_cpus=r["cluster_cpus"], startup_s=round(r["startup_s"], 3),
                           ray_operators=r["operators"], duplicates=r["duplicates"],
                           layout=f"Ray Data: decode tasks (1 CPU each) → {r['workers']} inference actor(s) × "
                                  f"{r['threads']} thread(s); outputs written by the driver")
    return _finish(ctx, *_summed_times(ctx, r, wall, post_s=r["post"]), "stream")  # the driver writes


def _summed_times(ctx: _Run, r: dict, wall: float, post_s: float) -> tuple[StageTimes, LatencyLog]:
    """Stage times of a run whose workers (stream's processes, Ray's tasks and actors) report
    summed times: divided by the worker count they are the wall time each stage would take
    alone, comparable with the other modes. Also the workers' per-batch latencies, as a log."""
    log = LatencyLog(ctx.latencies_csv)
    for ms in r["compute_ms"]:
        log.add(ms)
    n = r["workers"]
    st = StageTimes(samples=r["done"], computed=len(r["compute_ms"]) * ctx.batch_size, wall_s=wall,
                    read_s=r["decode"] / n, preprocess_s=r["pre"] / n,
                    infer_s=sum(r["compute_ms"]) / 1e3 / n, post_s=post_s)
    return st, log


def _feeder_times(ctx: _Run, r: dict, wall: float, decode: str) -> StageTimes:
    n = r["workers"] if decode == "cpu" else 1
    ctx.description.update(decode=decode, processes=n, layout=(
        f"{n} decode processes (exact path) feeding one device process" if decode == "cpu"
        else "files read on threads, decoded, resized and cropped on the GPU (not pixel-exact)"))
    computed = -(-r["done"] // ctx.batch_size) * ctx.batch_size
    return StageTimes(samples=r["done"], computed=computed, wall_s=wall, read_s=r["decode"] / n,
                      preprocess_s=0.0, infer_s=r["infer"], post_s=r["post"])


def _finish(ctx: _Run, st: StageTimes, lat: LatencyLog, mode) -> dict:
    """The perf record; written as the vendor's perf .txt and a .json (and the per-batch
    latencies as a .csv, when there are any) when anything ran."""
    source = ctx.source
    ms = lat.values
    csv = lat.close() if ms else lat.discard()  # nothing timed: no file (discard returns None)
    record = {
        "mode": mode, "samples": st.samples, "resumed": ctx.resumed, "total": len(source.items),
        "unavailable": source.unavailable,
        "failed": [{"file": f, "error": e} for f, e in source.failed],
        "batch_size": ctx.batch_size, "device_id": ctx.device_id, "outfmt": ctx.out.outfmt,
        "warmup_runs": 1, "input": source.where, "outputs": str(ctx.out.dir.resolve()),
        "stages": st.record() if st.samples else {},
        "compute_latency_ms_per_batch": latency_stats(ms, ctx.percentiles),
        # compute images/s over consecutive windows of the batches: is the figure steady?
        "compute_stability": stability(ms, ctx.batch_size) if ms else None,
        "latencies_csv": csv,
        "num_classes": ctx.num_classes, "backend": ctx.description, "environment": environment(),
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "tool": f"clsbench {__version__}",
        "plan": ctx.plan,
    }
    if st.samples:
        # a resumed run measured only its own part; the perf file says what it measured
        atomic_write_text(ctx.perf_txt, format_perf_file(st))
        atomic_write_json(ctx.perf_json, record)
    return record


def pure_inference(model: str, loop: int, options: InferOptions | None = None, *, warmup: int = default("infer", "warmup"), seed: int = 0,
                   **kw) -> dict:
    """The vendor tool's pure-inference mode: random input, `loop` timed runs (with the
    options' `output`, the record and each run's latency as a .csv are written there)."""
    o = options or InferOptions(**kw)
    batch_size, output, percentiles = o.batch_size, o.output, o.percentiles
    if loop < 1:
        raise ClsbenchError(f"--loop must be >= 1, got {loop}")
    if warmup < 0:
        raise ClsbenchError(f"--warmup must be >= 0, got {warmup}")
    r = o.resolved or resolve_for(model, o)
    rt = open_backend(model=model, batch_size=batch_size, device_id=o.device_id, **r.open_kwargs())
    x = np.random.default_rng(seed).standard_normal((batch_size, *rt.input_shape), dtype=np.float32)
    for _ in range(warmup):
        rt.run(x)
    stem_ = f"perf_pure_batchsize_{batch_size}_device_{o.device_id}"
    if output:
        Path(output).mkdir(parents=True, exist_ok=True)
    with LatencyLog(Path(output) / f"{stem_}_latencies.csv" if output else None) as lat:
        for _ in range(loop):
            t0 = time.perf_counter()
            rt.run(x)
            lat.add((time.perf_counter() - t0) * 1e3)
    stats = latency_stats(lat.values, percentiles)
    stab = stability(lat.values, batch_size)
    record = {"mode": "pure-inference", "input": f"random normal, seed {seed}",
              "batch_size": batch_size, "loop": loop, "warmup_runs": warmup,
              "ave_throughputRate": 1e3 * batch_size / stats["mean"],
              "ave_latency": stats["mean"], "latency_ms_per_batch": stats, "compute_stability": stab,
              "latencies_csv": lat.close(), "backend": rt.describe(), "environment": environment(),
              "plan": r.as_dict()}
    if output:
        atomic_write_json(Path(output) / f"{stem_}.json", record)
    return record
