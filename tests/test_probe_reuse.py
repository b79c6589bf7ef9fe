"""A user's probe: a compiled artifact copied over in place is neither reused by `compile`
nor timed by `perf --compiled` under the wrong model's name; `zoo` takes each row's reference
Top-1 from the weights' provenance (none for other weights, and off the frontier plot); `perf`
never writes among its own inputs. Each test checks against facts read without clsbench (the
file's SHA-256, the metadata the artifact embeds, the rows written)."""
from __future__ import annotations

import csv
import hashlib
import json
import shutil

import pytest

from helpers import bin_tensors, installed, run_cli, stamped


def _sha(path) -> str:
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


def _onnx_meta(path) -> dict:
    import onnx

    return {p.key: p.value for p in onnx.load(str(path)).metadata_props}


def _two_compiled(tmp_path, backend: str) -> tuple:
    """mnasA and mnasB (two different models, both recording mnasnet1_0), each compiled into a
    folder of its own: (A's model, A's folder, B's model, B's folder)."""
    a, b = stamped(tmp_path / "mnasA.onnx", "mnasnet1_0", seed=1), stamped(tmp_path / "mnasB.onnx", "mnasnet1_0", seed=2)
    for m, out in ((a, "ccA"), (b, "ccB")):
        run_cli("compile", "--model", m, "--backend", backend, "--precision", "fp32", "--output", tmp_path / out)
    return a, tmp_path / "ccA", b, tmp_path / "ccB"


def _perf(model, compiled, config, out, check=False):
    return run_cli("perf", "--model", model, "--compiled", compiled, "--configs", config, "--batches", "1",
                   "--duration", "0", "--iterations", "2", "--warmup", "0", "--output", out, "-q", check=check)


def test_compile_records_the_artifacts_bytes_and_recompiles_one_copied_over(tmp_path):
    a, ccA, b, ccB = _two_compiled(tmp_path, "onnxruntime")
    art, other = ccA / "mnasA.onnxruntime.fp32.onnx", ccB / "mnasB.onnxruntime.fp32.onnx"
    shutil.copy(other, art)  # B's artifact under A's name; A's record stays
    assert _onnx_meta(art)["clsbench.source_sha256"] == _sha(b)
    p = run_cli("compile", "--model", a, "--backend", "onnxruntime", "--precision", "fp32", "--output", ccA)
    assert "reused" not in p.stdout and "wrote" in p.stdout
    assert f"{art} is not the file compiled" in p.stderr and "compiling again" in p.stderr
    assert _onnx_meta(art)["clsbench.source_sha256"] == _sha(a)  # A's artifact again
    rec = json.loads((ccA / "mnasA.onnxruntime.fp32.compile.json").read_text())
    assert rec["artifact_sha256"] == {art.name: _sha(art)}
    p = run_cli("compile", "--model", a, "--backend", "onnxruntime", "--precision", "fp32", "--output", ccA)
    assert "reused (same source and settings)" in p.stdout  # untouched: reused as before


def test_perf_refuses_an_onnxruntime_artifact_copied_over_in_place(tmp_path):
    a, ccA, b, ccB = _two_compiled(tmp_path, "onnxruntime")
    art = ccA / "mnasA.onnxruntime.fp32.onnx"
    _perf(a, ccA, "onnxruntime:fp32", tmp_path / "p0", check=True)  # A's own artifact is timed
    shutil.copy(ccB / "mnasB.onnxruntime.fp32.onnx", art)
    p = _perf(a, ccA, "onnxruntime:fp32", tmp_path / "p1")
    assert p.returncode == 2 and "Traceback" not in p.stderr and len(p.stderr.strip().splitlines()) == 1
    assert str(art) in p.stderr and f"clsbench compile --model {a} --backend onnxruntime" in p.stderr
    assert not (tmp_path / "p1" / "perf.json").exists()


@pytest.mark.skipif(not installed("openvino"), reason="needs openvino")
def test_perf_refuses_an_ir_copied_over_in_place_xml_or_bin(tmp_path):
    import xml.etree.ElementTree as ET

    a, ccA, b, ccB = _two_compiled(tmp_path, "openvino")
    xml, bin_ = ccA / "mnasA.openvino.fp32.xml", ccA / "mnasA.openvino.fp32.bin"
    kept = bin_.read_bytes()
    shutil.copy(ccB / "mnasB.openvino.fp32.bin", bin_)  # the weights alone: the .xml is A's
    p = _perf(a, ccA, "openvino:fp32", tmp_path / "p1")
    assert p.returncode == 2 and str(bin_) in p.stderr and "clsbench compile" in p.stderr
    rec = json.loads((ccA / "mnasA.openvino.fp32.compile.json").read_text())
    assert rec["artifact_sha256"] == {xml.name: _sha(xml), bin_.name: hashlib.sha256(kept).hexdigest()}
    bin_.write_bytes(kept)
    shutil.copy(ccB / "mnasB.openvino.fp32.xml", xml)
    shutil.copy(ccB / "mnasB.openvino.fp32.bin", bin_)
    embedded = ET.parse(xml).getroot().find("rt_info/clsbench/source_sha256").get("value")
    assert embedded == _sha(b)  # the IR's own rt_info: what perf would have timed as A's
    p = _perf(a, ccA, "openvino:fp32", tmp_path / "p2")
    assert p.returncode == 2 and "Traceback" not in p.stderr and len(p.stderr.strip().splitlines()) == 1
    assert str(xml) in p.stderr and not (tmp_path / "p2" / "perf.json").exists()


def test_zoo_gives_other_weights_no_reference_and_keeps_them_off_the_plot(tmp_path):
    import torch
    import torchvision

    wdir = tmp_path / "zw"
    wdir.mkdir()
    torch.manual_seed(0)
    torch.save(torchvision.models.mnasnet1_0(weights=None).state_dict(), wdir / "mnasnet1_0.pth")
    run_cli("zoo", "--models", "mnasnet1_0", "--configs", "onnxruntime:fp32", "--weights-dir", wdir,
            "--duration", "0", "--iterations", "2", "--warmup", "0", "--batches", "1", "--output", tmp_path / "zz", "-q")
    rows = list(csv.DictReader(open(tmp_path / "zz/zoo.csv")))
    assert len(rows) == 1 and rows[0]["reference_top1"] == "" and rows[0]["reference_top5"] == ""
    assert rows[0]["provenance"] == "other" and rows[0]["weights"] == "given"
    assert "other weights than the official file" in rows[0]["provenance_text"]
    md = (tmp_path / "zz/zoo.md").read_text()
    assert "73.456" not in md and "Not on zoo.png" in md and "mnasnet1_0:IMAGENET1K_V1" in md.split("Not on zoo.png")[1]
    z = json.loads((tmp_path / "zz/zoo.json").read_text())
    assert [(r["provenance"], r["reference_top1"]) for r in z["rows"]] == [("other", None)]
    assert z["sweeps"]["mnasnet1_0:IMAGENET1K_V1"]["plan"]["model"]["provenance"] == "other"
    assert (tmp_path / "zz/zoo.png").is_file()


def test_perf_never_writes_among_its_inputs(tmp_path):
    m = stamped(tmp_path / "m.onnx", "mnasnet1_0")
    prep = bin_tensors(tmp_path / "own" / "prep", 2, 224)
    before = sorted(p.name for p in prep.iterdir())
    for out in (prep, prep / "sub"):
        p = run_cli("perf", "--model", m, "--data", prep, "--output", out, "--batches", "1", "--duration", "0",
                    "--iterations", "2", "-q", check=False)
        assert p.returncode == 2 and "Traceback" not in p.stderr and len(p.stderr.strip().splitlines()) == 1
        assert "--data folder" in p.stderr and "--output folder" in p.stderr
    assert sorted(p.name for p in prep.iterdir()) == before  # no perf.json, latencies/, report.html
    named = tmp_path / "out" / "perf.json"  # a model file perf would write its record over
    named.parent.mkdir()
    shutil.copy(m, named)
    p = run_cli("perf", "--model", named, "--output", named.parent, "--batches", "1", "--duration", "0",
                "--iterations", "2", "-q", check=False)
    assert p.returncode == 2 and "--model file" in p.stderr and _sha(named) == _sha(m)
    run_cli("perf", "--model", m, "--data", prep, "--output", tmp_path / "own" / "perf", "--batches", "1",
            "--duration", "0", "--iterations", "2", "-q")  # beside the data is fine
    assert (tmp_path / "own" / "perf" / "perf.json").is_file()
