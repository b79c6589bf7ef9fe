"""Predictions for images without labels: each image's top-5 classes, with names and
probabilities, as predictions.csv (and the rows for the terminal and report).

Probabilities are the softmax of the model's outputs (torchvision's and timm's classifiers
output logits), computed in float64; the ranking is the same rule as the accuracy's
(`scores.top5`: ties in ascending class index).
"""
from __future__ import annotations

import csv
import io
import os

import numpy as np

from .._io import atomic_write_text
from .evaluate import Outputs
from ..runtime.scores import TOPK, top5

SHOWN = 10  # rows kept in summary.json for the terminal table and the report


def softmax(scores: np.ndarray) -> np.ndarray:
    z = scores.astype(np.float64)
    z = np.exp(z - z.max(axis=1, keepdims=True))
    return z / z.sum(axis=1, keepdims=True)


def header() -> list[str]:
    return ["image"] + [f"{what}{r}" for r in range(1, TOPK + 1) for what in ("class", "name", "prob")]


def predictions(result_dir: str | os.PathLike, names: list[str] | None) -> list[dict]:
    """One row per output, in image-name order: {"image", "top5": [(class, name, prob), ...]}."""
    rows = []
    for _, keys, scores in Outputs(result_dir).batches():
        ranked, prob = top5(scores), softmax(scores)
        for key, cls, p in zip(keys, ranked, prob):
            rows.append({"image": key, "top5": [(int(c), names[c] if names and c < len(names) else "",
                                                  float(p[c])) for c in cls]})
    rows.sort(key=lambda r: r["image"])
    return rows


def write_predictions(rows: list[dict], path: str | os.PathLike) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(header())
    for r in rows:
        w.writerow([r["image"]] + [x for c, n, p in r["top5"] for x in (c, n, f"{p:.6f}")])
    atomic_write_text(path, buf.getvalue())
    return str(path)


def record(rows: list[dict], path: str, names_from: str | None) -> dict:
    """summary.json's `predictions`: the file, the count and the first SHOWN rows."""
    return {"file": path, "images": len(rows), "class_names": names_from,
            "shown": [{"image": r["image"], "top5": [{"class": c, "name": n, "prob": round(p, 6)}
                                                      for c, n, p in r["top5"]]} for r in rows[:SHOWN]]}
