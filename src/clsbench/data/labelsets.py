"""Class names, and the label sets beyond ImageNet-2012's original labels.

Package data (src/clsbench/data/, see its NOTICE.md):
    imagenet_classes.txt        the 1000 class names in index order (torchvision's weights metadata)
    imagenet_real_labels.json   ImageNet-ReaL (Beyer et al. 2020): for each of the 50,000 validation
                                images, in file-name order, the set of classes a reannotation judged
                                right; an empty set for images none was (from timm's wheel)
    imagenet_a_indices.txt      the 200 ImageNet-1k classes of ImageNet-A and ImageNet-R, as indices
    imagenet_r_indices.txt      into the 1000 (from timm's wheel)

Scoring follows timm: ReaL counts an image correct at k when any of its top-k classes is in its
ReaL set, and leaves out images whose set is empty (`RealLabelsImagenet`); a 200-class subset
scores the 1000-class outputs restricted to the subset's columns (validate.py's
`--valid-labels`/`class_map`), the labels being ImageNet-1k indices inside the subset.
"""
from __future__ import annotations

import json
import re
from functools import lru_cache
from importlib.resources import files

import numpy as np

from .. import ClsbenchError

LABEL_SETS = {"imagenet-a": "imagenet_a_indices.txt", "imagenet-r": "imagenet_r_indices.txt"}
VAL_NAME = re.compile(r"ILSVRC2012_val_(\d{8})")  # ImageNet's validation file names, 1-based


def _data(name: str) -> str:
    return files("clsbench").joinpath(f"data/{name}").read_text(encoding="utf-8")


@lru_cache(maxsize=None)
def imagenet_names() -> tuple[str, ...]:
    return tuple(_data("imagenet_classes.txt").splitlines())


def class_names(num_classes: int, provenance: str | None = None) -> list[str] | None:
    """Names for a model's output columns, where they are known: ImageNet-1k's for 1000
    outputs (1001: column 0 is the background class), the trained proxy's own 16; None else."""
    if provenance == "proxy":
        from .proxy_task import COLOURS, SHAPES

        own = [f"{c} {s}" for s in SHAPES for c in COLOURS]
        return own + [f"(untrained output {i})" for i in range(len(own), num_classes)]
    if num_classes == 1000:
        return list(imagenet_names())
    if num_classes == 1001:
        return ["background", *imagenet_names()]
    return None


@lru_cache(maxsize=None)
def subset_indices(label_set: str) -> np.ndarray:
    if label_set not in LABEL_SETS:
        raise ClsbenchError(f"--label-set: {label_set!r} is not one of {', '.join(LABEL_SETS)}")
    return np.array([int(x) for x in _data(LABEL_SETS[label_set]).split()], dtype=np.int64)


@lru_cache(maxsize=None)
def real_labels() -> tuple:
    return tuple(tuple(x) for x in json.loads(_data("imagenet_real_labels.json")))


def real_index(key: str) -> int | None:
    """The position of an image in ImageNet's validation set, from its file name (None: not one)."""
    m = VAL_NAME.fullmatch(key)
    return int(m.group(1)) - 1 if m else None


class Subset:
    """The scores and labels of a 1000-class output restricted to a label set's classes."""

    def __init__(self, label_set: str, width: int, label_file):
        idx = subset_indices(label_set)
        if width not in (1000, 1001):
            raise ClsbenchError(f"--label-set {label_set}: needs a model of ImageNet's 1000 classes, "
                                f"the outputs have {width}")
        self.name, self.label_file = label_set, label_file
        self.columns = idx + (1 if width == 1001 else 0)
        self.position = {int(c): i for i, c in enumerate(idx)}

    def labels(self, keys: list[str], labels: dict[str, int]) -> np.ndarray:
        out = []
        for k in keys:
            if labels[k] not in self.position:
                raise ClsbenchError(f"{self.label_file}: label {labels[k]} of {k!r} is not one of the "
                                    f"{len(self.position)} classes of {self.name}")
            out.append(self.position[labels[k]])
        return np.array(out)


class RealTally:
    """ReaL Top-1/Top-5 over the outputs (timm's rule): see the module's docstring."""

    def __init__(self):
        self.labels = real_labels()
        self.images = self.top1 = self.top5 = self.without_real = 0
        self.not_val_names: list[str] = []

    def add(self, keys: list[str], ranked: np.ndarray, shift: int) -> None:
        """`ranked`: (len(keys), 5) class indices, best first (scores.top5)."""
        for key, row in zip(keys, ranked):
            i = real_index(key)
            if i is None or i >= len(self.labels):
                self.not_val_names.append(key)
                continue
            real = self.labels[i]
            if not real:
                self.without_real += 1
                continue
            pred = [int(c) - shift for c in row]
            self.images += 1
            self.top1 += pred[0] in real
            self.top5 += any(p in real for p in pred)

    def record(self, where) -> dict:
        if not self.images:
            seen = self.not_val_names[:1]
            raise ClsbenchError(f"{where}: no output has a ReaL label: ReaL labels are keyed by ImageNet's "
                                f"validation file names (ILSVRC2012_val_00000001 ...)"
                                + (f", e.g. not {seen[0]!r}" if seen else ""))
        return {"images": self.images, "top1": 100.0 * self.top1 / self.images,
                "top5": 100.0 * self.top5 / self.images, "without_real_label": self.without_real,
                "not_validation_names": len(self.not_val_names),
                "source": "ImageNet-ReaL (Beyer et al. 2020), images without a ReaL label left out"}
