"""NVIDIA GPU through PyTorch: fp16, channels-last and a captured CUDA graph per batch size.

The graph replays the whole forward pass with one launch, which is what small-batch
MnasNet needs on a fast GPU (kernel-launch overhead dominates its few, small kernels).
Inputs are copied into a pinned host buffer, then to a static device tensor the graph
reads; outputs come back the same way. Timing syncs the device, so a figure is real work.
"""
from __future__ import annotations

import numpy as np

from .. import ClsbenchError
from .torch import TorchBackend


class CudaBackend(TorchBackend):
    name = "cuda"
    device = "cuda"

    def __init__(self, model_path: str, *, use_graph: bool = True, **kw):
        import torch

        if not torch.cuda.is_available():
            raise ClsbenchError("cuda backend: no CUDA device is visible to PyTorch "
                                "(torch.cuda.is_available() is False)")
        self.use_graph = use_graph
        kw.setdefault("precision", "fp16")
        super().__init__(model_path, channels_last=True, **kw)

    def _prepare(self) -> None:
        torch = self.torch
        dev = torch.device("cuda", self.device_id)
        torch.backends.cudnn.benchmark = True
        dtype = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[self.precision]
        self.dtype = dtype
        self.net = self.net.to(dev, dtype=dtype).to(memory_format=torch.channels_last)
        c = self.spec.preprocessing.crop
        self.static_in = torch.zeros((self.batch_size, 3, c, c), device=dev, dtype=dtype
                                     ).contiguous(memory_format=torch.channels_last)
        self.host_in = torch.empty((self.batch_size, 3, c, c), dtype=torch.float32).pin_memory()
        with torch.inference_mode():
            s = torch.cuda.Stream(dev)
            s.wait_stream(torch.cuda.current_stream(dev))
            with torch.cuda.stream(s):
                for _ in range(3):  # warm-up: cuDNN picks its kernels before capture
                    self.static_out = self.net(self.static_in)
            torch.cuda.current_stream(dev).wait_stream(s)
            self.graph = None
            if self.use_graph:
                self.graph = torch.cuda.CUDAGraph()
                with torch.cuda.graph(self.graph):
                    self.static_out = self.net(self.static_in)
        torch.cuda.synchronize(dev)
        self.dev = dev

    def run(self, batch: np.ndarray) -> np.ndarray:
        torch = self.torch
        if batch.shape[0] != self.batch_size:
            raise ClsbenchError(f"cuda backend: built for batch {self.batch_size}, got {batch.shape[0]}")
        self.host_in.numpy()[...] = batch
        with torch.inference_mode():
            self.static_in.copy_(self.host_in.to(self.dev, non_blocking=True))
            if self.graph is not None:
                self.graph.replay()
                out = self.static_out
            else:
                out = self.net(self.static_in)
            return out.float().cpu().numpy()  # .cpu() synchronises

    def describe(self) -> dict:
        d = super().describe()
        torch = self.torch
        d.update(device=f"cuda:{self.device_id}", gpu=torch.cuda.get_device_name(self.dev),
                 cuda=torch.version.cuda, cudnn=torch.backends.cudnn.version(),
                 cuda_graph=self.graph is not None)
        return d
