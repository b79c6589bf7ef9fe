"""Accuracy-controlled int8 for ONNX Runtime (`compile --backend onnxruntime --precision int8
--max-drop POINTS`): what NNCF's quantize_with_accuracy_control does for OpenVINO, built on
ONNX Runtime's public quantize_static.

1. Quantize every node (QDQ), measure Top-1 on the labelled tuning images; within the
   bound: done.
2. Rank the compute nodes (Conv, Gemm, MatMul) by their measured sensitivity: run the float
   and the quantized model on tuning images with every candidate's output exposed, and take
   the relative error (noise power / signal power) each node *adds* — the error at its output
   minus the largest error already on its inputs. This covers the node's weights and the
   quantization of what it reads.
3. Keep the k most sensitive nodes in float (`nodes_to_exclude`), k = 1, 2, 4, … until the
   drop on the tuning images is within the bound, then bisect down to the smallest k that
   meets it. Calibration runs once (its ranges are cached between tries where this ONNX
   Runtime supports it), and so does the weights' per-channel quantization (their scales are
   given back as overrides). Every try is recorded.
"""
from __future__ import annotations

import inspect
import logging
import shutil
from pathlib import Path

import numpy as np

log = logging.getLogger("clsbench")
CANDIDATES = ("Conv", "ConvTranspose", "Gemm", "MatMul")


def name_nodes(model_path: str) -> list[str]:
    """Give every unnamed node a name (nodes_to_exclude goes by name); returns the candidates'
    names in graph order."""
    import onnx

    m = onnx.load(model_path)
    taken = {n.name for n in m.graph.node if n.name}
    changed = False
    for i, n in enumerate(m.graph.node):
        if not n.name:
            n.name = f"{n.op_type}_{i}"
            while n.name in taken:
                n.name += "_"
            taken.add(n.name)
            changed = True
    if changed:
        onnx.save(m, model_path)
    return [n.name for n in m.graph.node if n.op_type in CANDIDATES]


def _session(path: str):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.log_severity_level = 3
    return ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])


def top1(path: str, x: np.ndarray, y: np.ndarray) -> float:
    """Top-1 in percent, image by image (batch 1 runs whatever the model's batch axis)."""
    s = _session(path)
    name = s.get_inputs()[0].name
    logits = np.concatenate([s.run(None, {name: x[i:i + 1]})[0] for i in range(len(x))])
    return float((logits.argmax(1) == y).mean() * 100)


def _exposing(path: str, tensors: list[str], dst: str) -> str:
    """A copy of the model with `tensors` added as graph outputs."""
    import onnx
    from onnx import TensorProto, helper

    m = onnx.load(path)
    have = {o.name for o in m.graph.output}
    for t in tensors:
        if t not in have:
            m.graph.output.append(helper.make_tensor_value_info(t, TensorProto.FLOAT, None))
    onnx.save(m, dst)
    return dst


def _tensors(path: str) -> set[str]:
    import onnx

    return {o for n in onnx.load(path, load_external_data=False).graph.node for o in n.output}


def _in_both(consumers: dict, t: str, there: set[str]) -> str | None:
    """`t`, or where its value lives in the quantized graph: the quantizer folds a Relu/Clip
    that follows a node into it, and the node's output then takes the activation's name."""
    while t not in there:
        nxt = consumers.get(t, [])
        if len(nxt) != 1 or nxt[0].op_type not in ("Relu", "Clip"):
            return None
        t = nxt[0].output[0]
    return t


def sensitivity(float_model: str, qdq_model: str, x: np.ndarray, work: Path) -> list[tuple[str, float]]:
    """(node, added relative error) for every candidate node, most sensitive first; a node
    whose output cannot be found in the quantized graph ranks last."""
    import onnx

    g = onnx.load(float_model).graph
    nodes = [n for n in g.node if n.op_type in CANDIDATES]
    there = _tensors(qdq_model) & {o for n in g.node for o in n.output}  # activations, in both graphs
    consumers: dict = {}  # tensor -> the nodes reading it, built once for every lookup below
    for n in g.node:
        for i in n.input:
            consumers.setdefault(i, []).append(n)
    where = {t: _in_both(consumers, t, there) for n in nodes for t in (n.output[0], *n.input)}
    tensors = sorted({w for w in where.values() if w})
    fs = _session(_exposing(float_model, tensors, str(work / "float.exposed.onnx")))
    qs = _session(_exposing(qdq_model, tensors, str(work / "qdq.exposed.onnx")))
    noise, power = np.zeros(len(tensors)), np.zeros(len(tensors))
    for i in range(len(x)):  # image by image: every activation of a whole batch would not fit
        feed = {fs.get_inputs()[0].name: x[i:i + 1]}
        for j, (a, b) in enumerate(zip(qs.run(tensors, feed), fs.run(tensors, feed))):
            noise[j] += np.sum((a - b).astype(np.float64) ** 2)
            power[j] += np.sum(b.astype(np.float64) ** 2)
    err = dict(zip(tensors, noise / np.maximum(power, 1e-30)))

    def e(t):
        return err.get(where.get(t), 0.0)

    added = [(n.name, e(n.output[0]) - max([e(i) for i in n.input], default=0.0) if where[n.output[0]] else -1.0)
             for n in nodes]
    return sorted(added, key=lambda a: -a[1])


def quantizer(pre: str, calib: np.ndarray, work: Path, *, method: str = "MinMax", per_channel: bool = True):
    """quantize(dst, exclude): clsbench's QDQ int8 (u8 activations, s8 weights, per-channel,
    MinMax unless told otherwise: benchmarks/quant.py measured the alternatives), with
    calibration ranges computed once and reused when this ONNX Runtime can cache them."""
    from onnxruntime.quantization import (CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType,
                                          quantize_static)

    import onnx

    name = onnx.load(pre, load_external_data=False).graph.input[0].name
    import hashlib

    key = hashlib.sha256(np.ascontiguousarray(calib).tobytes()).hexdigest()[:16]  # ranges are per data and method
    cache = work / f"calibration-{method}-{key}.json"
    can_cache = "calibration_cache_path" in inspect.signature(quantize_static).parameters

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.it = iter(calib[i:i + 1] for i in range(len(calib)))

        def get_next(self):
            x = next(self.it, None)
            return None if x is None else {name: x}

    first: list[str] = []  # the first model with every node quantized ...
    weights: dict = {}  # ... whose weight scales are given back to ORT on every later try

    def quantize(dst: str, exclude: list[str]) -> None:
        kw = {"calibration_cache_path": str(cache)} if can_cache else {}
        if first and not weights:
            weights.update(weight_overrides(first[0]))
        if weights:
            kw["extra_options"] = {"TensorQuantOverrides": weights}
        quantize_static(pre, dst, Reader(), quant_format=QuantFormat.QDQ, per_channel=per_channel,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                        calibrate_method=getattr(CalibrationMethod, method), nodes_to_exclude=list(exclude), **kw)
        if not first and not exclude:
            first.append(dst)

    return quantize


def weight_overrides(qdq_model: str) -> dict:
    """Every int8 weight's scale and zero point (per channel) in a QDQ model, in the form of
    quantize_static's TensorQuantOverrides. A weight's scales depend on the weight alone, yet
    ORT computes them channel by channel in Python on every call: given back, they make each
    later try of the search 2.0 -> 0.95 s (MnasNet, the 2-core VM, a one-off script) and the same model, initializer
    for initializer (tests/test_accuracy_control.py checks it against ORT's own)."""
    import onnx
    from onnx import TensorProto, numpy_helper

    g = onnx.load(qdq_model).graph
    init = {i.name: i for i in g.initializer}
    out = {}
    for n in g.node:
        q = init.get(n.input[0]) if n.op_type == "DequantizeLinear" and len(n.input) == 3 else None
        if q is None or q.data_type != TensorProto.INT8 or not n.input[0].endswith("_quantized"):
            continue  # activations (u8) and biases (s32) are not weights; an unknown name is left to ORT
        scale, zero = (numpy_helper.to_array(init[t]) for t in n.input[1:3])
        axis = {a.name: a.i for a in n.attribute}.get("axis", 1)
        keep = {"axis": axis} if scale.ndim else {}
        out[n.input[0][:-len("_quantized")]] = [{"scale": s, "zero_point": z, **keep}
                                                for s, z in zip(scale.ravel(), zero.ravel())]
    return out


def control(pre: str, dst: str, calib: np.ndarray, tune, max_drop: float, work: Path) -> dict:
    """Quantize `pre` to `dst` keeping the fewest most-sensitive nodes in float that bring
    the Top-1 drop on the tuning images (x, y, names) within `max_drop` points."""
    x, y = tune[0], np.asarray(tune[1])
    candidates = name_nodes(pre)
    quantize = quantizer(pre, calib, work)
    fp32 = top1(pre, x, y)
    tries: list[dict] = []

    def attempt(k: int, order: list[str]) -> float:
        path = str(work / f"try-{k}.onnx")
        quantize(path, order[:k])
        drop = fp32 - top1(path, x, y)
        tries.append({"kept_in_float": k, "tuning_drop": round(drop, 4)})
        log.info(f"      int8 with {k} node(s) kept in float: Top-1 drop {drop:.2f} points on {len(y)} tuning images")
        return drop

    order: list[str] = []
    best = 0
    if attempt(0, order) > max_drop:
        ranked = sensitivity(pre, str(work / "try-0.onnx"), x[:32], work)
        order = [n for n, _ in ranked]
        best = _search(lambda k: attempt(k, order) <= max_drop, len(order))
    shutil.copyfile(work / f"try-{best}.onnx", dst)
    final = next(t for t in reversed(tries) if t["kept_in_float"] == best)
    return {"kept_in_float": order[:best], "candidates": len(candidates), "tuning_fp32_top1": fp32,
            "tries": tries, "bound_met_on_tuning": final["tuning_drop"] <= max_drop + 1e-9,
            "cached_calibration": any(work.glob("calibration-*.json"))}


def _search(meets, n: int) -> int:
    """The smallest k in 1..n with meets(k), assuming more kept nodes never hurt: doubling,
    then bisection; n (everything kept) when even that does not meet it."""
    if n == 0:
        return 0
    lo, k = 0, 1
    while k < n and not meets(k):
        lo, k = k, 2 * k
    if k >= n:
        if not meets(n):
            return n
        k = n
    hi = k
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if meets(mid):
            hi = mid
        else:
            lo = mid
    return hi
