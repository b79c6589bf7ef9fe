"""Shared fixtures: real photographs (scikit-image's shipped samples), realistic weights,
an exported model and a tiny ImageNet-layout dataset. Nothing is downloaded."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")
ROOT = Path(__file__).resolve().parents[1]


def photo(name: str) -> Image.Image:
    from clsbench.demo import skimage_data_dir

    with Image.open(skimage_data_dir() / name) as im:
        im.load()
        return im.convert("RGB")


# (file name, source photo, size): shorter side already 256, portrait, landscape, tiny,
# extreme aspect, large, odd sizes for the rounding of the centre crop
PHOTO_CASES = [
    ("short256_landscape.jpg", "chelsea.png", (384, 256)),
    ("short256_portrait.png", "coffee.png", (256, 345)),
    ("portrait.jpg", "rocket.jpg", (333, 500)),
    ("landscape.jpg", "motorcycle_left.png", (741, 500)),
    ("tiny.png", "chelsea.png", (97, 61)),
    ("tiny_portrait.jpg", "coffee.png", (40, 150)),
    ("odd.png", "astronaut.png", (511, 257)),
    ("large.jpg", "hubble_deep_field.jpg", (1000, 872)),
    ("gray.png", "camera.png", (300, 400)),
]


@pytest.fixture(scope="session")
def photo_dir(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("photos")
    for name, src, size in PHOTO_CASES:
        im = photo(src).resize(size, Image.BICUBIC)
        if name.startswith("gray"):
            im = im.convert("L")
        im.save(d / name, quality=92) if name.endswith(".jpg") else im.save(d / name)
    return d


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory) -> Path:
    """ImageNet layout: val/ (13 JPEGs: a prime, so most batch sizes leave a partial batch)."""
    from clsbench.dataset import write_labels
    from clsbench.demo import build_demo_dataset

    root = tmp_path_factory.mktemp("imagenet")
    build_demo_dataset(root, per_class=3)  # 15 images
    val = root / "val"
    names = sorted(os.listdir(val))
    for n in names[13:]:
        (val / n).unlink()
    labels = (root / "val_label.txt").read_text().splitlines()[:13]
    write_labels(root / "val_label.txt", [(l.split()[0], int(l.split()[1])) for l in labels])
    return root


@pytest.fixture(scope="session")
def spec():
    from clsbench.models import get_model

    return get_model("mnasnet1_0")


@pytest.fixture(scope="session")
def weights(tmp_path_factory, spec) -> Path:
    """Realistic random weights: BN statistics re-estimated on real photos, logits std ~1."""
    pytest.importorskip("torch")
    from clsbench.demo import calibration_batch
    from clsbench.synthetic_weights import save_realistic_weights

    path = tmp_path_factory.mktemp("weights") / "realistic_mnasnet1_0.pth"
    save_realistic_weights(spec, calibration_batch(spec.preprocessing, n=48), str(path))
    return path


@pytest.fixture(scope="session")
def onnx_model(tmp_path_factory, weights, photo_dir) -> Path:
    from clsbench.export import export_onnx

    out = tmp_path_factory.mktemp("model") / "mnasnet1.0.onnx"
    export_onnx(str(weights), str(out), parity_images=str(photo_dir))
    return out


@pytest.fixture(scope="session")
def prep(tmp_path_factory, tiny_dataset, spec) -> Path:
    from clsbench.preprocess import preprocess_dir

    out = tmp_path_factory.mktemp("prep") / "prep_dataset"
    preprocess_dir(tiny_dataset / "val", out, spec.preprocessing, workers=2, show_progress=False)
    return out


@pytest.fixture(scope="session")
def info_file(tmp_path_factory, prep) -> Path:
    from clsbench.dataset import gen_bin_info

    out = tmp_path_factory.mktemp("info") / "prep_bin.info"
    gen_bin_info(str(prep), str(out), 224, 224)
    return out


def run_cli(*args, cwd=None, env=None, check=True) -> subprocess.CompletedProcess:
    """`clsbench ...` in a subprocess, the way a user runs it."""
    e = dict(os.environ, **(env or {}))
    p = subprocess.run([sys.executable, "-m", "clsbench.cli", *map(str, args)], cwd=cwd, env=e,
                       capture_output=True, text=True)
    if check and p.returncode != 0:
        raise AssertionError(f"clsbench {' '.join(map(str, args))} exited {p.returncode}\n"
                             f"stdout:\n{p.stdout}\nstderr:\n{p.stderr}")
    return p


def run_script(script, *args, cwd=None, check=True) -> subprocess.CompletedProcess:
    cmd = ["bash", str(script)] if str(script).endswith(".sh") else [sys.executable, str(script)]
    p = subprocess.run([*cmd, *map(str, args)], cwd=cwd, capture_output=True, text=True)
    if check and p.returncode != 0:
        raise AssertionError(f"{script} exited {p.returncode}\nstdout:\n{p.stdout}\nstderr:\n{p.stderr}")
    return p


__all__ = ["ROOT", "run_cli", "run_script", "photo", "PHOTO_CASES", "shutil", "np"]
