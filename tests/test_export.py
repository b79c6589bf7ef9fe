import hashlib
import json
import os
import pickle
import shutil

import numpy as np
import pytest

torch = pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")

from clsbench import ClsbenchError  # noqa: E402
from clsbench.export import (build_model, export_onnx, identify_weights, load_state_dict,  # noqa: E402
                             parity, parity_inputs, parity_path)


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


def test_parity_on_realistic_weights_and_real_photos(onnx_model):
    rec = json.loads(open(parity_path(str(onnx_model))).read())
    p = rec["parity"]
    assert rec["passed"] is True
    assert "images from" in p["inputs"] and p["samples"] == 9
    assert p["rel_l2_error"] <= 1e-5
    assert p["top1_agreement"] == 1.0 and p["top5_overlap"] == 1.0
    assert p["reference_logit_std"] > 0.3  # not the vacuous 1e-8 logits of random init
    assert rec["weights"]["official"] is False


def test_dynamic_batch_runs_every_batch_size(onnx_model, spec, photo_dir):
    from clsbench.backends.onnxruntime import OnnxRuntimeBackend

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
    from clsbench import models

    data = open(weights, "rb").read()
    md5 = hashlib.md5(data).hexdigest()
    fake = models.OfficialWeights("mnasnet1.0_top1_73.512-f206786ef8.pth", md5, "f206786ef8")
    s = models.ModelSpec(spec.name, spec.preset, spec.top1, spec.top5, official=fake)
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
    with pytest.raises(ClsbenchError, match="weights-only"):
        load_state_dict(p)
    assert not (tmp_path / "PWNED").exists()
    q = tmp_path / "plain.pth"
    q.write_bytes(pickle.dumps(Payload(), protocol=2))
    with pytest.raises(ClsbenchError):
        load_state_dict(q)
    assert not (tmp_path / "PWNED").exists()


def test_truncated_pth_refused(tmp_path, weights):
    p = tmp_path / "cut.pth"
    p.write_bytes(open(weights, "rb").read()[:100_000])
    with pytest.raises(ClsbenchError, match="cut.pth"):
        load_state_dict(p)


def test_checkpoint_wrappers_unwrapped(tmp_path, weights, spec):
    sd = load_state_dict(weights)
    p = tmp_path / "ckpt.pth"
    torch.save({"state_dict": {f"module.{k}": v for k, v in sd.items()}, "epoch": 3}, p)
    net = build_model(spec, load_state_dict(p))
    assert torch.equal(net.state_dict()["classifier.1.weight"], sd["classifier.1.weight"])
