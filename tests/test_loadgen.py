"""`clsbench loadgen` through the real MLPerf LoadGen: each scenario VALID on a light model,
a slowed stand-in INVALID with LoadGen's reason, accuracy mode equal to `eval`'s result.json
and to the logits `run` writes, the peak search on a backend of known capacity. Summaries
are read here with LoadGen's own field names, independently of clsbench's parser."""
from __future__ import annotations

import json
import re
import time
from pathlib import Path

import numpy as np
import pytest

from helpers import bin_tensors, run_cli, tiny_classifier

pytest.importorskip("mlperf_loadgen")


def lg_fields(summary: Path) -> dict:
    """mlperf_log_summary.txt read as MLPerf's submission checker reads it: 'Name : value'."""
    out = {}
    for line in summary.read_text().splitlines():
        m = re.match(r"^\s*([^:*]+?)\s*:\s*(\S.*)$", line)
        if m:
            out.setdefault(m.group(1), m.group(2).strip())
    return out


@pytest.fixture(scope="module")
def light(tmp_path_factory):
    d = tmp_path_factory.mktemp("lg")
    return tiny_classifier(d / "m.onnx", size=32), bin_tensors(d / "bins", 64, 32)


@pytest.mark.parametrize("scenario", ["offline", "server", "single-stream", "multi-stream"])
def test_each_scenario_runs_valid_on_a_light_model(tmp_path, light, scenario):
    model, data = light
    extra = {"server": ["--target-qps", "150", "--latency-bound-ms", "50"],
             "multi-stream": ["--samples-per-query", "4"]}.get(scenario, [])  # each where it acts
    p = run_cli("loadgen", "--model", model, "--data", data, "--scenario", scenario, "--duration", "1",
                "--output", tmp_path / "o", *extra, env={"COLUMNS": "160"}, check=False)
    f = lg_fields(tmp_path / "o" / "performance" / "mlperf_log_summary.txt")
    name = {"offline": "Offline", "server": "Server", "single-stream": "SingleStream", "multi-stream": "MultiStream"}
    assert f["Scenario"] == name[scenario] and f["Mode"] == "PerformanceOnly"
    assert f["Result is"] == "VALID", (tmp_path / "o" / "performance" / "mlperf_log_summary.txt").read_text()
    assert p.returncode == 0, p.stdout + p.stderr
    rec = json.loads((tmp_path / "o" / "loadgen.json").read_text())
    got = rec["runs"]["performance"]["summary"]["fields"]
    key = {"offline": "Samples per second", "server": "Completed samples per second",
           "single-stream": "90.0th percentile latency (ns)", "multi-stream": "99.0th percentile latency (ns)"}[scenario]
    assert float(f[key]) == pytest.approx(got[key], rel=1e-6)
    assert f"LoadGen {name[scenario]}: VALID" in p.stdout
    html = (tmp_path / "o" / "report.html").read_text()
    assert "VALID" in html and name[scenario] in html
    for log in ("mlperf_log_summary.txt", "mlperf_log_detail.txt", "mlperf_log_accuracy.json", "user.conf"):
        assert (tmp_path / "o" / "performance" / log).is_file()
    if scenario == "multi-stream":
        assert rec["runs"]["performance"]["batches"]["max"] == 4 and f["samples_per_query"] == "4"
    if scenario == "offline":  # sized by a short LoadGen pass, read from that pass's own summary
        sized = lg_fields(tmp_path / "o" / "offline-sizing" / "mlperf_log_summary.txt")
        assert sized["Result is"] in ("VALID", "INVALID") and float(sized["Samples per second"]) > 0
        want = round(1.5 * float(sized["Samples per second"]), 2)
        conf = (tmp_path / "o" / "performance" / "user.conf").read_text()
        assert f"clsbench.Offline.target_qps = {want:g}" in conf or f"target_qps = {want}" in conf, conf
        assert rec["offline_sizing"]["loadgen_samples_per_s"] == pytest.approx(float(sized["Samples per second"]))
        run_cli("loadgen", "--model", model, "--data", data, "--duration", "0.2", "--target-qps", str(want),
                "--output", tmp_path / "o")  # a rerun given its rate: no sizing, and none left from before
        assert not (tmp_path / "o" / "offline-sizing").exists()
        assert json.loads((tmp_path / "o" / "loadgen.json").read_text())["offline_sizing"] is None
    else:
        assert rec["offline_sizing"] is None


class Slow:
    """A backend stand-in: a fixed service time per batch of up to `batch_size`."""

    def __init__(self, batch_size: int, seconds: float, classes: int = 10):
        self.batch_size, self.seconds, self.classes = batch_size, seconds, classes

    def run(self, x):
        time.sleep(self.seconds)
        return np.tile(np.arange(self.classes, dtype=np.float32), (len(x), 1))


def _bench(tmp_path, backend, **kw):
    from clsbench.measure.loadgen import Bench, LoadgenOptions, Samples

    x = np.zeros((32, 3, 8, 8), np.float32)
    o = LoadgenOptions(scenario="server", duration_s=1.0, batch_size=backend.batch_size, **kw)
    lat = backend.seconds * 1e3
    return Bench(backend, Samples(x, [f"s{i}" for i in range(32)], "test", None), o,
                 expected_qps=backend.batch_size * 1e3 / lat, expected_latency_ms=lat)


def test_a_slowed_backend_at_a_tight_bound_is_invalid_and_says_why(tmp_path):
    from clsbench.measure.loadgen import run_once

    b = _bench(tmp_path, Slow(4, 0.02), target_qps=100, latency_bound_ms=10)
    r = run_once(b, tmp_path / "slow", "performance")
    f = lg_fields(tmp_path / "slow" / "mlperf_log_summary.txt")
    assert f["Result is"] == "INVALID" and r["summary"]["valid"] is False
    # every sample takes >= 20 ms against a 10 ms bound: LoadGen's own reasons, read back
    assert f["Performance constraints satisfied"] == "NO"
    assert "Performance constraints satisfied: NO" in r["summary"]["reasons"]
    assert float(f["99.00 percentile latency (ns)"]) > 20e6


def test_find_peak_brackets_the_known_capacity_of_a_fixed_service_time(tmp_path):
    """4 samples per 5 ms: capacity 800 samples/s. The search's verdicts are monotone in the
    offered load, its VALID peak lies below the capacity and within one bisection step of
    the first INVALID load, and a good part of the capacity is usable at a 40 ms p99 bound."""
    from clsbench.measure.loadgen import find_peak

    b = _bench(tmp_path, Slow(4, 0.005), latency_bound_ms=40, peak_steps=4)
    pk = find_peak(b, tmp_path / "peak")
    capacity = 4 / 0.005
    tries = sorted(pk["tries"], key=lambda t: t["target_qps"])
    verdicts = [t["valid"] for t in tries]
    assert verdicts == sorted(verdicts, reverse=True), tries  # VALID below, INVALID above
    lo, hi = pk["bracket"]
    assert lo == pk["peak_qps"] and lo < capacity and hi - lo <= pk["step"] + 0.01
    assert hi - lo <= capacity / 4  # 4 bisection steps of a bracket no wider than a doubling
    assert lo >= 0.5 * capacity, tries
    for t in pk["tries"]:  # every try is a LoadGen run of its own, kept
        assert lg_fields(Path(t["folder"]) / "mlperf_log_summary.txt")["Result is"] == ("VALID" if t["valid"] else "INVALID")


def test_accuracy_mode_equals_eval_and_the_logits_run_writes(tmp_path, proxy_weights, proxy_dataset):
    """The trained proxy's images: `run --outfmt bin` writes raw float32 logits and the guide's
    result.json; LoadGen's accuracy log (decoded here, independently) holds the same logits
    bit for bit, and clsbench's result.json from it equals eval's."""
    run_cli("run", "-q", "--weights", proxy_weights, "--data", proxy_dataset, "--batch-size", "8",
            "--outfmt", "bin", "--work-dir", tmp_path / "run")
    p = run_cli("loadgen", "--model", tmp_path / "run" / "model.onnx", "--data", proxy_dataset, "--mode", "accuracy",
                "--batch-size", "8", "--output", tmp_path / "lg")
    acc_dir = tmp_path / "lg" / "accuracy"
    assert json.loads((acc_dir / "result.json").read_text()) == json.loads((tmp_path / "run" / "result.json").read_text())
    rec = json.loads((tmp_path / "lg" / "loadgen.json").read_text())
    assert rec["runs"]["accuracy"]["accuracy"]["images"] == len(list((Path(proxy_dataset) / "val").iterdir()))
    entries = json.loads((acc_dir / "mlperf_log_accuracy.json").read_text())
    names = sorted(f.name.split(".")[0] for f in (Path(proxy_dataset) / "val").iterdir())
    dump = tmp_path / "run" / "result" / "dumpOutput_device0"
    for e in entries:
        got = np.frombuffer(bytes.fromhex(e["data"]), np.float32)
        want = np.fromfile(dump / f"{names[e['qsl_idx']]}_1.bin", np.float32)
        assert np.array_equal(got, want), names[e["qsl_idx"]]
    assert "accuracy mode: Top-1" in p.stdout


def test_loadgen_refuses_bad_combinations_in_one_line(tmp_path, light):
    model, data = light
    for args, msg in ((["--scenario", "offline", "--find-peak"], "--find-peak searches the Server scenario"),
                      (["--setting", "nonsense=1"], "--setting nonsense: not a key"),
                      (["--precision", "int8"], "runs a compiled artifact: make it first (`clsbench compile"),
                      (["--duration", "0"], "argument --duration: must be a finite number > 0")):
        p = run_cli("loadgen", "--model", model, "--data", data, "--output", tmp_path / "x", *args, check=False)
        assert p.returncode == 2 and msg in " ".join(p.stderr.split()) and "Traceback" not in p.stderr, p.stderr


def test_server_batches_run_on_the_smallest_backend_that_holds_them(tmp_path):
    """Server keeps a backend per power of two up to --batch-size: a lone sample runs at
    batch 1 (not padded to 8), three run padded to 4; every response is its own sample's."""
    from clsbench.measure.loadgen import LoadgenOptions, Samples, Sut, batch_sizes

    assert batch_sizes(LoadgenOptions(scenario="server", batch_size=8)) == [1, 2, 4, 8]
    assert batch_sizes(LoadgenOptions(scenario="server", batch_size=6)) == [1, 2, 4, 6]
    assert batch_sizes(LoadgenOptions(scenario="single-stream", batch_size=8)) == [1]

    class Echo:
        def __init__(self, bs):
            self.batch_size, self.calls = bs, []

        def run(self, x):
            assert len(x) == self.batch_size
            self.calls.append(len(x))
            return np.repeat(x[:, :1, 0, 0], 3, axis=1)  # each row: its sample's first value

    done = []

    class FakeLG:
        class QuerySampleResponse:
            def __init__(self, id, ptr, size):
                import ctypes

                self.id = id
                self.value = np.frombuffer((ctypes.c_float * (size // 4)).from_address(ptr), np.float32).copy()

        def QuerySamplesComplete(self, responses):
            done.extend((r.id, float(r.value[0])) for r in responses)

    class Q:
        def __init__(self, i):
            self.id, self.index = 100 + i, i

    x = np.arange(8, dtype=np.float32)[:, None, None, None] * np.ones((8, 3, 2, 2), np.float32)
    backends = {n: Echo(n) for n in (1, 2, 4, 8)}
    sut = Sut(backends, Samples(x, [str(i) for i in range(8)], "t", None), "server", 8, 0.0)
    sut.lg = FakeLG()
    sut._run([Q(5)])
    sut._run([Q(1), Q(2), Q(7)])
    sut.stop()
    assert backends[1].calls == [1] and backends[4].calls == [4] and not backends[8].calls
    assert done == [(105, 5.0), (101, 1.0), (102, 2.0), (107, 7.0)]
