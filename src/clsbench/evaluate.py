"""Top-1..5 accuracy from per-image output files to the guide's result.json (formats.md §6).

Matches the guide's imagenet_acc_eval.py: the image key is the output file name up to its
first '.', cut at its last '_'; the label file is keyed by name up to its first '.'; a
1001-class output shifts labels by +1 (background class); Top-k is the cumulative hit count
over k = 1..5 divided by the number of output files; each figure is str(round(acc*100, 2))+'%'
computed on numpy float64, as the reference does.

Ties: scores are ranked with a stable sort of the negated scores, so equal scores rank in
ascending class index (the reference's default quicksort leaves ties in an unspecified order).
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import ClsbenchError
from ._io import atomic_write_text
from .dataset import read_labels
from .outputs import SUFFIXES, image_key, load_scores

TOPK = 5


@dataclass
class Accuracy:
    images: int
    num_classes: int
    hits: list[int]  # hits[k-1]: images whose label ranks exactly k-th
    unlabelled_outputs: list[str] = field(default_factory=list)
    labels_without_output: int = 0

    @property
    def topk(self) -> list[float]:
        """Cumulative Top-1..5 as numpy float64 fractions (the reference's arithmetic)."""
        return list(np.cumsum(self.hits) / self.images)

    def percent(self, k: int) -> float:
        return float(self.topk[k - 1] * 100)

    def result_json(self) -> str:
        value = [{"key": "Number of images", "value": str(self.images)},
                 {"key": "Number of classes", "value": str(self.num_classes)}]
        for i, acc in enumerate(self.topk):
            value.append({"key": f"Top{i + 1} accuracy", "value": str(round(acc * 100, 2)) + "%"})
        return json.dumps({"title": "Overall statistical evaluation", "value": value})


def evaluate(result_dir: str | os.PathLike, label_file: str | os.PathLike, *,
             strict: bool = False, exclude: set[str] | None = None) -> Accuracy:
    """Accuracy over the outputs that have a label; `exclude`: image keys left out (e.g. the
    calibration images of a quantized model)."""
    result_dir = Path(result_dir)
    if not result_dir.is_dir():
        raise ClsbenchError(f"{result_dir}: result directory not found")
    labels = read_labels(label_file)
    if exclude:
        labels = {k: v for k, v in labels.items() if k not in exclude}
    files = sorted(n for n in os.listdir(result_dir) if n.endswith(SUFFIXES) and not n.startswith("."))
    if not files:
        raise ClsbenchError(f"{result_dir}: holds no output files (*.txt, *.bin, *.npy)")
    hits = [0] * TOPK
    count, n_classes, unlabelled, seen = 0, None, [], set()
    for name in files:
        key = image_key(name)
        if exclude and key in exclude:
            continue
        if key not in labels:
            unlabelled.append(name)
            continue
        if key in seen:
            raise ClsbenchError(f"{result_dir / name}: a second output for image {key!r}")
        seen.add(key)
        scores = load_scores(result_dir / name)
        if n_classes is None:
            n_classes = scores.size
        elif scores.size != n_classes:
            raise ClsbenchError(f"{result_dir / name}: {scores.size} scores, other outputs have {n_classes}")
        label = labels[key] + (1 if n_classes == 1001 else 0)
        if label >= n_classes:
            raise ClsbenchError(f"{label_file}: label {labels[key]} of {key!r} is out of range "
                                f"for a {n_classes}-class output")
        ranked = np.argsort(-scores, kind="stable")[:TOPK]
        where = np.flatnonzero(ranked == label)
        if where.size:
            hits[int(where[0])] += 1
        count += 1
    if unlabelled and strict:
        raise ClsbenchError(f"{label_file}: no label for {len(unlabelled)} outputs, e.g. "
                            f"{result_dir / unlabelled[0]}")
    if count == 0:
        raise ClsbenchError(f"{label_file}: none of the {len(files)} outputs in {result_dir} has a label")
    missing = len(labels) - count
    if missing and strict:
        raise ClsbenchError(f"{result_dir}: {missing} labelled images have no output")
    return Accuracy(count, n_classes, hits, unlabelled, missing)


def write_result(acc: Accuracy, out_dir: str | os.PathLike, name: str = "result.json") -> Path:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / name
    atomic_write_text(path, acc.result_json())
    return path
