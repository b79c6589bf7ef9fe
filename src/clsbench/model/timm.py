"""`--model timm:NAME[:TAG]`: an architecture from timm (optional extra `[timm]`).

The preset comes from the model's pretrained config exactly as timm's own eval transform
builds it (`timm.data.resolve_data_config` + `create_transform`, crop_mode "center"): resize
the shorter side to floor(input_size / crop_pct) with the config's interpolation, centre
crop input_size, ImageNet-style mean/std from the config. That is the same PIL path as
torchvision's presets, so preprocessing stays pixel-exact (tested against timm's transform).
Crop modes "squash" and "border" and non-square inputs are refused. timm publishes no
reference accuracy in its package: these specs have none (runs report accuracy without a
comparison). An exported ONNX records the preset, so later commands need no timm.
"""
from __future__ import annotations

import difflib
import math

from .. import ClsbenchError
from .spec import INTERPOLATIONS, ModelSpec, Preprocessing

PREFIX = "timm:"


def _timm():
    try:
        import timm
    except ImportError:
        raise ClsbenchError("--model timm:NAME needs timm: pip install 'clsbench[timm]'") from None
    return timm


def timm_spec(name: str) -> ModelSpec:
    """'NAME', 'NAME:TAG' or 'NAME.TAG' (timm's spelling) -> its spec."""
    timm = _timm()
    arch, _, tag = name.replace(":", ".", 1).partition(".")
    known = timm.list_models()
    if arch not in known:
        near = difflib.get_close_matches(arch, known, n=3)
        raise ClsbenchError(f"unknown timm model {arch!r}" + (f"; did you mean {', '.join(near)}?" if near else ""))
    try:
        cfg = timm.models.get_pretrained_cfg(f"{arch}.{tag}" if tag else arch)
    except RuntimeError:  # "Invalid pretrained tag"
        cfg = None
    if cfg is None:
        tags = [m.partition(".")[2] for m in timm.list_pretrained(f"{arch}.*")]
        raise ClsbenchError(f"timm {arch} has no pretrained config {tag!r}; it has {', '.join(tags) or 'none'}")
    c, h, w = cfg.input_size
    if h != w or (cfg.crop_mode or "center") != "center" or cfg.interpolation not in INTERPOLATIONS:
        raise ClsbenchError(f"timm:{arch}.{cfg.tag}: input {h}x{w}, crop_mode {cfg.crop_mode}, interpolation "
                            f"{cfg.interpolation}: clsbench's exact path does square centre crops with "
                            f"{', '.join(INTERPOLATIONS)} only")
    pp = Preprocessing(math.floor(h / (cfg.crop_pct or 0.875)), h, tuple(cfg.mean), tuple(cfg.std), cfg.interpolation)
    return ModelSpec(PREFIX + arch, cfg.tag or "", pp, None, None, cfg.num_classes)


def build_timm(spec: ModelSpec):
    """The architecture as timm builds it for that pretrained config, without weights."""
    timm = _timm()
    arch = spec.name[len(PREFIX):]
    return timm.create_model(f"{arch}.{spec.tag}" if spec.tag else arch, pretrained=False,
                             num_classes=spec.num_classes)
