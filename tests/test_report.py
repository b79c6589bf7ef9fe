"""The numbers the reports are built from: percentiles (p99.9 included), the repeats and
their stability verdict, raw latencies on disk, and `clsbench report`'s comparison rules."""
from __future__ import annotations

import csv
import json
import re
import os

import numpy as np
import pytest

from helpers import run_cli


def test_percentiles_by_hand():
    from clsbench.runtime.timing import latency_stats, parse_percentiles

    # 1..1000 ms: linear interpolation puts p99.9 at position 0.999 * 999 = 998.001 -> 999.001
    s = latency_stats(np.arange(1, 1001, dtype=float), parse_percentiles("50, 90,99.9,99"))
    assert s["percentiles"] == ["p50", "p90", "p99", "p99.9"]
    assert (s["p50"], s["p90"], s["p99"], s["p99.9"]) == pytest.approx((500.5, 900.1, 990.01, 999.001))
    assert s["unresolved"] == []  # 1000 runs resolve p99.9
    few = latency_stats([1.0] * 100)
    assert few["unresolved"] == ["p99.9"]  # 100 runs: p99.9 is an interpolation, not a tail


@pytest.mark.parametrize("text", ["50,abc", "0", "100", "50,-1", ""])
def test_bad_percentiles_are_one_line_errors(text, onnx_model, tmp_path):
    p = run_cli("infer", "--model", onnx_model, "--loop", "1", "--percentiles", text, "--output", tmp_path,
                check=False)
    assert p.returncode == 2 and "--percentiles" in p.stderr and "Traceback" not in p.stdout + p.stderr


def test_stability_by_hand():
    from clsbench.runtime.timing import stability

    # batch 10, four 100 ms runs then four 200 ms runs, in 2 windows: 100 and 50 images/s
    s = stability([100.0] * 4 + [200.0] * 4, 10, repeats=2)
    assert s["rates"] == pytest.approx([100.0, 50.0]) and s["median"] == pytest.approx(75.0)
    assert s["spread"] == pytest.approx(50 / 75) and s["stable"] is False and "67%" in s["reason"]
    steady = stability([100.0, 101.0, 99.0, 100.5, 100.0, 99.5], 10, repeats=3)
    assert steady["stable"] is True and steady["repeats"] == 3
    assert stability([5.0], 1)["stable"] is None  # one run: no spread to judge
    # completion times of overlapping requests: 4 batches of 8 done at 100, 200, 400, 600 ms
    w = stability([100.0, 200.0, 400.0, 600.0], 8, repeats=2, wall=True)
    assert w["rates"] == pytest.approx([16 / 0.2, 16 / 0.4])


def test_latency_log_streams_and_cleans_up(tmp_path):
    from clsbench.runtime.timing import LatencyLog

    path = tmp_path / "lat.csv"
    with LatencyLog(path) as log:
        for v in (1.5, 2.25, 3.0):
            log.add(v)
        assert not path.exists()  # only the temp file until closed
    assert path.read_text().splitlines() == ["ms_per_batch", "1.500000", "2.250000", "3.000000"]
    with pytest.raises(RuntimeError):
        with LatencyLog(tmp_path / "broken.csv") as log:
            log.add(1.0)
            raise RuntimeError("interrupted")
    assert sorted(os.listdir(tmp_path)) == ["lat.csv"]  # nothing half-written left behind


def _csv_values(path) -> np.ndarray:
    with open(path) as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["ms_per_batch"]
    return np.array([float(r[0]) for r in rows[1:]])


def test_perf_writes_raw_latencies_and_the_asked_percentiles(onnx_model, tmp_path):
    out = tmp_path / "perf"
    p = run_cli("perf", "-q", "--model", onnx_model, "--batches", "1,2", "--duration", "0", "--iterations", "7",
                "--warmup", "0", "--repeats", "3", "--percentiles", "50,99.9", "--output", out)
    rec = json.loads((out / "perf.json").read_text())
    assert rec["repeats"] == 3 and rec["command"].startswith("clsbench perf -q --model")
    assert rec["model"]["name"] == "mnasnet1_0" and "report.html" in p.stdout
    for r in rec["rows"]:
        raw = _csv_values(out / r["latencies_csv"])
        lat = r["latency_ms"]
        assert len(raw) == r["iterations"] == lat["count"] >= 7
        assert lat["percentiles"] == ["p50", "p99.9"] and "p90" not in lat
        # the record's figures, recomputed from the raw file (6 decimals on disk)
        assert lat["p50"] == pytest.approx(np.percentile(raw, 50), abs=1e-5)
        assert lat["p99.9"] == pytest.approx(np.percentile(raw, 99.9), abs=1e-5)
        windows = np.array_split(raw, 3)
        rates = [r["batch_size"] * len(w) / (w.sum() / 1e3) for w in windows]
        assert r["throughput_compute"] == pytest.approx(np.median(rates), rel=1e-5)
        assert r["stability"]["repeats"] == 3
    md = (out / "perf.md").read_text()
    assert "| p50 | p99.9 |" in md and "median of 3 repeats" in md
    assert (out / "report.html").read_text().startswith("<!DOCTYPE html>")


def test_offline_inference_saves_each_batch_latency(onnx_model, info_file, tmp_path):
    p = run_cli("infer", "-q", "--model", onnx_model, "--info", info_file, "--batch-size", "4",
                "--output", tmp_path / "result", "--percentiles", "50,95")
    rec = json.loads((tmp_path / "result" / "perf_vision_batchsize_4_device_0.json").read_text())
    raw = _csv_values(rec["latencies_csv"])
    assert len(raw) == 4  # 13 images in batches of 4
    assert rec["compute_latency_ms_per_batch"]["p95"] == pytest.approx(np.percentile(raw, 95), abs=1e-5)
    assert "ms per batch min|mean|p50|p95|max" in p.stdout and "images/s" in p.stdout
    assert not [f for f in os.listdir(tmp_path / "result") if f.endswith(".tmp")]


def _perf_record(rows) -> dict:
    return {"configs": [{"backend": "onnxruntime", "precision": "fp32", "model": "m.onnx"}], "batches": [1, 8],
            "warmup": 1, "min_iterations": 5, "duration_s": 1, "repeats": 5, "threads": None,
            "environment": {"clsbench": "0.1.0", "cpu": "cpu", "logical_cpus": 2}, "model": {"name": "mnasnet1_0"},
            "rows": [{"backend": "onnxruntime", "precision": "fp32", "batch_size": b, "input": "random normal",
                      "throughput_compute": v, "throughput_e2e": v, "iterations": 5, "latency_ms": {},
                      "stability": {"repeats": 5, "stable": stable, "spread": 0.02 if stable else 0.3},
                      "runtime": {"runtime": "onnxruntime", "version": "1", "threads": 2}}
                     for b, v, stable in rows]}


def test_compare_marks_regressions_by_the_threshold(tmp_path):
    base, new = tmp_path / "base", tmp_path / "new"
    for d, rows in ((base, [(1, 100.0, True), (8, 200.0, True)]), (new, [(1, 94.0, True), (8, 150.0, False)])):
        d.mkdir()
        (d / "perf.json").write_text(json.dumps(_perf_record(rows)))
    p = run_cli("report", base, new, "--output", tmp_path / "c.html", "--fail-on-regression", check=False)
    rec = json.loads((tmp_path / "c.json").read_text())
    bs1, bs8 = rec["rows"][0]["cells"][1], rec["rows"][1]["cells"][1]
    assert bs1["delta"] == pytest.approx(-6.0) and bs1["regression"]  # 6 % slower > 5 %
    assert bs8["delta"] == pytest.approx(-25.0) and "regression" not in bs8 and bs8["unstable"]
    assert p.returncode == 1 and rec["regressions"] == 1
    ok = run_cli("report", base, new, "--output", tmp_path / "c2.html", "--threshold", "7", "--fail-on-regression")
    assert "0 regression(s)" in ok.stdout


def test_report_refuses_what_it_cannot_read(tmp_path, onnx_model):
    empty = tmp_path / "empty"
    empty.mkdir()
    p = run_cli("report", empty, check=False)
    assert p.returncode == 2 and "no summary.json" in p.stderr and "Traceback" not in p.stderr
    (empty / "perf.json").write_text("{not json")
    p = run_cli("report", empty, check=False)
    assert p.returncode == 2 and "perf.json: not a readable clsbench record" in p.stderr


def test_an_unstable_baseline_is_marked_on_a_gain_as_on_a_drop(tmp_path):
    """+213 % over an unstable baseline is no more a measured gain than -25 % is a measured
    regression: both 'unstable: not judged', in the JSON and on the page."""
    base, new = tmp_path / "base", tmp_path / "new"
    for d, rows in ((base, [(1, 100.0, False), (8, 200.0, True)]), (new, [(1, 313.0, True), (8, 203.0, True)])):
        d.mkdir()
        (d / "perf.json").write_text(json.dumps(_perf_record(rows)))
    run_cli("report", base, new, "--output", tmp_path / "c.html")
    rec = json.loads((tmp_path / "c.json").read_text())
    gain, small = rec["rows"][0]["cells"][1], rec["rows"][1]["cells"][1]
    assert gain["delta"] == pytest.approx(213.0) and gain["unstable"] and "regression" not in gain
    assert small["delta"] == pytest.approx(1.5) and "unstable" not in small
    assert "+213.00 %, unstable: not judged" in re.sub(r"<[^>]+>", "", (tmp_path / "c.html").read_text())
