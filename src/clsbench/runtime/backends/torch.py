"""PyTorch eager on the CPU: the reference every other backend is compared with.

The model is torchvision's architecture with a state-dict .pth (or realistic random
weights when given none); fp32, or bf16 through autocast.
"""
from __future__ import annotations

import os

import numpy as np

from ... import ClsbenchError
from . import Backend, default_threads


class TorchBackend(Backend):
    name = "torch"
    device = "cpu"

    def __init__(self, model_path: str, *, arch: str, channels_last: bool = False, preprocessing=None, **kw):
        super().__init__(model_path, **kw)
        import torch

        from ...model.weights import build_model, load_state_dict
        from ...model.table import get_model

        if self.precision not in ("fp32", "bf16", "fp16"):
            raise ClsbenchError(f"torch backend: precision {self.precision!r} not supported")
        if not model_path.endswith((".pth", ".pt")):
            raise ClsbenchError(f"{model_path}: the torch backend runs torchvision weights (.pth), "
                                f"not {os.path.splitext(model_path)[1] or 'this file'}")
        self.spec = get_model(arch)
        if preprocessing is not None:  # the run's preset (flags on top of the model's): its crop, mean, std
            import dataclasses

            from ...model.table import Preprocessing

            if isinstance(preprocessing, dict):
                preprocessing = Preprocessing.from_dict(preprocessing)
            self.spec = dataclasses.replace(self.spec, preprocessing=preprocessing)
        self.threads = self.threads or default_threads()
        if self.device == "cpu":
            torch.set_num_threads(self.threads)
        self.torch = torch
        self.net = build_model(self.spec, load_state_dict(model_path), source=model_path)
        self.channels_last = channels_last
        self._prepare()
        c = self.spec.preprocessing.crop
        self._shape = (3, c, c)

    def _prepare(self) -> None:
        if self.channels_last:
            self.net = self.net.to(memory_format=self.torch.channels_last)

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return self._shape

    def run(self, batch: np.ndarray) -> np.ndarray:
        torch = self.torch
        # the layout recorded is the one computed: a batch of decoded images is a channels-last
        # view (HWC transposed) and one read from .bin files is NCHW, and PyTorch follows the
        # input's strides (benchmarks/layouts.py, MnasNet on 15 photos, one core: fp32 0.34 s
        # channels-last, 0.49 NCHW; bf16 8.18, 6.13)
        fmt = torch.channels_last if self.channels_last else torch.contiguous_format
        x = torch.from_numpy(batch).contiguous(memory_format=fmt)
        with torch.inference_mode():
            if self.precision == "fp32":
                y = self.net(x)
            else:
                dtype = torch.bfloat16 if self.precision == "bf16" else torch.float16
                with torch.autocast("cpu", dtype=dtype):
                    y = self.net(x)
        return y.float().numpy()

    def describe(self) -> dict:
        return {"backend": self.name, "runtime": "torch", "version": self.torch.__version__,
                "device": self.device, "precision": self.precision, "threads": self.threads,
                "mode": "eager", "channels_last": self.channels_last,
                "model": os.path.abspath(self.model_path)}
