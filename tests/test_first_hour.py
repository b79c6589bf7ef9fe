"""A user's first hour: predictions on a folder without labels, ReaL labels and the
ImageNet-A/-R label sets, each against an independent reference (torchvision's own
preprocessing and class names, onnxruntime called directly, timm's RealLabelsImagenet)."""
from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import numpy as np
import pytest

from helpers import PHOTO_CASES, package_dir, photo, run_cli, run_options, stamped

TIMM_INFO = package_dir("timm") / "data" / "_info"


def _photos(folder: Path, n: int = 4) -> Path:
    folder.mkdir(parents=True)
    for name, src, size in PHOTO_CASES[:n]:
        photo(src).resize(size).save(folder / name)
    return folder


def _reference_top5(model: Path, folder: Path, key: str):
    """Independent: torchvision's weights.transforms() on PIL, onnxruntime on the result,
    softmax in float64, the class names torchvision's weights metadata carries."""
    import onnxruntime as ort
    import torch
    from PIL import Image
    from torchvision.models import get_model_weights

    name, tag = key.split(":")
    weights = get_model_weights(name)[tag]
    tf = weights.transforms()
    sess = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    out = {}
    for f in sorted(folder.iterdir()):
        with Image.open(f) as im:
            x = tf(im.convert("RGB"))[None].numpy()
        logits = sess.run(None, {"image": x})[0][0].astype(np.float64)
        p = np.exp(logits - logits.max())
        p /= p.sum()
        top = np.argsort(-logits, kind="stable")[:5]
        out[f.name.split(".")[0]] = [(int(c), weights.meta["categories"][c], float(p[c])) for c in top]
    assert torch  # the reference needs torchvision's transforms
    return out


@pytest.mark.parametrize("key", ["resnet18:IMAGENET1K_V1", "efficientnet_b0:IMAGENET1K_V1"])
def test_predictions_without_labels_equal_torchvision_and_onnxruntime(tmp_path, key):
    from clsbench.flows.run import run

    photos = _photos(tmp_path / "photos")
    model = stamped(tmp_path / "m.onnx", key)
    s = run(str(model), str(photos), run_options(work_dir=str(tmp_path / "w"), batch_size=3))
    assert s["accuracy"] is None and s["plan"]["data"]["labelled"] is False
    ref = _reference_top5(model, photos, key)
    with open(s["files"]["predictions"], newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0][:4] == ["image", "class1", "name1", "prob1"] and len(rows[0]) == 16
    assert {r[0] for r in rows[1:]} == set(ref)
    for r in rows[1:]:
        got = [(int(r[1 + 3 * i]), r[2 + 3 * i], float(r[3 + 3 * i])) for i in range(5)]
        assert [c for c, _, _ in got] == [c for c, _, _ in ref[r[0]]]
        assert [n for _, n, _ in got] == [n for _, n, _ in ref[r[0]]]
        assert np.allclose([p for *_, p in got], [p for *_, p in ref[r[0]]], atol=2e-6)
    shown = s["predictions"]["shown"]
    assert [x["image"] for x in shown] == sorted(ref)
    assert not (tmp_path / "w" / "result.json").exists()


def test_predictions_cli_terminal_and_report(tmp_path):
    photos = _photos(tmp_path / "photos", 3)
    model = stamped(tmp_path / "m.onnx", "resnet18:IMAGENET1K_V1")
    p = run_cli("run", "--weights", model, "--data", photos, "--work-dir", tmp_path / "w", "-q",
                env={"COLUMNS": "160"})
    text = p.stdout + p.stderr
    assert "predictions only, no accuracy" in text
    ref = _reference_top5(model, photos, "resnet18:IMAGENET1K_V1")
    for image, top in ref.items():
        assert re.search(rf"{re.escape(image)}\s+│\s+{re.escape(top[0][1])}", text), text
    html = (tmp_path / "w" / "report.html").read_text()
    assert "Predictions" in html and ref["portrait"][0][1] in html
    # a report rebuilt from the record (records are read back through the schema)
    run_cli("report", tmp_path / "w")


def test_data_given_as_the_val_folder_says_to_give_the_folder_above(tmp_path):
    d = tmp_path / "imagenet"
    _photos(d / "val", 2)
    (d / "val_label.txt").write_text("short256_landscape 1\nshort256_portrait 2\n")
    model = stamped(tmp_path / "m.onnx", "resnet18:IMAGENET1K_V1")
    p = run_cli("run", "--weights", model, "--data", d / "val", "--work-dir", tmp_path / "w", check=False)
    text = " ".join((p.stdout + p.stderr).split())
    assert p.returncode == 2 and "Traceback" not in text
    assert f"--data takes the folder above val/, where val_label.txt is: --data {d}" in text


def test_scoring_flags_need_labels(tmp_path):
    photos = _photos(tmp_path / "photos", 2)
    model = stamped(tmp_path / "m.onnx", "resnet18:IMAGENET1K_V1")
    for flag in (["--real-labels"], ["--label-set", "imagenet-r"]):
        p = run_cli("run", "--weights", model, "--data", photos, "--work-dir", tmp_path / "w", *flag, check=False)
        assert p.returncode == 2 and f"{flag[0]} scores against labels" in " ".join(p.stderr.split()), p.stderr


def test_shipped_label_data_equals_its_sources():
    from torchvision.models._meta import _IMAGENET_CATEGORIES

    from clsbench.data.labelsets import imagenet_names, real_labels, subset_indices

    assert list(imagenet_names()) == list(_IMAGENET_CATEGORIES)
    assert [list(x) for x in real_labels()] == json.loads((TIMM_INFO / "imagenet_real_labels.json").read_text())
    for name in ("a", "r"):
        want = [int(x) for x in (TIMM_INFO / f"imagenet_{name}_indices.txt").read_text().split()]
        assert subset_indices(f"imagenet-{name}").tolist() == want


def _outputs(folder: Path, keys: list[str], logits: np.ndarray) -> Path:
    folder.mkdir(parents=True)
    for k, row in zip(keys, logits):
        np.save(folder / f"{k}_1.npy", row.astype(np.float32))
    return folder


def test_real_labels_equal_timm_real_labels_imagenet(tmp_path):
    """timm's RealLabelsImagenet itself is the reference, fed the same outputs in order."""
    import torch
    from timm.data import RealLabelsImagenet

    from clsbench.accuracy.evaluate import Scoring, evaluate

    rng = np.random.default_rng(3)
    real = json.loads((TIMM_INFO / "imagenet_real_labels.json").read_text())
    idx = sorted(rng.choice(2000, 300, replace=False).tolist()) + [0, 21]  # 0 and 21: no ReaL label
    idx = sorted(set(idx))
    keys = [f"ILSVRC2012_val_{i + 1:08d}" for i in idx]
    logits = rng.standard_normal((len(keys), 1000)).astype(np.float32)
    for j, i in enumerate(idx):  # make some predictions right, at rank 1 or within 5
        if real[i] and j % 3 == 0:
            logits[j, real[i][0]] += 10
        elif real[i] and j % 3 == 1:
            logits[j, real[i][-1]] = np.sort(logits[j])[-3] + 1e-3
    (tmp_path / "l.txt").write_text("".join(f"{k} {int(rng.integers(1000))}\n" for k in keys))
    acc = evaluate(_outputs(tmp_path / "out", keys, logits), tmp_path / "l.txt", scoring=Scoring(real_labels=True))

    every = [f"ILSVRC2012_val_{i + 1:08d}.JPEG" for i in range(len(real))]  # timm insists on all 50,000
    ref = RealLabelsImagenet(every, real_json=str(TIMM_INFO / "imagenet_real_labels.json"))
    ref.filenames = [k + ".JPEG" for k in keys]  # then scores the outputs it is given, in this order
    ref.add_result(torch.from_numpy(logits))
    assert acc.real["images"] == sum(1 for i in idx if real[i])
    assert acc.real["without_real_label"] == sum(1 for i in idx if not real[i]) >= 2
    assert acc.real["top1"] == pytest.approx(ref.get_accuracy(k=1))
    assert acc.real["top5"] == pytest.approx(ref.get_accuracy(k=5))
    assert 20 < acc.real["top1"] < 60  # the test's outputs are neither all right nor all wrong


def test_real_labels_need_validation_names(tmp_path):
    from clsbench import ClsbenchError
    from clsbench.accuracy.evaluate import Scoring, evaluate

    out = _outputs(tmp_path / "out", ["cat", "dog"], np.zeros((2, 1000)))
    (tmp_path / "l.txt").write_text("cat 1\ndog 2\n")
    with pytest.raises(ClsbenchError, match="ILSVRC2012_val_00000001.*not 'cat'"):
        evaluate(out, tmp_path / "l.txt", scoring=Scoring(real_labels=True))


@pytest.mark.parametrize("label_set", ["imagenet-a", "imagenet-r"])
def test_label_set_scores_like_timm_masking_the_logits(tmp_path, label_set):
    """timm's validate.py with a 200-class subset: output[:, indices], top-k on that, labels
    the positions in the subset. Computed here with torch.topk, independently."""
    import torch

    from clsbench.accuracy.evaluate import Scoring, evaluate

    name = label_set.split("-")[1]
    indices = [int(x) for x in (TIMM_INFO / f"imagenet_{name}_indices.txt").read_text().split()]
    rng = np.random.default_rng(5)
    n = 240
    keys = [f"img{i:04d}" for i in range(n)]
    labels = rng.choice(indices, n)
    logits = rng.standard_normal((n, 1000)).astype(np.float32)
    logits[np.arange(n)[::4], labels[::4]] += 3  # some right
    # a class outside the subset scoring highest must not count as a prediction
    outside = [c for c in range(1000) if c not in set(indices)]
    logits[np.arange(n)[1::4], rng.choice(outside, len(range(1, n, 4)))] += 20
    (tmp_path / "l.txt").write_text("".join(f"{k} {int(c)}\n" for k, c in zip(keys, labels)))
    acc = evaluate(_outputs(tmp_path / "out", keys, logits), tmp_path / "l.txt", scoring=Scoring(label_set=label_set))

    sub = torch.from_numpy(logits)[:, indices]
    target = torch.tensor([indices.index(int(c)) for c in labels])
    top5 = sub.topk(5, dim=1).indices
    for k in (1, 5):
        want = (top5[:, :k] == target[:, None]).any(dim=1).float().mean().item() * 100
        assert acc.percent(k) == pytest.approx(want)
    assert acc.num_classes == 200 and 5 < acc.percent(1) < 95
    assert '"Number of classes", "value": "200"' in acc.result_json()


def test_label_set_refuses_a_label_outside_it(tmp_path):
    from clsbench import ClsbenchError
    from clsbench.accuracy.evaluate import Scoring, evaluate
    from clsbench.data.labelsets import subset_indices

    outside = next(c for c in range(1000) if c not in set(subset_indices("imagenet-a").tolist()))
    out = _outputs(tmp_path / "out", ["a"], np.zeros((1, 1000)))
    (tmp_path / "l.txt").write_text(f"a {outside}\n")
    with pytest.raises(ClsbenchError, match=rf"l.txt: label {outside} of 'a' is not one of the 200 classes of imagenet-a"):
        evaluate(out, tmp_path / "l.txt", scoring=Scoring(label_set="imagenet-a"))


def test_eval_cli_real_labels_and_label_set(tmp_path):
    rng = np.random.default_rng(1)
    keys = [f"ILSVRC2012_val_{i:08d}" for i in range(1, 41)]
    out = _outputs(tmp_path / "out", keys, rng.standard_normal((40, 1000)))
    (tmp_path / "l.txt").write_text("".join(f"{k} 6\n" for k in keys))
    p = run_cli("eval", out, tmp_path / "l.txt", tmp_path, "r.json", "--real-labels")
    assert re.search(r"ReaL: Top-1 \d+\.\d\d %, Top-5 \d+\.\d\d % on \d+ images \(\d+ without a ReaL label", p.stdout)
    p = run_cli("eval", out, tmp_path / "l.txt", tmp_path, "a.json", "--label-set", "imagenet-a")
    assert "200 classes of imagenet-a" in p.stdout
    p = run_cli("eval", out, tmp_path / "l.txt", tmp_path, "x.json", "--label-set", "imagenet-a", "--real-labels",
                check=False)
    assert p.returncode == 2 and "do not apply with --label-set" in " ".join(p.stderr.split())


def test_run_real_labels_into_the_record_terminal_and_report(tmp_path):
    """ReaL through `run`: images named as ImageNet's validation files; the first has no
    ReaL label (left out and counted); the figures equal evaluate's on the same outputs."""
    from clsbench.accuracy.evaluate import Scoring, evaluate

    d = tmp_path / "data"
    (d / "val").mkdir(parents=True)
    for i, (_, src, size) in enumerate(PHOTO_CASES[:4], start=1):
        photo(src).resize(size).save(d / "val" / f"ILSVRC2012_val_{i:08d}.JPEG")
    (d / "val_label.txt").write_text("".join(f"ILSVRC2012_val_{i:08d}.JPEG {c}\n" for i, c in
                                             zip(range(1, 5), (65, 970, 230, 809))))
    model = stamped(tmp_path / "m.onnx", "resnet18:IMAGENET1K_V1")
    p = run_cli("run", "--weights", model, "--data", d, "--work-dir", tmp_path / "w", "--real-labels", "-q",
                env={"COLUMNS": "160"})
    s = json.loads((tmp_path / "w" / "summary.json").read_text())
    real = s["accuracy"]["real"]
    assert real["images"] == 3 and real["without_real_label"] == 1
    want = evaluate(s["files"]["outputs"], d / "val_label.txt", scoring=Scoring(real_labels=True)).real
    assert real == want
    assert "ReaL Top1" in p.stdout and "3 of them with a ReaL label" in " ".join(p.stdout.split())
    assert "ReaL Top-1" in (tmp_path / "w" / "report.html").read_text()


def test_a_mistyped_option_gets_the_subcommands_usage_and_the_nearest_spelling():
    p = run_cli("run", "--weights", "w.pth", "--data", "d", "--batchsize", "16", check=False)
    assert p.returncode == 2 and p.stderr.startswith("usage: clsbench run ")
    assert "unrecognized argument --batchsize; did you mean --batch-size?" in p.stderr
    p = run_cli("perf", "--modle", "m.onnx", check=False)
    assert p.returncode == 2 and "usage: clsbench perf" in p.stderr and "did you mean --model?" in p.stderr
    p = run_cli("rnu", check=False)
    assert p.returncode == 2 and "no command 'rnu'; did you mean 'run'?" in p.stderr


def test_models_filter_matches_words_and_says_when_nothing_matches():
    from clsbench.model.table import all_models, default_tag

    keys = {s.key for s in all_models("vit")}
    assert "vit_b_16:IMAGENET1K_V1" in keys and not any(k.startswith("maxvit") for k in keys)
    assert {s.name for s in all_models("b0")} == {"efficientnet_b0"}
    assert any(s.name == "wide_resnet50_2" for s in all_models("resnet"))
    p = run_cli("models", "nothingmatches", check=False)
    assert p.returncode == 2 and "no model matches 'nothingmatches'" in " ".join(p.stderr.split())
    p = run_cli("models", "resnet18", env={"COLUMNS": "200"})
    row = next(line for line in p.stdout.splitlines() if "resnet18" in line)
    assert f"{default_tag('resnet18')} (default)" in row
    rows = [r for r in json.loads(run_cli("models", "resnet50", "--json").stdout) if r["name"] == "resnet50"]
    assert len(rows) == 2 and [r["default"] for r in rows].count(True) == 1


def test_perf_help_shows_percent_signs_once():
    p = run_cli("perf", "--help")
    assert "%%" not in p.stdout and "10 %" in " ".join(p.stdout.split())


def test_piped_output_has_no_progress_bars_or_blank_lines_and_idle_stages_say_so(tmp_path):
    """stderr piped: no bar is drawn (nothing to redraw), so no blank lines are left; the
    .bin flow's [preprocess] stage (done beforehand) is not shown as millions of images/s."""
    photos = _photos(tmp_path / "photos", 3)
    model = stamped(tmp_path / "m.onnx", "resnet18:IMAGENET1K_V1")
    p = run_cli("run", "--weights", model, "--data", photos, "--work-dir", tmp_path / "w", env={"COLUMNS": "160"})
    assert "\n\n\n" not in p.stderr and "━" not in p.stderr, p.stderr
    assert "no work in this step here" in p.stdout
    assert not re.search(r"\d{1,3}(,\d{3}){2,}\.\d\d images/s", p.stdout), p.stdout


@pytest.mark.parametrize("model", ["efficientnet_b0"])  # bicubic 256/224: not the default model's preset
def test_demo_runs_any_model_with_its_own_preset_and_advice(tmp_path, model):
    from clsbench.model.table import get_model

    spec = get_model(model)
    p = run_cli("demo", "--model", model, "--per-class", "3", "--work-dir", tmp_path / "d", "-q",
                env={"COLUMNS": "200"})
    text = " ".join((p.stdout + p.stderr).split())
    s = json.loads((tmp_path / "d" / "photos" / "summary.json").read_text())
    assert s["plan"]["model"]["key"] == spec.key and s["plan"]["model"]["provenance"] == "stand-in"
    pp = s["plan"]["preset"]
    assert (pp["resize"], pp["crop"], pp["interpolation"]) == (spec.preprocessing.resize, spec.preprocessing.crop,
                                                               spec.preprocessing.interpolation)
    assert f"--weights {spec.official.filename}" in text
    assert "not run for" in text and not (tmp_path / "d" / "proxy").exists()
    assert s["accuracy"]["judged"] is False


def test_default_demo_proxy_table_compares_like_with_like(tmp_path):
    """Each reduced precision beside fp32 on the very images it was judged on; calibration
    said only where there was one; the gap to the training figure explained with its margin."""
    p = run_cli("demo", "--proxy-images", "40", "--work-dir", tmp_path / "x", check=False)
    assert p.returncode == 2 and "--proxy-images must be >= 64" in p.stderr and not (tmp_path / "x").exists()
    p = run_cli("demo", "--per-class", "3", "--proxy-images", "64", "--work-dir", tmp_path / "d", "-q",
                env={"COLUMNS": "200"})
    text = " ".join((p.stdout + p.stderr).split())
    import openvino as ov

    bf16 = "BF16" in ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")  # OpenVINO's own word
    rows = {}
    for line in p.stdout.splitlines():
        cells = [c.strip() for c in line.split("│")[1:-1]]
        if len(cells) == 7 and cells[0] and cells[0] != "configuration":
            rows[cells[0]] = cells
    s = json.loads((tmp_path / "d" / "proxy" / "fp32" / "summary.json").read_text())
    if bf16:
        assert "compile openvino bf16 (no calibration" in text and "compile openvino bf16 (calibration" not in text
        assert rows["OpenVINO bf16"][6].startswith("none")
    else:  # a CPU without bf16: no fp32 figures under the bf16 label, and a note saying why
        assert "compile openvino bf16" not in text and "OpenVINO bf16" not in rows, rows
        assert "OpenVINO bf16 not compared with fp32: this CPU" in text and "has no bf16" in text
    for name in ("ORT int8", "OpenVINO int8", *(("OpenVINO bf16",) if bf16 else ())):
        images, fp32, top1, delta = rows[name][1:5]
        assert float(delta) == pytest.approx(float(top1) - float(fp32), abs=0.011), rows[name]
    assert rows["ORT int8"][6].startswith("32 images")
    assert int(rows["ORT int8"][1]) == s["accuracy"]["images"] - 32 and s["accuracy"]["images"] == 64
    acc = s["accuracy"]
    assert acc["reference_images"] == 256
    want = 196 * np.sqrt(acc["reference_top1"] / 100 * (1 - acc["reference_top1"] / 100) * (1 / acc["images"] + 1 / 256))
    assert acc["sampling_margin"] == pytest.approx(want, abs=1e-3)
    assert f"the 95 % margin of two samples ({acc['sampling_margin']:.2f}" in text
    gap = acc["reference_top1"] - acc["top1"]  # the flow's figure below (or above) the training one, said so
    assert f"{abs(gap):.2f} points {'below' if gap > 0 else 'above'}" in text


def test_nncf_draws_no_bars_of_its_own(tmp_path):
    """OpenVINO int8 calibration goes through NNCF, which draws its own rich progress bars
    ("Statistics collection") on stdout: none may reach clsbench's terminal."""
    pytest.importorskip("nncf")
    photos = _photos(tmp_path / "photos", 4)
    model = stamped(tmp_path / "m.onnx", "resnet18:IMAGENET1K_V1")
    p = run_cli("compile", "--model", model, "--backend", "openvino", "--precision", "int8", "--data", photos,
                "--calib-images", "4", "--parity-images", "4", "--output", tmp_path / "c")
    text = p.stdout + p.stderr
    assert "Statistics collection" not in text and "━" not in text, text
    assert list((tmp_path / "c").glob("*.xml"))


def test_a_second_work_dir_copies_the_export_only_when_everything_matches(tmp_path, proxy_weights, monkeypatch):
    """The same weights on the same images in a new work dir: the export is copied from the
    cache (same bytes, same parity); other images or a damaged entry: exported anew;
    CLSBENCH_CACHE=off: no cache at all."""
    import shutil

    from clsbench.compile.export import cache_dir, from_cache

    photos = _photos(tmp_path / "photos", 3)
    cache = tmp_path / "cache"
    env = {"CLSBENCH_CACHE": str(cache)}

    def run(data, work):
        p = run_cli("run", "-q", "--weights", proxy_weights, "--data", data, "--work-dir", tmp_path / work, env=env)
        return " ".join(p.stderr.split())

    assert "export cache" not in run(photos, "a") and len(list(cache.iterdir())) == 1
    entry = next(cache.iterdir())
    assert "copied from the export cache" in run(photos, "b")
    a, b = tmp_path / "a", tmp_path / "b"
    assert (a / "model.onnx").read_bytes() == (b / "model.onnx").read_bytes()
    pa, pb = (json.loads((d / "model.parity.json").read_text()) for d in (a, b))
    assert pa["parity"] == pb["parity"] and pb["onnx"] == str(b / "model.onnx")
    assert (a / "predictions.csv").read_text() == (b / "predictions.csv").read_text()
    other = tmp_path / "other"
    shutil.copytree(photos, other)
    next(other.iterdir()).unlink()
    assert "copied from the export cache" not in run(other, "c")
    with open(entry / "model.onnx", "r+b") as f:  # damaged in the cache: not used
        f.seek(200)
        f.write(b"\0" * 16)
    text = run(photos, "d")
    assert "does not match its record; not used" in text and "copied from the export cache" not in text
    monkeypatch.setenv("CLSBENCH_CACHE", "off")
    assert cache_dir() is None and from_cache(entry.name, tmp_path / "x.onnx", str(proxy_weights)) is None

def test_zoo_table_lists_a_models_batches_in_order():
    from clsbench.flows.zoo import to_markdown

    def row(model, bs, rate):
        return {"model": model, "backend": "onnxruntime", "precision": "fp32", "infer_batch_size": bs,
                "infer_samples_per_sec": rate, "infer_step_time": 1.0, "reference_top1": 70.0, "infer_gflops": 1,
                "param_count": 1, "weights": "stand-in", "cpu": "c", "threads": 2, "clsbench": "0"}

    md = to_markdown([row("a", 4, 300.0), row("a", 1, 100.0), row("b", 1, 900.0), row("b", 8, 1200.0)])
    lines = [line.split(" | ")[:4] for line in md.splitlines() if line.startswith("| a |") or line.startswith("| b |")]
    assert [(m.strip("| "), bs) for m, _, _, bs in lines] == [("b", "1"), ("b", "8"), ("a", "1"), ("a", "4")]
