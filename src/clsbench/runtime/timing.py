"""Timing records: the vendor perf file (formats.md §5), latency statistics, environment.

Every number written here carries the record of what produced it (backend and version,
precision, batch size, threads, CPU model), so a figure can be traced and reproduced.
"""
from __future__ import annotations

import contextlib
import functools
import os
import platform
from dataclasses import dataclass

import numpy as np

from .. import ClsbenchError, __version__


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def environment() -> dict:
    import sys

    import numpy

    env = {"clsbench": __version__, "git_revision": git_revision(), "python": platform.python_version(),
           "numpy": numpy.__version__, "platform": platform.platform(), "cpu": cpu_model(),
           "logical_cpus": os.cpu_count()}
    try:
        import onnxruntime

        env["onnxruntime"] = onnxruntime.__version__
    except ImportError:
        pass
    for name in ("openvino", "torch", "torchvision"):  # recorded when this run used them
        mod = sys.modules.get(name)
        if mod is not None and hasattr(mod, "__version__"):
            env[name] = mod.__version__
    return env


@functools.lru_cache(maxsize=1)
def git_revision() -> str | None:
    """The commit clsbench runs from when it runs from a git checkout ("+dirty" when the
    checkout has changes); None for an installed wheel."""
    import subprocess

    here = os.path.dirname(os.path.abspath(__file__))
    try:
        def git(*args):
            return subprocess.run(["git", "-C", here, *args], capture_output=True, text=True,
                                  timeout=10, check=True).stdout.strip()

        rev = git("rev-parse", "--short=12", "HEAD")
        dirty = git("status", "--porcelain", "--untracked-files=no", "--", ".")
    except (OSError, subprocess.SubprocessError):
        return None
    return rev + ("+dirty" if dirty else "")


# ---------------------------------------------------------------- latency and its stability

DEFAULT_PERCENTILES = (50.0, 90.0, 95.0, 99.0, 99.9)
UNSTABLE_SPREAD = 0.10  # repeats whose rates spread more than this are marked unstable


def pct_key(p: float) -> str:
    """50 -> 'p50', 99.9 -> 'p99.9': the key of a percentile in every record."""
    return f"p{p:g}"


def parse_percentiles(text: str) -> tuple[float, ...]:
    """'50,90,99,99.9' -> (50.0, 90.0, 99.0, 99.9); a bad item is a one-line error naming it."""
    out = []
    for item in str(text).split(","):
        try:
            p = float(item.strip())
        except ValueError:
            raise ClsbenchError(f"--percentiles {text!r}: {item.strip()!r} is not a number") from None
        if not 0 < p < 100:
            raise ClsbenchError(f"--percentiles {text!r}: {item.strip()} is not between 0 and 100 (exclusive)")
        out.append(p)
    return tuple(sorted(set(out)))


def latency_stats(ms: list[float] | np.ndarray, percentiles=DEFAULT_PERCENTILES) -> dict:
    """count, min, mean, max and each percentile (linear interpolation, numpy's default).
    `unresolved` names the percentiles the sample is too small to resolve: p99.9 of 100 runs
    is an interpolation between the two slowest, not a measured tail."""
    a = np.asarray(ms, dtype=np.float64)
    if a.size == 0:
        return {}
    out = {"count": int(a.size), "min": float(a.min()), "mean": float(a.mean()), "max": float(a.max())}
    qs = np.percentile(a, list(percentiles)) if percentiles else []
    out.update({pct_key(p): float(q) for p, q in zip(percentiles, qs)})
    out["percentiles"] = [pct_key(p) for p in percentiles]
    out["unresolved"] = [pct_key(p) for p in percentiles if a.size < round(100 / (100 - p), 6)]
    return out


def stability(ms, batch: int, repeats: int = 5, *, wall: bool = False) -> dict:
    """The run split into `repeats` consecutive windows of equal run counts: each window's
    images/s, their median (the figure reported) and spread (max - min) / median. `ms` are
    per-run milliseconds, or with `wall` the completion times (ms from the start) of runs
    that overlap, where only wall time means anything."""
    a = np.asarray(ms, dtype=np.float64)
    n = min(repeats, a.size)
    if n == 0:
        return {"repeats": 0, "median": None, "rates": [], "spread": None, "stable": None,
                "reason": "nothing was timed"}
    rates = []
    for idx in np.array_split(np.arange(a.size), n):
        if wall:
            start = a[idx[0] - 1] if idx[0] > 0 else 0.0
            secs = (a[idx[-1]] - start) / 1e3
        else:
            secs = a[idx].sum() / 1e3
        rates.append(batch * idx.size / secs if secs > 0 else float("inf"))
    med = float(np.median(rates))
    spread = float((max(rates) - min(rates)) / med) if n > 1 and med > 0 else None
    if spread is None:
        stable, reason = None, "one run: spread unknown"
    else:
        stable = spread <= UNSTABLE_SPREAD
        reason = None if stable else (f"repeats spread {spread:.0%} (> {UNSTABLE_SPREAD:.0%}): "
                                      f"{min(rates):,.1f} to {max(rates):,.1f} images/s")
    return {"repeats": n, "median": med, "rates": rates, "spread": spread, "stable": stable, "reason": reason}


class LatencyLog:
    """Per-run latencies streamed to a CSV as they are measured (one line each, through a
    buffered file: nothing grows in memory but the float list the statistics need), renamed
    into place by close(); discard() (or leaving a `with` block by an exception) removes it."""

    def __init__(self, path: str | os.PathLike | None, column: str = "ms_per_batch"):
        self.path, self.values, self._f = path, [], None
        if path:
            from .._io import exclusive_temp, remove_dead_temps

            folder, name = os.path.split(os.fspath(path))
            remove_dead_temps(folder or ".")  # a killed run's half-written CSVs
            fd, self._tmp = exclusive_temp(folder or ".", name)
            self._f = os.fdopen(fd, "w", buffering=1 << 16)
            self._f.write(column + "\n")

    def add(self, ms: float) -> None:
        self.values.append(ms)
        if self._f:
            try:
                self._f.write(f"{ms:.6f}\n")
            except OSError as e:  # the buffer's flush names no file
                raise OSError(e.errno, e.strerror, os.fspath(self.path)) from e

    def close(self) -> str | None:
        """The file's path once written; None when there was none or it was discarded."""
        if self._f:
            f, self._f = self._f, None
            try:
                f.close()
                os.replace(self._tmp, self.path)
            except OSError as e:  # a full disk: name the file, leave no temp behind
                with contextlib.suppress(OSError):
                    os.unlink(self._tmp)
                raise OSError(e.errno, e.strerror, os.fspath(self.path)) from e
            self._written = True
        return os.fspath(self.path) if getattr(self, "_written", False) else None

    def discard(self) -> None:
        """Drop the file (after an error: nothing here may hide that error)."""
        if self._f:
            f, self._f = self._f, None
            with contextlib.suppress(OSError):
                f.close()
            with contextlib.suppress(OSError):
                os.unlink(self._tmp)

    def __enter__(self):
        return self

    def __exit__(self, exc_type, *_):
        self.close() if exc_type is None else self.discard()


@dataclass
class StageTimes:
    """Seconds spent per stage of an offline run, and the sample counts they served."""

    samples: int  # real inputs (padding excluded)
    computed: int  # samples the runtime computed (padding included)
    wall_s: float
    read_s: float
    preprocess_s: float
    infer_s: float
    post_s: float

    def record(self) -> dict:
        """rates() for a JSON record: a stage that took no measurable time has no rate (null),
        where the vendor's text file writes inf."""
        return {stage: {k: v if v != float("inf") else None for k, v in f.items()} for stage, f in self.rates().items()}

    def rates(self) -> dict:
        def rate(n, s):
            return n / s if s > 0 else float("inf")

        return {
            "e2e": {"throughputRate": rate(self.samples, self.wall_s), "latency": self.wall_s * 1e3},
            "data read": {"throughputRate": rate(self.samples, self.read_s),
                          "moduleLatency": self.read_s * 1e3 / max(self.samples, 1)},
            "preprocess": {"throughputRate": rate(self.samples, self.preprocess_s),
                           "moduleLatency": self.preprocess_s * 1e3 / max(self.samples, 1)},
            "infer": {"throughputRate": rate(self.samples, self.infer_s),
                      # compute-only rate, as the vendor tool: 1000 * batch / mean compute ms
                      "Interface throughputRate": rate(self.computed, self.infer_s),
                      "moduleLatency": self.infer_s * 1e3 / max(self.samples, 1)},
            "post": {"throughputRate": rate(self.samples, self.post_s),
                     "moduleLatency": self.post_s * 1e3 / max(self.samples, 1)},
        }


def _num(x: float) -> str:
    s = f"{x:.6g}"
    return f"{x:.1f}" if "e" in s or "inf" in s else s


def format_perf_file(times: StageTimes) -> str:
    r = times.rates()
    lines = []
    for stage in ("e2e", "data read", "preprocess", "infer", "post"):
        fields = ", ".join(f"{k}: {_num(v)}" for k, v in r[stage].items())
        lines.append(f"[{stage}] {fields}")
    return "\n".join(lines) + "\n"


def perf_file_name(batch_size: int, device_id: int) -> str:
    return f"perf_vision_batchsize_{batch_size}_device_{device_id}.txt"


def latencies_file_name(batch_size: int, device_id: int) -> str:
    """Each batch's compute latency of an offline run, beside its perf file."""
    return f"latencies_batchsize_{batch_size}_device_{device_id}.csv"


# ---------------------------------------------------------------- batch sweep (guide §7)

# The guide's figures (formats.md §7), images/s at batch 1, 4, 8, 16, 32, 64.
GUIDE_REFERENCE = {
    "Ascend 310": dict(zip((1, 4, 8, 16, 32, 64), (3106.8, 5682.5, 5868.4, 6005.5, 5590.4, 5293.6))),
    "Ascend 710": dict(zip((1, 4, 8, 16, 32, 64), (2113.01, 6606.25, 8926.07, 9836.44, 10649.9, 5511.77))),
    "T4 (TensorRT fp16)": dict(zip((1, 4, 8, 16, 32, 64), (1872.5, 4004.6, 4633.8, 4655.5, 4689.0, 4674.6))),
}


def load_pool(folder: str, count: int) -> np.ndarray:
    """Up to `count` preprocessed .bin tensors (square, 3 channels) for real-data timing."""
    files = sorted(f for f in os.listdir(folder) if f.endswith(".bin"))[:count]
    if not files:
        raise ClsbenchError(f"{folder}: no .bin files for the real-data figures")
    arrays = [np.fromfile(os.path.join(folder, f), dtype="<f4") for f in files]
    side = int(round((arrays[0].size / 3) ** 0.5))
    for f, x in zip(files, arrays):
        if x.size != 3 * side * side:
            raise ClsbenchError(f"{os.path.join(folder, f)}: {x.size * 4} bytes is not a 3x{side}x{side} float32 tensor")
    return np.stack(arrays).reshape(len(files), 3, side, side)


def parse_batches(text: str) -> list[int]:
    """'1,4,8' -> [1, 4, 8]; anything else is a one-line error naming the bad item."""
    out = []
    for item in str(text).split(","):
        try:
            b = int(item.strip())
        except ValueError:
            raise ClsbenchError(f"--batches {text!r}: {item.strip()!r} is not a batch size") from None
        if b < 1:
            raise ClsbenchError(f"--batches {text!r}: batch sizes must be >= 1, got {b}")
        out.append(b)
    return out


@dataclass
class Config:
    backend: str
    precision: str
    model: str
    options: tuple = ()  # (name, value) pairs for the backend (the eager backends' architecture)

    @property
    def label(self) -> str:
        return f"{self.backend} {self.precision}"


def latencies_name(cfg: Config, batch: int, real: bool) -> str:
    """The raw-latency file of one sweep cell, in the sweep's latencies/ folder."""
    return f"{cfg.backend}-{cfg.precision}-bs{batch}-{'real' if real else 'random'}.csv"


@dataclass(frozen=True)
class Timing:
    """How each perf cell is timed: warm-up runs, then at least `iterations` runs and
    `duration` seconds (never past `max_seconds`); images/s is the median of `repeats`
    consecutive windows; `hint` is OpenVINO's (throughput: requests in flight)."""

    duration: float = 2.0
    iterations: int = 10
    warmup: int = 3
    threads: int | None = None
    hint: str = "latency"
    repeats: int = 5
    percentiles: tuple = DEFAULT_PERCENTILES
    max_seconds: float = 120.0

    def __post_init__(self):
        if self.duration < 0 or self.iterations < 1 or self.warmup < 0 or self.repeats < 1:
            raise ClsbenchError(f"--duration must be >= 0, --iterations >= 1, --warmup >= 0, --repeats >= 1; got "
                                f"{self.duration}, {self.iterations}, {self.warmup}, {self.repeats}")
        if self.threads is not None and self.threads < 1:
            raise ClsbenchError(f"--threads must be >= 1, got {self.threads}")

    def settings(self) -> dict:
        """What a sweep's record (and its checkpoint's identity) says about the timing."""
        return {"duration_s": self.duration, "min_iterations": self.iterations, "warmup": self.warmup,
                "threads": self.threads, "repeats": self.repeats, "percentiles": list(self.percentiles),
                **({"openvino_hint": self.hint} if self.hint != "latency" else {})}


def measure(cfg: Config, batch: int, timing: Timing = Timing(), *, pool: np.ndarray | None = None,
            latencies_dir: str | None = None, return_raw: bool = False) -> dict:
    """Timed loop for one configuration and batch size (`return_raw`: the per-run
    milliseconds under "_raw", for a caller that writes them elsewhere).

    Compute-only = images/s inside run(), the median of `repeats` consecutive windows of
    the timed runs (spread recorded, > 10 % marked unstable); end to end adds taking each
    batch from the data pool (real data) or re-filling the input (random), as a caller must.
    Each run's latency is streamed to latencies_dir/<cell>.csv when a folder is given.
    """
    import time

    from .backends import open_backend

    t = timing
    opts = {**dict(cfg.options), **({"hint": t.hint} if cfg.backend == "openvino" and t.hint != "latency" else {})}
    rt = open_backend(cfg.backend, cfg.model, batch_size=batch, threads=t.threads, precision=cfg.precision, **opts)
    shape = rt.input_shape
    x = np.empty((batch, *shape), dtype=np.float32)
    rng = np.random.default_rng(0)
    src = pool if pool is not None else rng.standard_normal((max(batch, 8), *shape), dtype=np.float32)
    idx = 0

    def fill():
        nonlocal idx
        for i in range(batch):
            x[i] = src[idx % len(src)]
            idx += 1

    fill()
    for _ in range(t.warmup):
        rt.run(x)
    name = latencies_name(cfg, batch, pool is not None)
    row = {"backend": cfg.backend, "precision": cfg.precision, "batch_size": batch,
           "input": "real data" if pool is not None else "random normal", "warmup": t.warmup}
    if getattr(rt, "hint", None) == "throughput":  # several requests in flight: timed over the whole loop
        return {**row, **_measure_async(rt, batch, fill, x, t)}
    with LatencyLog(os.path.join(latencies_dir, name) if latencies_dir else None) as lat:
        t_start = time.perf_counter()
        while True:
            fill()
            t0 = time.perf_counter()
            rt.run(x)
            lat.add((time.perf_counter() - t0) * 1e3)
            elapsed = time.perf_counter() - t_start
            if (len(lat.values) >= t.iterations and elapsed >= t.duration) or elapsed >= t.max_seconds:
                break
        wall = time.perf_counter() - t_start
    n, stab = len(lat.values), stability(lat.values, batch, t.repeats)
    return {**row, "iterations": n, "latency_ms": latency_stats(lat.values, t.percentiles),
            "throughput_compute": stab["median"], "throughput_e2e": batch * n / wall, "stability": stab,
            "latencies_csv": f"latencies/{name}" if latencies_dir else None, "runtime": rt.describe(),
            **({"_raw": lat.values} if return_raw else {})}


def _measure_async(rt, batch, fill, x, t: Timing) -> dict:
    """Several requests in flight: only the loop's wall time means anything (no per-run
    time); the repeats are windows of the completion times."""
    import time

    n, done_ms = 0, []
    t_start = time.perf_counter()

    def batches():
        nonlocal n
        while True:
            elapsed = time.perf_counter() - t_start
            if (n >= t.iterations and elapsed >= t.duration) or elapsed >= t.max_seconds:
                return
            fill()
            n += 1
            yield x

    for _ in rt.run_many(batches()):
        done_ms.append((time.perf_counter() - t_start) * 1e3)
    wall = time.perf_counter() - t_start
    stab = stability(done_ms, batch, t.repeats, wall=True)
    return {"iterations": n, "latency_ms": {}, "throughput_compute": stab["median"],
            "throughput_e2e": batch * n / wall, "stability": stab, "latencies_csv": None,
            "runtime": rt.describe()}
