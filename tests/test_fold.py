"""The normalization folded into the model (`compile --uint8-input`): uint8 store crops in,
the same logits as the guide's .bin path out."""
from __future__ import annotations

import json

import pytest
from helpers import run_cli


@pytest.fixture(scope="module")
def folded(tmp_path_factory, proxy_onnx, proxy_dataset):
    out = tmp_path_factory.mktemp("folded")
    run_cli("compile", "--model", str(proxy_onnx), "--backend", "onnxruntime", "--precision", "fp32",
            "--uint8-input", "--data", str(proxy_dataset / "val"), "--parity-images", "8", "--output", str(out), "-q")
    return out


def test_store_through_the_folded_model_equals_the_bin_path(tmp_path, folded, proxy_onnx, proxy_dataset):
    """29 images: .bin files through the fp32 ONNX vs the uint8 store through the folded
    artifact, batch 8 (a padded last batch): every output file byte-identical (ONNX Runtime
    runs the same float32 operations in the same order as the CPU path)."""
    run_cli("preprocess", str(proxy_dataset / "val"), str(tmp_path / "prep"), "--model", "mnasnet1_0", "-q")
    run_cli("info", "bin", str(tmp_path / "prep"), str(tmp_path / "p.info"), "224", "224")
    run_cli("preprocess", "--format", "store", str(proxy_dataset / "val"), str(tmp_path / "store"),
            "--model", "mnasnet1_0", "-q")
    run_cli("infer", "--model", str(proxy_onnx), "--info", str(tmp_path / "p.info"), "--batch-size", "8",
            "--output", str(tmp_path / "bin"), "-q")
    u8 = next(folded.glob("*.u8.onnx"))
    run_cli("infer", "--model", str(u8), "--store", str(tmp_path / "store"), "--batch-size", "8",
            "--output", str(tmp_path / "u8"), "-q")
    a, b = (tmp_path / d / "dumpOutput_device0" for d in ("bin", "u8"))
    names = sorted(p.name for p in a.iterdir())
    assert len(names) == 29 and names == sorted(p.name for p in b.iterdir())
    assert all((a / n).read_bytes() == (b / n).read_bytes() for n in names)
    rec = json.loads(next(folded.glob("*.compile.json")).read_text())
    assert rec["parity"]["bit_identical"] and rec["identity"]["uint8_input"]


def test_folded_model_refuses_inputs_it_would_get_wrong(tmp_path, folded, proxy_dataset):
    u8 = str(next(folded.glob("*.u8.onnx")))
    run_cli("preprocess", "--format", "store", str(proxy_dataset / "val"), str(tmp_path / "store"),
            "--mean", "0.5,0.5,0.5", "--std", "0.5,0.5,0.5", "--model", "mnasnet1_0", "-q")
    p = run_cli("infer", "--model", u8, "--store", str(tmp_path / "store"), "--output", str(tmp_path / "o"),
                check=False)
    assert p.returncode == 2 and "crops for mean [0.5, 0.5, 0.5]" in p.stderr and "folded in" in p.stderr
    p = run_cli("run", "--weights", u8, "--data", str(proxy_dataset), "--work-dir", str(tmp_path / "w"), check=False)
    assert p.returncode == 2 and "takes uint8 crops (the normalization is folded in)" in p.stderr
    assert "Traceback" not in p.stderr


def test_fold_refuses_int8(tmp_path, proxy_onnx, proxy_dataset):
    p = run_cli("compile", "--model", str(proxy_onnx), "--backend", "onnxruntime", "--precision", "int8",
                "--uint8-input", "--data", str(proxy_dataset / "val"), "--calib-images", "8",
                "--output", str(tmp_path / "c"), check=False)
    assert p.returncode == 2 and "calibrates on normalized images" in p.stderr
