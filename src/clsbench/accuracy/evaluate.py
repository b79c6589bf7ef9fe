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

from .. import ClsbenchError
from .._io import atomic_write_text
from ..data.folders import read_labels
from ..runtime.outputs import SUFFIXES, image_key, load_scores
from ..runtime.scores import TOPK, top5  # noqa: F401  (top5: the ranking rule, also the Parquet writer's)



@dataclass
class Accuracy:
    images: int
    num_classes: int
    hits: list[int]  # hits[k-1]: images whose label ranks exactly k-th
    unlabelled_outputs: list[str] = field(default_factory=list)
    labels_without_output: int = 0
    label_set: str | None = None  # scored on this subset's classes (labelsets.LABEL_SETS)
    real: dict | None = None  # ReaL Top-1/Top-5 over the same images (labelsets.RealTally.record)
    # what it was computed from ({"result_dir": ..., "label_file": ...}): result.json is never written over them
    inputs: dict = field(default_factory=dict, repr=False, compare=False)

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
    one class count, labels in range, a 1001-class output shifts labels by one); optionally
    restricted to a label set's classes, and ReaL's figures over the same images."""

    def __init__(self, labels: dict[str, int], label_file, exclude: set[str] | None, scoring: "Scoring"):
        self.labels, self.label_file, self.exclude = labels, label_file, exclude or set()
        self.hits, self.count, self.n_classes = [0] * TOPK, 0, None
        self.unlabelled: list[str] = []
        self.seen: set[str] = set()
        self.scoring, self.subset = scoring, None
        self.real = None
        if scoring.real_labels:
            from ..data.labelsets import RealTally

            self.real = RealTally()

    def wanted(self, key: str, name: str) -> bool:
        """False for an excluded image or an output without label (recorded)."""
        if key in self.exclude:
            return False
        if key not in self.labels:
            self.unlabelled.append(name)
            return False
        return True

    def _check(self, where, keys: list[str], width: int) -> int:
        if self.n_classes is None:
            self.n_classes = width
        elif width != self.n_classes:
            raise ClsbenchError(f"{where}: {width} scores, other outputs have {self.n_classes}")
        shift = 1 if self.n_classes == 1001 else 0
        for key in keys:
            if key in self.seen:
                raise ClsbenchError(f"{where}: a second output for image {key!r}")
            self.seen.add(key)
            if self.labels[key] + shift >= self.n_classes:
                raise ClsbenchError(f"{self.label_file}: label {self.labels[key]} of {key!r} is out of range "
                                    f"for a {self.n_classes}-class output")
        return shift

    def accuracy(self, labels_without_output: int) -> "Accuracy":
        width = len(self.subset.columns) if self.subset else self.n_classes
        return Accuracy(self.count, width, self.hits, self.unlabelled, labels_without_output,
                        self.scoring.label_set, self.real.record(self.label_file) if self.real is not None else None)

    def add(self, where, keys: list[str], scores: np.ndarray) -> None:
        """`scores`: (len(keys), classes), each row one image's output, read from `where`."""
        shift = self._check(where, keys, scores.shape[1])
        if self.real is not None:
            self.real.add(keys, top5(scores), shift)
        if self.scoring.label_set:
            from ..data.labelsets import Subset

            self.subset = self.subset or Subset(self.scoring.label_set, self.n_classes, self.label_file)
            scores, label = scores[:, self.subset.columns], self.subset.labels(keys, self.labels)
        else:
            label = np.array([self.labels[k] + shift for k in keys])
        ranked = top5(scores)
        _, rank = np.nonzero(ranked == label[:, None])
        for r in rank:
            self.hits[int(r)] += 1
        self.count += len(keys)


@dataclass(frozen=True)
class Scoring:
    """How outputs are scored beyond the original labels (timm's rules, see labelsets)."""

    label_set: str | None = None  # imagenet-a | imagenet-r: 1000-class outputs on the subset's 200
    real_labels: bool = False  # ImageNet-ReaL Top-1/Top-5 beside the original labels'

    def __post_init__(self):
        if self.label_set and self.real_labels:
            raise ClsbenchError("--real-labels are ImageNet-2012 validation labels: they do not apply "
                                f"with --label-set {self.label_set}")
        if self.label_set:
            from ..data.labelsets import subset_indices

            subset_indices(self.label_set)  # a bad name stops here, before any slow step


class Outputs:
    """A result folder's outputs: per-image files (the guide's dumpOutput_device<N>/) or a
    Parquet dataset (`--outfmt parquet`), read in batches of (where, keys, scores)."""

    def __init__(self, result_dir: str | os.PathLike):
        from ..runtime.parquet import is_dataset

        self.dir = Path(result_dir)
        if not self.dir.is_dir():
            raise ClsbenchError(f"{self.dir}: result directory not found")
        self.parquet = is_dataset(self.dir)
        self.total = 0

    def batches(self, want=lambda key, name: True):
        """Only the outputs `want(key, name)` accepts are read (files are not even opened)."""
        yield from (self._parquet(want) if self.parquet else self._files(want))

    def _files(self, want):
        files = sorted(n for n in os.listdir(self.dir) if n.endswith(SUFFIXES) and not n.startswith("."))
        if not files:
            raise ClsbenchError(f"{self.dir}: holds no output files (*.txt, *.bin, *.npy)")
        self.total = len(files)
        for name in files:
            key = image_key(name)
            if want(key, name):
                yield self.dir / name, [key], load_scores(self.dir / name)[None, :]

    def _parquet(self, want):
        from ..runtime.parquet import iter_rows

        for part, keys, logits in iter_rows(self.dir):
            self.total += len(keys)
            keep = [i for i, k in enumerate(keys) if want(k, k)]
            if not np.all(np.isfinite(logits[keep])):
                raise ClsbenchError(f"{part}: holds NaN or infinite scores")
            if keep:
                yield part, [keys[i] for i in keep], logits[keep]
        if not self.total:
            raise ClsbenchError(f"{self.dir}: holds no output rows (part-*.parquet)")


def evaluate(result_dir: str | os.PathLike, label_file: str | os.PathLike, *,
             strict: bool = False, exclude: set[str] | None = None, scoring: Scoring | None = None) -> Accuracy:
    """Accuracy over the outputs that have a label (`Outputs`); `exclude`: image keys left
    out (e.g. the calibration images of a quantized model); `scoring`: a label set, ReaL."""
    outputs = Outputs(result_dir)
    labels = read_labels(label_file)
    if exclude:
        labels = {k: v for k, v in labels.items() if k not in exclude}
    tally = _Tally(labels, label_file, exclude, scoring or Scoring())
    for where, keys, scores in outputs.batches(tally.wanted):
        tally.add(where, keys, scores)
    if tally.unlabelled and strict:
        where = tally.unlabelled[0] if outputs.parquet else outputs.dir / tally.unlabelled[0]
        raise ClsbenchError(f"{label_file}: no label for {len(tally.unlabelled)} outputs, e.g. {where}")
    if tally.count == 0:
        raise ClsbenchError(f"{label_file}: none of the {outputs.total} outputs in {outputs.dir} has a label")
    missing = len(labels) - tally.count
    if missing and strict:
        raise ClsbenchError(f"{outputs.dir}: {missing} labelled images have no output")
    acc = tally.accuracy(missing)
    acc.inputs = {"result_dir": result_dir, "label_file": label_file}
    return acc


def evaluate_scores(where, keys: list[str], scores: np.ndarray, label_file: str | os.PathLike,
                    scoring: Scoring | None = None) -> Accuracy:
    """Accuracy of outputs held in memory (e.g. decoded from LoadGen's accuracy log), by the
    same rules as `evaluate`: each key one image, labels from `label_file`."""
    labels = read_labels(label_file)
    tally = _Tally(labels, label_file, None, scoring or Scoring())
    have = [i for i, k in enumerate(keys) if tally.wanted(k, k)]
    if not have:
        raise ClsbenchError(f"{label_file}: none of the {len(keys)} outputs in {where} has a label")
    tally.add(where, [keys[i] for i in have], scores[have])
    acc = tally.accuracy(len(labels) - tally.count)
    acc.inputs = {"label_file": label_file}
    return acc


def check_result_path(out_dir: str | os.PathLike, name: str, result_dir: str | os.PathLike | None = None,
                      label_file: str | os.PathLike | None = None) -> Path:
    """Where result.json goes, refused when it is an input: the label file, or RESULT_DIR or a
    file inside it (the guide's eval reads every file there, and a result named *.txt would be
    read back as an output). Cheap: call it before reading the outputs."""
    from .._io import check_not_input

    from .._io import sidecar

    path = Path(out_dir) / name
    inputs = {"the label file": label_file} if label_file else {}
    if result_dir:  # the record beside the outputs says whose they are (plan.outputs_reference reads it)
        inputs["the record of RESULT_DIR's outputs"] = sidecar(Path(result_dir))
    check_not_input(path, inputs, "OUT_DIR or result.json name", folders={"RESULT_DIR": result_dir} if result_dir else {})
    if path.is_dir():
        raise ClsbenchError(f"{path}: is a directory; give another result.json name")
    return path


def write_result(acc: Accuracy, out_dir: str | os.PathLike, name: str = "result.json") -> Path:
    path = check_result_path(out_dir, name, acc.inputs.get("result_dir"), acc.inputs.get("label_file"))
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, acc.result_json())
    return path
