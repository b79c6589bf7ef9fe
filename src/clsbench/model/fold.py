"""The input normalization folded into the model: uint8 crops in, logits out.

`fold_normalization` prepends to an exported graph the float32 operations the exact path runs
on the CPU (`preprocess.normalize_batch`: Cast, /255, -mean, /std, with [1,3,1,1] constants,
in that order), so a runtime takes the compact store's uint8 crops directly (150 KB per
224x224 image instead of 602 KB, and the normalization runs inside the runtime's threads).
The model records the mean and std it folded in; clsbench refuses to feed it crops that were
made for another preset, and refuses .bin files (already normalized) outright.
"""
from __future__ import annotations

import json

import numpy as np

from .. import ClsbenchError

FOLDED_KEY = "folded_normalization"


def fold_normalization(src: str, dst: str, pp) -> dict:
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    from .files import read_metadata, set_onnx_metadata

    m = onnx.load(src)
    g = m.graph
    if len(g.input) != 1 or g.input[0].type.tensor_type.elem_type != TensorProto.FLOAT:
        raise ClsbenchError(f"{src}: folding the normalization needs one float32 input")
    inp = g.input[0]
    inner = inp.name + "_normalized"
    for node in g.node:
        node.input[:] = [inner if x == inp.name else x for x in node.input]
    consts = {"clsbench_255": np.full((1, 3, 1, 1), 255.0, np.float32),
              "clsbench_mean": np.asarray(pp.mean, np.float32).reshape(1, 3, 1, 1),
              "clsbench_std": np.asarray(pp.std, np.float32).reshape(1, 3, 1, 1)}
    g.initializer.extend(numpy_helper.from_array(v, k) for k, v in consts.items())
    pre = [helper.make_node("Cast", [inp.name], ["clsbench_f32"], to=TensorProto.FLOAT),
           helper.make_node("Div", ["clsbench_f32", "clsbench_255"], ["clsbench_01"]),
           helper.make_node("Sub", ["clsbench_01", "clsbench_mean"], ["clsbench_centred"]),
           helper.make_node("Div", ["clsbench_centred", "clsbench_std"], [inner])]
    nodes = pre + list(g.node)
    del g.node[:]
    g.node.extend(nodes)
    inp.type.tensor_type.elem_type = TensorProto.UINT8
    set_onnx_metadata(m, {**read_metadata(src, "onnx"), FOLDED_KEY: json.dumps({"mean": list(pp.mean),
                                                                                "std": list(pp.std)})})
    onnx.checker.check_model(m)
    onnx.save(m, dst)
    return {"mean": list(pp.mean), "std": list(pp.std)}


def folded(meta: dict) -> dict | None:
    """The mean/std a model folded in, from its metadata; None for a float-input model. The
    metadata is untrusted: anything but {"mean": [3 numbers], "std": [3 numbers], ...} is an error."""
    if FOLDED_KEY not in meta:
        return None
    try:
        f = json.loads(meta[FOLDED_KEY])
        ok = isinstance(f, dict) and all(isinstance(f.get(k), list) and len(f[k]) == 3 and
                                         all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in f[k])
                                         for k in ("mean", "std"))
    except ValueError:
        ok = False
    if not ok:
        raise ClsbenchError(f"model metadata clsbench.{FOLDED_KEY}: not the mean and std a folded model records "
                            f"({meta[FOLDED_KEY]!r:.60})")
    return f
