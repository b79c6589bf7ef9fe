"""`clsbench profile`: the normalised table against each runtime's own output, read here
(ONNX Runtime's trace, OpenVINO's get_profiling_info, torch.profiler's modules), the
dominant operation of a model built here on top with the runtime's own share, trace.json a
valid Trace Event file, fp32 against int8 (the convolutions' kernels changed), `perf
--profile` leaving the timed figures alone, and bad input in one line."""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from helpers import PROXY, run_cli


def conv_net(path: Path) -> Path:
    """224² input, mnasnet1_0's preset recorded as an export records it: a stride-2 3×3 conv,
    a wide 7×7 conv that dominates by construction (8→48 channels on 56², ~90 % of the
    multiply-adds), a 1×1 conv, pooling, a dense layer."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    from clsbench.model.table import get_model

    rng = np.random.default_rng(0)
    inits, nodes = [], []

    def conv(name, x, y, cin, cout, k, stride):
        w = numpy_helper.from_array((rng.standard_normal((cout, cin, k, k)) * (2 / (cin * k * k)) ** 0.5)
                                    .astype(np.float32), f"{name}.w")
        b = numpy_helper.from_array(np.full(cout, 0.01, np.float32), f"{name}.b")
        inits.extend([w, b])
        nodes.append(helper.make_node("Conv", [x, w.name, b.name], [f"{y}_pre"], name=name, pads=[k // 2] * 4,
                                      strides=[stride, stride]))
        nodes.append(helper.make_node("Relu", [f"{y}_pre"], [y], name=f"{name}_relu"))

    conv("conv1", "image", "a", 3, 8, 3, 4)
    conv("conv_big", "a", "b", 8, 48, 7, 1)
    conv("conv3", "b", "c", 48, 8, 1, 1)
    inits.append(numpy_helper.from_array(rng.standard_normal((8, 1000)).astype(np.float32), "fc.w"))
    nodes += [helper.make_node("GlobalAveragePool", ["c"], ["g"], name="pool"),
              helper.make_node("Flatten", ["g"], ["f"], name="flat"),
              helper.make_node("MatMul", ["f", "fc.w"], ["class"], name="fc")]
    x = helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 3, 224, 224])
    y = helper.make_tensor_value_info("class", TensorProto.FLOAT, ["N", 1000])
    m = helper.make_model(helper.make_graph(nodes, "convnet", [x], [y], inits),
                          opset_imports=[helper.make_opsetid("", 13)])
    spec = get_model("mnasnet1_0")
    for k, v in {"architecture": spec.name, "weights_tag": spec.tag, "num_classes": 1000, "provenance": "other",
                 "preprocessing": json.dumps(spec.preprocessing.as_dict())}.items():
        e = m.metadata_props.add()
        e.key, e.value = f"clsbench.{k}", str(v)
    onnx.save(m, path)
    return path


@pytest.fixture(scope="module")
def convnet(tmp_path_factory) -> Path:
    return conv_net(tmp_path_factory.mktemp("convnet") / "convnet.onnx")


def valid_trace(path: Path) -> list[dict]:
    """Trace Event format as Perfetto and chrome://tracing read it: an object whose
    traceEvents each have a phase; a complete event ("X") a name, pid, tid and ts/dur in µs."""
    t = json.loads(path.read_text())
    assert isinstance(t, dict) and isinstance(t["traceEvents"], list) and t["traceEvents"]
    complete = [e for e in t["traceEvents"] if e["ph"] == "X"]
    assert complete
    for e in complete:
        assert isinstance(e["name"], str) and "pid" in e and "tid" in e
        assert isinstance(e["ts"], (int, float)) and isinstance(e["dur"], (int, float)) and e["dur"] >= 0
    return t["traceEvents"]


def ort_per_node(events: list[dict], warmup: int) -> dict[str, tuple[int, float]]:
    """ONNX Runtime's own trace read here: the node events (`<node>_kernel_time`, µs) after the
    warm-up model runs, per node: (calls, ms)."""
    runs = sorted(e["ts"] for e in events if e.get("cat") == "Session" and e["name"] == "model_run")
    out: dict[str, tuple[int, float]] = {}
    for e in events:
        if e.get("cat") == "Node" and e["name"].endswith("_kernel_time") and e["ts"] >= runs[warmup]:
            n, ms = out.get(e["name"][:-12], (0, 0.0))
            out[e["name"][:-12]] = (n + 1, ms + e["dur"] / 1000)
    return out


def test_onnxruntime_table_is_its_own_trace_summed_and_the_wide_conv_leads(convnet, tmp_path):
    out = tmp_path / "p"
    p = run_cli("profile", "--model", convnet, "--output", out, "--warmup", "2", "--runs", "4", "--timed-runs", "3")
    rec = json.loads((out / "profile.json").read_text())
    mine = ort_per_node(valid_trace(out / "trace.json"), warmup=2)
    assert {n["name"]: (n["calls"], pytest.approx(n["ms"], abs=1e-9)) for n in rec["nodes"]} == mine
    total = sum(ms for _, ms in mine.values())
    top = rec["nodes"][0]
    assert top["source"] == "conv_big" and top["op_type"] == "Conv" and top["calls"] == 4
    assert max(mine, key=lambda k: mine[k][1]) == top["name"]
    assert top["percent"] == pytest.approx(100 * mine[top["name"]][1] / total) and top["percent"] > 50
    cov = rec["coverage"]
    assert cov["node_ms_per_run"] == pytest.approx(total / 4) and cov["measured_ms"] > 0
    assert "nodes" in cov["text"] and cov["text"] in p.stdout
    csv_rows = (out / "profile.csv").read_text().splitlines()
    assert csv_rows[0].startswith("name,op_type,kernel,precision,calls,ms") and len(csv_rows) == len(rec["nodes"]) + 1
    assert rec["plan"]["target"]["backend"] == "onnxruntime" and rec["plan"]["model"]
    assert top["name"] in p.stdout and 'data-field="nodes/0/percent"' in (out / "report.html").read_text()


def test_openvino_table_is_get_profiling_info_summed(convnet, tmp_path, monkeypatch):
    import openvino as ov
    from openvino._ov_api import InferRequest

    from clsbench.measure.profile import profile_model

    seen: list = []
    own = InferRequest.get_profiling_info

    def spy(self):
        infos = own(self)
        seen.append([(i.node_name, i.status, i.real_time.total_seconds() * 1e3) for i in infos])
        return infos

    monkeypatch.setattr(InferRequest, "get_profiling_info", spy)
    rec = profile_model(str(convnet), output=str(tmp_path / "ov"), backend="openvino", warmup=1, runs=3,
                        timed_runs=2)
    assert len(seen) == 3  # one read per profiled run (OpenVINO's counters are the last run's)
    summed: dict[str, float] = {}
    for run in seen:
        for name, status, ms in run:
            if status == ov.ProfilingInfo.Status.EXECUTED:
                summed[name] = summed.get(name, 0.0) + ms
    assert {n["name"]: pytest.approx(n["ms"], abs=1e-9) for n in rec["nodes"]} == summed
    top = rec["nodes"][0]
    assert top["source"] == "conv_big" and top["op_type"] == "Convolution" and "f32" in top["kernel"].lower()
    assert top["precision"] == "fp32"
    assert top["percent"] == pytest.approx(100 * summed[top["name"]] / sum(summed.values()))
    valid_trace(tmp_path / "ov" / "trace.json")


def test_torch_profile_names_modules_and_their_aten_kernels(tmp_path):
    out = tmp_path / "t"
    p = run_cli("profile", "-q", "--model", PROXY, "--backend", "torch", "--output", out, "--warmup", "1", "--runs",
                "2", "--timed-runs", "1")
    # kineto's own log lines ("USDT: ... profiler_start", "ERROR: ... gpuGetDeviceCount failed" on a CPU) silenced
    assert "USDT" not in p.stderr and "gpuGetDeviceCount" not in p.stderr and "ERROR" not in p.stderr, p.stderr
    rec = json.loads((out / "profile.json").read_text())
    types = {t["op_type"] for t in rec["op_types"]}
    assert {"Conv2d", "BatchNorm2d", "ReLU", "Linear"} <= types
    convs = [n for n in rec["nodes"] if n["op_type"] == "Conv2d"]
    assert all(n["calls"] == 2 and n["kernel"].startswith("aten::") for n in convs)
    assert sum(n["percent"] for n in rec["nodes"]) == pytest.approx(100)
    names = {e["name"] for e in valid_trace(out / "trace.json")}
    assert any(n.startswith("module::layers.") for n in names)  # torch.profiler's own trace, passed through


def test_fp32_against_int8_the_convolutions_changed_kernel(convnet, tiny_dataset, tmp_path):
    run_cli("compile", "-q", "--model", convnet, "--backend", "onnxruntime", "--precision", "int8", "--data",
            tiny_dataset / "val", "--calib-images", "8", "--parity-images", "4", "--output", tmp_path / "c")
    int8 = next((tmp_path / "c").glob("*.int8.onnx"))
    # as accuracy control records the nodes it kept in float (compile --max-drop; its own tests
    # run it): the profile takes them from the artifact's compile record, the comparison marks them
    record = next((tmp_path / "c").glob("*.compile.json"))
    rec = json.loads(record.read_text())
    rec["accuracy_control"] = {**(rec.get("accuracy_control") or {}), "kept_in_float": ["conv3"]}
    record.write_text(json.dumps(rec))
    for name, model in (("fp32", convnet), ("int8", int8)):
        run_cli("profile", "-q", "--model", model, "--output", tmp_path / name, "--warmup", "1", "--runs", "3",
                "--timed-runs", "2")
    p = run_cli("report", tmp_path / "fp32", tmp_path / "int8", "--output", tmp_path / "cmp" / "c.html")
    r = json.loads((tmp_path / "cmp" / "c.json").read_text())
    rows = {row["node"]: row for row in r["rows"]}
    for conv in ("conv1", "conv_big", "conv3"):  # ORT's renamed nodes mapped back to the float graph's
        assert rows[conv]["a_kernels"] == ["CPU:Conv (NCHWc)"], rows[conv]
        assert "CPU:QLinearConv" in rows[conv]["b_kernels"] and "int8" in rows[conv]["b_precisions"]
        assert rows[conv]["why"] == ("kernel changed" if conv != "conv3" else "kept in float by accuracy control")
        assert rows[conv]["a_ms"] > 0 and rows[conv]["b_ms"] > 0
    assert rows["fc"]["op_type"] == "MatMul" and "CPU:QLinearMatMul" in rows["fc"]["b_kernels"]
    gained = [abs(row["gained_ms"]) for row in r["rows"]]
    assert gained == sorted(gained, reverse=True)
    assert "conv_big" in p.stdout and (tmp_path / "cmp" / "c.html").read_text().count('data-field="rows/') > 10
    assert json.loads((tmp_path / "int8" / "profile.json").read_text())["kept_in_float"] == ["conv3"]
    assert rows["conv3"]["kept_in_float"] and rows["conv3"]["why"] == "kept in float by accuracy control"
    assert not rows["conv_big"]["kept_in_float"]


def test_perf_profile_leaves_the_timed_figures_alone(convnet, tmp_path):
    args = ["perf", "-q", "--model", convnet, "--configs", "onnxruntime:fp32", "--batches", "1", "--duration", "1",
            "--warmup", "2", "--repeats", "3"]
    run_cli(*args, "--output", tmp_path / "plain")
    said = run_cli(*args, "--output", tmp_path / "prof", "--profile").stdout
    assert f"profiles: {tmp_path / 'prof' / 'profiles'}/" in said  # where they went (said nothing)
    plain = json.loads((tmp_path / "plain" / "perf.json").read_text())["rows"][0]
    prof = json.loads((tmp_path / "prof" / "perf.json").read_text())["rows"][0]
    assert "profile" not in plain and prof["profile"] == "profiles/onnxruntime-fp32-bs1/profile.json"
    # timed before any profiler ran: every cell's latencies were written before the first trace (the order
    # decides it; the figures only agree within this shared VM's noise, which reached 2.9x under load)
    timed = max(p.stat().st_mtime_ns for p in (tmp_path / "prof" / "latencies").glob("*.csv"))
    assert timed <= min(p.stat().st_mtime_ns for p in (tmp_path / "prof" / "profiles").glob("*/trace.json"))
    assert 0.2 < prof["throughput_compute"] / plain["throughput_compute"] < 5.0
    cell = json.loads((tmp_path / "prof" / prof["profile"]).read_text())
    assert cell["coverage"]["measured_ms"] == prof["latency_ms"]["mean"] and cell["nodes"][0]["source"] == "conv_big"
    assert cell["timed_runs"] == prof["iterations"]  # the runs the cell's mean is of (was 20: none were timed)
    # a perf folder given to `report` beside a profile: the line names its profiles (said nothing of them)
    p = run_cli("report", tmp_path / "prof" / "profiles" / "onnxruntime-fp32-bs1", tmp_path / "prof", check=False)
    assert "profiles/onnxruntime-fp32-bs1" in _one_line_2(p)


BAD = {"missing": "--model", "cann": "msprof", "batch0": "--batch-size", "output_is_model": "--model file",
       # each of these was a traceback, a message naming no flag, or a silent write before the fix
       "model_dir": "--model", "model_fifo": "--model", "output_file": "--output", "output_other_files": "perf.json",
       "data_file": "a file, not a folder", "data_no_bin": "clsbench preprocess", "huge_batch": "--batch-size",
       "arch_unknown": "--arch nonsense", "arch_on_onnx": "leave --arch out"}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_input_is_one_line_exit_2(convnet, tmp_path, case):
    model, out = str(convnet), tmp_path / "o"
    extra = {"cann": ["--backend", "cann"], "batch0": ["--batch-size", "0"], "huge_batch": ["--batch-size", "10000000"],
             "arch_unknown": ["--arch", "nonsense"], "arch_on_onnx": ["--arch", "resnet50"],
             "data_file": ["--data", model], "data_no_bin": ["--data", tmp_path / "imgs"]}.get(case, [])
    if case == "missing":
        model = str(tmp_path / "nope.onnx")
    elif case == "output_is_model":
        out = model
    elif case == "model_dir":
        model = str(tmp_path)
    elif case == "model_fifo":
        model = str(tmp_path / "fifo")
        os.mkfifo(model)
    elif case == "output_file":
        out.write_text("not a folder")
    elif case == "output_other_files":  # another command's folder: `clsbench report` would then hide its perf.json
        out.mkdir()
        (out / "perf.json").write_text("{}")
    elif case == "data_no_bin":
        (tmp_path / "imgs").mkdir()
        (tmp_path / "imgs" / "a.JPEG").write_bytes(b"")
    p = run_cli("profile", "--model", model, "--output", out, *extra, check=False)
    text = (p.stdout + p.stderr).strip()
    assert p.returncode == 2 and len(text.splitlines()) == 1 and "Traceback" not in text, text
    assert BAD[case] in text
    if case == "output_other_files":
        assert sorted(p.name for p in out.iterdir()) == ["perf.json"]


@pytest.fixture(scope="module")
def small_profile(convnet, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("small") / "p"
    run_cli("profile", "-q", "--model", convnet, "--output", out, "--warmup", "0", "--runs", "1", "--timed-runs", "1")
    return out


def _one_line_2(p) -> str:
    text = (p.stdout + p.stderr).strip()
    assert p.returncode == 2 and len(text.splitlines()) == 1 and "Traceback" not in text, text
    return text


def test_report_never_overwrites_a_profiles_own_files(small_profile, tmp_path):
    page = (small_profile / "report.html").read_text()
    # was written over A's report.html (only profile.json was protected)
    text = _one_line_2(run_cli("report", small_profile, small_profile, "--output", small_profile / "report.html",
                               check=False))
    assert "--output" in text and (small_profile / "report.html").read_text() == page
    assert not (small_profile / "report.json").exists()
    # a folder as --output: was "<tmp name>: Is a directory"
    assert "NAME.html" in _one_line_2(run_cli("report", small_profile, small_profile, "--output", tmp_path,
                                              check=False))
    # a missing B: was "cannot compare a profile folder with another kind of folder"
    assert "not found" in _one_line_2(run_cli("report", small_profile, tmp_path / "nope", check=False))


def test_report_refuses_two_models_or_two_batches(small_profile, tmp_path):
    other = tmp_path / "other"
    other.mkdir()
    rec = json.loads((small_profile / "profile.json").read_text())
    rec["plan"]["model"]["key"] = "resnet50:IMAGENET1K_V2"
    (other / "profile.json").write_text(json.dumps(rec))
    # was compared node by node, silently: "16× faster" between two different networks
    text = _one_line_2(run_cli("report", small_profile, other, "--output", tmp_path / "c.html", check=False))
    assert "resnet50" in text and "mnasnet1_0" in text and not (tmp_path / "c.html").exists()
    rec["plan"]["model"]["key"], rec["batch_size"] = "mnasnet1_0:IMAGENET1K_V1", 8
    (other / "profile.json").write_text(json.dumps(rec))
    # was "0.36× faster": B's batch of 8 against A's batch of 1, per batch
    text = _one_line_2(run_cli("report", small_profile, other, "--output", tmp_path / "c.html", check=False))
    assert "batch 1" in text and "batch 8" in text and "--batch-size" in text and not (tmp_path / "c.html").exists()


def tiny_graph(path: Path, batch="N") -> Path:
    """A foreign graph (no clsbench metadata, no node names): Conv, Relu, pooling, MatMul."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    w = numpy_helper.from_array(np.ones((4, 3, 3, 3), np.float32), "w")
    fc = numpy_helper.from_array(np.ones((4, 2), np.float32), "fc")
    nodes = [helper.make_node("Conv", ["x", "w"], ["c1"], pads=[1] * 4),
             helper.make_node("Relu", ["c1"], ["r1"]),
             helper.make_node("GlobalAveragePool", ["r1"], ["g"]),
             helper.make_node("Flatten", ["g"], ["f"]),
             helper.make_node("MatMul", ["f", "fc"], ["y"])]
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, 3, 8, 8])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [batch, 2])], [w, fc])
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)]), path)
    return path


def test_unnamed_nodes_map_to_their_output_tensor(tmp_path):
    """A foreign graph without node names: ORT calls them <op>_<index>; their source was ""
    (an activation fused into an unnamed Conv) or None, so two profiles could not match them."""
    from clsbench.measure.profile import graph_sources

    source = graph_sources(str(tiny_graph(tmp_path / "m.onnx")))
    assert source("r1_nchwc") == "c1" and source("MatMul_4") == "y" and source("Flatten_3") == "f"
    assert source("ReorderOutput") is None


def test_a_fixed_batch_says_the_batch_to_give(tmp_path):
    # was two lines: the plan's advice of --resize/--crop (flags profile has not), then an error naming no flag
    p = run_cli("profile", "--model", tiny_graph(tmp_path / "b4.onnx", batch=4), "--output", tmp_path / "p",
                check=False)
    assert "--batch-size 4" in _one_line_2(p)


class _Runs:
    batch_size = 1

    def __init__(self):
        self.calls = 0

    def run(self, x):
        self.calls += 1


@pytest.mark.parametrize("timed, runs", [(1, 10), (7, 3), (20, 10)])
def test_interleaved_timed_runs_are_exactly_timed_runs(timed, runs):
    from clsbench.measure.profile import ProfileOptions, _Timer

    t = _Timer(_Runs(), None, ProfileOptions(output="x", warmup=0, runs=runs, timed_runs=timed))
    for _ in range(runs):
        t.profiled_run(0.001)
        t.between()
    assert len(t.inter) == timed  # was ceil(timed / runs) after each: 10 for --timed-runs 1 --runs 10
    assert f"mean of {timed} un-profiled" in t.result()[2]


def test_torch_latency_is_before_and_after_and_never_in_exponent_form():
    """torch times the batch before and after its profile: the latency was the runs before
    alone, however far the ones after differ; and 4,170 ms was written 4.17e+03 ms."""
    from clsbench.measure.profile import ProfileOptions, _Timer
    from clsbench.report.profiles import coverage

    t = _Timer(_Runs(), None, ProfileOptions(output="x", warmup=0, runs=2, timed_runs=2))
    t.before, t.after = [4000.0, 4340.0], [400.0]
    latency, after, how, _, before = t.result()
    assert latency == pytest.approx(2913.3333) and after == 400.0 and before == 4170.0 and "1 after" in how
    cov = coverage([{"ms": 1000.0}], 1, latency, after, before_ms=before)
    assert cov["unsteady"] and "4,170 ms" in cov["text"] and "2,913 ms" in cov["text"] and "e+" not in cov["text"]
    assert not coverage([{"ms": 1000.0}], 1, 1000.0, 1050.0, before_ms=990.0)["unsteady"]


def test_fewer_tensors_than_the_batch_are_said_to_repeat(convnet, prep, tmp_path):
    out = tmp_path / "d"
    run_cli("profile", "-q", "--model", convnet, "--data", prep, "--batch-size", "16", "--output", out,
            "--warmup", "0", "--runs", "1", "--timed-runs", "1")
    assert json.loads((out / "profile.json").read_text())["input"].endswith("repeated to fill the batch of 16")


def test_float_tensors_for_a_uint8_model_say_what_to_type(convnet, prep, tmp_path):
    run_cli("compile", "-q", "--model", convnet, "--backend", "onnxruntime", "--precision", "fp32", "--uint8-input",
            "--output", tmp_path / "c")
    u8 = next((tmp_path / "c").glob("*.u8.onnx"))
    p = run_cli("profile", "--model", u8, "--data", prep, "--output", tmp_path / "p", check=False)
    text = _one_line_2(p)
    assert "--data" in text and "leave --data out" in text  # named neither the flag nor a way out


def _profile_record(nodes: list[tuple], precision: str) -> dict:
    """A profile record of (name, op_type, kernel, precision, ms, source) nodes, one run."""
    from clsbench.report.profiles import summarise

    events = [{"name": n, "op_type": op, "kernel": k, "precision": p, "ms": ms, "source": src}
              for n, op, k, p, ms, src in nodes]
    total = sum(e["ms"] for e in events)
    return {"plan": {"weights": "m.onnx", "model": {"key": "m"}, "target": {"backend": "onnxruntime",
                                                                            "precision": precision}},
            "batch_size": 1, "runs": 1, "nodes": summarise(events),
            "coverage": {"node_ms_per_run": total, "measured_ms": total}}


def test_comparison_says_which_side_fused_a_node():
    """ORT fuses an Add into the Conv before it in fp32 (its time is in the Conv) but runs it as
    a QLinearAdd in int8: the Add was "only in B", as if int8 had added work; the runtime's own
    ReorderOutput, with no float-graph node, was "gone in B (fused or folded away)"."""
    from clsbench.report.profiles import compare_records

    a = _profile_record([("conv_out_nchwc", "Conv", "CPU:Conv (NCHWc)", "fp32", 2.0, "conv"),
                         ("ReorderOutput", "ReorderOutput", "CPU:ReorderOutput", "fp32", 0.1, None)], "fp32")
    b = _profile_record([("conv_token_1", "QLinearConv", "CPU:QLinearConv", "int8", 1.5, "conv"),
                         ("add", "QLinearAdd", "CPU:QLinearAdd", "int8", 0.3, "add"),
                         ("Transpose", "Transpose", "CPU:Transpose", "int8", 0.2, None),
                         ("image/fq_output_0", "Subgraph", "jit_avx2", "int8", 0.1, "image")], "int8")
    why = {r["node"]: r["why"] for r in compare_records(a, b, 5.0)["rows"]}
    assert why["add"].startswith("fused into another node in A") and why["conv"] == "kernel changed"
    assert why["Transpose"].startswith("only in B") and why["ReorderOutput"].startswith("only in A")
    assert why["image"] == "added in B (quantize/dequantize)"  # OpenVINO's input FakeQuantize, in a Subgraph


def test_openvino_reorders_it_inserted_map_to_no_float_node():
    """OpenVINO's Reorder between precisions (`<a>_f32_u8_<b>`) fuses no layer of the model:
    from an IR its source was its own name less suffixes, so `report` called 19 of them "fused
    into another node in A" against the fp32 IR; its own layers keep theirs."""
    from datetime import timedelta
    from types import SimpleNamespace

    import openvino as ov

    from clsbench.measure.profile import _ov_run, base_name

    class Attr(str):
        def astype(self, _):
            return str(self)

    def info(name, node_type):
        return SimpleNamespace(status=ov.ProfilingInfo.Status.EXECUTED, real_time=timedelta(microseconds=500),
                               cpu_time=timedelta(microseconds=500), node_name=name, node_type=node_type,
                               exec_type="jit_avx2_I8")

    reorder = "/l3/Conv/WithoutBiases_f32_u8_/l6/Conv/WithoutBiases"
    rt_info = {"/l6/Conv/WithoutBiases": {"originalLayersNames": Attr("/l6/Conv/WithoutBiases,/l6/Relu"),
                                          "runtimePrecision": Attr("u8")},
               reorder: {"runtimePrecision": Attr("u8")}}
    events, trace = [], []
    _ov_run([info("/l6/Conv/WithoutBiases", "Convolution"), info(reorder, "Reorder")], rt_info, base_name,
            (events, trace), (0.0, 1000.0, 0))
    assert {e["name"]: e["source"] for e in events} == {"/l6/Conv/WithoutBiases": "/l6/Conv", reorder: None}
    assert events[0]["precision"] == "int8" and len(trace) == 3


def test_the_profiled_ort_session_does_not_spin_on_the_timed_runs(convnet, tmp_path, monkeypatch):
    """The profiled session's threads spun after each run (ORT's default) while the backend's
    un-profiled runs were timed right after it: on 2 cores those ran ~1.5x slower (measured:
    A alone 50-57 ms, after a spinning session 76-81 ms, after a non-spinning one 45-60 ms)."""
    import onnxruntime as ort

    from clsbench.measure.profile import profile_model

    made = []
    own = ort.InferenceSession

    def spy(path, so=None, *args, **kw):
        made.append((so.enable_profiling, so.get_session_config_entry("session.intra_op.allow_spinning")
                     if so is not None and so.enable_profiling else None))
        return own(path, so, *args, **kw)

    monkeypatch.setattr(ort, "InferenceSession", spy)
    profile_model(str(convnet), output=str(tmp_path / "p"), warmup=0, runs=1, timed_runs=1)
    assert (True, "0") in made
