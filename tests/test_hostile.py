"""Hostile and broken inputs (issue "escaped reports, bounded waits, no orphans, no
tracebacks"): files a user can be handed — crafted model metadata, foreign Parquet parts, zip
bombs, FIFOs, symlinks planted where clsbench writes — and kills that must not leave workers
behind. Each is a one-line error (exit 2) or a refusal before any damage. The report
injection cases render in headless Chromium in test_report_browser.py."""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import zipfile

import pytest

from helpers import run_cli, stamped, tiny_classifier


def one_line_error(p, *needles):
    assert p.returncode == 2, p.stdout + p.stderr
    assert "Traceback" not in p.stderr and len(p.stderr.strip().splitlines()) == 1, p.stderr
    for n in needles:
        assert n in p.stderr, (n, p.stderr)


# ---------------------------------------------------------------- crafted model metadata

@pytest.mark.parametrize("meta,needle", [
    ({"preprocessing": "{not json"}, "metadata clsbench.preprocessing is not JSON"),
    ({"preprocessing": json.dumps({"resize": 256, "crop": 224, "mean": [0.5] * 3, "std": [0.5] * 3, "evil": 1})},
     "unknown field 'evil'"),
    ({"preprocessing": json.dumps({"resize": "256", "crop": 224, "mean": [0.5] * 3, "std": [0.5] * 3})},
     "field 'resize' is str"),
    ({"preprocessing": json.dumps({"resize": 256, "crop": 224, "mean": [0.5, "x", 0.5], "std": [0.5] * 3})},
     "field 'mean' must be three numbers"),
    ({"preprocessing": json.dumps([1, 2])}, "expected an object"),
    ({"weights_tag": "IMAGENET1K_V1"}, "weights_tag 'IMAGENET1K_V1' without clsbench.architecture"),
    ({"weights_tag": "X", "architecture": "resnet18"}, "architecture/weights_tag: resnet18 has no weights 'X'"),
    ({"weights_tag": "a", "architecture": "timm:x", "num_classes": "many"}, "num_classes 'many'"),
])
def test_crafted_onnx_metadata_is_a_one_line_error(tmp_path, tiny_dataset, meta, needle):
    model = tiny_classifier(tmp_path / "m.onnx", meta=meta)
    args = ["--weights", model, "--data", tiny_dataset, "--work-dir", tmp_path / "w", "--dry-run"]
    one_line_error(run_cli("run", *args, check=False), str(model), needle)


@pytest.mark.parametrize("value", ["[1,2]", "{not json", '{"mean": [0.5, 0.5], "std": [1, 1, 1]}',
                                   '{"mean": ["a", 0, 0], "std": [1, 1, 1]}'])
def test_crafted_folded_normalization_is_refused(value):
    """What a uint8-input model says it folded in decides which crops it takes: checked."""
    from clsbench import ClsbenchError
    from clsbench.model.fold import FOLDED_KEY, folded

    with pytest.raises(ClsbenchError, match="not the mean and std a folded model records"):
        folded({FOLDED_KEY: value})
    assert folded({FOLDED_KEY: '{"mean": [0.5, 0.5, 0.5], "std": [1, 1, 1]}'})["std"] == [1, 1, 1]


def test_parquet_part_with_another_schema_is_a_one_line_error(tmp_path, tiny_dataset):
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    d = tmp_path / "outputs_device0.parquet"
    d.mkdir()
    pq.write_table(pa.table({"image": [1, 2], "logits": ["a", "b"]}), d / "part-00000.parquet")
    p = run_cli("eval", d, tiny_dataset / "val_label.txt", tmp_path, "r.json", check=False)
    one_line_error(p, "part-00000.parquet", "column 'image' is int64")
    pq.write_table(pa.table({"name": ["x"]}), d / "part-00000.parquet")
    p = run_cli("eval", d, tiny_dataset / "val_label.txt", tmp_path, "r.json", check=False)
    one_line_error(p, "no column 'image'")


# ---------------------------------------------------------------- resource bombs and blocking files

def test_zip_bomb_pth_is_refused_from_its_directory(tmp_path):
    bomb = tmp_path / "bomb.pth"
    with zipfile.ZipFile(bomb, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as z:
        with z.open("archive/data/0", "w", force_zip64=True) as f:
            block = bytes(1 << 20)
            for _ in range(300):  # 300 MB of zeros in about 300 kB
                f.write(block)
    assert bomb.stat().st_size < 2 << 20
    t0 = time.perf_counter()
    p = run_cli("export", "--weights", bomb, "--output", tmp_path / "m.onnx", check=False)
    one_line_error(p, "bomb.pth", "declares 314,572,800 bytes")
    assert time.perf_counter() - t0 < 60


def test_fifo_as_weights_is_refused_not_waited_on(tmp_path, tiny_dataset):
    fifo = tmp_path / "weights.onnx"
    os.mkfifo(fifo)
    for args in (["run", "--weights", fifo, "--data", tiny_dataset, "--work-dir", tmp_path / "w"],
                 ["infer", "--model", fifo, "--loop", "1"], ["export", "--weights", fifo, "--output", tmp_path / "o"]):
        p = subprocess.run([sys.executable, "-m", "clsbench.cli", *map(str, args)], capture_output=True, text=True,
                           timeout=60)
        one_line_error(p, "not a regular file")


def test_a_wrong_path_is_told_before_any_slow_step(tmp_path):
    """export refused a missing weights file only after importing torch (6 s here, for a
    one-line error); demo built its photo folder first and left it behind."""
    code = ("import sys\nfrom clsbench import ClsbenchError\nfrom clsbench.compile.export import export_onnx\n"
            f"try:\n    export_onnx({str(tmp_path / 'missing.pth')!r}, 'o.onnx')\n"
            "except ClsbenchError as e:\n    print(e)\nassert 'torch' not in sys.modules, 'torch imported'")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path)
    assert p.returncode == 0 and "missing.pth: weights file not found" in p.stdout, p.stdout + p.stderr
    for extra, needle in ((["--weights", tmp_path / "missing.pth"], "missing.pth: weights/model file not found"),
                          (["--batch-size", "0"], "argument --batch-size: must be a whole number >= 1, got '0'")):
        p = run_cli("demo", "--work-dir", tmp_path / "d", *extra, check=False)
        one_line_error(p, needle)
        assert not (tmp_path / "d").exists()


@pytest.mark.parametrize("how", ["batch", "input"])
def test_memory_bombs_refused_up_front(tmp_path, tiny_dataset, how):
    if how == "batch":
        model, extra = stamped(tmp_path / "m.onnx", "mnasnet1_0"), ["--batch-size", "100000000"]
    else:
        model, extra = tiny_classifier(tmp_path / "m.onnx", size=1_000_000), ["--crop", "1000000", "--resize",
                                                                                 "1000000"]
    p = run_cli("run", "--weights", model, "--data", tiny_dataset, "--work-dir", tmp_path / "w", *extra, check=False)
    one_line_error(p, "GiB, more than the")
    assert not (tmp_path / "w").exists()


def test_a_huge_sparse_image_is_skipped_unread(tmp_path, proxy_onnx, proxy_dataset):
    """A 2 GB sparse .JPEG: skipped from its size, with the message the Ray engine gives too."""
    data = tmp_path / "d"
    shutil.copytree(proxy_dataset, data)
    with open(data / "val" / "proxy_2024_000003b.JPEG", "wb") as f:
        f.truncate(2 << 30)
    p = run_cli("run", "--weights", proxy_onnx, "--data", data, "--work-dir", tmp_path / "w", "--stream", "-q")
    s = json.loads((tmp_path / "w/summary.json").read_text())
    assert [u["error"] for u in s["dataset"]["unreadable"]] == [
        f"{data / 'val' / 'proxy_2024_000003b.JPEG'}: 2,147,483,648 bytes, larger than any image clsbench decodes "
        f"(256 MB); skipped unread"]
    assert s["accuracy"]["images"] == 29 and "1 unreadable images skipped" in p.stdout


# ---------------------------------------------------------------- locks and temp files

def test_the_lock_is_on_the_folder_however_it_is_spelled(tmp_path):
    """A run holding the work dir; a second one through a symlink to it is refused."""
    work = tmp_path / "real"
    work.mkdir()
    (tmp_path / "link").symlink_to(work)
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time; from clsbench._io import folder_lock\n"
                               f"with folder_lock({str(work)!r}):\n    print('held', flush=True); time.sleep(60)"],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        from clsbench import ClsbenchError
        from clsbench._io import folder_lock

        with pytest.raises(ClsbenchError, match="in use by another clsbench process"):
            with folder_lock(tmp_path / "link"):
                pass
    finally:
        holder.kill()
        holder.wait()


def test_a_symlink_planted_at_the_old_temp_name_is_never_followed(tmp_path):
    from clsbench._io import atomic_write_text

    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    (tmp_path / f".report.html.{os.getpid()}.tmp").symlink_to(victim)  # the name 0.1 used
    atomic_write_text(tmp_path / "report.html", "<html></html>")
    assert victim.read_text() == "precious" and (tmp_path / "report.html").read_text() == "<html></html>"
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp") and not p.is_symlink()]


def test_a_resumed_run_removes_its_dead_predecessors_temp_files(tmp_path, onnx_model, info_file):
    result = tmp_path / "result"
    result.mkdir()
    dead = result / "latencies_batchsize_4_device_0.csv.4000000.tmp"  # a pid no process has
    live = result / f"latencies_batchsize_4_device_0.csv.{os.getpid()}.abc.tmp"
    dead.write_text("ms_per_batch\n1.0\n")
    live.write_text("in use")
    run_cli("infer", "--model", onnx_model, "--info", info_file, "--batch-size", "4", "--output", result, "-q")
    assert not dead.exists() and live.exists()


# ---------------------------------------------------------------- no orphans

def _children(pid: int) -> list[int]:
    out = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/stat") as f:
                    if int(f.read().rsplit(")", 1)[1].split()[1]) == pid:
                        out.append(int(d))
            except (OSError, ValueError, IndexError):
                pass
    return out


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
def test_workers_die_with_their_parent(tmp_path, sig):
    from clsbench.flows.demo import build_demo_dataset

    build_demo_dataset(tmp_path / "d", per_class=40)
    p = subprocess.Popen([sys.executable, "-m", "clsbench.cli", "preprocess", tmp_path / "d" / "val", tmp_path / "p",
                          "--workers", "2", "-q"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    kids = []
    while time.monotonic() < deadline and len(kids) < 2:
        kids = [k for k in _children(p.pid) if "spawn" in open(f"/proc/{k}/cmdline").read()]
        time.sleep(0.05)
    assert len(kids) >= 2, "the workers did not start"
    time.sleep(0.5)  # they are converting
    os.kill(p.pid, sig)
    p.wait()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(os.path.exists(f"/proc/{k}") for k in kids):
        time.sleep(0.1)
    alive = [k for k in kids if os.path.exists(f"/proc/{k}") and "Z" not in open(f"/proc/{k}/stat").read().split()[2]]
    assert alive == [], "workers outlived their parent"


# ---------------------------------------------------------------- the terminal, and checks that exist elsewhere

def test_file_names_with_escape_sequences_are_shown_escaped(tmp_path, proxy_onnx, proxy_dataset):
    data = tmp_path / "d"
    shutil.copytree(proxy_dataset, data)
    (data / "val" / "\x1b]0;TITLE\x07\x1b[2J\x1b[31mred.JPEG").write_bytes(b"not an image")
    p = run_cli("run", "--weights", proxy_onnx, "--data", data, "--work-dir", tmp_path / "w", "-q", "--stream")
    assert "\x1b" not in p.stdout + p.stderr and "\x07" not in p.stdout + p.stderr
    assert "\\x1b]0;TITLE\\x07" in p.stdout  # the skipped file, listed


def test_cann_compile_checks_external_data_first(tmp_path, proxy_onnx):
    import onnx
    from onnx.external_data_helper import convert_model_to_external_data

    m = onnx.load(str(proxy_onnx))
    convert_model_to_external_data(m, location="w.data", size_threshold=0)
    (tmp_path / "m").mkdir()
    onnx.save(m, tmp_path / "m" / "model.onnx")
    m = onnx.load(tmp_path / "m" / "model.onnx", load_external_data=False)
    for t in m.graph.initializer:
        for e in t.external_data:
            if e.key == "location":
                e.value = "../../etc/passwd"
    onnx.save(m, tmp_path / "m" / "model.onnx")
    p = run_cli("compile", "--model", tmp_path / "m" / "model.onnx", "--backend", "cann", "--output", tmp_path / "om",
                check=False)
    one_line_error(p, "outside the model's folder")


def test_openvino_ir_whose_weights_lead_out_of_its_folder_is_refused(tmp_path):
    ov = pytest.importorskip("openvino")
    model = tiny_classifier(tmp_path / "m.onnx")
    (tmp_path / "ir").mkdir()
    ov.save_model(ov.Core().read_model(str(model)), str(tmp_path / "ir" / "m.xml"))
    outside = tmp_path / "elsewhere.bin"
    shutil.move(tmp_path / "ir" / "m.bin", outside)
    (tmp_path / "ir" / "m.bin").symlink_to(outside)
    p = run_cli("infer", "--model", tmp_path / "ir" / "m.xml", "--loop", "1", check=False)
    one_line_error(p, "m.xml", "outside the model's folder")


@pytest.mark.parametrize("address,needle", [("127.0.0.1:1", "cannot reach the head node within"),
                                            ("no-such-host.invalid:6379", "cannot reach the head node within"),
                                            ("nonsense", "expected HOST:PORT")])
def test_an_unreachable_ray_address_fails_within_the_timeout(tmp_path, proxy_onnx, proxy_dataset, address, needle):
    """Inside a loopback-only namespace; Ray itself is never started (the address is probed first)."""
    pytest.importorskip("ray")
    import shlex

    args = [sys.executable, "-m", "clsbench.cli", "run", "--engine", "ray", "--ray-address", address,
            "--ray-timeout", "3", "--weights", proxy_onnx, "--data", proxy_dataset, "--work-dir", tmp_path / "w"]
    t0 = time.perf_counter()
    p = subprocess.run(["unshare", "-n", "sh", "-c", "(ip link set lo up 2>/dev/null || true); exec "
                        + shlex.join(map(str, args))], capture_output=True, text=True, timeout=120,
                       env={**os.environ, "RAY_USAGE_STATS_ENABLED": "0"})
    assert time.perf_counter() - t0 < 60
    assert p.returncode == 2 and needle in p.stderr and "Traceback" not in p.stderr, p.stderr


def test_atc_command_is_printed_shell_quoted(tmp_path, proxy_onnx):
    """The command compile prints is one a shell gives back as the argv atc received (a
    model folder with a space and a quote in its name)."""
    import shlex
    import stat

    d = tmp_path / "my model's"
    d.mkdir()
    shutil.copy(proxy_onnx, d / "m.onnx")
    bindir = tmp_path / "bin"
    bindir.mkdir()
    atc = bindir / "atc"
    atc.write_text('#!/bin/sh\nfor a in "$@"; do printf "%s\\n" "$a" >> "$ATC_LOG"; case $a in --output=*) '
                   'touch "${a#--output=}.om";; esac; done\n')
    atc.chmod(atc.stat().st_mode | stat.S_IEXEC)
    env = {"ATC_LOG": str(tmp_path / "argv"), "PATH": f"{bindir}:{os.environ['PATH']}"}
    p = run_cli("compile", "--model", d / "m.onnx", "--backend", "cann", "--batches", "1", "--output",
                tmp_path / "om", env=env)
    printed = next(line for line in p.stdout.splitlines() if line.startswith("atc "))
    assert shlex.split(printed)[1:] == (tmp_path / "argv").read_text().splitlines()
