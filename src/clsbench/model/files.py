"""What a model file is, told from its content: a PyTorch state dict, an ONNX model or an
OpenVINO IR; the identity clsbench recorded inside it; and the safety checks an untrusted
ONNX file must pass before any runtime reads it.
"""
from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from pathlib import Path

from .. import ClsbenchError

KINDS = ("pth", "onnx", "ir")
META_PREFIX = "clsbench."


def kind(path: str | os.PathLike) -> str:
    """'pth', 'onnx' or 'ir', from the bytes (the extension may lie)."""
    from .._io import regular_file

    path = regular_file(str(path), "model file")
    with open(path, "rb") as f:
        head = f.read(512)
    if head.startswith(b"PK\x03\x04") or head[:1] == b"\x80":  # torch.save: zip, or a bare pickle
        return "pth"
    text = head.lstrip()
    if text.startswith(b"<?xml") or text.startswith(b"<net"):
        if b"<net" in head or _xml_has_net(path):
            return "ir"
    if _parses_as_onnx(path):
        return "onnx"
    raise ClsbenchError(f"{path}: not a model file clsbench knows (a PyTorch state dict .pth, "
                        f"an ONNX model, or an OpenVINO IR .xml)")


def _xml_has_net(path: str) -> bool:
    with open(path, "rb") as f:
        return b"<net " in f.read(4096)


def _parses_as_onnx(path: str) -> bool:
    facts = onnx_facts(path)
    return facts is not None and facts.nodes > 0


@dataclass(frozen=True)
class OnnxFacts:
    """What clsbench reads from an ONNX file's graph (external data not loaded)."""
    metadata: dict  # clsbench.* metadata_props, prefix removed
    ops: frozenset  # operator types
    nodes: int
    inputs: tuple  # (name, dims) of each graph input that is not an initializer; None: unknown dim
    external: tuple  # (tensor name, location) of each tensor kept in external data


def onnx_facts(path: str | os.PathLike) -> OnnxFacts | None:
    """One parse per file version: a run asked up to 24 questions of the same file (kind,
    identity, precision, shape, external data), each parsing it again — 0.7 s of a 2.4 s run
    on the proxy's 17 MB, minutes for a 500 MB VGG. Keyed by the file's fingerprint
    (_io.file_fingerprint: path, size, mtime_ns), so a file replaced or rewritten is read
    again; None when it does not parse as ONNX."""
    from .._io import file_fingerprint

    return _facts_of(tuple(file_fingerprint(path)))


def parsed_onnx(path: str | os.PathLike) -> OnnxFacts:
    """onnx_facts for a file that must be ONNX: a one-line error when it does not parse."""
    facts = onnx_facts(path)
    if facts is None:
        raise ClsbenchError(f"{path}: does not parse as an ONNX model")
    return facts


@functools.lru_cache(maxsize=16)
def _facts_of(version: tuple) -> OnnxFacts | None:
    return _read_facts(version[0])


def _read_facts(path: str) -> OnnxFacts | None:
    import onnx
    from onnx.external_data_helper import _get_all_tensors

    try:
        m = onnx.load(path, load_external_data=False)
    except Exception:  # DecodeError and friends: not ONNX
        return None
    inits = {i.name for i in m.graph.initializer}
    inputs = tuple((i.name, tuple(d.dim_value if d.HasField("dim_value") else None
                                  for d in i.type.tensor_type.shape.dim))
                   for i in m.graph.input if i.name not in inits)
    external = tuple((t.name, next((e.value for e in t.external_data if e.key == "location"), ""))
                     for t in _get_all_tensors(m) if t.data_location == onnx.TensorProto.EXTERNAL)
    return OnnxFacts({p.key[len(META_PREFIX):]: p.value for p in m.metadata_props if p.key.startswith(META_PREFIX)},
                     frozenset(n.op_type for n in m.graph.node), len(m.graph.node), inputs, external)


def read_metadata(path: str | os.PathLike, file_kind: str | None = None) -> dict:
    """The identity clsbench wrote into a model (ONNX metadata_props, IR rt_info)."""
    file_kind = file_kind or kind(path)
    if file_kind == "onnx":
        return dict(parsed_onnx(path).metadata)
    if file_kind == "ir":
        model = read_ir(path)
        if not model.has_rt_info(["clsbench"]):
            return {}
        info = model.get_rt_info()["clsbench"]  # a dict of str, or of OVAny in some releases
        return {k: v if isinstance(v, str) else v.astype(str) for k, v in dict(info).items()}
    return {}


def read_ir(path: str | os.PathLike):
    """An OpenVINO IR read (its weights checked first, check_ir_weights); what OpenVINO cannot
    read — weights missing, truncated or not this graph's — is a one-line error, not its
    C++ exception."""
    import openvino as ov

    check_ir_weights(path)
    try:
        return ov.Core().read_model(str(path))
    except Exception as e:  # noqa: BLE001 - OpenVINO raises RuntimeError subclasses of its own
        weights = Path(path).with_suffix(".bin")
        why = (f"its weights {weights.name} are missing" if not os.path.exists(weights) else
               f"its weights {weights.name} do not hold what the graph needs (truncated, or of another model?)"
               if "weights" in str(e).lower() or "bin" in str(e).lower() or "size" in str(e).lower() else
               str(e).strip().splitlines()[-1][:200])
        raise ClsbenchError(f"{path}: OpenVINO cannot read this IR: {why}") from None


def set_onnx_metadata(model, values: dict) -> None:
    """Write (or replace) clsbench.* entries of an onnx.ModelProto's metadata_props."""
    keep = [p for p in model.metadata_props if not (p.key[len(META_PREFIX):] in values
                                                    and p.key.startswith(META_PREFIX))]
    del model.metadata_props[:]
    model.metadata_props.extend(keep)
    for k, v in values.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = META_PREFIX + k, str(v)


def stored_precision(path: str | os.PathLike, file_kind: str) -> str | None:
    """The precision a file fixes: 'int8' for a quantized model, the recorded precision of a
    clsbench artifact, or None (a float model that runs at any float precision)."""
    recorded = read_metadata(path, file_kind).get("precision")
    if file_kind == "onnx":
        if parsed_onnx(path).ops & {"QuantizeLinear", "QLinearConv", "DequantizeLinear"}:
            return "int8"
    elif file_kind == "ir":
        if any(op.get_type_name() == "FakeQuantize" for op in read_ir(path).get_ops()):
            return "int8"
    return recorded


def check_external_data(path: str | os.PathLike) -> None:
    """An ONNX model is untrusted input: every external-data location must stay inside the
    model's folder (no absolute paths, no '..', no symlink leading out), checked before
    any runtime opens those files."""
    path = Path(path)
    base = path.resolve().parent
    for name, loc in parsed_onnx(path).external:
        target = (base / loc).resolve()
        if not loc or os.path.isabs(loc) or ".." in Path(loc).parts or \
                (target != base and base not in target.parents):
            raise ClsbenchError(f"{path}: tensor {name!r} points its external data at {loc!r}, "
                                f"outside the model's folder {base}; refused (untrusted model)")
        if not target.is_file():
            raise ClsbenchError(f"{path}: external data file {loc!r} of tensor {name!r} is missing")


def check_ir_weights(path: str | os.PathLike) -> None:
    """An OpenVINO IR is untrusted as an ONNX is: its weights file (`<stem>.bin` beside the
    .xml, which OpenVINO reads) must be a regular file inside the model's folder, not a
    symlink leading out of it; checked before OpenVINO opens it."""
    path = Path(path)
    base = path.resolve().parent
    weights = path.with_suffix(".bin")
    if not os.path.lexists(weights):
        return  # OpenVINO names what is missing
    target = weights.resolve()
    if target.parent != base and base not in target.parents:
        raise ClsbenchError(f"{path}: its weights {weights.name} lead to {target}, outside the model's folder "
                            f"{base}; refused (untrusted model)")
    from .._io import regular_file

    regular_file(target, "model weights file")


def identity_of(path: str | os.PathLike, file_kind: str | None = None):
    """(ModelSpec or None, Preprocessing or None) recorded in a model file by clsbench."""
    import json

    from .table import Preprocessing, get_model

    file_kind = file_kind or kind(path)
    if file_kind == "pth":
        return None, None
    meta = read_metadata(path, file_kind)  # untrusted: a file from elsewhere may say anything
    where = f"{path}: metadata {META_PREFIX}"
    pp = None
    if "preprocessing" in meta:
        try:
            raw = json.loads(meta["preprocessing"])
        except ValueError as e:
            raise ClsbenchError(f"{where}preprocessing is not JSON ({e})") from None
        pp = Preprocessing.from_dict(raw, f"{where}preprocessing")
    if "weights_tag" not in meta:
        return None, pp
    arch = meta.get("architecture")
    if not arch:
        raise ClsbenchError(f"{where}weights_tag {meta['weights_tag']!r} without {META_PREFIX}architecture")
    if arch.startswith("timm:"):  # the file says all there is: no timm needed
        from .table import ModelSpec

        classes = meta.get("num_classes", "1000")
        if not classes.isdigit() or not 1 <= int(classes) <= 1_000_000:
            raise ClsbenchError(f"{where}num_classes {classes!r:.40} is not a class count")
        if pp is None:
            raise ClsbenchError(f"{where}preprocessing missing for the timm model {arch}")
        return ModelSpec(arch, meta["weights_tag"], pp, None, None, int(classes)), pp
    try:
        return get_model(f"{arch}:{meta['weights_tag']}"), pp
    except ClsbenchError as e:
        raise ClsbenchError(f"{where}architecture/weights_tag: {e}") from None
