"""Every torchvision classifier: the generated table, each distinct preset pixel-exact to
torchvision's weights.transforms(), and one representative per family exported and
checked on realistic weights (BatchNorm re-estimated, last Linear rescaled)."""
import json

import numpy as np
import pytest
import torch
import torchvision
from PIL import Image

from clsbench.model.table import all_models, get_model, get_preprocessing
from clsbench.data.preprocess import preprocess_image
from helpers import PHOTO_CASES, ROOT, run_cli


def test_table_lists_every_torchvision_classifier_and_weights():
    from torchvision import models as tvm

    names = tvm.list_models(module=tvm)
    keys = {s.key for s in all_models()}
    want = {f"{n}:{w.name}" for n in names for w in tvm.get_model_weights(n) if w.meta.get("categories")}
    assert len(names) == 80 and keys == want and len(keys) == 114
    for n in names:  # the default tag is torchvision's DEFAULT
        d = tvm.get_model_weights(n).DEFAULT
        s = get_model(n)
        assert s.tag == d.name and s.top1 == d.meta["_metrics"]["ImageNet-1K"]["acc@1"]
        assert s.params == d.meta["num_params"] and s.official.filename == d.url.rsplit("/", 1)[-1]


@pytest.mark.slow
def test_regenerating_the_table_gives_the_committed_file():
    from helpers import run_script

    p = run_script(ROOT / "scripts" / "gen_model_table.py", "--check", check=False, torch=True)
    assert p.returncode == 0 and "is current" in p.stdout, p.stdout + p.stderr


def _distinct_presets():
    from torchvision import models as tvm

    seen = {}
    for n in tvm.list_models(module=tvm):
        for w in tvm.get_model_weights(n):
            if not w.meta.get("categories"):
                continue
            t = w.transforms()
            k = (t.resize_size[0], t.crop_size[0], t.interpolation.value, tuple(t.mean), tuple(t.std))
            seen.setdefault(k, f"{n}:{w.name}")
    return sorted(seen.values())


DISTINCT = _distinct_presets()


def test_there_are_27_distinct_presets():
    # 28 with vgg16's IMAGENET1K_FEATURES, a feature extractor without a classifier head
    assert len(DISTINCT) == 27


@pytest.mark.parametrize("key", DISTINCT)
def test_each_distinct_preset_pixel_exact_to_torchvision(photo_dir, key):
    from torchvision import models as tvm

    name, tag = key.split(":")
    transform = getattr(tvm.get_model_weights(name), tag).transforms()
    pp = get_preprocessing(key)
    checked = 0
    for fname, _, _ in PHOTO_CASES[:5]:
        theirs = transform(Image.open(photo_dir / fname).convert("RGB")).numpy()
        assert np.array_equal(preprocess_image(photo_dir / fname, pp), theirs), (key, fname)
        checked += 1
    assert checked == 5


def test_model_names_tags_and_guide_aliases():
    assert get_model("resnet50").tag == "IMAGENET1K_V2" and get_model("resnet50:IMAGENET1K_V1").tag == "IMAGENET1K_V1"
    assert get_model("resnet50").preprocessing.resize == 232 and get_model("resnet").preprocessing.resize == 256
    assert get_model("mnasnet").key == "mnasnet1_0:IMAGENET1K_V1"
    from clsbench import ClsbenchError

    with pytest.raises(ClsbenchError, match="did you mean resnet50"):
        get_model("resnet55")
    with pytest.raises(ClsbenchError, match="has no weights 'V9'"):
        get_model("resnet50:V9")


def test_models_command_lists_all_as_text_and_json():
    p = run_cli("models", "--json")
    rows = json.loads(p.stdout)
    assert len(rows) == 114 and {"name", "tag", "preset", "top1", "top5", "gflops", "params"} <= set(rows[0])
    p = run_cli("models", "vit_b_16")
    assert "IMAGENET1K_SWAG_E2E_V1" in p.stdout and "384" in p.stdout


# one small member per family; few images: the point is that each exports and matches PyTorch
FAMILIES = ["resnet18", "resnext50_32x4d", "regnet_y_400mf", "efficientnet_b0", "efficientnet_v2_s",
            "mobilenet_v2", "mobilenet_v3_small", "mnasnet0_5", "shufflenet_v2_x0_5", "squeezenet1_1",
            "densenet121", "googlenet", "inception_v3", "vgg11", "alexnet", "convnext_tiny", "vit_b_32",
            "swin_t", "swin_v2_t", "maxvit_t"]


@pytest.fixture(scope="module")
def family_photos(tmp_path_factory, photo_dir):
    """Three of the photos (short side 256, portrait, gray): one parity batch per family;
    a float64 forward of VGG or MaxViT on all nine took most of these tests' time."""
    import shutil

    d = tmp_path_factory.mktemp("family_photos")
    for name in ("short256_landscape.jpg", "portrait.jpg", "gray.png"):
        shutil.copy(photo_dir / name, d / name)
    return d


@pytest.mark.slow
@pytest.mark.parametrize("name", FAMILIES)
def test_family_representative_exports_and_matches_pytorch(tmp_path, photo_dir, family_photos, name):
    from clsbench.flows.demo import calibration_batch
    from clsbench.model.files import read_metadata
    from clsbench.model.stand_in import save_realistic_weights

    spec = get_model(name)
    w = tmp_path / "w.pth"
    # BatchNorm re-estimated on 4 photos: realistic logits (checked below); with 8, the two
    # train- and eval-mode passes of those weights took ~2 s more for the deeper families
    save_realistic_weights(spec, calibration_batch(spec.preprocessing, n=4), str(w))
    out = tmp_path / "m.onnx"
    cli = run_cli("export", "-q", "--model", name, "--weights", w, "--output", out,
                  "--parity-images", family_photos, "--parity-batch", "3")
    rec = json.loads((tmp_path / "m.parity.json").read_text())
    p = rec["parity"]
    assert rec["passed"], p["reasons"]
    # what the user reads: the opset written (ViT needs 14, MaxViT 13), and not the Torch IR
    # the exporter dumps on stdout for each opset that fails first
    assert f"wrote {out} (opset {rec['opset']}," in cli.stdout and len(cli.stdout.splitlines()) == 3, cli.stdout
    assert p["reference_logit_std"] > 0.1  # not vacuous
    meta = read_metadata(out)
    assert meta["architecture"] == name and meta["weights_tag"] == spec.tag and int(meta["opset"]) == rec["opset"]
    # the file runs with ONNX Runtime on its own preprocessing, as exported
    import onnxruntime as ort

    x = np.stack([preprocess_image(photo_dir / f, spec.preprocessing) for f, _, _ in PHOTO_CASES[:2]])
    net = getattr(torchvision.models, name)(weights=None, **dict(spec.builder_args))
    for head in spec.aux_heads:
        setattr(net, head, None)
    sd = torch.load(w, weights_only=True)
    net.load_state_dict(sd, strict=False)
    got = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"]).run(None, {"image": x})[0]
    with torch.no_grad():
        ref = net.eval()(torch.from_numpy(x)).numpy()
    assert (got.argmax(1) == ref.argmax(1)).all()


def test_run_takes_the_model_from_the_onnx_file_and_refuses_a_contradiction(tmp_path, proxy_onnx, proxy_dataset):
    p = run_cli("run", "--weights", proxy_onnx, "--data", proxy_dataset, "--work-dir", tmp_path / "x",
                "--model", "resnet18", check=False)
    assert p.returncode == 2 and "exported from mnasnet1_0:IMAGENET1K_V1; --model resnet18" in p.stderr
    run_cli("run", "-q", "--weights", proxy_onnx, "--data", proxy_dataset, "--work-dir", tmp_path / "w")
    s = json.loads((tmp_path / "w" / "summary.json").read_text())
    # the trained proxy, known by its weights' SHA-256 recorded in the ONNX: judged against its
    # own recorded accuracy over its 16 classes, not the ImageNet figure of the architecture
    assert (s["model"], s["weights_tag"], s["accuracy"]["reference_top1"]) == ("mnasnet1_0", "IMAGENET1K_V1", 75.391)
    assert s["plan"]["model"]["provenance"] == "proxy" and s["accuracy"]["classes"] == 16


def test_preprocessing_by_hand_matches_torchvision(tmp_path, photo_dir):
    from torchvision.transforms import InterpolationMode
    from torchvision.transforms._presets import ImageClassification

    from clsbench._io import sidecar

    out = tmp_path / "prep"
    run_cli("preprocess", "-q", "--resize", "300", "--crop", "256", "--interpolation", "bicubic",
            "--mean", "0.5,0.5,0.5", "--std", "0.5,0.5,0.5", photo_dir, out)
    t = ImageClassification(crop_size=256, resize_size=300, interpolation=InterpolationMode.BICUBIC,
                            mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))
    for fname, _, _ in PHOTO_CASES[:4]:
        want = t(Image.open(photo_dir / fname).convert("RGB")).numpy()
        got = np.fromfile(out / (fname.split(".")[0] + ".bin"), "<f4").reshape(want.shape)
        assert np.array_equal(got, want), fname
    rec = json.loads(sidecar(out).read_text())["identity"]["preprocessing"]
    assert (rec["resize"], rec["crop"], rec["interpolation"], rec["mean"]) == (300, 256, "bicubic", [0.5, 0.5, 0.5])
    p = run_cli("preprocess", "--crop", "400", photo_dir, tmp_path / "bad", check=False)
    assert p.returncode == 2 and "need 1 <= crop <= resize" in p.stderr
