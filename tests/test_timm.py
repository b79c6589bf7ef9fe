"""`--model timm:NAME`: timm's presets pixel-exact to timm's own eval transform, and two
architectures torchvision lacks exported, checked and run; later commands need no timm."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from helpers import PHOTO_CASES, guide_acc_eval, photo, run_cli

timm = pytest.importorskip("timm", reason="the [timm] extra is part of make test's install")


@pytest.mark.parametrize("name", ["resnet50.a1_in1k", "mobileone_s0.apple_in1k", "fastvit_t8.apple_in1k",
                                  "vit_tiny_patch16_224.augreg_in21k_ft_in1k"])
def test_timm_presets_are_timms_eval_transform_to_the_bit(tmp_path, name):
    """crop_pct 0.95 / 0.875 / 0.9 at 256 px, bicubic and bilinear, mean/std 0.5: what timm's
    resolve_data_config + create_transform give on PIL images, on photos of several shapes."""
    from timm.data import create_transform, resolve_data_config

    from clsbench.model.table import get_model
    from clsbench.data.preprocess import preprocess_image

    spec = get_model("timm:" + name.replace(".", ":"))
    cfg = timm.models.get_pretrained_cfg(name)
    ref = create_transform(**resolve_data_config({}, pretrained_cfg=cfg.to_dict()))
    for fname, src, size in PHOTO_CASES[:5]:
        p = tmp_path / fname
        photo(src).resize(size).save(p)
        from PIL import Image

        want = ref(Image.open(p).convert("RGB")).numpy()
        assert np.array_equal(preprocess_image(p, spec.preprocessing), want), (name, fname)


@pytest.mark.parametrize("name", ["mobilenetv4_conv_small", "levit_128s"])
def test_a_timm_model_exports_checks_and_runs(tmp_path, proxy_dataset, name):
    """A CNN and a LeViT (BatchNorm attention) torchvision lacks: export at the guide's opset
    passes the float64 parity check on realistic weights; `run` on the ONNX needs no --model;
    reading the identity back imports neither timm nor torch; no reference accuracy exists,
    so the summary says none and --check refuses."""
    from clsbench.flows.demo import calibration_batch
    from clsbench.compile.export import export_onnx
    from clsbench.model.table import get_model
    from clsbench.model.stand_in import save_realistic_weights

    spec = get_model(f"timm:{name}")
    w = tmp_path / "w.pth"
    save_realistic_weights(spec, calibration_batch(spec.preprocessing, n=8), str(w))
    rec = export_onnx(str(w), str(tmp_path / "m.onnx"), model=spec.key, parity_batch=2)
    assert rec["passed"] and rec["opset"] == 11
    probe = subprocess.run([sys.executable, "-c", "import sys; from clsbench.model.files import identity_of; "
                            f"s, pp = identity_of({str(tmp_path / 'm.onnx')!r}); "
                            "print(s.key, pp.resize, 'timm' in sys.modules, 'torch' in sys.modules)"],
                           capture_output=True, text=True, check=True)
    assert probe.stdout.split() == [spec.key, str(spec.preprocessing.resize), "False", "False"]
    run_cli("run", "--weights", str(tmp_path / "m.onnx"), "--data", str(proxy_dataset), "--work-dir",
            str(tmp_path / "w"), "-q")
    s = json.loads((tmp_path / "w/summary.json").read_text())
    assert (s["model"], s["weights_tag"]) == (spec.name, spec.tag)
    assert s["accuracy"]["reference_top1"] is None and s["accuracy"]["top1_drop"] is None
    assert json.loads(guide_acc_eval(tmp_path / "w/result/dumpOutput_device0", proxy_dataset / "val_label.txt")) \
        == json.loads((tmp_path / "w/result.json").read_text())
    p = run_cli("run", "--weights", str(tmp_path / "m.onnx"), "--data", str(proxy_dataset), "--work-dir",
                str(tmp_path / "w"), "--check", "-q", check=False)
    assert p.returncode == 2 and "--check: no accuracy verdict for these weights" in p.stderr


def test_unknown_timm_names_get_suggestions():
    from clsbench import ClsbenchError
    from clsbench.model.table import get_model

    with pytest.raises(ClsbenchError, match="unknown timm model 'mobilenetv4_conv_smal'; did you mean"):
        get_model("timm:mobilenetv4_conv_smal")
    with pytest.raises(ClsbenchError, match="has no pretrained config 'nope'"):
        get_model("timm:resnet50:nope")
