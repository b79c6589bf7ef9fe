"""Top-1..5 accuracy from per-image output files to the guide's result.json (formats.md §6).

Matches the guide's imagenet_acc_eval.py: the image key is the output file name up to its
first '.', cut at its last '_'; the label file is keyed by name up to its first '.'; a
1001-class output shifts labels by +1 (background class); Top-k is the cumulative hit count
over k = 1..5 divided by the number of output files; each figure is str(round(acc*100, 2))+'%'
computed on numpy float64, as the reference does.

Ties: scores are ranked as a stable sort of the negated scores would (`top5`), so equal
scores rank in ascending class index (the reference's default quicksort leaves ties in an unspecified order).
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
from .scores import TOPK, top5  # noqa: F401  (top5: the ranking rule, also the Parquet writer's)



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


class _Tally:
    """Hits per rank over scored images, with the reference's rules (one output per image,
    one class count, labels in range, a 1001-class output shifts labels by one)."""

    def __init__(self, labels: dict[str, int], label_file, exclude: set[str] | None):
        self.labels, self.label_file, self.exclude = labels, label_file, exclude or set()
        self.hits, self.count, self.n_classes = [0] * TOPK, 0, None
        self.unlabelled: list[str] = []
        self.seen: set[str] = set()

    def wanted(self, key: str, name: str) -> bool:
        """False for an excluded image or an output without label (recorded)."""
        if key in self.exclude:
            return False
        if key not in self.labels:
            self.unlabelled.append(name)
            return False
        return True

    def add(self, where, keys: list[str], scores: np.ndarray) -> None:
        """`scores`: (len(keys), classes), each row one image's output, read from `where`."""
        if self.n_classes is None:
            self.n_classes = scores.shape[1]
        elif scores.shape[1] != self.n_classes:
            raise ClsbenchError(f"{where}: {scores.shape[1]} scores, other outputs have {self.n_classes}")
        shift = 1 if self.n_classes == 1001 else 0
        for key in keys:
            if key in self.seen:
                raise ClsbenchError(f"{where}: a second output for image {key!r}")
            self.seen.add(key)
            if self.labels[key] + shift >= self.n_classes:
                raise ClsbenchError(f"{self.label_file}: label {self.labels[key]} of {key!r} is out of range "
                                    f"for a {self.n_classes}-class output")
        label = np.array([self.labels[k] + shift for k in keys])
        ranked = top5(scores)
        _, rank = np.nonzero(ranked == label[:, None])
        for r in rank:
            self.hits[int(r)] += 1
        self.count += len(keys)


def _from_files(tally: _Tally, result_dir: Path) -> int:
    files = sorted(n for n in os.listdir(result_dir) if n.endswith(SUFFIXES) and not n.startswith("."))
    if not files:
        raise ClsbenchError(f"{result_dir}: holds no output files (*.txt, *.bin, *.npy)")
    for name in files:
        key = image_key(name)
        if tally.wanted(key, name):
            tally.add(result_dir / name, [key], load_scores(result_dir / name)[None, :])
    return len(files)


def _from_parquet(tally: _Tally, result_dir: Path) -> int:
    from .parquet_out import iter_rows

    total = 0
    for part, keys, logits in iter_rows(result_dir):
        total += len(keys)
        keep = [i for i, k in enumerate(keys) if tally.wanted(k, k)]
        if not np.all(np.isfinite(logits[keep])):
            raise ClsbenchError(f"{part}: holds NaN or infinite scores")
        if keep:
            tally.add(part, [keys[i] for i in keep], logits[keep])
    if not total:
        raise ClsbenchError(f"{result_dir}: holds no output rows (part-*.parquet)")
    return total


def evaluate(result_dir: str | os.PathLike, label_file: str | os.PathLike, *,
             strict: bool = False, exclude: set[str] | None = None) -> Accuracy:
    """Accuracy over the outputs that have a label: per-image files (the guide's
    dumpOutput_device<N>/) or a Parquet dataset (`--outfmt parquet`); `exclude`: image keys
    left out (e.g. the calibration images of a quantized model)."""
    from .parquet_out import is_dataset

    result_dir = Path(result_dir)
    if not result_dir.is_dir():
        raise ClsbenchError(f"{result_dir}: result directory not found")
    labels = read_labels(label_file)
    if exclude:
        labels = {k: v for k, v in labels.items() if k not in exclude}
    tally = _Tally(labels, label_file, exclude)
    parquet = is_dataset(result_dir)
    total = (_from_parquet if parquet else _from_files)(tally, result_dir)
    if tally.unlabelled and strict:
        where = tally.unlabelled[0] if parquet else result_dir / tally.unlabelled[0]
        raise ClsbenchError(f"{label_file}: no label for {len(tally.unlabelled)} outputs, e.g. {where}")
    if tally.count == 0:
        raise ClsbenchError(f"{label_file}: none of the {total} outputs in {result_dir} has a label")
    missing = len(labels) - tally.count
    if missing and strict:
        raise ClsbenchError(f"{result_dir}: {missing} labelled images have no output")
    return Accuracy(tally.count, tally.n_classes, tally.hits, tally.unlabelled, missing)


def write_result(acc: Accuracy, out_dir: str | os.PathLike, name: str = "result.json") -> Path:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / name
    atomic_write_text(path, acc.result_json())
    return path
