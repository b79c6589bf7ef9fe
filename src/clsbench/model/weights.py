"""PyTorch weights files: which weights a .pth is (identify_weights), loading it safely and
building the torchvision/timm architecture it belongs to (build_model).

Needs the `export` extra (torch, torchvision), imported lazily (`_torch`). Weights are read
with torch.load(weights_only=True): a .pth carrying a pickle payload is refused, never executed.
"""
from __future__ import annotations

import contextlib
import hashlib
import io
import json
import logging
import os
import re
import shutil
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .. import ClsbenchError
from .._io import atomic_write_json
from .table import ModelSpec, get_model

log = logging.getLogger("clsbench")

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
    # the guide's file is known by its MD5 (formats.md §1); torchvision's files by the SHA-256
    # prefix their name carries, which torchvision itself checks on download
    if off and ((off.md5 and md5_hex == off.md5) or
                (not off.md5 and name == off.filename and off.sha256_prefix and sha_hex.startswith(off.sha256_prefix))):
        return WeightsIdentity(path, md5_hex, sha_hex, True,
                               f"official torchvision weights {off.filename} ({spec.key}; MD5 {md5_hex})")
    if off and name == off.filename:
        want = f"MD5 {off.md5}" if off.md5 else f"a SHA-256 starting {off.sha256_prefix}"
        raise ClsbenchError(f"{path}: named like the official {spec.key} weights but its digest is not "
                            f"{want}: corrupt or substituted file")
    m = re.search(r"-([0-9a-f]{8,64})\.pth$", name)
    if m and not sha_hex.startswith(m.group(1)):
        raise ClsbenchError(f"{path}: the name carries SHA-256 prefix {m.group(1)} (torchvision's "
                            f"convention) but the file's SHA-256 is {sha_hex[:len(m.group(1))]}...: "
                            f"corrupt or substituted file")
    return WeightsIdentity(path, md5_hex, sha_hex, False,
                           f"not the official weights (MD5 {md5_hex}); accuracy is that of this file")


def _why_not_loadable(path, e: Exception) -> str:
    """What a file that torch.load(weights_only=True) refused is, in clsbench's words. Torch's
    own message advises weights_only=False, which would run any code inside: never passed on."""
    msg = str(e)
    if type(e).__name__ == "UnpicklingError":
        found = re.search(r"GLOBAL ([\w.]+)", msg)
        name = found.group(1) if found else "?"
        if re.match(r"(torchvision|torch\.nn|timm)\.", name) or name.rsplit(".", 1)[-1][:1].isupper():
            return (f"holds a whole pickled model ({name}), not a state dict; load it where it was "
                    f"made and save model.state_dict() instead")
        return (f"holds pickled code ({name}) besides tensors; refused, and never run "
                f"(clsbench loads weights only)")
    if "zip archive" in msg or "central directory" in msg:
        return "a truncated or corrupt PyTorch file (its zip archive is incomplete)"
    return "not a PyTorch weights file (torch.save of a state dict)"


def check_archive(path: str) -> None:
    """A .pth is a zip that torch.save writes uncompressed: an archive that declares far more
    bytes than it holds (a zip bomb) is refused from its directory, before anything is inflated."""
    import zipfile

    if not zipfile.is_zipfile(path):
        return
    try:
        with zipfile.ZipFile(path) as z:
            declared = sum(i.file_size for i in z.infolist())
    except (zipfile.BadZipFile, OSError, ValueError):
        return  # torch.load names what is wrong with it
    size = os.path.getsize(path)
    if declared > 4 * size + (64 << 20):
        raise ClsbenchError(f"{path}: the archive declares {declared:,} bytes inside {size:,} (torch.save stores "
                            f"tensors uncompressed): refused unread, a compressed bomb or not a state dict")


def load_state_dict(path: str | os.PathLike) -> dict:
    from .._io import regular_file

    torch, _ = _torch()
    regular_file(path, "weights file")
    check_archive(str(path))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise ClsbenchError(f"{path}: weights file not found") from None
    except Exception as e:  # UnpicklingError for payloads, RuntimeError for truncation, ...
        raise ClsbenchError(f"{path}: {_why_not_loadable(path, e)}") from None
    # common checkpoint wrappers
    for key in ("state_dict", "model"):
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
    if not isinstance(obj, dict) or not all(hasattr(v, "shape") for v in obj.values()):
        raise ClsbenchError(f"{path}: holds a {type(obj).__name__}, not a state dict of tensors")
    if obj and all(k.startswith("module.") for k in obj):  # saved from DataParallel
        obj = {k[len("module."):]: v for k, v in obj.items()}
    return obj


def _describe_mismatch(spec: ModelSpec, want: dict, state_dict: dict, source: str) -> None:
    missing = [k for k in want if k not in state_dict]
    unexpected = [k for k in state_dict if k not in want]
    shapes = [f"{k}: file {tuple(state_dict[k].shape)} vs model {tuple(want[k].shape)}"
              for k in want if k in state_dict and tuple(state_dict[k].shape) != tuple(want[k].shape)]
    if not (missing or unexpected or shapes):
        return

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


def _torchvision_model(spec: ModelSpec, skip_init: bool):
    """torchvision's builder with weights=None. `skip_init` (a state dict will be loaded
    strictly over every parameter and buffer): torch.nn.init's fills are skipped (VGG-11's
    random init took 1.7 s), unless the model holds state a state dict does not (a buffer
    that is not persistent, a tensor attribute): then it is built again as torchvision does."""
    torch, torchvision = _torch()

    def build():
        return getattr(torchvision.models, spec.name)(weights=None, num_classes=spec.num_classes,
                                                      **dict(spec.builder_args))

    if not skip_init:
        return build()
    init = torch.nn.init
    fills = {k: getattr(init, k) for k in dir(init) if k.endswith("_") and not k.startswith("_")}
    try:
        for k in fills:
            setattr(init, k, lambda t, *a, **kw: t)
        model = build()
    finally:
        for k, f in fills.items():
            setattr(init, k, f)
    keys = set(model.state_dict())
    outside = any(n not in keys for n, _ in model.named_buffers()) or any(
        isinstance(v, torch.Tensor) for m in model.modules() for v in vars(m).values())
    return build() if outside else model


def build_model(spec: ModelSpec, state_dict: dict | None = None, source: str = "weights"):
    """torchvision's architecture, built exactly as torchvision builds it for its weights
    (spec.builder_args: e.g. inception_v3's transform_input=True), loaded strictly, with the
    auxiliary heads dropped for inference as torchvision does after loading."""
    _torch()  # one clear error when torch is missing, on either path
    if spec.name.startswith("timm:"):
        from .timm import build_timm

        model = build_timm(spec)
    else:
        model = _torchvision_model(spec, skip_init=state_dict is not None)
    if state_dict is not None:
        for head in spec.aux_heads:  # weights saved without the auxiliary heads load too
            if not any(k.startswith(head + ".") for k in state_dict):
                setattr(model, head, None)
        want = model.state_dict()
        _describe_mismatch(spec, want, state_dict, source)
        if getattr(state_dict, "_metadata", None) is None:
            # torchvision's MNASNet reads its layout version from the state dict's metadata;
            # a plain dict (re-keyed, or saved without it) takes the current model's
            from collections import OrderedDict

            state_dict = OrderedDict(state_dict)
            state_dict._metadata = want._metadata
        model.load_state_dict(state_dict, strict=True)
    for head in spec.aux_heads:
        setattr(model, head, None)
    if spec.aux_heads and hasattr(model, "aux_logits"):
        model.aux_logits = False
    return model.eval()


# ---------------------------------------------------------------- parity
