"""`clsbench run --engine ray`: the local engine's result.json and outputs, byte for byte, on a
head node the runs join (--ray-address), on a local instance a run starts itself and on a
simulated two-node cluster; an actor killed and a node removed
mid-run; a corrupt JPEG listed as locally; resume. Ray runs only inside a loopback-only
network namespace (`unshare -n`), with usage stats off and its temp folder removed after."""
from __future__ import annotations

import filecmp
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from helpers import installed, run_cli

pytestmark = pytest.mark.skipif(not installed("ray"), reason="pip install 'clsbench[ray]' (make test installs it)")
HARNESS = Path(__file__).with_name("ray_harness.py")


def in_netns(args: list[str], env: dict, timeout: int = 300) -> subprocess.CompletedProcess:
    inner = "(ip link set lo up 2>/dev/null || true); exec " + shlex.join(map(str, args))
    return subprocess.run(["unshare", "-n", "sh", "-c", inner], env=env, capture_output=True, text=True,
                          timeout=timeout)


@pytest.fixture(scope="module")
def ray_env():
    """Ray's temp folder: short (its socket paths must fit 107 bytes), removed afterwards;
    a hang fails within a minute (Ray Data's wait for actors lowered from 600 s)."""
    home_before = set(os.listdir(os.path.expanduser("~")))
    tmp_before = {n for n in os.listdir(tempfile.gettempdir()) if "ray" in n.lower()}
    tmp = tempfile.mkdtemp(prefix="cbray-")
    env = dict(os.environ, RAY_USAGE_STATS_ENABLED="0", RAY_TMPDIR=tmp, CLSBENCH_RAY_WAIT_S="60",
               PYTHONPATH=os.pathsep.join([str(Path(__file__).parents[1] / "src"), os.environ.get("PYTHONPATH", "")]))
    yield env
    shutil.rmtree(tmp, ignore_errors=True)
    assert set(os.listdir(os.path.expanduser("~"))) == home_before  # nothing left in the home folder
    assert {n for n in os.listdir(tempfile.gettempdir()) if "ray" in n.lower()} == tmp_before


@pytest.fixture(scope="module")
def data_with_bad_file(tmp_path_factory, proxy_dataset):
    d = tmp_path_factory.mktemp("raydata") / "data"
    shutil.copytree(proxy_dataset, d)
    # in the middle of the listing (not last): a decoded batch with a hole, so each output must
    # be placed by its image's index, not its position
    (d / "val" / "proxy_2024_000013b.JPEG").write_bytes(b"\xff\xd8\xff\xe0 truncated")
    return d


@pytest.fixture(scope="module")
def local_run(tmp_path_factory, proxy_onnx, data_with_bad_file):
    work = tmp_path_factory.mktemp("local") / "w"
    run_cli("run", "-q", "--weights", proxy_onnx, "--data", data_with_bad_file, "--batch-size", "4",
            "--stream", "--work-dir", work)
    return work


class Head:
    """A running head node: the process holding its namespace, its address, its environment."""

    def __init__(self, proc, address, env):
        self.proc, self.address, self.env = proc, address, env

    def run(self, args: list, env: dict | None = None) -> subprocess.CompletedProcess:
        """`args` inside the head's namespace (loopback only), joined to it by --ray-address;
        `env` (default: the head's) must hold the head's token."""
        return subprocess.run(["nsenter", "-t", str(self.proc.pid), "-n", *map(str, args),
                               "--ray-address", self.address], env=env or self.env,
                              capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def ray_head(ray_env):
    """One head node for the runs that join a cluster (--ray-address), started once in a
    loopback-only namespace of its own that each run enters (nsenter): a run then pays for its
    job, not for starting and stopping Ray. Starting a local instance: the actor-killed test."""
    import time

    env = dict(ray_env, RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=os.urandom(16).hex())
    log = Path(ray_env["RAY_TMPDIR"]) / "head.log"
    inner = "(ip link set lo up 2>/dev/null || true); exec " + shlex.join([sys.executable, str(HARNESS), "head", "2"])
    with open(log, "w") as out:
        proc = subprocess.Popen(["unshare", "-n", "sh", "-c", inner], env=env, stdin=subprocess.PIPE,
                                stdout=out, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 120
    while not (said := [ln.split()[1] for ln in log.read_text().splitlines() if ln.startswith("address ")]):
        assert proc.poll() is None and time.monotonic() < deadline, log.read_text()
        time.sleep(0.2)
    yield Head(proc, said[0], env)
    proc.stdin.close()  # the harness shuts the cluster down
    try:
        proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def ray_run(env, weights, data, work, *extra, head: Head | None = None, timeout: int = 300):
    args = [sys.executable, "-m", "clsbench.cli", "run", "-q", "--engine", "ray", "--weights", weights,
            "--data", data, "--batch-size", "4", "--workers", "1", "--work-dir", work, *extra]
    return head.run(args, env) if head else in_netns(args, env, timeout)


def assert_same_run(work: Path, local: Path):
    assert (work / "result.json").read_bytes() == (local / "result.json").read_bytes()
    a, b = work / "result/dumpOutput_device0", local / "result/dumpOutput_device0"
    names = sorted(os.listdir(b))
    assert sorted(os.listdir(a)) == names and len(names) == 29  # every good image exactly once
    match, mismatch, errors = filecmp.cmpfiles(a, b, names, shallow=False)
    assert not mismatch and not errors  # the same logits, to the last digit written
    s, ls = (json.loads((w / "summary.json").read_text()) for w in (work, local))
    assert [Path(u["file"]).name for u in s["dataset"]["unreadable"]] == ["proxy_2024_000013b.JPEG"]
    # the same list, byte for byte: the path as the user gave it, the same message
    assert s["dataset"]["unreadable"] == ls["dataset"]["unreadable"]
    assert s["accuracy"] == ls["accuracy"]
    return s


def test_ray_engine_equals_local_engine_and_resumes(ray_head, proxy_onnx, data_with_bad_file, local_run, tmp_path):
    work = tmp_path / "ray"
    p = ray_run(ray_head.env, proxy_onnx, data_with_bad_file, work, head=ray_head)
    assert p.returncode == 0, p.stdout + p.stderr
    s = assert_same_run(work, local_run)
    b = s["performance"]["backend"]
    assert b["engine"] == "ray" and b["processes"] == 1 and b["threads"] == 1 and b["duplicates"] == 0
    # decode (tasks) and inference (actors) ran as two operators, not fused into one
    assert any(op.endswith("MapBatches(decode_batch)") for op in b["ray_operators"]), b["ray_operators"]
    assert "MapBatches(Infer)" in b["ray_operators"], b["ray_operators"]
    assert "1 unreadable images skipped" in p.stdout and "proxy_2024_000013b.JPEG" in p.stdout
    # interrupted: some outputs lost -> a rerun redoes only those, and the same result.json
    dump = work / "result/dumpOutput_device0"
    for n in sorted(os.listdir(dump))[:10]:
        (dump / n).unlink()
    p = ray_run(ray_head.env, proxy_onnx, data_with_bad_file, work, head=ray_head)
    assert p.returncode == 0, p.stdout + p.stderr
    s = assert_same_run(work, local_run)
    assert s["performance"]["resumed"] == 19 and s["performance"]["samples"] == 10


def test_ray_actor_killed_mid_run(ray_env, ray_head, proxy_onnx, data_with_bad_file, local_run, tmp_path):
    """A run without --ray-address starts a local instance of its own (its actors read the
    environment set here), even with another cluster's address in Ray's temp folder: the
    head's, unreachable from this run's namespace (Ray's default would join it and hang)."""
    marker = tmp_path / "died"
    faults = Path(__file__).parent / "faults"  # its sitecustomize wraps the actor: no hook in clsbench
    env = dict(ray_env, CLSBENCH_FAULT_RAY_DIE=f"{marker}:2",  # the actor exits at its 3rd batch
               PYTHONPATH=os.pathsep.join([str(faults), ray_env["PYTHONPATH"]]))
    p = ray_run(env, proxy_onnx, data_with_bad_file, tmp_path / "ray", timeout=150)  # ~15-25 s here
    assert p.returncode == 0, p.stdout + p.stderr
    assert marker.exists()  # it did die
    assert_same_run(tmp_path / "ray", local_run)


def test_two_node_cluster_with_a_node_removed_mid_run(ray_env, proxy_onnx, data_with_bad_file, local_run,
                                                     tmp_path):
    """A head and a worker node on loopback; the worker node is killed once 8 outputs exist:
    the run completes with every image exactly once and the local engine's result.json."""
    scenario, out = "cluster-remove-node", tmp_path / "out.json"
    p = in_netns([sys.executable, HARNESS, scenario, proxy_onnx, data_with_bad_file, tmp_path / "ray", out],
                 ray_env, timeout=400)
    assert p.returncode == 0, p.stdout + p.stderr
    r = json.loads(out.read_text())
    assert r["summary"]["performance"]["backend"]["cluster_cpus"] == 5  # head 3 + worker 2
    s = assert_same_run(tmp_path / "ray", local_run)
    assert r["removed_after"] is not None and r["removed_after"] < 29  # removed mid-run
    assert s["performance"]["backend"]["duplicates"] == 0


def test_ray_parquet_output_holds_the_local_runs_logits(ray_head, proxy_onnx, data_with_bad_file, local_run,
                                                        tmp_path):
    """--outfmt parquet on Ray: the driver writes parts; every good image once, the local text
    run's logits bit for bit, the same result.json."""
    import numpy as np
    import pyarrow.parquet as pq

    work = tmp_path / "ray"
    p = ray_run(dict(ray_head.env, CLSBENCH_PARQUET_ROWS="10"), proxy_onnx, data_with_bad_file, work,
                "--outfmt", "parquet", head=ray_head)
    assert p.returncode == 0, p.stdout + p.stderr
    assert (work / "result.json").read_bytes() == (local_run / "result.json").read_bytes()
    parts = sorted((work / "result/outputs_device0.parquet").glob("part-*.parquet"))
    assert [pq.read_metadata(x).num_rows for x in parts] == [10, 10, 9]
    rows = [r for x in parts for r in pq.read_table(x).to_pylist()]
    dump = local_run / "result/dumpOutput_device0"
    assert sorted(r["image"] for r in rows) == sorted(n[:-len("_1.txt")] for n in os.listdir(dump))
    for r in rows:
        text = np.array([np.float32(v) for v in (dump / f"{r['image']}_1.txt").read_text().split()])
        assert np.array_equal(np.array(r["logits"], np.float32), text)


def test_ray_refuses_an_actor_pool_that_takes_every_cpu():
    from clsbench import ClsbenchError
    from clsbench.runtime.engines.raydata import plan_actors

    assert plan_actors(4, None) == 3 and plan_actors(2, None) == 1 and plan_actors(16, 4) == 4
    for cpus, actors in ((2, 2), (4, 4), (1, None)):
        with pytest.raises(ClsbenchError, match="leave none to decode"):
            plan_actors(cpus, actors)


def test_the_local_engine_never_imports_ray(onnx_model, tiny_dataset, tmp_path):
    code = ("import sys; from clsbench.measure.infer import infer_offline; from clsbench.model.table import get_preprocessing;"
            f"infer_offline({str(onnx_model)!r}, images={str(tiny_dataset / 'val')!r}, batch_size=4, "
            f"preprocessing=get_preprocessing('mnasnet'), output={str(tmp_path / 'r')!r}, show_progress=False);"
            "assert 'ray' not in sys.modules, 'ray imported'")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr


def test_perf_cells_on_ray_merge_into_the_local_table(ray_head, onnx_model, tmp_path):
    """`perf --engine ray`: every cell measured as a Ray task, the same rows in the same order
    as the local engine's sweep, raw latencies written by the driver, each row naming its node."""
    args = ["perf", "-q", "--model", onnx_model, "--batches", "1,2", "--duration", "0", "--iterations", "4",
            "--warmup", "0", "--repeats", "2"]
    run_cli(*args, "--output", tmp_path / "local")
    p = ray_head.run([sys.executable, "-m", "clsbench.cli", *map(str, args), "--output", tmp_path / "ray",
                      "--engine", "ray"])
    assert p.returncode == 0, p.stdout + p.stderr
    local, ray_ = (json.loads((tmp_path / d / "perf.json").read_text()) for d in ("local", "ray"))
    key = [(r["backend"], r["precision"], r["batch_size"], r["input"]) for r in local["rows"]]
    assert [(r["backend"], r["precision"], r["batch_size"], r["input"]) for r in ray_["rows"]] == key
    for r in ray_["rows"]:
        assert r["engine"] == "ray" and r["node"]["ray_node_id"] and r["iterations"] >= 4
        lines = (tmp_path / "ray" / r["latencies_csv"]).read_text().splitlines()
        assert len(lines) == r["iterations"] + 1
    assert (tmp_path / "ray" / "report.html").exists()
