"""A perf sweep: every (backend, precision) × batch size × input, each cell timed by
perf.measure (locally, or as Ray tasks), checkpointed, and written as perf.json, perf.md,
perf.png and report.html. Separate from runtime/timing.py (the timing of one cell) so that the
engines, which time cells, and the reports, which read sweeps, depend on perf and not on
each other."""
from __future__ import annotations

import functools
import logging
import os
from dataclasses import dataclass

import numpy as np

from ..defaults import default
from .. import ClsbenchError
from ..runtime import timing as perf
from ..runtime.timing import DEFAULT_PERCENTILES, GUIDE_REFERENCE, Config, Timing, environment, load_pool, parse_batches, parse_percentiles

log = logging.getLogger("clsbench")


def resolve_configs(configs: str, *, model: str, weights: str | None, compiled: str) -> list["Config"]:
    """'backend:precision,...' -> what each runs, asked of the one (backend, precision) table:
    the PyTorch weights, a `clsbench compile` artifact in `compiled` when there is one (an
    optimized or quantized model, an IR), else the ONNX model itself where the backend runs
    it as is."""
    from ..runtime.backends import DEFAULT_PRECISION, artifact_name, check_precision_supported, target

    out = []
    for item in configs.split(","):
        backend, _, precision = item.strip().partition(":")
        t = target(backend, precision or DEFAULT_PRECISION.get(backend, "fp32"))
        check_precision_supported(t.backend, t.precision)  # before any cell is timed
        if "pth" in t.runs:
            if not weights:
                raise ClsbenchError(f"{item}: the {backend} backend runs PyTorch weights: give --weights W.pth")
            out.append(Config(t.backend, t.precision, weights, _eager_options(model, item)))
            continue
        art = os.path.join(compiled, artifact_name(model, t.backend, t.precision))
        if os.path.exists(art):
            _check_compiled_from(art, model, t)
            out.append(Config(t.backend, t.precision, art))
        elif not t.compiled:
            out.append(Config(t.backend, t.precision, model))
        else:
            raise ClsbenchError(f"{item}: {art} not found; make it with `clsbench compile --model {model} "
                                f"--backend {t.backend} --precision {t.precision} --data DIR`")
    return out


def _check_compiled_from(art: str, model: str, t) -> None:
    """An artifact in --compiled is chosen by its name (the model's stem): it is used only when
    its record (<artifact>.compile.json) says it was compiled from `model` as the file is now,
    and its files (an IR's .bin too) are still the bytes that compile wrote."""
    from .._io import read_record
    from ..compile.artifacts import artifact_changed, record_path

    try:
        rec = read_record(record_path(art)) or {}
    except ClsbenchError:
        rec = {}
    was = (rec.get("identity") or {}).get("source_sha256")
    now = file_sha256(model)
    how = (f"`clsbench compile --model {model} --backend {t.backend} --precision {t.precision}"
           f"{' --data DIR' if t.calibration else ''} --output {os.path.dirname(art) or '.'}`")
    if was == now:
        changed = artifact_changed(art, rec, file_sha256)
        if changed is None:
            return
        raise ClsbenchError(f"{art}: {changed}, so not what was compiled from {model}; make it again with {how}")
    source = (f"was compiled from {rec.get('source') or 'another model'} (SHA-256 {was[:12]}…)" if was else
              f"has no record of the model it was compiled from ({record_path(art)})")
    raise ClsbenchError(f"{art} {source}, not from {model} (SHA-256 {now[:12]}…); make it again with {how}")


def _eager_options(model: str, item: str) -> tuple:
    """The torch/cuda backends build the architecture the ONNX was exported from, with its preset."""
    from ..model.files import identity_of

    spec, pp = identity_of(model)
    if spec is None or spec.name.startswith("timm:"):
        raise ClsbenchError(f"{item}: the eager backends build a torchvision architecture, and {model} records "
                            f"{'a timm model' if spec else 'none'} (give an ONNX exported by clsbench from torchvision weights)")
    return (("arch", spec.key), ("preprocessing", (pp or spec.preprocessing).as_dict()))


def sweep(configs: list[Config], batches: list[int], timing: Timing = Timing(), *, pool: np.ndarray | None = None,
          progress_cb=None, checkpoint: str | None = None, latencies_dir: str | None = None,
          cluster=None) -> dict:
    """Every configuration x batch size (x random/real input when a pool is given); with
    `cluster` (engines.raydata.Cluster), the cells run as Ray tasks across it.

    With `checkpoint`, each finished cell is saved at once and a rerun with the same
    settings, from the same files on the same machine (cell_sources), measures only the
    cells still missing (a sweep can take many minutes).
    Each cell's per-run latencies go to latencies_dir when one is given.
    """
    from .._io import atomic_write_json

    settings = {"configs": [c.__dict__ for c in configs], "batches": batches, **timing.settings(),
                "real_data": pool is not None}
    sources = cell_sources(configs, pool) if checkpoint else {}
    rows: list[dict] = reusable_cells(checkpoint, settings, sources) if checkpoint else []
    inputs = [None] + ([pool] if pool is not None else [])
    cells = [(cfg, bs, p) for cfg in configs for bs in batches for p in inputs]
    keys = [_cell_key(c.backend, c.precision, bs, p is not None) for c, bs, p in cells]
    order = {k: i for i, k in enumerate(keys)}
    done = {_row_key(r) for r in rows}
    todo = [cell for cell, k in zip(cells, keys) if k not in done]
    for _ in range(len(cells) - len(todo) if progress_cb else 0):
        progress_cb()
    if cluster is not None:  # one cell per task across the cluster; latencies written here
        from ..runtime.engines.raydata import measure_cells

        results = measure_cells(todo, timing, latencies_dir, cluster=cluster)
    else:
        results = (perf.measure(c, bs, timing, pool=p, latencies_dir=latencies_dir) for c, bs, p in todo)
    for row in results:
        rows.append(row)
        if checkpoint:
            atomic_write_json(checkpoint, {"identity": settings, "sources": sources, "rows": rows})
        if progress_cb:
            progress_cb()
    rows.sort(key=lambda r: order.get(_row_key(r), len(order)))  # the same order, however measured
    return {**settings, "rows": rows, "environment": environment(),
            "reference": {k: {str(b): v for b, v in d.items()} for k, d in GUIDE_REFERENCE.items()}}


def cell_sources(configs: list[Config], pool: np.ndarray | None) -> dict:
    """What every figure of a sweep depends on besides its settings, name -> fingerprint: each
    file a config runs (SHA-256; an IR's weights and an ONNX's external data too), the
    real-data pool's bytes, and the facts of this machine that change figures (CPU, the CPUs
    this process may use, each backend's runtime version, clsbench's version)."""
    import hashlib

    from .. import __version__
    from .._io import usable_cpus
    from ..runtime.timing import cpu_model

    out = {f: file_sha256(f) for c in configs for f in _model_files(c.model)}
    if pool is not None:
        out["the real-data input (--data)"] = hashlib.sha256(np.ascontiguousarray(pool).tobytes()).hexdigest()
    out.update({"the CPU": cpu_model(), "the usable CPUs": usable_cpus(), "clsbench's version": __version__})
    out.update({f"{b}'s runtime version": runtime_version(b) for b in sorted({c.backend for c in configs})})
    return out


def _model_files(path: str) -> list[str]:
    """The files a model is read from: itself, an OpenVINO IR's .bin, an ONNX's external data."""
    from ..model.files import kind, onnx_facts

    k = kind(path)
    extra = ([os.path.splitext(path)[0] + ".bin"] if k == "ir" else
             [os.path.join(os.path.dirname(path), loc) for _, loc in onnx_facts(path).external] if k == "onnx" else [])
    return [os.path.realpath(f) for f in dict.fromkeys([path, *extra]) if os.path.isfile(f)]


_RUNTIMES = {"onnxruntime": ("onnxruntime", "onnxruntime-gpu", "onnxruntime-openvino", "onnxruntime-cann"),
             "cann": ("onnxruntime-cann", "onnxruntime"), "openvino": ("openvino",), "torch": ("torch",),
             "cuda": ("torch",)}


def runtime_version(backend: str) -> str | None:
    """The installed version of the runtime a backend runs on, without importing it."""
    from importlib import metadata

    for dist in _RUNTIMES.get(backend, (backend,)):
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    return None


def reusable_cells(checkpoint: str, settings: dict, sources: dict) -> list[dict]:
    """The rows of `checkpoint` when it was measured with these settings from these very
    sources (cell_sources: the files' SHA-256, the data, the machine); else [] (measure
    again), saying why in one line when it held rows."""
    from .._io import normalized, read_record, still_valid

    try:
        old = read_record(checkpoint) or {}
    except ClsbenchError as e:
        log.info(f"perf: {e}: measuring again")
        return []
    if not old.get("rows"):
        return []
    if old.get("identity") != normalized(settings):
        log.info(f"perf: the cells in {checkpoint} were measured with other settings: measuring again")
        return []
    recorded, now = old.get("sources"), normalized(sources)
    if not isinstance(recorded, dict):
        log.info(f"perf: {checkpoint} records no fingerprints of what its cells measured: measuring again")
        return []
    changed = [n for n in now if n not in still_valid(now, recorded, now)] + [n for n in recorded if n not in now]
    if changed:
        log.info(f"perf: {', '.join(changed)} changed since the cells in {checkpoint} were measured: measuring again")
        return []
    return list(old["rows"])


def file_sha256(path: str) -> str:
    """_io.file_sha256, once per file version (a sweep asks it of the same model for its
    checkpoint, its artifacts' check and its record): keyed by the fingerprint and the inode
    change time, which no copy preserves (`cp -p` keeps size and mtime)."""
    from .._io import file_fingerprint

    return _sha256_of((*file_fingerprint(path), os.stat(path).st_ctime_ns))


@functools.lru_cache(maxsize=32)
def _sha256_of(version: tuple) -> str:
    from .._io import file_sha256 as sha

    return sha(version[0])


def _cell_key(backend: str, precision: str, batch: int, real: bool) -> tuple:
    return backend, precision, batch, "real data" if real else "random normal"


def _row_key(r: dict) -> tuple:
    return r["backend"], r["precision"], r["batch_size"], r["input"]


@dataclass
class PerfOptions:
    """`clsbench perf`: what to sweep, how to time it, where to write it."""

    configs: str = default("perf", "configs")
    batches: str = default("perf", "batches")
    output: str = default("perf", "output")
    weights: str | None = None  # .pth for the eager backends
    compiled: str = default("perf", "compiled")  # folder of `clsbench compile` artifacts
    data: str | None = None  # preprocessed .bin files for the real-data figures
    duration: float = default("perf", "duration")
    iterations: int = default("perf", "iterations")
    warmup: int = default("perf", "warmup")
    threads: int | None = None
    openvino_hint: str = default("perf", "openvino_hint")
    repeats: int = default("perf", "repeats")
    percentiles: object = DEFAULT_PERCENTILES  # a tuple, or the flag's text
    show_progress: bool = True
    command: str | None = None
    engine: str = default("perf", "engine")
    ray_address: str | None = None
    ray_timeout: float = default("perf", "ray_timeout")
    accept_preset_mismatch: bool = False  # --data tensors of another preset timed anyway (recorded)
    profile: bool = False  # one per-operator profile per cell, after the timed runs (measure/profile.py)

    def timing(self) -> Timing:
        pct = parse_percentiles(self.percentiles) if isinstance(self.percentiles, str) else tuple(self.percentiles)
        return Timing(self.duration, self.iterations, self.warmup, self.threads, self.openvino_hint, self.repeats, pct)


def run_perf(model: str, options: PerfOptions | None = None, **kw) -> dict:
    """`clsbench perf`: the sweep, written as perf.json, perf.md, perf.png, report.html and
    latencies/*.csv in `output`. Returns the result with the paths written under "files"."""
    from .._io import atomic_write_json, atomic_write_text, folder_lock
    from ..report.html import write_report
    from ..report.tables import perf_markdown, perf_plot
    from ..ui import progress

    o = options or PerfOptions(**kw)
    _check_output(model, o)
    sizes, timing = parse_batches(o.batches), o.timing()
    plan = perf_plan(model, o)
    cfgs = resolve_configs(o.configs, model=model, weights=o.weights, compiled=o.compiled)
    if o.openvino_hint != "latency" and not any(c.backend == "openvino" for c in cfgs):
        raise ClsbenchError(f"--openvino-hint applies to openvino configs; --configs {o.configs} has none")
    pool = load_pool(o.data, 2 * max(sizes)) if o.data else None
    out = o.output
    os.makedirs(os.path.join(out, "latencies"), exist_ok=True)
    cells = len(cfgs) * len(sizes) * (2 if pool is not None else 1)
    with folder_lock(out), progress(cells, "perf sweep", o.show_progress) as advance:
        result = sweep(cfgs, sizes, timing, pool=pool, progress_cb=advance,
                       checkpoint=os.path.join(out, ".perf.partial.json"), latencies_dir=os.path.join(out, "latencies"),
                       cluster=_cluster(o) if o.engine == "ray" else None)
        if o.profile:  # after every cell was timed: a profiler never runs inside a timed run
            from .profile import profile_cells

            profile_cells(cfgs, result["rows"], out, timing)
        result.update(model=model_identity(model), command=o.command, plan=plan)
        md = perf_markdown(result)
        atomic_write_json(os.path.join(out, "perf.json"), result)
        atomic_write_text(os.path.join(out, "perf.md"), md)
        png = perf_plot(result, os.path.join(out, "perf.png"))
        html = write_report(out)
    result["files"] = {"json": os.path.join(out, "perf.json"), "md": os.path.join(out, "perf.md"),
                       "png": png, "html": html}
    result["markdown"] = md
    return result


PERF_FILES = ("perf.json", "perf.md", "perf.png", "report.html", ".perf.partial.json")  # besides latencies/


def _check_output(model: str, o: PerfOptions) -> None:
    """Before anything is read or timed: the --output folder is neither the --data folder nor
    inside it (the .bin files are read whole), and no file perf writes there is the --model or
    --weights file. A --compiled folder may be the output: no artifact has a name perf writes."""
    from .._io import check_not_input

    if o.data:
        check_not_input(o.output, what="--output folder", folders={"the --data folder": o.data})
    inputs = {"the --model file": model, **({"the --weights file": o.weights} if o.weights else {})}
    for path in (o.output, *(os.path.join(o.output, n) for n in PERF_FILES)):
        check_not_input(path, inputs, "--output folder")


def perf_plan(model: str, o: PerfOptions) -> dict:
    """The plan's model and preset of the swept model (plan.resolve_runnable: a .pth is
    refused with what to type, as by every command that runs a model file), and the --data
    tensors' recorded preset checked against it. The record's "plan"."""
    from .infer import recorded_preset
    from ..plan import RunnableRequest, check_tensor_preset, resolve_runnable

    from ..model.files import kind

    if os.path.isfile(model) and kind(model) == "pth":  # perf has no --backend: say perf's own flags
        raise ClsbenchError(f"{model}: PyTorch weights; perf's --model is the exported ONNX (`clsbench export "
                            f"--weights {model} --output model.onnx`); the weights themselves are timed eagerly "
                            f"with `--model model.onnx --weights {model} --configs torch:fp32`")
    r = resolve_runnable(model, RunnableRequest(threads=o.threads))
    tensors = None
    if o.data:
        if not os.path.isdir(o.data):
            raise ClsbenchError(f"{o.data}: --data folder not found")
        made_with = recorded_preset(o.data, {os.path.abspath(o.data)})
        tensors = check_tensor_preset(o.data, made_with, r, o.accept_preset_mismatch)
    return {**r.as_dict(), "tensors": tensors}


def _cluster(o: PerfOptions):
    from ..runtime.engines.raydata import Cluster

    if o.ray_timeout <= 0:
        raise ClsbenchError(f"--ray-timeout must be > 0 seconds, got {o.ray_timeout:g}")
    return Cluster(o.ray_address, o.ray_timeout)


def model_identity(path: str) -> dict:
    """Which model a measured file is (what its export recorded), for the records and the
    report (the guide's reference devices are shown only beside the guide's model)."""
    from ..model.files import identity_of

    try:
        spec, _ = identity_of(path)
    except ClsbenchError:
        spec = None
    return {"path": os.path.abspath(path), "name": spec.name if spec else None, "key": spec.key if spec else None,
            "sha256": file_sha256(path)}
