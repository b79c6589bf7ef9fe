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
                                                "percentile": 90}}
    cmds = winner_commands(rec, real, "/h")
    lg = cmds["loadgen"].split()
    assert lg[lg.index("--workers") + 1] == "2" and lg[lg.index("--threads") + 1] == "1"
    assert "--workers" not in cmds["run"] and "--workers 2" in cmds["note"]
