"""A procedurally drawn, learnable task (shapes x colours) for reduced-precision parity.

Realistic random weights make fp32 parity meaningful, but not int8/bf16: with no learned
structure, logits are nearly tied and any rounding flips the top-1 (measured: OpenVINO
bf16 agrees with fp32 on 45 % of top-1s, int8 on 5 %). A MnasNet1.0 trained for a few
minutes on this task has confident, separated logits like a real classifier, so agreement
figures mean something. Images are drawn with PIL from a seed: no data is downloaded.
"""
from __future__ import annotations

import math

import numpy as np
from PIL import Image, ImageDraw

SHAPES = ("circle", "square", "triangle", "cross")
COLOURS = {"red": (220, 40, 40), "green": (40, 190, 60), "blue": (40, 70, 220), "yellow": (230, 210, 40)}
NUM_CLASSES = len(SHAPES) * len(COLOURS)  # labels 0..15 of the model's 1000 outputs


def label_of(shape: str, colour: str) -> int:
    return SHAPES.index(shape) * len(COLOURS) + list(COLOURS).index(colour)


def draw(label: int, rng: np.random.Generator, size: tuple[int, int] = (256, 256)) -> Image.Image:
    w, h = size
    shape, colour = SHAPES[label // len(COLOURS)], list(COLOURS)[label % len(COLOURS)]
    # textured grey background with grey distractor blobs: colour only comes from the shape
    base = rng.integers(60, 200)
    bg = np.clip(base + rng.normal(0, 25, (h // 8, w // 8, 1)), 0, 255).astype(np.uint8)
    im = Image.fromarray(np.repeat(bg, 3, axis=2)).resize((w, h), Image.BILINEAR)
    d = ImageDraw.Draw(im)
    for _ in range(rng.integers(0, 4)):
        g = int(rng.integers(0, 255))
        x, y, r = rng.integers(0, w), rng.integers(0, h), rng.integers(5, 30)
        d.ellipse((x - r, y - r, x + r, y + r), fill=(g, g, g))
    r = int(rng.integers(min(w, h) // 7, min(w, h) // 3))
    cx, cy = int(rng.integers(r, w - r)), int(rng.integers(r, h - r))
    jitter = rng.integers(-25, 26, 3)
    fill = tuple(int(np.clip(c + j, 0, 255)) for c, j in zip(COLOURS[colour], jitter))
    rot = rng.uniform(0, 2 * math.pi)

    def poly(points):
        return [(cx + r * (px * math.cos(rot) - py * math.sin(rot)),
                 cy + r * (px * math.sin(rot) + py * math.cos(rot))) for px, py in points]

    if shape == "circle":
        d.ellipse((cx - r, cy - r, cx + r, cy + r), fill=fill)
    elif shape == "square":
        d.polygon(poly([(-0.8, -0.8), (0.8, -0.8), (0.8, 0.8), (-0.8, 0.8)]), fill=fill)
    elif shape == "triangle":
        d.polygon(poly([(0, -1), (0.87, 0.5), (-0.87, 0.5)]), fill=fill)
    else:
        t = 0.3
        d.polygon(poly([(-t, -1), (t, -1), (t, -t), (1, -t), (1, t), (t, t), (t, 1), (-t, 1),
                        (-t, t), (-1, t), (-1, -t), (-t, -t)]), fill=fill)
    return im


def batch(n: int, seed: int, pp) -> tuple[np.ndarray, np.ndarray]:
    """n preprocessed images (exact path) and their labels, deterministic for a seed."""
    from .preprocess import crop_uint8, normalize

    rng = np.random.default_rng(seed)
    labels = rng.integers(0, NUM_CLASSES, n)
    x = np.stack([normalize(crop_uint8(draw(int(k), rng), pp), pp) for k in labels])
    return x, labels


def write_images(root, n: int, seed: int) -> list[tuple[str, int]]:
    """ImageNet-layout JPEGs of the task (root/val + root/val_label.txt)."""
    import os
    from pathlib import Path

    from .folders import write_labels

    val = Path(root) / "val"
    val.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    pairs = []
    for i in range(n):
        k = int(rng.integers(0, NUM_CLASSES))
        size = (int(rng.integers(260, 500)), int(rng.integers(260, 400)))
        name = f"proxy_{seed}_{i:06d}.JPEG"
        if not (val / name).exists():
            draw(k, rng, size).save(val / f".{name}.tmp", format="JPEG", quality=90)
            os.replace(val / f".{name}.tmp", val / name)
        else:
            draw(k, rng, size)  # keep the generator in step
        pairs.append((name, k))
    write_labels(Path(root) / "val_label.txt", pairs)
    return pairs
