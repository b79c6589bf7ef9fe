"""End to end, the way users run it: the CLI and the guide's own commands."""
import json
import os
import re
import shutil
import sys

import numpy as np
import pytest

from helpers import (ROOT, assert_guide_folder, guide_acc_eval, guide_bin_info, guide_interface_rate,
                     guide_top1, run_cli, run_script)

COMPAT = ROOT / "compat"


@pytest.mark.slow
def test_guide_commands_unchanged(tmp_path, proxy_weights, proxy_dataset):
    """§3.1, §4.2, §4.3, §5.2, §6.1 with the guide's own arguments, in a fresh folder; every
    folder a guide script reads is read with that script's rule (helpers.py)."""
    shutil.copy(proxy_weights, tmp_path / "mnasnet1.0_weights.pth")
    val, labels = proxy_dataset / "val", proxy_dataset / "val_label.txt"
    run_script(COMPAT / "mnasnet_pth2onnx.py", "mnasnet1.0_weights.pth", "mnasnet1.0.onnx", cwd=tmp_path, torch=True)
    assert (tmp_path / "mnasnet1.0.parity.json").is_file()
    run_script(COMPAT / "imagenet_torch_preprocess.py", "mnasnet", val, "./prep_dataset", cwd=tmp_path)
    assert_guide_folder(tmp_path / "prep_dataset", ".bin")
    assert len(guide_bin_info(tmp_path / "prep_dataset")) == 29
    run_script(COMPAT / "gen_dataset_info.py", "bin", "./prep_dataset", "./mnasnet_prep_bin.info",
               "224", "224", cwd=tmp_path)
    first = (tmp_path / "mnasnet_prep_bin.info").read_text().splitlines()[0]
    assert re.fullmatch(r"0 \./prep_dataset/proxy_2024_000000\.bin 224 224", first)
    env = dict(os.environ, PYTHON=sys.executable)
    import subprocess

    p = subprocess.run(["bash", str(COMPAT / "benchmark.sh")], cwd=tmp_path, env=env,
                       capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    for bs, dev in ((1, 0), (16, 1)):
        perf = (tmp_path / f"result/perf_vision_batchsize_{bs}_device_{dev}.txt").read_text()
        assert guide_interface_rate(perf) > 0
        dump = tmp_path / f"result/dumpOutput_device{dev}"
        assert_guide_folder(dump, "_1.txt")
        run_script(COMPAT / "imagenet_acc_eval.py", f"result/dumpOutput_device{dev}/", labels, "./",
                   f"result_bs{bs}.json", cwd=tmp_path)
        ours = (tmp_path / f"result_bs{bs}.json").read_text()
        assert ours == guide_acc_eval(dump, labels)
        assert guide_top1(ours) > 50  # the trained proxy on its task (chance: 6 %): informative
    # the guide: batch 1 and batch 16 give the same accuracy
    assert (tmp_path / "result_bs1.json").read_text() == (tmp_path / "result_bs16.json").read_text()


@pytest.mark.slow
def test_run_end_to_end_then_resume(tmp_path, proxy_weights, proxy_dataset):
    work = tmp_path / "work"
    args = ["run", "--weights", proxy_weights, "--data", proxy_dataset, "--batch-size", "4",
            "--work-dir", work, "-q"]
    p = run_cli(*args)
    # the proxy is judged against its own recorded accuracy over its own 16 classes
    assert "vs the proxy's training record: 256 other draws of its own 16-class task" in " ".join(p.stdout.split())
    assert p.stderr.startswith("plan: model     mnasnet1_0:IMAGENET1K_V1 · clsbench's trained proxy")
    assert "Interface throughputRate" in p.stdout and "result_json" in p.stdout
    assert "Stage seconds: export" in p.stdout
    s = json.loads((work / "summary.json").read_text())
    assert s["accuracy"]["images"] == 29 and s["parity"]["passed"] is True
    assert s["preprocessing"]["resize"] == 256 and s["performance"]["batch_size"] == 4
    assert set(s["stage_seconds"]) >= {"export", "preprocess", "info", "infer", "eval"}
    dump = work / "result/dumpOutput_device0"
    assert_guide_folder(dump, "_1.txt")
    assert_guide_folder(work / "prep_dataset", ".bin")
    res = (work / "result.json").read_text()
    assert res == guide_acc_eval(dump, proxy_dataset / "val_label.txt")
    assert guide_top1(res) > 50 and s["accuracy"]["top1"] == pytest.approx(guide_top1(res), abs=0.01)
    assert (work / "summary.md").read_text().startswith("# clsbench run: mnasnet1_0")
    # second run: everything is already there; nothing is recomputed, same answer, and the
    # throughput shown says it comes from the earlier run
    mtime = (work / "model.onnx").stat().st_mtime_ns
    p2 = run_cli(*args)
    assert "is current" in p2.stderr and "0 written, 29 already done" in p2.stderr
    assert "figures of the earlier run" in p2.stdout and "nothing was left to infer" in p2.stdout
    assert (work / "model.onnx").stat().st_mtime_ns == mtime
    assert (work / "result.json").read_text() == res


def test_eval_check_exit_codes(tmp_path):
    """--check against --model's reference: 400 images, so the allowed drop is the 95 %
    sampling margin (4.33 points), wider than --tolerance 1: 70 % passes, 65 % fails."""
    d = tmp_path / "out"
    d.mkdir()
    for i in range(400):
        s = np.zeros(1000, dtype=np.float32)
        s[i % 1000] = 1.0
        np.save(d / f"img{i}_1.npy", s)

    def labels(right: int):
        (tmp_path / "l.txt").write_text("".join(f"img{i}.JPEG {i if i < right else 999}\n" for i in range(400)))

    labels(280)  # 70 %: 3.46 points below 73.456, inside the margin
    p = run_cli("eval", d, tmp_path / "l.txt", tmp_path, "r.json", "--check", "--model", "mnasnet1_0", check=False)
    assert p.returncode == 0 and "PASS" in p.stdout and "sampling margin 4.33" in p.stdout
    labels(260)  # 65 %: 8.46 points below
    p = run_cli("eval", d, tmp_path / "l.txt", tmp_path, "r.json", "--check", "--model", "mnasnet1_0", check=False)
    assert p.returncode == 1 and "FAIL" in p.stdout
    assert json.loads((tmp_path / "r.json").read_text())["value"][2]["value"] == "65.0%"
    p = run_cli("eval", d, tmp_path / "l.txt", tmp_path, "r.json", check=False)
    assert p.returncode == 0  # without --check the figure is reported, not judged


def test_errors_are_one_line_naming_the_file(tmp_path):
    (tmp_path / "bad.info").write_text("0 a.bin 224\n")
    p = run_cli("infer", "--model", tmp_path / "m.onnx", "--info", tmp_path / "bad.info", check=False)
    assert p.returncode == 2 and "Traceback" not in p.stderr
    assert "bad.info:1: expected '<idx> <path> <width> <height>'" in p.stderr
    (tmp_path / "bad.info").write_text("0 a.bin 224 224\n")
    p = run_cli("infer", "--model", tmp_path / "m.onnx", "--info", tmp_path / "bad.info", check=False)
    assert p.returncode == 2 and "m.onnx: model file not found" in p.stderr
    (tmp_path / "l.txt").write_text("a.JPEG x\n")
    (tmp_path / "out").mkdir()
    p = run_cli("eval", tmp_path / "out", tmp_path / "l.txt", tmp_path, "r.json", check=False)
    assert p.returncode == 2 and "l.txt:1: label 'x' is not an integer" in p.stderr


def test_pure_inference_cli(onnx_model, tmp_path):
    p = run_cli("infer", "--model", onnx_model, "--loop", "2", "--warmup", "1", "--batch-size", "2",
                "--output", tmp_path)
    m = re.search(r"ave_throughputRate = ([\d.]+) samples/s, ave_latency = ([\d.]+) ms", p.stdout)
    assert m and float(m.group(1)) > 0


def test_help_explains_every_command():
    p = run_cli("--help")
    for cmd in ("export", "preprocess", "info", "infer", "eval", "run", "demo"):
        assert cmd in p.stdout
    p = run_cli("infer", "--help")
    assert "--loop" in p.stdout and "padding" in p.stdout.replace("\n", " ")


@pytest.mark.slow
@pytest.mark.parametrize("extra", [["--backend", "torch"], ["--backend", "openvino", "--stream"]])
def test_run_on_other_backends_gives_the_same_accuracy(tmp_path, proxy_weights, proxy_dataset, proxy_run, extra):
    run_cli("run", "-q", "--weights", proxy_weights, "--data", proxy_dataset, "--batch-size", "4",
            "--work-dir", tmp_path / "other", *extra)
    s = json.loads((tmp_path / "other" / "summary.json").read_text())
    assert s["performance"]["backend"]["backend"] == extra[1]
    res = (tmp_path / "other" / "result.json").read_text()
    assert_guide_folder(tmp_path / "other/result/dumpOutput_device0", "_1.txt")
    assert res == guide_acc_eval(tmp_path / "other/result/dumpOutput_device0", proxy_dataset / "val_label.txt")
    assert res == (proxy_run / "result.json").read_text() and guide_top1(res) > 50
