"""`clsbench loadgen`'s inputs refused before LoadGen runs, and an Offline run sized on a busy
machine made VALID by LoadGen's own verdict: every --setting typed and bounded as LoadGen
means it (was: nan and -1 tracebacks and a segfault, -5 run VALID, 150 percentile run, inf
written into loadgen.json); no --output inside --data; no option that would have no effect
in the scenario or mode; an Offline query that ended before min_duration only because the
sizing pass ran slower than the run is sized again from the run's own rate."""
from __future__ import annotations

import json
import re
import time
from pathlib import Path

import numpy as np
import pytest

from helpers import bin_tensors, run_cli, tiny_classifier
from test_loadgen import lg_fields  # LoadGen summary as the submission checker reads it, one copy

pytest.importorskip("mlperf_loadgen")


@pytest.fixture(scope="module")
def light(tmp_path_factory):
    d = tmp_path_factory.mktemp("lgi")
    return tiny_classifier(d / "m.onnx", size=32), bin_tensors(d / "bins", 16, 32)


def one_error(p) -> str:
    """The CLI's one `error: ...` line (exit 2, no traceback)."""
    assert p.returncode == 2 and "Traceback" not in p.stderr, (p.returncode, p.stdout, p.stderr)
    lines = [ln for ln in p.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), p.stderr
    return lines[0]


# the user's probe, each refused naming the key, the value and the bound
PROBE = [("min_duration=nan", "--setting min_duration=nan: must be a whole number >= 0"),
         ("performance_sample_count_override=-1", "--setting performance_sample_count_override=-1: must be a whole number >= 1"),
         ("min_duration=-5", "--setting min_duration=-5: must be a whole number >= 0"),
         ("target_latency_percentile=150", "--setting target_latency_percentile=150: must be a finite number > 0 and <= 100"),
         ("target_qps=inf", "--setting target_qps=inf: must be a finite number > 0")]


@pytest.mark.parametrize("setting,msg", PROBE, ids=[s for s, _ in PROBE])
def test_the_probes_settings_are_refused_in_one_line_before_loadgen(tmp_path, light, setting, msg):
    model, data = light
    p = run_cli("loadgen", "-q", "--model", model, "--data", data, "--duration", "0.2", "--output", tmp_path / "o",
                "--setting", setting, check=False)
    assert one_error(p) == f"error: {msg}"
    assert not (tmp_path / "o").exists()  # refused before anything ran or was written


# key: (scenario it is read in, values accepted at and inside the bound, values refused)
BOUNDS = {"min_duration": ("offline", ["0", "1000", "1e3", "2.0"], ["-1", "0.5", "nan", "inf", "x", "1e30"]),
          "max_duration": ("server", ["0", "60000"], ["-1", "1.5", "inf"]),
          "min_query_count": ("server", ["1", "662"], ["0", "-3", "2.5", "nan"]),  # 0 with min_duration 0: a segfault
          "max_query_count": ("server", ["0", "100"], ["-1", "inf"]),
          "performance_sample_count_override": ("offline", ["1", "16"], ["0", "-1", "1.5"]),
          "target_qps": ("offline", ["0.5", "1e6"], ["0", "-2", "inf", "nan"]),
          "target_latency": ("single-stream", ["0.01", "50"], ["0", "-1", "inf"]),  # 0: LoadGen exhausts memory
          "target_latency_percentile": ("server", ["0.5", "90", "100"], ["0", "100.5", "150", "-1", "nan"]),
          "samples_per_query": ("multi-stream", ["1", "8"], ["0", "-4", "2.5"])}


def test_every_user_conf_key_has_its_type_and_bound():
    """Each key LoadGen reads from user.conf: accepted at its bound (as a number of the type
    LoadGen takes), refused just past it, in one line naming the key and the value."""
    from clsbench import ClsbenchError
    from clsbench.measure.loadgen import USER_CONF_KEYS, LoadgenOptions, check, user_conf

    assert set(BOUNDS) == set(USER_CONF_KEYS)
    for key, (scenario, good, bad) in BOUNDS.items():
        for v in good:
            o = LoadgenOptions(scenario=scenario, settings={key: v})
            if key in ("samples_per_query", "target_latency"):  # in range, but its flag is the one source
                with pytest.raises(ClsbenchError, match=rf"^--setting {key}: give --"):
                    check(o)
            else:
                check(o)
            got = user_conf(o, 16, 100.0, 5.0)[key]
            assert got == float(v) and isinstance(got, float if key.startswith("target_") else int)
        for v in bad:
            with pytest.raises(ClsbenchError, match=rf"^--setting {key}={re.escape(v)}: must be "):
                check(LoadgenOptions(scenario=scenario, settings={key: v}))
    conf = user_conf(LoadgenOptions(settings={"min_duration": "1e3", "target_qps": "12.5"}), 16, 100.0, 5.0)
    assert conf["min_duration"] == 1000 and isinstance(conf["min_duration"], int) and conf["target_qps"] == 12.5


def test_output_is_never_inside_the_data(tmp_path, light):
    """`--data own/prep --output own/prep/lg` wrote LoadGen's logs among the .bin tensors: now
    refused, as --output equal to --data is, before anything is written."""
    model, data = light
    before = sorted(p.name for p in Path(data).iterdir())
    for out, where in ((Path(data) / "lg", "lies inside"), (Path(data), "is")):
        line = one_error(run_cli("loadgen", "-q", "--model", model, "--data", data, "--duration", "0.2",
                                 "--output", out, check=False))
        assert f"{out}: {where} the --data folder {data}" in line and "give another --output" in line, line
    assert sorted(p.name for p in Path(data).iterdir()) == before
    line = one_error(run_cli("loadgen", "-q", "--model", model, "--data", data, "--output", model, check=False))
    assert "is also the --model file" in line, line


# (scenario, mode, the options, what the one line says): each would have had no effect
IDLE = [("offline", "performance", ["--latency-bound-ms", "50"], "--latency-bound-ms: the server scenario's"),
        ("offline", "performance", ["--max-wait-ms", "2"], "--max-wait-ms: the server batcher's wait"),
        ("offline", "performance", ["--samples-per-query", "4"], "--samples-per-query: the multi-stream scenario's"),
        ("single-stream", "performance", ["--target-qps", "100"], "--target-qps: the offline and server scenarios'"),
        ("multi-stream", "performance", ["--batch-size", "4"], "--batch-size: the offline and server scenarios'"),
        ("server", "performance", ["--peak-steps", "3"], "--peak-steps: --find-peak's bisection steps"),
        ("offline", "performance", ["--labels", "val_label.txt"], "--labels: accuracy mode's labels"),
        ("server", "performance", ["--find-peak", "--target-qps", "100"], "--target-qps: --find-peak sets"),
        ("single-stream", "performance", ["--setting", "target_qps=100"],
         "--setting target_qps: LoadGen reads it in offline, server only, not in single-stream"),
        ("offline", "performance", ["--setting", "samples_per_query=4"], "--setting samples_per_query: LoadGen reads")]


@pytest.mark.parametrize("scenario,mode,args,msg", IDLE, ids=[" ".join([s, *a]) for s, _, a, _ in IDLE])
def test_an_option_of_another_scenario_or_mode_is_refused(tmp_path, light, scenario, mode, args, msg):
    model, data = light
    line = one_error(run_cli("loadgen", "-q", "--model", model, "--data", data, "--duration", "0.2",
                             "--scenario", scenario, "--mode", mode, "--output", tmp_path / "o", *args, check=False))
    assert msg in line and ("(it would have no effect)" in line or "--find-peak sets" in msg), line
    assert not (tmp_path / "o").exists()


def test_an_option_is_refused_only_where_it_has_no_effect():
    """The CLI fills an option left out with its default, so the default given explicitly is
    accepted anywhere (another value is not); each option is accepted where it acts."""
    from clsbench import ClsbenchError
    from clsbench.measure.loadgen import LoadgenOptions, check

    for kw in ({"max_wait_ms": 0.5}, {"samples_per_query": 4}, {"peak_steps": 5}):
        with pytest.raises(ClsbenchError, match=r"\(it would have no effect\); leave it out$"):
            check(LoadgenOptions(scenario="offline", **kw))

    check(LoadgenOptions(scenario="offline", max_wait_ms=0.0, samples_per_query=8, peak_steps=6, batch_size=8))
    check(LoadgenOptions(scenario="single-stream", batch_size=8))
    check(LoadgenOptions(scenario="server", latency_bound_ms=50, max_wait_ms=2, target_qps=100,
                         settings={"target_latency_percentile": "99.5"}))
    check(LoadgenOptions(scenario="server", find_peak=True, peak_steps=3))
    check(LoadgenOptions(scenario="multi-stream", samples_per_query=4))
    with pytest.raises(ClsbenchError, match=r"give --samples-per-query instead"):
        check(LoadgenOptions(scenario="multi-stream", samples_per_query=4, settings={"samples_per_query": "4"}))
    check(LoadgenOptions(scenario="offline", mode="both", labels="val_label.txt", target_qps=100))


class Phased:
    """A backend stand-in whose service time per batch the test changes between LoadGen runs."""

    def __init__(self, batch_size: int, seconds: float):
        self.batch_size, self.seconds = batch_size, seconds

    def run(self, x):
        time.sleep(self.seconds)
        return np.zeros((len(x), 10), np.float32)


def _offline_bench(backend, **kw):
    from clsbench.measure.loadgen import Bench, LoadgenOptions, Samples

    o = LoadgenOptions(scenario="offline", duration_s=0.5, batch_size=backend.batch_size, **kw)
    x = np.zeros((32, 3, 8, 8), np.float32)
    return Bench(backend, Samples(x, [f"s{i}" for i in range(32)], "test", None), o,
                 expected_qps=backend.batch_size / backend.seconds, expected_latency_ms=backend.seconds * 1e3)


def test_an_offline_run_faster_than_its_sizing_pass_is_sized_again_and_valid(tmp_path, monkeypatch):
    """The machine busy during the sizing pass (8 samples per 10 ms) and idle in the run (per
    1 ms): the query sized from the pass ends long before min_duration, INVALID for that reason
    alone. clsbench sizes it again from the rate that run measured and reruns: LoadGen's own
    summary of the final run says VALID and min duration satisfied; the record lists the
    resize and keeps the short run's logs."""
    import clsbench.measure.loadgen as lgm

    be = Phased(8, 0.010)
    sized = lgm.size_offline

    def busy_then_idle(b, outdir):
        got = sized(b, outdir)
        be.seconds = 0.001
        return got

    monkeypatch.setattr(lgm, "size_offline", busy_then_idle)
    sizing, runs, _ = lgm.run_all(_offline_bench(be), tmp_path / "o")
    perf = runs["performance"]
    final = lg_fields(tmp_path / "o" / "performance" / "mlperf_log_summary.txt")
    assert final["Result is"] == "VALID" and final["Min duration satisfied"] == "Yes", final
    assert perf["summary"]["valid"] is True and sizing is not None
    assert 1 <= len(perf["resized"]) <= lgm.RESIZES
    first = perf["resized"][0]
    short = lg_fields(Path(first["folder"]) / "mlperf_log_summary.txt")  # the run that ended early, kept
    assert short["Result is"] == "INVALID" and short["Min duration satisfied"] == "NO"
    assert first["reasons"] == ["Min duration satisfied: NO"]
    assert first["measured_samples_per_s"] == pytest.approx(float(short["Samples per second"]))
    assert first["target_qps"] == round(1.5 * sizing["loadgen_samples_per_s"], 2)
    last = perf["resized"][-1]
    assert last["expected_qps"] == round(1.2 * last["measured_samples_per_s"], 2)
    conf = (tmp_path / "o" / "performance" / "user.conf").read_text()
    assert f"clsbench.Offline.target_qps = {round(1.5 * last['expected_qps'], 2):g}" in conf, conf
    json.dumps(perf, allow_nan=False)  # what loadgen.json holds


def test_an_offline_run_at_the_users_qps_is_not_resized(tmp_path):
    """--target-qps is the user's sizing: a query that ends early at it stays INVALID, as LoadGen judged."""
    from clsbench.measure.loadgen import run_all

    sizing, runs, _ = run_all(_offline_bench(Phased(8, 0.001), target_qps=200), tmp_path / "o")
    f = lg_fields(tmp_path / "o" / "performance" / "mlperf_log_summary.txt")
    assert sizing is None and runs["performance"]["resized"] == []
    assert f["Result is"] == "INVALID" and f["Min duration satisfied"] == "NO"


def test_data_inside_the_output_is_refused(tmp_path):
    """--data X/offline-sizing --output X: the run removes that folder before it reads it."""
    from helpers import bin_tensors, run_cli, tiny_classifier

    model = tiny_classifier(tmp_path / "m.onnx", size=32)
    data = bin_tensors(tmp_path / "lg" / "offline-sizing", 8, 32)
    p = run_cli("loadgen", "--model", model, "--data", data, "--output", tmp_path / "lg", check=False)
    assert p.returncode == 2 and "lies inside --output" in p.stderr and "Traceback" not in p.stderr, p.stderr
    assert len(list(data.glob("*.bin"))) == 8
