import pytest
from PIL import Image

from clsbench import ClsbenchError
from clsbench.data.folders import gen_bin_info, gen_jpg_info, labels_from_class_folders, list_images, read_info, read_labels


def test_bin_info_sorted_continuous_guide_format(tmp_path):
    d = tmp_path / "prep_dataset"
    d.mkdir()
    for n in ["c", "a", "b10", "b2"]:
        (d / f"{n}.bin").write_bytes(b"")
    (d / "notes.txt").write_text("x")
    out = tmp_path / "x.info"
    gen_bin_info(str(d), str(out), 224, 224)
    lines = out.read_text().splitlines()
    assert lines == [f"{i} {d}/{n}.bin 224 224" for i, n in enumerate(["a", "b10", "b2", "c"])]
    assert [e.idx for e in read_info(out)] == [0, 1, 2, 3]


def test_bin_info_relative_path_kept_as_given(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "prep_dataset").mkdir()
    (tmp_path / "prep_dataset" / "x.bin").write_bytes(b"")
    gen_bin_info("./prep_dataset", "m.info", 224, 224)
    assert (tmp_path / "m.info").read_text() == "0 ./prep_dataset/x.bin 224 224\n"


def test_jpg_info_reads_sizes_one_index_across_extensions(tmp_path):
    sizes = {"b.JPEG": (30, 20), "a.jpg": (11, 13), "c.png": (5, 7)}
    for n, s in sizes.items():
        Image.new("RGB", s).save(tmp_path / n, format="PNG" if n.endswith("png") else "JPEG")
    out = tmp_path / "j.info"
    entries = gen_jpg_info(str(tmp_path), str(out))
    assert [(e.idx, e.path.split("/")[-1], e.width, e.height) for e in entries] == [
        (0, "a.jpg", 11, 13), (1, "b.JPEG", 30, 20), (2, "c.png", 5, 7)]
    assert out.read_text().splitlines()[1] == f"1 {tmp_path}/b.JPEG 30 20"


@pytest.mark.parametrize("text,match", [
    ("0 a.bin 224\n", r":1: expected"),
    ("0 a.bin 224 224\nx b.bin 224 224\n", r":2: idx, width and height must be integers"),
    ("0 a.bin 224 224\n0 b.bin 224 224\n", r":2: duplicate idx 0 \(first on line 1\)"),
    ("0 a.bin 0 224\n", r":1: negative or zero"),
    ("", "empty"),
])
def test_read_info_names_file_and_line(tmp_path, text, match):
    p = tmp_path / "bad.info"
    p.write_text(text)
    with pytest.raises(ClsbenchError, match=match) as e:
        read_info(p)
    assert str(p) in str(e.value)


def test_read_labels_crlf_and_trailing_blank_line(tmp_path):
    p = tmp_path / "val_label.txt"
    p.write_bytes(b"ILSVRC2012_val_00000001.JPEG 65\r\nILSVRC2012_val_00000002.JPEG 970\r\n\r\n")
    assert read_labels(p) == {"ILSVRC2012_val_00000001": 65, "ILSVRC2012_val_00000002": 970}


@pytest.mark.parametrize("text,match", [
    ("a.JPEG 1\nb.JPEG\n", r":2: expected '<image name> <label>'"),
    ("a.JPEG one\n", r":1: label 'one' is not an integer"),
    ("a.JPEG 1\na.JPEG 2\n", r":2: duplicate image 'a' \(first on line 1\)"),
    ("a.JPEG 1000\n", r":1: label 1000 out of range"),
    ("a.JPEG -1\n", r":1: label -1 out of range"),
])
def test_read_labels_names_file_and_line(tmp_path, text, match):
    p = tmp_path / "val_label.txt"
    p.write_text(text)
    with pytest.raises(ClsbenchError, match=match):
        read_labels(p, num_classes=1000)


def test_class_folders_get_imagenet_class_indices(tmp_path):
    """Three of the 1000 folders: labels are ImageNet's indices, not ranks among the three
    (281 tabby cat, 657 missile, 967 espresso; cf. the ILSVRC devkit's synset order)."""
    for wnid, name in [("n07920052", "x.JPEG"), ("n02123045", "y.JPEG"), ("n03773504", "z.JPEG")]:
        (tmp_path / wnid).mkdir(exist_ok=True)
        (tmp_path / wnid / name).write_bytes(b"")
    listing = list_images(tmp_path)
    assert labels_from_class_folders(listing) == [("y.JPEG", 281), ("z.JPEG", 657), ("x.JPEG", 967)]


def test_first_and_last_wnids_and_count():
    from clsbench.data.folders import imagenet_wnids

    w = imagenet_wnids()
    assert len(w) == len(set(w)) == 1000 and w[0] == "n01440764" and w[-1] == "n15075141"


def test_class_folders_that_are_not_wnids_are_refused(tmp_path):
    for folder in ("cats", "dogs"):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "a.JPEG").write_bytes(b"")
    with pytest.raises(ClsbenchError, match="cats, dogs are not ImageNet wnids.*give a label file"):
        labels_from_class_folders(list_images(tmp_path))


def test_utf8_bom_is_accepted_in_label_and_info_files(tmp_path):
    p = tmp_path / "val_label.txt"
    p.write_bytes(b"\xef\xbb\xbfa.JPEG 3\nb.JPEG 4\n")
    assert read_labels(p) == {"a": 3, "b": 4}  # the first image is not lost to the BOM
    i = tmp_path / "x.info"
    i.write_bytes(b"\xef\xbb\xbf0 a.bin 224 224\n1 b.bin 224 224\n")
    assert [e.idx for e in read_info(i)] == [0, 1]


def test_whitespace_in_info_paths_refused_before_writing(tmp_path):
    d = tmp_path / "prep data"
    d.mkdir()
    (d / "a.bin").write_bytes(b"")
    with pytest.raises(ClsbenchError, match="contains whitespace"):
        gen_bin_info(str(d), str(tmp_path / "x.info"), 224, 224)
    assert not (tmp_path / "x.info").exists()
