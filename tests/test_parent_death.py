"""Every process a clsbench command starts dies with it (issue 33): the command runs as a real
process in a session of its own; once its children exist (/proc), the command alone is killed
with SIGKILL (no handler, no cleanup of its own can run); within a few seconds no process of
its session may be alive and no output may appear after.

Paths that start processes, and where they are tested:
- `preprocess` with several workers (data.preprocess.parallel_map; also `run`'s preprocess
  step and `--stream`'s pool go through `_io.worker_start`): here;
- `run --stream` workers (runtime/engines/stream.py): tests/test_survivors.py;
- `run --engine ray` with a local instance of its own (runtime/engines/raydata.connect:
  `ray.init(address="local")`: GCS, raylet, its workers, the dashboard agent...): here, in a
  loopback-only network namespace as tests/test_ray.py runs Ray. What must not outlive the
  killed driver is that instance: every process of it is in the driver's session. Ray kills
  its GCS and raylet with the driver, but the raylet's dashboard and runtime-env agents lived
  ~60 s more (measured here: 61-62 s; they report the raylet's death to the dead GCS with a
  60 s timeout): raydata now starts a watcher with a local instance (`_watch_local_instance`);
- `loadgen` starts no process (LoadGen's and the SUT's threads run in the command's own
  process): here, a check that it still starts none, so a change that adds one is caught;
- the feeder engine (`--backend cuda`, runtime/engines/feeder.py) needs a GPU: not here (its
  decode workers start with `_io.worker_start` too).

Processes are found through /proc: a process's session (field 6 of /proc/PID/stat) is the
killed command's pid, as `start_new_session` made it, unless it left the session (none of
these do: a process that calls setsid() would escape this check, so its descendants found
before the kill are checked too)."""
from __future__ import annotations

import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from helpers import PHOTO_CASES, default_sigint, installed, photo, stamped


# ---------------------------------------------------------------- /proc

def _stat(pid: int) -> list[str] | None:
    """Fields after the command name: state, ppid, pgrp, session, ..."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def _pids() -> list[int]:
    return [int(d) for d in os.listdir("/proc") if d.isdigit()]


def _alive(pid: int) -> bool:
    s = _stat(pid)
    return s is not None and s[0] not in ("Z", "X")


def _descendants(root: int) -> set[int]:
    children: dict[int, list[int]] = {}
    for pid in _pids():
        s = _stat(pid)
        if s:
            children.setdefault(int(s[1]), []).append(pid)
    out, todo = set(), [root]
    while todo:
        for c in children.get(todo.pop(), []):
            if c not in out:
                out.add(c)
                todo.append(c)
    return out


def _session(sid: int) -> set[int]:
    return {pid for pid in _pids() if (s := _stat(pid)) and int(s[3]) == sid and s[0] not in ("Z", "X")}


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()[:160]
    except OSError:
        return "?"


def _count(folder: Path, suffix: str = "") -> int:
    try:
        return sum(1 for n in os.listdir(folder) if not n.startswith(".") and n.endswith(suffix))
    except FileNotFoundError:
        return 0


# ---------------------------------------------------------------- start, kill, watch

def _start(cmd: list, env: dict | None = None, log: Path | None = None) -> subprocess.Popen:
    out = open(log, "w") if log else subprocess.DEVNULL
    try:
        return subprocess.Popen([str(c) for c in cmd], stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                env=env, start_new_session=True, preexec_fn=default_sigint)
    finally:
        if log:
            out.close()


def _wait_until(p: subprocess.Popen, ready, timeout: float, what: str, log: Path | None) -> None:
    t0 = time.monotonic()
    while not ready():
        if p.poll() is not None or time.monotonic() - t0 > timeout:
            text = log.read_text()[-3000:] if log and log.exists() else ""
            raise AssertionError(f"{what}: not reached (exit {p.poll()}, {time.monotonic() - t0:.0f} s)\n{text}")
        time.sleep(0.02)


def kill_and_check(p: subprocess.Popen, outputs: Path, suffix: str, grace: float) -> dict:
    """SIGKILL to the command alone; every process of its session, and every descendant seen
    before, must be gone within `grace` s; the outputs must not grow after. Returns what was
    seen, for the caller's own premises."""
    assert p.poll() is None, "the command ended before it was killed"
    before = (_descendants(p.pid) | _session(p.pid)) - {p.pid}
    names = {pid: _cmdline(pid) for pid in before}
    os.kill(p.pid, signal.SIGKILL)
    p.wait(timeout=30)
    t_kill = time.monotonic()
    time.sleep(0.3)  # a write under way when the kill came may land
    at_kill = _count(outputs, suffix)
    deadline = t_kill + grace
    left = before
    while time.monotonic() < deadline:
        left = {pid for pid in before if _alive(pid)} | _session(p.pid)
        if not left:
            break
        time.sleep(0.05)
    gone_after = time.monotonic() - t_kill
    try:
        assert not left, (f"alive {grace:g} s after the parent was killed: "
                          + "; ".join(f"{pid} {_cmdline(pid)}" for pid in sorted(left)))
    finally:
        for pid in left:  # never leave them running, whatever the verdict
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
    time.sleep(1.0)
    assert _count(outputs, suffix) == at_kill, "outputs written after the parent was killed"
    return {"children": names, "at_kill": at_kill, "gone_after_s": gone_after}


def _cleanup(p: subprocess.Popen) -> None:
    """Whatever happened: nothing of the session survives the test."""
    if p.poll() is None:
        p.kill()
        p.wait()
    for pid in _session(p.pid):
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass


# ---------------------------------------------------------------- preprocess workers

def _big_photos(folder: Path, count: int) -> Path:
    """`count` copies of a large JPEG: each takes a worker some ms to decode and resize."""
    folder.mkdir(parents=True)
    name, src, size = next(c for c in PHOTO_CASES if c[0] == "large.jpg")
    first = folder / "img0000.jpg"
    photo(src).resize(size).save(first, quality=90)
    for i in range(1, count):
        os.link(first, folder / f"img{i:04d}.jpg")
    return folder


def test_preprocess_workers_die_with_a_killed_parent(tmp_path):
    src, dst, log = _big_photos(tmp_path / "photos", 600), tmp_path / "bins", tmp_path / "log"
    p = _start([sys.executable, "-m", "clsbench.cli", "preprocess", "-q", "--workers", "2", src, dst], log=log)
    try:
        workers = lambda: [c for c in map(_cmdline, _descendants(p.pid)) if "spawn_main" in c]  # noqa: E731
        _wait_until(p, lambda: len(workers()) == 2 and _count(dst, ".bin") >= 8, 120, "two workers and 8 .bin files",
                    log)
        seen = kill_and_check(p, dst, ".bin", grace=3)
        assert sum("spawn_main" in c for c in seen["children"].values()) == 2, seen["children"]  # premise
        assert seen["at_kill"] < 600  # premise: cut short
    finally:
        _cleanup(p)


# ---------------------------------------------------------------- loadgen: no process of its own

@pytest.mark.skipif(not installed("mlperf_loadgen"), reason="pip install 'clsbench[loadgen]' (make test installs it)")
def test_loadgen_starts_no_process_and_stops_with_its_parent(tmp_path):
    """LoadGen's issuing threads and the SUT's batcher are threads of the command: while a run
    is under way (LoadGen's log folder exists) it has no child process; killed, nothing of it
    goes on writing."""
    from clsbench.data.proxy_task import write_images

    write_images(tmp_path / "data", 16, seed=3)
    model = stamped(tmp_path / "m.onnx", "resnet18:IMAGENET1K_V1")
    out, log = tmp_path / "lg", tmp_path / "log"
    p = _start([sys.executable, "-m", "clsbench.cli", "loadgen", "-q", "--model", model, "--data", tmp_path / "data",
                "--scenario", "server", "--target-qps", "50", "--duration", "30", "--output", out], log=log)
    seen_children: set[int] = set()

    def running() -> bool:
        seen_children.update(_descendants(p.pid))
        return any(out.rglob("mlperf_log_detail.txt"))

    try:
        _wait_until(p, running, 120, "a LoadGen run under way", log)
        time.sleep(0.5)
        seen_children.update(_descendants(p.pid))
        assert seen_children == set(), {c: _cmdline(c) for c in seen_children}
        files = lambda: sum(f.stat().st_size for f in out.rglob("*") if f.is_file())  # noqa: E731
        kill_and_check(p, out, "", grace=3)
        size = files()
        time.sleep(0.5)
        assert files() == size
    finally:
        _cleanup(p)


# ---------------------------------------------------------------- Ray: a local instance of its own

@pytest.mark.skipif(not installed("ray"), reason="pip install 'clsbench[ray]' (make test installs it)")
def test_ray_local_instance_dies_with_a_killed_driver(tmp_path, ray_env):
    """`run --engine ray` without --ray-address starts Ray itself (GCS, raylet, workers,
    agents; and the watcher clsbench starts with it); killed once its actor runs, none of that
    instance may outlive it. Inside a loopback-only namespace (`unshare -n`, exec'ed into the
    driver: the pid killed is the driver's)."""
    from clsbench.data.proxy_task import write_images

    write_images(tmp_path / "data", 400, seed=9)
    model = stamped(tmp_path / "m.onnx", "resnet18:IMAGENET1K_V1")
    work, log = tmp_path / "w", tmp_path / "log"
    dump = work / "result" / "dumpOutput_device0"
    run = [sys.executable, "-m", "clsbench.cli", "run", "-q", "--engine", "ray", "--workers", "1", "--batch-size", "2",
           "--weights", model, "--data", tmp_path / "data", "--work-dir", work]
    inner = "(ip link set lo up 2>/dev/null || true); exec " + shlex.join(map(str, run))
    p = _start(["unshare", "-n", "sh", "-c", inner], env=ray_env, log=log)
    try:
        _wait_until(p, lambda: _count(dump) >= 4, 150, "a Ray run writing outputs", log)
        seen = kill_and_check(p, dump, "", grace=5)
        kinds = " ".join(seen["children"].values())
        assert "raylet" in kinds and "gcs_server" in kinds, seen["children"]  # premise: its own instance
        assert seen["at_kill"] < 400
    finally:
        _cleanup(p)


if installed("ray"):
    from test_ray import ray_env  # noqa: E402,F401
