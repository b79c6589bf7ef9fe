"""What a model is, as data: its preprocessing preset and its spec (name, weights tag,
reference accuracy, official file). No imports of the rest of clsbench, so the model table
(model/table.py) and timm's presets (model/timm.py) both build on it."""
from __future__ import annotations

from dataclasses import asdict, dataclass

from .. import ClsbenchError

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
    def from_dict(cls, d, where: str = "preprocessing") -> "Preprocessing":
        """From a record or a model file's metadata (untrusted): every field checked, an
        unknown or wrongly typed one is a one-line error naming `where` and the field."""
        if not isinstance(d, dict):
            raise ClsbenchError(f"{where}: expected an object of preprocessing fields, got {type(d).__name__}")
        fields = {"resize": int, "crop": int, "mean": (list, tuple), "std": (list, tuple), "interpolation": str,
                  "layout": str, "dtype": str, "exif_transpose": bool}
        unknown = sorted(set(d) - set(fields))
        if unknown:
            raise ClsbenchError(f"{where}: unknown field {unknown[0]!r} (known: {', '.join(fields)})")
        for k, kind in fields.items():
            v = d.get(k)
            if k in ("resize", "crop", "mean", "std") and v is None:
                raise ClsbenchError(f"{where}: field {k!r} missing")
            if v is not None and (not isinstance(v, kind) or (kind is int and isinstance(v, bool))):
                want = "a list" if isinstance(kind, tuple) else kind.__name__
                raise ClsbenchError(f"{where}: field {k!r} is {type(v).__name__} {v!r:.40}, expected {want}")
        for k in ("mean", "std"):
            if len(d[k]) != 3 or not all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in d[k]):
                raise ClsbenchError(f"{where}: field {k!r} must be three numbers, got {d[k]!r:.60}")
        if d.get("layout", "NCHW") != "NCHW" or d.get("dtype", "float32") != "float32":
            raise ClsbenchError(f"{where}: layout {d.get('layout')!r} / dtype {d.get('dtype')!r}: only NCHW float32")
        return cls(**{**d, "mean": tuple(float(x) for x in d["mean"]), "std": tuple(float(x) for x in d["std"])})

    @property
    def bin_bytes(self) -> int:
        return 3 * self.crop * self.crop * 4

    def describe(self) -> str:
        return (f"resize {self.resize}, crop {self.crop}, {self.interpolation}, mean {list(self.mean)}, "
                f"std {list(self.std)}")


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
