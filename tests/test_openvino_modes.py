"""OpenVINO's throughput hint: several requests in flight, the same outputs as one
synchronous request, and the stream count recorded."""
from __future__ import annotations

import json

import pytest
from helpers import run_cli

pytest.importorskip("openvino", reason="the [openvino] extra is part of make test's install")


def test_throughput_mode_writes_the_same_outputs_as_the_synchronous_one(tmp_path, proxy_onnx, info_file):
    """Batch 4 over the .info's images (a padded last batch): every output file byte-equal."""
    for hint in ("latency", "throughput"):
        run_cli("infer", "--model", str(proxy_onnx), "--info", str(info_file), "--batch-size", "4",
                "--backend", "openvino", "--openvino-hint", hint, "--output", str(tmp_path / hint), "-q")
    sync, thr = (tmp_path / h / "dumpOutput_device0" for h in ("latency", "throughput"))
    names = sorted(p.name for p in sync.iterdir())
    assert names and names == sorted(p.name for p in thr.iterdir())
    assert all((sync / n).read_bytes() == (thr / n).read_bytes() for n in names)
    rec = json.loads(next((tmp_path / "throughput").glob("perf_*.json")).read_text())
    assert rec["mode"] == "offline-async" and rec["backend"]["hint"] == "throughput"
    assert rec["backend"]["streams"] >= 1 and rec["backend"]["requests_in_flight"] >= 1


def test_run_many_returns_results_in_order_and_stops_cleanly(proxy_onnx):
    import numpy as np

    from clsbench.runtime.backends import open_backend

    rt = open_backend("openvino", str(proxy_onnx), batch_size=2, hint="throughput")
    xs = [np.random.default_rng(i).standard_normal((2, 3, 224, 224), dtype=np.float32) for i in range(5)]
    want = [rt.run(x) for x in xs]
    assert all(np.array_equal(a, b) for a, b in zip(rt.run_many(iter(xs)), want))
    it = rt.run_many(iter(xs))
    next(it)
    it.close()  # a caller that stops early leaves no request running


def test_the_hint_belongs_to_openvino(tmp_path, proxy_onnx, info_file):
    p = run_cli("infer", "--model", str(proxy_onnx), "--info", str(info_file), "--openvino-hint", "throughput",
                "--output", str(tmp_path / "o"), check=False)
    assert p.returncode == 2 and "--openvino-hint applies to the openvino backend, not onnxruntime" in p.stderr
    assert "Traceback" not in p.stderr
