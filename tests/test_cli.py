"""End to end, the way users run it: the CLI and the guide's own commands."""
import json
import os
import re
import shutil
import sys

import numpy as np
import pytest

from conftest import ROOT, run_cli, run_script

COMPAT = ROOT / "compat"


def reference_eval(result_dir, label_file) -> str:
    """formats.md §6 read independently: what the guide's imagenet_acc_eval.py writes."""
    gt = {}
    for line in open(label_file):
        t = line.strip().split(" ")
        gt[t[0].split(".")[0]] = t[1]
    hit, count, n_labels = np.zeros(5), 0, 0
    for name in sorted(os.listdir(result_dir)):
        if not name.endswith(".txt"):
            continue
        temp = name.split(".")[0]
        key = temp[:temp.rfind("_")]
        with open(os.path.join(result_dir, name)) as f:
            vals = f.readline().strip().split(" ")
        pred = np.array([np.float32(v) for v in vals])
        n_labels = len(vals)
        real = int(gt[key]) + (1 if n_labels == 1001 else 0)
        for i, idx in enumerate(np.argsort(-pred)[:5]):
            if str(real) == str(idx):
                hit[i] += 1
                break
        count += 1
    acc = np.cumsum(hit) / count
    value = [{"key": "Number of images", "value": str(count)},
             {"key": "Number of classes", "value": str(n_labels)}]
    value += [{"key": f"Top{i + 1} accuracy", "value": str(round(acc[i] * 100, 2)) + "%"} for i in range(5)]
    return json.dumps({"title": "Overall statistical evaluation", "value": value})


def interface_rate_by_guide_rule(perf_txt: str) -> float:
    text = perf_txt.replace("\n", ",") + ","
    return float(re.findall(r":(.*?),", text)[7].replace("samples/s", "").strip())


@pytest.mark.slow
def test_guide_commands_unchanged(tmp_path, weights, tiny_dataset):
    """§3.1, §4.2, §4.3, §5.2, §6.1 with the guide's own arguments, in a fresh folder."""
    shutil.copy(weights, tmp_path / "mnasnet1.0_weights.pth")
    val, labels = tiny_dataset / "val", tiny_dataset / "val_label.txt"
    run_script(COMPAT / "mnasnet_pth2onnx.py", "mnasnet1.0_weights.pth", "mnasnet1.0.onnx", cwd=tmp_path)
    assert (tmp_path / "mnasnet1.0.parity.json").is_file()
    run_script(COMPAT / "imagenet_torch_preprocess.py", "mnasnet", val, "./prep_dataset", cwd=tmp_path)
    assert len(list((tmp_path / "prep_dataset").glob("*.bin"))) == 13
    run_script(COMPAT / "gen_dataset_info.py", "bin", "./prep_dataset", "./mnasnet_prep_bin.info",
               "224", "224", cwd=tmp_path)
    first = (tmp_path / "mnasnet_prep_bin.info").read_text().splitlines()[0]
    assert re.fullmatch(r"0 \./prep_dataset/ILSVRC2012_val_\d{8}\.bin 224 224", first)
    env = dict(os.environ, PYTHON=sys.executable)
    import subprocess

    p = subprocess.run(["bash", str(COMPAT / "benchmark.sh")], cwd=tmp_path, env=env,
                       capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    for bs, dev in ((1, 0), (16, 1)):
        perf = (tmp_path / f"result/perf_vision_batchsize_{bs}_device_{dev}.txt").read_text()
        assert interface_rate_by_guide_rule(perf) > 0
        run_script(COMPAT / "imagenet_acc_eval.py", f"result/dumpOutput_device{dev}/", labels, "./",
                   f"result_bs{bs}.json", cwd=tmp_path)
        ours = (tmp_path / f"result_bs{bs}.json").read_text()
        assert ours == reference_eval(tmp_path / f"result/dumpOutput_device{dev}", labels)
    # the guide: batch 1 and batch 16 give the same accuracy
    assert (tmp_path / "result_bs1.json").read_text() == (tmp_path / "result_bs16.json").read_text()


@pytest.mark.slow
def test_run_end_to_end_then_resume(tmp_path, weights, tiny_dataset):
    work = tmp_path / "work"
    p = run_cli("run", "--weights", weights, "--data", tiny_dataset, "--batch-size", "4",
                "--work-dir", work, "-q")
    assert "Accuracy vs torchvision mnasnet1_0 (13 images" in p.stdout
    assert "Interface throughputRate" in p.stdout and "result_json" in p.stdout
    s = json.loads((work / "summary.json").read_text())
    assert s["accuracy"]["images"] == 13 and s["parity"]["rel_l2_error"] <= 1e-5
    assert s["preprocessing"]["resize"] == 256 and s["performance"]["batch_size"] == 4
    res = (work / "result.json").read_text()
    assert res == reference_eval(work / "result/dumpOutput_device0", tiny_dataset / "val_label.txt")
    assert (work / "summary.md").read_text().startswith("# clsbench run: mnasnet1_0")
    # second run: everything is already there; nothing is recomputed, same answer
    mtime = (work / "model.onnx").stat().st_mtime_ns
    p2 = run_cli("run", "--weights", weights, "--data", tiny_dataset, "--batch-size", "4",
                 "--work-dir", work, "-q")
    assert "is current" in p2.stderr and "0 written, 13 already done" in p2.stderr
    assert (work / "model.onnx").stat().st_mtime_ns == mtime
    assert (work / "result.json").read_text() == res


def test_eval_check_exit_codes(tmp_path):
    d = tmp_path / "out"
    d.mkdir()
    for i in range(4):
        s = np.zeros(1000, dtype=np.float32)
        s[i] = 1.0
        (d / f"img{i}_1.txt").write_text(" ".join(map(str, s)) + "\n")
    (tmp_path / "l.txt").write_text("".join(f"img{i}.JPEG {i if i < 3 else 7}\n" for i in range(4)))
    p = run_cli("eval", d, tmp_path / "l.txt", tmp_path, "r.json", "--check", check=False)
    assert p.returncode == 0 and "PASS" in p.stdout  # 75 % >= 73.456 - 1
    (tmp_path / "l.txt").write_text("".join(f"img{i}.JPEG {i if i < 2 else 7}\n" for i in range(4)))
    p = run_cli("eval", d, tmp_path / "l.txt", tmp_path, "r.json", "--check", check=False)
    assert p.returncode == 1 and "FAIL" in p.stdout  # 50 %
    assert json.loads((tmp_path / "r.json").read_text())["value"][2]["value"] == "50.0%"
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
def test_run_on_other_backends_gives_the_same_accuracy(tmp_path, weights, tiny_dataset, extra):
    if "openvino" in extra:
        pytest.importorskip("openvino")
    base = ["run", "-q", "--weights", weights, "--data", tiny_dataset, "--batch-size", "4"]
    run_cli(*base, "--work-dir", tmp_path / "ort")
    run_cli(*base, "--work-dir", tmp_path / "other", *extra)
    s = json.loads((tmp_path / "other" / "summary.json").read_text())
    assert s["performance"]["backend"]["backend"] == extra[1]
    assert (tmp_path / "other" / "result.json").read_text() == (tmp_path / "ort" / "result.json").read_text()
