import json
import os

import numpy as np
import pytest

from clsbench import ClsbenchError
from clsbench.data.folders import read_info
from clsbench.measure.infer import infer_offline, pure_inference
from clsbench.runtime.outputs import load_scores
from helpers import assert_guide_folder, guide_interface_rate, guide_perf_fields


def outputs(d):
    return sorted(p for p in os.listdir(d) if not p.startswith("."))


@pytest.mark.parametrize("bs", [1, 4, 5, 13, 16])
def test_one_output_per_input_none_for_padding(onnx_model, info_file, tmp_path, bs):
    rec = infer_offline(str(onnx_model), str(info_file), batch_size=bs, output=str(tmp_path),
                        show_progress=False)
    entries = read_info(info_file)
    dump = tmp_path / "dumpOutput_device0"
    assert outputs(dump) == sorted(os.path.basename(e.path)[:-4] + "_1.txt" for e in entries)
    assert rec["samples"] == 13 and rec["total"] == 13
    n_batches = -(-13 // bs)
    assert rec["compute_latency_ms_per_batch"]["count"] == n_batches
    st = rec["stages"]
    assert st["infer"]["Interface throughputRate"] >= st["infer"]["throughputRate"]
    # padded samples are computed but not counted as inferred images
    ratio = st["infer"]["Interface throughputRate"] / st["infer"]["throughputRate"]
    assert ratio == pytest.approx(n_batches * bs / 13, rel=1e-9)


def test_outputs_match_direct_backend_run_and_round_trip(onnx_model, info_file, tmp_path):
    from clsbench.runtime.backends.onnxruntime import OnnxRuntimeBackend

    # batch 5: the last batch holds 3 images and 2 padding copies, so misaligned rows would show
    infer_offline(str(onnx_model), str(info_file), batch_size=5, output=str(tmp_path), show_progress=False)
    entries = read_info(info_file)
    x = np.stack([np.fromfile(e.path, dtype="<f4").reshape(3, 224, 224) for e in entries])
    want = OnnxRuntimeBackend(str(onnx_model), batch_size=13).run(x)
    dump = tmp_path / "dumpOutput_device0"
    got = np.stack([load_scores(dump / (os.path.basename(e.path)[:-4] + "_1.txt")) for e in entries])
    assert got.shape == (13, 1000)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
    assert (got.argmax(1) == want.argmax(1)).all()


@pytest.mark.parametrize("fmt", ["bin", "npy"])
def test_binary_output_formats_exact(onnx_model, info_file, tmp_path, fmt):
    infer_offline(str(onnx_model), str(info_file), batch_size=4, output=str(tmp_path / "t"),
                  show_progress=False)
    infer_offline(str(onnx_model), str(info_file), batch_size=4, output=str(tmp_path / "b"),
                  outfmt=fmt, show_progress=False)
    for name in outputs(tmp_path / "t" / "dumpOutput_device0"):
        t = load_scores(tmp_path / "t" / "dumpOutput_device0" / name)
        b = load_scores(tmp_path / "b" / "dumpOutput_device0" / name.replace(".txt", f".{fmt}"))
        assert np.array_equal(t, b)  # %.9g text round-trips float32 exactly


def test_perf_file_guide_format_and_parser_rule(onnx_model, info_file, tmp_path):
    rec = infer_offline(str(onnx_model), str(info_file), batch_size=4, output=str(tmp_path),
                        device_id=1, show_progress=False)
    text = (tmp_path / "perf_vision_batchsize_4_device_1.txt").read_text()
    lines = text.splitlines()
    assert [l.split("]")[0] + "]" for l in lines] == ["[e2e]", "[data read]", "[preprocess]", "[infer]", "[post]"]
    assert lines[0].startswith("[e2e] throughputRate: ") and ", latency: " in lines[0]
    assert "Interface throughputRate: " in lines[3]
    fields = guide_perf_fields(text)  # the model zoo's parser, written in the test from formats.md §5
    assert len(fields) == 11 and all(float(f) > 0 for f in fields)
    st = rec["stages"]
    # each figure where the zoo's parser looks for it: field 7 is Interface throughputRate
    assert guide_interface_rate(text) == pytest.approx(st["infer"]["Interface throughputRate"], rel=1e-5)
    # ... and it is the vendor's figure: 1000 * batch / mean compute ms per batch (formats.md §5)
    lat = rec["compute_latency_ms_per_batch"]
    assert guide_interface_rate(text) == pytest.approx(1e3 * 4 / lat["mean"], rel=1e-4)
    assert float(fields[1]) >= lat["mean"] * lat["count"]  # [e2e] latency: total ms, compute included
    assert float(fields[6]) == pytest.approx(st["infer"]["throughputRate"], rel=1e-5)
    assert float(fields[2]) == pytest.approx(st["data read"]["throughputRate"], rel=1e-5)
    assert float(fields[9]) == pytest.approx(st["post"]["throughputRate"], rel=1e-5)
    e2e_rate, e2e_ms = float(fields[0]), float(fields[1])
    assert e2e_rate == pytest.approx(13 / (e2e_ms / 1e3), rel=1e-3)
    assert_guide_folder(tmp_path / "dumpOutput_device1", "_1.txt")
    j = json.loads((tmp_path / "perf_vision_batchsize_4_device_1.json").read_text())
    assert j["batch_size"] == 4 and j["backend"]["threads"] >= 1
    assert j["environment"]["cpu"] and j["environment"]["onnxruntime"] and j["environment"]["clsbench"]
    assert (tmp_path / "dumpOutput_device1").is_dir()


def test_resume_redoes_only_missing_outputs(onnx_model, info_file, tmp_path):
    infer_offline(str(onnx_model), str(info_file), batch_size=4, output=str(tmp_path), show_progress=False)
    dump = tmp_path / "dumpOutput_device0"
    names = outputs(dump)
    before = {n: (dump / n).read_bytes() for n in names}
    for n in names[:3]:
        (dump / n).unlink()
    keep_mtime = (dump / names[5]).stat().st_mtime_ns
    rec = infer_offline(str(onnx_model), str(info_file), batch_size=4, output=str(tmp_path), show_progress=False)
    assert (rec["samples"], rec["resumed"]) == (3, 10)
    assert {n: (dump / n).read_bytes() for n in names} == before
    assert (dump / names[5]).stat().st_mtime_ns == keep_mtime


def test_refuses_to_mix_batch_sizes_unless_overwrite(onnx_model, info_file, tmp_path):
    infer_offline(str(onnx_model), str(info_file), batch_size=4, output=str(tmp_path), show_progress=False)
    with pytest.raises(ClsbenchError, match="another run; differs in batch_size: 4 there, 8 now"):
        infer_offline(str(onnx_model), str(info_file), batch_size=8, output=str(tmp_path), show_progress=False)
    rec = infer_offline(str(onnx_model), str(info_file), batch_size=8, output=str(tmp_path),
                        overwrite=True, show_progress=False)
    assert rec["samples"] == 13


def test_missing_and_truncated_bin_named(onnx_model, info_file, tmp_path):
    lines = info_file.read_text().splitlines()
    cut = tmp_path / "cut.bin"
    cut.write_bytes(b"\0" * 1000)
    bad = tmp_path / "bad.info"
    bad.write_text("\n".join(lines[:2] + [f"2 {cut} 224 224"]) + "\n")
    with pytest.raises(ClsbenchError, match=r"cut.bin: 1000 bytes, expected 602112"):
        infer_offline(str(onnx_model), str(bad), batch_size=2, output=str(tmp_path / "r"), show_progress=False)
    bad.write_text("\n".join(lines[:2] + [f"2 {tmp_path}/gone.bin 224 224"]) + "\n")
    with pytest.raises(ClsbenchError, match=r"gone.bin: listed in .*bad.info as idx 2 but missing"):
        infer_offline(str(onnx_model), str(bad), batch_size=2, output=str(tmp_path / "r"), show_progress=False)


def test_fixed_batch_model_rejects_other_batch_sizes(onnx_model, tmp_path):
    import onnx

    m = onnx.load(onnx_model)
    m.graph.input[0].type.tensor_type.shape.dim[0].dim_value = 4
    fixed = tmp_path / "bs4.onnx"
    onnx.save(m, fixed)
    from clsbench.runtime.backends.onnxruntime import OnnxRuntimeBackend

    OnnxRuntimeBackend(str(fixed), batch_size=4)
    with pytest.raises(ClsbenchError, match="fixed batch size 4 cannot run batch size 16"):
        OnnxRuntimeBackend(str(fixed), batch_size=16)


def test_not_an_onnx_file(tmp_path):
    from clsbench.runtime.backends.onnxruntime import OnnxRuntimeBackend

    p = tmp_path / "model.onnx"
    p.write_bytes(b"this is not a protobuf")
    with pytest.raises(ClsbenchError, match="cannot load it as an ONNX model"):
        OnnxRuntimeBackend(str(p), batch_size=1)


def test_pure_inference_mode(onnx_model, tmp_path):
    rec = pure_inference(str(onnx_model), batch_size=2, loop=3, warmup=1, output=str(tmp_path))
    lat = rec["latency_ms_per_batch"]
    assert lat["count"] == 3 and lat["min"] <= lat["p50"] <= lat["max"]
    assert rec["ave_throughputRate"] == pytest.approx(2e3 / lat["mean"])
    assert json.loads((tmp_path / "perf_pure_batchsize_2_device_0.json").read_text())["loop"] == 3


def test_text_scores_are_python_e8_formatting_and_round_trip():
    from clsbench.runtime.outputs import format_scores

    rng = np.random.default_rng(7)
    bits = rng.integers(0, 2**32, size=(40, 1000), dtype=np.uint64).astype(np.uint32).view(np.float32)
    rows = [np.where(np.isfinite(bits), bits, np.float32(1.0)).astype(np.float32),
            rng.standard_normal((8, 1000)).astype(np.float32),
            np.array([[0.0, -0.0, 1.0, 9.9999999, 0.5, 1e-45, 3.4e38, 999999999.0, 1e-8, -1e-30]], np.float32)]
    for a in rows:
        for row, line in zip(a, format_scores(a)):
            assert line == (" ".join("%+.8e" % v for v in row.tolist()) + "\n").encode()
            back = np.array(line.decode().strip().split(" "), dtype=np.float32)
            assert np.array_equal(back.view(np.uint32), row.view(np.uint32))


def test_nan_output_is_an_error_not_a_number(tmp_path, info_file, onnx_model):
    import onnx
    from onnx import TensorProto, helper

    m = onnx.load(onnx_model)
    # multiply the logits by NaN: a broken model must not produce a result file
    out = m.graph.output[0].name
    m.graph.initializer.append(helper.make_tensor("nan_c", TensorProto.FLOAT, [], [float("nan")]))
    m.graph.node.append(helper.make_node("Mul", [out, "nan_c"], ["class_nan"]))
    m.graph.output[0].name = "class_nan"
    bad = tmp_path / "nan.onnx"
    onnx.save(m, bad)
    with pytest.raises(ClsbenchError, match="NaN or infinite output for"):
        infer_offline(str(bad), str(info_file), batch_size=4, output=str(tmp_path / "r"), show_progress=False)
    assert outputs(tmp_path / "r" / "dumpOutput_device0") == []
