"""The compact store and streaming give the same tensors and outputs as the .bin path."""
import os

import numpy as np
import pytest

from clsbench import ClsbenchError
from clsbench.measure.infer import infer_offline
from clsbench.model.table import PRESETS
from clsbench.data.store import Store, build_store

PP = PRESETS["mnasnet"]


def outputs(d):
    d = os.path.join(d, "dumpOutput_device0")
    return {n: open(os.path.join(d, n), "rb").read() for n in os.listdir(d) if n.endswith(".txt")}


@pytest.fixture(scope="module")
def store(tmp_path_factory, tiny_dataset):
    d = tmp_path_factory.mktemp("store") / "s"
    build_store(tiny_dataset / "val", d, PP, workers=2, show_progress=False)
    return d


def test_store_round_trip_bit_identical_to_bin(store, prep):
    s = Store(store)
    assert len(s) == 13 and s.complete
    assert os.path.getsize(store / "crops.u8") == 13 * 150_528  # a quarter of the .bin bytes
    x = s.batch(0, 13)
    for i, name in enumerate(s.names):
        b = np.fromfile(prep / f"{name}.bin", dtype="<f4").reshape(3, 224, 224)
        assert np.array_equal(x[i], b), name


def test_infer_from_store_and_stream_match_bin_outputs(store, tiny_dataset, onnx_model, info_file, tmp_path):
    infer_offline(str(onnx_model), str(info_file), batch_size=4, output=str(tmp_path / "bin"), show_progress=False)
    infer_offline(str(onnx_model), store=str(store), batch_size=4, output=str(tmp_path / "store"), show_progress=False)
    rec = infer_offline(str(onnx_model), images=str(tiny_dataset / "val"), preprocessing=PP, workers=2,
                        batch_size=4, output=str(tmp_path / "stream"), show_progress=False)
    ref = outputs(tmp_path / "bin")
    assert len(ref) == 13
    assert outputs(tmp_path / "store") == ref and outputs(tmp_path / "stream") == ref
    assert rec["mode"] == "stream" and rec["samples"] == 13


def test_store_resumes_only_missing_slots(tiny_dataset, tmp_path):
    d = tmp_path / "s"
    build_store(tiny_dataset / "val", d, PP, workers=1, show_progress=False)
    full = (d / "crops.u8").read_bytes()
    done = np.fromfile(d / "done.u8", np.uint8)
    done[[2, 7]] = 0  # as if killed before those slots were marked
    done.tofile(d / "done.u8")
    r = build_store(tiny_dataset / "val", d, PP, workers=1, show_progress=False)
    assert (r["written"], r["resumed"]) == (2, 11)
    assert (d / "crops.u8").read_bytes() == full


def test_store_refuses_other_preprocessing(store, tiny_dataset):
    with pytest.raises(ClsbenchError, match="other images or preprocessing"):
        build_store(tiny_dataset / "val", store, PRESETS["inceptionv4"], show_progress=False)


def test_stream_skips_and_lists_bad_images(tiny_dataset, onnx_model, tmp_path):
    import shutil

    val = tmp_path / "val"
    shutil.copytree(tiny_dataset / "val", val)
    (val / "zz_broken.JPEG").write_bytes(b"not a jpeg")
    rec = infer_offline(str(onnx_model), images=str(val), preprocessing=PP, workers=2, batch_size=4,
                        output=str(tmp_path / "r"), show_progress=False)
    assert rec["samples"] == 13 and [f["file"] for f in rec["failed"]] == [str(val / "zz_broken.JPEG")]
    with pytest.raises(ClsbenchError, match="zz_broken.JPEG"):
        infer_offline(str(onnx_model), images=str(val), preprocessing=PP, workers=2, batch_size=4,
                      strict=True, output=str(tmp_path / "r2"), show_progress=False)


def test_stream_resumes_only_missing_outputs(tiny_dataset, onnx_model, tmp_path):
    out = tmp_path / "r"
    infer_offline(str(onnx_model), images=str(tiny_dataset / "val"), preprocessing=PP, workers=2,
                  batch_size=4, output=str(out), show_progress=False)
    ref = outputs(out)
    dump = out / "dumpOutput_device0"
    for n in sorted(ref)[:5]:
        (dump / n).unlink()
    rec = infer_offline(str(onnx_model), images=str(tiny_dataset / "val"), preprocessing=PP, workers=2,
                        batch_size=4, output=str(out), show_progress=False)
    assert (rec["samples"], rec["resumed"]) == (5, 8)
    assert outputs(out) == ref
