import hashlib
import json
import os
import pickle
import shutil

import numpy as np
import pytest

import onnx
import torch

from clsbench import ClsbenchError
from clsbench.model.weights import build_model, identify_weights, load_state_dict
from clsbench.compile.export import export_onnx, parity, parity_inputs, parity_path


def test_realistic_weights_are_not_vacuous(weights, spec, photo_dir):
    """The premise of every parity check: logits of trained-like magnitude and diversity."""
    net = build_model(spec, load_state_dict(weights))
    x, _ = parity_inputs(spec, str(photo_dir))
    with torch.no_grad():
        logits = net(torch.from_numpy(x)).numpy()
    assert 0.3 < logits.std() < 3.0
    assert len(set(logits.argmax(1))) >= 3  # different photos, different top-1


def test_export_graph_names_dynamic_batch_opset(onnx_model):
    m = onnx.load(onnx_model)
    onnx.checker.check_model(m)
    assert [o.version for o in m.opset_import if o.domain in ("", "ai.onnx")] == [11]
    (inp,), (out,) = m.graph.input, m.graph.output
    assert inp.name == "image" and out.name == "class"
    dims = [d.dim_param or d.dim_value for d in inp.type.tensor_type.shape.dim]
    assert dims == ["-1", 3, 224, 224]
    assert out.type.tensor_type.shape.dim[0].dim_param == "-1"


def remeasure(weights, onnx_path, x):
    """The export's parity, measured here from the files: PyTorch (built by torchvision's
    own builder) in float64 and fp32 vs ONNX Runtime on the exported file."""
    import copy

    import onnxruntime as ort
    import torchvision

    net = torchvision.models.mnasnet1_0()
    net.load_state_dict(torch.load(weights, weights_only=True))
    net.eval()
    with torch.no_grad():
        r32 = net(torch.from_numpy(x)).numpy().astype(np.float64)
        r64 = copy.deepcopy(net).double()(torch.from_numpy(np.ascontiguousarray(x, np.float64))).numpy()
    got = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"]).run(None, {"image": x})[0]
    rel = lambda a: float(np.linalg.norm(a - r64) / np.linalg.norm(r64))  # noqa: E731
    return rel(r32), rel(got.astype(np.float64)), got.argmax(1), r64


def test_parity_on_realistic_weights_and_real_photos(onnx_model, weights, spec, photo_dir):
    rec = json.loads(open(parity_path(str(onnx_model))).read())
    p = rec["parity"]
    x, _ = parity_inputs(spec, str(photo_dir))
    e32, e_onnx, top1, r64 = remeasure(weights, onnx_model, x)
    assert e_onnx <= 10 * e32 + 1e-6 and (top1 == r64.argmax(1)).all()  # the record's verdict holds
    assert rec["passed"] is True and p["samples"] == 9 and "images from" in p["inputs"]
    assert p["rel_l2_error"] == pytest.approx(e_onnx, rel=1e-6)  # and its figure is this one
    assert p["torch_fp32_vs_float64"]["rel_l2_error"] == pytest.approx(e32, rel=1e-6)
    assert p["reference_logit_std"] > 0.3  # not the vacuous 1e-8 logits of random init
    assert rec["weights"]["official"] is False


@pytest.fixture(scope="module")
def seeded_exports(tmp_path_factory, spec):
    """Realistic weights of seeds 1-3 (not the session's seed 0), each exported once: the
    photo sets below judge the same file (weights and export took most of this test's time)."""
    from clsbench.flows.demo import calibration_batch
    from clsbench.model.stand_in import save_realistic_weights

    made = {}

    def get(seed, folder):
        if seed not in made:
            d = tmp_path_factory.mktemp(f"seed{seed}")
            w = d / f"w{seed}.pth"
            save_realistic_weights(spec, calibration_batch(spec.preprocessing, n=48, seed=seed), str(w), seed=seed)
            rec = export_onnx(str(w), str(d / "m.onnx"), parity_images=str(folder), parity_batch=8)
            made[seed] = (w, d / "m.onnx", rec, str(folder))
        return made[seed]

    return get


@pytest.mark.slow
@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize("photos", ["photo_dir", "tiny_dataset"])
def test_correct_exports_pass_on_other_seeds_and_photos(spec, seed, photos, request, seeded_exports):
    """Seed 3 of the 0.1.0 issue: rel. error 2.9e-5 vs PyTorch fp32 refused a correct export.
    Each seed's file is exported once (its own parity on the first photo set it meets) and
    judged by the export's rule, check_export, on the other set."""
    from clsbench.compile.export import check_export

    folder = request.getfixturevalue(photos)
    folder = folder / "val" if (folder / "val").is_dir() else folder
    w, onnx_path, rec, exported_on = seeded_exports(seed, folder)
    x, _ = parity_inputs(spec, str(folder), n=8)
    if exported_on != str(folder):
        rec = {"parity": check_export(build_model(spec, load_state_dict(str(w))), str(onnx_path), x)}
        rec["passed"] = rec["parity"]["passed"]
    assert rec["passed"], rec["parity"]["reasons"]
    assert rec["parity"]["samples"] == 8
    e32, e_onnx, top1, r64 = remeasure(w, onnx_path, x)
    assert e_onnx <= 10 * e32 + 1e-6
    assert rec["parity"]["rel_l2_error"] == pytest.approx(e_onnx, rel=1e-6)  # judged on these very images


def _wrong_onnx(net, spec, path, mutate):
    import copy

    from clsbench.compile.export import _write_onnx

    bad = copy.deepcopy(net)
    mutate(bad)
    _write_onnx(bad, spec, str(path), 11, {})
    return path


def _perturb_conv(m):
    with torch.no_grad():
        [c for c in m.modules() if isinstance(c, torch.nn.Conv2d)][20].weight.mul_(1.01)


def _bn_eps(m):
    [b for b in m.modules() if isinstance(b, torch.nn.BatchNorm2d)][5].eps = 1e-3


@pytest.mark.parametrize("mutate,why", [(_perturb_conv, "conv weight x1.01"), (_bn_eps, "one BatchNorm eps 1e-5 -> 1e-3")])
def test_wrong_exports_fail_saying_what_differs(tmp_path, weights, spec, photo_dir, mutate, why):
    from clsbench.compile.export import check_export

    net = build_model(spec, load_state_dict(weights))
    bad = _wrong_onnx(net, spec, tmp_path / "bad.onnx", mutate)
    x, _ = parity_inputs(spec, str(photo_dir))
    verdict = check_export(net, str(bad), x)
    assert verdict["passed"] is False, why
    assert "rel. L2 error vs float64 PyTorch" in verdict["reasons"][0] and "exceeds" in verdict["reasons"][0]
    _, e_onnx, _, _ = remeasure(weights, bad, x)
    assert verdict["rel_l2_error"] == pytest.approx(e_onnx, rel=1e-6)


def test_the_float64_reference_does_not_depend_on_the_arrays_layout(weights, spec, photo_dir):
    """Preprocessed images are channels-last views; the ground truth of the same pixels must
    be the same whatever the strides (and computed in NCHW, where PyTorch's float64 kernels
    are ~3x faster for MnasNet than channels-last: benchmarks/layouts.py)."""
    from clsbench.compile.export import torch_references

    x, _ = parity_inputs(spec, str(photo_dir), n=2)
    assert not x.flags["C_CONTIGUOUS"]  # what preprocessing gives
    net = build_model(spec, load_state_dict(weights))
    assert np.array_equal(torch_references(net, x)[1], torch_references(net, np.ascontiguousarray(x))[1])


def test_logits_that_ignore_the_input_are_no_evidence(tmp_path, weights, spec, photo_dir):
    """A zero last Linear (as a freshly built ViT has): every image gets the bias, so an export
    with a wrong convolution computes exactly what PyTorch computes. No PASS for that."""
    from clsbench.compile.export import check_export

    sd = load_state_dict(weights)
    sd["classifier.1.weight"].zero_()
    net = build_model(spec, sd)
    x, _ = parity_inputs(spec, str(photo_dir), n=4)
    verdict = check_export(net, str(_wrong_onnx(net, spec, tmp_path / "bad.onnx", _perturb_conv)), x)
    assert verdict["rel_l2_error"] < 1e-6  # the figures alone would pass it
    assert verdict["passed"] is False and len(verdict["reasons"]) == 1
    assert "the same for all 4 parity images: they do not depend on the input" in verdict["reasons"][0]


def test_inception_v3_built_as_torchvision_builds_it_for_its_weights(tmp_path, monkeypatch):
    """torchvision's builder with IMAGENET1K_V1 (its state dict fetch replaced by ours) is the
    reference: transform_input=True, aux head loaded then dropped. clsbench must compute the
    same; a model built without the input transform is refused by the parity check."""
    import torchvision
    from torchvision.models import Inception_V3_Weights

    from clsbench.compile.export import check_export
    from clsbench.model.table import get_model

    from clsbench.flows.demo import calibration_batch
    from clsbench.model.stand_in import realistic_state_dict

    spec = get_model("inception_v3")
    sd = realistic_state_dict(spec, calibration_batch(spec.preprocessing, n=12))  # random init is vacuous
    # the official file carries the auxiliary head too: give the state dict one
    full = torchvision.models.inception_v3(weights=None, aux_logits=True, init_weights=False).state_dict()
    sd = {**full, **sd}
    monkeypatch.setattr(Inception_V3_Weights.IMAGENET1K_V1.__class__, "get_state_dict",
                        lambda self, *a, **k: sd)
    ref = torchvision.models.inception_v3(weights=Inception_V3_Weights.IMAGENET1K_V1).eval()
    ours = build_model(spec, sd)
    x = torch.randn(2, 3, 299, 299)
    with torch.no_grad():
        assert torch.equal(ours(x), ref(x))
    assert ours.transform_input is True and ours.AuxLogits is None
    # the 0.1.0 export (transform_input=False) against the real model: refused
    plain = torchvision.models.inception_v3(weights=None, aux_logits=True, init_weights=False,
                                            transform_input=False)
    plain.load_state_dict(sd)
    bad = _wrong_onnx(plain.eval(), spec, tmp_path / "bad.onnx", lambda m: None)
    v = check_export(ours, str(bad), x.numpy()[:2])
    assert v["passed"] is False and v["rel_l2_error"] > 1e-3


def test_dynamic_batch_runs_every_batch_size(onnx_model, spec, photo_dir):
    from clsbench.runtime.backends.onnxruntime import OnnxRuntimeBackend

    x, _ = parity_inputs(spec, str(photo_dir))
    full = OnnxRuntimeBackend(str(onnx_model), batch_size=len(x)).run(x)
    for bs in (1, 4):
        got = OnnxRuntimeBackend(str(onnx_model), batch_size=bs).run(x[:bs])
        assert parity(full[:bs], got)["rel_l2_error"] < 1e-5


def test_parity_detects_a_different_model():
    a = np.random.default_rng(0).standard_normal((8, 1000)).astype(np.float32)
    b = a.copy()
    b[:, :2] += 100  # changes every top-1
    p = parity(a, b)
    assert p["top1_agreement"] == 0.0 and p["rel_l2_error"] > 1


def test_official_file_recognised_and_impostor_refused(tmp_path, spec, weights):
    from clsbench.model import table as models

    data = open(weights, "rb").read()
    md5 = hashlib.md5(data).hexdigest()
    import dataclasses

    fake = models.OfficialWeights("mnasnet1.0_top1_73.512-f206786ef8.pth", md5, "f206786ef8")
    s = dataclasses.replace(spec, official=fake)
    assert identify_weights(weights, s).official is True
    # real spec: a file named like the official one whose MD5 differs
    impostor = tmp_path / "mnasnet1.0_top1_73.512-f206786ef8.pth"
    shutil.copy(weights, impostor)
    with pytest.raises(ClsbenchError, match="named like the official"):
        identify_weights(impostor, spec)
    # torchvision's naming convention: the hash suffix must prefix the SHA-256
    wrong = tmp_path / "mine-0123456789.pth"
    shutil.copy(weights, wrong)
    with pytest.raises(ClsbenchError, match="SHA-256 prefix 0123456789"):
        identify_weights(wrong, spec)
    sha = hashlib.sha256(data).hexdigest()
    right = tmp_path / f"mine-{sha[:10]}.pth"
    shutil.copy(weights, right)
    assert "not the official" in identify_weights(right, spec).verdict


def test_weights_of_another_architecture_listed_in_plain_words(tmp_path, spec):
    import torchvision

    p = tmp_path / "resnet18.pth"
    torch.save(torchvision.models.resnet18().state_dict(), p)
    with pytest.raises(ClsbenchError) as e:
        export_onnx(str(p), str(tmp_path / "m.onnx"))
    msg = str(e.value)
    assert "does not fit torchvision mnasnet1_0" in msg
    assert "missing keys: layers.0.weight" in msg and "unexpected keys: conv1.weight" in msg
    assert not (tmp_path / "m.onnx").exists()


def test_misshaped_tensor_named(tmp_path, spec, weights):
    sd = load_state_dict(weights)
    sd["classifier.1.weight"] = torch.zeros(10, 1280)
    sd["classifier.1.bias"] = torch.zeros(10)
    with pytest.raises(ClsbenchError, match=r"mis-shaped tensors: classifier.1.weight: file \(10, 1280\)"):
        build_model(spec, sd)


class Payload:
    def __reduce__(self):
        return (os.system, ("touch PWNED",))


def test_pickle_payload_refused_never_executed(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    p = tmp_path / "evil.pth"
    torch.save({"w": torch.zeros(1), "x": Payload()}, p, pickle_protocol=2)
    with pytest.raises(ClsbenchError, match=r"holds pickled code \(posix.system\).*never run") as e:
        load_state_dict(p)
    assert "weights_only" not in str(e.value)  # torch's advice to disable the guard is not passed on
    assert not (tmp_path / "PWNED").exists()
    q = tmp_path / "plain.pth"
    q.write_bytes(pickle.dumps(Payload(), protocol=2))
    with pytest.raises(ClsbenchError):
        load_state_dict(q)
    assert not (tmp_path / "PWNED").exists()


def test_truncated_pth_refused(tmp_path, weights):
    p = tmp_path / "cut.pth"
    p.write_bytes(open(weights, "rb").read()[:100_000])
    with pytest.raises(ClsbenchError, match="cut.pth: a truncated or corrupt PyTorch file"):
        load_state_dict(p)


def test_whole_pickled_model_explained_in_own_words(tmp_path):
    import torchvision

    from helpers import run_cli

    p = tmp_path / "whole.pth"
    torch.save(torchvision.models.mnasnet0_5(), p)
    with pytest.raises(ClsbenchError, match=r"whole pickled model \(torchvision.models.mnasnet.MNASNet\).*"
                                            r"save model.state_dict\(\)"):
        load_state_dict(p)
    r = run_cli("export", "--weights", p, "--output", tmp_path / "m.onnx", check=False)
    assert r.returncode == 2 and "weights_only" not in r.stderr and "Warning" not in r.stderr
    assert "Traceback" not in r.stderr


def test_checkpoint_wrappers_unwrapped(tmp_path, weights, spec):
    sd = load_state_dict(weights)
    p = tmp_path / "ckpt.pth"
    torch.save({"state_dict": {f"module.{k}": v for k, v in sd.items()}, "epoch": 3}, p)
    net = build_model(spec, load_state_dict(p))
    assert torch.equal(net.state_dict()["classifier.1.weight"], sd["classifier.1.weight"])


def test_a_model_past_the_size_limit_keeps_its_weights_beside_it(tmp_path, weights, photo_dir, monkeypatch):
    """Models over 2 GB (vit_h_14, regnet_y_128gf) go to model.onnx + model.onnx.data; the
    limit is lowered here so a small model takes that path."""
    import clsbench.compile.export as ex
    from clsbench.runtime.backends import open_backend

    monkeypatch.setattr(ex, "LARGE", 1000)
    out = tmp_path / "big" / "m.onnx"
    rec = export_onnx(str(weights), str(out), parity_images=str(photo_dir), parity_batch=2)
    assert rec["passed"] and (tmp_path / "big" / "m.onnx.data").stat().st_size > 10_000_000
    assert out.stat().st_size < 1_000_000 and sorted(p.name for p in out.parent.iterdir()) == ["m.onnx", "m.onnx.data", "m.parity.json"]
    rt = open_backend(None, str(out), batch_size=1)  # external data beside the model: accepted
    assert rt.run(np.zeros((1, 3, 224, 224), np.float32)).shape == (1, 1000)
