"""Issue "Trust what it prints": each numbered defect of 0.1.0, tested as a user meets it."""
import json
import os
import shutil
import signal
import subprocess
import sys

import numpy as np
import pytest

from clsbench import ClsbenchError
from helpers import assert_guide_folder, default_sigint, guide_acc_eval, guide_top1, run_cli

# ---------------------------------------------------------------- 7. arguments checked up front


@pytest.mark.parametrize("args,says", [
    (["--batch-size", "0"], "argument --batch-size: must be a whole number >= 1, got '0'"),
    (["--threads", "-1"], "argument --threads: must be a whole number >= 1"),
    (["--workers", "0"], "argument --workers: must be a whole number >= 1"),
    (["--precision", "int4"], "onnxruntime has no 'int4' precision"),
    (["--backend", "torch", "--precision", "int8"], "torch has no 'int8' precision"),
])
def test_run_arguments_refused_before_any_slow_step(tmp_path, proxy_weights, proxy_dataset, args, says):
    p = run_cli("run", "--weights", proxy_weights, "--data", proxy_dataset, "--work-dir", tmp_path / "w",
                *args, check=False)
    assert p.returncode == 2 and says in p.stderr and "Traceback" not in p.stderr
    assert len(p.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "w" / "model.onnx").exists()  # nothing slow happened first


def test_whitespace_in_work_dir_refused_up_front(tmp_path, proxy_weights, proxy_dataset):
    p = run_cli("run", "--weights", proxy_weights, "--data", proxy_dataset, "--work-dir", tmp_path / "my run",
                check=False)
    assert p.returncode == 2 and "contains whitespace" in p.stderr
    assert not (tmp_path / "my run" / "model.onnx").exists()


def test_empty_image_folder_and_labels_out_of_range(tmp_path, proxy_weights, proxy_dataset):
    (tmp_path / "empty" / "val").mkdir(parents=True)
    p = run_cli("run", "--weights", proxy_weights, "--data", tmp_path / "empty", "--work-dir", tmp_path / "w",
                check=False)
    assert p.returncode == 2 and "holds no images" in p.stderr
    data = tmp_path / "d"
    shutil.copytree(proxy_dataset, data)
    with open(data / "val_label.txt", "a") as f:
        f.write("proxy_2024_000099.JPEG 1000\n")
    p = run_cli("run", "--weights", proxy_weights, "--data", data, "--work-dir", tmp_path / "w2", check=False)
    assert p.returncode == 2 and "val_label.txt:30: label 1000 out of range 0..999" in p.stderr
    assert not (tmp_path / "w2" / "model.onnx").exists()


def test_calib_images_larger_than_the_folder(tmp_path, proxy_onnx, proxy_dataset):
    p = run_cli("compile", "--model", proxy_onnx, "--backend", "onnxruntime", "--precision", "int8",
                "--data", proxy_dataset / "val", "--calib-images", "500", "--output", tmp_path, check=False)
    assert p.returncode == 2 and "holds 29 images" in p.stderr and "--calib-images 500" in p.stderr


def test_bin_files_of_another_crop_named(tmp_path, proxy_onnx):
    b = tmp_path / "x.bin"
    np.zeros((3, 299, 299), np.float32).tofile(b)
    (tmp_path / "x.info").write_text(f"0 {b} 224 224\n")
    p = run_cli("infer", "--model", proxy_onnx, "--info", tmp_path / "x.info", "--output", tmp_path / "r",
                check=False)
    assert p.returncode == 2 and "a 299x299 crop: preprocessed for another model?" in p.stderr


def test_model_with_two_outputs_refused_not_truncated(tmp_path, proxy_onnx, info_file):
    import onnx
    from onnx import helper

    m = onnx.load(proxy_onnx)
    m.graph.node.append(helper.make_node("Neg", ["class"], ["negated"]))
    m.graph.output.append(helper.make_tensor_value_info("negated", onnx.TensorProto.FLOAT, ["-1", 1000]))
    two = tmp_path / "two.onnx"
    onnx.save(m, two)
    p = run_cli("infer", "--model", two, "--info", info_file, "--output", tmp_path / "r", check=False)
    assert p.returncode == 2 and "2 outputs ['class', 'negated']" in p.stderr


# ---------------------------------------------------------------- 9. advice names real flags

def test_conflict_advice_names_the_commands_own_flags(tmp_path, proxy_weights, proxy_dataset, proxy_onnx, info_file):
    work = tmp_path / "w"
    run_cli("run", "-q", "--weights", proxy_weights, "--data", proxy_dataset, "--work-dir", work,
            "--batch-size", "4")
    p = run_cli("run", "-q", "--weights", proxy_weights, "--data", proxy_dataset, "--work-dir", work,
                "--batch-size", "8", check=False)
    assert p.returncode == 2 and "differs in batch_size: 4 there, 8 now" in p.stderr
    assert "--work-dir" in p.stderr and "--output" not in p.stderr
    out = tmp_path / "r"
    run_cli("infer", "-q", "--model", proxy_onnx, "--info", info_file, "--batch-size", "4", "--output", out)
    p = run_cli("infer", "-q", "--model", proxy_onnx, "--info", info_file, "--batch-size", "2",
                "--output", out, check=False)
    assert p.returncode == 2 and "--output or --device-id" in p.stderr and "--work-dir" not in p.stderr


# ---------------------------------------------------------------- 10. Ctrl-C counts what is on disk

@pytest.mark.slow
def test_ctrl_c_during_stream_reports_the_files_on_disk(tmp_path, proxy_onnx):
    from clsbench.data.proxy_task import write_images

    write_images(tmp_path / "data", 160, seed=5)
    work = tmp_path / "w"
    cmd = [sys.executable, "-m", "clsbench.cli", "run", "-q", "--stream", "--workers", "2", "--batch-size", "2",
           "--weights", str(proxy_onnx), "--data", str(tmp_path / "data"), "--work-dir", str(work)]
    dump = work / "result" / "dumpOutput_device0"
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
                         preexec_fn=default_sigint)
    import time

    t0 = time.monotonic()
    while time.monotonic() - t0 < 120 and p.poll() is None:
        if dump.is_dir() and len(os.listdir(dump)) >= 20:
            os.killpg(p.pid, signal.SIGINT)
            break
        time.sleep(0.01)
    _, err = p.communicate(timeout=120)
    assert p.returncode == 130, err
    import re

    m = re.search(r"interrupted during stream bs2 .*?: (\d+) of 160 finished", err.replace("\n", " "))
    on_disk = len(os.listdir(dump))
    assert m and int(m.group(1)) == on_disk and 20 <= on_disk < 160, (err, on_disk)


# ---------------------------------------------------------------- 12, 13. precisions and model files

@pytest.mark.slow
def test_run_int8_calibrates_on_the_data_and_reports_the_drop(tmp_path, proxy_weights, proxy_dataset):
    work = tmp_path / "w"
    p = run_cli("run", "--weights", proxy_weights, "--data", proxy_dataset, "--work-dir", work,
                "--precision", "int8", "--calib-images", "8", "--batch-size", "4")
    assert "no --calib-data" in p.stderr and "first 8 images" in p.stderr
    s = json.loads((work / "summary.json").read_text())
    assert s["performance"]["backend"]["precision"] == "int8"
    comp = s["compiled"]
    assert comp["calibration_images"] == 8 and comp["calibrated_on_data"] is True
    acc = comp["parity"]["accuracy"]
    assert acc["labelled_images"] == 21 and acc["top1_drop"] == pytest.approx(acc["fp32_top1"] - acc["top1"])
    out = s["accuracy"]["outside_calibration"]
    assert out["images"] == 21
    # the same figure from the guide's rule over the 21 non-calibration outputs only
    dump = work / "result" / "dumpOutput_device0"
    keep = tmp_path / "outside"
    keep.mkdir()
    calib = set(json.loads((work / "compiled" / "model.onnxruntime.int8.compile.json").read_text())["calibration_names"])
    for n in os.listdir(dump):
        if n.rsplit("_", 1)[0] not in calib:
            shutil.copy(dump / n, keep / n)
    assert out["top1"] == pytest.approx(guide_top1(guide_acc_eval(keep, proxy_dataset / "val_label.txt")), abs=0.01)
    assert "drop" in p.stdout and "outside the calibration set" in p.stdout


@pytest.mark.slow
def test_artifact_knows_its_precision_and_weights_take_any_model_file(tmp_path, proxy_weights, proxy_dataset,
                                                                      proxy_onnx, info_file):
    from clsbench.compile.artifacts import compile_model

    art = compile_model(str(proxy_onnx), backend="onnxruntime", precision="int8", output_dir=str(tmp_path / "c"),
                        data=str(proxy_dataset / "val"), calib_images=8, parity_images=0)["artifact"]
    p = run_cli("infer", "--model", art, "--info", info_file, "--output", tmp_path / "r")
    assert "int8" in p.stdout and "asked for" not in p.stderr
    # an ONNX model as --weights: no export, same result as the .pth run
    a = run_cli("run", "-q", "--weights", proxy_weights, "--data", proxy_dataset, "--work-dir", tmp_path / "a")
    b = run_cli("run", "-q", "--weights", proxy_onnx, "--data", proxy_dataset, "--work-dir", tmp_path / "b")
    assert "already an ONNX model; not exported" in b.stderr and not (tmp_path / "b" / "model.onnx").exists()
    assert (tmp_path / "a" / "result.json").read_text() == (tmp_path / "b" / "result.json").read_text()
    assert a.returncode == b.returncode == 0


def test_perf_uses_the_compiled_artifacts(tmp_path, proxy_onnx, proxy_dataset):
    from clsbench.compile.artifacts import compile_model
    from clsbench.measure.sweep import resolve_configs

    from clsbench.runtime.backends import precision_unsupported

    c = tmp_path / "c"
    p = "fp32" if precision_unsupported("openvino", "bf16") else "bf16"  # bf16 is refused on a CPU without it
    ir = compile_model(str(proxy_onnx), backend="openvino", precision=p, output_dir=str(c))["artifact"]
    opt = compile_model(str(proxy_onnx), backend="onnxruntime", precision="fp32", output_dir=str(c))["artifact"]
    cfg = resolve_configs(f"openvino:{p},onnxruntime:fp32", model=str(proxy_onnx), weights=None, compiled=str(c))
    assert [x.model for x in cfg] == [ir, opt]
    if p == "bf16":
        assert resolve_configs("openvino:fp32", model=str(proxy_onnx), weights=None,
                               compiled=str(c))[0].model == str(proxy_onnx)
    from clsbench.model.files import read_metadata

    assert read_metadata(ir)["precision"] == p and read_metadata(opt)["backend"] == "onnxruntime"


# ---------------------------------------------------------------- 15. untrusted ONNX files

def _external(tmp_path, location):
    import onnx

    m = onnx.helper.make_model(onnx.helper.make_graph(
        [onnx.helper.make_node("Add", ["image", "w"], ["y"])], "g",
        [onnx.helper.make_tensor_value_info("image", onnx.TensorProto.FLOAT, ["N", 3, 4, 4])],
        [onnx.helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, ["N", 3, 4, 4])],
        [onnx.numpy_helper.from_array(np.ones((3, 4, 4), np.float32), "w")]),
        opset_imports=[onnx.helper.make_opsetid("", 13)])
    d = tmp_path / "models"
    d.mkdir(exist_ok=True)
    onnx.save_model(m, d / "m.onnx", save_as_external_data=True, location="w.data", size_threshold=0)
    if location != "w.data":
        m = onnx.load(d / "m.onnx", load_external_data=False)
        for e in m.graph.initializer[0].external_data:
            if e.key == "location":
                e.value = location
        onnx.save(m, d / "m.onnx")
    return d / "m.onnx"


def test_external_data_beside_the_model_works(tmp_path):
    from clsbench.runtime.backends import open_backend

    rt = open_backend(None, str(_external(tmp_path, "w.data")), batch_size=2)
    y = rt.run(np.zeros((2, 3, 4, 4), np.float32))
    assert y.shape == (2, 3, 4, 4) and (y == 1).all()


@pytest.mark.parametrize("where", ["../secret.data", "/etc/hostname", "link"])
def test_external_data_leaving_the_folder_is_refused(tmp_path, where):
    from clsbench.runtime.backends import open_backend

    (tmp_path / "secret.data").write_bytes(np.ones(48, np.float32).tobytes())
    if where == "link":
        (tmp_path / "models").mkdir()
        os.symlink(tmp_path / "secret.data", tmp_path / "models" / "link")
    model = _external(tmp_path, where)
    with pytest.raises(ClsbenchError, match="outside the model's folder.*refused"):
        open_backend(None, str(model), batch_size=1)


# ---------------------------------------------------------------- 16. one process per folder

def test_second_process_on_the_same_folder_refused(tmp_path, proxy_onnx, info_file):
    from clsbench._io import folder_lock

    out = tmp_path / "r"
    with folder_lock(out / "dumpOutput_device0"):
        p = run_cli("infer", "--model", proxy_onnx, "--info", info_file, "--output", out, check=False)
    assert p.returncode == 2 and "in use by another clsbench process" in p.stderr
    assert not (out / "dumpOutput_device0").exists() or os.listdir(out / "dumpOutput_device0") == []
    run_cli("infer", "-q", "--model", proxy_onnx, "--info", info_file, "--output", out)  # free again
    assert_guide_folder(out / "dumpOutput_device0", "_1.txt")


@pytest.mark.slow
@pytest.mark.parametrize("backend,precision", [("openvino", "int8"), ("openvino", "bf16"), ("torch", "bf16")])
def test_run_works_for_other_pairs_of_the_table(tmp_path, proxy_weights, proxy_dataset, backend, precision):
    work = tmp_path / "w"
    calib = tmp_path / "calib"
    from clsbench.data.proxy_task import write_images

    from clsbench.runtime.backends import precision_unsupported

    write_images(calib, 16, seed=31)  # calibration images apart from the evaluation set
    args = ("run", "-q", "--weights", proxy_weights, "--data", proxy_dataset, "--work-dir", work,
            "--backend", backend, "--precision", precision, "--calib-data", calib / "val", "--calib-images", "16")
    if precision_unsupported(backend, precision):  # OpenVINO's own capability list: refused before any step
        p = run_cli(*args, check=False)
        assert p.returncode == 2 and "has no bf16" in p.stderr and not (work / "model.onnx").exists(), p.stderr
        return
    run_cli(*args)
    s = json.loads((work / "summary.json").read_text())
    assert (s["performance"]["backend"]["backend"], s["performance"]["backend"]["precision"]) == (backend, precision)
    res = (work / "result.json").read_text()
    assert res == guide_acc_eval(work / "result/dumpOutput_device0", proxy_dataset / "val_label.txt")
    assert guide_top1(res) > 40  # reduced precision on the trained proxy: still far above chance
    if precision == "int8":
        assert s["compiled"]["calibrated_on_data"] is False and "outside_calibration" not in s["accuracy"]


def test_an_openvino_ir_as_weights_runs_on_openvino(tmp_path, proxy_onnx, proxy_dataset):
    from clsbench.compile.artifacts import compile_model

    ir = compile_model(str(proxy_onnx), backend="openvino", precision="fp32", output_dir=str(tmp_path / "c"))["artifact"]
    run_cli("run", "-q", "--weights", ir, "--data", proxy_dataset, "--work-dir", tmp_path / "w")
    s = json.loads((tmp_path / "w" / "summary.json").read_text())
    assert s["performance"]["backend"]["backend"] == "openvino" and s["parity"] is None
    assert guide_top1((tmp_path / "w" / "result.json").read_text()) > 50
