"""NVIDIA GPU through PyTorch: fp32/fp16/bf16, channels-last, one CUDA graph per batch size,
optionally `torch.compile` (inductor) under the graph; uint8 input normalized on the GPU.

Modes (`mode=`): "eager" runs the module; "graph" (default) captures the whole forward pass
in one CUDA graph and replays it with one launch, which is what small-batch MnasNet needs
(kernel-launch overhead dominates its few, small kernels); "compile" runs inductor's kernels
under the same graph (its compile time is in `describe()["compile_s"]`).

Input: `run` takes float32 NCHW like every backend; `pipelined` takes batches of uint8 crops
(150 KB per 224x224 image instead of 602 KB of float32), uploads them from pinned memory and
normalizes on the GPU with the same float32 operations, in the same order, as
`preprocess.normalize_batch` (/255, -mean, /std with tensor operands, so no reciprocal is
substituted), overlapping the next batch's upload with this one's compute on a second
stream; `run_device_uint8` takes crops already on the GPU (GPU decode). The device-generic
parts also run on the CPU (`device="cpu"`, eager), which is how the tests check them on a
machine without a GPU.
"""
from __future__ import annotations

import time

import numpy as np

from ... import ClsbenchError
from .torch import TorchBackend

MODES = ("eager", "graph", "compile")


class CudaBackend(TorchBackend):
    name = "cuda"
    device = "cuda"
    feeds_uint8 = True  # stream.py hands it uint8 crops, not normalized float32

    def __init__(self, model_path: str, *, mode: str = "graph", device: str | None = None, **kw):
        import torch

        if mode not in MODES:
            raise ClsbenchError(f"cuda backend: mode {mode!r} is not one of {', '.join(MODES)}")
        self.device = device or self.device
        if self.device == "cuda" and not torch.cuda.is_available():
            raise ClsbenchError("cuda backend: no CUDA device is visible to PyTorch "
                                "(torch.cuda.is_available() is False)")
        if self.device != "cuda" and mode != "eager":
            raise ClsbenchError(f"cuda backend: mode {mode!r} needs a CUDA device")
        self.mode = mode
        kw.setdefault("precision", "fp16")
        super().__init__(model_path, channels_last=True, **kw)

    # -- setup -------------------------------------------------------------------------
    def _prepare(self) -> None:
        torch = self.torch
        self.dev = torch.device(self.device, self.device_id) if self.device == "cuda" else torch.device("cpu")
        self.dtype = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[self.precision]
        if self.device == "cuda":
            torch.backends.cudnn.benchmark = True
            torch.backends.cuda.matmul.allow_tf32 = False  # fp32 means fp32
            torch.backends.cudnn.allow_tf32 = False
        self.net = self.net.to(self.dev, dtype=self.dtype).to(memory_format=torch.channels_last).eval()
        pp = self.spec.preprocessing
        c = pp.crop
        shape = (1, 3, 1, 1)
        self.k255 = torch.full(shape, 255.0, device=self.dev)
        self.mean = torch.tensor(pp.mean, dtype=torch.float32, device=self.dev).reshape(shape)
        self.std = torch.tensor(pp.std, dtype=torch.float32, device=self.dev).reshape(shape)
        pin = self.device == "cuda"
        self.host_f32 = torch.empty((self.batch_size, 3, c, c), dtype=torch.float32, pin_memory=pin)
        self.host_u8 = [torch.empty((self.batch_size, 3, c, c), dtype=torch.uint8, pin_memory=pin)
                        for _ in range(2)]
        self.in_f32 = torch.zeros((self.batch_size, 3, c, c), device=self.dev)
        self.in_u8 = torch.zeros((self.batch_size, 3, c, c), dtype=torch.uint8, device=self.dev)
        self.staged = [torch.empty_like(self.in_u8) for _ in range(2)]
        self.host_out: list = [None, None]
        self.dev_out = None
        self.copy_stream = torch.cuda.Stream(self.dev) if self.device == "cuda" else None
        self.compile_s = None
        self.body = self.net
        if self.mode == "compile":
            t0 = time.perf_counter()
            self.body = torch.compile(self.net, dynamic=False)
            with torch.inference_mode():
                self.body(self._cast(self.in_f32))  # compiles for this batch size
            torch.cuda.synchronize(self.dev)
            self.compile_s = time.perf_counter() - t0
        self._graphs: dict[str, tuple] = {}

    def set_normalization(self, pp) -> None:
        """Use `pp`'s mean and std (a preset given by hand); in place, so captured graphs see it."""
        torch = self.torch
        self.mean.copy_(torch.tensor(pp.mean, dtype=torch.float32).reshape(self.mean.shape))
        self.std.copy_(torch.tensor(pp.std, dtype=torch.float32).reshape(self.std.shape))

    def normalize(self, u8):
        """uint8 NCHW on the device -> float32, exactly as preprocess.normalize_batch."""
        torch = self.torch
        return torch.div(torch.sub(torch.div(u8.float(), self.k255), self.mean), self.std)

    def _cast(self, x):
        return x.to(self.dtype).contiguous(memory_format=self.torch.channels_last)

    def _forward(self, source: str):
        x = self.normalize(self.in_u8) if source == "u8" else self.in_f32
        return self.body(self._cast(x))

    def _runner(self, source: str):
        """A callable running the model on the static input `source` ("u8" or "f32"),
        returning the static output; graphs are captured on first use."""
        if source in self._graphs:
            return self._graphs[source]
        torch = self.torch
        if self.mode == "eager":
            fn = (lambda: self._forward(source))
        else:
            side = torch.cuda.Stream(self.dev)
            side.wait_stream(torch.cuda.current_stream(self.dev))
            with torch.inference_mode(), torch.cuda.stream(side):
                for _ in range(3):  # warm-up: cuDNN picks its kernels before capture
                    self._forward(source)
            torch.cuda.current_stream(self.dev).wait_stream(side)
            g = torch.cuda.CUDAGraph()
            with torch.inference_mode(), torch.cuda.graph(g):
                out = self._forward(source)
            fn = (lambda: (g.replay(), out)[1])
            self._graphs[source] = (fn, g)
            return self._graphs[source]
        self._graphs[source] = (fn, None)
        return self._graphs[source]

    # -- running -----------------------------------------------------------------------
    def _check(self, batch: np.ndarray, dtype) -> None:
        if batch.shape != (self.batch_size, *self._shape) or batch.dtype != dtype:
            raise ClsbenchError(f"cuda backend: built for {dtype.__name__} {(self.batch_size, *self._shape)}, "
                                f"got {batch.dtype} {batch.shape}")

    def run(self, batch: np.ndarray) -> np.ndarray:
        self._check(batch, np.float32)
        torch = self.torch
        self.host_f32.numpy()[...] = batch
        with torch.inference_mode():
            self.in_f32.copy_(self.host_f32, non_blocking=True)
            out = self._runner("f32")[0]()
            return out.float().cpu().numpy()  # .cpu() synchronises

    def run_device_uint8(self, u8) -> np.ndarray:
        """uint8 crops already on the device (GPU decode) -> float32 logits on the host.
        Synchronous on purpose: torchvision's GPU JPEG decoder writes on its own stream, so
        the next batch must not be decoded while this one's input may still be read
        (see feeder._gpu_results)."""
        torch = self.torch
        with torch.inference_mode():
            self.in_u8.copy_(u8)
            out = self._runner("u8")[0]()
            self._to_host(out, 0)
        event = None
        if self.device == "cuda":
            event = torch.cuda.Event()
            event.record()
        return self._collect(self.host_out[0], event)

    def _to_host(self, out, s: int) -> None:
        """Logits -> pinned host slot s, asynchronously. Converted to float32 on the device
        into a persistent buffer first: a converting non-blocking copy goes through a host
        temporary, and a transient device buffer could be reused by another stream."""
        torch = self.torch
        cuda = self.device == "cuda"
        if self.host_out[s] is None:
            self.host_out[s] = torch.empty(out.shape, dtype=torch.float32, pin_memory=cuda)
        if self.dev_out is None:  # one, for the backend's life: never freed while a copy reads it
            self.dev_out = torch.empty(out.shape, dtype=torch.float32, device=self.dev)
        self.dev_out.copy_(out)
        self.host_out[s].copy_(self.dev_out, non_blocking=cuda)

    def pipelined(self, batches):
        """uint8 batches -> float32 logits, in order; batch i+1's upload (copy stream)
        overlaps batch i's compute, and results are read one batch behind."""
        torch = self.torch
        cuda = self.device == "cuda"
        run = self._runner("u8")[0]
        done: list = [None, None]
        pending = None
        for i, b in enumerate(batches):
            self._check(b, np.uint8)
            s = i % 2
            if done[s] is not None:
                done[s].synchronize()  # slot s's upload, compute and result copy are finished
            self.host_u8[s].numpy()[...] = b
            with torch.inference_mode():
                if cuda:
                    with torch.cuda.stream(self.copy_stream):  # overlaps the compute in flight
                        self.staged[s].copy_(self.host_u8[s], non_blocking=True)
                    torch.cuda.current_stream(self.dev).wait_stream(self.copy_stream)
                else:
                    self.staged[s].copy_(self.host_u8[s])
                self.in_u8.copy_(self.staged[s])
                out = run()
                self._to_host(out, s)
                if cuda:
                    done[s] = torch.cuda.Event()
                    done[s].record()
            if pending is not None:
                yield self._collect(*pending)
            pending = (self.host_out[s], done[s])
        if pending is not None:
            yield self._collect(*pending)

    @staticmethod
    def _collect(out, event) -> np.ndarray:
        if event is not None:
            event.synchronize()
        return out.numpy().copy()

    def describe(self) -> dict:
        d = super().describe()
        d.update(mode=self.mode, device=str(self.dev), input="uint8 or float32, normalized on the device",
                 compile_s=self.compile_s)
        if self.device == "cuda":
            torch = self.torch
            d.update(gpu=torch.cuda.get_device_name(self.dev), cuda=torch.version.cuda,
                     cudnn=torch.backends.cudnn.version(), cuda_graph=self.mode != "eager")
        return d
