"""Precision as executed: OpenVINO's bf16 runs only where the CPU has bf16 (elsewhere the
plugin quietly runs fp32 under the bf16 hint, which clsbench refuses rather than records), and
every OpenVINO record carries what the runtime reports it executes. Whether this CPU has bf16
is OpenVINO's own answer (its OPTIMIZATION_CAPABILITIES), not clsbench's."""
from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter

import numpy as np
import pytest
from helpers import run_cli

ov = pytest.importorskip("openvino", reason="the [openvino] extra is part of make test's install")

_CORE = ov.Core()
CAPS = [str(c) for c in _CORE.get_property("CPU", "OPTIMIZATION_CAPABILITIES")]
CPU_NAME = str(_CORE.get_property("CPU", "FULL_DEVICE_NAME"))
HAS_BF16 = "BF16" in CAPS
needs_bf16 = pytest.mark.skipif(not HAS_BF16, reason=f"expected: OpenVINO reports no BF16 on this CPU ({', '.join(CAPS)})")
lacks_bf16 = pytest.mark.skipif(HAS_BF16, reason="expected: OpenVINO reports BF16 on this CPU: bf16 runs here")


def _exec_graph(model_path: str, hint: str) -> tuple[str, Counter]:
    """OpenVINO itself, without clsbench: the compiled model's precision hint as read back, and
    its execution graph's compute nodes per runtime precision."""
    compiled = _CORE.compile_model(str(model_path), "CPU", {"INFERENCE_PRECISION_HINT": hint})
    nodes = Counter()
    for op in compiled.get_runtime_model().get_ordered_ops():
        info = op.get_rt_info()
        if info["layerType"].astype(str) not in ("Input", "Output", "Const"):
            nodes[info["runtimePrecision"].astype(str)] += 1
    return compiled.get_property("INFERENCE_PRECISION_HINT").to_string(), nodes


def _infer(tmp_path, model, info, precision, name):
    return run_cli("infer", "-q", "--model", model, "--info", info, "--batch-size", "4", "--backend", "openvino",
                   "--precision", precision, "--output", tmp_path / name, check=False)


def _record(out) -> dict:
    return json.loads(next(out.glob("perf_*.json")).read_text())


def _outputs(folder) -> dict:
    return {p.name: p.read_bytes() for p in sorted((folder / "dumpOutput_device0").iterdir())}


def _assert_refused(p, out):
    """One line `error: ...` naming bf16, this CPU and each capability OpenVINO lists; nothing written."""
    err = p.stderr.strip()
    assert p.returncode == 2 and "Traceback" not in p.stderr, p.stderr
    assert len(err.splitlines()) == 1 and err.startswith("error: ") and "openvino:bf16" in err, err
    assert f"this CPU ({CPU_NAME}) has no bf16" in err and all(c in err for c in CAPS), err
    assert "--precision fp32" in err, err
    assert not list(out.rglob("*.json")) and not list(out.rglob("*.txt")), list(out.rglob("*"))


@lacks_bf16
def test_the_silent_downgrade_is_real_here(proxy_onnx):
    """The premise, from OpenVINO alone: asked for bf16, this CPU's plugin reads back f32 and
    executes no bf16 node (the outputs the user found bit-identical to fp32)."""
    hint, nodes = _exec_graph(proxy_onnx, "bf16")
    assert hint == "f32" and "bf16" not in nodes and nodes["f32"] > 0, (hint, nodes)


@lacks_bf16
def test_infer_refuses_bf16_on_a_cpu_without_it(tmp_path, proxy_onnx, info_file):
    _assert_refused(_infer(tmp_path, proxy_onnx, info_file, "bf16", "o"), tmp_path / "o")


@lacks_bf16
def test_perf_refuses_bf16_on_a_cpu_without_it(tmp_path, proxy_onnx):
    out = tmp_path / "perf"
    p = run_cli("perf", "-q", "--model", proxy_onnx, "--configs", "openvino:bf16", "--batches", "1",
                "--duration", "0", "--iterations", "1", "--warmup", "0", "--output", out, check=False)
    _assert_refused(p, out)


@lacks_bf16
def test_backstop_refuses_what_openvino_executed_for_a_bf16_request(proxy_onnx):
    """What OpenVINO reports for a bf16-hinted compile on this CPU, checked as the backend
    checks it after compile_model: refused as bf16, accepted as the fp32 it is."""
    from clsbench import ClsbenchError
    from clsbench.runtime.backends.openvino import check_executed

    hint, nodes = _exec_graph(proxy_onnx, "bf16")
    executed = {"inference_precision_hint": hint, "runtime_precisions": dict(nodes)}
    with pytest.raises(ClsbenchError, match="openvino:bf16 asked, but no node of its execution graph runs in bf16"):
        check_executed("bf16", executed, str(proxy_onnx))
    check_executed("fp32", executed, str(proxy_onnx))


@needs_bf16
def test_bf16_record_shows_bf16_executed_and_outputs_differ_from_fp32(tmp_path, proxy_onnx, info_file):
    for precision in ("fp32", "bf16"):
        p = _infer(tmp_path, proxy_onnx, info_file, precision, precision)
        assert p.returncode == 0, p.stderr
    ex = _record(tmp_path / "bf16")["backend"]["precision_executed"]
    hint, nodes = _exec_graph(proxy_onnx, "bf16")
    assert hint == "bf16" and nodes["bf16"] > 0, (hint, nodes)  # OpenVINO itself: bf16 runs here
    assert ex["inference_precision_hint"] == "bf16" and ex["runtime_precisions"].get("bf16", 0) > 0, ex
    assert set(ex["runtime_precisions"]) == set(nodes), (ex, nodes)
    assert _outputs(tmp_path / "bf16") != _outputs(tmp_path / "fp32")  # really another arithmetic


def test_fp32_record_shows_fp32_nodes_and_no_bf16(tmp_path, proxy_onnx, info_file):
    p = _infer(tmp_path, proxy_onnx, info_file, "fp32", "o")
    assert p.returncode == 0, p.stderr
    ex = _record(tmp_path / "o")["backend"]["precision_executed"]
    hint, nodes = _exec_graph(proxy_onnx, "f32")
    assert hint == "f32" and nodes["f32"] > 0 and not {"bf16", "f16"} & set(nodes), (hint, nodes)
    # the backend compiles for a static batch, so node counts differ; the precisions must not
    assert ex["inference_precision_hint"] == "f32" and ex["runtime_precisions"]["f32"] > 0, ex
    assert set(ex["runtime_precisions"]) == set(nodes), (ex, nodes)


def test_int8_ir_record_shows_int8_nodes(tmp_path, proxy_onnx):
    """An NNCF int8 IR: OpenVINO executes its quantized convolutions in u8/i8, and the record says so."""
    from clsbench.runtime.backends import open_backend
    from clsbench.compile.artifacts import compile_model
    from clsbench.data.proxy_task import write_images

    write_images(tmp_path / "calib", 8, seed=77)
    ir = compile_model(str(proxy_onnx), backend="openvino", precision="int8", output_dir=str(tmp_path / "c"),
                       data=str(tmp_path / "calib" / "val"), calib_images=8, parity_images=0)["artifact"]
    hint, nodes = _exec_graph(ir, "f32")
    assert nodes["u8"] + nodes["i8"] > 0, nodes
    rt = open_backend(None, ir, batch_size=1)
    ex = rt.describe()["precision_executed"]
    assert rt.precision == "int8" and set(ex["runtime_precisions"]) == set(nodes), (ex, nodes)
    assert ex["runtime_precisions"].get("u8", 0) + ex["runtime_precisions"].get("i8", 0) > 0, ex
    assert rt.run(np.zeros((1, 3, 224, 224), np.float32)).shape[0] == 1


def test_capability_check_is_free_for_other_backends():
    """Asking about any pair but openvino:bf16 does not even import OpenVINO."""
    code = ("import sys; from clsbench.runtime.backends import check_precision_supported as c, precision_unsupported as u; "
            "c('onnxruntime', 'fp32'); c('torch', 'bf16'); c('openvino', 'fp32'); c('openvino', 'int8'); "
            "assert u('cuda', 'bf16') is None; assert 'openvino' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_compile_refuses_bf16_without_data_too(tmp_path, proxy_onnx):
    """Without --data no backend is opened, so the resolver's check is all there is: no IR
    labelled bf16 is written on a CPU that would run it in fp32."""
    from clsbench.runtime.backends import precision_unsupported

    if not precision_unsupported("openvino", "bf16"):
        pytest.skip("expected: this CPU runs bf16 (OpenVINO reports BF16)")
    p = run_cli("compile", "--model", proxy_onnx, "--backend", "openvino", "--precision", "bf16",
                "--output", tmp_path / "c", check=False)
    assert p.returncode == 2 and "has no bf16" in p.stderr, p.stderr
    assert not list(tmp_path.glob("c/*.xml"))
