"""The Ray Data engine: the streaming run (image folder → per-image outputs) on a Ray cluster.

    file paths ─ read_binary_files(include_paths=True) ─▶ decode + exact preprocess (Ray tasks,
    1 CPU each) ─▶ one actor pool running the backend (1 CPU reserved per actor, `threads`
    threads) ─▶ the driver,
    which writes each image's output (through the same output writer as the local engine) in order

Same results as the local engine: the decode is clsbench's own (`preprocess.crop_chw`: PIL,
torchvision's resize), not `read_images`; the per-batch step is `stages.BatchStep`; a file
that cannot be decoded becomes an error row, listed and counted exactly as locally (no
`max_errored_blocks`: Ray would drop whole blocks). The driver writes, so the outputs need
no storage shared by the nodes; the images and the model must be visible to every node at
the same path (checked at start). `preserve_order` keeps the order run to run.
Ray is imported only here: the local engine never imports it.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass

import numpy as np

from ... import ClsbenchError

# Ray Data waits this long for an actor pool to start before it gives up (Ray's default is
# 600 s); tests lower it so that a hang fails fast.
WAIT_FOR_ACTORS_S = float(os.environ.get("CLSBENCH_RAY_WAIT_S", "600"))


def import_ray(start_local: bool):
    """Ray, imported with usage stats off; for a local instance (`start_local`), token
    authentication on with a token of this run's own held in the environment: Ray >= 2.59
    protects a local instance with a token it otherwise saves in ~/.ray. Ray reads these
    settings when imported, so they are set first."""
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # no usage report to Anyscale
    if start_local and "RAY_AUTH_MODE" not in os.environ and "RAY_AUTH_TOKEN" not in os.environ:
        import secrets

        os.environ.update(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=secrets.token_hex(32))
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError:
        raise ClsbenchError("--engine ray needs Ray Data: pip install 'clsbench[ray]'") from None
    import logging

    logging.getLogger("ray.data").setLevel(logging.WARNING)  # clsbench prints its own progress
    return ray


@dataclass(frozen=True)
class Cluster:
    """Where to run on Ray: `address` of a head node (None: start a local instance), and how
    long to try to reach it."""

    address: str | None = None
    timeout: float = 30.0


def probe(address: str, timeout: float) -> None:
    """Ray retries an unreachable GCS forever: the address is tried first, bounded by
    `timeout` seconds (an unresolvable host fails at once, an unroutable one after it)."""
    import socket

    if address in ("auto", "local") or address.startswith("ray://"):
        return
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise ClsbenchError(f"--ray-address {address!r}: expected HOST:PORT (the head node's GCS port, e.g. 6379)")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout).close()
    except OSError as e:
        raise ClsbenchError(f"--ray-address {address}: cannot reach the head node within {timeout:g} s "
                            f"({e.strerror or e}); check the address, or raise --ray-timeout") from None


def connect(ray, address: str | None, timeout: float = 30.0) -> bool:
    """Join the cluster at `address`, or start a local instance; True when started here
    (and so to be shut down here)."""
    if ray.is_initialized():
        return False
    kw = dict(include_dashboard=False, log_to_driver=False, configure_logging=False)
    if address:
        probe(address, timeout)
        try:
            ray.init(address=address, **kw)
        except (ConnectionError, RuntimeError, ValueError) as e:
            raise ClsbenchError(f"--ray-address {address}: cannot join the cluster ({e})") from None
        return True
    # "local": a new instance, as the plan says; ray.init() without an address would join the
    # cluster last started on this machine (its address file in Ray's temp folder), even one
    # this process cannot reach, and wait for it forever
    _watch_local_instance()
    ray.init(address="local", **kw)
    return True


# The watcher of a local instance: while this process lives (its pipe open), it notes this
# process's descendants every second (pid, start time); when the pipe ends (this process exited,
# however), it SIGKILLs those still alive.
_WATCH = """import os, select, signal, sys
signal.signal(signal.SIGINT, signal.SIG_IGN)
driver, seen = os.getppid(), {}
def stat(p):
    try:
        with open(f"/proc/{p}/stat", "rb") as f:
            s = f.read().rsplit(b")", 1)[1].split()
        return int(s[1]), s[19]
    except (OSError, IndexError, ValueError):
        return None
while not select.select([sys.stdin], [], [], 1.0)[0] or sys.stdin.buffer.read1(4096):
    procs = {int(p): stat(p) for p in os.listdir("/proc") if p.isdigit()}
    todo, now = [driver], set()
    while todo:
        parent = todo.pop()
        for pid, st in procs.items():
            if st and st[0] == parent and pid != os.getpid() and pid not in now:
                now.add(pid)
                seen[pid] = st[1]
                todo.append(pid)
for pid, start in seen.items():
    st = stat(pid)
    if st and st[1] == start:
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
"""


def _watch_local_instance() -> None:
    """A local instance must not outlive this process. Ray kills its GCS and raylet with the
    driver (PR_SET_PDEATHSIG), but the raylet's agents (dashboard agent, runtime-env agent) of
    a SIGKILLed driver live ~60 s more (they report the raylet's death to the dead GCS, with a
    60 s timeout; tests/test_parent_death.py). A watcher started here kills what this process
    started (the agents were noted while the raylet, their parent, lived) once this process is
    gone; after a normal `ray.shutdown()` none is left. Linux (/proc) only; one per process."""
    import subprocess
    import sys

    if _WATCHERS or not os.path.isdir("/proc/self"):
        return
    # its pipe stays open while this process lives
    _WATCHERS.append(subprocess.Popen([sys.executable, "-I", "-S", "-c", _WATCH], stdin=subprocess.PIPE,
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))


_WATCHERS: list = []


def plan_actors(cluster_cpus: float, actors: int | None) -> int:
    """Actor count: by default one per CPU but one. Each actor reserves one logical CPU,
    whatever its thread count (--threads may exceed it: those threads share the cores with
    the decode tasks, as the local engine's processes share them between decode and
    inference). An actor pool that reserves every CPU leaves none for the decode tasks and
    the run hangs (ray-project/ray#44687): refused."""
    n = actors or max(1, int(cluster_cpus - 1))
    if n >= cluster_cpus:
        raise ClsbenchError(f"{n} inference actor(s) would reserve all {cluster_cpus:g} CPUs of the cluster and "
                            f"leave none to decode (the run would hang): lower --workers")
    return n


def check_visible(ray, paths: list[str]) -> None:
    """Every node must see the model and the images at the same path: one probe per node."""
    nodes = [n for n in ray.nodes() if n.get("Alive")]

    @ray.remote(num_cpus=0)
    def probe():
        return [p for p in paths if not os.path.exists(p)]

    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    refs = [probe.options(scheduling_strategy=NodeAffinitySchedulingStrategy(n["NodeID"], soft=False)).remote()
            for n in nodes]
    for node, missing in zip(nodes, ray.get(refs)):
        if missing:
            raise ClsbenchError(f"{missing[0]}: not visible on Ray node {node['NodeManagerAddress']}; --engine ray "
                                f"needs the model and the images on storage every node sees, at the same path")


def decode_batch(batch: dict, pp) -> dict:
    """Ray task body (a function, so Ray runs it as tasks, not actors): bytes → the exact
    crop (uint8 CHW), or an error for that image (the driver applies --strict)."""
    import io

    from ...data.preprocess import crop_chw

    c = pp.crop
    crops = np.zeros((len(batch["path"]), 3, c, c), np.uint8)
    errors, secs = [], []
    for i, (path, data) in enumerate(zip(batch["path"], batch["bytes"])):
        t0 = time.perf_counter()
        try:
            crops[i] = crop_chw(_Named(io.BytesIO(data), path), pp)
            errors.append("")
        except ClsbenchError as e:
            errors.append(str(e))
        secs.append(time.perf_counter() - t0)
    return {"path": batch["path"], "crop": crops, "error": np.array(errors, dtype=object),
            "decode_s": np.array(secs)}


class _Named:
    """The file's bytes as a file object PIL reads (not a path: the node need not see the
    file again), named by the original path in every message, as the local engine's."""

    def __init__(self, f, name):
        self._f, self.name = f, str(name)

    def __getattr__(self, attr):
        return getattr(self._f, attr)

    def __str__(self):
        return self.name

    def __repr__(self):  # PIL's "cannot identify image file %r"
        return repr(self.name)


class Infer:
    """Ray actor body: one backend with `threads` threads set explicitly (ONNX Runtime ignores
    OMP_NUM_THREADS; OpenVINO's pinning is off when it shares the machine), fixed-size padded
    batches through the same BatchStep as the local engine."""

    def __init__(self, job):
        self.rt, self.step = job.open()
        self.pp, self.bs = job.pp, job.batch_size

    def __call__(self, batch: dict) -> dict:
        from ...data.preprocess import normalize_batch

        n_rows = len(batch["path"])
        logits = np.zeros((n_rows, self.step.num_classes), np.float32)
        ms = np.full(n_rows, np.nan)
        good = np.flatnonzero(batch["error"] == "")
        buf = np.empty((self.bs, *self.rt.input_shape), np.float32)
        for s in range(0, len(good), self.bs):
            idx = good[s:s + self.bs]
            normalize_batch(batch["crop"][idx], self.pp, out=buf[:len(idx)])
            out, ms[idx[0]] = self.step(buf, len(idx), [batch["path"][i] for i in idx])
            logits[idx] = out
        return {"path": batch["path"], "error": batch["error"], "decode_s": batch["decode_s"],
                "logits": logits, "compute_ms": ms}


def build(ray, paths: list[str], job, actors: int):
    """The dataset: read → decode (tasks, 1 CPU) → infer (actor pool, 1 CPU reserved each).
    Decode and inference stay two operators (Ray Data fuses a task map into the next actor
    map only when their remote arguments are equal; the actors' restart settings differ), so
    each gets its own CPUs and decode never waits behind a model."""
    from ray.data import ActorPoolStrategy, DataContext

    ctx = DataContext.get_current()
    ctx.execution_options.preserve_order = True  # the same order run to run
    ctx.enable_progress_bars = False  # clsbench's own bar, on the driver
    ctx.wait_for_min_actors_s = WAIT_FOR_ACTORS_S
    bs = job.batch_size
    ds = ray.data.read_binary_files(paths, include_paths=True,
                                    override_num_blocks=max(1, min(len(paths), -(-len(paths) // bs))))
    ds = ds.map_batches(decode_batch, fn_kwargs={"pp": job.pp}, batch_size=bs, batch_format="numpy", num_cpus=1)
    gpu = job.backend == "cuda" and job.options.get("device") != "cpu"
    return ds.map_batches(Infer, fn_constructor_kwargs={"job": job},
                          batch_size=bs, batch_format="numpy", compute=ActorPoolStrategy(size=actors),
                          num_cpus=1, num_gpus=1 if gpu else 0,
                          max_restarts=-1, max_task_retries=-1)  # a dead actor is replaced, its batch redone


def run_ray(pending, job, out, *, workers, strict, advance, cluster: Cluster = Cluster()) -> dict:
    """Process `pending` (key, path) items into the prepared output `out` on Ray with `job`
    (stages.Job; its threads per actor, default 1); returns the same totals as the local
    engine's `stream.run_stream`."""
    import dataclasses

    ray = import_ray(start_local=not cluster.address)
    t0 = time.perf_counter()
    started = connect(ray, cluster.address, cluster.timeout)
    try:
        cpus = float(ray.cluster_resources().get("CPU", 0))
        job = dataclasses.replace(job, threads=job.threads or 1, model=os.path.abspath(job.model))
        n = plan_actors(cpus, workers)
        pending, too_big = _within_size(pending, strict)
        keys = {os.path.abspath(p): k for k, p in pending}
        check_visible(ray, [job.model, *sorted({os.path.dirname(p) for p in keys})])
        ds = build(ray, list(keys), job, n)
        startup = time.perf_counter() - t0
        totals = sink(ds, keys, out, strict, advance, {os.path.abspath(p): p for _, p in pending})
        totals["failed"] = sorted(totals["failed"] + too_big)
        advance(len(too_big))
        totals["operators"] = operators(ds)
    except ray.exceptions.RayError as e:
        raise ClsbenchError(f"Ray run failed: {str(e).strip().splitlines()[-1]}") from None
    finally:
        if started:
            ray.shutdown()
    return {**totals, "workers": n, "threads": job.threads, "cluster_cpus": cpus, "startup_s": startup}


def _within_size(pending, strict: bool):
    """Ray reads every file whole: files above the size any image has are listed as failed
    here, unread, with the local engine's message (preprocess.check_image_size)."""
    from ...data.preprocess import check_image_size

    ok, bad = [], []
    for key, path in pending:
        try:
            check_image_size(path, os.path.getsize(path))
            ok.append((key, path))
        except ClsbenchError as e:
            if strict:
                raise
            bad.append((path, str(e)))
    return ok, bad


def operators(ds) -> list[str]:
    """The executed operators, from Ray Data's own statistics (fused ones show as 'A->B')."""
    import re

    return re.findall(r"^Operator \d+ (.+?): ", ds.stats(), flags=re.M)


def sink(ds, keys: dict, out, strict: bool, advance, shown: dict | None = None) -> dict:
    """The driver: each row's output written once, in the dataset's order; bad files listed
    by the path the user gave (`shown`: absolute path -> that path), as the local engine does."""
    shown = shown or {}
    t = {"done": 0, "failed": [], "decode": 0.0, "pre": 0.0, "compute_ms": [], "post": 0.0, "duplicates": 0}
    seen: set[str] = set()
    for b in ds.iter_batches(batch_size=None, batch_format="numpy"):
        t0 = time.perf_counter()
        paths = [str(p) for p in b["path"]]
        ok = []
        for i, (path, err) in enumerate(zip(paths, b["error"])):
            key = keys.get(path) or keys.get(os.path.abspath(path))
            if key is None:  # never drop an image quietly
                raise ClsbenchError(f"{path}: Ray returned a file that was not asked for")
            if key in seen:  # a batch redone after a failure, delivered twice: written once
                t["duplicates"] += 1
                continue
            seen.add(key)
            if err:
                given = shown.get(os.path.abspath(path), path)
                err = str(err).replace(path, given)
                if strict:
                    raise ClsbenchError(err)
                t["failed"].append((given, err))
            else:
                ok.append((i, key))
        if ok:
            out.write([k for _, k in ok], b["logits"][[i for i, _ in ok]])
        t["done"] += len(ok)
        t["decode"] += float(np.sum(b["decode_s"]))
        t["compute_ms"] += [float(x) for x in b["compute_ms"] if not np.isnan(x)]
        t["post"] += time.perf_counter() - t0
        advance(len(paths))
    return t


# ---------------------------------------------------------------- perf cells across a cluster

def _measure_cell(cfg, batch, pool, timing) -> dict:
    """Ray task body: one perf cell, measured where Ray placed it."""
    import socket

    import ray

    from ..timing import measure

    row = measure(cfg, batch, timing, pool=pool, latencies_dir=None, return_raw=True)
    row["node"] = {"host": socket.gethostname(), "ray_node_id": ray.get_runtime_context().get_node_id()[:12]}
    return row


def measure_cells(cells, timing, latencies_dir: str | None, *, cluster: Cluster = Cluster()):
    """`perf --engine ray`: each (config, batch, input) cell one Ray task, reserving its
    threads' CPUs — by default a whole node's (the runtime's default threads), so two cells
    never share a node's cores and contaminate each other's figures; the cells of a sweep run
    on as many nodes at once as the cluster has. Yields the rows as they finish; each cell's
    raw latencies are written here, in `latencies_dir`."""
    from ..timing import Config, LatencyLog, latencies_name

    ray = import_ray(start_local=not cluster.address)
    started = connect(ray, cluster.address, cluster.timeout)
    try:
        nodes = [n for n in ray.nodes() if n.get("Alive")]
        check_visible(ray, sorted({os.path.abspath(c.model) for c, _, _ in cells}))
        cpus = timing.threads or int(min(n["Resources"].get("CPU", 1) for n in nodes))
        task = ray.remote(num_cpus=cpus, max_retries=3)(_measure_cell)
        refs = [task.remote(c, bs, p, timing) for c, bs, p in cells]
        while refs:
            ready, refs = ray.wait(refs, num_returns=1)
            row = ray.get(ready[0])
            raw = row.pop("_raw")
            if latencies_dir and raw:
                name = latencies_name(Config(row["backend"], row["precision"], ""), row["batch_size"], row["input"] == "real data")
                with LatencyLog(os.path.join(latencies_dir, name)) as log:
                    for ms in raw:
                        log.add(ms)
                row["latencies_csv"] = f"latencies/{name}"
            row["engine"] = "ray"
            yield row
    except ray.exceptions.RayError as e:
        raise ClsbenchError(f"Ray perf failed: {str(e).strip().splitlines()[-1]}") from None
    finally:
        if started:
            ray.shutdown()
