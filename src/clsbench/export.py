"""pth -> ONNX (formats.md §1), with weight-file identification and a parity check.

Needs the `export` extra (torch, torchvision); nothing else in clsbench imports torch.
Weights are read with torch.load(weights_only=True): a .pth carrying a pickle payload is
refused, never executed.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import ClsbenchError
from ._io import atomic_write_json
from .models import ModelSpec, get_model

FP32_MAX_REL_ERROR = 1e-5


def _torch():
    try:
        import torch
        import torchvision
    except ImportError as e:
        raise ClsbenchError(f"export needs PyTorch: pip install 'clsbench[export]' ({e})") from None
    return torch, torchvision


# ---------------------------------------------------------------- weight files

@dataclass
class WeightsIdentity:
    path: str
    md5: str
    sha256: str
    official: bool
    verdict: str


def identify_weights(path: str | os.PathLike, spec: ModelSpec) -> WeightsIdentity:
    """Is this torchvision's official file? A name that claims so with another digest is an error."""
    path = str(path)
    md5, sha = hashlib.md5(), hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            md5.update(chunk)
            sha.update(chunk)
    md5_hex, sha_hex = md5.hexdigest(), sha.hexdigest()
    name = os.path.basename(path)
    off = spec.official
    if off and md5_hex == off.md5:
        return WeightsIdentity(path, md5_hex, sha_hex, True,
                               f"official torchvision weights {off.filename} (MD5 {md5_hex})")
    if off and name == off.filename:
        raise ClsbenchError(f"{path}: named like the official {spec.name} weights but its MD5 is "
                            f"{md5_hex}, not {off.md5}: corrupt or substituted file")
    m = re.search(r"-([0-9a-f]{8,64})\.pth$", name)
    if m and not sha_hex.startswith(m.group(1)):
        raise ClsbenchError(f"{path}: the name carries SHA-256 prefix {m.group(1)} (torchvision's "
                            f"convention) but the file's SHA-256 is {sha_hex[:len(m.group(1))]}...: "
                            f"corrupt or substituted file")
    return WeightsIdentity(path, md5_hex, sha_hex, False,
                           f"not the official weights (MD5 {md5_hex}); accuracy is that of this file")


def load_state_dict(path: str | os.PathLike) -> dict:
    torch, _ = _torch()
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise ClsbenchError(f"{path}: weights file not found") from None
    except Exception as e:  # UnpicklingError for payloads, RuntimeError for truncation
        raise ClsbenchError(f"{path}: not a loadable weights-only state dict "
                            f"({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''})") from None
    # common checkpoint wrappers
    for key in ("state_dict", "model"):
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
    if not isinstance(obj, dict) or not all(hasattr(v, "shape") for v in obj.values()):
        raise ClsbenchError(f"{path}: holds a {type(obj).__name__}, not a state dict of tensors")
    if obj and all(k.startswith("module.") for k in obj):  # saved from DataParallel
        obj = {k[len("module."):]: v for k, v in obj.items()}
    return obj


def build_model(spec: ModelSpec, state_dict: dict | None = None, source: str = "weights"):
    torch, torchvision = _torch()
    model = getattr(torchvision.models, spec.name)(weights=None, num_classes=spec.num_classes)
    if state_dict is not None:
        want = model.state_dict()
        missing = [k for k in want if k not in state_dict]
        unexpected = [k for k in state_dict if k not in want]
        shapes = [f"{k}: file {tuple(state_dict[k].shape)} vs model {tuple(want[k].shape)}"
                  for k in want if k in state_dict and tuple(state_dict[k].shape) != tuple(want[k].shape)]
        if missing or unexpected or shapes:
            def few(xs):
                return ", ".join(xs[:5]) + (f" ... ({len(xs)} in all)" if len(xs) > 5 else "")
            parts = []
            if missing:
                parts.append(f"missing keys: {few(missing)}")
            if unexpected:
                parts.append(f"unexpected keys: {few(unexpected)}")
            if shapes:
                parts.append(f"mis-shaped tensors: {few(shapes)}")
            raise ClsbenchError(f"{source}: does not fit torchvision {spec.name} "
                                f"(weights for another architecture?); " + "; ".join(parts))
        if getattr(state_dict, "_metadata", None) is None:
            # torchvision's MNASNet reads its layout version from the state dict's metadata;
            # a plain dict (re-keyed, or saved without it) takes the current model's
            from collections import OrderedDict

            state_dict = OrderedDict(state_dict)
            state_dict._metadata = want._metadata
        model.load_state_dict(state_dict, strict=True)
    return model.eval()


# ---------------------------------------------------------------- parity

def parity(reference: np.ndarray, candidate: np.ndarray) -> dict:
    """Relative L2 error of the logits and top-1 / top-5 agreement of candidate vs reference."""
    ref, cand = reference.astype(np.float64), candidate.astype(np.float64)
    rel = float(np.linalg.norm(cand - ref) / max(np.linalg.norm(ref), 1e-30))
    top1 = float(np.mean(ref.argmax(1) == cand.argmax(1)))
    r5 = np.argsort(-ref, axis=1, kind="stable")[:, :5]
    c5 = np.argsort(-cand, axis=1, kind="stable")[:, :5]
    overlap = float(np.mean([len(set(a) & set(b)) / 5 for a, b in zip(r5, c5)]))
    same5 = float(np.mean([set(a) == set(b) for a, b in zip(r5, c5)]))
    return {"samples": int(ref.shape[0]), "rel_l2_error": rel, "max_abs_error": float(np.abs(cand - ref).max()),
            "top1_agreement": top1, "top5_set_agreement": same5, "top5_overlap": overlap,
            "reference_logit_std": float(ref.std())}


def parity_inputs(spec: ModelSpec, images: str | None, n: int = 16, seed: int = 0) -> tuple[np.ndarray, str]:
    """Real photos preprocessed with the model's preset when a folder is given."""
    if images:
        from .preprocess import load_folder

        batch, skipped = load_folder(images, spec.preprocessing, 0, n)
        note = f" ({skipped} unreadable skipped)" if skipped else ""
        return batch, f"{len(batch)} images from {os.path.abspath(images)}{note}"
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((n, 3, spec.preprocessing.crop, spec.preprocessing.crop), dtype=np.float32),
            f"{n} synthetic normal samples (seed {seed}); pass --parity-images for real photos")


# ---------------------------------------------------------------- export

def export_onnx(weights: str, output: str, *, model: str = "mnasnet1_0", opset: int = 11,
                parity_images: str | None = None, parity_batch: int = 16,
                check: bool = True) -> dict:
    """Export, check the graph, compare with PyTorch eager; writes `<output>.parity.json`."""
    import onnx

    torch, _ = _torch()
    spec = get_model(model)
    ident = identify_weights(weights, spec) if os.path.isfile(weights) else None
    if ident is None:
        raise ClsbenchError(f"{weights}: weights file not found")
    net = build_model(spec, load_state_dict(weights), source=weights)
    size = spec.preprocessing.crop
    Path(output).parent.mkdir(parents=True, exist_ok=True)
    tmp = f"{output}.tmp"
    with warnings.catch_warnings():
        # torch 2.9+ defaults to the dynamo exporter, but asked for opset 11 (the guide's,
        # ATC's) it fails to down-convert MnasNet (ReduceMean axes) and falls back to opset 18
        # (measured with torch 2.14.1); the TorchScript exporter writes opset 11 directly
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(net, torch.zeros(1, 3, size, size), tmp, input_names=["image"],
                          output_names=["class"], opset_version=opset, dynamo=False,
                          dynamic_axes={"image": {0: "-1"}, "class": {0: "-1"}})
    try:
        onnx.checker.check_model(onnx.load(tmp), full_check=True)
    except Exception as e:
        os.unlink(tmp)
        raise ClsbenchError(f"{output}: exported graph fails onnx.checker ({e})") from None
    os.replace(tmp, output)

    x, source = parity_inputs(spec, parity_images, parity_batch)
    with torch.no_grad():
        ref = net(torch.from_numpy(x)).numpy()
    from .backends.onnxruntime import OnnxRuntimeBackend

    got = OnnxRuntimeBackend(output, batch_size=x.shape[0]).run(x)
    record = {"model": spec.name, "onnx": os.path.abspath(output), "opset": opset,
              "input": "image", "output": "class", "dynamic_batch": True,
              "weights": {"path": os.path.abspath(weights), "md5": ident.md5, "sha256": ident.sha256,
                          "official": ident.official, "verdict": ident.verdict},
              "parity": {"reference": f"torch {torch.__version__} eager fp32",
                         "candidate": "onnxruntime fp32 CPU", "inputs": source, **parity(ref, got)},
              "thresholds": {"rel_l2_error": FP32_MAX_REL_ERROR, "top1_agreement": 1.0}}
    p = record["parity"]
    record["passed"] = p["rel_l2_error"] <= FP32_MAX_REL_ERROR and p["top1_agreement"] == 1.0
    atomic_write_json(parity_path(output), record)
    if check and not record["passed"]:
        raise ClsbenchError(f"{output}: ONNX output differs from PyTorch (rel. L2 error "
                            f"{p['rel_l2_error']:.2e}, top-1 agreement {p['top1_agreement']:.1%}); "
                            f"see {parity_path(output)}")
    return record


def parity_path(onnx_path: str) -> str:
    return str(Path(onnx_path).with_suffix("")) + ".parity.json"


def read_parity(onnx_path: str) -> dict | None:
    try:
        return json.loads(Path(parity_path(onnx_path)).read_text())
    except (OSError, ValueError):
        return None
