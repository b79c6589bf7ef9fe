import json

import numpy as np
import pytest

from clsbench import ClsbenchError
from clsbench.accuracy.evaluate import evaluate, write_result
from clsbench.runtime.outputs import image_key


def write_outputs(d, rows: dict, fmt="txt"):
    d.mkdir(parents=True, exist_ok=True)
    for stem, scores in rows.items():
        a = np.asarray(scores, dtype=np.float32)
        if fmt == "txt":
            (d / f"{stem}_1.txt").write_text(" ".join(f"{x:.6f}" for x in a) + " \n")
        elif fmt == "bin":
            a.astype("<f4").tofile(d / f"{stem}_1.bin")
        else:
            np.save(d / f"{stem}_1.npy", a)


def crafted(n_classes=10):
    """Six images whose label ranks 1st, 2nd, 3rd, 5th, 7th and 1st: hand-computed Top-k."""
    ranks = {"img_a": 0, "img_b": 1, "img_c": 2, "img_d": 4, "img_e": 6, "img_f": 0}
    rows, labels = {}, {}
    rng = np.random.default_rng(0)
    for stem, r in ranks.items():
        order = rng.permutation(n_classes)  # order[j] is the class ranked j-th
        scores = np.empty(n_classes)
        scores[order] = np.linspace(5, -5, n_classes)
        rows[stem] = scores
        labels[stem] = int(order[r])
    return rows, labels


def label_file(path, labels, shift=0, ext=".JPEG"):
    path.write_text("".join(f"{k}{ext} {v - shift}\n" for k, v in labels.items()))
    return path


@pytest.mark.parametrize("fmt", ["txt", "bin", "npy"])
def test_hand_computed_topk(tmp_path, fmt):
    rows, labels = crafted()
    write_outputs(tmp_path / "out", rows, fmt)
    acc = evaluate(tmp_path / "out", label_file(tmp_path / "l.txt", labels))
    # hits by rank: 1st x2, 2nd, 3rd, 5th, (7th is outside top-5)
    assert acc.hits == [2, 1, 1, 0, 1]
    assert acc.images == 6 and acc.num_classes == 10
    assert [round(float(x), 6) for x in acc.topk] == [round(v / 6, 6) for v in (2, 3, 4, 4, 5)]


def test_exact_result_json_text(tmp_path):
    rows, labels = crafted()
    write_outputs(tmp_path / "out", rows)
    acc = evaluate(tmp_path / "out", label_file(tmp_path / "l.txt", labels))
    path = write_result(acc, tmp_path, "result.json")
    assert path.read_text() == (
        '{"title": "Overall statistical evaluation", "value": [{"key": "Number of images", '
        '"value": "6"}, {"key": "Number of classes", "value": "10"}, {"key": "Top1 accuracy", '
        '"value": "33.33%"}, {"key": "Top2 accuracy", "value": "50.0%"}, {"key": "Top3 accuracy", '
        '"value": "66.67%"}, {"key": "Top4 accuracy", "value": "66.67%"}, {"key": "Top5 accuracy", '
        '"value": "83.33%"}]}')


def test_rounding_matches_reference_on_guide_figure():
    from clsbench.accuracy.evaluate import Accuracy

    # 36700/50000 = 73.4 % -> "73.4%" (not "73.40%"), as the guide prints it
    acc = Accuracy(50000, 1000, [36700, 5250, 1985, 1105, 710])
    vals = [v["value"] for v in json.loads(acc.result_json())["value"]]
    assert vals == ["50000", "1000", "73.4%", "83.9%", "87.87%", "90.08%", "91.5%"]


def test_1001_class_output_shifts_labels(tmp_path):
    rows, labels = crafted(n_classes=1001)
    write_outputs(tmp_path / "out", rows)
    # the label file holds 0-based ImageNet labels; the model's class 0 is background
    acc = evaluate(tmp_path / "out", label_file(tmp_path / "l.txt", labels, shift=1))
    assert acc.num_classes == 1001 and acc.hits == [2, 1, 1, 0, 1]


def test_ties_rank_by_ascending_class_index(tmp_path):
    write_outputs(tmp_path / "out", {"t": [1.0, 3.0, 3.0, 3.0, 0.0, 0.0, 0.0]})
    (tmp_path / "l.txt").write_text("t.JPEG 3\n")
    assert evaluate(tmp_path / "out", tmp_path / "l.txt").hits == [0, 0, 1, 0, 0]


def test_image_key_cuts_at_last_underscore():
    assert image_key("ILSVRC2012_val_00000001_1.txt") == "ILSVRC2012_val_00000001"
    assert image_key("ILSVRC2012_val_00000001_1.bin") == "ILSVRC2012_val_00000001"


def test_unlabelled_and_missing_are_reported_and_strict_fails(tmp_path):
    rows, labels = crafted()
    write_outputs(tmp_path / "out", rows)
    labels.pop("img_b")
    labels["img_zzz"] = 3
    lf = label_file(tmp_path / "l.txt", labels)
    acc = evaluate(tmp_path / "out", lf)
    assert acc.images == 5 and acc.unlabelled_outputs == ["img_b_1.txt"]
    assert acc.labels_without_output == 1
    with pytest.raises(ClsbenchError, match="no label"):
        evaluate(tmp_path / "out", lf, strict=True)


@pytest.mark.parametrize("content,match", [
    ("1.0 abc 2.0\n", "not a line of numbers"),
    ("\n", "holds no scores"),
    ("1.0 nan 2.0\n", "NaN"),
])
def test_malformed_output_file_named(tmp_path, content, match):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "x_1.txt").write_text(content)
    (tmp_path / "l.txt").write_text("x.JPEG 0\n")
    with pytest.raises(ClsbenchError, match=match) as e:
        evaluate(tmp_path / "out", tmp_path / "l.txt")
    assert "x_1.txt" in str(e.value)


def test_mixed_class_counts_refused(tmp_path):
    write_outputs(tmp_path / "out", {"a": [1, 2, 3], "b": [1, 2]})
    (tmp_path / "l.txt").write_text("a.JPEG 0\nb.JPEG 1\n")
    with pytest.raises(ClsbenchError, match="other outputs have 3"):
        evaluate(tmp_path / "out", tmp_path / "l.txt")


def test_label_out_of_range_for_the_model_named(tmp_path):
    write_outputs(tmp_path / "out", {"a": [0.1, 0.9, 0.0]})
    (tmp_path / "l.txt").write_text("a.JPEG 7\n")
    with pytest.raises(ClsbenchError, match=r"l.txt: label 7 of 'a' is out of range for a 3-class output"):
        evaluate(tmp_path / "out", tmp_path / "l.txt")


def test_fast_reader_of_own_text_outputs_is_exact_and_falls_back():
    from clsbench.runtime.outputs import _parse_e8, format_scores

    rng = np.random.default_rng(11)
    bits = rng.integers(0, 2**32, size=(50, 1000), dtype=np.uint64).astype(np.uint32).view(np.float32)
    a = np.where(np.isfinite(bits), bits, np.float32(1.0)).astype(np.float32)
    a[0, :6] = [0.0, -0.0, 1e-45, 3.4e38, -1.17549435e-38, 7.25]
    for row, line in zip(a, format_scores(a)):
        assert np.array_equal(_parse_e8(line).view(np.uint32), row.view(np.uint32))
    # any other layout goes to the general parser
    assert _parse_e8(b"0.123456 0.500000 \n") is None
    assert _parse_e8(b"+1.00000000e+00 +2.0000000Xe+00\n") is None
