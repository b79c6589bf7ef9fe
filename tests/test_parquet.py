"""`--outfmt parquet`: one dataset of (image, label, top5, logits) rows instead of a file per
image. Checked against the per-image text outputs of the same run (read by the guide's own
rules), against pyarrow reading the parts independently, and through resume, conflicts and
damaged parts."""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from helpers import guide_acc_eval, run_cli

pa = pytest.importorskip("pyarrow", reason="pip install 'clsbench[parquet]' (make test installs it)")
pq = pytest.importorskip("pyarrow.parquet")


def read_dataset(folder: Path) -> dict[str, dict]:
    """Every row of every part, read with pyarrow alone."""
    rows = {}
    for part in sorted(folder.glob("part-*.parquet")):
        for r in pq.read_table(part).to_pylist():
            assert r["image"] not in rows, f"{r['image']} twice"
            rows[r["image"]] = r
    return rows


def guide_scores(txt: Path) -> np.ndarray:
    return np.array([np.float32(v) for v in txt.read_text().split()], np.float32)


@pytest.fixture(scope="module")
def txt_run(tmp_path_factory, proxy_onnx, proxy_dataset):
    work = tmp_path_factory.mktemp("txt") / "w"
    run_cli("run", "-q", "--weights", proxy_onnx, "--data", proxy_dataset, "--batch-size", "4", "--stream",
            "--work-dir", work)
    return work


def check_against_text_run(work: Path, txt: Path, labels_file: Path) -> dict:
    assert (work / "result.json").read_bytes() == (txt / "result.json").read_bytes()
    # the guide's eval on the text run gives the same JSON: the parquet run is judged by the guide's rules
    assert (work / "result.json").read_text() == guide_acc_eval(txt / "result/dumpOutput_device0", labels_file)
    assert not (work / "result/dumpOutput_device0").exists()  # nothing where the guide's eval reads
    rows = read_dataset(work / "result/outputs_device0.parquet")
    dump = txt / "result/dumpOutput_device0"
    assert sorted(rows) == sorted(n[:-len("_1.txt")] for n in os.listdir(dump))
    labels = {line.split()[0].split(".")[0]: int(line.split()[1]) for line in labels_file.read_text().splitlines()}
    for key, r in rows.items():
        scores = guide_scores(dump / f"{key}_1.txt")
        assert np.array_equal(np.array(r["logits"], np.float32), scores)  # the same float32, bit for bit
        assert r["label"] == labels[key]
        top = r["top5"]
        assert len(top) == 5 and top[0] == int(np.argmax(scores))
        assert all(scores[a] >= scores[b] for a, b in zip(top, top[1:]))
        assert scores[top[4]] >= np.sort(scores)[-5]  # no class outside top5 scores higher
    return rows


@pytest.mark.slow
def test_stream_run_writes_one_dataset_with_the_text_runs_results(proxy_onnx, proxy_dataset, txt_run, tmp_path):
    work = tmp_path / "w"
    env = {"CLSBENCH_PARQUET_ROWS": "8"}
    run_cli("run", "-q", "--weights", proxy_onnx, "--data", proxy_dataset, "--batch-size", "4", "--stream",
            "--outfmt", "parquet", "--work-dir", work, env=env)
    rows = check_against_text_run(work, txt_run, proxy_dataset / "val_label.txt")
    parts = sorted((work / "result/outputs_device0.parquet").glob("part-*.parquet"))
    assert [pq.read_metadata(p).num_rows for p in parts] == [8, 8, 8, 5]
    s = json.loads((work / "summary.json").read_text())
    assert s["files"]["outputs"].endswith("outputs_device0.parquet")
    # interrupted: a part lost (never renamed in) -> a rerun redoes only its rows, same result
    lost = set(pq.read_table(parts[1], columns=["image"]).column(0).to_pylist())
    parts[1].unlink()
    run_cli("run", "-q", "--weights", proxy_onnx, "--data", proxy_dataset, "--batch-size", "4", "--stream",
            "--outfmt", "parquet", "--work-dir", work, env=env)
    assert read_dataset(work / "result/outputs_device0.parquet") == rows
    s = json.loads((work / "summary.json").read_text())
    assert s["performance"]["samples"] == len(lost) == 8 and s["performance"]["resumed"] == 21
    check_against_text_run(work, txt_run, proxy_dataset / "val_label.txt")
    # `clsbench eval` reads the dataset too
    p = run_cli("eval", work / "result/outputs_device0.parquet", proxy_dataset / "val_label.txt", tmp_path, "r.json")
    assert (tmp_path / "r.json").read_bytes() == (txt_run / "result.json").read_bytes(), p.stdout


@pytest.mark.slow
def test_offline_bin_path_writes_the_same_dataset(proxy_onnx, proxy_dataset, txt_run, tmp_path):
    work = tmp_path / "w"
    run_cli("run", "-q", "--weights", proxy_onnx, "--data", proxy_dataset, "--batch-size", "4",
            "--outfmt", "parquet", "--work-dir", work)
    check_against_text_run(work, txt_run, proxy_dataset / "val_label.txt")


def write_part(path: Path, keys, logits):
    logits = np.asarray(logits, np.float32)
    pq.write_table(pa.table({"image": keys, "logits": pa.FixedSizeListArray.from_arrays(
        pa.array(logits.ravel()), logits.shape[1])}), path)


def test_eval_of_a_dataset_by_hand(tmp_path):
    """Three images, label ranked 1st, 3rd and 6th; one row without a label; written by pyarrow."""
    d = tmp_path / "o.parquet"
    d.mkdir()
    s = np.array([[9, 1, 2, 3, 4, 5, 6], [1, 9, 8, 7, 6, 5, 4], [1, 2, 3, 4, 5, 6, 0], [0, 0, 0, 0, 0, 0, 1]])
    write_part(d / "part-00000.parquet", ["a", "b"], s[:2])
    write_part(d / "part-00001.parquet", ["c", "x"], s[2:])
    (tmp_path / "l.txt").write_text("a.JPEG 0\nb.JPEG 3\nc.JPEG 0\n")
    from clsbench.accuracy.evaluate import evaluate

    acc = evaluate(d, tmp_path / "l.txt")
    assert acc.hits == [1, 0, 1, 0, 0] and acc.images == 3 and acc.num_classes == 7
    assert acc.unlabelled_outputs == ["x"]


def test_damaged_or_foreign_datasets_are_one_line_errors(tmp_path, proxy_onnx, proxy_dataset):
    d = tmp_path / "o.parquet"
    d.mkdir()
    write_part(d / "part-00000.parquet", ["a"], [[1, 2]])
    write_part(d / "part-00001.parquet", ["a"], [[2, 1]])
    (tmp_path / "l.txt").write_text("a.JPEG 0\n")
    p = run_cli("eval", d, tmp_path / "l.txt", tmp_path, "r.json", check=False)
    assert p.returncode == 2 and "part-00001.parquet: a second output for image 'a'" in p.stderr
    assert "Traceback" not in p.stderr
    (d / "part-00001.parquet").write_bytes(b"PAR1 truncated")
    p = run_cli("eval", d, tmp_path / "l.txt", tmp_path, "r.json", check=False)
    assert p.returncode == 2 and "part-00001.parquet: not a" in p.stderr and "Traceback" not in p.stderr
    # a run refuses a dataset folder it did not write (no record beside it)
    work = tmp_path / "w"
    (work / "result").mkdir(parents=True)
    os.rename(d, work / "result/outputs_device0.parquet")
    (work / "result/outputs_device0.parquet/part-00001.parquet").unlink()
    p = run_cli("run", "-q", "--weights", proxy_onnx, "--data", proxy_dataset, "--stream", "--outfmt", "parquet",
                "--work-dir", work, check=False)
    assert p.returncode == 2 and "clsbench did not write" in p.stderr and "Traceback" not in p.stderr
    p = run_cli("run", "-q", "--weights", proxy_onnx, "--data", proxy_dataset, "--stream", "--outfmt", "parquet",
                "--work-dir", work, env={"CLSBENCH_PARQUET_ROWS": "0"}, check=False)
    assert p.returncode == 2 and "CLSBENCH_PARQUET_ROWS" in p.stderr


def test_top5_ranks_as_a_stable_argsort_of_the_negated_scores():
    """The fast ranking (partition, then sort five) against numpy's stable argsort, with
    many ties (small integers) and without, and fewer than five classes."""
    from clsbench.accuracy.evaluate import top5

    rng = np.random.default_rng(1)
    for trial in range(300):
        n, c = int(rng.integers(1, 40)), int(rng.integers(1, 60))
        x = (rng.integers(-3, 4, (n, c)) if trial % 2 else rng.standard_normal((n, c))).astype(np.float32)
        assert np.array_equal(top5(x), np.argsort(-x, axis=1, kind="stable")[:, :5]), x
