"""`clsbench profile`: where the time of one batch goes, per operator, on the runtime that runs
it. The model goes through the plan (`plan.resolve_runnable`: model, preset, target) and is
opened as every command opens it (`open_backend`); the batch's un-profiled latency is timed
first, then a *separate* profiled session, warmed up, runs the same batch:

- onnxruntime: the backend's own session options (`get_session_options`) with
  `enable_profiling`; ONNX Runtime's trace is passed through as trace.json;
- openvino: the backend's compile config with `PERF_COUNT`, `get_profiling_info()` after
  each run (OpenVINO's counters are the last run's), summed;
- torch: `torch.profiler` over the eager model, each leaf module a `record_function`.

The events go to `report.profiles` (the one normalised table, files and pages). A node's
`source` maps a quantized, fused or renamed node back to the float graph's node, from the
model's own ONNX graph (`graph_sources`)."""
from __future__ import annotations

import json
import logging
import os
import re
import time
from dataclasses import dataclass

import numpy as np

from .. import ClsbenchError
from ..defaults import default

log = logging.getLogger("clsbench")

PROFILED = ("onnxruntime", "openvino", "torch")


@dataclass
class ProfileOptions:
    """`clsbench profile`: what to profile and how; `output` is required."""

    output: str | None = default("profile", "output")
    backend: str | None = None  # None: what the model file is
    precision: str | None = None
    batch_size: int = default("profile", "batch_size")
    data: str | None = None  # preprocessed .bin files (else random normal input)
    threads: int | None = None
    arch: str | None = None  # NAME[:TAG] of a .pth (torch backend)
    warmup: int = default("profile", "warmup")
    runs: int = default("profile", "runs")  # profiled runs, after the warm-up
    timed_runs: int = default("profile", "timed_runs")  # un-profiled runs timed for the coverage
    accept_preset_mismatch: bool = False
    command: str | None = None
    measured_ms: float | None = None  # the batch's latency measured already (a perf cell's): not timed again


def check_request(model: str, o: ProfileOptions) -> None:
    """Bad input in one line, before anything is loaded: the numbers, the backend, the output
    (never the model, never inside --data)."""
    from .._io import check_memory, check_not_input

    if not o.output:
        raise ClsbenchError("give --output DIR (the folder profile.json, profile.csv and trace.json go to)")
    for name, v, least in (("--batch-size", o.batch_size, 1), ("--runs", o.runs, 1),
                           ("--timed-runs", o.timed_runs, 1), ("--warmup", o.warmup, 0)):
        if v < least:
            raise ClsbenchError(f"{name} must be >= {least}, got {v}")
    if o.backend == "cann":
        raise ClsbenchError("--backend cann: profiling on an Ascend NPU needs the CANN toolkit's msprof, which is "
                            "not installed here; profile the ONNX on onnxruntime or openvino instead")
    if o.backend is not None and o.backend not in PROFILED:
        raise ClsbenchError(f"--backend {o.backend}: profile runs {', '.join(PROFILED)}")
    if not os.path.exists(model):
        raise ClsbenchError(f"--model {model}: model file not found")
    if not os.path.isfile(model):
        raise ClsbenchError(f"--model {model}: " + ("a folder" if os.path.isdir(model) else "not a regular file")
                            + ", not a model file; give the .onnx, .xml (OpenVINO IR) or .pth file itself")
    inputs = {"the --model file": model}
    for path in (o.output, *(os.path.join(o.output, n) for n in OWN_FILES)):
        check_not_input(path, inputs, "--output folder")
    if o.data:
        check_not_input(o.output, what="--output folder", folders={"the --data folder": o.data})
    _check_output_folder(o.output)
    _check_data(o.data)
    _check_arch(model, o.arch)
    check_memory(3 * o.batch_size * 3 * 224 * 224 * 4, f"--batch-size {o.batch_size}")


OWN_FILES = ("profile.json", "profile.csv", "trace.json", "report.html")


def _check_output_folder(output: str) -> None:
    """An earlier profile's folder is accepted (its files are replaced); one holding another
    command's outputs is not (its perf.json would be hidden behind profile.json by `clsbench
    report`)."""
    from .._io import check_own_folder

    check_own_folder(output, OWN_FILES, f"profile.json, profile.csv, trace.json and report.html (e.g. --output "
                     f"{output}.profile)", "other files", "an earlier profile's folder (its files are replaced)")


def _check_arch(model: str, arch: str | None) -> None:
    """--arch names a .pth's architecture; an ONNX or IR records its own (the plan's advice on
    a contradiction would say --model, which is the file here)."""
    from ..model.files import kind
    from ..model.table import get_model

    if arch is None:
        return
    try:
        get_model(arch)
    except ClsbenchError as e:
        raise ClsbenchError(f"--arch {arch}: {e}") from None
    k = kind(model)
    if k != "pth":
        raise ClsbenchError(f"--arch {arch}: applies to a .pth (--backend torch); {model} is an "
                            f"{'ONNX model' if k == 'onnx' else 'OpenVINO IR'}, which records its architecture: "
                            f"leave --arch out")


def _check_data(data: str | None) -> None:
    if not data:
        return
    if not os.path.exists(data):
        raise ClsbenchError(f"--data {data}: folder not found")
    if not os.path.isdir(data):
        raise ClsbenchError(f"--data {data}: a file, not a folder; give the folder of .bin tensors "
                            f"`clsbench preprocess` wrote")
    if not any(n.endswith(".bin") for n in os.listdir(data)):
        raise ClsbenchError(f"--data {data}: no .bin tensors (profile reads the float .bin tensors of `clsbench "
                            f"preprocess`, not images, nor a --format store); make them with `clsbench preprocess "
                            f"--model NAME IMAGES TENSORS` and give --data TENSORS")


def profile_model(model: str, options: ProfileOptions | None = None, **kw) -> dict:
    """Profiles one batch of `model`; writes profile.json, profile.csv, trace.json and
    report.html in `output`; returns the record (with "files")."""
    from .._io import folder_lock
    from ..plan import RunnableRequest, resolve_runnable
    from ..runtime.backends import open_backend

    o = options or ProfileOptions(**kw)
    check_request(model, o)
    quiet = _NoPresetAdvice()  # profile takes no preset flags: a foreign model's default preset is not advice here
    log.addFilter(quiet)
    try:
        r = resolve_runnable(model, RunnableRequest(model=o.arch, backend=o.backend, precision=o.precision,
                                                    threads=o.threads))
    finally:
        log.removeFilter(quiet)
    if r.target.backend not in PROFILED:
        raise ClsbenchError(f"{model}: runs on {r.target.backend}; profile runs {', '.join(PROFILED)}"
                            + (" (CANN's msprof is not installed here)" if r.target.backend == "cann" else ""))
    _check_fixed_batch(r.path, o.batch_size)
    x, what, tensors = _input(r, o)
    rt = open_backend(model=r.path, batch_size=o.batch_size, **r.open_kwargs())
    x = _as_input(rt, x, o.data)
    os.makedirs(o.output, exist_ok=True)
    with folder_lock(o.output):  # a second profile into the same folder is refused, not interleaved
        timer = _Timer(rt, x, o)
        events, trace, profiler = COLLECTORS[rt.name](rt, x, o, timer)
        rec = _record(model, r, o, rt, (events, trace, profiler, timer.result(), what, tensors))
        rec["files"] = _write(o.output, rec, trace)
    return rec


class _NoPresetAdvice(logging.Filter):
    """The plan's warning that a foreign model records no preset advises --resize/--crop...,
    flags profile has not: its input is random, or .bin tensors checked on their own record."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("the model records no preset:")


def _check_fixed_batch(path: str, batch_size: int) -> None:
    """An ONNX exported with a fixed batch runs that batch only: said with the flag to give."""
    from ..model.files import kind, parsed_onnx

    if kind(path) != "onnx":
        return
    inputs = parsed_onnx(path).inputs
    n = inputs[0][1][0] if len(inputs) == 1 and inputs[0][1] else None
    if isinstance(n, int) and n > 0 and n != batch_size:
        raise ClsbenchError(f"{path}: exported with a fixed batch of {n}; give --batch-size {n} (or export it with "
                            f"a dynamic batch to profile --batch-size {batch_size})")


def _record(model: str, r, o: ProfileOptions, rt, got: tuple) -> dict:
    from ..report.profiles import coverage, ms_text, op_types, summarise
    from ..runtime.timing import environment

    events, trace, profiler, measured, what, tensors = got
    nodes = summarise(events)
    cov = coverage(nodes, o.runs, *measured[:2], before_ms=measured[4])
    cov["text"] += f" ({measured[2]})"
    prof = measured[3]
    if prof:
        cov["profiled_run_ms"] = prof
        cov["text"] += (f"; a profiled run takes {ms_text(prof)} ms ({100 * (prof / measured[0] - 1):+.0f} % against "
                        f"an un-profiled one: the profiler's own cost, and noise), its nodes "
                        f"{100 * cov['node_ms_per_run'] / prof:.0f} % of it")
    return {"tool": "clsbench profile", "command": o.command, "plan": {**r.as_dict(), "tensors": tensors},
            "batch_size": o.batch_size, "input": what, "warmup": o.warmup, "runs": o.runs,
            "timed_runs": o.timed_runs, "profiler": profiler, "nodes": nodes, "op_types": op_types(nodes),
            "coverage": cov, "kept_in_float": kept_in_float(model), "trace": "trace.json",
            "runtime": rt.describe(), "environment": environment()}


def _write(out: str, rec: dict, trace: dict) -> dict:
    from .._io import atomic_write_json, atomic_write_text
    from ..report.profiles import csv_text, write_profile_report

    files = {"json": os.path.join(out, "profile.json"), "csv": os.path.join(out, "profile.csv"),
             "trace": os.path.join(out, "trace.json")}
    atomic_write_json(files["trace"], trace, indent=None)
    atomic_write_text(files["csv"], csv_text(rec["nodes"]))
    atomic_write_json(files["json"], rec)
    files["html"] = write_profile_report(out)
    return files


# ---------------------------------------------------------------- input and the un-profiled latency

def _input(r, o: ProfileOptions) -> tuple:
    """(a batch or None for random input, what it is, what the record says of its preset)."""
    from ..plan import check_tensor_preset
    from ..runtime.timing import load_pool
    from .infer import recorded_preset

    if not o.data:
        return None, "random normal input, seed 0", None
    tensors = check_tensor_preset(o.data, recorded_preset(o.data, {os.path.abspath(o.data)}), r,
                                  o.accept_preset_mismatch)
    pool = load_pool(o.data, o.batch_size)
    x = pool[np.arange(o.batch_size) % len(pool)]
    what = f"real data: {len(pool)} preprocessed .bin tensors of {os.path.abspath(o.data)}"
    if len(pool) < o.batch_size:
        what += f", repeated to fill the batch of {o.batch_size}"
        log.warning(f"--data {o.data}: {len(pool)} tensors, repeated to fill the batch of {o.batch_size}")
    return x, what, tensors


def _as_input(rt, x, data: str | None) -> np.ndarray:
    shape = (rt.batch_size, *rt.input_shape)
    from .._io import check_memory

    check_memory(3 * int(np.prod(shape)) * 4, f"--batch-size {rt.batch_size}: a batch of {shape[1:]} inputs")
    if x is None:
        rng = np.random.default_rng(0)
        if rt.input_dtype == np.uint8:
            return rng.integers(0, 256, shape, dtype=np.uint8)
        return rng.standard_normal(shape, dtype=np.float32)
    if x.shape != shape:
        raise ClsbenchError(f"{data}: its tensors are {x.shape[1:]}, the model takes {shape[1:]}")
    if rt.input_dtype == np.uint8:
        raise ClsbenchError(f"--data {data}: float .bin tensors, and the model takes uint8 crops (normalization "
                            f"folded in): leave --data out (random uint8 input), or profile the float model with it")
    return np.ascontiguousarray(x, dtype=np.float32)


class _Timer:
    """The batch's un-profiled latency, in the backend the command opened (never profiled).
    ONNX Runtime and OpenVINO time it *between* the profiled runs (`between`, a few runs after
    each), so both see the same machine, however its load changes; torch, whose profiler
    holds the whole loop, before the profile (`before`) and again after it (`after`: a drift
    is said). A perf cell hands its own mean over (`measured_ms`): nothing is timed."""

    def __init__(self, rt, x: np.ndarray, o: ProfileOptions):
        self.rt, self.x, self.o = rt, x, o
        self.before: list[float] = []
        self.inter: list[float] = []
        self.after: list[float] = []
        self.profiled: list[float] = []  # the profiled runs' own wall times (the profiler's cost shows there)
        for _ in range(o.warmup if o.measured_ms is None else 0):
            rt.run(x)

    def _time(self, into: list, n: int) -> None:
        if self.o.measured_ms is not None:
            return
        for _ in range(n):
            t0 = time.perf_counter()
            self.rt.run(self.x)
            into.append((time.perf_counter() - t0) * 1e3)

    def between(self) -> None:
        """After the i-th profiled run: the timed runs spread evenly, --timed-runs in all."""
        i, t, r = len(self.profiled), self.o.timed_runs, self.o.runs
        self._time(self.inter, i * t // r - (i - 1) * t // r)

    def time_before(self) -> None:
        self._time(self.before, self.o.timed_runs)

    def time_after(self) -> None:
        self._time(self.after, max(1, self.o.timed_runs // 2))

    def profiled_run(self, seconds: float) -> None:
        self.profiled.append(seconds * 1e3)

    def result(self) -> tuple:
        """(latency ms, ms timed again after or None, how it was taken, profiled runs' mean ms,
        ms timed before or None). torch's latency is the mean of the runs before and after
        the profile (the profiled runs lie between them)."""
        # means, as the nodes' time per run is a mean: a slow run (other load) weighs alike on both sides
        prof = float(np.mean(self.profiled)) if self.profiled else None
        if self.o.measured_ms is not None:
            return self.o.measured_ms, None, "the latency is the perf cell's mean", prof, None
        if self.inter:
            return (float(np.mean(self.inter)), None,
                    f"mean of {len(self.inter)} un-profiled runs interleaved with the profiled ones", prof, None)
        before = float(np.mean(self.before))
        if not self.after:
            return before, None, f"mean of {len(self.before)} un-profiled runs before the profiled ones", prof, None
        return (float(np.mean(self.before + self.after)), float(np.mean(self.after)),
                f"mean of {len(self.before)} un-profiled runs before the profiled ones and {len(self.after)} after "
                f"them", prof, before)


def kept_in_float(model: str) -> list[str]:
    """The nodes accuracy control kept in float, as the artifact's compile record lists them."""
    from .._io import read_record
    from ..compile.artifacts import record_path

    try:
        rec = read_record(record_path(model)) or {}
    except ClsbenchError:
        return []
    kept = (rec.get("accuracy_control") or {}).get("kept_in_float") or []
    return [str(k) for k in kept] if isinstance(kept, list) else []


# ---------------------------------------------------------------- the float graph's node of a profiled name

_SUFFIX = re.compile(r"(_kernel_time|_token_\d+|_nchwc|/WithoutBiases|/sink_port_\d+|/transpose_[ab]|"
                     r"/fq_(weights|output|input)_\d+)$")
_QDQ = {"QuantizeLinear", "DequantizeLinear", "DynamicQuantizeLinear"}
_ACTIVATIONS = {"Relu", "Clip", "Sigmoid", "HardSigmoid", "HardSwish", "LeakyRelu", "Tanh"}
_FUSES_INTO = {"Conv", "ConvTranspose", "MatMul", "Gemm", "BatchNormalization", "Add"}


def base_name(name: str) -> str:
    """A runtime's node name without the suffixes its graph rewrites add (ORT's `_token_N`,
    `_nchwc`, OpenVINO's `/WithoutBiases`...)."""
    while True:
        stripped = _SUFFIX.sub("", name)
        if stripped == name:
            return name
        name = stripped


def graph_sources(model: str):
    """name -> the float graph's node it maps back to (None: inserted by the runtime), from the
    model's own ONNX graph: a node name or an output tensor's name (ORT names rewritten nodes
    by their output), a Q/DQ node to the float node whose tensor it (de)quantizes, an
    activation fused into the Conv/MatMul before it to that node. Without an ONNX graph (IR,
    .pth): the name less its runtime suffixes."""
    from ..model.files import kind

    if kind(model) != "onnx":
        return base_name
    import onnx

    g = onnx.load(model, load_external_data=False).graph
    # an unnamed node: ONNX Runtime calls it <op_type>_<index>; its label here is its first output tensor
    nodes = {**{f"{n.op_type}_{i}": n for i, n in enumerate(g.node) if not n.name},
             **{n.name: n for n in g.node if n.name}}
    producer = {t: n for n in g.node for t in n.output}
    consumers: dict[str, list] = {}
    for n in g.node:
        for t in n.input:
            consumers.setdefault(t, []).append(n)

    def label(n):
        return n.name or (n.output[0] if n.output else None)

    def upstream(n):
        while n is not None and n.op_type in _QDQ:
            n = producer.get(n.input[0]) if n.input else None
        return n

    def lift(n):
        if n.op_type in _QDQ:
            up = upstream(n)
            if up is None:  # the graph's input quantized: the node it feeds
                while n is not None and n.op_type in _QDQ:
                    n = next(iter(consumers.get(n.output[0], [])), None)
            return lift(up) if up is not None else (label(n) if n is not None else None)
        if n.op_type in _ACTIVATIONS and n.input:
            before = upstream(producer.get(n.input[0]))
            if before is not None and before.op_type in _FUSES_INTO:
                return label(before)
        return label(n)

    def source(name: str):
        b = base_name(name)
        n = nodes.get(b) or producer.get(b)
        return lift(n) if n is not None else None

    return source


# ---------------------------------------------------------------- onnxruntime

_DTYPES = {"float": "fp32", "float16": "fp16", "bfloat16": "bf16", "uint8": "int8", "int8": "int8",
           "double": "fp64", "int32": "int32", "int64": "int64"}


_WEIGHT_INPUT = {"Conv": 1, "FusedConv": 1, "QLinearConv": 3, "ConvInteger": 1}


def conv_shape(op: str, shapes: list) -> str | None:
    """What kind of convolution a node is, from its weight's shape [out, in/groups, kh, kw]:
    "depthwise 3x3", "pointwise 1x1" or "7x7" (None for other ops)."""
    i = _WEIGHT_INPUT.get(op)
    if i is None or len(shapes) <= i:
        return None
    w = next(iter(shapes[i].values()), [])
    if len(w) != 4:
        return None
    kernel = f"{w[2]}x{w[3]}"
    return "pointwise 1x1" if kernel == "1x1" else f"depthwise {kernel}" if w[1] == 1 else kernel


def ort_events(trace: list, skip_runs: int, source) -> list[dict]:
    """The node events of ONNX Runtime's trace (`cat` "Node", `<node>_kernel_time`, `dur` in
    µs) after its first `skip_runs` model runs (the warm-up), one per call."""
    runs = sorted(e["ts"] for e in trace if e.get("cat") == "Session" and e.get("name") == "model_run")
    start = runs[skip_runs] if len(runs) > skip_runs else 0
    out = []
    for e in trace:
        if e.get("cat") != "Node" or not str(e.get("name", "")).endswith("_kernel_time") or e["ts"] < start:
            continue
        args = e.get("args") or {}
        name, op = e["name"][: -len("_kernel_time")], str(args.get("op_name", "?"))
        first = (args.get("input_type_shape") or [{}])[0]
        provider = str(args.get("provider", "")).replace("ExecutionProvider", "")
        out.append({"name": name, "op_type": op, "ms": e["dur"] / 1e3,
                    "shape": conv_shape(op, args.get("input_type_shape") or []),
                    "kernel": f"{provider}:{op}" + (" (NCHWc)" if name.endswith("_nchwc") else ""),
                    "precision": _DTYPES.get(next(iter(first), "?"), next(iter(first), "?")),
                    "source": source(name)})
    return out


def _collect_ort(rt, x: np.ndarray, o: ProfileOptions, timer: _Timer) -> tuple:
    import tempfile

    import onnxruntime as ort

    so = rt.session.get_session_options()  # the backend's own settings, profiling added
    so.enable_profiling = True
    # its threads block after a run instead of spinning: spinning, they took the cores from the
    # backend's un-profiled runs timed right after (~1.5x slower on 2 cores, the coverage understated)
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    with tempfile.TemporaryDirectory(prefix=".profile-", dir=o.output) as tmp:
        so.profile_file_prefix = os.path.join(tmp, "ort")
        sess = ort.InferenceSession(rt.model_path, so, providers=rt.session.get_providers())
        feed = {rt.input_name: x}
        for i in range(o.warmup + o.runs):
            t0 = time.perf_counter()
            sess.run([rt.output_name], feed)
            if i >= o.warmup:
                timer.profiled_run(time.perf_counter() - t0)
                timer.between()
        with open(sess.end_profiling(), encoding="utf-8") as f:
            trace = json.load(f)
    events = ort_events(trace, o.warmup, graph_sources(rt.model_path))
    if not events:
        raise ClsbenchError(f"{rt.model_path}: ONNX Runtime's profile holds no node events")
    return events, {"traceEvents": trace, "displayTimeUnit": "ms",
                    "otherData": {"source": "ONNX Runtime session profiling, passed through",
                                  "warmup_runs": o.warmup, "profiled_runs": o.runs}}, \
        "onnxruntime SessionOptions.enable_profiling (its threads not spinning between runs)"


# ---------------------------------------------------------------- openvino

_OV_PRECISIONS = {"f32": "fp32", "bf16": "bf16", "f16": "fp16", "i8": "int8", "u8": "int8"}


def _collect_ov(rt, x: np.ndarray, o: ProfileOptions, timer: _Timer) -> tuple:
    import openvino as ov

    from ..runtime.backends.openvino import check_executed, executed_precisions

    core = ov.Core()
    model = core.read_model(rt.model_path)
    model.reshape({model.inputs[0].any_name: [rt.batch_size, *rt.input_shape]})
    compiled = core.compile_model(model, "CPU", {**rt.describe()["config"], "PERF_COUNT": True})
    check_executed(rt.precision, executed_precisions(compiled), rt.model_path)
    info = {op.get_friendly_name(): op.get_rt_info() for op in compiled.get_runtime_model().get_ordered_ops()}
    req = compiled.create_infer_request()
    for _ in range(o.warmup):
        req.infer([x])
    source, events, trace, t_start = graph_sources(rt.model_path), [], [], time.perf_counter()
    for i in range(o.runs):
        t0 = time.perf_counter()
        req.infer([x])
        wall = time.perf_counter() - t0
        _ov_run(req.get_profiling_info(), info, source, (events, trace), ((t0 - t_start) * 1e6, wall * 1e6, i))
        timer.profiled_run(wall)
        timer.between()
    return events, {"traceEvents": trace, "displayTimeUnit": "ms",
                    "otherData": {"source": "OpenVINO get_profiling_info() (PERF_COUNT) after each run; each run's "
                                            "executed nodes laid end to end from its start",
                                  "warmup_runs": o.warmup, "profiled_runs": o.runs}}, \
        "openvino PERF_COUNT, get_profiling_info() per run"


def _ov_kind(exec_type: str) -> str | None:
    """A convolution's kind from OpenVINO's exec type: `..._dw_1x1_...` is a 1x1 convolution with
    the next depthwise one fused in (which then has no node of its own)."""
    if "dw_1x1" in exec_type:
        return "1x1 + fused depthwise"
    return "depthwise" if "_dw" in exec_type else "pointwise 1x1" if "1x1" in exec_type else None


def _ov_run(infos, rt_info: dict, source, out: tuple, at: tuple) -> None:
    """One run's counters: its executed nodes as events, and as Trace Events laid end to end
    from the run's start (`at`: start µs, wall µs, run index)."""
    import openvino as ov

    events, trace = out
    ts, wall, i = at
    trace.append({"name": f"run {i}", "cat": "run", "ph": "X", "ts": ts, "dur": wall, "pid": 1, "tid": 0})
    for p in infos:
        if p.status != ov.ProfilingInfo.Status.EXECUTED:
            continue
        us = p.real_time.total_seconds() * 1e6
        ri = rt_info.get(p.node_name, {})
        originals = [s for s in (ri["originalLayersNames"].astype(str).split(",")
                                 if "originalLayersNames" in ri else []) if s]
        prec = ri["runtimePrecision"].astype(str) if "runtimePrecision" in ri else "?"
        # a node OpenVINO inserted (a Reorder between layouts or precisions) fuses no layer of the model
        src = (source(p.node_name) or next((s for s in map(source, originals) if s), None)) if originals else None
        kind = _ov_kind(p.exec_type)
        events.append({"name": p.node_name, "op_type": p.node_type, "kernel": p.exec_type, "shape": kind,
                       "precision": _OV_PRECISIONS.get(prec, prec), "ms": us / 1e3, "source": src,
                       "originals": originals})
        trace.append({"name": p.node_name, "cat": p.node_type, "ph": "X", "ts": ts, "dur": us, "pid": 1, "tid": 1,
                      "args": {"exec_type": p.exec_type, "cpu_time_us": p.cpu_time.total_seconds() * 1e6,
                               "run": i}})
        ts += us


# ---------------------------------------------------------------- torch

def _collect_torch(rt, x: np.ndarray, o: ProfileOptions, timer: _Timer) -> tuple:
    import tempfile

    from torch.profiler import ProfilerActivity, profile

    # kineto's own lines ("USDT: profiler_start", "ERROR: gpuGetDeviceCount failed" on a CPU) are no one's
    # error here; read when the profiler first starts, so a setting of the user's own stays
    os.environ.setdefault("KINETO_LOG_LEVEL", "6")
    timer.time_before()
    hooks = _module_marks(rt.net)
    try:
        for _ in range(o.warmup):
            rt.run(x)
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            for _ in range(o.runs):
                t0 = time.perf_counter()
                rt.run(x)
                timer.profiled_run(time.perf_counter() - t0)
    finally:
        for h in hooks:
            h.remove()
    timer.time_after()
    events = []
    for ev in prof.events():
        if not ev.name.startswith("module::"):
            continue
        _, name, cls = ev.name.split("::", 2)
        events.append({"name": name, "op_type": cls, "kernel": _heaviest_op(ev), "precision": rt.precision,
                       "ms": ev.cpu_time_total / 1e3, "source": name})
    if not events:
        raise ClsbenchError(f"{rt.model_path}: torch.profiler recorded no module")
    with tempfile.TemporaryDirectory(prefix=".profile-", dir=o.output) as tmp:
        prof.export_chrome_trace(os.path.join(tmp, "trace.json"))
        with open(os.path.join(tmp, "trace.json"), encoding="utf-8") as f:
            trace = json.load(f)
    trace = trace if isinstance(trace, dict) else {"traceEvents": trace}
    trace.setdefault("otherData", {}).update(source="torch.profiler export_chrome_trace, passed through")
    return events, trace, "torch.profiler (CPU), each leaf module a record_function"


def _module_marks(net) -> list:
    """Forward hooks that wrap each leaf module's call in a record_function named
    module::<path>::<class>, so the profile has the model's own node names."""
    from torch.autograd.profiler import record_function

    stack, hooks = [], []
    for name, m in net.named_modules():
        if not name or any(True for _ in m.children()):
            continue

        def pre(mod, _inp, name=name):
            rf = record_function(f"module::{name}::{type(mod).__name__}")
            rf.__enter__()
            stack.append(rf)

        def post(_mod, _inp, _out):
            stack.pop().__exit__(None, None, None)

        hooks += [m.register_forward_pre_hook(pre), m.register_forward_hook(post)]
    return hooks


def _heaviest_op(ev) -> str:
    """The op that did a module's work: the one under its mark with the most self time
    (aten::conv2d → … → aten::mkldnn_convolution, not its helpers)."""
    best, todo = None, list(ev.cpu_children)
    while todo:
        c = todo.pop()
        if best is None or c.self_cpu_time_total > best.self_cpu_time_total:
            best = c
        todo += c.cpu_children
    return best.name if best is not None else "?"


COLLECTORS = {"onnxruntime": _collect_ort, "openvino": _collect_ov, "torch": _collect_torch}


def profile_cells(configs: list, rows: list[dict], out: str, timing) -> None:
    """`perf --profile`: one profile per config × batch cell, after the whole sweep was timed
    (never inside a timed run), in out/profiles/<backend>-<precision>-bs<N>/; its coverage
    set against the cell's own mean latency. Each row gets the profile's path."""
    by = {(c.backend, c.precision): c for c in configs}
    for row in rows:
        cfg = by.get((row["backend"], row["precision"]))
        lat = row.get("latency_ms") or {}
        if cfg is None or row["input"] != "random normal":
            continue
        name = f"{cfg.backend}-{cfg.precision}-bs{row['batch_size']}"
        o = ProfileOptions(output=os.path.join(out, "profiles", name), backend=cfg.backend, precision=cfg.precision,
                           batch_size=row["batch_size"], threads=timing.threads, arch=dict(cfg.options).get("arch"),
                           warmup=max(1, timing.warmup), measured_ms=lat.get("mean"),
                           timed_runs=max(1, int(row.get("iterations") or 1)))  # the runs the cell's mean is of
        log.info(f"perf --profile: {name}")
        profile_model(cfg.model, o)
        row["profile"] = f"profiles/{name}/profile.json"
