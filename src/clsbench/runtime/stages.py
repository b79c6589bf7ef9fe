"""The per-batch step every engine runs: pad → run → check → write.

Offline inference (`infer`), streaming (`stream`) and compile's parity runs all go through
`BatchStep`, so padding, the output-shape and finiteness checks and the writing of outputs
are defined once.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from .. import ClsbenchError


@dataclass(frozen=True)
class Job:
    """What each worker of a streaming engine (stream.py's processes, Ray's actors) builds:
    the model on its runtime, the batch size and the exact preprocessing."""

    model: str
    backend: str
    precision: str
    batch_size: int
    pp: object  # models.Preprocessing
    threads: int | None = None
    options: dict = field(default_factory=dict)  # the backend's options (plan.TargetPlan.options)

    def open(self, threads: int | None = None):
        """The backend and its warmed-up BatchStep."""
        from .backends import open_backend

        rt = open_backend(self.backend, self.model, batch_size=self.batch_size, threads=threads or self.threads,
                          precision=self.precision, **self.options)
        step = BatchStep(rt, self.batch_size)
        step.warm_up()  # not timed
        return rt, step


class BatchStep:
    """Runs `rt` on fixed-size batches; a partial batch is padded with its last sample and
    the padding's outputs are dropped."""

    def __init__(self, rt, batch_size: int, num_classes: int | None = None):
        self.rt, self.batch_size, self.num_classes = rt, batch_size, num_classes

    def warm_up(self) -> int:
        """One untimed run (it allocates and plans); returns the number of classes."""
        probe = self.rt.run(np.zeros((self.batch_size, *self.rt.input_shape), self.rt.input_dtype))
        self.num_classes = int(probe.shape[-1])
        return self.num_classes

    def __call__(self, batch: np.ndarray, n: int, sources) -> tuple[np.ndarray, float]:
        """batch[:n] holds real samples (`sources` names them, for errors); returns their
        logits and the compute milliseconds of the run."""
        batch[n:] = batch[n - 1]
        t0 = time.perf_counter()
        logits = self.rt.run(batch)
        ms = (time.perf_counter() - t0) * 1e3
        return self.check(logits, n, sources), ms

    def check(self, logits: np.ndarray, n: int, sources) -> np.ndarray:
        """The output shape and finiteness checks; returns the n real samples' logits."""
        want = (self.batch_size, self.num_classes) if self.num_classes else None
        if logits.ndim != 2 or logits.shape[0] != self.batch_size or (want and logits.shape != want):
            raise ClsbenchError(f"{self.rt.model_path}: output shape {logits.shape}, expected "
                                f"({self.batch_size}, {self.num_classes or 'classes'})")
        logits = logits[:n]
        bad = ~np.isfinite(logits).all(axis=1)
        if bad.any():
            raise ClsbenchError(f"{self.rt.model_path}: NaN or infinite output for "
                                f"{sources[int(np.argmax(bad))]}")
        return logits


def run_all(rt, x: np.ndarray, batch_size: int) -> np.ndarray:
    """Logits of every sample of x, in fixed-size (padded) batches."""
    step = BatchStep(rt, batch_size)
    buf = np.empty((batch_size, *x.shape[1:]), x.dtype)
    outs = []
    for i in range(0, len(x), batch_size):
        n = min(batch_size, len(x) - i)
        buf[:n] = x[i:i + n]
        outs.append(step(buf, n, [f"sample {j}" for j in range(i, i + n)])[0].copy())
    return np.concatenate(outs)
