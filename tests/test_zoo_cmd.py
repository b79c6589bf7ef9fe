"""`clsbench zoo`: many models × configs in one resumable run, timm-style CSV, the frontier."""
from __future__ import annotations

import csv
import shutil

from helpers import PROXY, run_cli


def test_frontier_keeps_only_what_nothing_beats():
    from clsbench.flows.zoo import frontier

    pts = [(100, 70), (50, 75), (60, 72), (40, 74), (200, 60), (90, 69)]
    # (40, 74) loses to (50, 75) on both; (90, 69) to (100, 70)
    assert sorted(frontier(pts)) == [(50, 75), (60, 72), (100, 70), (200, 60)]


def test_zoo_two_models_one_table_and_a_rerun_measures_nothing(tmp_path):
    """mnasnet1_0 from a weights folder (torchvision's file name is not there: NAME.pth is),
    squeezenet1_1 with stand-in weights; one CSV row per model × config × batch with timm's
    columns and torchvision's reference Top-1; the rerun reuses exports and cells."""
    wdir = tmp_path / "weights"
    wdir.mkdir()
    shutil.copy(PROXY, wdir / "mnasnet1_0.pth")
    args = ["zoo", "--models", "mnasnet1_0,squeezenet1_1", "--configs", "onnxruntime:fp32", "--batches", "1,2",
            "--duration", "0", "--iterations", "2", "--warmup", "1", "--weights-dir", str(wdir),
            "--stand-in-weights", "--output", str(tmp_path / "z"), "-q"]
    run_cli(*args)
    rows = list(csv.DictReader(open(tmp_path / "z/zoo.csv")))
    assert [(r["model"], r["infer_batch_size"]) for r in rows] == [
        ("mnasnet1_0:IMAGENET1K_V1", "1"), ("mnasnet1_0:IMAGENET1K_V1", "2"),
        ("squeezenet1_1:IMAGENET1K_V1", "1"), ("squeezenet1_1:IMAGENET1K_V1", "2")]
    assert set(rows[0]) >= {"model", "infer_samples_per_sec", "infer_step_time", "infer_batch_size",
                            "infer_img_size", "param_count"}
    # the proxy's own reference (its 16-class task), not torchvision's 73.456 for official weights
    assert rows[0]["reference_top1"] == "75.391" and rows[0]["provenance"] == "proxy" and rows[0]["weights"] == "given"
    assert rows[2]["weights"] == "stand-in (speed only)" and rows[2]["param_count"] == "1.24"
    assert all(float(r["infer_samples_per_sec"]) > 0 for r in rows)
    assert (tmp_path / "z/zoo.png").stat().st_size > 10_000
    cells = sorted((tmp_path / "z/cells").iterdir())
    before = [c.stat().st_mtime_ns for c in cells] + [(tmp_path / "z/models/squeezenet1_1_IMAGENET1K_V1.onnx").stat().st_mtime_ns]
    run_cli(*args)
    after = [c.stat().st_mtime_ns for c in cells] + [(tmp_path / "z/models/squeezenet1_1_IMAGENET1K_V1.onnx").stat().st_mtime_ns]
    assert before == after


def test_zoo_without_weights_says_what_to_do(tmp_path):
    p = run_cli("zoo", "--models", "resnet18", "--output", str(tmp_path / "z"), check=False)
    assert p.returncode == 2 and "resnet18:IMAGENET1K_V1: no weights (looked for resnet18-f37072fd.pth, resnet18.pth)" \
        in p.stderr and "--stand-in-weights" in p.stderr and "Traceback" not in p.stderr
