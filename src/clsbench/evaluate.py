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

TOPK = 5
OUTPUT_SUFFIXES = (".txt", ".bin", ".npy")


def image_key(output_file: str) -> str:
    temp = os.path.basename(output_file).split(".")[0]
    cut = temp.rfind("_")
    return temp[:cut] if cut >= 0 else temp


_POW10 = 10.0 ** np.arange(-107, 92)  # index 107 + e - 8: every exponent '%+.8e' writes
_PLACES = 10.0 ** np.arange(7, -1, -1)  # the eight digits after the point


def _parse_e8(line: bytes) -> np.ndarray | None:
    """Vectorized reader for clsbench's own text outputs ('%+.8e' fields, one space apart).

    Exact: each field is a 9-significant-digit decimal within 5e-9 (relative) of the float32
    it was written from, float64 arithmetic rebuilds it to ~1e-16, and the nearest float32 is
    then the original (rounding boundaries are >= 3e-8 away). Returns None for any other
    layout, which the general parser handles.
    """
    body = line.rstrip(b"\r\n")
    if len(body) % 16 != 15:
        return None
    a = np.frombuffer(body + b" ", np.uint8).reshape(-1, 16)
    d = a.astype(np.int16) - 48  # digits 0..9 where digits belong
    frac, lead, e_hi, e_lo = d[:, 3:11], d[:, 1], d[:, 13], d[:, 14]
    if not ((a[:, 2] == 46).all() and (a[:, 11] == 101).all() and (a[:, 15] == 32).all()
            and (np.abs(a[:, [0, 12]].astype(np.int16) - 44) == 1).all()  # '+' (43) or '-' (45)
            and 0 <= frac.min() and frac.max() <= 9 and 0 <= lead.min() and lead.max() <= 9
            and 0 <= min(e_hi.min(), e_lo.min()) and max(e_hi.max(), e_lo.max()) <= 9):
        return None
    e = (e_hi * 10 + e_lo) * (44 - a[:, 12].astype(np.int16))  # esign: '+' -> +1, '-' -> -1
    mant = lead * 1e8 + frac @ _PLACES  # exact integer < 1e9
    v = mant * _POW10[107 + e - 8] * (44 - a[:, 0].astype(np.int16))
    return v.astype(np.float32)


def load_scores(path: str | os.PathLike) -> np.ndarray:
    path = str(path)
    try:
        if path.endswith(".txt"):
            with open(path, "rb") as f:
                raw = f.readline()
            scores = _parse_e8(raw)
            if scores is None:
                scores = np.array(raw.decode("ascii").split(), dtype=np.float32)
        elif path.endswith(".npy"):
            scores = np.load(path, allow_pickle=False).astype(np.float32, copy=False).ravel()
        else:
            size = os.path.getsize(path)
            if size % 4:
                raise ClsbenchError(f"{path}: {size} bytes is not a whole number of float32 scores")
            scores = np.fromfile(path, dtype="<f4")
    except ClsbenchError:
        raise
    except (ValueError, UnicodeDecodeError) as e:
        raise ClsbenchError(f"{path}: not a line of numbers ({e})") from None
    if scores.size == 0:
        raise ClsbenchError(f"{path}: holds no scores")
    if not np.all(np.isfinite(scores)):
        raise ClsbenchError(f"{path}: holds NaN or infinite scores")
    return scores


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
             strict: bool = False) -> Accuracy:
    result_dir = Path(result_dir)
    if not result_dir.is_dir():
        raise ClsbenchError(f"{result_dir}: result directory not found")
    labels = read_labels(label_file)
    files = sorted(n for n in os.listdir(result_dir)
                   if n.endswith(OUTPUT_SUFFIXES) and not n.startswith("."))
    if not files:
        raise ClsbenchError(f"{result_dir}: holds no output files (*.txt, *.bin, *.npy)")
    hits = [0] * TOPK
    count, n_classes, unlabelled, seen = 0, None, [], set()
    for name in files:
        key = image_key(name)
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
