"""A small labelled ImageNet-layout dataset from the photographs scikit-image ships.

No download: the photos are files inside the installed scikit-image package. Each is
cropped, flipped and rescaled into many distinct JPEGs (deterministically), named and
labelled like ImageNet val so every stage of the guide's workflow runs on real pixels.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from PIL import Image

from .. import ClsbenchError
from ..data.folders import write_labels

# (file in skimage/data, ImageNet-1k class index, class name): the nearest class for each
SOURCES = [
    ("chelsea.png", 281, "tabby cat"),
    ("coffee.png", 967, "espresso"),
    ("rocket.jpg", 657, "missile"),
    ("motorcycle_left.png", 670, "motor scooter"),
    ("camera.png", 872, "tripod"),  # grayscale photo: exercises convert('RGB')
]


def skimage_data_dir() -> Path:
    try:
        import skimage
    except ImportError:
        raise ClsbenchError("the demo builds its images from scikit-image's sample photos: "
                            "pip install 'clsbench[demo]'") from None
    return Path(os.path.dirname(skimage.__file__)) / "data"


def source_photos() -> list[tuple[Image.Image, int, str]]:
    d = skimage_data_dir()
    photos = []
    for f, label, name in SOURCES:
        with Image.open(d / f) as im:
            im.load()
            photos.append((im if im.mode in ("RGB", "L") else im.convert("RGB"), label, name))
    return photos


def variants(photo: Image.Image, n: int, rng: np.random.Generator):
    """Random crops (30-100 % of the area, aspect 3:4..4:3), flips, ImageNet-like sizes."""
    w, h = photo.size
    for _ in range(n):
        area = w * h * rng.uniform(0.3, 1.0)
        aspect = np.exp(rng.uniform(np.log(3 / 4), np.log(4 / 3)))
        cw = int(min(w, round(np.sqrt(area * aspect))))
        ch = int(min(h, round(np.sqrt(area / aspect))))
        left, top = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
        im = photo.crop((left, top, left + cw, top + ch))
        if rng.random() < 0.5:
            im = im.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        long_side = int(rng.integers(300, 640))
        s = long_side / max(im.size)
        im = im.resize((max(1, round(im.width * s)), max(1, round(im.height * s))), Image.BILINEAR)
        yield im


def build_demo_dataset(root: str | os.PathLike, per_class: int = 60, seed: int = 0) -> Path:
    """Writes root/val/ILSVRC2012_val_XXXXXXXX.JPEG and root/val_label.txt; returns root."""
    root = Path(root)
    val = root / "val"
    val.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    pairs, i = [], 0
    for photo, label, _ in source_photos():
        for im in variants(photo, per_class, rng):
            i += 1
            name = f"ILSVRC2012_val_{i:08d}.JPEG"
            if not (val / name).exists():
                tmp = val / f".{name}.tmp"
                im.save(tmp, format="JPEG", quality=90)
                os.replace(tmp, val / name)
            pairs.append((name, label))
    write_labels(root / "val_label.txt", pairs)
    return root


def calibration_batch(preset, n: int = 64, seed: int = 1) -> np.ndarray:
    """Preprocessed crops of the sample photos, for BatchNorm re-estimation."""
    from ..data.preprocess import crop_uint8, normalize

    rng = np.random.default_rng(seed)
    photos = source_photos()
    out = []
    for k in range(n):
        photo = photos[k % len(photos)][0]
        im = next(variants(photo, 1, rng))
        out.append(normalize(crop_uint8(im.convert("RGB"), preset), preset))
    return np.stack(out)


def proxy_weights() -> tuple[str, dict]:
    """The trained proxy shipped in the package: its weights file and training record."""
    import json
    from importlib.resources import files

    d = files("clsbench").joinpath("data")
    return str(d.joinpath("proxy_mnasnet1_0.pth")), json.loads(d.joinpath("proxy_mnasnet1_0.json").read_text())


def _openvino_bf16(log) -> list[tuple[str, str]]:
    """[("openvino", "bf16")] where this CPU executes bf16; else none, and a note saying why
    (OpenVINO would run fp32 under the bf16 label)."""
    from ..runtime.backends import precision_unsupported

    why = precision_unsupported("openvino", "bf16")
    if why:
        log.warning(f"OpenVINO bf16 not compared with fp32: {why}")
        return []
    return [("openvino", "bf16")]


def proxy_demo(work_dir: str, options, calib: int = 32, images: int = 160) -> dict:
    """Numbers that mean something without the official weights: the trained proxy on
    held-out images of its own task, in fp32 through the whole flow, then each reduced
    precision against fp32 on the images it was not calibrated on."""
    import dataclasses
    import logging

    from ..runtime.backends import get_backend
    from ..compile.artifacts import compile_model
    from ..data.folders import read_labels
    from .run import run
    from ..data.proxy_task import write_images

    log = logging.getLogger("clsbench")
    weights, record = proxy_weights()
    root = os.path.join(work_dir, "proxy")
    write_images(os.path.join(root, "data"), images, seed=99)  # seeds 0..: training used others
    log.info("trained proxy: MnasNet1.0 trained on a 16-class shapes x colours task "
             f"(task accuracy {record['task_accuracy']:.1%} when trained)")
    s = run(weights, os.path.join(root, "data"), dataclasses.replace(options, work_dir=os.path.join(root, "fp32"),
                                                                     backend=None, precision=None, check=False,
                                                                     stand_in_weights=False))
    labels = read_labels(os.path.join(root, "data", "val_label.txt"))
    rows = []
    pairs = [("onnxruntime", "int8")]
    try:
        get_backend("openvino")
        pairs += [*_openvino_bf16(log), ("openvino", "int8")]
    except ClsbenchError:
        log.warning("openvino is not installed: the demo shows ONNX Runtime int8 only")
    for backend, precision in pairs:
        how = (f"calibration: the first {calib} images; judged on the rest" if precision == "int8"
               else "no calibration: a run-time precision, judged on every image")
        log.info(f"compile {backend} {precision} ({how})")
        rec = compile_model(s["files"]["onnx"], backend=backend, precision=precision,
                            output_dir=os.path.join(root, "compiled"), data=os.path.join(root, "data", "val"),
                            calib_images=calib, parity_images=images, labels=labels)
        p = rec["parity"]
        rows.append({"config": f"{backend} {precision}", **p["accuracy"], "agreement": p["top1_agreement"],
                     "calibration_images": rec["calibration_images"]})
    from ..plan import PROXY_EVAL_IMAGES

    return {"summary": s, "reference": record["task_accuracy"] * 100, "reference_images": PROXY_EVAL_IMAGES,
            "precisions": rows}


def demo(work_dir: str, *, per_class: int, weights: str | None, options, check, proxy_images: int = 160) -> int:
    """`clsbench demo`: the real-photo flow (realistic random weights unless given real
    ones), then the trained proxy's numbers that mean something."""
    import dataclasses
    import logging

    from ..model.table import get_model
    from .run import run
    from ..report.tables import print_proxy_demo, print_run_summary

    log = logging.getLogger("clsbench")
    from ..model.table import GUIDE_MODEL
    from ..plan import DEFAULT_MODEL, check_inputs

    spec = get_model(options.model or DEFAULT_MODEL)
    check_inputs(weights, options)  # before the photo folder is built: nothing left behind
    data = build_demo_dataset(os.path.join(work_dir, "data"), per_class=per_class)
    real = weights
    if not weights:
        from ..model.stand_in import save_realistic_weights

        weights = os.path.join(work_dir, f"realistic_random_{spec.name}.pth")
        if not os.path.exists(weights):
            # 16 photos re-estimate BatchNorm to realistic magnitudes (the zoo's stand-ins use 8);
            # 64 took 12 of the 31 s of `demo --model efficientnet_b0` here, for nothing it shows
            save_realistic_weights(spec, calibration_batch(spec.preprocessing, n=16), weights)
        official = getattr(spec, "official", None)
        advice = (f"--weights {official.filename} (torchvision's file for {spec.key})" if official
                  else f"the trained weights of {spec.key} as --weights")
        log.warning(f"NO REAL WEIGHTS: using realistic *random* weights ({weights}): the accuracy of the "
                    f"photo run is meaningless; the pipeline, file formats and throughput are real. Pass "
                    f"{advice} for real accuracy.")
    s = run(weights, str(data), dataclasses.replace(options, work_dir=os.path.join(work_dir, "photos"),
                                                    stand_in_weights=options.stand_in_weights or not real,
                                                    check=options.check and bool(real)))
    print_run_summary(s, s["_spec"])
    if not real and spec.name == GUIDE_MODEL:  # the trained proxy is a MnasNet1.0
        print_proxy_demo(proxy_demo(work_dir, options, images=proxy_images))
    elif not real:
        log.info(f"the trained proxy (meaningful reduced-precision figures) is a {GUIDE_MODEL}: "
                 f"not run for {spec.key}")
    from ..ui import out

    out.print(f"\nreport (open it in a browser; it loads nothing from anywhere): {s['files']['report']}",
              markup=False, soft_wrap=True)
    return check(s["accuracy"]) if real else 0
