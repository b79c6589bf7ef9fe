"""`clsbench tune`: the search on stand-in backends of known service times, scaling and
accuracies (no processes: the real search logic over a measurer whose optimum is known), its
resumption after `kill -9`, and a real tune of the trained proxy on a small space."""
from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from itertools import product
from pathlib import Path

import pytest

from clsbench.flows.tune import Bounds, Candidate, Parallel, Recorded, Space, judge, paired_margin, search

CORES = 4
VARIANTS = {  # (backend, precision): (speed per core, Top-1 drop in points)
    ("onnxruntime", "fp32"): (1.0, 0.0),
    ("onnxruntime", "int8"): (2.4, 0.3),
    ("openvino", "fp32"): (1.1, 0.0),
    ("openvino", "int8"): (2.8, 1.6),  # the fastest, but over a 0.5-point bound: never timed
    ("torch", "fp32"): (0.35, 0.0),
}


class StandIn:
    """Service time of one batch on one session with t threads (ms): a fixed overhead plus
    per-image work that threads divide (with diminishing returns), a cache penalty past batch
    16, and contention when sessions x threads exceed the cores. Server peak: 85 % of offline
    where one batch takes under half the bound, else it collapses."""

    def __init__(self, variants=None, overhead_ms=2.0, per_image_ms=4.0, sleep=0.0):
        self.variants = variants or VARIANTS
        self.overhead, self.per_image, self.sleep = overhead_ms, per_image_ms, sleep
        self.calls: list[tuple] = []

    def batch_ms(self, c: Candidate) -> float:
        speed = self.variants[c.variant][0]
        t = c.threads or CORES
        eff = t ** 0.85 * (0.8 if c.hint == "throughput" and c.sessions == 1 else 1.0)
        penalty = 1 + max(0, c.batch - 16) / 32
        contention = max(1.0, c.sessions * t / CORES) ** 1.3
        return (self.overhead + c.batch * self.per_image * penalty / speed / eff) * contention

    def ips(self, c: Candidate) -> float:
        return c.sessions * c.batch * 1000 / self.batch_ms(c)

    def accuracy(self, backend, precision):
        self.calls.append(("accuracy", backend, precision))
        time.sleep(self.sleep)
        drop = self.variants[(backend, precision)][1]
        return {"top1": 80.0 - drop, "fp32_top1": 80.0, "drop": drop, "margin": 0.4, "images": 1000}

    def offline(self, c):
        self.calls.append(("offline", c))
        time.sleep(self.sleep)
        return {"ips": self.ips(c), "latency_ms": self.batch_ms(c)}

    def server(self, c):
        self.calls.append(("server", c))
        time.sleep(self.sleep)
        return {"peak_qps": self.ips(c) * 0.85, "p_ms": self.batch_ms(c) * 1.9}


def space(variants=None, cores=CORES) -> Space:
    par = [Parallel(None, 1, None)] + [Parallel(t, s, None) for t, s in product((1, 2, 4), (1, 2, 4))
                                       if t * s <= 2 * cores and (t, s) != (cores, 1)]
    ov = [Parallel(None, 1, "latency"), Parallel(None, 1, "throughput"), Parallel(1, 1, "latency"),
          Parallel(2, 1, "latency")]
    return Space(list(variants or VARIANTS), [1, 2, 4, 8, 16, 32, 64],
                 {"onnxruntime": par, "openvino": ov, "torch": [Parallel(None), Parallel(1), Parallel(2)]}, cores)


def brute_force(m: StandIn, sp: Space, b: Bounds):
    """The known optimum: every candidate of every variant within the accuracy bound."""
    best = None
    for (be, p) in sp.variants:
        if m.variants[(be, p)][1] > b.max_drop:
            continue
        for par in sp.parallel[be]:
            for bs in sp.batches:
                c = Candidate(be, p, bs, par.threads, par.sessions, par.hint)
                if b.latency_ms is not None and (m.batch_ms(c) > b.latency_ms or 1.9 * m.batch_ms(c) > b.latency_ms):
                    continue
                v = m.ips(c)
                best = (v, c) if best is None or v > best[0] else best
    return best


def test_finds_the_known_optimum_and_times_a_fraction_of_the_space():
    m = StandIn()
    sp, b = space(), Bounds(max_drop=0.5)
    got = search(sp, m, b)
    want_ips, want = brute_force(m, sp, b)
    assert got["winner"]["key"] == want.key(), (got["winner"], want)
    full = search(sp, StandIn(), b, exhaustive=True)
    assert full["winner"]["value"] == pytest.approx(want_ips)
    assert got["timed"] <= 0.3 * full["timed"], (got["timed"], full["timed"])


def test_a_variant_over_the_accuracy_bound_is_never_timed():
    m = StandIn()
    got = search(space(), m, Bounds(max_drop=0.5, latency_ms=40.0))
    timed = {c.variant for kind, *rest in m.calls if kind != "accuracy" for c in rest}
    assert ("openvino", "int8") not in timed and got["pruned"] == ["openvino:int8"]
    assert ("accuracy", "openvino", "int8") in m.calls
    assert got["winner"]["candidate"]["precision"] == "int8" and got["winner"]["candidate"]["backend"] == "onnxruntime"


@pytest.mark.parametrize("seed", range(6))
def test_never_returns_a_candidate_that_breaks_either_bound(seed):
    import random

    rng = random.Random(seed)
    variants = {v: (rng.uniform(0.3, 3.0), rng.choice([0.0, 0.2, 0.6, 2.0])) for v in VARIANTS}
    m = StandIn(variants, overhead_ms=rng.uniform(0.5, 8), per_image_ms=rng.uniform(1, 12))
    b = Bounds(max_drop=0.5, latency_ms=rng.choice([10.0, 25.0, 60.0]))
    got = search(space(variants), m, b)
    w = got["winner"]
    if w is None:
        assert brute_force(m, space(variants), b) is None
        return
    c = Candidate(**w["candidate"])
    assert variants[c.variant][1] <= 0.5
    assert w["offline"]["latency_ms"] <= b.latency_ms and w["server"]["p_ms"] <= b.latency_ms
    best = brute_force(m, space(variants), b)
    assert w["value"] >= 0.95 * 0.85 * best[0]  # within 95 % of the exhaustive optimum's Server peak


def test_the_drop_that_cannot_be_told_from_over_the_bound_is_said_so():
    right = [True] * 190 + [False] * 10
    got = [True] * 189 + [False] * 11
    margin = paired_margin(right, got)
    assert 0.9 < margin < 1.1  # one image of 200 differs: ±0.98 points
    j = judge({"top1": 94.5, "fp32_top1": 95.0, "drop": 0.5, "margin": margin}, 0.5)
    assert j["passed"] and not j["confident"] and "cannot be told" in j["verdict"]
    assert judge({"top1": 93.0, "fp32_top1": 95.0, "drop": 2.0, "margin": margin}, 0.5)["passed"] is False


def test_stops_at_the_budget_with_the_best_so_far():
    now = [0.0]

    class Slow(StandIn):
        def offline(self, c):
            now[0] += 1.0  # each timing costs a second of the fake clock
            return super().offline(c)

    got = search(space(), Slow(), Bounds(max_drop=0.5), budget_s=5.0, clock=lambda: now[0])
    assert got["stopped"] == "budget" and got["timed"] == 5 and got["winner"] is not None


RESUME = """
import sys, json
sys.path.insert(0, {tests!r})
from test_tune import StandIn, space
from clsbench.flows.tune import Bounds, Recorded, search
m = Recorded(StandIn(sleep={sleep}), {folder!r}, {{"model": "stand-in"}}, {{"what": "test"}})
r = search(space(), m, Bounds(max_drop=0.5, latency_ms=40.0))
print(json.dumps({{"winner": r["winner"]["key"], "measured": m.measured, "reused": m.reused}}))
"""


def test_a_killed_tune_measures_only_what_is_missing(tmp_path):
    folder = tmp_path / "tries"
    script = RESUME.format(tests=str(Path(__file__).parent), folder=str(folder), sleep=0.05)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    p = subprocess.Popen([sys.executable, "-c", script], env=env, stdout=subprocess.PIPE)
    deadline = time.time() + 60
    while time.time() < deadline and len(list(folder.glob("*.json"))) < 12:
        time.sleep(0.01)
    os.kill(p.pid, signal.SIGKILL)
    p.wait()
    before = {f.name for f in folder.glob("*.json")}
    assert len(before) >= 12 and not list(folder.glob("*.tmp*"))
    done = subprocess.run([sys.executable, "-c", script.replace("sleep=0.05", "sleep=0.0")], env=env,
                          capture_output=True, text=True, check=True)
    out = json.loads(done.stdout)
    assert out["reused"] == len(before), out  # every finished try read back, none remeasured
    full = search(space(), StandIn(), Bounds(max_drop=0.5, latency_ms=40.0))
    assert out["winner"] == full["winner"]["key"]
    assert out["measured"] + out["reused"] == len(full["tries"])
    assert len(list(folder.glob("*.json"))) == len(full["tries"])


def test_a_changed_source_is_measured_again(tmp_path):
    m1 = Recorded(StandIn(), str(tmp_path), {"model": "a"})
    m1.offline(Candidate("onnxruntime", "fp32", 8))
    m2 = Recorded(StandIn(), str(tmp_path), {"model": "b"})
    m2.offline(Candidate("onnxruntime", "fp32", 8))
    m3 = Recorded(StandIn(), str(tmp_path), {"model": "a"})
    m3.offline(Candidate("onnxruntime", "fp32", 8))
    assert (m1.measured, m2.measured, m3.measured, m3.reused) == (1, 1, 0, 1)
    rec = json.loads(next(tmp_path.glob("offline-*.json")).read_text())
    assert rec["plan"] == {} and rec["candidate"]["batch"] == 8 and math.isfinite(rec["result"]["ips"])


@pytest.fixture(scope="module")
def proxy_tuned(tmp_path_factory, proxy_weights):
    """A real tune of the trained proxy on a small space: ONNX Runtime fp32 and int8 (through
    accuracy control), batches 1-4, on 72 images of its task (16 calibrate, 16 tune, 40 judge)."""
    from clsbench.data.proxy_task import write_images

    from helpers import run_cli

    d = tmp_path_factory.mktemp("tune")
    write_images(d / "data", 72, seed=3131)
    args = ("tune", "-q", "--weights", proxy_weights, "--data", d / "data", "--backends",
            "onnxruntime:fp32,onnxruntime:int8", "--batches", "1,2,4", "--calib-images", "16", "--tune-images", "16",
            "--duration", "0.2", "--repeats", "1", "--max-drop", "5", "--output", d / "out")
    first = run_cli(*args, env={"COLUMNS": "200"})
    return d, args, first


def test_a_real_tune_of_the_proxy(proxy_tuned):
    d, args, p = proxy_tuned
    rec = json.loads((d / "out" / "tune.json").read_text())
    s = rec["search"]
    assert s["winner"] and "winner:" in p.stdout and "clsbench run" in p.stdout
    assert set(s["accuracy"]) == {"onnxruntime:fp32", "onnxruntime:int8"}
    assert rec["split"]["held_out"] == 40 and rec["split"]["calib"] == 16 and rec["split"]["tune"] == 16
    held = set(rec["split"]["held_out_names"])
    for r in (d / "out" / "compiled").glob("*.compile.json"):  # nothing judged was calibrated or tuned on
        c = json.loads(r.read_text())
        assert not held & set(c["calibration_names"]) and not held & set(c["accuracy_control"]["tuning_names"])
    for f in (d / "out" / "tries").glob("*.json"):
        assert json.loads(f.read_text())["plan"]["model"]["key"].startswith("mnasnet1_0")
    assert {"pytorch_eager_fp32", "onnxruntime_defaults", "openvino_throughput_hint"} <= set(rec["baselines"])
    assert all(b.get("offline_ratio") for b in rec["baselines"].values()), rec["baselines"]
    html = (d / "out" / "report.html").read_text()
    assert f'data-field="search/winner/offline/ips" data-value="{s["winner"]["offline"]["ips"]!r}"' in html
    assert "data-candidate=" in html and "The search's path" in html
    again = json.loads((d / "out" / "tune.json").read_text())
    assert again["measured"] + again["reused"] >= len(s["tries"])


def test_the_tune_resumes_and_the_winner_reproduces(proxy_tuned):
    import shlex

    from helpers import run_cli

    d, args, _ = proxy_tuned
    rerun = run_cli(*args)
    rec = json.loads((d / "out" / "tune.json").read_text())
    assert rec["measured"] == 0 and rec["reused"] > 0, rerun.stdout  # everything read back
    w = rec["search"]["winner"]
    cmd = shlex.split(rec["winner_commands"]["run"])
    assert cmd[:2] == ["clsbench", "run"]
    run_cli(*cmd[1:], "-q")
    summary = json.loads((Path(cmd[cmd.index("--work-dir") + 1]) / "summary.json").read_text())
    assert summary["accuracy"]["images"] == rec["split"]["held_out"]
    assert summary["accuracy"]["top1"] == pytest.approx(rec["search"]["accuracy"][
        f"{w['candidate']['backend']}:{w['candidate']['precision']}"]["top1"], abs=1e-9)
    # its throughput within noise (a shared 2-core machine: within 3x of the tune's figure, per session)
    rate = summary["performance"]["compute_stability"]["median"]
    per_session = w["offline"]["ips"] / w["candidate"]["sessions"]
    assert per_session / 3 < rate < per_session * 3, (rate, w["offline"])


class Queueing(StandIn):
    """Offline, parallel sessions contend (each at half speed), so the Offline search stays at
    one; under a Server load one worker's batches queue behind one another (its peak collapses
    to 40 % of its Offline rate) where several workers fed by one batcher reach 85 %."""

    def offline(self, c):
        r = super().offline(c)
        return {**r, "ips": r["ips"] * (0.5 if c.sessions > 1 else 1.0)}

    def server(self, c):
        r = super().server(c)
        return {**r, "peak_qps": self.ips(c) * (0.4 if c.sessions == 1 else 0.85)}


def test_the_server_search_climbs_workers_from_the_offline_parallelism():
    m = Queueing()
    got = search(space([("onnxruntime", "fp32")]), m, Bounds(max_drop=0.5, latency_ms=60.0))
    served = [c for kind, *rest in m.calls if kind == "server" for c in rest]
    timed = [c for kind, *rest in m.calls if kind == "offline" for c in rest if m.batch_ms(c) <= 60.0]
    offline_best = max(timed, key=lambda c: Queueing().offline(c)["ips"])
    assert served[0] == offline_best and served[0].sessions == 1, (served[0], offline_best)  # the Offline search's
    assert any(c.sessions > 1 for c in served), served  # parallelism first, then workers
    w = got["winner"]
    assert w["candidate"]["sessions"] > 1, w
    assert w["value"] > 1.5 * Queueing().server(served[0])["peak_qps"], w  # the climb roughly doubled the start's peak
    assert any("Server climb" in p["why"] for p in got["path"])
    assert w["offline"]["latency_ms"] <= 60.0 and w["server"]["p_ms"] <= 60.0


def test_the_winners_loadgen_command_carries_its_workers():
    from types import SimpleNamespace

    from clsbench.flows.tune_flow import winner_commands

    real = SimpleNamespace(artifact=lambda b, p: ("/m.onnx", {}), p=None)
    w = {"candidate": Candidate("onnxruntime", "fp32", 4, 1, 2).as_dict(), "server": {"max_wait_ms": 10}}
    rec = {"search": {"winner": w}, "options": {"output": "/t", "latency_bound_ms": 100, "peak_steps": 3,
                                                "percentile": 90, "lg_duration": 0.5}}
    cmds = winner_commands(rec, real, "/h")
    lg = cmds["loadgen"].split()
    assert lg[lg.index("--workers") + 1] == "2" and lg[lg.index("--threads") + 1] == "1"
    # the tries as tune ran them: its --loadgen-duration and the query count it set (loadgen's defaults differ)
    assert lg[lg.index("--duration") + 1] == "0.5" and "min_query_count=64" in lg
    assert "--workers" not in cmds["run"] and "--workers 2" in cmds["note"]


def _rec(candidates, winner=None, stopped="searched", baselines=None, budget_min=None):
    """A tune.json of stand-in figures, for the terminal output."""
    return {"search": {"candidates": candidates, "space_size": 9, "stopped": stopped, "accuracy": {},
                       "winner": winner}, "options": {"percentile": 99.0, "latency_bound_ms": 100.0,
                                                      "budget_min": budget_min},
            "measured": 1, "reused": 0, "baselines": baselines or {}, "winner_commands": {}}


def test_the_terminal_table_marks_a_drop_that_cannot_be_told_and_rounds_the_peak(capsys):
    from clsbench.cli.tune_cmd import print_tune

    c = Candidate("onnxruntime", "int8", 2)
    row = {"label": c.label(), "top1": 60.0, "drop": 4.0, "margin": 7.76, "confident": False, "ips": 40.9,
           "server_qps": 38.123456789, "latency_ms": 50.0}
    w = {"label": c.label(), "offline": {"ips": 40.9}, "server": {"peak_qps": 38.123456789}}
    base = {"pytorch_eager_fp32": {"candidate": {}, "error": "torch: not installed"}}
    print_tune(_rec([row], w, baselines=base))
    got = capsys.readouterr().out
    assert "cannot be told" in got, got  # as the page says it (the drop + margin is over the bound)
    assert "38.1 QPS" in got and "38.123456789" not in got, got
    assert "pytorch_eager_fp32: not measured (torch: not installed)" in got, got
    assert "QPS at p99 <= bound" in got, got
    unbound = _rec([{**row, "server_qps": None}])
    unbound["options"]["latency_bound_ms"] = None
    print_tune(unbound)
    assert "<= bound" not in capsys.readouterr().out  # no bound given: no Server column


def test_a_budget_spent_before_any_timing_says_so_and_what_to_type(capsys):
    from clsbench.cli.tune_cmd import print_tune

    print_tune(_rec([], stopped="budget", budget_min=0.01))
    got = capsys.readouterr().out
    assert "--budget-min 0.01 budget ran out" in got and "larger --budget-min" in got, got


def test_the_held_out_folder_holds_exactly_this_tunes_images(tmp_path):
    """A rerun on other data (or another split) leaves no link of the earlier tune's images,
    and a name that now means another image points at it: `run` scores what tune judged."""
    from types import SimpleNamespace

    from clsbench.flows.tune_flow import write_held_out

    for d, names in (("d1", "abc"), ("d2", "bd")):
        (tmp_path / d / "val").mkdir(parents=True)
        for n in names:
            (tmp_path / d / "val" / f"{n}.JPEG").write_bytes(b"x")
    out = tmp_path / "out"
    write_held_out(SimpleNamespace(val=str(tmp_path / "d1" / "val"), names=["a", "b"], labels={"a": 1, "b": 2}), out)
    held = Path(write_held_out(SimpleNamespace(val=str(tmp_path / "d2" / "val"), names=["b", "d"],
                                               labels={"b": 3, "d": 4}), out))
    links = {p.name: os.path.realpath(p) for p in (held / "val").iterdir()}
    assert links == {"b.JPEG": str((tmp_path / "d2" / "val" / "b.JPEG").resolve()),
                     "d.JPEG": str((tmp_path / "d2" / "val" / "d.JPEG").resolve())}, links
    assert (held / "val_label.txt").read_text() == "b.JPEG 3\nd.JPEG 4\n"


def test_the_winners_run_command_runs_again_over_an_earlier_winners_run():
    from types import SimpleNamespace

    from clsbench.flows.tune_flow import winner_commands

    real = SimpleNamespace(artifact=lambda b, p: ("/m.onnx", {}), p=None)
    rec = {"search": {"winner": {"candidate": Candidate("onnxruntime", "fp32", 2).as_dict()}},
           "options": {"output": "/t", "latency_bound_ms": None}}
    run = winner_commands(rec, real, "/h")["run"].split()
    assert run[run.index("--work-dir") + 1] == "/t/winner-run" and "--overwrite" in run


def test_an_output_folder_of_another_command_or_around_the_data_is_refused(tmp_path):
    from clsbench import ClsbenchError
    from clsbench.flows.tune_flow import TuneOptions, run_tune

    data = tmp_path / "data"
    (data / "val").mkdir(parents=True)
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "summary.json").write_text("{}")
    (run_dir / "report.html").write_text("a run's page")
    with pytest.raises(ClsbenchError, match=r"--output .*run: holds another command's files \(summary.json\)"):
        run_tune("w.pth", str(data), TuneOptions(output=str(run_dir)))
    assert (run_dir / "report.html").read_text() == "a run's page"
    with pytest.raises(ClsbenchError, match=r"the --data folder .*heldout lies inside it"):  # an earlier tune's
        run_tune("w.pth", str(tmp_path / "t" / "heldout"), TuneOptions(output=str(tmp_path / "t")))
    (tmp_path / "f").write_text("")
    with pytest.raises(ClsbenchError, match="an existing file, not a folder"):
        run_tune("w.pth", str(data), TuneOptions(output=str(tmp_path / "f")))


def test_too_few_images_for_the_split_says_what_to_type():
    from clsbench import ClsbenchError
    from clsbench.flows.tune_flow import TuneOptions, split_notes
    from clsbench.flows.tune_measure import MIN_HELD_OUT, split_counts

    with pytest.raises(ClsbenchError, match="give --calib-images 5 --tune-images 5, or more images"):
        split_counts(30, 100, 100, "/d/val")
    assert split_counts(30, 5, 5, "/d/val") == (5, 5)  # the advice works
    with pytest.raises(ClsbenchError, match=f"give at least {MIN_HELD_OUT + 2} images"):
        split_counts(MIN_HELD_OUT, 1, 1, "/d/val")
    assert split_counts(90, 100, 20, "/d/val") == (30, 20)
    notes = split_notes({"images": 90, "calib": 30, "tune": 20}, TuneOptions(calib_images=100, tune_images=20))
    assert notes == ["--calib-images 100: 30 used (at most a third of the 90 images)"]


def test_a_baseline_without_throughput_is_recorded_not_a_crash():
    from clsbench.flows.tune_flow import baselines

    class NoRate:
        def offline(self, c):
            return {"ips": 0.0, "latency_ms": None}

    w = {"candidate": Candidate("onnxruntime", "fp32", 2).as_dict(), "offline": {"ips": 50.0}, "server": None}
    got = baselines(NoRate(), {"winner": w, "accuracy": {}}, space(), Bounds(0.5))
    assert got["onnxruntime_defaults"]["offline_ratio"] is None


def test_held_out_images_without_a_label_are_one_line_not_a_traceback():
    from clsbench import ClsbenchError
    from clsbench.flows.tune_measure import check_labelled

    check_labelled(["a", "b"], {"a": 1, "b": 2}, "/d/val_label.txt")
    with pytest.raises(ClsbenchError, match=r"/d/val_label.txt: no label for 1 of the 2 held-out images \(b\)"):
        check_labelled(["a", "b"], {"a": 1}, "/d/val_label.txt")


def test_no_winner_says_which_bound_and_what_to_type(capsys):
    from clsbench.cli.tune_cmd import print_tune

    c = Candidate("onnxruntime", "fp32", 1)
    row = {"label": c.label(), "top1": 64.0, "drop": 0.0, "margin": 0.0, "confident": True, "ips": 36.3,
           "server_qps": None, "latency_ms": 41.31}
    print_tune(_rec([row]))  # bound 100 ms in _rec's options
    assert "no candidate meets both bounds" in capsys.readouterr().out
    rec = _rec([row])
    rec["options"]["latency_bound_ms"] = 1.0
    print_tune(rec)
    assert "give a --latency-bound-ms above 41.31" in capsys.readouterr().out
    rec = _rec([])
    rec["options"]["max_drop"], rec["search"]["accuracy"] = 0.5, {"onnxruntime:int8": {
        "passed": False, "top1": 50.0, "drop": 14.0, "margin": 2.0, "verdict": "over the bound"}}
    print_tune(rec)
    assert "every variant is over --max-drop 0.5" in capsys.readouterr().out


def test_empty_backends_say_what_to_type():
    from clsbench import ClsbenchError
    from clsbench.flows.tune_flow import TuneOptions, build_space

    with pytest.raises(ClsbenchError, match="names no backend; give e.g. --backends onnxruntime,openvino"):
        build_space(TuneOptions(backends=" , "), 2)


def test_a_try_file_without_its_result_is_measured_again(tmp_path):
    m = Recorded(StandIn(), str(tmp_path), {"x": 1})
    m.offline(Candidate("onnxruntime", "fp32", 8))
    f = next(tmp_path.glob("offline-*.json"))
    for broken in ({**json.loads(f.read_text()), "result": None}, "[1, 2", [1]):
        f.write_text(broken if isinstance(broken, str) else json.dumps(broken))
        again = Recorded(StandIn(), str(tmp_path), {"x": 1})
        assert math.isfinite(again.offline(Candidate("onnxruntime", "fp32", 8))["ips"]) and again.measured == 1


def test_a_resumed_tune_still_names_and_checks_every_artifact():
    from clsbench import ClsbenchError
    from clsbench.flows.tune_flow import name_artifacts

    class Real:
        def __init__(self):
            self.compiled = {}

        def artifact(self, b, p):
            if b == "torch":
                raise ClsbenchError("torch: runs PyTorch weights")
            self.compiled[f"{b}:{p}"] = {"artifact": f"/c/{b}.{p}"}
            return f"/c/{b}.{p}", {}

    real = Real()
    name_artifacts(real, [("onnxruntime", "int8"), ("torch", "fp32")])
    assert real.compiled == {"onnxruntime:int8": {"artifact": "/c/onnxruntime.int8"}}


def test_a_tune_refused_before_measuring_leaves_no_output_folder(tmp_path):
    from helpers import run_cli, tiny_classifier

    model = tiny_classifier(tmp_path / "m.onnx", size=224)
    (tmp_path / "unlabelled" / "val").mkdir(parents=True)
    from PIL import Image

    for i in range(4):
        Image.new("RGB", (32, 32), (i * 40, 9, 9)).save(tmp_path / "unlabelled" / "val" / f"i{i}.JPEG")
    for data in (tmp_path / "missing", tmp_path / "unlabelled"):
        p = run_cli("tune", "--weights", model, "--data", data, "--output", tmp_path / "out", check=False)
        assert p.returncode == 2 and "Traceback" not in p.stderr, p.stderr
        assert not (tmp_path / "out").exists()  # was: an empty folder (and export/) left behind
