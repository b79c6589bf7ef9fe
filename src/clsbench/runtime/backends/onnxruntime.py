"""ONNX Runtime on the CPU: the embedded default backend."""
from __future__ import annotations

import os

import numpy as np

from ... import ClsbenchError
from . import Backend, default_threads


class OnnxRuntimeBackend(Backend):
    name = "onnxruntime"

    def __init__(self, model_path: str, **kw):
        super().__init__(model_path, **kw)
        import onnxruntime as ort

        if not os.path.isfile(model_path):
            raise ClsbenchError(f"{model_path}: model file not found")
        self.threads = self.threads or default_threads()
        so = ort.SessionOptions()
        so.intra_op_num_threads = self.threads
        so.inter_op_num_threads = 1
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        so.log_severity_level = 3
        try:
            self.session = ort.InferenceSession(model_path, so, providers=self.providers(ort))
        except Exception as e:  # InvalidProtobuf, Fail, NotImplemented...
            raise ClsbenchError(f"{model_path}: onnxruntime cannot load it as an ONNX model ({e})") from None
        inputs, outputs = self.session.get_inputs(), self.session.get_outputs()
        if len(inputs) != 1:
            raise ClsbenchError(f"{model_path}: expected one input, found {[i.name for i in inputs]}")
        if len(outputs) != 1:
            # the vendor tool would write <stem>_1, _2, ...; the guide's eval reads only one
            # score vector per image, so a second output would be silently dropped: refuse
            raise ClsbenchError(f"{model_path}: {len(outputs)} outputs {[o.name for o in outputs]}; "
                                f"clsbench runs classifiers with one output (the logits)")
        inp = inputs[0]
        shape = inp.shape
        if len(shape) != 4 or shape[1] != 3 or inp.type not in ("tensor(float)", "tensor(uint8)"):
            raise ClsbenchError(f"{model_path}: input {inp.name!r} is {inp.type} {shape}; "
                                f"expected float32 (or uint8, normalization folded in) [batch, 3, H, W]")
        self.input_dtype = np.uint8 if inp.type == "tensor(uint8)" else np.float32
        if isinstance(shape[0], int) and shape[0] != self.batch_size:
            raise ClsbenchError(f"{model_path}: fixed batch size {shape[0]} cannot run batch size "
                                f"{self.batch_size}; export with a dynamic batch axis")
        if not all(isinstance(d, int) for d in shape[1:]):
            raise ClsbenchError(f"{model_path}: input {inp.name!r} has symbolic spatial dims {shape}")
        # a symbolic batch axis: one session runs any batch as is (LoadGen's Server batcher
        # uses this rather than a session per size, whose thread pools would spin on each other)
        self.any_batch = not isinstance(shape[0], int)
        self.input_name = inp.name
        self.output_name = outputs[0].name
        self._shape = tuple(shape[1:])
        self._version = ort.__version__

    def providers(self, ort) -> list:
        """ONNX Runtime execution providers, in order (a subclass puts an accelerator first)."""
        return ["CPUExecutionProvider"]

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return self._shape

    def run(self, batch: np.ndarray) -> np.ndarray:
        return self.session.run([self.output_name], {self.input_name: batch})[0]

    def describe(self) -> dict:
        return {"backend": self.name, "runtime": "onnxruntime", "version": self._version,
                "provider": "CPUExecutionProvider", "device": "cpu", "precision": self.precision,
                "threads": self.threads, "model": os.path.abspath(self.model_path),
                "input": self.input_name, "output": self.output_name}
