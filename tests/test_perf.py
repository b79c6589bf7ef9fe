"""The perf sweep's JSON, Markdown (the guide's §7.3 layout) and PNG outputs."""
import json

import pytest

from helpers import run_cli


def test_perf_sweep_outputs(onnx_model, prep, tmp_path):
    out = tmp_path / "perf"
    p = run_cli("perf", "-q", "--model", onnx_model, "--configs", "onnxruntime:fp32", "--batches", "1,2",
                "--duration", "0", "--iterations", "2", "--warmup", "1", "--data", prep, "--output", out)
    res = json.loads((out / "perf.json").read_text())
    assert res["batches"] == [1, 2] and len(res["rows"]) == 4  # 2 batches x random/real
    for r in res["rows"]:
        lat = r["latency_ms"]
        assert r["iterations"] >= 2 and lat["min"] <= lat["p50"] <= lat["p90"] <= lat["p99"] <= lat["max"]
        assert r["throughput_compute"] >= r["throughput_e2e"] > 0
        assert r["runtime"]["runtime"] == "onnxruntime"
    assert res["environment"]["cpu"] and "T4 (TensorRT fp16)" in res["reference"]
    md = (out / "perf.md").read_text()
    assert ("| batchsize | onnxruntime fp32 images/s | Ascend 310 images/s | Ascend 710 images/s | "
            "T4 (TensorRT fp16) images/s |") in md
    assert "| best |" in md and "## real data input" in md and "## random normal input" in md
    assert (out / "perf.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "batchsize" in p.stdout


def test_perf_resumes_finished_cells(onnx_model, tmp_path):
    from clsbench.runtime.timing import Config, Timing
    from clsbench.measure.sweep import sweep

    ck = tmp_path / "ck.json"
    cfg = [Config("onnxruntime", "fp32", str(onnx_model))]
    quick = Timing(duration=0, iterations=1, warmup=0)
    first = sweep(cfg, [1], quick, checkpoint=str(ck))
    # other settings (batches 1, 2): every cell is measured anew, none taken from the checkpoint
    again = sweep(cfg, [1, 2], quick, checkpoint=str(ck))
    assert [r["batch_size"] for r in again["rows"]] == [1, 2]
    assert again["rows"][0]["latency_ms"] != first["rows"][0]["latency_ms"]  # remeasured: new timings
    # identical settings: nothing is remeasured, every row comes back from the checkpoint
    import clsbench.runtime.timing as perf

    calls = []
    real = perf.measure
    perf.measure = lambda *a, **k: calls.append(1) or real(*a, **k)
    try:
        same = sweep(cfg, [1, 2], quick, checkpoint=str(ck))
    finally:
        perf.measure = real
    assert calls == [] and same["rows"] == again["rows"]


def test_perf_needs_compiled_int8(onnx_model, tmp_path):
    p = run_cli("perf", "--model", onnx_model, "--configs", "onnxruntime:int8", "--compiled", tmp_path,
                check=False)
    assert p.returncode == 2 and "clsbench compile" in p.stderr and "Traceback" not in p.stderr


@pytest.mark.parametrize("batches", ["1,x", "0", "4,-2", ""])
def test_perf_bad_batches_one_line_error(onnx_model, tmp_path, batches):
    p = run_cli("perf", "--model", onnx_model, "--batches", batches, "--output", tmp_path, check=False)
    assert p.returncode == 2 and "--batches" in p.stderr and "Traceback" not in p.stderr
