"""`clsbench loadgen`: MLPerf Inference scenarios through the real LoadGen (`mlperf_loadgen`,
pip install 'clsbench[loadgen]'), on any backend and precision `run` accepts.

    QSL   every sample preprocessed into memory before timing (an image folder with the
          model's preset, a compact store, or a folder of the guide's .bin tensors)
    SUT   --workers worker threads (default 1), each with its own backend instance, all fed by
          one batcher's queue:
          offline        LoadGen's one big query, run in batches of --batch-size
          server         a dynamic batcher: what has arrived while the last batch ran, up to
                         --batch-size (Triton's default), or waiting up to --max-wait-ms for
                         a batch to fill (Triton's max_queue_delay)
          single-stream  batch 1
          multi-stream   each query's samples-per-query samples as one batch
          Responses are the logits (float32), so accuracy mode decodes them.

LoadGen writes mlperf_log_summary.txt, mlperf_log_detail.txt and mlperf_log_accuracy.json
into the output folder (one per mode: performance/, accuracy/; one per try under peak/);
clsbench reads them back, by LoadGen's own field names, into loadgen.json and report.html.
`find_peak` searches the highest Server target QPS that LoadGen judges VALID at the latency
bound: doubling (or halving) until the bound is bracketed, then bisecting, each try a
LoadGen performance run, every try recorded.
"""
from __future__ import annotations

import dataclasses
import logging
import os
import queue
import shutil
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..defaults import default
from .. import ClsbenchError

log = logging.getLogger("clsbench")

SCENARIOS = {"offline": "Offline", "server": "Server", "single-stream": "SingleStream",
             "multi-stream": "MultiStream"}
MODES = ("performance", "accuracy", "both")
# MLPerf's user.conf keys (LoadGen's own names; durations and latencies in ms), each one
# clsbench sets overridable with --setting KEY=VALUE: its type, its bound as LoadGen means it,
# and the scenarios LoadGen reads it in (elsewhere it would have no effect). Measured on
# LoadGen 6: min_query_count 0 with min_duration 0 segfaults, target_latency 0 in SingleStream
# exhausts memory, a negative count wraps to 2^64 (vector::reserve, then a segfault).
_ALL = ("offline", "server", "single-stream", "multi-stream")
_LATENCY = ("server", "single-stream", "multi-stream")
SETTING_RULES = {  # key: (int or float, lowest, lowest allowed itself, highest, scenarios)
    "min_duration": (int, 0, True, None, _ALL),  # 0: no minimum
    "max_duration": (int, 0, True, None, _ALL),  # 0: no maximum
    "min_query_count": (int, 1, True, None, _ALL),
    "max_query_count": (int, 0, True, None, _ALL),  # 0: no maximum
    "performance_sample_count_override": (int, 1, True, None, _ALL),
    "target_qps": (float, 0, False, None, ("offline", "server")),
    "target_latency": (float, 0, False, None, _LATENCY),
    "target_latency_percentile": (float, 0, False, 100, _LATENCY),
    "samples_per_query": (int, 1, True, None, ("multi-stream",)),
}
USER_CONF_KEYS = tuple(SETTING_RULES)
_INT_MAX = 2 ** 63 - 1  # LoadGen's counts and durations are 64-bit
OFFICIAL_MIN_DURATION_MS = 600_000  # MLPerf Inference's rule for every scenario
OFFICIAL_MIN_QUERIES = {"offline": 1, "server": 270_336, "single-stream": 1024, "multi-stream": 270_336}
# short runs: enough queries for LoadGen's early stopping to be able to pass at the scenario's
# percentile with every query in bound (p99: 662 queries, p90: 64, as LoadGen 6 reports)
SHORT_MIN_QUERIES = {"offline": 1, "server": 662, "single-stream": 64, "multi-stream": 662}


@dataclass
class LoadgenOptions:
    scenario: str = default("loadgen", "scenario")
    mode: str = default("loadgen", "mode")
    batch_size: int = default("loadgen", "batch_size")
    backend: str | None = None
    precision: str | None = None
    threads: int | None = None  # per worker (default: the usable CPUs split between the workers)
    workers: int = default("loadgen", "workers")  # backend instances, each its own thread, fed by one batcher
    model_name: str | None = None  # NAME[:TAG]: the architecture of a .pth, the preset of an image folder
    target_qps: float | None = None  # server; offline: the expected QPS (default: measured)
    latency_bound_ms: float | None = None  # server's p99 bound (default 15 ms, MLPerf's ResNet-50 bound)
    max_wait_ms: float = default("loadgen", "max_wait_ms")  # server batcher's wait for a batch to fill after its first sample
    samples_per_query: int = default("loadgen", "samples_per_query")  # multi-stream
    duration_s: float = default("loadgen", "duration")  # --duration
    official_durations: bool = False  # MLPerf's 600 s and query counts
    settings: dict = field(default_factory=dict)  # user.conf keys, as given
    find_peak: bool = False
    peak_steps: int = default("loadgen", "peak_steps")  # bisection steps after the bracket
    output: str = default("loadgen", "output")
    labels: str | None = None  # accuracy mode: the data's labels (default: found beside the images)
    cuda_mode: str = default("loadgen", "cuda_mode")  # cuda backend: graph, eager or compile
    openvino_hint: str = default("loadgen", "openvino_hint")
    accept_preset_mismatch: bool = False  # tensors of another preset run anyway (recorded)
    backend_options: dict = field(default_factory=dict)  # passed to the backend (tests: device="cpu")
    command: str | None = None


def _lg():
    try:
        import mlperf_loadgen
    except ImportError:
        raise ClsbenchError("clsbench loadgen runs MLPerf's LoadGen: pip install 'clsbench[loadgen]' "
                            "(the mlcommons-loadgen wheel)") from None
    return mlperf_loadgen


def check(o: LoadgenOptions) -> None:
    """Every option checked before anything is loaded."""
    if o.scenario not in SCENARIOS:
        raise ClsbenchError(f"--scenario must be one of {', '.join(SCENARIOS)}, got {o.scenario!r}")
    if o.mode not in MODES:
        raise ClsbenchError(f"--mode must be one of {', '.join(MODES)}, got {o.mode!r}")
    for name, v in (("--batch-size", o.batch_size), ("--samples-per-query", o.samples_per_query),
                    ("--workers", o.workers)):
        if v < 1:
            raise ClsbenchError(f"{name} must be >= 1, got {v}")
    for name, v in (("--duration", o.duration_s), ("--target-qps", o.target_qps),
                    ("--latency-bound-ms", o.latency_bound_ms)):
        if v is not None and not v > 0:
            raise ClsbenchError(f"{name} must be > 0, got {v:g}")
    if not o.max_wait_ms >= 0:
        raise ClsbenchError(f"--max-wait-ms must be >= 0, got {o.max_wait_ms:g}")
    if o.find_peak and o.scenario != "server":
        raise ClsbenchError("--find-peak searches the Server scenario's highest QPS: give --scenario server")
    if o.find_peak and o.mode != "performance":
        raise ClsbenchError("--find-peak runs performance tries only: leave --mode at performance")
    _check_no_idle_options(o)
    bad = sorted(set(o.settings) - set(USER_CONF_KEYS))
    if bad:
        raise ClsbenchError(f"--setting {bad[0]}: not a key clsbench sets ({', '.join(USER_CONF_KEYS)})")
    for k, v in o.settings.items():
        setting_value(k, v)
        if o.scenario not in SETTING_RULES[k][4]:
            raise ClsbenchError(f"--setting {k}: LoadGen reads it in {', '.join(SETTING_RULES[k][4])} only, "
                                f"not in {o.scenario} (it would have no effect)")
    if o.find_peak and "target_qps" in o.settings:
        raise ClsbenchError("--setting target_qps: --find-peak sets each try's target QPS itself; leave it out")
    for key, flag in (("samples_per_query", "--samples-per-query"), ("target_latency", "--latency-bound-ms")):
        if key in o.settings:  # the batcher, the peak search and the record read the flag: one source
            raise ClsbenchError(f"--setting {key}: give {flag} instead (the SUT is sized by it and the record "
                                f"states it; the setting would override it behind their backs)")
    if o.official_durations and {"min_duration", "min_query_count"} & set(o.settings):
        raise ClsbenchError("--official-durations sets MLPerf's min_duration and min_query_count; leave them out "
                            "of --setting, or leave --official-durations out")


# options that act in some scenarios or modes only: (option, field, what decides, where it acts, what it is)
_ONLY_IN = (("--latency-bound-ms", "latency_bound_ms", "scenario", ("server",), "the server scenario's latency bound"),
            ("--max-wait-ms", "max_wait_ms", "scenario", ("server",), "the server batcher's wait"),
            ("--samples-per-query", "samples_per_query", "scenario", ("multi-stream",),
             "the multi-stream scenario's query size"),
            ("--target-qps", "target_qps", "scenario", ("offline", "server"), "the offline and server scenarios' QPS"),
            ("--batch-size", "batch_size", "scenario", ("offline", "server"),
             "the offline and server scenarios' largest batch (single-stream runs 1, multi-stream a query)"),
            ("--labels", "labels", "mode", ("accuracy", "both"), "accuracy mode's labels (--mode accuracy or both)"))


def _given(o: LoadgenOptions, name: str) -> bool:
    """Whether option `name` was given. The CLI fills each option left out with its default from
    clsbench.defaults (or None where the table has none), so a value equal to the default cannot
    be told from one left out: only a value other than the default counts as given."""
    from ..defaults import has_default

    v = getattr(o, name)
    return v != default("loadgen", name) if has_default("loadgen", name) else v is not None


def _check_no_idle_options(o: LoadgenOptions) -> None:
    """An option that would have no effect in this scenario or mode is refused (it would be
    recorded in loadgen.json's options as if it had been used)."""
    for flag, name, by, where, what in _ONLY_IN:
        if _given(o, name) and getattr(o, by) not in where:
            raise ClsbenchError(f"{flag}: {what}, not used with --{by} {getattr(o, by)} "
                                f"(it would have no effect); leave it out")
    if _given(o, "peak_steps") and not o.find_peak:
        raise ClsbenchError("--peak-steps: --find-peak's bisection steps, not used without --find-peak "
                            "(it would have no effect); leave it out")
    if o.find_peak and o.target_qps is not None:
        raise ClsbenchError("--target-qps: --find-peak sets each try's target QPS itself; leave it out")


def setting_value(key: str, raw) -> int | float:
    """A --setting value as LoadGen takes it (SETTING_RULES: type and bound), else one line naming
    the key, the value and the bound."""
    import math

    kind, lo, lo_ok, hi, _ = SETTING_RULES[key]
    bound = f"{'>=' if lo_ok else '>'} {lo:g}" + (f" and <= {hi:g}" if hi is not None else "")
    what = "a whole number" if kind is int else "a finite number"
    try:  # a whole number exactly (float() rounds 2**63 - 1 up past LoadGen's largest)
        v = int(raw) if kind is int and str(raw).strip().lstrip("+-").isdigit() else float(raw)
    except (TypeError, ValueError):
        v = math.nan
    if ((isinstance(v, float) and (not math.isfinite(v) or (kind is int and v != int(v))))
            or v < lo or (v == lo and not lo_ok) or (hi is not None and v > hi) or (kind is int and v > _INT_MAX)):
        raise ClsbenchError(f"--setting {key}={raw}: must be {what} {bound}")
    return int(v) if kind is int else v


# ---------------------------------------------------------------- the query sample library

@dataclass
class Samples:
    x: np.ndarray  # (N, C, H, W) float32, preprocessed, in memory
    names: list[str]  # image keys (the label file's)
    source: str
    labels: str | None  # a label file for accuracy mode, when the data has one
    made_with: object = None  # the Preprocessing the tensors were made with, where recorded


def load_samples(data: str, pp_for, labels: str | None = None) -> Samples:
    """A compact store, a folder of the guide's .bin tensors, or an image folder (ImageNet
    layout or not), preprocessed into memory; `pp_for()` gives the model's preset."""
    from ..data.folders import stem

    root = Path(data)
    if not root.is_dir():
        raise ClsbenchError(f"{data}: data directory not found")
    if (root / "index.json").is_file():
        from ..data.store import Store

        st = Store(root)
        if not st.complete:
            raise ClsbenchError(f"{data}: an incomplete store (rerun `clsbench preprocess --format store`)")
        return Samples(st.batch(0, len(st)), list(st.names), f"store {data}", labels, st.pp)
    bins = sorted(root.glob("*.bin"))
    if bins:
        from .infer import recorded_preset

        return Samples(_read_bins(bins), [stem(b.name) for b in bins], f".bin tensors in {data}", labels,
                       recorded_preset(data, {os.path.abspath(root)}))
    from ..plan import resolve_data
    from ..data.preprocess import load_folder

    d = resolve_data(data)
    pp = pp_for()
    got = load_folder(d.images, pp)
    log.info(f"loaded {len(got.names)} images of {d.images} into memory ({pp.describe()})"
             + (f"; {got.skipped} unreadable skipped" if got.skipped else ""))
    return Samples(got.x, got.names, f"images in {d.images}", labels or d.labels, pp)


def _read_bins(bins: list[Path]) -> np.ndarray:
    size = bins[0].stat().st_size
    side = int(round((size / 12) ** 0.5))
    if side * side * 12 != size:
        raise ClsbenchError(f"{bins[0]}: {size} bytes is not a float32 3×S×S tensor")
    out = np.empty((len(bins), 3, side, side), np.float32)
    for i, b in enumerate(bins):
        if b.stat().st_size != size:
            raise ClsbenchError(f"{b}: {b.stat().st_size} bytes, the others have {size}")
        out[i] = np.fromfile(b, np.float32).reshape(3, side, side)
    return out


# ---------------------------------------------------------------- the system under test

class Sut:
    """Worker threads in front of the backend(s), all pulling batches from the one dynamic
    batcher's queue; LoadGen's threads only enqueue. `backend` is one backend, or {batch size:
    backend} (static shapes, as TensorRT profiles and OpenVINO reshapes have them: a batch of n
    runs on the smallest size >= n, padded), or a list of those: one per worker, each its own
    session(s) and thread (`--workers`, as MLPerf's CPU submissions run several instances fed
    by one queue). Each worker answers its own batch's samples with their own logits."""

    def __init__(self, backend, samples: Samples, scenario: str, max_batch: int, max_wait_s: float):
        self.lg = _lg()
        per_worker = backend if isinstance(backend, list) else [backend]
        self.workers = [b if isinstance(b, dict) else {b.batch_size: b} for b in per_worker]
        self.backends = self.workers[0]
        self.x = samples.x
        self.scenario, self.max_batch, self.max_wait_s = scenario, max_batch, max_wait_s
        self.q: queue.Queue = queue.Queue()
        self.batch_sizes: list[int] = []
        self.worker_batches = [0] * len(self.workers)
        self.error: BaseException | None = None
        self.threads = [threading.Thread(target=self._loop, args=(i,), name=f"clsbench-sut-{i}", daemon=True)
                        for i in range(len(self.workers))]
        for t in self.threads:
            t.start()

    def issue(self, query_samples) -> None:
        if self.scenario == "multi-stream":  # one query: its samples together, one batch
            self.q.put(list(query_samples))
            return
        for s in query_samples:
            self.q.put(s)

    def flush(self) -> None:
        pass

    def stop(self) -> None:
        for _ in self.threads:  # one stop mark per worker (a worker that meets one mid-batch puts it back)
            self.q.put(None)
        for t in self.threads:
            t.join()

    def _next_batch(self, first) -> list:
        if isinstance(first, list):
            return first
        items = [first]
        deadline = time.perf_counter() + (self.max_wait_s if self.scenario == "server" else 0.0)
        while len(items) < self.max_batch:
            left = deadline - time.perf_counter()
            try:
                nxt = self.q.get(timeout=left) if left > 0 else self.q.get_nowait()
            except queue.Empty:
                break
            if nxt is None:  # stop: finish this batch first
                self.q.put(None)
                break
            items.append(nxt)
        return items

    def _loop(self, worker: int = 0) -> None:
        while True:
            first = self.q.get()
            if first is None:
                return
            items = self._next_batch(first)
            try:
                self._run(items, worker)
            except BaseException as e:  # noqa: BLE001 - LoadGen must still get its answers
                self.error = self.error or e
                self.lg.QuerySamplesComplete([self.lg.QuerySampleResponse(s.id, 0, 0) for s in items])

    def _run(self, items: list, worker: int = 0) -> None:
        n = len(items)
        backends = self.workers[worker]
        bs = min((b for b in backends if b >= n), default=max(backends))
        backend = backends[bs]
        x = self.x[[s.index for s in items]]
        if n < bs and not getattr(backend, "any_batch", False):  # a dynamic batch axis runs n as is;
            x = np.concatenate([x, np.repeat(x[-1:], bs - n, axis=0)])  # else pad with the last sample
        y = np.ascontiguousarray(backend.run(x)[:n], dtype=np.float32)
        self.batch_sizes.append(n)
        self.worker_batches[worker] += 1
        self.lg.QuerySamplesComplete([self.lg.QuerySampleResponse(s.id, y[i].ctypes.data, y[i].nbytes)
                                      for i, s in enumerate(items)])


# ---------------------------------------------------------------- settings (MLPerf's user.conf)

def user_conf(o: LoadgenOptions, count: int, expected_qps: float, expected_latency_ms: float) -> dict:
    """The user.conf keys of this run (LoadGen's names), defaults short enough for a laptop,
    MLPerf's durations with `official_durations`, then --setting overrides."""
    conf = {"min_duration": OFFICIAL_MIN_DURATION_MS if o.official_durations else int(o.duration_s * 1000),
            "min_query_count": (OFFICIAL_MIN_QUERIES if o.official_durations else SHORT_MIN_QUERIES)[o.scenario],
            "performance_sample_count_override": count}
    if o.scenario == "offline":  # LoadGen sizes its one query by this: a SUT faster than it finishes
        conf["target_qps"] = o.target_qps or round(1.5 * expected_qps, 2)  # early (min duration NO)
    elif o.scenario == "server":
        conf["target_qps"] = o.target_qps or round(expected_qps / 2, 2)
        conf["target_latency"] = o.latency_bound_ms or 15.0
        conf["target_latency_percentile"] = 99
    elif o.scenario == "single-stream":
        conf["target_latency"] = round(expected_latency_ms, 3)
        conf["target_latency_percentile"] = 90
    else:
        conf["target_latency"] = round(expected_latency_ms * o.samples_per_query, 3)
        conf["samples_per_query"] = o.samples_per_query
        conf["target_latency_percentile"] = 99
    for k, v in o.settings.items():
        conf[k] = setting_value(k, v)
    return conf


def write_user_conf(path: Path, scenario: str, conf: dict) -> None:
    from .._io import atomic_write_text

    name = SCENARIOS[scenario]
    atomic_write_text(path, "".join(f"clsbench.{name}.{k} = {v:g}\n" if isinstance(v, float) else
                                    f"clsbench.{name}.{k} = {v}\n" for k, v in conf.items()))


# ---------------------------------------------------------------- one LoadGen run

@dataclass
class Bench:
    """What every LoadGen run of a command shares: the backend, the samples, the settings
    the backend was measured at (expected QPS and latency, for LoadGen's schedules)."""

    backend: object  # a backend, or {batch size: backend}, or a list of those, one per worker (Sut)
    samples: Samples
    o: LoadgenOptions
    expected_qps: float
    expected_latency_ms: float


def run_once(b: Bench, outdir: Path, mode: str, target_qps: float | None = None) -> dict:
    """One LoadGen test into `outdir`: its settings as user.conf, LoadGen's three logs, and
    the summary as read back (parse_summary)."""
    lg = _lg()
    o = dataclasses.replace(b.o, target_qps=target_qps or b.o.target_qps)
    outdir.mkdir(parents=True, exist_ok=True)
    n = len(b.samples.names)
    conf = user_conf(o, n, b.expected_qps, b.expected_latency_ms)
    write_user_conf(outdir / "user.conf", o.scenario, conf)
    ts = lg.TestSettings()
    ts.scenario = getattr(lg.TestScenario, SCENARIOS[o.scenario])
    ts.mode = lg.TestMode.AccuracyOnly if mode == "accuracy" else lg.TestMode.PerformanceOnly
    if ts.FromConfig(str(outdir / "user.conf"), "clsbench", SCENARIOS[o.scenario], 1) != 0:
        raise ClsbenchError(f"{outdir / 'user.conf'}: LoadGen refused these settings")
    max_batch = {"single-stream": 1, "multi-stream": o.samples_per_query}.get(o.scenario, o.batch_size)
    wait = o.max_wait_ms / 1e3
    sut = Sut(b.backend, b.samples, o.scenario, max_batch, wait)
    out = lg.LogOutputSettings()
    out.outdir, out.copy_summary_to_stdout = str(outdir), False
    settings = lg.LogSettings()
    settings.log_output = out
    qsl = lg.ConstructQSL(n, n, lambda idx: None, lambda idx: None)  # every sample is in memory already
    handle = lg.ConstructSUT(sut.issue, sut.flush)
    t0 = time.perf_counter()
    try:
        lg.StartTestWithLogSettings(handle, qsl, ts, settings)
    finally:
        sut.stop()
        lg.DestroySUT(handle)
        lg.DestroyQSL(qsl)
    if sut.error is not None:
        raise ClsbenchError(f"the backend failed during the LoadGen run: {sut.error}")
    rec = {"mode": mode, "folder": str(outdir), "user_conf": conf, "wall_s": round(time.perf_counter() - t0, 2),
           "batches": {**_batch_stats(sut.batch_sizes), "per_worker": sut.worker_batches},
           "max_wait_ms": round(wait * 1e3, 3) if o.scenario == "server" else None}
    if mode == "performance":
        rec["summary"] = parse_summary(outdir / "mlperf_log_summary.txt")
    return rec


def _batch_stats(sizes: list[int]) -> dict:
    if not sizes:
        return {"count": 0}
    a = np.array(sizes)
    return {"count": int(a.size), "mean": round(float(a.mean()), 3), "max": int(a.max()),
            "histogram": {str(k): int(v) for k, v in zip(*np.unique(a, return_counts=True))}}


def parse_summary(path: Path) -> dict:
    """mlperf_log_summary.txt as LoadGen wrote it: every 'Field : value' line by LoadGen's own
    field name (numbers as numbers), and the bullets of its early-stopping and
    recommendation paragraphs (continuation lines joined) as notes."""
    import re

    if not path.is_file():
        raise ClsbenchError(f"{path}: LoadGen wrote no summary")
    fields, notes = {}, []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        if not line.strip() or line.startswith("==="):
            continue
        if line.lstrip().startswith("* "):
            notes.append(line.strip()[2:].strip())
        elif notes and line.startswith(" ") and not re.match(r"^\s*[\w .()%/-]+?\s*:", line):
            notes[-1] += " " + line.strip()
        else:
            m = re.match(r"^\s*(.+?)\s*:\s*(.*?)\s*$", line)
            if m and m.group(2):
                fields[m.group(1)] = _number(m.group(2))
    result = fields.get("Result is")
    return {"fields": fields, "valid": result == "VALID", "result": result, "notes": notes,
            "reasons": [f"{k}: NO" for k in ("Performance constraints satisfied", "Min duration satisfied",
                                               "Min queries satisfied", "Early stopping satisfied")
                        if str(fields.get(k, "")).upper() == "NO"]}


def _number(v: str):
    try:
        return int(v)
    except ValueError:
        try:
            return float(v)
        except ValueError:
            return v


# ---------------------------------------------------------------- accuracy mode

def decode_accuracy_log(path: Path, count: int) -> np.ndarray:
    """mlperf_log_accuracy.json: each response's bytes (the float32 logits the SUT returned),
    by QSL index; every sample must be there exactly once (AccuracyOnly issues each once)."""
    import json

    try:
        entries = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise ClsbenchError(f"{path}: not LoadGen's accuracy log ({e})") from None
    rows: dict[int, np.ndarray] = {}
    for e in entries:
        i = int(e["qsl_idx"])
        if i in rows:
            raise ClsbenchError(f"{path}: sample {i} answered twice")
        rows[i] = np.frombuffer(bytes.fromhex(e["data"]), dtype=np.float32)
    missing = sorted(set(range(count)) - set(rows))
    if missing:
        raise ClsbenchError(f"{path}: {len(missing)} of {count} samples have no response, e.g. {missing[0]}")
    return np.stack([rows[i] for i in range(count)])


def accuracy_record(b: Bench, outdir: Path) -> dict:
    from ..accuracy.evaluate import evaluate_scores, write_result

    scores = decode_accuracy_log(outdir / "mlperf_log_accuracy.json", len(b.samples.names))
    if not b.samples.labels:
        return {"images": len(scores), "result_json": None,
                "note": "no labels beside the data: the accuracy log is written, not scored"}
    acc = evaluate_scores(outdir / "mlperf_log_accuracy.json", b.samples.names, scores, b.samples.labels)
    path = write_result(acc, outdir, "result.json")
    return {"images": acc.images, "classes": acc.num_classes, "result_json": str(path),
            **{f"top{k}": acc.percent(k) for k in range(1, 6)}}


# ---------------------------------------------------------------- the highest valid Server load

def find_peak(b: Bench, outdir: Path, floor_share: float = 1 / 16) -> dict:
    """The highest Server target QPS LoadGen judges VALID at the latency bound: from half the
    measured batch throughput, double (or halve) until a VALID and an INVALID try bracket
    it, then bisect `peak_steps` times. Every try is a LoadGen run of its own, kept."""
    tries: list[dict] = []

    def attempt(q: float) -> bool:
        q = round(q, 2)
        r = run_once(b, outdir / f"try{len(tries) + 1:02d}_{q:g}qps", "performance", target_qps=q)
        f = r["summary"]["fields"]
        tries.append({"target_qps": q, "valid": r["summary"]["valid"], "reasons": r["summary"]["reasons"],
                      "completed_qps": f.get("Completed samples per second"),
                      "p99_ms": _ms(f.get("99.00 percentile latency (ns)")), "folder": r["folder"],
                      "batches": r["batches"]})
        log.info(f"      peak search: {q:g} QPS → {r['summary']['result']} (p99 {tries[-1]['p99_ms']} ms)")
        return r["summary"]["valid"]

    lo = hi = None
    q = max(b.expected_qps / 2, 1.0)
    floor = b.expected_qps * floor_share  # below a 16th of the batch throughput the server is idle: the
    while (lo is None or hi is None) and len(tries) < 10:  # bound is the service time's, not the load's
        if attempt(q):
            lo, q = q, q * 2
        else:
            hi, q = q, q / 2
            if lo is None and q < floor:
                log.info(f"      peak search: INVALID down to {hi:g} QPS, 1/{1 / floor_share:g} of the measured throughput: "
                         f"the bound is below what one sample takes here")
                break
        if lo is not None and hi is not None and lo > hi:  # not monotone: LoadGen's verdict moved
            lo, hi = hi, None
    for _ in range(b.o.peak_steps if lo is not None and hi is not None else 0):
        mid = (lo + hi) / 2
        if attempt(mid):
            lo = round(mid, 2)
        else:
            hi = round(mid, 2)
    bound = b.o.latency_bound_ms or 15.0
    pct = b.o.settings.get("target_latency_percentile")  # the percentile LoadGen judged the bound at
    return {"peak_qps": lo, "bracket": [lo, hi], "step": round(hi - lo, 2) if lo and hi else None,
            "latency_bound_ms": bound, "percentile": setting_value("target_latency_percentile", pct) if pct else 99,
            "tries": tries}


def _ms(ns) -> float | None:
    return round(ns / 1e6, 4) if isinstance(ns, (int, float)) else None


# ---------------------------------------------------------------- the command

def batch_sizes(o: LoadgenOptions) -> list[int]:
    """The batch sizes the SUT keeps a backend for: the scenario's one, and for Server every
    power of two below --batch-size too (a lone sample must not wait for a batch-8 compute)."""
    if o.scenario == "single-stream":
        return [1]
    if o.scenario == "multi-stream":
        return [o.samples_per_query]
    if o.scenario == "offline":
        return [o.batch_size]
    return sorted({2 ** k for k in range(o.batch_size.bit_length()) if 2 ** k < o.batch_size} | {o.batch_size})


def open_target(model: str, o: LoadgenOptions, batch: int):
    """The model through the same seam as every command: plan.resolve_runnable (the plan's
    model, preset and target rules), then `open_backend`. Returns (backend, the Runnable).
    Several workers without --threads: each gets its share of the usable CPUs (at least 1)."""
    from .._io import usable_cpus
    from ..plan import RunnableRequest, resolve_runnable

    threads = o.threads or (max(1, usable_cpus() // o.workers) if o.workers > 1 else None)
    r = resolve_runnable(model, RunnableRequest(model=o.model_name, backend=o.backend, precision=o.precision,
                                                threads=threads, hint=o.openvino_hint, cuda_mode=o.cuda_mode))
    return open_at(r, batch), r


def open_at(r, batch: int):
    """The resolved target (a plan.Runnable) opened at one batch size (the Server batcher keeps several)."""
    from ..runtime.backends import open_backend

    return open_backend(model=r.path, batch_size=batch, **r.open_kwargs())


def worker_backends(r, first, sizes: list[int], workers: int) -> list[dict]:
    """Each worker's {batch size: backend}: the resolved target (plan.Runnable) opened once per
    worker (its own session or infer request); `first` (opened at the largest size) is worker
    0's. A runtime with a dynamic batch axis keeps one backend a worker, others one per size."""
    out = []
    for w in range(workers):
        be = first if w == 0 else open_at(r, sizes[-1])
        out.append({sizes[-1]: be} if getattr(be, "any_batch", False)
                   else {sizes[-1]: be, **{n: open_at(r, n) for n in sizes[:-1]}})
    return out


def _latency_ms(backend, x: np.ndarray, runs: int = 7) -> float:
    """Median ms of one backend.run at its batch size, after two warm-up runs."""
    batch = np.repeat(x[:1], backend.batch_size, axis=0) if len(x) < backend.batch_size else x[:backend.batch_size]
    for _ in range(2):
        backend.run(batch)
    ts = []
    for _ in range(runs):
        t0 = time.perf_counter()
        backend.run(batch)
        ts.append((time.perf_counter() - t0) * 1e3)
    return float(np.median(ts))


def loadgen(model: str, data: str, options: LoadgenOptions | None = None, **kw) -> dict:
    """`clsbench loadgen`: the scenario's LoadGen run(s) into options.output, and loadgen.json
    (with report.html) reading them back. Returns that record."""
    from .._io import atomic_write_json, check_not_input, folder_lock
    from ..runtime.timing import environment

    o = options or LoadgenOptions(**kw)
    check(o)
    check_not_input(o.output, {"the --model file": model, "the --labels file": o.labels or []}, "--output",
                    folders={"the --data folder": data})
    out_dir, data_dir = os.path.realpath(o.output), os.path.realpath(data)
    if data_dir.startswith(out_dir.rstrip(os.sep) + os.sep):
        raise ClsbenchError(f"{data}: lies inside --output {o.output}, whose folders each LoadGen run rewrites; "
                            f"give the data from elsewhere")
    _lg()
    sizes = batch_sizes(o)
    batch = sizes[-1]
    from ..plan import check_tensor_preset

    be, r = open_target(model, o, batch)
    m, preset, t = r.model, r.preset, r.target
    samples = load_samples(data, lambda: preset.pp, o.labels)
    tensors = check_tensor_preset(data, samples.made_with, r, o.accept_preset_mismatch)
    if tuple(samples.x.shape[1:]) != tuple(be.input_shape):
        raise ClsbenchError(f"{data}: samples are {tuple(samples.x.shape[1:])}, the model takes "
                            f"{tuple(be.input_shape)} (preprocess the data with the model's preset)")
    lat = _latency_ms(be, samples.x)
    backends = worker_backends(r, be, sizes, o.workers)
    for w in backends[1:]:  # the other workers' sessions warmed as worker 0's was (two runs each)
        for other in w.values():
            _latency_ms(other, samples.x, runs=1)
    b = Bench(backends if o.workers > 1 else backends[0], samples, o,
              expected_qps=o.workers * batch * 1e3 / lat, expected_latency_ms=lat)
    log.info(f"loadgen {SCENARIOS[o.scenario]} · {t.label} · batch {batch} · {len(samples.names)} samples in "
             f"memory · one batch {lat:.2f} ms ({b.expected_qps:,.0f} samples/s back to back"
             + (f", {o.workers} workers of {t.threads} threads" if o.workers > 1 else "") + ")")
    out = Path(o.output)
    out.mkdir(parents=True, exist_ok=True)
    with folder_lock(out):
        sizing, runs, peak = run_all(b, out)
        rec = {"tool": f"clsbench {__import__('clsbench').__version__}", "command": o.command,
               "scenario": o.scenario, "loadgen_scenario": SCENARIOS[o.scenario], "mode": o.mode,
               "model": {"path": os.path.abspath(model), "key": m.key, "provenance": m.provenance},
               "target": {"backend": t.backend, "precision": t.precision, "artifact": t.artifact,
                          "batch_size": batch, "batch_sizes": sizes, "runtime": be.describe(),
                          "workers": o.workers, "threads": t.threads},
               "preset": preset.as_dict(), "data": {"source": samples.source, "samples": len(samples.names),
                                                    "labels": samples.labels},
               "measured_batch_ms": round(lat, 4), "offline_sizing": sizing, "options": _options_record(o),
               "runs": runs, "peak": peak, "environment": environment(), "plan": {**r.as_dict(), "tensors": tensors}}
        atomic_write_json(out / "loadgen.json", rec)
        from ..report.html import write_report

        write_report(str(out))
    return rec


def run_all(b: Bench, out: Path) -> tuple[dict | None, dict, dict | None]:
    """The command's LoadGen runs into `out`: Offline's sizing pass (size_offline), each mode's
    run (performance through performance_run), the peak search. Returns (sizing, runs, peak)."""
    o = b.o
    shutil.rmtree(out / "offline-sizing", ignore_errors=True)  # an earlier run's: not this one's
    sizing = size_offline(b, out / "offline-sizing")
    if sizing:
        b = dataclasses.replace(b, expected_qps=sizing["loadgen_samples_per_s"])
    runs = {}
    for mode in (("accuracy", "performance") if o.mode == "both" else (o.mode,)):
        if mode == "performance" and o.find_peak:
            continue
        log.info(f"      {mode} run → {out / mode}")
        if mode == "performance":
            runs[mode] = performance_run(b, out / mode, sizing)
        else:
            runs[mode] = run_once(b, out / mode, mode)
            runs[mode]["accuracy"] = accuracy_record(b, out / mode)
    peak = find_peak(b, out / "peak") if o.find_peak else None
    return sizing, runs, peak


RESIZES = 2  # Offline reruns sized from a run's own rate, at most
RESIZE_FACTOR = 1.2  # the expected QPS of a rerun: this times the rate the short run measured


def performance_run(b: Bench, outdir: Path, sizing: dict | None) -> dict:
    """The performance run. An Offline query clsbench sized itself (`sizing`: no --target-qps,
    no target_qps setting) that ends before min_duration, with no other constraint failed, was
    sized on a busier machine than the run's: it is sized again from the rate that run measured
    (expected RESIZE_FACTOR times it, so LoadGen's query is 1.5 times that) and rerun, at most
    RESIZES times. Each short run stays under the sizing folder, listed in `resized`; every
    other verdict is LoadGen's as it came."""
    r = run_once(b, outdir, "performance")
    resized: list[dict] = []
    while sizing and len(resized) < RESIZES and _only_too_short(r["summary"]):
        rate = float(r["summary"]["fields"]["Samples per second"])
        kept = Path(sizing["folder"]) / f"short-run{len(resized) + 1}"
        shutil.rmtree(kept, ignore_errors=True)
        shutil.move(str(outdir), str(kept))
        b = dataclasses.replace(b, expected_qps=round(RESIZE_FACTOR * rate, 2))
        resized.append({"target_qps": r["user_conf"]["target_qps"], "measured_samples_per_s": rate,
                        "reasons": r["summary"]["reasons"], "folder": str(kept), "expected_qps": b.expected_qps})
        log.info(f"      Offline query ended before min duration ({rate:,.0f} samples/s, sized for "
                 f"{r['user_conf']['target_qps']:g} QPS): sized again from that rate, rerun "
                 f"({len(resized)} of at most {RESIZES}; the short run kept in {kept})")
        r = run_once(b, outdir, "performance")
    r["resized"] = resized
    return r


def _only_too_short(summary: dict) -> bool:
    rate = summary["fields"].get("Samples per second")
    return (not summary["valid"] and summary["reasons"] == ["Min duration satisfied: NO"]
            and isinstance(rate, (int, float)) and rate > 0)


SIZING_S = 0.1  # the Offline sizing pass's min duration


def size_offline(b: Bench, outdir: Path) -> dict | None:
    """Offline without --target-qps: LoadGen sizes its one query by the expected QPS, and one
    batch timed back to back leaves out LoadGen's own cost per sample (the tests' tiny model:
    ~285,000 samples/s probed, ~36,000 through LoadGen, so `--duration 1` ran 13 s). A short
    LoadGen pass measures the rate through LoadGen itself; the run is sized from that.
    Returns what it measured (its logs stay in `outdir`), or None where nothing is sized."""
    o = b.o
    if o.scenario != "offline" or o.target_qps or "target_qps" in o.settings or o.mode == "accuracy":
        return None
    short = dataclasses.replace(o, duration_s=SIZING_S, official_durations=False, settings={})
    rec = run_once(dataclasses.replace(b, o=short), outdir, "performance")
    rate = rec["summary"]["fields"].get("Samples per second")
    if not isinstance(rate, (int, float)) or rate <= 0:
        return None
    log.info(f"      sizing pass → {outdir}: {rate:,.0f} samples/s through LoadGen "
             f"(one batch back to back: {b.expected_qps:,.0f})")
    return {"folder": str(outdir), "min_duration_ms": int(SIZING_S * 1000),
            "probe_samples_per_s": round(b.expected_qps, 2), "loadgen_samples_per_s": float(rate)}


def _options_record(o: LoadgenOptions) -> dict:
    d = dataclasses.asdict(o)
    d.pop("backend_options", None)
    return d
