"""Every command through one plan: `infer` and `eval` decide what `run` decides for the same
file and flags (plan.resolve_runnable, plan.outputs_reference), and tensors meet only the
model whose preset made them (plan.check_tensor_preset). Each test here failed on e001c75."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from helpers import run_cli, stamped, tiny_classifier

from clsbench.model.table import get_model


def _one_error_line(p) -> str:
    """The refusal: exit 2, one `error:` line, no traceback."""
    text = p.stdout + p.stderr
    assert p.returncode == 2, text
    assert "Traceback" not in text, text
    lines = [line for line in text.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, text
    return lines[0]


def _perf_record(result: Path) -> dict:
    return json.loads(next(result.glob("perf_vision_batchsize_*.json")).read_text())


def test_infer_pth_is_refused_with_what_to_type_not_a_traceback(tmp_path, weights, info_file):
    """A .pth means what it means to `run`: the weights of --arch (default the guide's model),
    exported for onnxruntime; infer exports nothing, so it says what to type (was: TypeError
    TorchBackend.__init__() missing 'arch')."""
    p = run_cli("infer", "--model", weights, "--info", info_file, "--output", tmp_path / "r", check=False)
    line = _one_error_line(p)
    assert "clsbench export --weights" in line and "--backend torch" in line, line
    assert not (tmp_path / "r").exists()


def test_infer_pth_on_torch_records_the_plan_run_would_make(tmp_path, weights, info_file, tiny_dataset):
    """`infer --backend torch` on a .pth builds --arch's architecture (the guide's by default)
    and records the same model and target decisions as `run --dry-run --json`."""
    run_cli("infer", "-q", "--model", weights, "--info", info_file, "--backend", "torch", "--batch-size", "4",
            "--output", tmp_path / "r")
    plan = _perf_record(tmp_path / "r")["plan"]
    dry = json.loads(run_cli("run", "--weights", weights, "--data", tiny_dataset, "--backend", "torch",
                             "--dry-run", "--json", "--work-dir", tmp_path / "w").stdout)
    for part in ("model", "preset", "weights_kind"):
        assert plan[part] == dry[part], part
    assert {k: v for k, v in plan["target"].items() if k != "threads"} == \
        {k: v for k, v in dry["target"].items() if k != "threads"}
    assert plan["model"]["key"] == get_model("mnasnet1_0").key
    assert plan["tensors"]["match"] is True  # the fixture's .bin files are mnasnet's preset


def _outputs(tmp_path: Path, info_file: Path, provenance: str) -> Path:
    model = stamped(tmp_path / f"{provenance}.onnx", "mnasnet1_0", provenance=provenance)
    run_cli("infer", "-q", "--model", model, "--info", info_file, "--output", tmp_path / provenance)
    return tmp_path / provenance / "dumpOutput_device0"


def test_eval_check_gives_no_verdict_on_stand_in_outputs(tmp_path, info_file, tiny_dataset):
    """The record beside the outputs decides, as run's plan does: stand-in weights get no
    verdict (was: FAIL ... below the reference); the same outputs under an official record,
    or with no record at all (the vendor tool's), are judged against --model and fail."""
    labels = tiny_dataset / "val_label.txt"
    stand_in = _outputs(tmp_path, info_file, "stand-in")
    line = _one_error_line(run_cli("eval", stand_in, labels, tmp_path, "a.json", "--model", "mnasnet1_0",
                                   "--check", check=False))
    assert "no accuracy verdict" in line and "stand-in" in line, line
    official = _outputs(tmp_path, info_file, "official")
    p = run_cli("eval", official, labels, tmp_path, "b.json", "--check", check=False)  # no --model: the record's
    assert p.returncode == 1 and "FAIL" in p.stdout, p.stdout + p.stderr
    bare = tmp_path / "bare" / "dumpOutput_device0"
    shutil.copytree(stand_in, bare)  # no record beside it: --model is the claim
    p = run_cli("eval", bare, labels, tmp_path, "c.json", "--model", "mnasnet1_0", "--check", check=False)
    assert p.returncode == 1 and "FAIL" in p.stdout, p.stdout + p.stderr
    line = _one_error_line(run_cli("eval", official, labels, tmp_path, "d.json", "--model", "resnet50",
                                   "--check", check=False))
    assert "mnasnet1_0" in line and "resnet50" in line, line


def test_infer_refuses_bin_files_of_another_preset(tmp_path, tiny_dataset):
    """resnet50's .bin files (resize 232, bilinear) into an efficientnet_b0 model (256, bicubic,
    recorded in its metadata): refused naming both presets (was: exit 0, no word); accepted
    with the flag, and the record says so."""
    run_cli("preprocess", "-q", "--model", "resnet50", tiny_dataset / "val", tmp_path / "prep")
    run_cli("info", "bin", tmp_path / "prep", tmp_path / "p.info", "224", "224")
    model = stamped(tmp_path / "b0.onnx", "efficientnet_b0")
    r50, b0 = get_model("resnet50").preprocessing, get_model("efficientnet_b0").preprocessing
    assert (r50.resize, r50.interpolation) != (b0.resize, b0.interpolation)  # the premise
    args = ("infer", "--model", model, "--info", tmp_path / "p.info", "--output", tmp_path / "r")
    line = _one_error_line(run_cli(*args, check=False))
    assert f"resize {r50.resize}" in line and f"resize {b0.resize}" in line and "bicubic" in line, line
    assert not (tmp_path / "r" / "dumpOutput_device0").exists() or not any((tmp_path / "r" / "dumpOutput_device0").iterdir())
    run_cli(*args, "-q", "--accept-preset-mismatch")
    tensors = _perf_record(tmp_path / "r")["plan"]["tensors"]
    assert tensors["match"] is False and "resize" in tensors["accepted_mismatch"]
    assert tensors["tensors"]["resize"] == r50.resize


def test_infer_refuses_a_store_of_another_normalization(tmp_path, tiny_dataset):
    """A store made with mean/std 0.5 fed to a model normalised with ImageNet's: refused."""
    run_cli("preprocess", "-q", "--model", "mnasnet1_0", "--format", "store", "--mean", "0.5,0.5,0.5",
            "--std", "0.5,0.5,0.5", tiny_dataset / "val", tmp_path / "store")
    model = stamped(tmp_path / "m.onnx", "mnasnet1_0")
    line = _one_error_line(run_cli("infer", "--model", model, "--store", tmp_path / "store", "--output",
                                   tmp_path / "r", check=False))
    assert "mean [0.5, 0.5, 0.5]" in line and "0.485" in line, line


def test_foreign_model_takes_tensors_as_they_are(tmp_path):
    """A model that records no preset cannot be checked against: its tensors run, and the
    record says the check was not made and why (no false refusal)."""
    tensors = tmp_path / "bins"
    from helpers import bin_tensors

    bin_tensors(tensors, 3, 224)
    run_cli("info", "bin", tensors, tmp_path / "t.info", "224", "224")
    model = tiny_classifier(tmp_path / "foreign.onnx")
    run_cli("infer", "-q", "--model", model, "--info", tmp_path / "t.info", "--output", tmp_path / "r")
    plan = _perf_record(tmp_path / "r")["plan"]
    assert plan["model"]["provenance"] == "foreign" and plan["tensors"]["checked"] is False


def test_infer_loop_keeps_the_openvino_hint(tmp_path, onnx_model):
    """`infer --loop N --backend openvino --openvino-hint throughput` runs and records the
    throughput hint (was: dropped, recorded as latency with one stream)."""
    pytest.importorskip("openvino")
    run_cli("infer", "-q", "--model", onnx_model, "--loop", "3", "--warmup", "1", "--backend", "openvino",
            "--openvino-hint", "throughput", "--output", tmp_path)
    rec = json.loads(next(tmp_path.glob("perf_pure_*.json")).read_text())
    assert rec["backend"]["hint"] == "throughput"
    assert rec["backend"]["config"]["PERFORMANCE_HINT"] == "THROUGHPUT"
    assert rec["plan"]["target"]["options"] == {"hint": "throughput"}


def test_loadgen_refuses_tensors_of_another_preset(tmp_path, tiny_dataset):
    """`loadgen --mode accuracy` on .bin files of another model's preset: refused before LoadGen
    runs (was: scored as if they were the model's own)."""
    pytest.importorskip("mlperf_loadgen")
    run_cli("preprocess", "-q", "--model", "resnet50", tiny_dataset / "val", tmp_path / "prep")
    model = stamped(tmp_path / "b0.onnx", "efficientnet_b0")
    line = _one_error_line(run_cli("loadgen", "--model", model, "--data", tmp_path / "prep", "--mode", "accuracy",
                                   "--output", tmp_path / "lg", check=False))
    assert "resize 232" in line and "resize 256" in line, line


def test_perf_checks_its_model_and_data_like_infer(tmp_path, tiny_dataset, weights):
    """`perf --data` tensors of another preset are refused like infer's; a .pth as --model is
    told what to type (was: timed anyway / an unexplained refusal)."""
    run_cli("preprocess", "-q", "--model", "resnet50", tiny_dataset / "val", tmp_path / "prep")
    model = stamped(tmp_path / "b0.onnx", "efficientnet_b0")
    line = _one_error_line(run_cli("perf", "--model", model, "--data", tmp_path / "prep", "--batches", "1",
                                   "--output", tmp_path / "perf", check=False))
    assert "resize 232" in line and "resize 256" in line, line
    assert not (tmp_path / "perf" / "perf.json").exists()
    line = _one_error_line(run_cli("perf", "--model", weights, "--batches", "1", "--output", tmp_path / "p2",
                                   check=False))
    assert "clsbench export --weights" in line, line
    assert "--backend" not in line and f"--weights {weights} --configs torch:fp32" in line, line  # perf's own flags


def test_every_record_carries_the_plan_in_runs_schema(tmp_path, tiny_dataset):
    """compile's record, infer's, perf.json and zoo-style sweeps carry the plan: the same model
    and preset decisions as `run --dry-run --json` for the same file, in the same schema."""
    model = stamped(tmp_path / "m.onnx", "mnasnet1_0", provenance="stand-in")
    dry = json.loads(run_cli("run", "--weights", model, "--data", tiny_dataset, "--dry-run", "--json",
                             "--work-dir", tmp_path / "w").stdout)
    run_cli("compile", "--model", model, "--backend", "onnxruntime", "--precision", "fp32", "--output", tmp_path / "c")
    run_cli("infer", "-q", "--model", model, "--loop", "2", "--warmup", "0", "--output", tmp_path / "i")
    run_cli("perf", "-q", "--model", model, "--batches", "1", "--duration", "0", "--iterations", "2", "--warmup", "0",
            "--repeats", "1", "--output", tmp_path / "p")
    plans = {"compile": json.loads(next((tmp_path / "c").glob("*.compile.json")).read_text())["plan"],
             "infer": json.loads(next((tmp_path / "i").glob("perf_pure_*.json")).read_text())["plan"],
             "perf": json.loads((tmp_path / "p" / "perf.json").read_text())["plan"]}
    for cmd, plan in plans.items():
        assert {"weights", "weights_kind", "model", "preset", "target"} <= set(plan), cmd
        assert plan["model"] == dry["model"] and plan["preset"] == dry["preset"], cmd
        assert set(plan["target"]) == set(dry["target"]), cmd
        assert plan["model"]["provenance"] == "stand-in" and plan["model"]["reference_top1"] is None, cmd
    assert plans["compile"]["target"]["artifact"] == "compile"


def _source(kind: str, tmp_path: Path) -> Path:
    """A model file of each kind a command may be given."""
    stamped_onnx = stamped(tmp_path / "m.onnx", "efficientnet_b0")
    if kind == "exported":
        return stamped_onnx
    if kind == "foreign":
        return tiny_classifier(tmp_path / "foreign.onnx", size=224)
    backend = {"ort-optimized": "onnxruntime", "openvino-ir": "openvino"}[kind]
    run_cli("compile", "--model", stamped_onnx, "--backend", backend, "--precision", "fp32", "--output", tmp_path / "c")
    return next(p for p in (tmp_path / "c").iterdir() if p.suffix in (".onnx", ".xml"))


@pytest.mark.parametrize("kind", ["exported", "foreign", "ort-optimized", "openvino-ir"])
def test_infer_and_perf_decide_what_run_decides(tmp_path, tiny_dataset, kind):
    """Every model source: the model, preset and target `infer` and `perf` record are the ones
    `run --dry-run --json` resolves for the same file (one resolver, one answer)."""
    model = _source(kind, tmp_path)
    dry = json.loads(run_cli("run", "--weights", model, "--data", tiny_dataset, "--dry-run", "--json",
                             "--work-dir", tmp_path / "w").stdout)
    run_cli("infer", "-q", "--model", model, "--loop", "1", "--warmup", "0", "--output", tmp_path / "i")
    infer = json.loads(next((tmp_path / "i").glob("perf_pure_*.json")).read_text())["plan"]
    for part in ("model", "preset", "weights_kind"):
        assert infer[part] == dry[part], (kind, part)
    assert infer["target"] == {**dry["target"], "threads": infer["target"]["threads"]}, kind
    if kind != "openvino-ir":  # perf sweeps an ONNX (an IR is compiled into --compiled)
        run_cli("perf", "-q", "--model", model, "--batches", "1", "--duration", "0", "--iterations", "1", "--warmup",
                "0", "--repeats", "1", "--output", tmp_path / "p")
        perf = json.loads((tmp_path / "p" / "perf.json").read_text())["plan"]
        assert perf["model"] == dry["model"] and perf["preset"] == dry["preset"], kind
