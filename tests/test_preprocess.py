from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from clsbench import ClsbenchError
from clsbench.model.table import PRESETS, get_preprocessing
from clsbench._io import sidecar
from clsbench.data.preprocess import preprocess_dir, preprocess_image
from helpers import PHOTO_CASES, assert_guide_folder, guide_bin_info, reference_bin


# Each preset against the torchvision weights whose transforms() it stands for: the numbers
# come from torchvision here, never from clsbench's table.
# (the guide's presets name torchvision's V1 weights; a bare model name is torchvision's DEFAULT)
TORCHVISION_PRESETS = [("mnasnet1_0", "MNASNet1_0_Weights", "DEFAULT"), ("mnasnet", "MNASNet1_0_Weights", "IMAGENET1K_V1"),
                       ("resnet50", "ResNet50_Weights", "DEFAULT"), ("resnet", "ResNet50_Weights", "IMAGENET1K_V1"),
                       ("resnet50:IMAGENET1K_V1", "ResNet50_Weights", "IMAGENET1K_V1"),
                       ("resnet18", "ResNet18_Weights", "DEFAULT"), ("inception_v3", "Inception_V3_Weights", "DEFAULT"),
                       ("inceptionv3", "Inception_V3_Weights", "IMAGENET1K_V1")]


@pytest.mark.parametrize("name,weights_enum,tag", TORCHVISION_PRESETS)
def test_pixel_exact_to_torchvision_preset(photo_dir, name, weights_enum, tag):
    import torchvision as tv

    transform = getattr(getattr(tv.models, weights_enum), tag).transforms()
    pp = get_preprocessing(name)
    assert (pp.resize, pp.crop) == (transform.resize_size[0], transform.crop_size[0])
    assert pp.interpolation == transform.interpolation.value
    assert pp.mean == tuple(transform.mean) and pp.std == tuple(transform.std)
    for name, _, size in PHOTO_CASES:
        ours = preprocess_image(photo_dir / name, pp)
        theirs = transform(Image.open(photo_dir / name).convert("RGB")).numpy()
        assert ours.shape == (3, pp.crop, pp.crop) and ours.dtype == np.float32
        assert np.array_equal(ours, theirs), f"{name} {size}: max diff {np.abs(ours - theirs).max()}"


def test_bin_files_byte_identical_to_independent_reference(photo_dir, tmp_path):
    pp = PRESETS["mnasnet"]
    rep = preprocess_dir(photo_dir, tmp_path / "prep", pp, workers=2, show_progress=False)
    assert rep.written == len(PHOTO_CASES) and not rep.failed
    # gen_dataset_info.py lists the folder: it holds the .bin files and nothing else
    assert_guide_folder(tmp_path / "prep", ".bin")
    assert sorted(guide_bin_info(tmp_path / "prep")) == sorted(
        str(tmp_path / "prep" / (n.split(".")[0] + ".bin")) for n, _, _ in PHOTO_CASES)
    for name, _, _ in PHOTO_CASES:
        out = tmp_path / "prep" / (name.split(".")[0] + ".bin")
        data = out.read_bytes()
        assert len(data) == 602_112
        assert data == reference_bin(photo_dir / name, 256, 224, pp.mean, pp.std), name


def test_bicubic_preset_is_bicubic(photo_dir):
    """A bicubic preset (as torchvision's ViT/EfficientNet weights use) against torchvision's
    own ImageClassification transform, the class behind weights.transforms()."""
    import dataclasses

    from torchvision.transforms import InterpolationMode
    from torchvision.transforms._presets import ImageClassification

    pp = dataclasses.replace(PRESETS["mnasnet"], interpolation="bicubic")
    transform = ImageClassification(crop_size=224, resize_size=256, interpolation=InterpolationMode.BICUBIC)
    for name, _, _ in PHOTO_CASES:
        theirs = transform(Image.open(photo_dir / name).convert("RGB")).numpy()
        assert np.array_equal(preprocess_image(photo_dir / name, pp), theirs), name


# formats.md §3's table, typed here from the spec
GUIDE_PRESETS = {"mnasnet": (256, 224, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
                 "resnet": (256, 224, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
                 "inceptionv3": (342, 299, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
                 "inceptionv4": (342, 299, (0.5, 0.5, 0.5), (0.5, 0.5, 0.5))}


@pytest.mark.parametrize("preset", sorted(GUIDE_PRESETS))
def test_guide_presets_byte_identical_to_the_guides_table(photo_dir, tmp_path, preset):
    resize, crop, mean, std = GUIDE_PRESETS[preset]
    preprocess_dir(photo_dir, tmp_path, PRESETS[preset], workers=1, show_progress=False)
    data = (tmp_path / "portrait.bin").read_bytes()
    assert len(data) == 3 * crop * crop * 4
    assert data == reference_bin(photo_dir / "portrait.jpg", resize, crop, mean, std)


def test_model_names_and_guide_preset_names_resolve():
    assert get_preprocessing("mnasnet") == get_preprocessing("mnasnet1_0") == PRESETS["mnasnet"]
    with pytest.raises(ClsbenchError, match="unknown model/preset"):
        get_preprocessing("vgg99")


def test_class_folder_layout_writes_flat_sorted(photo_dir, tmp_path):
    src = tmp_path / "val"
    for i, (name, _, _) in enumerate(PHOTO_CASES[:4]):
        d = src / f"n0000000{i % 2}"
        d.mkdir(parents=True, exist_ok=True)
        (d / name).write_bytes((photo_dir / name).read_bytes())
    (src / "README.txt").write_text("not an image")
    rep = preprocess_dir(src, tmp_path / "out", PRESETS["mnasnet"], workers=1, show_progress=False)
    assert rep.layout == "class-folders"
    assert rep.outputs == sorted(n.split(".")[0] + ".bin" for n, _, _ in PHOTO_CASES[:4])
    assert sorted(p.name for p in (tmp_path / "out").glob("*.bin")) == rep.outputs
    assert rep.ignored == ["README.txt"]


def test_rerun_resumes_without_rewriting(photo_dir, tmp_path):
    pp = PRESETS["mnasnet"]
    out = tmp_path / "prep"
    preprocess_dir(photo_dir, out, pp, workers=2, show_progress=False)
    victim = out / "odd.bin"
    victim.unlink()
    keep = out / "tiny.bin"
    before = keep.stat().st_mtime_ns
    (tmp_path / ".prep.tmp").mkdir()
    (tmp_path / ".prep.tmp" / ".landscape.bin.123.tmp").write_bytes(b"half")  # left by a killed writer
    rep = preprocess_dir(photo_dir, out, pp, workers=2, show_progress=False)
    assert (rep.written, rep.resumed) == (1, len(PHOTO_CASES) - 1)
    assert victim.stat().st_size == 602_112 and keep.stat().st_mtime_ns == before
    assert not (tmp_path / ".prep.tmp").exists()
    assert_guide_folder(out, ".bin")


def test_refuses_to_mix_preprocessing_settings(photo_dir, tmp_path):
    preprocess_dir(photo_dir, tmp_path / "p", PRESETS["mnasnet"], workers=1, show_progress=False)
    assert sidecar(tmp_path / "p").is_file()  # the record is beside the folder, not in it
    with pytest.raises(ClsbenchError, match="another run; differs in preprocessing"):
        preprocess_dir(photo_dir, tmp_path / "p", PRESETS["inceptionv4"], workers=1, show_progress=False)


def test_refuses_foreign_bin_files(photo_dir, tmp_path):
    (tmp_path / "p").mkdir()
    (tmp_path / "p" / "x.bin").write_bytes(b"\0" * 16)
    with pytest.raises(ClsbenchError, match="did not write"):
        preprocess_dir(photo_dir, tmp_path / "p", PRESETS["mnasnet"], workers=1, show_progress=False)


def test_unreadable_image_is_skipped_and_named_or_stops_when_strict(photo_dir, tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "good.jpg").write_bytes((photo_dir / "portrait.jpg").read_bytes())
    data = (photo_dir / "landscape.jpg").read_bytes()
    (src / "truncated.JPEG").write_bytes(data[: len(data) // 3])
    (src / "empty.JPEG").write_bytes(b"")
    rep = preprocess_dir(src, tmp_path / "out", PRESETS["mnasnet"], workers=1, show_progress=False)
    assert rep.written == 1 and rep.outputs == ["good.bin"]
    failed = {Path(f).name: e for f, e in rep.failed}
    assert set(failed) == {"truncated.JPEG", "empty.JPEG"}
    assert all(str(src) in e for e in failed.values())
    assert not (tmp_path / "out" / "truncated.bin").exists()
    with pytest.raises(ClsbenchError, match="empty.JPEG|truncated.JPEG"):
        preprocess_dir(src, tmp_path / "out2", PRESETS["mnasnet"], workers=1, strict=True,
                       show_progress=False)


def test_duplicate_stems_are_refused(photo_dir, tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.jpg").write_bytes((photo_dir / "portrait.jpg").read_bytes())
    (src / "a.png").write_bytes((photo_dir / "tiny.png").read_bytes())
    with pytest.raises(ClsbenchError, match="would both write output a.bin"):
        preprocess_dir(src, tmp_path / "out", PRESETS["mnasnet"], show_progress=False)


def test_worker_count_does_not_change_bytes(photo_dir, tmp_path):
    pp = PRESETS["mnasnet"]
    preprocess_dir(photo_dir, tmp_path / "one", pp, workers=1, show_progress=False)
    preprocess_dir(photo_dir, tmp_path / "two", pp, workers=2, show_progress=False)
    for p in (tmp_path / "one").glob("*.bin"):
        assert p.read_bytes() == (tmp_path / "two" / p.name).read_bytes()


def test_default_pool_is_sized_by_usable_cpus_and_images(monkeypatch, photo_dir, tmp_path):
    """Default: one process per usable CPU (affinity, not the machine's count), at most one per
    256 images, so a small folder is done inline; an explicit --workers is taken as asked."""
    import subprocess
    import sys

    from clsbench.data import preprocess
    from clsbench.data.preprocess import pool_size

    code = "import os; os.sched_setaffinity(0, {0}); from clsbench._io import usable_cpus; print(usable_cpus())"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout.strip() == "1"
    monkeypatch.setattr("clsbench._io.usable_cpus", lambda: 4)
    assert [pool_size(None, n) for n in (5, 29, 255, 256, 600, 5000)] == [1, 1, 1, 1, 2, 4]
    assert [pool_size(w, n) for w, n in ((2, 29), (3, 7), (8, 10))] == [2, 1, 8]

    def no_pool(*a, **k):
        raise AssertionError("a worker process was started for a small folder")

    monkeypatch.setattr(preprocess, "ProcessPoolExecutor", no_pool)
    rep = preprocess_dir(photo_dir, tmp_path / "p", PRESETS["mnasnet"], show_progress=False)
    assert rep.written == len(list(photo_dir.iterdir()))
