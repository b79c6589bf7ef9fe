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
from dataclasses import asdict, dataclass

from . import ClsbenchError

GUIDE_MODEL = "mnasnet1_0"  # the guide's model; plan.DEFAULT_MODEL is the one default built on it
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
INTERPOLATIONS = ("bilinear", "bicubic", "nearest")


@dataclass(frozen=True)
class Preprocessing:
    """Every knob of the exact path, recorded with each result (timm style)."""

    resize: int  # shorter side after resize; long side truncated, as torchvision does
    crop: int  # square centre crop
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    interpolation: str = "bilinear"  # PIL filter
    layout: str = "NCHW"
    dtype: str = "float32"
    # The reference (and torchvision on a PIL image) ignores EXIF orientation; opt-in only.
    exif_transpose: bool = False

    def __post_init__(self):
        if self.resize < 1 or self.crop < 1 or self.crop > self.resize:
            raise ClsbenchError(f"preprocessing: need 1 <= crop <= resize, got resize {self.resize}, "
                                f"crop {self.crop}")
        if self.interpolation not in INTERPOLATIONS:
            raise ClsbenchError(f"preprocessing: interpolation {self.interpolation!r} not in "
                                f"{', '.join(INTERPOLATIONS)}")
        if len(self.mean) != 3 or len(self.std) != 3 or min(self.std) <= 0:
            raise ClsbenchError(f"preprocessing: mean and std need 3 values each, std > 0; got "
                                f"{self.mean}, {self.std}")

    def as_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "Preprocessing":
        return cls(**{**d, "mean": tuple(d["mean"]), "std": tuple(d["std"])})

    @property
    def bin_bytes(self) -> int:
        return 3 * self.crop * self.crop * 4

    def describe(self) -> str:
        return (f"resize {self.resize}, crop {self.crop}, {self.interpolation}, mean {list(self.mean)}, "
                f"std {list(self.std)}")


# The guide's imagenet_torch_preprocess.py table (formats.md §3)
PRESETS: dict[str, Preprocessing] = {
    "mnasnet": Preprocessing(256, 224, IMAGENET_MEAN, IMAGENET_STD),
    "resnet": Preprocessing(256, 224, IMAGENET_MEAN, IMAGENET_STD),
    "inceptionv3": Preprocessing(342, 299, IMAGENET_MEAN, IMAGENET_STD),
    "inceptionv4": Preprocessing(342, 299, (0.5, 0.5, 0.5), (0.5, 0.5, 0.5)),
}


@dataclass(frozen=True)
class OfficialWeights:
    filename: str
    md5: str | None  # known for the guide's file (formats.md §1)
    sha256_prefix: str | None  # torchvision puts the first hex digits of the SHA-256 in the name


@dataclass(frozen=True)
class ModelSpec:
    name: str  # torchvision builder name
    tag: str  # weights entry, e.g. IMAGENET1K_V1
    preprocessing: Preprocessing
    top1: float | None  # torchvision's published ImageNet-val accuracy, % (None: timm models)
    top5: float | None
    num_classes: int = 1000
    official: OfficialWeights | None = None
    # the builder's arguments exactly as torchvision sets them when it loads these weights
    # (e.g. inception_v3: transform_input=True), as (name, value) pairs
    builder_args: tuple = ()
    # auxiliary heads the weights carry but inference drops
    aux_heads: tuple = ()
    gflops: float | None = None
    params: int | None = None

    @property
    def key(self) -> str:
        return f"{self.name}:{self.tag}"

    @property
    def preset(self) -> str:
        """The preset's name: the weights it comes from."""
        return self.key


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
        from .timm_models import timm_spec

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
    """Every (architecture, weights) in the table whose key contains filter_text."""
    out = []
    for arch, m in table()["models"].items():
        for tag, e in m["weights"].items():
            if filter_text.lower() in f"{arch}:{tag}".lower():
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
