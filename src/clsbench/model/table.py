"""The model table: every torchvision classifier and weights entry, with its preset,
reference accuracy and official file, plus the guide's preset names.

The table (`data/models.json`) is generated once from torchvision by
scripts/gen_model_table.py and committed, so this module (the inference path) never
imports torch. A model is named `NAME[:WEIGHTS_TAG]` (`resnet50:IMAGENET1K_V2`); without a
tag it is torchvision's DEFAULT. The guide's names (`mnasnet`, `resnet`, `inceptionv3`)
keep their meaning (formats.md §3).
"""
from __future__ import annotations

import difflib
import functools
import json

from .. import ClsbenchError
from .spec import IMAGENET_MEAN, IMAGENET_STD, INTERPOLATIONS, ModelSpec, OfficialWeights, Preprocessing

GUIDE_MODEL = "mnasnet1_0"  # the guide's model; plan.DEFAULT_MODEL is the one default built on it
# The guide's imagenet_torch_preprocess.py table (formats.md §3)
PRESETS: dict[str, Preprocessing] = {
    "mnasnet": Preprocessing(256, 224, IMAGENET_MEAN, IMAGENET_STD),
    "resnet": Preprocessing(256, 224, IMAGENET_MEAN, IMAGENET_STD),
    "inceptionv3": Preprocessing(342, 299, IMAGENET_MEAN, IMAGENET_STD),
    "inceptionv4": Preprocessing(342, 299, (0.5, 0.5, 0.5), (0.5, 0.5, 0.5)),
}


# The guide's file (formats.md §1): its MD5 is known, torchvision's table has the SHA-256 prefix
GUIDE_MD5 = {f"{GUIDE_MODEL}:IMAGENET1K_V1": "02d9eb9b304e14cfe0e7ea057be465f0"}
# The guide's and its scripts' names for models
ALIASES = {"mnasnet": GUIDE_MODEL, "mnasnet1.0": GUIDE_MODEL, "resnet": "resnet50:IMAGENET1K_V1",
           "inceptionv3": "inception_v3"}


@functools.lru_cache(maxsize=1)
def table() -> dict:
    from importlib.resources import files

    return json.loads(files("clsbench").joinpath("data/models.json").read_text())


def _spec(name: str, tag: str, e: dict) -> ModelSpec:
    p = e["preset"]
    return ModelSpec(
        name, tag, Preprocessing(p["resize"], p["crop"], tuple(p["mean"]), tuple(p["std"]), p["interpolation"]),
        e["top1"], e["top5"], e["num_classes"],
        OfficialWeights(e["file"], GUIDE_MD5.get(f"{name}:{tag}"), e["sha256_prefix"]),
        tuple((k, tuple(v) if isinstance(v, list) else v) for k, v in e["builder_args"].items()),
        tuple(e["aux_heads"]), e["gflops"], e["params"])


def get_model(name: str) -> ModelSpec:
    """`NAME[:TAG]` (or a guide alias, or timm:NAME[:TAG]) -> its spec; a one-line error
    suggesting near names."""
    if name.startswith("timm:"):
        from .timm import timm_spec

        return timm_spec(name[len("timm:"):])
    name = ALIASES.get(name, name)
    arch, _, tag = name.partition(":")
    models = table()["models"]
    if arch not in models:
        near = difflib.get_close_matches(arch, list(models), n=3)
        raise ClsbenchError(f"unknown model {arch!r}" + (f"; did you mean {', '.join(near)}?" if near else "")
                            + " (`clsbench models` lists all)")
    m = models[arch]
    tag = tag or m["default"]
    if tag not in m["weights"]:
        raise ClsbenchError(f"{arch} has no weights {tag!r}; it has {', '.join(m['weights'])}")
    return _spec(arch, tag, m["weights"][tag])


def all_models(filter_text: str = "") -> list[ModelSpec]:
    """Every (architecture, weights) in the table whose NAME:TAG has a word starting with
    filter_text (words split at '_' and ':'): 'vit' finds vit_b_16, not maxvit_t; 'b0'
    finds efficientnet_b0; 'v2' every weights tag V2."""
    import re

    word = re.compile(r"(^|[_:])" + re.escape(filter_text.lower()))
    out = []
    for arch, m in table()["models"].items():
        for tag, e in m["weights"].items():
            if word.search(f"{arch}:{tag}".lower()):
                out.append(_spec(arch, tag, e))
    return out


def default_tag(arch: str) -> str:
    return table()["models"][arch]["default"]


def get_preprocessing(name: str) -> Preprocessing:
    """A preset of the guide's table ('mnasnet', 'inceptionv4', ...) or a model NAME[:TAG]."""
    if name in PRESETS:
        return PRESETS[name]
    try:
        return get_model(name).preprocessing
    except ClsbenchError as e:
        raise ClsbenchError(f"unknown model/preset {name!r}: {e}; the guide's presets: "
                            f"{', '.join(PRESETS)}") from None


def custom_preprocessing(base: Preprocessing, *, resize=None, crop=None, interpolation=None,
                         mean=None, std=None) -> Preprocessing:
    """A preset with some knobs given by hand (an ONNX model from elsewhere)."""
    import dataclasses

    changes = {k: v for k, v in dict(resize=resize, crop=crop, interpolation=interpolation,
                                     mean=tuple(mean) if mean else None,
                                     std=tuple(std) if std else None).items() if v is not None}
    return dataclasses.replace(base, **changes)
