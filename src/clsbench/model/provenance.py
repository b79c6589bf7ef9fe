"""Where a model's weights come from, and so whether its accuracy can be judged; the one
model default. No imports of the rest of clsbench: export, the plan and the records all
read these."""
from __future__ import annotations

import functools
import json

from .table import GUIDE_MODEL

DEFAULT_MODEL = GUIDE_MODEL  # the one model default: the guide's MnasNet1.0

# Where a model's weights come from; an accuracy verdict only where the reference means something
PROVENANCE = {
    "official": "official torchvision weights (identified by digest)",
    "proxy": "clsbench's trained proxy (identified by SHA-256): judged against its own recorded accuracy",
    "stand-in": "stand-in weights (realistic random): right for speed, no accuracy to judge",
    "other": "other weights than the official file: the accuracy of these weights, no reference to judge by",
    "foreign": "a model file from elsewhere (no clsbench record in it): its accuracy, no reference to judge by",
    "unrecorded": "a clsbench export that records no weights provenance: its accuracy, no reference to judge by",
}


@functools.lru_cache(maxsize=1)
def proxy_record() -> dict:
    """The trained proxy's training record (its SHA-256 and task accuracy)."""
    from importlib.resources import files

    return json.loads(files("clsbench").joinpath("data/proxy_mnasnet1_0.json").read_text())


def weights_provenance(ident, stand_in: bool) -> str:
    """A .pth's provenance from its digests (model.weights.identify_weights)."""
    if ident.sha256 == proxy_record()["sha256"]:
        return "proxy"
    if stand_in:
        return "stand-in"
    return "official" if ident.official else "other"
