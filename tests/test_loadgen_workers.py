"""`clsbench loadgen --workers N`: N backend instances, each in its own thread, fed by the one
dynamic batcher. A backend of known service time that sleeps (releasing the GIL, as the
runtimes do) serves about twice the Server load at the same bound with two workers; accuracy
mode answers each sample with its own logits (result.json byte-identical to one worker's);
`--workers 0` is refused in one line."""
from __future__ import annotations

import json
import time

import numpy as np
import pytest

from helpers import run_cli

pytest.importorskip("mlperf_loadgen")


class Sleepy:
    """A fixed service time per batch of up to `batch_size`; time.sleep releases the GIL."""

    def __init__(self, batch_size: int, seconds: float, classes: int = 10):
        self.batch_size, self.seconds, self.classes = batch_size, seconds, classes

    def run(self, x):
        time.sleep(self.seconds)
        return np.tile(np.arange(self.classes, dtype=np.float32), (len(x), 1))


def _peak(tmp_path, workers: int) -> dict:
    """The Server peak at p90 <= 60 ms of `workers` instances of a batch-1, 10 ms backend
    (capacity 100 samples/s each)."""
    from clsbench.measure.loadgen import Bench, LoadgenOptions, Samples, find_peak

    be = [{1: Sleepy(1, 0.010)} for _ in range(workers)]
    o = LoadgenOptions(scenario="server", duration_s=0.5, batch_size=1, latency_bound_ms=60, peak_steps=3,
                       workers=workers, settings={"target_latency_percentile": 90.0, "min_query_count": 64})
    x = np.zeros((32, 3, 8, 8), np.float32)
    b = Bench(be if workers > 1 else be[0], Samples(x, [f"s{i}" for i in range(32)], "test", None), o,
              expected_qps=workers * 100.0, expected_latency_ms=10.0)
    return find_peak(b, tmp_path / f"w{workers}", floor_share=0.25)


def test_two_workers_serve_about_twice_the_server_load_at_the_same_bound(tmp_path):
    one, two = _peak(tmp_path, 1), _peak(tmp_path, 2)
    assert one["peak_qps"] and two["peak_qps"], (one["tries"], two["tries"])
    # at most each capacity (a short run at the capacity can still pass: its queue has no time to grow)
    assert one["peak_qps"] <= 105 and two["peak_qps"] <= 210
    ratio = two["peak_qps"] / one["peak_qps"]  # ~2, within the bisection's coarse steps
    assert 1.5 <= ratio <= 2.8, (ratio, one["tries"], two["tries"])
    # both workers served: the batches of the two-worker peak came from each of them
    tried = [t for t in two["tries"] if t["target_qps"] == two["peak_qps"]][0]
    assert tried["batches"]["count"] >= 64 and all(n > 0 for n in tried["batches"]["per_worker"]), tried["batches"]
    assert len(tried["batches"]["per_worker"]) == 2


def test_accuracy_mode_with_two_workers_answers_each_sample_with_its_own_logits(tmp_path, proxy_onnx, proxy_dataset):
    out = {}
    for w in (1, 2):
        run_cli("loadgen", "-q", "--model", proxy_onnx, "--data", proxy_dataset, "--mode", "accuracy",
                "--batch-size", "4", "--workers", str(w), "--output", tmp_path / f"w{w}")
        out[w] = tmp_path / f"w{w}" / "accuracy"
    assert (out[2] / "result.json").read_bytes() == (out[1] / "result.json").read_bytes()

    def logits(folder):
        return {e["qsl_idx"]: e["data"] for e in json.loads((folder / "mlperf_log_accuracy.json").read_text())}

    assert logits(out[2]) == logits(out[1])  # every sample's own bytes, not a neighbour's
    rec = json.loads((tmp_path / "w2" / "loadgen.json").read_text())
    assert rec["target"]["workers"] == 2 and rec["options"]["workers"] == 2
    assert len(rec["runs"]["accuracy"]["batches"]["per_worker"]) == 2
    assert json.loads((tmp_path / "w1" / "loadgen.json").read_text())["target"]["workers"] == 1


def test_workers_below_one_are_refused_in_one_line(tmp_path, proxy_dataset):
    from clsbench import ClsbenchError
    from clsbench.measure.loadgen import LoadgenOptions, check

    p = run_cli("loadgen", "--model", tmp_path / "m.onnx", "--data", proxy_dataset, "--workers", "0",
                "--output", tmp_path / "o", check=False)
    assert p.returncode == 2 and "--workers" in p.stderr and len(p.stderr.strip().splitlines()) == 1, p.stderr
    with pytest.raises(ClsbenchError, match=r"^--workers must be >= 1, got 0$"):
        check(LoadgenOptions(workers=0))
