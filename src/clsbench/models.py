"""The model table: preprocessing presets, reference accuracy, official weight files.

The preset rows mirror the guide's `imagenet_torch_preprocess.py` table (formats.md §3);
the model rows add torchvision's published accuracy and weight digests.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

from . import ClsbenchError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


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

    def as_dict(self) -> dict:
        return asdict(self)

    @property
    def bin_bytes(self) -> int:
        return 3 * self.crop * self.crop * 4


PRESETS: dict[str, Preprocessing] = {
    "mnasnet": Preprocessing(256, 224, IMAGENET_MEAN, IMAGENET_STD),
    "resnet": Preprocessing(256, 224, IMAGENET_MEAN, IMAGENET_STD),
    "inceptionv3": Preprocessing(342, 299, IMAGENET_MEAN, IMAGENET_STD),
    "inceptionv4": Preprocessing(342, 299, (0.5, 0.5, 0.5), (0.5, 0.5, 0.5)),
}


@dataclass(frozen=True)
class OfficialWeights:
    filename: str
    md5: str
    sha256_prefix: str  # torchvision puts the first hex digits of the SHA-256 in the name


@dataclass(frozen=True)
class ModelSpec:
    name: str  # torchvision builder name
    preset: str
    top1: float  # torchvision's published ImageNet-val accuracy, %
    top5: float
    num_classes: int = 1000
    official: OfficialWeights | None = None
    # the builder's arguments exactly as torchvision sets them when it loads these weights
    # (e.g. inception_v3: transform_input=True), as (name, value) pairs
    builder_args: tuple = ()
    # auxiliary heads the weights carry but inference drops, as torchvision does after loading
    aux_heads: tuple = ()

    @property
    def preprocessing(self) -> Preprocessing:
        return PRESETS[self.preset]


MODELS: dict[str, ModelSpec] = {
    "mnasnet1_0": ModelSpec(
        "mnasnet1_0", "mnasnet", 73.456, 91.510,
        official=OfficialWeights(
            "mnasnet1.0_top1_73.512-f206786ef8.pth",
            "02d9eb9b304e14cfe0e7ea057be465f0", "f206786ef8"),
    ),
    "mnasnet0_5": ModelSpec("mnasnet0_5", "mnasnet", 67.734, 87.490),
    "resnet18": ModelSpec("resnet18", "resnet", 69.758, 89.078),
    "resnet50": ModelSpec("resnet50", "resnet", 76.130, 92.862),
    "inception_v3": ModelSpec("inception_v3", "inceptionv3", 77.294, 93.450,
                              builder_args=(("transform_input", True), ("aux_logits", True),
                                            ("init_weights", False)),
                              aux_heads=("AuxLogits",)),
}

# The guide and its scripts call the model "mnasnet" / "mnasnet1.0".
ALIASES = {"mnasnet": "mnasnet1_0", "mnasnet1.0": "mnasnet1_0", "resnet": "resnet50",
           "inceptionv3": "inception_v3"}


def get_model(name: str) -> ModelSpec:
    key = ALIASES.get(name, name)
    if key not in MODELS:
        raise ClsbenchError(
            f"unknown model {name!r}; known: {', '.join(sorted(MODELS))}")
    return MODELS[key]


def get_preprocessing(name: str) -> Preprocessing:
    """A preset key of the guide's table ('mnasnet', 'inceptionv4', ...) or a model name."""
    if name in PRESETS:
        return PRESETS[name]
    try:
        return get_model(name).preprocessing
    except ClsbenchError:
        raise ClsbenchError(
            f"unknown model/preset {name!r}; presets: {', '.join(PRESETS)}; "
            f"models: {', '.join(sorted(MODELS))}") from None
