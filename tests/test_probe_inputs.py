"""A new user's probe after one plan landed: inputs that still gave a traceback, a record
overwritten by the command reading it, outputs written among the inputs, a tensor the
preprocessing record does not vouch for. Each failed before its fix."""
from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest
from helpers import run_cli, stamped
from test_one_plan import _one_error_line


def _sha(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


@pytest.mark.parametrize("how", ["missing", "truncated"])
def test_an_ir_without_its_weights_is_one_line_everywhere(tmp_path, info_file, tiny_dataset, how):
    """An OpenVINO IR whose .bin is missing or cut short: OpenVINO's C++ exception was a
    traceback from the model-file reader in infer, run --dry-run, loadgen and compile."""
    pytest.importorskip("openvino")
    onnx = stamped(tmp_path / "m.onnx", "mnasnet1_0")
    run_cli("compile", "--model", onnx, "--backend", "openvino", "--precision", "fp32", "--output", tmp_path / "c")
    xml = next((tmp_path / "c").glob("*.xml"))
    bad = tmp_path / "bad" / "ir.xml"
    bad.parent.mkdir()
    shutil.copy(xml, bad)
    if how == "truncated":
        bad.with_suffix(".bin").write_bytes(xml.with_suffix(".bin").read_bytes()[:100])
    for args in (["infer", "--model", bad, "--info", info_file, "--output", tmp_path / "o"],
                 ["run", "--weights", bad, "--data", tiny_dataset, "--dry-run", "--work-dir", tmp_path / "w"]):
        line = _one_error_line(run_cli(*args, check=False))
        assert str(bad) in line and "ir.bin" in line, line


def test_report_never_writes_over_the_records_it_compares(tmp_path):
    """`report A B --output B/perf.html` wrote compare.json as B/perf.json, B's own record."""
    model = stamped(tmp_path / "m.onnx", "mnasnet1_0")
    run_cli("perf", "-q", "--model", model, "--batches", "1", "--duration", "0", "--iterations", "2", "--warmup", "0",
            "--repeats", "1", "--output", tmp_path / "a")
    shutil.copytree(tmp_path / "a", tmp_path / "b")
    before = _sha(tmp_path / "b" / "perf.json")
    for out in ("perf.html", "perf.json"):
        line = _one_error_line(run_cli("report", tmp_path / "a", tmp_path / "b", "--output", tmp_path / "b" / out,
                                       check=False))
        assert "perf.json" in line and "--output" in line, line
    assert _sha(tmp_path / "b" / "perf.json") == before
    run_cli("report", tmp_path / "a", tmp_path / "b", "--output", tmp_path / "b" / "compare.html")  # beside: fine


def test_eval_never_writes_over_the_record_beside_the_outputs(tmp_path, info_file, tiny_dataset):
    """result.json named like the outputs' record replaced it, and the stand-in's outputs were
    then judged FAIL against the table's reference."""
    model = stamped(tmp_path / "m.onnx", "mnasnet1_0", provenance="stand-in")
    run_cli("infer", "-q", "--model", model, "--info", info_file, "--output", tmp_path / "r")
    record = tmp_path / "r" / "dumpOutput_device0.clsbench.json"
    before = _sha(record)
    line = _one_error_line(run_cli("eval", tmp_path / "r" / "dumpOutput_device0", tiny_dataset / "val_label.txt",
                                   tmp_path / "r", record.name, check=False))
    assert record.name in line, line
    assert _sha(record) == before


def test_infer_never_writes_among_its_input_tensors(tmp_path, prep):
    """--output inside (or equal to) the .bin folder the .info lists: refused before anything runs."""
    mine = tmp_path / "prep"
    shutil.copytree(prep, mine)
    shutil.copy(Path(str(prep) + ".clsbench.json"), Path(str(mine) + ".clsbench.json"))
    run_cli("info", "bin", mine, tmp_path / "p.info", "224", "224")
    model = stamped(tmp_path / "m.onnx", "mnasnet1_0")
    listing = sorted(p.name for p in mine.iterdir())
    for out in (mine, mine / "out"):
        line = _one_error_line(run_cli("infer", "--model", model, "--info", tmp_path / "p.info", "--output", out,
                                       check=False))
        assert "--output" in line and str(mine) in line, line
    assert sorted(p.name for p in mine.iterdir()) == listing


def test_a_bin_file_the_record_does_not_list_is_not_checked_as_if_it_were(tmp_path, prep, tiny_dataset):
    """A .bin of another preset dropped into a recorded folder passed as 'checked, match'."""
    mine = tmp_path / "mix"
    shutil.copytree(prep, mine)
    rec = json.loads(Path(str(prep) + ".clsbench.json").read_text())
    Path(str(mine) + ".clsbench.json").write_text(json.dumps(rec))
    run_cli("preprocess", "-q", "--model", "efficientnet_b0", tiny_dataset / "val", tmp_path / "eff")
    stray = next((tmp_path / "eff").glob("*.bin"))
    shutil.copy(stray, mine / "EXTRA.bin")
    assert "EXTRA.bin" not in rec["sources"]  # the premise
    run_cli("info", "bin", mine, tmp_path / "m.info", "224", "224")
    model = stamped(tmp_path / "m.onnx", "mnasnet1_0")
    line = _one_error_line(run_cli("infer", "--model", model, "--info", tmp_path / "m.info", "--output",
                                   tmp_path / "r", check=False))
    assert "EXTRA.bin" in line and "unknown preprocessing" in line, line


def test_run_refuses_a_work_dir_among_its_images_before_any_step(tmp_path, tiny_dataset):
    """--work-dir inside the image folder: the dry run accepted it and the real run failed at
    preprocess, in another command's words."""
    data = tmp_path / "d"
    shutil.copytree(tiny_dataset, data)
    model = stamped(tmp_path / "m.onnx", "mnasnet1_0")
    for extra in (["--dry-run"], []):
        line = _one_error_line(run_cli("run", "--weights", model, "--data", data, "--work-dir", data / "val" / "w",
                                       *extra, check=False))
        assert "--work-dir" in line and "--data" in line, line
    assert not (data / "val" / "w").exists()


def test_small_refusals_say_what_is_wrong(tmp_path, tiny_dataset):
    """An ONNX given to export as weights (was: 'holds pickled code'), --cuda-mode on another
    backend (was: silently dropped), a perf folder compared with a LoadGen one (was: 'a run
    folder with a perf folder')."""
    model = stamped(tmp_path / "m.onnx", "mnasnet1_0")
    line = _one_error_line(run_cli("export", "--weights", model, "--output", tmp_path / "e.onnx", check=False))
    assert "an ONNX model" in line and "clsbench run --weights" in line, line
    line = _one_error_line(run_cli("run", "--weights", model, "--data", tiny_dataset, "--cuda-mode", "eager",
                                   "--dry-run", "--work-dir", tmp_path / "w", check=False))
    assert "--cuda-mode applies to the cuda backend" in line, line
    (tmp_path / "lg").mkdir()
    (tmp_path / "lg" / "loadgen.json").write_text("{}")
    run_cli("perf", "-q", "--model", model, "--batches", "1", "--duration", "0", "--iterations", "2", "--warmup", "0",
            "--repeats", "1", "--output", tmp_path / "p")
    p = run_cli("report", tmp_path / "p", tmp_path / "lg", check=False)
    assert p.returncode == 2 and "Traceback" not in p.stderr and "run folder" not in p.stderr, p.stderr


def test_a_review_of_the_landed_code(tmp_path, tiny_dataset, info_file):
    """Found reading the diff: a --setting that overrode its own flag behind the batcher's
    back, an idle --openvino-hint in perf, compare.json named like the page, a work dir that
    is the --data folder (run wrote val_label.txt there, which the next run read as labels)."""
    model = stamped(tmp_path / "m.onnx", "mnasnet1_0")
    pytest.importorskip("mlperf_loadgen")
    for extra, says in ((["--scenario", "multi-stream", "--setting", "samples_per_query=16"], "--samples-per-query"),
                        (["--scenario", "server", "--setting", "target_latency=50"], "--latency-bound-ms"),
                        (["--official-durations", "--setting", "min_duration=1000"], "--official-durations")):
        line = _one_error_line(run_cli("loadgen", "--model", model, "--data", tiny_dataset, "--output",
                                       tmp_path / "lg", *extra, check=False))
        assert says in line, line
    line = _one_error_line(run_cli("perf", "--model", model, "--openvino-hint", "throughput", "--batches", "1",
                                   "--output", tmp_path / "p", check=False))
    assert "--openvino-hint applies to openvino configs" in line, line
    (tmp_path / "a").mkdir()
    line = _one_error_line(run_cli("report", tmp_path / "a", tmp_path / "a", "--output", tmp_path / "cmp.json",
                                   check=False))
    assert "NAME.html" in line, line
    data = tmp_path / "d"
    shutil.copytree(tiny_dataset, data)
    line = _one_error_line(run_cli("run", "--weights", model, "--data", data, "--work-dir", data, "--dry-run",
                                   check=False))
    assert "--work-dir" in line and "--data" in line, line


def test_streamed_outputs_are_not_reused_under_another_preset(tmp_path, tiny_dataset):
    """run --stream, then again with --interpolation bicubic in the same work dir: every output
    was reused (the resume identity of streamed images held no preprocessing), and the bilinear
    figures were recorded under the bicubic plan."""
    model = stamped(tmp_path / "m.onnx", "mnasnet1_0")
    work = tmp_path / "w"
    run_cli("run", "-q", "--weights", model, "--data", tiny_dataset, "--stream", "--work-dir", work)
    first = {p.name: p.read_text() for p in (work / "result" / "dumpOutput_device0").iterdir()}
    again = ("run", "-q", "--weights", model, "--data", tiny_dataset, "--stream", "--interpolation", "bicubic",
             "--work-dir", work)
    line = _one_error_line(run_cli(*again, check=False))  # another run's outputs: said, not reused
    assert "preprocessing" in line and "--overwrite" in line, line
    run_cli(*again, "--overwrite")
    s = json.loads((work / "summary.json").read_text())
    assert s["performance"]["resumed"] == 0 and s["plan"]["preset"]["interpolation"] == "bicubic"
    second = {p.name: p.read_text() for p in (work / "result" / "dumpOutput_device0").iterdir()}
    assert first.keys() == second.keys() and any(first[k] != second[k] for k in first)


def test_eval_gives_no_verdict_off_the_references_task(tmp_path, info_file, tiny_dataset):
    """Outputs recorded as the proxy's, scored on ImageNet labels (281, 967, ...): its reference
    was measured on its own 16 classes, so run gives no verdict, and now eval neither."""
    model = stamped(tmp_path / "m.onnx", "mnasnet1_0", provenance="proxy")
    run_cli("infer", "-q", "--model", model, "--info", info_file, "--output", tmp_path / "r")
    labels = [int(line.split()[1]) for line in (tiny_dataset / "val_label.txt").read_text().splitlines()]
    assert max(labels) >= 16  # the premise: labels off the proxy's task
    line = _one_error_line(run_cli("eval", tmp_path / "r" / "dumpOutput_device0", tiny_dataset / "val_label.txt",
                                   tmp_path, "x.json", "--check", check=False))
    assert "no accuracy verdict" in line and "16 classes" in line, line
