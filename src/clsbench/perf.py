"""Timing records: the vendor perf file (formats.md §5), latency statistics, environment.

Every number written here carries the record of what produced it (backend and version,
precision, batch size, threads, CPU model), so a figure can be traced and reproduced.
"""
from __future__ import annotations

import os
import platform
import re
from dataclasses import dataclass

import numpy as np

from . import __version__


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
    import numpy

    env = {"clsbench": __version__, "python": platform.python_version(), "numpy": numpy.__version__,
           "platform": platform.platform(), "cpu": cpu_model(), "logical_cpus": os.cpu_count()}
    try:
        import onnxruntime

        env["onnxruntime"] = onnxruntime.__version__
    except ImportError:
        pass
    return env


def latency_stats(ms: list[float] | np.ndarray) -> dict:
    a = np.asarray(ms, dtype=np.float64)
    if a.size == 0:
        return {}
    return {"count": int(a.size), "min": float(a.min()), "mean": float(a.mean()),
            "p50": float(np.percentile(a, 50)), "p90": float(np.percentile(a, 90)),
            "p99": float(np.percentile(a, 99)), "max": float(a.max())}


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


def parse_perf_file(text: str) -> list[str]:
    """The model zoo's own parser rule; index 7 is Interface throughputRate."""
    text = text.replace("\n", ",") + ","
    return [m.strip() for m in re.findall(r":(.*?),", text)]


def interface_throughput(text: str) -> float:
    return float(parse_perf_file(text)[7].replace("samples/s", "").strip())


def perf_file_name(batch_size: int, device_id: int) -> str:
    return f"perf_vision_batchsize_{batch_size}_device_{device_id}.txt"
