"""One plan per run (issue: "nothing silently MnasNet, nothing silently stale").

Each test puts clsbench next to an independent reference: torchvision's and timm's own
transforms with the override applied there, the model table, the guide's eval reading the
outputs, a fresh work dir. The models are tiny ONNX graphs stamped with the identity a
clsbench export records (architecture, tag, preset), so every torchvision preset can be run
through the real commands in seconds; what their logits depend on (the channel means of
the crop) changes with every preprocessing field.
"""
from __future__ import annotations

import json
import os
import shutil

import numpy as np
import pytest

from helpers import guide_acc_eval, run_cli, stamped, tiny_classifier

# (model, torchvision weights entry or timm config): bicubic 256/224, 232/224, 342/299,
# 480/480 with mean/std 0.5 (not ImageNet's), and a timm model
TORCHVISION = ["efficientnet_b0:IMAGENET1K_V1", "resnet50:IMAGENET1K_V2", "inception_v3:IMAGENET1K_V1",
               "efficientnet_v2_l:IMAGENET1K_V1"]
OVERRIDES = [{}, {"crop": 200}, {"interpolation": "nearest"}, {"resize": 300},
             {"mean": (0.4, 0.5, 0.6), "std": (0.2, 0.3, 0.25)}]


def torchvision_transform(key: str, override: dict):
    """torchvision's own weights.transforms() for `key`, with the override given to it."""
    from torchvision.models import get_model_weights
    from torchvision.transforms import InterpolationMode

    arch, _, tag = key.partition(":")
    partial = get_model_weights(arch)[tag].transforms
    kw = dict(partial.keywords)
    names = {"crop": "crop_size", "resize": "resize_size", "mean": "mean", "std": "std"}
    for k, v in override.items():
        kw[names.get(k, k)] = InterpolationMode(v) if k == "interpolation" else v
    return partial.func(**kw)


def _flags(override: dict) -> list[str]:
    out = []
    for k, v in override.items():
        out += [f"--{k}", ",".join(map(str, v)) if isinstance(v, tuple) else str(v)]
    return out


from helpers import run_options as _options  # noqa: E402


# ---------------------------------------------------------------- case 2: overrides on the model's preset

@pytest.mark.parametrize("key", TORCHVISION)
@pytest.mark.parametrize("override", OVERRIDES, ids=lambda o: ",".join(o) or "none")
@pytest.mark.parametrize("source", ["pth", "onnx"])
def test_plan_preset_is_the_models_own_with_the_flag_on_top(tmp_path, tiny_dataset, key, override, source):
    """Every (model, override, weights kind): the plan's preset equals torchvision's own
    transform built with that override, and each field names its source."""
    from clsbench.plan import resolve

    if source == "pth":
        weights = tmp_path / "w.pth"
        weights.write_bytes(b"PK\x03\x04 not loaded by a plan")
        model = key
    else:
        weights, model = stamped(tmp_path / "m.onnx", key, size=override.get("crop")), None
    ref = torchvision_transform(key, override)
    opts = _options(model=model, work_dir=str(tmp_path / "w"), **override)
    if ref.crop_size[0] > ref.resize_size[0]:  # torchvision pads; the exact path refuses, naming the flag
        from clsbench import ClsbenchError

        with pytest.raises(ClsbenchError, match=r"crop <= resize.*\(flags --resize on "):
            resolve(str(weights), str(tiny_dataset), opts)
        return
    p = resolve(str(weights), str(tiny_dataset), opts)
    pp = p.preset.pp
    assert (pp.resize, pp.crop, pp.interpolation) == (ref.resize_size[0], ref.crop_size[0], ref.interpolation.value)
    assert list(pp.mean) == pytest.approx(ref.mean) and list(pp.std) == pytest.approx(ref.std)
    src = dict(p.preset.sources)
    for f in ("resize", "crop", "interpolation", "mean", "std"):
        assert (src[f] == "flag") == (f in override)
        assert src[f] == "flag" or ("model file" if source == "onnx" else key) in src[f]
    assert p.model.key == key and p.model.provenance == "other" and p.model.reference_top1 is None


@pytest.mark.parametrize("key,override", [("efficientnet_b0:IMAGENET1K_V1", {"crop": 224}),
                                          ("inception_v3:IMAGENET1K_V1", {"interpolation": "bicubic"}),
                                          ("efficientnet_v2_l:IMAGENET1K_V1", {"crop": 384, "resize": 400})])
def test_run_bins_equal_torchvision_transform_with_the_override(tmp_path, photo_dir, key, override):
    """`run --weights model.onnx --crop 224` on an efficientnet_b0 file preprocesses bicubic,
    as EfficientNet_B0_Weights.transforms(crop_size=224) does: every .bin, byte for byte;
    the streaming run of the same plan computes the same outputs."""
    from PIL import Image

    data = tmp_path / "data"
    shutil.copytree(photo_dir, data / "val")
    names = sorted(os.listdir(data / "val"))
    (data / "val_label.txt").write_text("".join(f"{n} {i}\n" for i, n in enumerate(names)))
    size = override.get("crop")
    model = stamped(tmp_path / "m.onnx", key, size=size)
    work = tmp_path / "w"
    run_cli("run", "--weights", model, "--data", data, "--work-dir", work, "-q", *_flags(override))
    t = torchvision_transform(key, override)
    for n in names:
        want = t(Image.open(data / "val" / n).convert("RGB")).numpy().astype("<f4").tobytes()
        assert (work / "prep_dataset" / (n.split(".")[0] + ".bin")).read_bytes() == want, n
    s = json.loads((work / "summary.json").read_text())
    assert s["plan"]["preset"]["sources"]["interpolation"] == ("flag" if "interpolation" in override else "the model file")
    run_cli("run", "--weights", model, "--data", data, "--work-dir", tmp_path / "ws", "--stream", "-q", *_flags(override))
    for n in os.listdir(work / "result/dumpOutput_device0"):
        a = np.loadtxt(work / "result/dumpOutput_device0" / n)
        b = np.loadtxt(tmp_path / "ws/result/dumpOutput_device0" / n)
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)


def test_timm_preset_with_an_override_equals_timms_transform(tmp_path, photo_dir, tiny_dataset):
    """A timm model's preset, interpolation overridden: timm's own eval transform with the same."""
    timm = pytest.importorskip("timm")
    from PIL import Image

    from clsbench.model.table import get_model
    from clsbench.plan import resolve

    spec = get_model("timm:resnet18.a1_in1k")
    weights = tmp_path / "w.pth"
    weights.write_bytes(b"PK\x03\x04 not loaded by a plan")
    p = resolve(str(weights), str(tiny_dataset), _options(model=spec.key, interpolation="bilinear",
                                                       work_dir=str(tmp_path / "w")))
    cfg = timm.data.resolve_data_config(pretrained_cfg=timm.models.get_pretrained_cfg("resnet18.a1_in1k").to_dict())
    assert cfg["interpolation"] == "bicubic"  # the override changes something
    t = timm.data.create_transform(**{**cfg, "interpolation": "bilinear"})
    from clsbench.data.preprocess import preprocess_image

    for n in sorted(os.listdir(photo_dir))[:4]:
        want = t(Image.open(photo_dir / n).convert("RGB")).numpy()
        np.testing.assert_array_equal(preprocess_image(photo_dir / n, p.preset.pp), want)


# ---------------------------------------------------------------- case 3: a foreign ONNX with a hand preset

def test_foreign_onnx_with_a_hand_preset_is_not_mnasnet(tmp_path, proxy_dataset):
    model = tiny_classifier(tmp_path / "foreign.onnx")
    flags = ["--resize", "232", "--crop", "224", "--interpolation", "bicubic", "--mean", "0.5,0.5,0.5",
             "--std", "0.5,0.5,0.5"]
    p = run_cli("run", "--weights", model, "--data", proxy_dataset, "--work-dir", tmp_path / "w", "-q", *flags)
    assert "records no preset" not in p.stderr and "mnasnet" not in (p.stdout + p.stderr).lower()
    s = json.loads((tmp_path / "w/summary.json").read_text())
    m = s["plan"]["model"]
    assert m["key"] is None and m["provenance"] == "foreign" and m["reference_top1"] is None
    assert set(s["plan"]["preset"]["sources"].values()) == {"flag", "default (off, as torchvision)"}
    assert [k for k, v in s["plan"]["preset"]["sources"].items() if v == "flag"] == \
        ["resize", "crop", "interpolation", "mean", "std"]
    assert s["accuracy"]["reference_top1"] is None and s["accuracy"]["within_tolerance"] is None
    html = (tmp_path / "w/report.html").read_text()
    assert "73.456" not in html and "FAIL" not in html
    # only some flags: the rest comes from the default, and the warning names exactly those
    p = run_cli("run", "--weights", tiny_classifier(tmp_path / "f200.onnx", size=200), "--data", proxy_dataset,
                "--work-dir", tmp_path / "w2", "-q", "--crop", "200", "--dry-run")
    assert "resize, interpolation, mean, std from mnasnet1_0's" in p.stderr and "crop" in p.stdout


# ---------------------------------------------------------------- case 4: compiled files through run; early refusals

def test_compiled_int8_files_run_through_run(tmp_path, proxy_dataset):
    model = stamped(tmp_path / "m.onnx", "efficientnet_b0:IMAGENET1K_V1")
    run_cli("compile", "--model", model, "--backend", "onnxruntime", "--precision", "int8", "--data",
            proxy_dataset / "val", "--calib-images", "8", "--parity-images", "8", "--output", tmp_path / "c")
    art = tmp_path / "c/m.onnxruntime.int8.onnx"
    for extra in ([], ["--backend", "onnxruntime", "--precision", "int8"], ["--precision", "int8"]):
        work = tmp_path / f"w{len(extra)}"
        run_cli("run", "--weights", art, "--data", proxy_dataset, "--work-dir", work, "-q", *extra)
        s = json.loads((work / "summary.json").read_text())
        assert s["plan"]["target"] == {"backend": "onnxruntime", "precision": "int8", "artifact": "as is",
                                       "options": {}, "threads": None}
        assert s["performance"]["backend"]["precision"] == "int8" and not (work / "compiled").exists()
    p = run_cli("run", "--weights", art, "--data", proxy_dataset, "--work-dir", tmp_path / "x", "--precision",
                "fp32", check=False)
    assert p.returncode == 2 and "an int8 model, but precision 'fp32' was asked for" in p.stderr


def test_openvino_int8_ir_runs_through_run(tmp_path, proxy_dataset):
    pytest.importorskip("openvino")
    model = stamped(tmp_path / "m.onnx", "efficientnet_b0:IMAGENET1K_V1")
    run_cli("compile", "--model", model, "--backend", "openvino", "--precision", "int8", "--data",
            proxy_dataset / "val", "--calib-images", "8", "--parity-images", "8", "--output", tmp_path / "c")
    ir = tmp_path / "c/m.openvino.int8.xml"
    run_cli("run", "--weights", ir, "--data", proxy_dataset, "--work-dir", tmp_path / "w", "-q",
            "--backend", "openvino", "--precision", "int8")
    s = json.loads((tmp_path / "w/summary.json").read_text())
    assert (s["plan"]["target"]["precision"], s["plan"]["target"]["artifact"]) == ("int8", "as is")
    assert s["plan"]["preset"]["interpolation"] == "bicubic"  # efficientnet_b0's, read from the IR


@pytest.mark.parametrize("shape,flags,message", [
    ((1, 224), [], "has a fixed batch of 1; use --batch-size 1"),
    (("N", None), [], "has symbolic spatial dims"),
    (("N", 224), ["--model", "inception_v3"], "the model takes 224x224 images; the preset crops 299x299"),
    (("N", 224), ["--crop", "200"], "(crop from flag); give --crop 224"),
])
def test_fixed_shapes_refused_before_any_image_is_preprocessed(tmp_path, proxy_dataset, shape, flags, message):
    model = tiny_classifier(tmp_path / "m.onnx", batch=shape[0] if shape[0] != "N" else None, size=shape[1])
    p = run_cli("run", "--weights", model, "--data", proxy_dataset, "--work-dir", tmp_path / "w", *flags, check=False)
    assert p.returncode == 2 and message in p.stderr and "Traceback" not in p.stderr
    assert not (tmp_path / "w").exists()  # nothing was started


# ---------------------------------------------------------------- case 5: the eager reference is any architecture

@pytest.fixture(scope="module")
def resnet18(tmp_path_factory):
    """resnet18's torchvision init as a state dict, and a tiny ONNX recording resnet18."""
    import torch
    import torchvision

    d = tmp_path_factory.mktemp("r18")
    torch.manual_seed(0)
    torch.save(torchvision.models.resnet18().eval().state_dict(), d / "r18.pth")
    return d / "r18.pth", stamped(d / "resnet18.onnx", "resnet18:IMAGENET1K_V1")


def test_perf_torch_builds_the_architecture_the_onnx_records(tmp_path, resnet18):
    pth, onnx_path = resnet18
    run_cli("perf", "--model", onnx_path, "--weights", pth, "--configs", "torch:fp32,onnxruntime:fp32",
            "--batches", "2", "--duration", "0", "--iterations", "2", "--warmup", "0", "--repeats", "1",
            "--output", tmp_path / "perf", "-q")
    rows = json.loads((tmp_path / "perf/perf.json").read_text())["rows"]
    assert {r["backend"] for r in rows} == {"torch", "onnxruntime"}
    foreign = tiny_classifier(tmp_path / "f.onnx")
    p = run_cli("perf", "--model", foreign, "--weights", pth, "--configs", "torch:fp32", "--output",
                tmp_path / "p2", check=False)
    assert p.returncode == 2 and "records none" in p.stderr


def test_run_stream_torch_on_another_architecture(tmp_path, resnet18, proxy_dataset):
    """run --stream --backend torch with resnet18 weights: the workers build resnet18 (the
    options reach them), and the outputs equal the non-streaming run's."""
    pth, _ = resnet18
    for extra, work in (([], "a"), (["--stream", "--workers", "2"], "b")):
        run_cli("run", "--weights", pth, "--model", "resnet18", "--backend", "torch", "--data", proxy_dataset,
                "--work-dir", tmp_path / work, "--batch-size", "8", "-q", *extra)
    s = json.loads((tmp_path / "b/summary.json").read_text())
    assert s["plan"]["target"]["options"]["arch"] == "resnet18:IMAGENET1K_V1"
    assert s["plan"]["target"]["artifact"] == "weights" and s["parity"] is None  # nothing exported
    for n in os.listdir(tmp_path / "a/result/dumpOutput_device0"):
        np.testing.assert_allclose(np.loadtxt(tmp_path / "a/result/dumpOutput_device0" / n),
                                   np.loadtxt(tmp_path / "b/result/dumpOutput_device0" / n), rtol=1e-4, atol=1e-4)


def test_openvino_hint_reaches_streaming_workers(tmp_path, proxy_dataset):
    pytest.importorskip("openvino")
    model = stamped(tmp_path / "m.onnx", "mnasnet1_0")
    run_cli("run", "--weights", model, "--data", proxy_dataset, "--work-dir", tmp_path / "w", "--stream",
            "--backend", "openvino", "--openvino-hint", "throughput", "-q")
    s = json.loads((tmp_path / "w/summary.json").read_text())
    assert s["plan"]["target"]["options"] == {"hint": "throughput"}
    p = run_cli("run", "--weights", model, "--data", proxy_dataset, "--work-dir", tmp_path / "x",
                "--openvino-hint", "throughput", check=False)
    assert p.returncode == 2 and "applies to the openvino backend" in p.stderr


# ---------------------------------------------------------------- case 6: eval names what it compares with

def test_eval_names_its_reference_or_none(tmp_path):
    d = tmp_path / "out"
    d.mkdir()
    for i in range(3):
        s = np.zeros(1000, np.float32)
        s[i] = 1
        (d / f"img{i}_1.txt").write_text(" ".join(map(str, s)) + "\n")
    (tmp_path / "l.txt").write_text("".join(f"img{i}.JPEG {i}\n" for i in range(3)))
    p = run_cli("eval", d, tmp_path / "l.txt", tmp_path, "r.json")
    assert "mnasnet" not in p.stdout and "no reference named" in p.stdout
    p = run_cli("eval", d, tmp_path / "l.txt", tmp_path, "r.json", "--model", "resnet50")
    assert "vs torchvision's table for resnet50:IMAGENET1K_V2" in p.stdout and "80.858" in p.stdout
    p = run_cli("eval", d, tmp_path / "l.txt", tmp_path, "r.json", "--check", check=False)
    assert p.returncode == 2 and "--check judges against a reference" in p.stderr


# ---------------------------------------------------------------- case 7: report compares like with like

def test_report_of_two_models_at_two_batches_is_not_judged(tmp_path, proxy_dataset):
    for key, bs, name in (("efficientnet_b0", 16, "a"), ("convnext_tiny", 4, "b")):
        run_cli("run", "--weights", stamped(tmp_path / f"{name}.onnx", key, seed=len(name)), "--data",
                proxy_dataset, "--work-dir", tmp_path / name, "--batch-size", bs, "-q")
    p = run_cli("report", tmp_path / "a", tmp_path / "b", "--output", tmp_path / "c.html")
    assert "NOT COMPARABLE" in p.stdout and "no regression verdict" in p.stdout
    c = json.loads((tmp_path / "c.json").read_text())
    assert c["judged"] is False and c["regressions"] == 0 and {"model", "batch"} <= set(c["not_judged_because"])
    diff = {r[0]: r[1:] for r in c["plan_differences"]}
    assert diff["model"] == ["efficientnet_b0:IMAGENET1K_V1", "convnext_tiny:IMAGENET1K_V1"]
    assert diff["batch"] == ["16", "4"]
    assert "convnext_tiny" in c["rows"][0]["config"] and "efficientnet_b0" in c["rows"][0]["config"]
    html = (tmp_path / "c.html").read_text()
    assert "Not comparable" in html and "Regressions" not in html
    p = run_cli("report", tmp_path / "a", tmp_path / "b", "--output", tmp_path / "c.html",
                "--fail-on-regression", check=False)
    assert p.returncode == 2 and "differ in model" in p.stderr
    # the same plan twice is judged
    shutil.copytree(tmp_path / "a", tmp_path / "a2")
    c = run_cli("report", tmp_path / "a", tmp_path / "a2", "--output", tmp_path / "d.html")
    assert json.loads((tmp_path / "d.json").read_text())["judged"] is True


# ---------------------------------------------------------------- case 8: verdicts only where they mean something

def test_other_and_stand_in_weights_get_no_verdict(tmp_path, proxy_dataset, resnet18):
    pth, _ = resnet18
    p = run_cli("run", "--weights", pth, "--model", "resnet18", "--backend", "torch", "--data", proxy_dataset,
                "--work-dir", tmp_path / "w", "-q")
    s = json.loads((tmp_path / "w/summary.json").read_text())
    assert s["plan"]["model"]["provenance"] == "other" and s["accuracy"]["judged"] is False
    assert s["accuracy"]["reference_top1"] is None and "No accuracy verdict" in p.stdout
    html = (tmp_path / "w/report.html").read_text()
    assert "69.758" not in html and ">FAIL<" not in html
    p = run_cli("run", "--weights", pth, "--model", "resnet18", "--backend", "torch", "--data", proxy_dataset,
                "--work-dir", tmp_path / "w2", "--check", check=False)
    assert p.returncode == 2 and "no accuracy verdict" in p.stderr and not (tmp_path / "w2").exists()
    # a stand-in export records itself as such; a later run of the file knows it
    model = stamped(tmp_path / "s.onnx", "resnet18", provenance="stand-in")
    run_cli("run", "--weights", model, "--data", proxy_dataset, "--work-dir", tmp_path / "w3", "-q")
    s = json.loads((tmp_path / "w3/summary.json").read_text())
    assert s["plan"]["model"]["provenance"] == "stand-in" and s["accuracy"]["judged"] is False


def test_stand_in_export_is_recorded_in_the_onnx(tmp_path, resnet18):
    from clsbench.model.files import read_metadata

    pth, _ = resnet18
    run_cli("export", "--model", "resnet18", "--weights", pth, "--output", tmp_path / "m.onnx",
            "--stand-in-weights", "--parity-batch", "2", "--no-check")
    assert read_metadata(tmp_path / "m.onnx")["provenance"] == "stand-in"


def test_official_verdict_uses_the_sampling_margin():
    """The verdict rule alone: a drop just past the allowed one fails, just inside passes;
    the allowed drop is the tolerance or the 95 % binomial margin of the image count."""
    from clsbench.model.table import get_model
    from clsbench.plan import _judged, judge_accuracy

    m = _judged(get_model("mnasnet1_0"), "official", None)
    big = 50000
    margin = 196 * np.sqrt(0.73456 * (1 - 0.73456) / big)
    assert margin < 1
    assert judge_accuracy(m, 73.456 - 0.999, big, 1.0)["within_tolerance"] is True
    assert judge_accuracy(m, 73.456 - 1.001, big, 1.0)["within_tolerance"] is False
    small = judge_accuracy(m, 73.456 - 10, 29, 1.0)
    assert small["allowed_drop"] == pytest.approx(196 * np.sqrt(0.73456 * 0.26544 / 29), abs=1e-3)
    assert small["within_tolerance"] is True
    assert judge_accuracy(m, 73.456 - 17, 29, 1.0)["within_tolerance"] is False
    other = _judged(get_model("mnasnet1_0"), "other", None)
    assert judge_accuracy(other, 0.0, 29, 1.0)["judged"] is False


# ---------------------------------------------------------------- case 1: reuse only what provably matches

@pytest.fixture(scope="module")
def two_datasets(tmp_path_factory):
    """A and B: the proxy's task, other pictures under the same file names."""
    from clsbench.data.proxy_task import write_images

    root = tmp_path_factory.mktemp("ab")
    write_images(root / "A", 12, seed=5)
    write_images(root / "B", 12, seed=6)
    for f in (root / "B/val").iterdir():  # B's files take A's names
        f.rename(f.with_name(f.name.replace("proxy_6_", "proxy_5_")))
    lab = (root / "B/val_label.txt").read_text().replace("proxy_6_", "proxy_5_")
    (root / "B/val_label.txt").write_text(lab)
    assert sorted(os.listdir(root / "A/val")) == sorted(os.listdir(root / "B/val"))
    return root / "A", root / "B"


@pytest.mark.parametrize("mode", [[], ["--stream"], ["--outfmt", "npy"]])
def test_second_dataset_in_the_same_work_dir_is_not_reused(tmp_path, proxy_onnx, two_datasets, mode):
    a, b = two_datasets
    run_cli("run", "--weights", proxy_onnx, "--data", a, "--work-dir", tmp_path / "w", "-q", *mode)
    p = run_cli("run", "--weights", proxy_onnx, "--data", b, "--work-dir", tmp_path / "w", "-q", *mode)
    run_cli("run", "--weights", proxy_onnx, "--data", b, "--work-dir", tmp_path / "fresh", "-q", *mode)
    assert "nothing left to infer" not in p.stderr
    assert (tmp_path / "w/result.json").read_text() == (tmp_path / "fresh/result.json").read_text()
    if not mode:
        assert (tmp_path / "w/result.json").read_text() == guide_acc_eval(tmp_path / "w/result/dumpOutput_device0",
                                                                          b / "val_label.txt")
    dump = "result/dumpOutput_device0"
    assert sorted(os.listdir(tmp_path / "w" / dump)) == sorted(os.listdir(tmp_path / "fresh" / dump))
    for n in os.listdir(tmp_path / "fresh" / dump):
        assert (tmp_path / "w" / dump / n).read_bytes() == (tmp_path / "fresh" / dump / n).read_bytes()


def test_image_replaced_in_place_is_redone_alone(tmp_path, proxy_onnx, two_datasets):
    a, b = two_datasets
    data = tmp_path / "d"
    shutil.copytree(a, data)
    args = ["run", "--weights", proxy_onnx, "--data", data, "--work-dir", tmp_path / "w"]
    run_cli(*args, "-q")
    name = sorted(os.listdir(data / "val"))[3]
    shutil.copyfile(b / "val" / name, data / "val" / name)  # new bytes, same name (and maybe size)
    p = run_cli(*args, "-q")
    assert "1 written, 11 already done" in p.stderr
    fresh = tmp_path / "fresh"
    run_cli("run", "--weights", proxy_onnx, "--data", data, "--work-dir", fresh, "-q")
    key = name.split(".")[0] + "_1.txt"
    assert (tmp_path / "w/result/dumpOutput_device0" / key).read_bytes() == \
        (fresh / "result/dumpOutput_device0" / key).read_bytes()
    assert (tmp_path / "w/result.json").read_text() == (fresh / "result.json").read_text()


def test_preprocess_into_a_used_folder_takes_the_new_images(tmp_path, two_datasets):
    from helpers import reference_bin

    a, b = two_datasets
    dst = tmp_path / "P"
    run_cli("preprocess", a / "val", dst, "-q")
    p = run_cli("preprocess", b / "val", dst, "-q")
    assert "12 written, 0 already done" in p.stdout
    for f in sorted((b / "val").iterdir()):
        want = reference_bin(f, 256, 224, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
        assert (dst / (f.name.split(".")[0] + ".bin")).read_bytes() == want
    # a source folder with fewer images: the .bin files of the others go (gen_dataset_info lists them all)
    c = tmp_path / "C"
    shutil.copytree(b / "val", c)
    for f in sorted(c.iterdir())[:5]:
        f.unlink()
    p = run_cli("preprocess", c, dst, "-q")
    assert "7 written, 0 already done" in p.stdout  # another folder: other files, whatever their names
    assert sorted(os.listdir(dst)) == sorted(f.name.split(".")[0] + ".bin" for f in c.iterdir())


def test_store_slots_of_replaced_images_are_redone(tmp_path, two_datasets):
    from clsbench.data.preprocess import crop_chw
    from clsbench.data.store import Store

    a, b = two_datasets
    data = tmp_path / "d"
    shutil.copytree(a / "val", data)
    run_cli("preprocess", data, tmp_path / "S", "--format", "store", "-q")
    name = sorted(os.listdir(data))[2]
    shutil.copyfile(b / "val" / name, data / name)
    p = run_cli("preprocess", data, tmp_path / "S", "--format", "store", "-q")
    assert "1 written, 11 already done" in p.stdout
    s = Store(tmp_path / "S")
    from clsbench.model.table import get_model

    pp = get_model("mnasnet1_0").preprocessing
    for i, n in enumerate(s.names):
        np.testing.assert_array_equal(s.crops[i], crop_chw(data / f"{n}.JPEG", pp))


def test_parquet_rows_of_changed_inputs_are_refused_with_the_reason(tmp_path, proxy_onnx, two_datasets):
    pytest.importorskip("pyarrow")
    a, b = two_datasets
    args = ["--weights", proxy_onnx, "--work-dir", tmp_path / "w", "--outfmt", "parquet", "-q"]
    run_cli("run", "--data", a, *args)
    p = run_cli("run", "--data", b, *args, check=False)
    assert p.returncode == 2 and "12 row(s) come from inputs this run does not have or that changed" in p.stderr
    assert "--overwrite" in p.stderr
    run_cli("run", "--data", b, *args, "--overwrite")
    run_cli("run", "--data", b, "--weights", proxy_onnx, "--work-dir", tmp_path / "fresh", "-q")
    assert (tmp_path / "w/result.json").read_text() == (tmp_path / "fresh/result.json").read_text()


def test_dry_run_prints_the_plan_and_touches_nothing(tmp_path, proxy_dataset):
    model = stamped(tmp_path / "m.onnx", "efficientnet_b0")
    p = run_cli("run", "--weights", model, "--data", proxy_dataset, "--work-dir", tmp_path / "w", "--dry-run",
                "--resize", "300")
    lines = p.stdout.splitlines()
    assert lines[0].startswith("model     efficientnet_b0:IMAGENET1K_V1 · other weights")
    assert "resize from flag" in p.stdout and "crop, interpolation, mean, std from the model file" \
        in p.stdout and "resize 300, crop 224, bicubic" in p.stdout
    assert "fingerprint" in p.stdout and not (tmp_path / "w").exists()


def test_a_model_file_is_parsed_once_per_version(tmp_path, monkeypatch, proxy_dataset):
    """A run asks the model file many questions (kind, identity, precision, input shape,
    external data): one parse answers them all (it was 24 parses of the same file), and a file
    rewritten at the same path is read again."""
    import onnx

    from clsbench.model.files import read_metadata
    from clsbench.flows.run import run

    model = stamped(tmp_path / "m.onnx", "resnet18:IMAGENET1K_V1")
    parsed = []
    real = onnx.load

    def counting(f, *a, **k):
        if os.path.realpath(str(f)) == os.path.realpath(model):
            parsed.append(1)
        return real(f, *a, **k)

    monkeypatch.setattr(onnx, "load", counting)
    s = run(str(model), str(proxy_dataset), _options(work_dir=str(tmp_path / "w"), batch_size=4))
    assert s["accuracy"]["images"] == 29 and len(parsed) == 1
    assert read_metadata(model)["architecture"] == "resnet18"
    stamped(tmp_path / "m.onnx", "mnasnet1_0")  # replaced in place: another identity
    assert read_metadata(model)["architecture"] == "mnasnet1_0" and len(parsed) == 2
