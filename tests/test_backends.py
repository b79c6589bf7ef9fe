"""Each backend's parity on real photos; compile's artifacts; reduced precision on the proxy."""
import json
import os
from pathlib import Path

import numpy as np
import pytest

from clsbench import ClsbenchError
from clsbench.runtime.backends import get_backend, open_backend
from clsbench.compile.export import parity, parity_inputs
from clsbench.model.table import get_model
from clsbench.data.preprocess import preprocess_image


@pytest.fixture(scope="module")
def photos_batch(spec, photo_dir):
    x, _ = parity_inputs(spec, str(photo_dir), n=8)
    return x


def ort_reference(model, x):
    return get_backend("onnxruntime")(str(model), batch_size=len(x)).run(x)


def test_openvino_fp32_parity_on_real_photos(onnx_model, photos_batch):
    rt = get_backend("openvino")(str(onnx_model), batch_size=len(photos_batch), precision="fp32")
    p = parity(ort_reference(onnx_model, photos_batch), rt.run(photos_batch))
    assert p["rel_l2_error"] < 1e-4 and p["top1_agreement"] == 1.0
    d = rt.describe()
    assert d["config"]["INFERENCE_PRECISION_HINT"] == "f32" and d["threads"] >= 1


def test_torch_backend_is_the_reference(weights, onnx_model, photos_batch):
    rt = get_backend("torch")(str(weights), arch="mnasnet1_0", batch_size=len(photos_batch))
    p = parity(rt.run(photos_batch), ort_reference(onnx_model, photos_batch))
    assert p["rel_l2_error"] <= 1e-5 and p["top1_agreement"] == 1.0
    assert rt.describe()["mode"] == "eager"


@pytest.mark.parametrize("channels_last", [False, True])
def test_torch_backend_computes_in_the_layout_it_records(weights, photos_batch, channels_last):
    """Decoded images arrive as channels-last views, .bin files as NCHW: the same pixels give
    the same logits bit for bit, computed in the layout the run records, as PyTorch itself
    computes them in that layout."""
    import torch

    from clsbench.model.weights import build_model, load_state_dict
    from clsbench.model.table import get_model

    assert not photos_batch.flags["C_CONTIGUOUS"]
    rt = get_backend("torch")(str(weights), arch="mnasnet1_0", batch_size=len(photos_batch),
                              channels_last=channels_last)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    net = build_model(get_model("mnasnet1_0"), load_state_dict(weights)).to(memory_format=fmt)
    with torch.inference_mode():
        want = net(torch.from_numpy(np.ascontiguousarray(photos_batch)).contiguous(memory_format=fmt)).numpy()
    assert np.array_equal(rt.run(photos_batch), want) and np.array_equal(rt.run(np.ascontiguousarray(photos_batch)), want)
    assert rt.describe()["channels_last"] is channels_last


def test_torch_backend_refuses_onnx(onnx_model):
    with pytest.raises(ClsbenchError, match="runs torchvision weights"):
        get_backend("torch")(str(onnx_model), arch="mnasnet1_0", batch_size=1)


def test_cuda_backend_says_when_there_is_no_gpu(weights):
    import torch

    if torch.cuda.is_available():
        pytest.skip("expected: a GPU is present; benchmarks/gpu.sh covers it")
    with pytest.raises(ClsbenchError, match="no CUDA device"):
        get_backend("cuda")(str(weights), arch="mnasnet1_0", batch_size=1)


def test_unknown_backend_and_wrong_precision():
    with pytest.raises(ClsbenchError, match="unknown backend 'tensorrt'"):
        get_backend("tensorrt")


def test_onnxruntime_precision_label_must_match_the_file(onnx_model):
    with pytest.raises(ClsbenchError, match="a float model, but precision 'int8'"):
        open_backend("onnxruntime", str(onnx_model), batch_size=1, precision="int8")
    with pytest.raises(ClsbenchError, match="onnxruntime has no 'bf16' precision; it offers fp32, int8"):
        open_backend("onnxruntime", str(onnx_model), batch_size=1, precision="bf16")


# ---------------------------------------------------------------- compile + reduced precision

@pytest.fixture(scope="module")
def proxy_images(tmp_path_factory):
    from clsbench.data.proxy_task import write_images

    root = tmp_path_factory.mktemp("proxyimgs")
    write_images(root, 160, seed=123)
    return root / "val"


@pytest.fixture(scope="module")
def compiled(tmp_path_factory, proxy_onnx, proxy_images):
    import openvino as ov

    from clsbench.compile.artifacts import compile_model

    no_bf16 = "BF16" not in ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")  # OpenVINO's own word
    out = tmp_path_factory.mktemp("compiled")
    recs = {}
    for backend, precision in [("onnxruntime", "fp32"), ("onnxruntime", "int8"), ("openvino", "fp32"),
                               ("openvino", "bf16"), ("openvino", "int8")]:
        kw = dict(backend=backend, precision=precision, output_dir=str(out), data=str(proxy_images),
                  calib_images=64, parity_images=96)
        if (backend, precision) == ("openvino", "bf16") and no_bf16:  # refused, never measured as bf16
            with pytest.raises(ClsbenchError, match="openvino:bf16: this CPU .* has no bf16"):
                compile_model(str(proxy_onnx), **kw)
            continue
        recs[(backend, precision)] = compile_model(str(proxy_onnx), **kw)
    return recs


def test_proxy_is_a_trained_classifier(proxy_onnx):
    from clsbench.model.table import get_model
    from clsbench.data.proxy_task import batch

    x, y = batch(64, seed=4242, pp=get_model("mnasnet1_0").preprocessing)
    logits = ort_reference(proxy_onnx, x)
    assert (logits.argmax(1) == y).mean() >= 0.6  # it learned the task (chance: 1/16): agreement figures mean something


def test_compile_artifacts_and_records(compiled):
    for (backend, precision), rec in compiled.items():
        art = rec["artifact"]
        assert os.path.isfile(art) and art.endswith(".xml" if backend == "openvino" else ".onnx")
        if backend == "openvino":
            assert os.path.isfile(art[:-4] + ".bin")
        saved = json.loads(Path(art[:-4] + ".compile.json").read_text() if backend == "openvino"
                           else Path(art[:-5] + ".compile.json").read_text())
        assert saved["parity"]["samples"] == 96 and "held-out" in saved["parity"]["inputs"]
        assert saved["calibration_images"] == (64 if precision == "int8" else 0)
    assert any("opset 11 -> 13" in n for n in compiled[("onnxruntime", "int8")]["notes"])


@pytest.mark.parametrize("key,min_top1,max_rel", [
    (("onnxruntime", "fp32"), 1.0, 1e-5),
    (("openvino", "fp32"), 1.0, 1e-4),
    (("openvino", "bf16"), 0.95, 0.05),
    (("onnxruntime", "int8"), 0.85, 0.25),
    (("openvino", "int8"), 0.85, 0.25),
])
def test_reduced_precision_agreement_on_held_out_images(compiled, key, min_top1, max_rel):
    if key not in compiled:
        pytest.skip(f"expected: {key[0]}:{key[1]} does not run on this CPU (refused when compiled)")
    p = compiled[key]["parity"]
    assert p["top1_agreement"] >= min_top1, p
    assert p["rel_l2_error"] <= max_rel, p


def test_int8_models_are_really_quantized(compiled):
    import onnx

    ops = {n.op_type for n in onnx.load(compiled[("onnxruntime", "int8")]["artifact"]).graph.node}
    assert "QuantizeLinear" in ops and "DequantizeLinear" in ops
    import openvino as ov

    m = ov.Core().read_model(compiled[("openvino", "int8")]["artifact"])
    assert any(op.get_type_name() == "FakeQuantize" for op in m.get_ops())


def test_int8_compile_needs_calibration_data(proxy_onnx, tmp_path):
    from clsbench.compile.artifacts import compile_model

    with pytest.raises(ClsbenchError, match="int8 needs calibration images"):
        compile_model(str(proxy_onnx), backend="onnxruntime", precision="int8", output_dir=str(tmp_path))
    with pytest.raises(ClsbenchError, match="onnxruntime has no 'bf16' precision"):
        compile_model(str(proxy_onnx), backend="onnxruntime", precision="bf16", output_dir=str(tmp_path))


def test_onnxruntime_int8_compile_keeps_torch_out(proxy_onnx, proxy_dataset, tmp_path):
    """onnxruntime.tools' __init__ imports torch for a helper compile never uses (5 s here):
    an ORT int8 compile runs without it, and writes a quantized model."""
    import subprocess
    import sys

    code = ("import sys; from clsbench.compile.artifacts import compile_model; "
            f"r = compile_model({str(proxy_onnx)!r}, backend='onnxruntime', precision='int8', "
            f"output_dir={str(tmp_path)!r}, data={str(proxy_dataset / 'val')!r}, calib_images=8, parity_images=8); "
            "assert 'torch' not in sys.modules, 'torch imported'; print(r['artifact'])")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr[-2000:]
    import onnx

    ops = {n.op_type for n in onnx.load(p.stdout.split()[-1]).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops


def test_compile_reuses_a_matching_artifact(compiled, proxy_onnx, proxy_images):
    from clsbench.compile.artifacts import compile_model

    first = compiled[("openvino", "int8")]
    again = compile_model(str(proxy_onnx), backend="openvino", precision="int8",
                          output_dir=os.path.dirname(first["artifact"]), data=str(proxy_images),
                          calib_images=64, parity_images=96)
    assert again.get("reused") is True and again["parity"] == first["parity"]


def test_compiled_artifacts_rerun_independently_of_their_records(compiled, proxy_onnx, proxy_images):
    """The records' agreement figures, re-measured here with the runtimes' own APIs (not
    clsbench's backends) on the same held-out images (positions 64..159)."""
    import numpy as np
    import onnxruntime as ort
    import openvino as ov

    from clsbench.model.table import get_model
    from helpers import reference_bin

    pp = get_model("mnasnet1_0").preprocessing
    files = sorted(proxy_images.iterdir())[64:160]
    x = np.stack([np.frombuffer(reference_bin(f, 256, 224, pp.mean, pp.std), "<f4").reshape(3, 224, 224)
                  for f in files])
    fp32 = ort.InferenceSession(str(proxy_onnx), providers=["CPUExecutionProvider"]).run(None, {"image": x})[0]
    art = compiled[("onnxruntime", "int8")]["artifact"]
    q = ort.InferenceSession(art, providers=["CPUExecutionProvider"]).run(None, {"image": x})[0]
    core = ov.Core()
    m = core.compile_model(core.read_model(compiled[("openvino", "int8")]["artifact"]), "CPU",
                           {"INFERENCE_PRECISION_HINT": "f32"})
    v = np.concatenate([m(x[i:i + 16])[0] for i in range(0, len(x), 16)])
    for got, key in ((q, ("onnxruntime", "int8")), (v, ("openvino", "int8"))):
        agree = float((got.argmax(1) == fp32.argmax(1)).mean())
        assert agree == pytest.approx(compiled[key]["parity"]["top1_agreement"], abs=1 / 96 + 1e-9), key
        assert agree >= 0.85


def test_gpu_script_refuses_cleanly_without_a_gpu(tmp_path):
    """benchmarks/gpu.sh runs from source; on a machine without CUDA it says so, exit 2."""
    import subprocess

    import torch

    from helpers import ROOT

    if torch.cuda.is_available():
        pytest.skip("expected: a GPU is present; the script would measure it")
    import sys

    p = subprocess.run(["bash", str(ROOT / "benchmarks" / "gpu.sh"), str(tmp_path / "out")],
                       capture_output=True, text=True, timeout=120, env={**os.environ, "PY": sys.executable})
    assert p.returncode == 2 and "no CUDA device is visible" in p.stderr and "Traceback" not in p.stderr
    assert not (tmp_path / "out").exists()


def test_the_fp32_reference_is_computed_once_per_images(monkeypatch, proxy_onnx, proxy_dataset, tmp_path):
    """Each compiled precision is judged against the fp32 ONNX on the same held-out images:
    one reference run serves them all, and other images get their own."""
    from clsbench.compile import artifacts as comp

    opened = []
    real = comp.open_backend

    def counting(backend, path, **kw):
        if backend == "onnxruntime" and os.path.samefile(path, proxy_onnx):
            opened.append(kw)
        return real(backend, path, **kw)

    monkeypatch.setattr(comp, "open_backend", counting)
    comp._REFERENCE.clear()
    val = str(proxy_dataset / "val")
    recs = [comp.compile_model(str(proxy_onnx), backend=b, precision="fp32", output_dir=str(tmp_path / b),
                               data=val, parity_images=8) for b in ("onnxruntime", "openvino")]
    assert len(opened) == 1 and recs[0]["parity"]["samples"] == recs[1]["parity"]["samples"] == 8
    x = np.stack([preprocess_image(p, get_model("mnasnet1_0").preprocessing)
                  for p in sorted((proxy_dataset / "val").iterdir())[:8]])
    ref = get_backend("onnxruntime")(str(proxy_onnx), batch_size=8).run(x)
    got = get_backend("openvino")(recs[1]["artifact"], batch_size=8).run(x)
    mine = parity(ref, got)  # re-measured here (batch 8, not compile's 16: last-digit differences)
    assert recs[1]["parity"]["top1_agreement"] == mine["top1_agreement"] == 1.0
    assert abs(recs[1]["parity"]["rel_l2_error"] - mine["rel_l2_error"]) < 1e-6
    comp.compile_model(str(proxy_onnx), backend="openvino", precision="fp32", output_dir=str(tmp_path / "o2"),
                       data=val, parity_images=4)
    assert len(opened) == 2  # other images: a reference of their own
