"""Off the happy path (issue "Tests that catch what they claim"): the awkward case in the
middle of the input, each rule alone with inputs where only it decides, every row asserted.
Each test here kills a mutation of scripts/mutate.py's catalogue; the last test checks that
the whole catalogue still applies to the source."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest

from helpers import ROOT, run_cli


# ---------------------------------------------------------------- a partial batch in the middle

def test_unreadable_file_mid_listing_parquet_rows_are_their_images(tmp_path, proxy_onnx, proxy_dataset):
    """An unreadable file in the middle of the listing makes a partial batch mid-run (the
    streaming workers batch what decoded): every Parquet row's logits equal the per-image
    text output of the same image, row by row, and the bad file has no row."""
    pa = pytest.importorskip("pyarrow.parquet")
    data = tmp_path / "d"
    shutil.copytree(proxy_dataset, data)
    (data / "val" / "proxy_2024_000005b.JPEG").write_bytes(b"\xff\xd8 truncated")  # sorts 6th of 30
    common = ["--weights", proxy_onnx, "--data", data, "--batch-size", "4", "--stream", "--workers", "1", "-q"]
    run_cli("run", *common, "--work-dir", tmp_path / "txt")
    run_cli("run", *common, "--work-dir", tmp_path / "pq", "--outfmt", "parquet")
    t = pa.read_table(tmp_path / "pq/result/outputs_device0.parquet").to_pydict()
    assert len(t["image"]) == 29 and "proxy_2024_000005b" not in t["image"]
    for key, logits in zip(t["image"], t["logits"]):
        text = np.loadtxt(tmp_path / "txt/result/dumpOutput_device0" / f"{key}_1.txt", dtype=np.float32)
        np.testing.assert_array_equal(np.asarray(logits, np.float32), text, err_msg=key)
    assert (tmp_path / "pq/result.json").read_text() == (tmp_path / "txt/result.json").read_text()


# ---------------------------------------------------------------- each rule alone

def test_unstable_threshold_alone():
    """Spreads just below and just above 10 %: only the threshold decides."""
    from clsbench.runtime.timing import UNSTABLE_SPREAD, stability

    assert UNSTABLE_SPREAD == 0.10
    for spread, stable in ((0.099, True), (0.101, False), (0.2, False)):
        # two windows: rates r and r * (1 + spread) -> (max - min) / median = spread / (1 + spread / 2)
        s = spread * 2 / (2 - spread)  # the rate ratio that gives exactly `spread`
        ms = [10.0, 10.0 / (1 + s)]
        got = stability(ms, batch=1, repeats=2)
        assert got["spread"] == pytest.approx(spread, rel=1e-9) and got["stable"] is stable, (spread, got)


def test_parity_top1_rule_alone():
    """Logits where the L2 rule passes (fp32 exact, the error far under the floor) and only
    the top-1 rule decides: one clear-margin row whose two best swap fails the check."""
    from clsbench.compile.export import PARITY_FLOOR
    from clsbench.compile.export import judge_parity

    rng = np.random.default_rng(0)
    ref64 = rng.standard_normal((16, 1000))
    ref64[:, 7] = ref64.max(axis=1) + 1e-7  # every row: class 7 best by a hair, clearly above fp32 noise (0)
    ref32 = ref64.copy()
    got = ref64.astype(np.float64).copy()
    ok = judge_parity(ref32, ref64, got)
    assert ok["passed"] and ok["clear_margin_images"] == 16
    second = np.argsort(ref64[3])[-2]
    got[3, 7], got[3, second] = ref64[3, second], ref64[3, 7]
    bad = judge_parity(ref32, ref64, got)
    assert bad["rel_l2_error"] < PARITY_FLOOR / 100  # the L2 rule alone would pass
    assert not bad["passed"] and len(bad["reasons"]) == 1 and bad["reasons"][0].startswith("top-1 differs")
    assert bad["clear_margin_disagreements"] == 1


def test_last_line_without_newline_counts(tmp_path):
    """val_label.txt and a .info file whose last line has no newline: every row is read."""
    from clsbench.data.folders import read_info, read_labels

    (tmp_path / "l.txt").write_text("a.JPEG 1\nb.JPEG 2\nc.JPEG 3")
    assert read_labels(tmp_path / "l.txt") == {"a": 1, "b": 2, "c": 3}
    (tmp_path / "x.info").write_text("0 ./p/a.bin 224 224\n1 ./p/b.bin 224 224\n2 ./p/c.bin 224 224")
    assert [(e.idx, e.path) for e in read_info(tmp_path / "x.info")] == [(0, "./p/a.bin"), (1, "./p/b.bin"),
                                                                          (2, "./p/c.bin")]


def test_compare_judges_top1_just_past_the_threshold(tmp_path, proxy_onnx, proxy_dataset):
    """Two records of the same plan: Top-1 0.11 points lower is a regression, 0.09 is not
    (the 0.1-point rule alone: throughput equal)."""
    run_cli("run", "--weights", proxy_onnx, "--data", proxy_dataset, "--work-dir", tmp_path / "a", "-q")
    for drop, regressed in ((0.09, False), (0.11, True)):
        b = tmp_path / f"b{drop}"
        shutil.copytree(tmp_path / "a", b, dirs_exist_ok=True)
        s = json.loads((b / "summary.json").read_text())
        s["accuracy"]["top1"] -= drop
        (b / "summary.json").write_text(json.dumps(s))
        p = run_cli("report", tmp_path / "a", b, "--output", tmp_path / f"c{drop}.html", "--fail-on-regression",
                    check=False)
        c = json.loads((tmp_path / f"c{drop}.json").read_text())
        top1 = next(r for r in c["rows"] if r["figure"] == "Top-1 %")
        assert c["judged"] is True and bool(top1["cells"][1].get("regression")) is regressed
        assert top1["cells"][1]["delta"] == pytest.approx(-drop)
        assert p.returncode == (1 if regressed else 0)


# ---------------------------------------------------------------- records name what they were computed on

def test_held_out_images_are_named_and_disjoint_from_calibration(tmp_path, proxy_onnx, proxy_dataset):
    """compile names its calibration and held-out images: disjoint, and together the first
    images of the listing, in order (calibration first)."""
    from clsbench.data.folders import list_images, stem

    run_cli("compile", "--model", proxy_onnx, "--backend", "onnxruntime", "--precision", "int8", "--data",
            proxy_dataset / "val", "--calib-images", "10", "--parity-images", "12", "--output", tmp_path)
    rec = json.loads(next(tmp_path.glob("*.compile.json")).read_text())
    calib, held = rec["calibration_names"], rec["parity"]["held_out_names"]
    listing = [stem(p.name) for p in list_images(proxy_dataset / "val").images]
    assert calib == listing[:10] and held == listing[10:22] and not set(calib) & set(held)


# ---------------------------------------------------------------- the model table, tag by tag

def test_every_tag_preset_equals_torchvision():
    """Every (architecture, weights tag) of the table: its preset is the one that tag's
    weights.transforms() builds (a preset swapped between tags of one architecture fails)."""
    from torchvision.models import get_model_weights

    from clsbench.model.table import all_models

    n = 0
    for spec in all_models():
        t = get_model_weights(spec.name)[spec.tag].transforms()
        pp = spec.preprocessing
        assert (pp.resize, pp.crop, pp.interpolation) == (t.resize_size[0], t.crop_size[0], t.interpolation.value), \
            spec.key
        assert list(pp.mean) == pytest.approx(t.mean) and list(pp.std) == pytest.approx(t.std), spec.key
        n += 1
    assert n > 100


# ---------------------------------------------------------------- the resolver and the reuse rule

def test_recorded_preset_is_used(tmp_path, tiny_dataset):
    """An ONNX from another tool that records only its preprocessing (no architecture): the
    plan takes that preset, field by field from the model file."""
    from helpers import run_options, tiny_classifier

    from clsbench.plan import resolve

    pp = {"resize": 240, "crop": 200, "mean": [0.5, 0.5, 0.5], "std": [0.25, 0.25, 0.25],
          "interpolation": "bicubic", "layout": "NCHW", "dtype": "float32", "exif_transpose": False}
    m = tiny_classifier(tmp_path / "m.onnx", size=200, meta={"preprocessing": json.dumps(pp)})
    p = resolve(str(m), str(tiny_dataset), run_options(work_dir=str(tmp_path / "w")))
    assert p.preset.pp.as_dict() == {**pp, "mean": (0.5, 0.5, 0.5), "std": (0.25, 0.25, 0.25)}
    assert dict(p.preset.sources)["interpolation"] == "the model file" and p.model.provenance == "foreign"


def test_same_size_replacement_is_redone(tmp_path, proxy_onnx, proxy_dataset):
    """A file replaced by another picture of exactly the same size (a copy that keeps sizes,
    an in-place edit): its mtime differs, so it is redone."""
    data = tmp_path / "d"
    shutil.copytree(proxy_dataset, data)
    args = ["run", "--weights", proxy_onnx, "--data", data, "--work-dir", tmp_path / "w", "-q"]
    run_cli(*args)
    files = sorted((data / "val").iterdir())
    big, small = max(files, key=lambda f: f.stat().st_size), min(files, key=lambda f: f.stat().st_size)
    body = small.read_bytes()
    big.write_bytes(body + b"\0" * (big.stat().st_size - len(body)))  # another picture, the same size
    p = run_cli(*args)
    assert "1 written, 28 already done" in p.stderr
    run_cli("run", "--weights", proxy_onnx, "--data", data, "--work-dir", tmp_path / "fresh", "-q")
    key = big.name.split(".")[0] + "_1.txt"
    assert (tmp_path / "w/result/dumpOutput_device0" / key).read_bytes() == \
        (tmp_path / "fresh/result/dumpOutput_device0" / key).read_bytes()


def test_the_mutation_catalogue_still_applies():
    """scripts/mutate.py --check: every mutation's text occurs once in the source and every
    guarding test exists (the full run, which kills them, is not in CI)."""
    p = subprocess.run([sys.executable, str(ROOT / "scripts" / "mutate.py"), "--check"], capture_output=True,
                       text=True, cwd=ROOT)
    assert p.returncode == 0, p.stdout + p.stderr
    assert p.stdout.startswith("all ") and "mutations apply" in p.stdout
