from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from clsbench import ClsbenchError
from clsbench.models import PRESETS, get_preprocessing
from clsbench.preprocess import MANIFEST, preprocess_dir, preprocess_image
from conftest import PHOTO_CASES


def reference_bin(path: Path, resize: int, crop: int, mean, std) -> bytes:
    """An independent reading of formats.md §3, written from the spec, not from clsbench."""
    img = Image.open(path).convert("RGB")
    w, h = img.size
    short, long_ = (w, h) if w <= h else (h, w)
    if short != resize:
        new_long = int(resize * long_ / short)
        img = img.resize((resize, new_long) if w <= h else (new_long, resize), Image.BILINEAR)
    w, h = img.size
    top, left = int(round((h - crop) / 2.0)), int(round((w - crop) / 2.0))
    img = img.crop((left, top, left + crop, top + crop))
    a = np.array(img, dtype=np.float32).transpose(2, 0, 1)
    a = a / 255.0
    a -= np.array(mean, dtype=np.float32)[:, None, None]
    a /= np.array(std, dtype=np.float32)[:, None, None]
    return a.astype("<f4").tobytes()


def test_pixel_exact_to_torchvision_preset(photo_dir):
    tv = pytest.importorskip("torchvision")
    transform = tv.models.MNASNet1_0_Weights.IMAGENET1K_V1.transforms()
    pp = get_preprocessing("mnasnet1_0")
    for name, _, size in PHOTO_CASES:
        ours = preprocess_image(photo_dir / name, pp)
        theirs = transform(Image.open(photo_dir / name).convert("RGB")).numpy()
        assert ours.shape == (3, 224, 224) and ours.dtype == np.float32
        assert np.array_equal(ours, theirs), f"{name} {size}: max diff {np.abs(ours - theirs).max()}"


def test_bin_files_byte_identical_to_independent_reference(photo_dir, tmp_path):
    pp = PRESETS["mnasnet"]
    rep = preprocess_dir(photo_dir, tmp_path, pp, workers=2, show_progress=False)
    assert rep.written == len(PHOTO_CASES) and not rep.failed
    for name, _, _ in PHOTO_CASES:
        out = tmp_path / (name.split(".")[0] + ".bin")
        data = out.read_bytes()
        assert len(data) == 602_112
        assert data == reference_bin(photo_dir / name, 256, 224, pp.mean, pp.std), name


@pytest.mark.parametrize("preset,crop", [("inceptionv3", 299), ("inceptionv4", 299), ("resnet", 224)])
def test_preset_table_picks_resize_crop_mean_std(photo_dir, tmp_path, preset, crop):
    pp = PRESETS[preset]
    assert pp.crop == crop
    preprocess_dir(photo_dir, tmp_path, pp, workers=1, show_progress=False)
    data = (tmp_path / "portrait.bin").read_bytes()
    assert len(data) == 3 * crop * crop * 4
    assert data == reference_bin(photo_dir / "portrait.jpg", pp.resize, crop, pp.mean, pp.std)
    if preset == "inceptionv4":
        assert pp.mean == pp.std == (0.5, 0.5, 0.5)


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
    preprocess_dir(photo_dir, tmp_path, pp, workers=2, show_progress=False)
    victim = tmp_path / "odd.bin"
    victim.unlink()
    keep = tmp_path / "tiny.bin"
    before = keep.stat().st_mtime_ns
    (tmp_path / ".landscape.bin.123.tmp").write_bytes(b"half")  # left by a killed writer
    rep = preprocess_dir(photo_dir, tmp_path, pp, workers=2, show_progress=False)
    assert (rep.written, rep.resumed) == (1, len(PHOTO_CASES) - 1)
    assert victim.stat().st_size == 602_112 and keep.stat().st_mtime_ns == before
    assert not list(tmp_path.glob(".*.tmp"))


def test_refuses_to_mix_preprocessing_settings(photo_dir, tmp_path):
    preprocess_dir(photo_dir, tmp_path, PRESETS["mnasnet"], workers=1, show_progress=False)
    assert (tmp_path / MANIFEST).is_file()
    with pytest.raises(ClsbenchError, match="other preprocessing"):
        preprocess_dir(photo_dir, tmp_path, PRESETS["inceptionv4"], workers=1, show_progress=False)


def test_refuses_foreign_bin_files(photo_dir, tmp_path):
    (tmp_path / "x.bin").write_bytes(b"\0" * 16)
    with pytest.raises(ClsbenchError, match="did not write"):
        preprocess_dir(photo_dir, tmp_path, PRESETS["mnasnet"], workers=1, show_progress=False)


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
