"""Perf and zoo cells are reused only when they were measured from the same files: a model,
weights or data replaced at the same path is measured again, and a compiled artifact is
used only for the model it was compiled from. Checked against facts found independently
here (the files' own SHA-256, the latency CSVs each measurement writes), never against
clsbench's own identity records."""
from __future__ import annotations

import hashlib
import json
import shutil

import numpy as np

from helpers import PROXY, run_cli

CSV = "latencies/onnxruntime-fp32-bs1-{}.csv"


def _sha(path) -> str:
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


def _perf(model, out, *extra, check=True):
    return run_cli("perf", "-q", "--model", model, "--configs", "onnxruntime:fp32", "--batches", "1",
                   "--duration", "0", "--iterations", "2", "--warmup", "0", "--output", out, *extra, check=check)


def _state(out, inputs=("random",)) -> tuple[dict, dict]:
    """perf.json, and each latency CSV's bytes and mtime (a measured cell rewrites its CSV)."""
    csvs = {i: ((out / CSV.format(i)).read_bytes(), (out / CSV.format(i)).stat().st_mtime_ns) for i in inputs}
    return json.loads((out / "perf.json").read_text()), csvs


def test_perf_model_replaced_at_the_same_path_is_measured_again(onnx_model, proxy_onnx, tmp_path):
    m, out = tmp_path / "m.onnx", tmp_path / "perf"
    shutil.copy(onnx_model, m)
    _perf(m, out)
    first, csv1 = _state(out)
    assert first["model"]["sha256"] == _sha(onnx_model)
    shutil.copy(proxy_onnx, m)  # another model under the same name
    p = _perf(m, out)
    second, csv2 = _state(out)
    assert second["model"]["sha256"] == _sha(proxy_onnx) != _sha(onnx_model)
    # measured again: a new latency CSV, and rows that are not the first model's figures
    assert csv2["random"][0] != csv1["random"][0] and csv2["random"][1] != csv1["random"][1]
    assert second["rows"][0]["latency_ms"] != first["rows"][0]["latency_ms"]
    ms = np.loadtxt(out / CSV.format("random"), skiprows=1, ndmin=1)
    assert abs(second["rows"][0]["latency_ms"]["min"] - ms.min()) < 1e-5  # the figures are the CSV's
    assert "changed since the cells" in p.stderr and str(m.resolve()) in p.stderr
    # the same inputs again: every cell reused, nothing measured
    p = _perf(m, out)
    third, csv3 = _state(out)
    assert p.returncode == 0 and third["rows"] == second["rows"] and csv3 == csv2
    assert "measuring again" not in p.stderr


def test_perf_data_replaced_is_measured_again(onnx_model, prep, tmp_path):
    bins, out = tmp_path / "bins", tmp_path / "perf"
    shutil.copytree(prep, bins)
    _perf(onnx_model, out, "--data", bins)
    first, csv1 = _state(out, ("random", "real"))
    for f in sorted(bins.glob("*.bin")):  # other images, the same size and names
        x = np.fromfile(f, dtype="<f4")
        (-x[::-1]).astype("<f4").tofile(f)
    p = _perf(onnx_model, out, "--data", bins)
    second, csv2 = _state(out, ("random", "real"))
    real = [i for i, r in enumerate(second["rows"]) if r["input"] == "real data"]
    assert real and all(second["rows"][i]["latency_ms"] != first["rows"][i]["latency_ms"] for i in real)
    assert csv2["real"] != csv1["real"]
    assert "--data" in p.stderr and "measuring again" in p.stderr
    p = _perf(onnx_model, out, "--data", bins)
    third, csv3 = _state(out, ("random", "real"))
    assert p.returncode == 0 and third["rows"] == second["rows"] and csv3 == csv2


def test_zoo_weights_changed_are_measured_again(weights, tmp_path):
    wdir, z = tmp_path / "weights", tmp_path / "z"
    wdir.mkdir()
    shutil.copy(PROXY, wdir / "mnasnet1_0.pth")
    args = ["zoo", "-q", "--models", "mnasnet1_0", "--configs", "onnxruntime:fp32", "--batches", "1",
            "--duration", "0", "--iterations", "2", "--warmup", "0", "--weights-dir", wdir, "--output", z]
    onnx, cells = z / "models" / "mnasnet1_0_IMAGENET1K_V1.onnx", z / "cells" / "mnasnet1_0_IMAGENET1K_V1.json"

    def rows():
        return json.loads((z / "zoo.json").read_text())["sweeps"]["mnasnet1_0:IMAGENET1K_V1"]["rows"]

    run_cli(*args)
    first, onnx1, cells1 = rows(), _sha(onnx), cells.stat().st_mtime_ns
    shutil.copy(weights, wdir / "mnasnet1_0.pth")  # other weights under the same name
    assert _sha(wdir / "mnasnet1_0.pth") != _sha(PROXY)
    run_cli(*args)
    second = rows()
    assert _sha(onnx) != onnx1  # exported again from the new weights...
    assert cells.stat().st_mtime_ns != cells1  # ...and its cells measured again
    assert second[0]["latency_ms"] != first[0]["latency_ms"]
    cells2 = cells.stat().st_mtime_ns
    run_cli(*args)  # the same weights again: the cells are reused
    assert rows() == second and cells.stat().st_mtime_ns == cells2


def test_perf_refuses_a_compiled_artifact_of_another_model(onnx_model, proxy_onnx, tmp_path):
    a, b, c = tmp_path / "a" / "m.onnx", tmp_path / "b" / "m.onnx", tmp_path / "compiled"
    for src, dst in ((proxy_onnx, a), (onnx_model, b)):  # two models, one stem: one artifact name
        dst.parent.mkdir()
        shutil.copy(src, dst)
    run_cli("compile", "--model", a, "--backend", "onnxruntime", "--precision", "fp32", "--output", c)
    art = c / "m.onnxruntime.fp32.onnx"
    assert art.is_file()
    _perf(a, tmp_path / "pa", "--compiled", c)  # its own model: the artifact is what is timed
    assert json.loads((tmp_path / "pa" / "perf.json").read_text())["configs"][0]["model"] == str(art)
    p = _perf(b, tmp_path / "pb", "--compiled", c, check=False)
    assert p.returncode == 2 and "Traceback" not in p.stderr and len(p.stderr.strip().splitlines()) == 1
    assert str(art) in p.stderr and str(a) in p.stderr and f"clsbench compile --model {b}" in p.stderr
    assert not (tmp_path / "pb" / "perf.json").exists()
    shutil.copy(proxy_onnx, b)  # b is now the model the artifact was compiled from
    _perf(b, tmp_path / "pb", "--compiled", c)
    assert json.loads((tmp_path / "pb" / "perf.json").read_text())["configs"][0]["model"] == str(art)
