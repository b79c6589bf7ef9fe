"""OpenVINO on the CPU: ONNX or IR (.xml) models, fp32 / bf16 / int8 (a quantized IR)."""
from __future__ import annotations

import os
from collections import Counter

import numpy as np

from ... import ClsbenchError
from . import Backend, check_precision_supported, default_threads

# OpenVINO's CPU plugin runs bf16 by default on CPUs with AMX/AVX512-BF16: fp32 must be asked for.
_HINTS = {"fp32": "f32", "bf16": "bf16", "fp16": "f16", "int8": "f32"}


HINTS = ("latency", "throughput")
# execution-graph nodes that compute nothing (their runtime precision is the data's, not the math's)
_NOT_COMPUTE = {"Input", "Parameter", "Output", "Result", "Const", "Constant"}
_FLOAT_LOW = {"bf16", "f16"}  # reduced float precisions of the exec graph (runtimePrecision)
_INT = {"i8", "u8"}


def executed_precisions(compiled) -> dict:
    """What the compiled model runs, read back from OpenVINO: its INFERENCE_PRECISION_HINT
    (what the plugin settled on, not what was asked) and the count of compute nodes of its
    execution graph per runtime precision (rt_info "runtimePrecision": f32, bf16, i8, u8...)."""
    counts: Counter = Counter()
    for op in compiled.get_runtime_model().get_ordered_ops():
        info = op.get_rt_info()
        kind = info["layerType"].astype(str) if "layerType" in info else op.get_type_name()
        if kind not in _NOT_COMPUTE:
            counts[info["runtimePrecision"].astype(str) if "runtimePrecision" in info else "?"] += 1
    hint = compiled.get_property("INFERENCE_PRECISION_HINT")
    return {"inference_precision_hint": hint.to_string() if hasattr(hint, "to_string") else str(hint),
            "runtime_precisions": dict(sorted(counts.items()))}


def check_executed(precision: str, executed: dict, model_path: str) -> None:
    """Refuses a model whose execution graph does not run the precision it will be recorded
    as (a request OpenVINO quietly did not honour)."""
    ran = {p for p, n in executed["runtime_precisions"].items() if n}
    hint = executed["inference_precision_hint"]
    nodes = ", ".join(f"{p}: {n}" for p, n in executed["runtime_precisions"].items())
    if precision == "bf16" and (hint != "bf16" or "bf16" not in ran):
        why = "no node of its execution graph runs in bf16"
    elif precision in ("fp32", "int8") and ran & _FLOAT_LOW:
        why = f"nodes of its execution graph run in {', '.join(sorted(ran & _FLOAT_LOW))}"
    elif precision == "int8" and not ran & _INT:
        why = "no node of its execution graph runs in i8/u8"
    else:
        return
    raise ClsbenchError(f"{model_path}: openvino:{precision} asked, but {why} (nodes per runtime precision: "
                        f"{nodes}; INFERENCE_PRECISION_HINT {hint}); clsbench does not record a precision "
                        f"that did not run")


class OpenVinoBackend(Backend):
    """`hint="latency"` (default): one synchronous request on all threads, the execution
    model of the other backends. `hint="throughput"`: OpenVINO's THROUGHPUT hint (several
    streams sharing the threads) and `run_many` keeps that many requests in flight
    (AsyncInferQueue), results returned in order; the stream and request counts are in
    `describe()`."""

    name = "openvino"

    def __init__(self, model_path: str, *, hint: str = "latency", **kw):
        super().__init__(model_path, **kw)
        import openvino as ov

        if hint not in HINTS:
            raise ClsbenchError(f"openvino backend: hint {hint!r} is not one of {', '.join(HINTS)}")
        self.hint = hint
        if self.precision not in _HINTS:
            raise ClsbenchError(f"openvino backend: precision {self.precision!r} not in {', '.join(_HINTS)}")
        check_precision_supported(self.name, self.precision)  # before any work: what to type instead
        if not os.path.isfile(model_path):
            raise ClsbenchError(f"{model_path}: model file not found")
        self.threads = self.threads or default_threads()
        core = ov.Core()
        try:
            model = core.read_model(model_path)
        except Exception as e:
            raise ClsbenchError(f"{model_path}: OpenVINO cannot read it ({str(e).splitlines()[0]})") from None
        if len(model.inputs) != 1 or len(model.outputs) != 1:
            raise ClsbenchError(f"{model_path}: {len(model.inputs)} inputs and {len(model.outputs)} outputs; "
                                f"clsbench runs classifiers with one input and one output (the logits)")
        shape = model.inputs[0].get_partial_shape()
        if shape.rank.get_length() != 4 or not shape[1].is_static or shape[1].get_length() != 3:
            raise ClsbenchError(f"{model_path}: input shape {shape}; expected [batch, 3, H, W]")
        if shape[0].is_static and shape[0].get_length() != self.batch_size:
            raise ClsbenchError(f"{model_path}: fixed batch size {shape[0].get_length()} cannot run "
                                f"batch size {self.batch_size}")
        h, w = shape[2].get_length(), shape[3].get_length()
        self.input_dtype = np.uint8 if model.inputs[0].get_element_type() == ov.Type.u8 else np.float32
        model.reshape({model.inputs[0].any_name: [self.batch_size, 3, h, w]})  # static: faster kernels
        self._shape = (3, h, w)
        # latency: one synchronous request on all threads, the same execution model as the
        # other backends; throughput: the plugin picks the streams for these threads
        config = {"INFERENCE_PRECISION_HINT": _HINTS[self.precision], "INFERENCE_NUM_THREADS": self.threads,
                  **({"PERFORMANCE_HINT": "LATENCY", "NUM_STREAMS": 1} if hint == "latency"
                     else {"PERFORMANCE_HINT": "THROUGHPUT"})}
        if self.threads < (os.cpu_count() or 1):
            # several processes share the machine (streaming, Ray actors): pinned, each would
            # put its threads on the same first cores
            config["ENABLE_CPU_PINNING"] = False
        self.compiled = core.compile_model(model, "CPU", config)
        self.executed = executed_precisions(self.compiled)
        check_executed(self.precision, self.executed, model_path)
        self.request = self.compiled.create_infer_request()
        self._config = config
        self.streams = int(self.compiled.get_property("NUM_STREAMS"))
        self.requests = int(self.compiled.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS"))
        self._version = ov.__version__

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return self._shape

    def run(self, batch: np.ndarray) -> np.ndarray:
        self.request.infer([batch])
        return self.request.get_output_tensor(0).data.copy()

    def run_many(self, batches):
        """float32 batches -> logits, in order, `self.requests` in flight (each input is
        copied when submitted, so the caller may reuse its buffer)."""
        import openvino as ov

        queue = ov.AsyncInferQueue(self.compiled, self.requests)
        done: dict = {}
        errors: list = []

        def finished(request, i):
            try:
                done[i] = request.get_output_tensor(0).data.copy()
            except Exception as e:  # noqa: BLE001 - re-raised in the caller's thread
                errors.append(e)

        queue.set_callback(finished)
        nxt = 0
        try:
            for i, b in enumerate(batches):
                queue.start_async({0: b}, i, share_inputs=False)  # blocks while all requests are busy
                while nxt in done:
                    yield done.pop(nxt)
                    nxt += 1
        finally:
            queue.wait_all()  # also when the caller stops early: no request outlives the queue
            del queue  # now, not at interpreter exit (OpenVINO aborts when its threads outlive Python)
        if errors:
            raise ClsbenchError(f"{self.model_path}: OpenVINO request failed ({errors[0]})")
        while nxt in done:
            yield done.pop(nxt)
            nxt += 1

    def describe(self) -> dict:
        return {"backend": self.name, "runtime": "openvino", "version": self._version, "device": "cpu",
                "precision": self.precision, "precision_executed": self.executed, "threads": self.threads,
                "config": dict(self._config),
                "hint": self.hint, "streams": self.streams, "requests_in_flight": self.requests if
                self.hint == "throughput" else 1, "model": os.path.abspath(self.model_path)}
