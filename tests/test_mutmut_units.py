"""In-process unit tests written for what `make mutate` (mutmut, scripts/mutmut_run.py) left
alive: each asserts what a user reads — a file's exact bytes, a record's keys, an error's
words — against a reference written here, not against the code's own output. They run in
`make test` too, and fast: mutmut runs them once per mutant."""
from __future__ import annotations

import csv
import io
import json
import math

import numpy as np
import pytest

from clsbench import ClsbenchError
from helpers import ROOT

DATA = ROOT / "src" / "clsbench" / "data"


def _txt_outputs(d, rows: dict) -> None:
    d.mkdir(parents=True, exist_ok=True)
    for stem, scores in rows.items():
        (d / f"{stem}_1.txt").write_text(" ".join(repr(float(x)) for x in scores) + " \n")


def _softmax(row) -> list[float]:
    m = max(row)
    e = [math.exp(x - m) for x in row]
    return [x / sum(e) for x in e]


# ---------------------------------------------------------------- predictions.csv

HEADER = ["image", "class1", "name1", "prob1", "class2", "name2", "prob2", "class3", "name3", "prob3",
          "class4", "name4", "prob4", "class5", "name5", "prob5"]


def test_predictions_csv_bytes_header_names_and_probabilities(tmp_path):
    from clsbench.accuracy.predict import predictions, write_predictions

    rows = {"b": [0.0, 3.0, 1.0, 2.0, -1.0, 0.5, 4.0], "a": [1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]}
    _txt_outputs(tmp_path / "out", rows)
    names = ["n0", "n1", "n2", "n3", "n4", "n5"]  # one short of the 7 outputs: class 6 has no name
    got = predictions(tmp_path / "out", names)
    path = write_predictions(got, tmp_path / "predictions.csv")
    raw = (tmp_path / "predictions.csv").read_bytes()
    assert b"\r" not in raw and raw.endswith(b"\n")
    table = list(csv.reader(io.StringIO(raw.decode())))
    assert path == str(tmp_path / "predictions.csv")
    assert table[0] == HEADER
    assert [r[0] for r in table[1:]] == ["a", "b"]  # in image-name order
    b = table[2]
    p = _softmax(rows["b"])
    assert [int(x) for x in b[1::3]] == [6, 1, 3, 2, 5]
    assert b[2::3] == ["", "n1", "n3", "n2", "n5"]
    assert b[3::3] == [f"{p[c]:.6f}" for c in (6, 1, 3, 2, 5)]
    a = table[1]
    assert a[1] == "0" and a[2] == "n0" and a[3] == f"{_softmax(rows['a'])[0]:.6f}"


def test_predictions_without_names_leave_the_name_empty(tmp_path):
    from clsbench.accuracy.predict import predictions

    _txt_outputs(tmp_path / "out", {"x": [0.0, 1.0, 2.0, 3.0, 4.0, 5.0]})
    (row,) = predictions(tmp_path / "out", None)
    assert row["image"] == "x" and [n for _, n, _ in row["top5"]] == [""] * 5
    assert [c for c, _, _ in row["top5"]] == [5, 4, 3, 2, 1]


def test_predictions_record_shows_ten_rows_rounded_to_six_places():
    from clsbench.accuracy.predict import record

    rows = [{"image": f"i{j:02d}", "top5": [(j, f"c{j}", 1 / 3)] * 5} for j in range(12)]
    rec = record(rows, "p.csv", "torchvision")
    assert rec["file"] == "p.csv" and rec["images"] == 12 and rec["class_names"] == "torchvision"
    assert [r["image"] for r in rec["shown"]] == [f"i{j:02d}" for j in range(10)]
    assert rec["shown"][3]["top5"][0] == {"class": 3, "name": "c3", "prob": 0.333333}


# ---------------------------------------------------------------- class names, label sets, ReaL

def test_class_names_by_output_width():
    from clsbench.data.labelsets import class_names

    lines = (DATA / "imagenet_classes.txt").read_text(encoding="utf-8").splitlines()
    assert class_names(1000) == lines and class_names(1000, "torchvision") == lines
    assert class_names(1001) == ["background", *lines]
    assert class_names(999) is None and class_names(10) is None
    own = class_names(18, "proxy")
    assert own[0] == "red circle" and len(own) == 18
    assert own[16:] == ["(untrained output 16)", "(untrained output 17)"]


def test_real_index_reads_only_validation_names():
    from clsbench.data.labelsets import real_index

    assert real_index("ILSVRC2012_val_00000001") == 0
    assert real_index("ILSVRC2012_val_00050000") == 49_999
    for other in ("ILSVRC2012_val_00000001.JPEG", "x_ILSVRC2012_val_00000001", "cat", "ILSVRC2012_val_0001"):
        assert real_index(other) is None


def test_label_set_refuses_other_widths_and_labels_outside_it():
    from clsbench.data.labelsets import Subset

    with pytest.raises(ClsbenchError, match=r"^--label-set imagenet-a: needs a model of ImageNet's 1000 "
                                            r"classes, the outputs have 999$"):
        Subset("imagenet-a", 999, "l.txt")
    idx = [int(x) for x in (DATA / "imagenet_a_indices.txt").read_text().split()]
    outside = next(c for c in range(1000) if c not in idx)
    s = Subset("imagenet-a", 1001, "l.txt")
    assert s.columns.tolist() == [c + 1 for c in idx]
    assert s.labels(["k"], {"k": idx[7]}).tolist() == [7]
    with pytest.raises(ClsbenchError, match=rf"^l.txt: label {outside} of 'k' is not one of the 200 "
                                            rf"classes of imagenet-a$"):
        s.labels(["k"], {"k": outside})


def test_real_tally_counts_names_beyond_the_validation_set_and_says_its_fields():
    from clsbench.data.labelsets import RealTally

    real = json.loads((DATA / "imagenet_real_labels.json").read_text())
    first = next(i for i, r in enumerate(real) if r)
    empty = next(i for i, r in enumerate(real) if not r)
    t = RealTally()
    keys = [f"ILSVRC2012_val_{first + 1:08d}", "ILSVRC2012_val_00050001", "photo", f"ILSVRC2012_val_{empty + 1:08d}"]
    ranked = np.array([[real[first][0] + 1, 0, 0, 0, 0]] + [[1, 2, 3, 4, 5]] * 3)
    t.add(keys, ranked, 1)
    rec = t.record("out")
    assert rec == {"images": 1, "top1": 100.0, "top5": 100.0, "without_real_label": 1, "not_validation_names": 2,
                   "source": "ImageNet-ReaL (Beyer et al. 2020), images without a ReaL label left out"}
    none = RealTally()
    none.add(["photo"], np.zeros((1, 5), int), 0)
    with pytest.raises(ClsbenchError, match=r"^out: no output has a ReaL label: ReaL labels are keyed by "
                                            r"ImageNet's validation file names \(ILSVRC2012_val_00000001 \.\.\.\), "
                                            r"e\.g\. not 'photo'$"):
        none.record("out")
    with pytest.raises(ClsbenchError, match=r"validation file names \(ILSVRC2012_val_00000001 \.\.\.\)$"):
        RealTally().record("out")


# ---------------------------------------------------------------- evaluation: every refusal says where and what

def _labels(path, labels: dict) -> str:
    path.write_text("".join(f"{k}.JPEG {v}\n" for k, v in labels.items()))
    return str(path)


def test_evaluate_refusals_name_the_file_and_the_count(tmp_path):
    from clsbench.accuracy.evaluate import evaluate

    out = tmp_path / "out"
    _txt_outputs(out, {"a": [0, 1, 2], "b": [2, 1, 0], "c": [1, 2, 0]})
    lf = _labels(tmp_path / "l.txt", {"a": 2, "b": 0, "z": 1})
    acc = evaluate(out, lf)
    assert (acc.images, acc.hits, acc.unlabelled_outputs, acc.labels_without_output) == (2, [2, 0, 0, 0, 0], ["c_1.txt"], 1)
    assert acc.inputs == {"result_dir": out, "label_file": lf}
    with pytest.raises(ClsbenchError, match=rf"^{lf}: no label for 1 outputs, e\.g\. {out}/c_1\.txt$"):
        evaluate(out, lf, strict=True)
    lf2 = _labels(tmp_path / "l2.txt", {"a": 2, "b": 0, "c": 1, "z": 1, "y": 0})
    with pytest.raises(ClsbenchError, match=rf"^{out}: 2 labelled images have no output$"):
        evaluate(out, lf2, strict=True)
    lf3 = _labels(tmp_path / "l3.txt", {"q": 1})
    with pytest.raises(ClsbenchError, match=rf"^{lf3}: none of the 3 outputs in {out} has a label$"):
        evaluate(out, lf3)
    acc = evaluate(out, lf2, exclude={"c", "y"})
    assert acc.images == 2 and acc.labels_without_output == 1 and acc.unlabelled_outputs == []


def test_evaluate_refuses_a_missing_or_empty_folder_and_a_second_output(tmp_path):
    from clsbench.accuracy.evaluate import evaluate

    lf = _labels(tmp_path / "l.txt", {"a": 0})
    with pytest.raises(ClsbenchError, match=rf"^{tmp_path}/nope: result directory not found$"):
        evaluate(tmp_path / "nope", lf)
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / ".hidden_1.txt").write_text("1 2 3\n")
    with pytest.raises(ClsbenchError, match=r"empty: holds no output files \(\*\.txt, \*\.bin, \*\.npy\)$"):
        evaluate(tmp_path / "empty", lf)
    out = tmp_path / "two"
    _txt_outputs(out, {"a": [1, 0, 0]})
    np.save(out / "a_1.npy", np.array([1, 0, 0], np.float32))
    with pytest.raises(ClsbenchError, match=r"a_1\.txt: a second output for image 'a'$"):
        evaluate(out, lf)


def test_labels_shift_by_one_only_for_1001_outputs(tmp_path):
    from clsbench.accuracy.evaluate import evaluate

    for width in (1000, 1001):
        out = tmp_path / f"w{width}"
        row = np.zeros(width)
        row[999] = 1.0  # class 999 of a 1000-class output; class 998 of a 1001-class one
        _txt_outputs(out, {"a": row})
        acc = evaluate(out, _labels(tmp_path / "l.txt", {"a": 999}))
        assert acc.hits[0] == (1 if width == 1000 else 0) and acc.num_classes == width
    out = tmp_path / "w1000"
    with pytest.raises(ClsbenchError, match=r"label 1000 of 'a' is out of range for a 1000-class output$"):
        evaluate(out, _labels(tmp_path / "l.txt", {"a": 1000}))


def test_accuracy_percent_and_result_json_keys():
    from clsbench.accuracy.evaluate import Accuracy

    acc = Accuracy(images=3, num_classes=1000, hits=[1, 1, 0, 0, 1])
    assert acc.percent(1) == pytest.approx(100 / 3) and acc.percent(2) == pytest.approx(200 / 3)
    assert acc.percent(5) == 100.0
    want = {"title": "Overall statistical evaluation", "value": [
        {"key": "Number of images", "value": "3"}, {"key": "Number of classes", "value": "1000"},
        {"key": "Top1 accuracy", "value": "33.33%"}, {"key": "Top2 accuracy", "value": "66.67%"},
        {"key": "Top3 accuracy", "value": "66.67%"}, {"key": "Top4 accuracy", "value": "66.67%"},
        {"key": "Top5 accuracy", "value": "100.0%"}]}
    assert json.loads(acc.result_json()) == want


def test_scoring_refuses_real_labels_with_a_label_set_and_an_unknown_set():
    from clsbench.accuracy.evaluate import Scoring

    with pytest.raises(ClsbenchError, match=r"^--real-labels are ImageNet-2012 validation labels: they do not "
                                            r"apply with --label-set imagenet-r$"):
        Scoring(label_set="imagenet-r", real_labels=True)
    with pytest.raises(ClsbenchError, match=r"^--label-set: 'imagenet-x' is not one of imagenet-a, imagenet-r$"):
        Scoring(label_set="imagenet-x")
    assert Scoring(real_labels=True).real_labels and Scoring(label_set="imagenet-a").label_set == "imagenet-a"


def test_evaluate_scores_in_memory_and_its_refusal(tmp_path):
    from clsbench.accuracy.evaluate import evaluate_scores

    lf = _labels(tmp_path / "l.txt", {"a": 1, "b": 0, "c": 2})
    x = np.array([[0, 5, 1], [9, 0, 1], [0, 0, 0]], np.float32)
    acc = evaluate_scores("log", ["a", "b", "q"], x, lf)
    assert acc.hits == [2, 0, 0, 0, 0] and acc.images == 2 and acc.labels_without_output == 1
    assert acc.unlabelled_outputs == ["q"] and acc.inputs == {"label_file": lf}
    with pytest.raises(ClsbenchError, match=rf"^{lf}: none of the 2 outputs in log has a label$"):
        evaluate_scores("log", ["p", "q"], x[:2], lf)


def test_write_result_refuses_a_folder_and_an_input(tmp_path):
    from clsbench.accuracy.evaluate import Accuracy, evaluate, write_result

    out = tmp_path / "out"
    _txt_outputs(out, {"a": [0, 1]})
    lf = _labels(tmp_path / "l.txt", {"a": 1})
    acc = evaluate(out, lf)
    (tmp_path / "r" / "result.json").mkdir(parents=True)
    with pytest.raises(ClsbenchError, match=r"result\.json: is a directory; give another result\.json name$"):
        write_result(acc, tmp_path / "r")
    with pytest.raises(ClsbenchError):
        write_result(acc, out, "x.txt")  # inside RESULT_DIR: the guide's eval would read it back
    with pytest.raises(ClsbenchError):
        write_result(acc, tmp_path, "l.txt")  # the label file itself
    p = write_result(acc, tmp_path / "new" / "deep", "res.json")
    assert p == tmp_path / "new" / "deep" / "res.json" and json.loads(p.read_text())["value"][2]["value"] == "100.0%"
    bare = Accuracy(images=1, num_classes=2, hits=[1, 0, 0, 0, 0])
    assert write_result(bare, tmp_path / "bare").name == "result.json"


# ---------------------------------------------------------------- the record schema: each type's words

def _why(spec, value):
    from clsbench.report.records import validate

    try:
        validate({"f": value}, {"f": spec}, "r.json")
    except ClsbenchError as e:
        return str(e).removeprefix("r.json: not a clsbench record this version can read: field ")
    return None


def test_schema_types_refuse_in_their_own_words():
    from clsbench.report.records import Bool, ListOf, MapOf, Num, Scalar, Str

    cases = [
        (Num(), None, "f: expected a number, got NoneType null"), (Num(none=True), None, None),
        (Num(), True, "f: expected a number, got bool true"), (Num(), "1", 'f: expected a number, got str "1"'),
        (Num(integer=True), 2.0, "f: expected a whole number, got float 2.0"),
        (Num(integer=True), False, "f: expected a whole number, got bool false"),
        (Num(0, 100), 100.5, "f: expected a number in 0..100, got float 100.5"), (Num(0, 100), 100, None),
        (Num(0, 100), 0, None), (Num(0, 100), -0.1, "f: expected a number in 0..100, got float -0.1"),
        (Num(), 10**400, f"f: expected a number in -inf..inf, got int {str(10**400)[:60]}"),
        (Num(), 1e308, None), (Num(), -1e308, None), (Num(integer=True), 3, None), (Num(1, integer=True), 0, "f: expected a number in 1..inf, got int 0"),
        (Str(), None, "f: expected text, got NoneType null"), (Str(none=True), None, None),
        (Str(), 3, "f: expected text, got int 3"), (Str(r"p\d+"), "p9", None),
        (Str(r"p\d+"), "p9x", 'f: expected text matching p\\d+, got str "p9x"'),
        (Bool(), 1, "f: expected true or false, got int 1"), (Bool(), None, "f: expected true or false, got NoneType null"),
        (Bool(none=True), None, None), (Bool(), False, None),
        (Scalar(), ["a", 1, None, True, 2.5], None), (Scalar(), [0] * 17, "f: expected text, a number or null, got list "
                                                                        + json.dumps([0] * 17)[:60]),
        (Scalar(), [{}], "f: expected text, a number or null, got list [{}]"),
        (Scalar(), {"a": 1}, 'f: expected text, a number or null, got dict {"a": 1}'), (Scalar(), 1.0, None),
        (MapOf(Num()), [], "f: expected an object, got list []"), (MapOf(Num()), {"k": "x"}, 'f/k: expected a number, got str "x"'),
        (ListOf(Num()), {}, "f: expected a list, got dict {}"), (ListOf(Num(0)), [1, -1], "f/1: expected a number in 0..inf, got int -1"),
    ]
    for spec, value, want in cases:
        assert _why(spec, value) == want, (spec, value)


def test_schema_objects_missing_optional_rest_and_nesting():
    from clsbench.report.records import Maybe, Num, Str, validate

    schema = {"a": {"b": Num(), "c?": Str(), "*": Num(0)}, "m": Maybe({"x": Num()}), "*": Str()}
    ok = {"a": {"b": 1, "extra": 2}, "m": None, "note": "t"}
    assert validate(ok, schema, "r.json") is ok
    assert validate({"a": {"b": 1}, "m": {"x": 2}}, schema, "r.json")
    for rec, want in [({"a": {"c": "t"}, "m": None}, "a/b: missing"),
                      ({"a": {"b": 1, "c": 1}, "m": None}, "a/c: expected text, got int 1"),
                      ({"a": {"b": 1, "extra": -1}, "m": None}, "a/extra: expected a number in 0..inf, got int -1"),
                      ({"a": {"b": 1}, "m": {"x": "y"}}, 'm/x: expected a number, got str "y"'),
                      ({"a": {"b": 1}, "m": None, "note": 5}, "note: expected text, got int 5"),
                      ({"a": [], "m": None}, "a: expected an object, got list []"),
                      ({"m": None}, "a: missing")]:
        with pytest.raises(ClsbenchError) as e:
            validate(rec, schema, "r.json")
        assert str(e.value) == f"r.json: not a clsbench record this version can read: field {want}"
    with pytest.raises(ClsbenchError, match=r"^r\.json: not a clsbench record this version can read: field "
                                            r"the record: expected an object, got list \[1\]$"):
        validate([1], schema, "r.json")
    deep = {"x": 1}
    for _ in range(5000):
        deep = {"x": deep}
    rec_schema = {"x": Num()}
    with pytest.raises(ClsbenchError, match=r"^r\.json: nested too deeply to be a clsbench record$"):
        validate(deep, _deep_schema(rec_schema, 5000), "r.json")


def _deep_schema(inner, depth):
    from clsbench.report.records import Any_

    s = inner
    for _ in range(depth):
        s = {"x": s, "*": Any_()}
    return s


def test_load_record_kinds_and_refusals(tmp_path):
    from clsbench.report.records import load_record

    with pytest.raises(ClsbenchError, match=r"no summary\.json \(a `clsbench run` folder\), perf\.json \(a `clsbench "
                                            r"perf` folder\), loadgen\.json \(a `clsbench loadgen` folder\)"):
        load_record(str(tmp_path))
    (tmp_path / "perf.json").write_text('{"rows": NaN}')
    with pytest.raises(ClsbenchError, match=r"perf\.json: not a readable clsbench record \(NaN is not a number a "
                                            r"record may hold\)$"):
        load_record(str(tmp_path))
    (tmp_path / "perf.json").write_text('{"rows": [}')
    with pytest.raises(ClsbenchError, match=r"perf\.json: not a readable clsbench record \(Expecting value"):
        load_record(str(tmp_path))
    (tmp_path / "perf.json").write_text('{"rows": []}')
    with pytest.raises(ClsbenchError, match=r"perf\.json: not a clsbench record this version can read: field configs: missing$"):
        load_record(str(tmp_path))


# ---------------------------------------------------------------- the plan: references, verdicts, presets

def _model_plan(top1=None, images=None, classes=1000, ref_classes=None, source="src"):
    from clsbench.plan import ModelPlan

    return ModelPlan("m:t", "official", None, top1, None if top1 is None else 90.0, source, classes, ref_classes,
                     None, reference_images=images)


def test_judge_accuracy_margin_is_the_binomial_one_and_the_bound_inclusive():
    from clsbench.plan import judge_accuracy

    m = _model_plan(top1=80.0)
    v = judge_accuracy(m, 79.0, 50_000, 1.0)
    margin = 1.96 * math.sqrt(0.8 * 0.2 / 50_000) * 100  # 0.35 points: under the tolerance
    assert v["sampling_margin"] == round(margin, 3) and v["allowed_drop"] == 1.0 and v["judged"] is True
    assert v["top1_drop"] == pytest.approx(1.0) and v["within_tolerance"] is True  # a drop of exactly 1 is within
    assert v["reference_top1"] == 80.0 and v["reference_top5"] == 90.0 and v["reference_source"] == "src"
    assert v["tolerance"] == 1.0 and v["reference_images"] is None
    assert judge_accuracy(m, 78.9, 50_000, 1.0)["within_tolerance"] is False
    small = judge_accuracy(m, 70.0, 100, 1.0)  # 100 images: the margin (7.84) is the bound
    assert small["allowed_drop"] == round(1.96 * math.sqrt(0.16 / 100) * 100, 3) == 7.84
    assert small["within_tolerance"] is False and judge_accuracy(m, 72.5, 100, 1.0)["within_tolerance"] is True
    proxy = _model_plan(top1=90.0, images=256)  # a reference measured on 256 draws of its own: both variances
    v = judge_accuracy(proxy, 88.0, 400, 0.5)
    assert v["sampling_margin"] == round(196 * math.sqrt(0.09 / 400 + 0.09 / 256), 3) and v["reference_images"] == 256
    assert judge_accuracy(m, 10.0, 0, 1.0)["allowed_drop"] == math.inf


def test_judge_accuracy_says_why_there_is_no_verdict():
    from clsbench.plan import judge_accuracy

    none = judge_accuracy(_model_plan(source="no published figure"), 50.0, 100, 1.0)
    assert none == {"reference_top1": None, "reference_top5": None, "reference_source": "no published figure",
                    "top1_drop": None, "tolerance": 1.0, "allowed_drop": None, "within_tolerance": None,
                    "judged": False}
    off = judge_accuracy(_model_plan(top1=95.0, ref_classes=16), 50.0, 100, 1.0, max_label=16)
    assert off["judged"] is False and off["reference_top1"] is None
    assert off["reference_source"] == "labels up to 16: not the 16 classes its reference was measured over"
    on = judge_accuracy(_model_plan(top1=95.0, ref_classes=16), 94.0, 100, 1.0, max_label=15)
    assert on["judged"] is True and on["within_tolerance"] is True


def test_references_by_provenance():
    from clsbench.model.provenance import PROVENANCE, proxy_record
    from clsbench.model.table import get_model
    from clsbench.plan import _judged

    spec = get_model("resnet18")
    off = _judged(spec, "official", "abc")
    assert (off.key, off.reference_top1, off.reference_top5, off.weights_sha256) == (spec.key, spec.top1, spec.top5, "abc")
    assert off.reference_source == f"torchvision's table for {spec.key}" and off.num_classes == 1000
    assert off.reference_classes == 1000 and off.reference_images is None
    rec = proxy_record()
    px = _judged(spec, "proxy", None)
    assert px.reference_top1 == round(rec["task_accuracy"] * 100, 3) and px.reference_top5 is None
    assert (px.reference_classes, px.reference_images) == (16, 256)
    assert px.reference_source.startswith("the proxy's training record: 256 other draws of its own 16-class task")
    for prov in ("stand-in", "other", "foreign", "unrecorded"):
        m = _judged(spec, prov, None)
        assert m.reference_top1 is None and m.reference_source == PROVENANCE[prov].split(": ", 1)[-1]
        assert m.provenance == prov and m.reference_classes is None
    bare = _judged(None, "foreign", None)
    assert bare.key is None and bare.num_classes == 1000
    import dataclasses

    nopub = _judged(dataclasses.replace(spec, top1=None), "official", None)
    assert nopub.reference_top1 is None and nopub.reference_source == "the model has no published accuracy"


def test_provenance_read_from_a_models_record():
    from clsbench.model.provenance import proxy_record
    from clsbench.model.table import get_model
    from clsbench.plan import _recorded_provenance

    spec = get_model("resnet18")
    assert _recorded_provenance({}, spec) == "foreign"
    assert _recorded_provenance({"weights_tag": "x", "provenance": "stand-in"}, spec) == "stand-in"
    assert _recorded_provenance({"weights_tag": "x", "provenance": "bogus"}, spec) == "unrecorded"
    assert _recorded_provenance({"weights_tag": "x", "weights_sha256": proxy_record()["sha256"]}, spec) == "proxy"
    prefix = spec.official.sha256_prefix
    assert _recorded_provenance({"weights_tag": "x", "weights_sha256": prefix + "0" * 20}, spec) == "official"
    assert _recorded_provenance({"weights_tag": "x", "weights_sha256": "f" * 64}, spec) == "unrecorded"
    assert _recorded_provenance({"weights_tag": "x", "weights_sha256": prefix}, None) == "unrecorded"
    assert _recorded_provenance({"weights_tag": "x"}, spec) == "unrecorded"


def test_preset_sources_flags_on_the_models_own_and_a_foreign_default(caplog):
    from clsbench.model.table import get_model
    from clsbench.plan import DEFAULT_MODEL, resolve_preset

    base = get_model("resnet18").preprocessing
    p = resolve_preset(base, "resnet18's preset", {"crop": 200, "resize": None, "exif_transpose": False})
    assert p.pp.crop == 200 and p.pp.resize == base.resize and p.pp.exif_transpose is False
    assert dict(p.sources) == {"resize": "resnet18's preset", "crop": "flag", "interpolation": "resnet18's preset",
                               "mean": "resnet18's preset", "std": "resnet18's preset",
                               "exif_transpose": "default (off, as torchvision)"}
    e = resolve_preset(base, "b", {"exif_transpose": True})
    assert e.pp.exif_transpose is True and dict(e.sources)["exif_transpose"] == "flag"
    caplog.clear()
    with caplog.at_level("WARNING", logger="clsbench"):
        f = resolve_preset(None, "ignored", {"crop": 100})
    assert f.pp.resize == get_model(DEFAULT_MODEL).preprocessing.resize and f.pp.crop == 100
    assert dict(f.sources)["resize"] == f"the default model {DEFAULT_MODEL}'s preset"
    text = " ".join(r.getMessage() for r in caplog.records)
    assert f"the model records no preset: resize, interpolation, mean, std from {DEFAULT_MODEL}'s" in text
    assert "--resize --interpolation --mean --std)" in text
    with pytest.raises(ClsbenchError, match=r" \(flags --crop, --resize on b\)$"):
        resolve_preset(base, "b", {"crop": 300, "resize": 100})


# ---------------------------------------------------------------- LoadGen's summary, read back; its accuracy log

@pytest.fixture(scope="module")
def lg_logs(tmp_path_factory):
    """A real LoadGen Server run (in this process, a SUT answering at once) and its logs:
    the summary clsbench parses, and the detail log's MLLOG lines, LoadGen's own values."""
    import mlperf_loadgen as lg

    out = tmp_path_factory.mktemp("lg")
    ts = lg.TestSettings()
    ts.scenario, ts.mode = lg.TestScenario.Server, lg.TestMode.PerformanceOnly
    ts.server_target_qps, ts.min_duration_ms, ts.min_query_count = 200, 300, 50
    ts.server_target_latency_ns = 50_000_000

    def issue(samples):
        lg.QuerySamplesComplete([lg.QuerySampleResponse(s.id, 0, 0) for s in samples])

    log = lg.LogSettings()
    log.log_output.outdir, log.log_output.copy_summary_to_stdout = str(out), False
    qsl = lg.ConstructQSL(16, 16, lambda i: None, lambda i: None)
    sut = lg.ConstructSUT(issue, lambda: None)
    lg.StartTestWithLogSettings(sut, qsl, ts, log)
    lg.DestroySUT(sut)
    lg.DestroyQSL(qsl)
    detail = {}
    for line in (out / "mlperf_log_detail.txt").read_text().splitlines():
        if line.startswith(":::MLLOG "):
            e = json.loads(line[len(":::MLLOG "):])
            detail[e["key"]] = e["value"]
    return out / "mlperf_log_summary.txt", detail


def test_loadgen_summary_fields_are_loadgens_own_numbers(lg_logs):
    from clsbench.measure.loadgen import parse_summary

    path, detail = lg_logs
    s = parse_summary(path)
    f = s["fields"]
    assert s["result"] == detail["result_validity"] and s["valid"] is (detail["result_validity"] == "VALID")
    assert f["Scenario"] == "Server" and f["Mode"] == "PerformanceOnly"
    assert f["Completed samples per second"] == pytest.approx(detail["result_completed_samples_per_sec"], rel=1e-4)
    assert f["99.00 percentile latency (ns)"] == detail["result_99.00_percentile_latency_ns"]
    assert isinstance(f["Min latency (ns)"], int) and f["Min latency (ns)"] == detail["result_min_latency_ns"]
    assert isinstance(f["Completed samples per second"], float)
    assert f["target_qps"] == 200 and f["min_query_count"] == 50
    assert s["reasons"] == [] if s["valid"] else s["reasons"]
    assert any(n.startswith("Run successful") or "queries" in n for n in s["notes"])
    assert all(not n.startswith("* ") and "\n" not in n for n in s["notes"])


def test_loadgen_summary_reasons_notes_and_missing_file(tmp_path):
    from clsbench.measure.loadgen import parse_summary

    text = ("================================================\nMLPerf Results Summary\n"
            "================================================\nSUT name : clsbench\nScenario : Server\n"
            "Completed samples per second    : 12.50\nResult is : INVALID\n  Performance constraints satisfied : NO\n"
            "  Min duration satisfied : Yes\n  Min queries satisfied : no\n  Early stopping satisfied: NO\n"
            "Early Stopping Result:\n * Processed at least 64 queries (12).\n"
            " * Not enough queries processed for 99th percentile\n early stopping estimate (would need to process at\n"
            " least 662 total queries).\nEmpty : \n\n")
    (tmp_path / "s.txt").write_text(text)
    s = parse_summary(tmp_path / "s.txt")
    assert s["valid"] is False and s["result"] == "INVALID"
    assert s["reasons"] == ["Performance constraints satisfied: NO", "Min queries satisfied: NO",
                            "Early stopping satisfied: NO"]
    assert s["notes"] == ["Processed at least 64 queries (12).",
                          "Not enough queries processed for 99th percentile early stopping estimate (would need to "
                          "process at least 662 total queries)."]
    assert s["fields"]["Completed samples per second"] == 12.5 and s["fields"]["SUT name"] == "clsbench"
    assert "Empty" not in s["fields"] and "MLPerf Results Summary" not in s["fields"]
    with pytest.raises(ClsbenchError, match=r"nope\.txt: LoadGen wrote no summary$"):
        parse_summary(tmp_path / "nope.txt")


def test_loadgen_accuracy_log_decoded_by_index_and_refused_when_wrong(tmp_path):
    from clsbench.measure.loadgen import decode_accuracy_log

    rows = {i: np.arange(3, dtype=np.float32) + i for i in range(3)}
    log = [{"seq_id": 9 - i, "qsl_idx": i, "data": rows[i].tobytes().hex().upper()} for i in (2, 0, 1)]
    (tmp_path / "a.json").write_text(json.dumps(log))
    got = decode_accuracy_log(tmp_path / "a.json", 3)
    assert got.dtype == np.float32 and np.array_equal(got, np.stack([rows[0], rows[1], rows[2]]))
    (tmp_path / "b.json").write_text(json.dumps(log + log[:1]))
    with pytest.raises(ClsbenchError, match=r"b\.json: sample 2 answered twice$"):
        decode_accuracy_log(tmp_path / "b.json", 3)
    with pytest.raises(ClsbenchError, match=r"a\.json: 2 of 5 samples have no response, e\.g\. 3$"):
        decode_accuracy_log(tmp_path / "a.json", 5)
    (tmp_path / "c.json").write_text("[{")
    with pytest.raises(ClsbenchError, match=r"c\.json: not LoadGen's accuracy log \("):
        decode_accuracy_log(tmp_path / "c.json", 1)


def test_loadgen_batches_and_nanoseconds():
    from clsbench.measure.loadgen import _batch_stats, _ms

    assert _batch_stats([]) == {"count": 0}
    assert _batch_stats([8, 8, 3, 8]) == {"count": 4, "mean": 6.75, "max": 8, "histogram": {"3": 1, "8": 3}}
    assert _batch_stats([1, 2, 2]) ["mean"] == 1.667
    assert _ms(14_165_800) == 14.1658 and _ms(123_456_789) == 123.4568 and _ms(0) == 0.0
    assert _ms(None) is None and _ms("12") is None and _ms(2.5e6) == 2.5


def test_loadgen_settings_bounds_said_in_one_line():
    from clsbench.measure.loadgen import SETTING_RULES, setting_value

    ints = [k for k, r in SETTING_RULES.items() if r[0] is int]
    reals = [k for k, r in SETTING_RULES.items() if r[0] is float]
    for key in ints:
        kind, lo, lo_ok, hi, _ = SETTING_RULES[key]
        first = lo if lo_ok else lo + 1
        assert setting_value(key, str(int(first))) == int(first) and isinstance(setting_value(key, str(int(first))), int)
        bound = f"{'>=' if lo_ok else '>'} {lo:g}" + (f" and <= {hi:g}" if hi is not None else "")
        for bad in (str(first - 1), "2.5", "nan", "x", "inf"):
            with pytest.raises(ClsbenchError) as e:
                setting_value(key, bad)
            assert str(e.value) == f"--setting {key}={bad}: must be a whole number {bound}"
        if hi is not None:
            with pytest.raises(ClsbenchError):
                setting_value(key, str(int(hi) + 1))
            assert setting_value(key, str(int(hi))) == int(hi)
    for key in reals:
        kind, lo, lo_ok, hi, _ = SETTING_RULES[key]
        v = setting_value(key, str(lo + 0.5))
        assert v == lo + 0.5 and isinstance(v, float)
        assert (setting_value(key, str(lo)) == lo) if lo_ok else True
        if not lo_ok:
            with pytest.raises(ClsbenchError, match=rf"must be a finite number > {lo:g}"):
                setting_value(key, str(lo))
        with pytest.raises(ClsbenchError, match="must be a finite number"):
            setting_value(key, "inf")
        if hi is not None:
            assert setting_value(key, str(hi)) == hi
            with pytest.raises(ClsbenchError, match=rf"must be a finite number > {lo:g} and <= {hi:g}$"):
                setting_value(key, str(hi + 0.1))
    assert setting_value("min_query_count", str(2**63 - 1)) == 2**63 - 1
    with pytest.raises(ClsbenchError, match=r"--setting min_query_count=9223372036854775808: must be a whole number"):
        setting_value("min_query_count", str(2**63))


# ---------------------------------------------------------------- the numbers tables and pages render

def test_accuracy_rows_against_the_reference_and_real():
    from clsbench.accuracy.evaluate import Accuracy
    from clsbench.model.table import get_model
    from clsbench.report.tables import accuracy_markdown, accuracy_rows

    spec = get_model("resnet18")
    acc = Accuracy(images=8, num_classes=1000, hits=[5, 1, 0, 1, 0], real={"top1": 62.5, "top5": 87.5, "images": 8})
    rows = accuracy_rows(acc, spec)
    assert rows[0] == ("Top1", "62.50", f"{spec.top1:.3f}", f"{62.5 - spec.top1:+.2f}")
    assert rows[1] == ("Top2", "75.00", "", "") and rows[3] == ("Top4", "87.50", "", "")
    assert rows[4] == ("Top5", "87.50", f"{spec.top5:.3f}", f"{87.5 - spec.top5:+.2f}")
    assert rows[5:] == [("ReaL Top1", "62.50", "", ""), ("ReaL Top5", "87.50", "", "")]
    bare = accuracy_rows(Accuracy(images=3, num_classes=10, hits=[1, 0, 0, 0, 0]), None)
    assert bare == [("Top1", "33.33", "", ""), ("Top2", "33.33", "", ""), ("Top3", "33.33", "", ""),
                    ("Top4", "33.33", "", ""), ("Top5", "33.33", "", "")]
    md = accuracy_markdown(Accuracy(images=3, num_classes=10, hits=[1, 0, 0, 0, 0]), None).splitlines()
    assert md[:3] == ["| | measured % | reference % | diff |", "|---|---:|---:|---:|", "| Top1 | 33.33 |  |  |"]


def test_perf_rows_say_units_and_idle_stages():
    from clsbench.report.tables import latency_cells, perf_rows, stability_text

    rec = {"stages": {"Inference": {"throughputRate": 1234.5, "moduleLatency": 0.81, "latency": 1500.0},
                      "PreProcess": {"throughputRate": 9e6, "moduleLatency": 0.001},
                      "PostProcess": {"latency": None}}}
    assert perf_rows(rec) == [("Inference", "throughputRate", "1,234.50 images/s"),
                              ("Inference", "moduleLatency", "0.81 ms per image"),
                              ("Inference", "latency", "1,500.00 ms"),
                              ("PreProcess", "time per image", "– (under 0.005 ms: no work in this step here)"),
                              ("PostProcess", "latency", "– (no measurable time)")]
    assert perf_rows({"stages": {"S": {"moduleLatency": 0.005}}}) == [("S", "moduleLatency", "0.01 ms per image")]
    assert perf_rows({"stages": {"S": {"latency": 0.001}}}) == [("S", "latency", "0.00 ms")]
    assert perf_rows({}) == []
    lat = {"min": 1.0, "mean": 2.004, "p50": 2.0, "p99.9": 9.5, "max": 10.0, "percentiles": ["p50", "p99.9"],
           "unresolved": ["p99.9"]}
    assert latency_cells(lat) == [("min", "1.00"), ("mean", "2.00"), ("p50", "2.00"), ("p99.9", "≈9.50"),
                                  ("max", "10.00")]
    assert latency_cells({"min": 1, "p90": 2, "p99": 3, "max": 4}) == [("min", "1.00"), ("p90", "2.00"),
                                                                      ("p99", "3.00"), ("max", "4.00")]
    assert latency_cells({}) == []
    assert stability_text(None) == "" and stability_text({"repeats": 0}) == ""
    assert stability_text({"repeats": 1, "stable": None}) == "1 window: spread unknown"
    assert stability_text({"repeats": 5, "stable": True, "spread": 0.0412}) == "median of 5, spread 4.1%: stable"
    assert stability_text({"repeats": 3, "stable": False, "spread": 0.25}) == "median of 3, spread 25.0%: UNSTABLE"


def test_sweep_cell_lookup_and_accuracy_titles():
    from clsbench.report.tables import _fps, accuracy_title

    rows = [{"backend": "onnxruntime", "precision": "fp32", "batch_size": 8, "input": "random", "throughput_compute": 10.0},
            {"backend": "onnxruntime", "precision": "fp32", "batch_size": 8, "input": "real", "throughput_compute": 9.0},
            {"backend": "onnxruntime", "precision": "int8", "batch_size": 8, "input": "random", "throughput_compute": 20.0}]
    r = {"rows": rows}
    assert _fps(r, "onnxruntime fp32", 8, "real") == 9.0 and _fps(r, "onnxruntime int8", 8, "random") == 20.0
    assert _fps(r, "onnxruntime fp32", 4, "random") is None and _fps(r, "openvino fp32", 8, "random") is None
    s = {"accuracy": {"reference_top1": None}, "plan": {"model": {"key": "resnet18:v1"}}, "model": "x"}
    assert accuracy_title(s) == "Accuracy of resnet18:v1 (these weights; no reference)"
    s = {"accuracy": {"reference_top1": 70.0, "reference_source": "torchvision's table"}, "model": "m"}
    assert accuracy_title(s) == "Accuracy of m vs torchvision's table"
    assert accuracy_title({"accuracy": {"reference_top1": 70.0}}) == "Accuracy of the model vs its reference"


def _text(markup) -> str:
    import re

    return re.sub(r"<[^>]+>", "", str(markup))


def test_page_numbers_shown_scaled_and_tagged():
    from clsbench.report.html import latency_cells, num, stability_cell

    assert str(num("a/b", None)) == '<span class="muted">–</span>'
    assert str(num("a/b", 1234.5678)) == '<span class="num" data-field="a/b" data-value="1234.5678">1,234.57</span>'
    assert str(num("p", 0.5912, ".1f", 100, " %")) == ('<span class="num" data-field="p" data-value="0.5912" '
                                                        'data-scale="100">59.1 %</span>')
    assert str(num("i", 7, "d")) == '<span class="num" data-field="i" data-value="7">7</span>'
    for bad in (True, "3", [1]):
        with pytest.raises(ClsbenchError) as e:
            num("x/y", bad)
        assert str(e.value) == f"record field x/y: {bad!r} is not a number"
    assert str(stability_cell("s", None)) == '<span class="muted">–</span>' == str(stability_cell("s", {"repeats": 0}))
    assert str(stability_cell("s", {"repeats": 1, "stable": None})) == "1 window: spread unknown"
    ok = stability_cell("s", {"repeats": 5, "stable": True, "spread": 0.042})
    assert _text(ok) == "5 × · spread 4.2 % stable" and 'data-field="s/spread"' in str(ok)
    bad = stability_cell("s", {"repeats": 3, "stable": False, "spread": 0.3})
    assert _text(bad) == "3 × · spread 30.0 % UNSTABLE" and '<b class="regress">UNSTABLE</b>' in str(bad)
    head, cells = latency_cells("lat", {"count": 40, "min": 1.0, "mean": 2.0, "p99": 3.25, "max": 4.0,
                                        "percentiles": ["p99"], "unresolved": ["p99"]})
    assert head == ["runs", "min", "mean", "p99", "max"]
    assert cells[0] == "40" and [_text(c) for c in cells[1:]] == ["1.000", "2.000", "≈3.250", "4.000"]
    assert 'data-field="lat/p99"' in str(cells[3])
    head, cells = latency_cells("lat", {"min": 1.0})
    assert head == ["runs", "min"] and cells[0] == "?"


def test_comparison_cells_delta_regression_and_instability():
    from clsbench.report.html import _cell

    assert _cell(None, 5.0) == {"value": None, "delta": None} and _cell(5.0, None) == {"value": 5.0, "delta": None}
    assert _cell(90.0, 100.0) == {"value": 90.0, "delta": -10.0}
    assert _cell(90.0, 100.0, limit=5.0) == {"value": 90.0, "delta": -10.0, "regression": True}
    assert _cell(96.0, 100.0, limit=5.0) == {"value": 96.0, "delta": -4.0}
    assert _cell(95.0, 100.0, limit=5.0) == {"value": 95.0, "delta": -5.0}  # exactly the threshold: not a regression
    assert _cell(90.0, 100.0, limit=5.0, unstable=True) == {"value": 90.0, "delta": -10.0, "unstable": True}
    assert _cell(102.0, 100.0, limit=5.0, unstable=True) == {"value": 102.0, "delta": 2.0}
    assert _cell(12.0, 10.0, higher_is_better=False, limit=5.0) == {"value": 12.0, "delta": 20.0, "regression": True}
    assert _cell(70.0, 70.5, percent=False, limit=0.1) == {"value": 70.0, "delta": -0.5, "points": True,
                                                           "regression": True}
    assert _cell(3.0, 0.0) == {"value": 3.0, "delta": 3.0}  # a zero baseline: the difference, not a ratio


def _run_rec(top1, ips, stable=True, images="/d", batch=8):
    return {"model": "m", "dataset": {"images": images},
            "accuracy": {"top1": top1, "top5": 99.0, "images": 100},
            "performance": {"batch_size": batch, "backend": {"runtime": "onnxruntime", "precision": "fp32"},
                            "stages": {"infer": {"Interface throughputRate": ips}, "e2e": {"throughputRate": ips / 2}},
                            "compute_latency_ms_per_batch": {"p50": 8.0 / ips * 1000, "p99": 9.0},
                            "compute_stability": {"stable": stable}}}


def test_run_comparison_rows_judge_only_what_can_be_judged():
    from clsbench.report.html import _run_rows

    rows = {r["figure"]: r for r in _run_rows([_run_rec(70.0, 100.0), _run_rec(69.5, 80.0)], 5.0)}
    assert list(rows) == ["Top-1 %", "Top-5 %", "images counted", "images/s compute", "images/s end to end",
                          "p50 ms per batch", "p99 ms per batch"]
    assert rows["Top-1 %"]["cells"][1] == {"value": 69.5, "delta": -0.5, "points": True, "regression": True}
    assert rows["images/s compute"]["cells"][1] == {"value": 80.0, "delta": -20.0, "regression": True}
    assert rows["images/s end to end"]["cells"][1] == {"value": 40.0, "delta": -20.0, "regression": True}
    assert rows["p50 ms per batch"]["cells"][1]["value"] == 100.0 and "regression" not in rows["p50 ms per batch"]["cells"][1]
    assert rows["images counted"]["cells"][0] == {"value": 100, "delta": 0, "points": True}
    assert rows["Top-1 %"]["config"] == "m · onnxruntime fp32 · batch 8"
    other = {r["figure"]: r for r in _run_rows([_run_rec(70.0, 100.0), _run_rec(60.0, 100.0, images="/e")], 5.0)}
    assert "regression" not in other["Top-1 %"]["cells"][1]  # other data: accuracy not judged
    shaky = {r["figure"]: r for r in _run_rows([_run_rec(70.0, 100.0), _run_rec(69.0, 50.0, stable=False)], 5.0)}
    assert shaky["images/s compute"]["cells"][1].get("unstable") is True
    assert shaky["Top-1 %"]["cells"][1].get("regression") is True  # instability spares timings only
    unjudged = {r["figure"]: r for r in _run_rows([_run_rec(70.0, 100.0), _run_rec(60.0, 10.0)], 5.0, judge=False)}
    assert all("regression" not in c for r in unjudged.values() for c in r["cells"])
    both = _run_rows([_run_rec(70.0, 100.0), _run_rec(70.0, 100.0, batch=16)], 5.0)
    assert both[0]["config"] == "m · onnxruntime fp32 · batch 8 | m · onnxruntime fp32 · batch 16"


def test_perf_comparison_rows_by_cell():
    from clsbench.report.html import _perf_rows

    def row(b, ips, stable=True, inp="random"):
        return {"backend": "onnxruntime", "precision": "fp32", "batch_size": b, "input": inp,
                "throughput_compute": ips, "stability": {"stable": stable}}

    a = {"rows": [row(1, 100.0), row(8, 400.0)]}
    b = {"rows": [row(8, 300.0), row(1, 101.0), row(4, 50.0)]}
    rows = _perf_rows([a, b], 5.0)
    assert [r["config"] for r in rows] == ["onnxruntime fp32 · batch 1 · random", "onnxruntime fp32 · batch 8 · random",
                                           "onnxruntime fp32 · batch 4 · random"]
    assert all(r["figure"] == "images/s compute" for r in rows)
    assert rows[0]["cells"] == [{"value": 100.0, "delta": 0.0}, {"value": 101.0, "delta": 1.0}]
    assert rows[1]["cells"][1] == {"value": 300.0, "delta": -25.0, "regression": True}
    assert rows[2]["cells"] == [{"value": None, "delta": None}, {"value": 50.0, "delta": None}]
    c = _perf_rows([{"rows": [row(8, 400.0, stable=False)]}, {"rows": [row(8, 300.0)]}], 5.0)
    assert c[0]["cells"][1] == {"value": 300.0, "delta": -25.0, "unstable": True}
    assert "regression" not in _perf_rows([a, b], 5.0, judge=False)[1]["cells"][1]


# ---------------------------------------------------------------- timing arithmetic, the vendor's perf file

def test_percentile_and_batch_lists_parsed_and_refused():
    from clsbench.runtime.timing import parse_batches, parse_percentiles, pct_key

    assert parse_percentiles("99.9, 50,90,50") == (50.0, 90.0, 99.9) and parse_percentiles(99) == (99.0,)
    assert parse_percentiles("0.01,99.99") == (0.01, 99.99)
    assert [pct_key(p) for p in (50.0, 99.9, 99.99, 5)] == ["p50", "p99.9", "p99.99", "p5"]
    for text, why in (("50,x", "'x' is not a number"), ("0", "0 is not between 0 and 100 (exclusive)"),
                      ("100", "100 is not between 0 and 100 (exclusive)"), ("50, -1", "-1 is not between")):
        with pytest.raises(ClsbenchError) as e:
            parse_percentiles(text)
        assert str(e.value).startswith(f"--percentiles {text!r}: {why}")
    assert parse_batches("1, 4,64") == [1, 4, 64] and parse_batches(8) == [8] and parse_batches("4,1,4") == [4, 1, 4]
    with pytest.raises(ClsbenchError, match=r"^--batches '1,a': 'a' is not a batch size$"):
        parse_batches("1,a")
    with pytest.raises(ClsbenchError, match=r"^--batches '0': batch sizes must be >= 1, got 0$"):
        parse_batches("0")
    assert parse_batches("1") == [1]


def test_latency_stats_by_hand():
    from clsbench.runtime.timing import latency_stats

    assert latency_stats([]) == {}
    s = latency_stats([4.0, 1.0, 3.0, 2.0], (50.0, 75.0))
    assert s == {"count": 4, "min": 1.0, "mean": 2.5, "max": 4.0, "p50": 2.5, "p75": 3.25,
                 "percentiles": ["p50", "p75"], "unresolved": []}
    t = latency_stats(list(range(1, 101)), (99.0, 99.9))  # 100 runs resolve p99, not p99.9
    assert t["p99"] == pytest.approx(99.01) and t["unresolved"] == ["p99.9"]
    assert latency_stats([1.0] * 9, (90.0,))["unresolved"] == ["p90"] and latency_stats([1.0] * 10, (90.0,))["unresolved"] == []
    assert latency_stats([2.0], ())["percentiles"] == [] and isinstance(latency_stats([2], ())["count"], int)


def test_stability_windows_by_hand():
    from clsbench.runtime.timing import stability

    s = stability([10.0, 10.0, 20.0, 20.0], 4, repeats=2)  # windows of 20 ms and 40 ms for 8 images: 400 and 200/s
    assert s["rates"] == [400.0, 200.0] and s["median"] == 300.0 and s["repeats"] == 2
    assert s["spread"] == pytest.approx(200 / 300) and s["stable"] is False
    assert s["reason"] == "repeats spread 67% (> 10%): 200.0 to 400.0 images/s"
    ok = stability([10.0, 10.5, 10.0, 10.5], 1, repeats=4)
    assert ok["stable"] is True and ok["reason"] is None and ok["spread"] == pytest.approx((100 - 1000 / 10.5) / ok["median"])
    edge = stability([10.0, 11.0], 1, repeats=2)  # spread (100 - 90.9) / 95.45 = 9.5 %: stable
    assert edge["stable"] is True
    one = stability([10.0], 2, repeats=5)
    assert one == {"repeats": 1, "median": 200.0, "rates": [200.0], "spread": None, "stable": None,
                   "reason": "one run: spread unknown"}
    assert stability([], 2) == {"repeats": 0, "median": None, "rates": [], "spread": None, "stable": None,
                                "reason": "nothing was timed"}
    w = stability([10.0, 20.0, 30.0, 40.0], 2, repeats=2, wall=True)  # completions at 10..40 ms: 2 runs per 20 ms
    assert w["rates"] == [200.0, 200.0] and w["stable"] is True
    assert stability([0.0, 0.0], 1, repeats=2)["rates"] == [float("inf"), float("inf")]


def test_vendor_perf_file_read_by_the_guides_rules():
    from clsbench.runtime.timing import StageTimes, format_perf_file
    from helpers import guide_interface_rate, guide_perf_fields

    t = StageTimes(samples=100, computed=128, wall_s=2.0, read_s=0.5, preprocess_s=0.0, infer_s=0.8, post_s=0.1)
    text = format_perf_file(t)
    assert text.splitlines() == [
        "[e2e] throughputRate: 50, latency: 2000",
        "[data read] throughputRate: 200, moduleLatency: 5",
        "[preprocess] throughputRate: inf, moduleLatency: 0",
        "[infer] throughputRate: 125, Interface throughputRate: 160, moduleLatency: 8",
        "[post] throughputRate: 1000, moduleLatency: 1"] and text.endswith("\n")
    assert guide_interface_rate(text) == 160.0
    rec = t.record()
    assert rec["preprocess"]["throughputRate"] is None and rec["infer"]["Interface throughputRate"] == 160.0
    assert StageTimes(0, 0, 1.0, 0.0, 0.0, 0.0, 0.0).rates()["data read"]["moduleLatency"] == 0.0
    long = format_perf_file(StageTimes(3, 3, 3.0, 1e-9, 1.0, 1.0, 1.0))
    assert long.splitlines()[1] == "[data read] throughputRate: 3000000000.0, moduleLatency: 0.0"
    assert guide_perf_fields(text) == ["50", "2000", "200", "5", "inf", "0", "125", "160", "8", "1000", "1"]


# ---------------------------------------------------------------- the reuse rule of perf and zoo cells

def _sha(path) -> str:
    import hashlib

    return hashlib.sha256(open(path, "rb").read()).hexdigest()


def test_cell_sources_are_every_file_the_data_and_the_machine(tmp_path):
    import hashlib
    import os
    from importlib import metadata

    from clsbench import __version__
    from clsbench.measure.sweep import cell_sources
    from clsbench.runtime.timing import Config, cpu_model
    from helpers import tiny_classifier

    onnx_path = tiny_classifier(tmp_path / "m.onnx", size=8, classes=10)
    xml, bin_ = tmp_path / "ir.xml", tmp_path / "ir.bin"
    xml.write_text("<net/>")
    bin_.write_bytes(b"weights")
    pool = np.arange(24, dtype=np.float32).reshape(1, 3, 2, 4)
    got = cell_sources([Config("onnxruntime", "fp32", str(onnx_path)), Config("openvino", "fp32", str(xml))], pool)
    assert got[os.path.realpath(onnx_path)] == _sha(onnx_path)
    assert got[os.path.realpath(xml)] == _sha(xml) and got[os.path.realpath(bin_)] == _sha(bin_)
    assert got["the real-data input (--data)"] == hashlib.sha256(pool.tobytes()).hexdigest()
    assert got["the CPU"] == cpu_model() and got["clsbench's version"] == __version__
    assert got["the usable CPUs"] == len(os.sched_getaffinity(0))
    assert got["onnxruntime's runtime version"] == metadata.version("onnxruntime")
    assert got["openvino's runtime version"] == metadata.version("openvino")
    assert "the real-data input (--data)" not in cell_sources([Config("onnxruntime", "fp32", str(onnx_path))], None)
    t = cell_sources([Config("onnxruntime", "fp32", str(onnx_path)), Config("onnxruntime", "int8", str(onnx_path))], None)
    assert len(t) == 1 + 3 + 1  # one model file, CPU/CPUs/version, one runtime


def test_reusable_cells_only_from_the_same_settings_and_sources(tmp_path, caplog):
    from clsbench.measure.sweep import reusable_cells

    ck = tmp_path / "cells.json"
    rows = [{"cell": 1}]
    sources = {"m.onnx": "aa", "the CPU": "x"}
    ck.write_text(json.dumps({"identity": {"batches": [1, 8]}, "sources": sources, "rows": rows}))
    assert reusable_cells(str(ck), {"batches": [1, 8]}, dict(sources)) == rows
    with caplog.at_level("INFO", logger="clsbench"):
        assert reusable_cells(str(ck), {"batches": [1]}, sources) == []
        assert reusable_cells(str(ck), {"batches": [1, 8]}, {"m.onnx": "bb", "the CPU": "x"}) == []
        assert reusable_cells(str(ck), {"batches": [1, 8]}, {"m.onnx": "aa"}) == []
        assert reusable_cells(str(ck), {"batches": [1, 8]}, {**sources, "new": "1"}) == []
    text = [r.getMessage() for r in caplog.records]
    assert text[0] == f"perf: the cells in {ck} were measured with other settings: measuring again"
    assert text[1] == f"perf: m.onnx changed since the cells in {ck} were measured: measuring again"
    assert text[2] == f"perf: the CPU changed since the cells in {ck} were measured: measuring again"
    assert text[3] == f"perf: new changed since the cells in {ck} were measured: measuring again"
    ck.write_text(json.dumps({"identity": {"batches": [1, 8]}, "rows": rows}))
    caplog.clear()
    with caplog.at_level("INFO", logger="clsbench"):
        assert reusable_cells(str(ck), {"batches": [1, 8]}, sources) == []
    assert caplog.records[0].getMessage() == (f"perf: {ck} records no fingerprints of what its cells measured: "
                                              f"measuring again")
    ck.write_text(json.dumps({"identity": {"batches": [1, 8]}, "sources": sources, "rows": []}))
    assert reusable_cells(str(ck), {"batches": [1, 8]}, sources) == []
    ck.write_text("{")
    assert reusable_cells(str(ck), {"batches": [1, 8]}, sources) == []
    assert reusable_cells(str(tmp_path / "none.json"), {}, {}) == []


def test_compiled_artifact_used_only_when_compiled_from_this_model(tmp_path):
    from types import SimpleNamespace

    from clsbench.measure.sweep import _check_compiled_from

    model, art = tmp_path / "m.onnx", tmp_path / "c" / "m.onnx"
    model.write_bytes(b"model")
    art.parent.mkdir()
    art.write_bytes(b"artifact")
    rec = art.parent / "m.compile.json"
    t = SimpleNamespace(backend="onnxruntime", precision="int8", calibration=True)
    how = (f"make it again with `clsbench compile --model {model} --backend onnxruntime --precision int8 "
           f"--data DIR --output {art.parent}`")
    with pytest.raises(ClsbenchError) as e:
        _check_compiled_from(str(art), str(model), t)
    assert str(e.value) == (f"{art} has no record of the model it was compiled from ({rec}), not from {model} "
                            f"(SHA-256 {_sha(model)[:12]}…); {how}")
    rec.write_text(json.dumps({"identity": {"source_sha256": "ab" * 32}, "source": "other.onnx"}))
    with pytest.raises(ClsbenchError) as e:
        _check_compiled_from(str(art), str(model), t)
    assert str(e.value) == (f"{art} was compiled from other.onnx (SHA-256 abababababab…), not from {model} "
                            f"(SHA-256 {_sha(model)[:12]}…); {how}")
    rec.write_text(json.dumps({"identity": {"source_sha256": _sha(model)}, "artifact_sha256": {"m.onnx": _sha(art)}}))
    assert _check_compiled_from(str(art), str(model), t) is None
    art.write_bytes(b"copied over")
    with pytest.raises(ClsbenchError, match=rf"^{art}: {art} is not the file compiled \(SHA-256 {_sha(art)[:12]}…"):
        _check_compiled_from(str(art), str(model), SimpleNamespace(backend="openvino", precision="fp32", calibration=False))
    rec.write_text("{")
    with pytest.raises(ClsbenchError, match=r"has no record of the model it was compiled from"):
        _check_compiled_from(str(art), str(model), t)


# ---------------------------------------------------------------- what the first `make mutate` left alive

def test_summary_notes_continue_only_the_last_and_fields_after_notes_stay_fields(tmp_path):
    from clsbench.measure.loadgen import parse_summary

    text = ("Result is : VALID\nEarly Stopping Result:\n * first.\n * second\n * third\n continued here\n"
            "   \n  Min duration satisfied : NO\n==== : not a field\n")
    (tmp_path / "s.txt").write_bytes(text.encode() + b"SUT name : caf\xe9\n")
    s = parse_summary(tmp_path / "s.txt")
    assert s["notes"] == ["first.", "second", "third continued here"]
    assert s["valid"] is True and s["result"] == "VALID" and s["reasons"] == ["Min duration satisfied: NO"]
    assert s["fields"]["Min duration satisfied"] == "NO" and s["fields"]["SUT name"] == "caf\ufffd"
    assert "====" not in s["fields"]


def test_settings_keep_their_kind_and_a_signed_whole_number_exactly():
    from clsbench.measure.loadgen import setting_value

    v = setting_value("target_qps", "5")
    assert v == 5.0 and isinstance(v, float)
    assert setting_value("min_query_count", "+9223372036854775807") == 2**63 - 1
    assert setting_value("min_query_count", " 7 ") == 7


def test_perf_rows_a_zero_module_latency_is_idle_and_default_percentiles():
    from clsbench.report.tables import latency_cells, perf_rows

    assert perf_rows({"stages": {"S": {"moduleLatency": 0.0, "throughputRate": 1.0}}}) == [
        ("S", "time per image", "– (under 0.005 ms: no work in this step here)")]
    assert perf_rows({"stages": {"S": {"moduleLatency": None}}}) == [
        ("S", "time per image", "– (under 0.005 ms: no work in this step here)")]
    assert [k for k, _ in latency_cells({"min": 1, "p50": 2, "p90": 3, "p99": 4, "max": 5})] == [
        "min", "p50", "p90", "p99", "max"]


def test_reuse_messages_name_every_change_and_a_bad_checkpoint(tmp_path, caplog):
    from clsbench.measure.sweep import reusable_cells

    ck = tmp_path / "cells.json"
    ck.write_text(json.dumps({"identity": {}, "sources": {"a": "1", "b": "2"}, "rows": [{}]}))
    with caplog.at_level("INFO", logger="clsbench"):
        assert reusable_cells(str(ck), {}, {"a": "3", "b": "4"}) == []
        ck.write_text("[1]")
        assert reusable_cells(str(ck), {}, {}) == []
    text = [r.getMessage() for r in caplog.records]
    assert text[0] == f"perf: a, b changed since the cells in {ck} were measured: measuring again"
    assert text[1].startswith(f"perf: {ck}: unreadable clsbench record (not a JSON object)") and text[1].endswith(
        ": measuring again")


def test_compiled_artifact_messages_say_the_command_to_type(tmp_path, monkeypatch):
    from types import SimpleNamespace

    from clsbench.measure.sweep import _check_compiled_from

    monkeypatch.chdir(tmp_path)
    (tmp_path / "src.onnx").write_bytes(b"model")
    (tmp_path / "m.onnx").write_bytes(b"artifact")
    (tmp_path / "m.compile.json").write_text(json.dumps({"identity": {"source_sha256": "cd" * 32}}))
    with pytest.raises(ClsbenchError) as e:
        _check_compiled_from("m.onnx", "src.onnx", SimpleNamespace(backend="openvino", precision="fp32", calibration=False))
    assert str(e.value) == ("m.onnx was compiled from another model (SHA-256 cdcdcdcdcdcd…), not from src.onnx "
                            f"(SHA-256 {_sha(tmp_path / 'src.onnx')[:12]}…); make it again with `clsbench compile "
                            "--model src.onnx --backend openvino --precision fp32 --output .`")


def _rec(top1=70.0, top5=90.0, ips=100.0, stable=True, images="/d", p99=9.0, stages=True, acc=True):
    r = _run_rec(top1, ips, stable=stable, images=images)
    r["accuracy"]["top5"] = top5
    r["performance"]["compute_latency_ms_per_batch"]["p99"] = p99
    if not stages:
        del r["performance"]["stages"]
    if not acc:
        r["accuracy"], r["predictions"] = None, {"images": 12}
    return r


def test_run_comparison_top5_latency_counts_and_missing_stages():
    from clsbench.report.html import _cell, _run_rows

    def rows(recs, **kw):
        return {r["figure"]: r["cells"] for r in _run_rows(recs, 5.0, **kw)}

    got = rows([_rec(top5=90.0, p99=9.0), _rec(top5=89.5, p99=12.0)])
    assert got["Top-5 %"][1] == {"value": 89.5, "delta": -0.5, "points": True, "regression": True}
    assert got["Top-5 %"][0] == {"value": 90.0, "delta": 0.0, "points": True}
    assert got["p99 ms per batch"][1] == {"value": 12.0, "delta": pytest.approx(100 / 3)}
    small = rows([_rec(top5=90.0), _rec(top5=89.95)])
    assert "regression" not in small["Top-5 %"][1]
    other = rows([_rec(top5=90.0), _rec(top5=80.0, images="/e")])
    assert "regression" not in other["Top-5 %"][1]
    preds = rows([_rec(acc=False), _rec(acc=False)])
    assert preds["images counted"][0]["value"] == 12 and preds["Top-1 %"][0] == {"value": None, "delta": None}
    bare = rows([_rec(stages=False), _rec()])
    assert bare["images/s compute"][0] == {"value": None, "delta": None}
    assert bare["images/s end to end"][1] == {"value": 50.0, "delta": None}
    three = rows([_rec(stable=False), _rec(), _rec(ips=50.0)])
    assert three["images/s compute"][2] == {"value": 50.0, "delta": -50.0, "unstable": True}
    assert _cell(95.0, 100.0, limit=5.0, unstable=True) == {"value": 95.0, "delta": -5.0}


def _runnable(pp, known=True, key="resnet18:IMAGENET1K_V1", path="/m/model.onnx"):
    from types import SimpleNamespace

    return SimpleNamespace(preset=SimpleNamespace(pp=pp), preset_known=known, model=SimpleNamespace(key=key), path=path)


def test_tensors_meet_only_the_model_whose_preset_made_them(caplog):
    import dataclasses

    from clsbench.model.table import get_model
    from clsbench.plan import check_tensor_preset

    pp = get_model("resnet18").preprocessing
    other = dataclasses.replace(pp, crop=200, interpolation="bicubic")
    with caplog.at_level("INFO", logger="clsbench"):
        assert check_tensor_preset("bins/", None, _runnable(pp), False) == {
            "tensors": None, "checked": False, "why": "the tensors' preprocessing is not recorded"}
        assert check_tensor_preset("bins/", pp, _runnable(pp), False) == {
            "tensors": json.loads(json.dumps(pp.as_dict())), "checked": True, "match": True}
        unknown = check_tensor_preset("bins/", other, _runnable(pp, known=False), False)
    assert unknown == {"tensors": json.loads(json.dumps(other.as_dict())), "checked": False, "match": False,
                       "why": "the model records no preset"}
    said = [r.getMessage() for r in caplog.records]
    assert said[0] == ("bins/: the tensors' preprocessing is not recorded (not made by clsbench preprocess): "
                       f"not checked against the model's ({pp.describe()})")
    assert said[1] == f"bins/: the model records no preset; the tensors' ({other.describe()}) taken as is"
    with pytest.raises(ClsbenchError) as e:
        check_tensor_preset("bins/", other, _runnable(pp), False)
    assert str(e.value) == (f"bins/: tensors preprocessed with {other.describe()}; the model resnet18:IMAGENET1K_V1 "
                            f"expects {pp.describe()} (they differ in crop, interpolation): preprocess them again "
                            "with `clsbench preprocess --model resnet18:IMAGENET1K_V1 ...`, or give "
                            "--accept-preset-mismatch to run them anyway")
    with pytest.raises(ClsbenchError) as e:
        check_tensor_preset("bins/", other, _runnable(pp, key=None), False)
    assert "the model model.onnx expects" in str(e.value) and "`clsbench preprocess --model NAME ...`" in str(e.value)
    caplog.clear()
    with caplog.at_level("WARNING", logger="clsbench"):
        took = check_tensor_preset("bins/", other, _runnable(pp), True)
    assert took == {"tensors": json.loads(json.dumps(other.as_dict())), "checked": True, "match": False,
                    "accepted_mismatch": ["crop", "interpolation"]}
    assert caplog.records[0].getMessage() == (f"bins/: tensors preprocessed with {other.describe()}, not the model's "
                                              f"{pp.describe()} (--accept-preset-mismatch): recorded")


def test_judged_keeps_the_models_identity():
    import dataclasses

    from clsbench.model.table import get_model
    from clsbench.plan import _judged

    spec = dataclasses.replace(get_model("resnet18"), num_classes=1001)
    for prov in ("proxy", "official", "other"):
        m = _judged(spec, prov, "sha")
        assert (m.key, m.provenance, m.weights_sha256, m.num_classes) == (spec.key, prov, "sha", 1001)
        assert m.spec is spec


def test_stage_latencies_per_image_by_hand():
    from clsbench.runtime.timing import StageTimes, latency_stats

    r = StageTimes(samples=1, computed=1, wall_s=1.0, read_s=0.002, preprocess_s=0.004, infer_s=0.006,
                   post_s=0.008).rates()
    assert [r[s]["moduleLatency"] for s in ("data read", "preprocess", "infer", "post")] == pytest.approx([2, 4, 6, 8])
    r = StageTimes(samples=4, computed=4, wall_s=1.0, read_s=0.0, preprocess_s=0.02, infer_s=0.0, post_s=0.0).rates()
    assert r["preprocess"]["moduleLatency"] == pytest.approx(5.0) and r["preprocess"]["throughputRate"] == 200.0
    a = np.array([1.1, 2.2, 3.3], np.float32)  # float32 timings: the statistics in float64 all the same
    s = latency_stats(a, (50.0, 90.0))
    b = a.astype(np.float64)
    assert s["p90"] == float(np.percentile(b, 90)) and s["mean"] == float(b.mean())


def test_package_data_read_afresh():
    from clsbench.data.labelsets import _data

    assert _data("imagenet_classes.txt") == (DATA / "imagenet_classes.txt").read_text(encoding="utf-8")
    assert _data("imagenet_a_indices.txt").split()[:2] == (DATA / "imagenet_a_indices.txt").read_text().split()[:2]


def _parquet(folder, rows: dict) -> None:
    from clsbench.runtime.parquet import ParquetOutput

    out = ParquetOutput(folder)
    out.prepare({}, False, {})
    out.write(list(rows), np.array(list(rows.values()), np.float32))
    out.finish()


def test_parquet_outputs_scored_and_named_by_key(tmp_path):
    from clsbench.accuracy.evaluate import evaluate

    _parquet(tmp_path / "pq", {"a": [0, 1, 2], "b": [2, 1, 0], "c": [0, 0, 1]})
    lf = _labels(tmp_path / "l.txt", {"a": 2, "b": 1})
    acc = evaluate(tmp_path / "pq", lf)
    assert acc.images == 2 and acc.hits == [1, 1, 0, 0, 0] and acc.unlabelled_outputs == ["c"]
    with pytest.raises(ClsbenchError, match=rf"^{lf}: no label for 1 outputs, e\.g\. c$"):
        evaluate(tmp_path / "pq", lf, strict=True)
    with pytest.raises(ClsbenchError, match=rf"none of the 3 outputs in {tmp_path / 'pq'} has a label$"):
        evaluate(tmp_path / "pq", _labels(tmp_path / "z.txt", {"z": 1}))


def test_in_memory_scores_name_where_and_the_label_file(tmp_path):
    from clsbench.accuracy.evaluate import evaluate_scores

    lf = _labels(tmp_path / "l.txt", {"a": 1, "b": 7})
    x = np.zeros((2, 3), np.float32)
    with pytest.raises(ClsbenchError, match=r"^log: a second output for image 'a'$"):
        evaluate_scores("log", ["a", "a"], x, lf)
    with pytest.raises(ClsbenchError, match=rf"^{lf}: label 7 of 'b' is out of range for a 3-class output$"):
        evaluate_scores("log", ["a", "b"], x, lf)


def test_result_json_never_over_its_inputs(tmp_path):
    from clsbench.accuracy.evaluate import check_result_path

    out = tmp_path / "out"
    _txt_outputs(out, {"a": [0, 1]})
    lf = _labels(tmp_path / "l.txt", {"a": 1})
    with pytest.raises(ClsbenchError) as e:
        check_result_path(tmp_path, "l.txt", out, lf)
    assert str(e.value) == (f"{tmp_path / 'l.txt'}: is also the label file (the same file); give another "
                            "OUT_DIR or result.json name")
    with pytest.raises(ClsbenchError) as e:
        check_result_path(tmp_path, "out.clsbench.json", out, lf)
    assert str(e.value).startswith(f"{tmp_path / 'out.clsbench.json'}: is also the record of RESULT_DIR's outputs")
    with pytest.raises(ClsbenchError) as e:
        check_result_path(out, "r.json", out, None)
    assert "RESULT_DIR" in str(e.value) and str(e.value).endswith("give another OUT_DIR or result.json name")
    assert check_result_path(tmp_path, "r.json", out, lf) == tmp_path / "r.json"
    assert check_result_path(tmp_path, "l.txt", out, None) == tmp_path / "l.txt"


def test_top5_is_int32_and_softmax_is_each_rows_own_without_overflow():
    from clsbench.accuracy.predict import softmax
    from clsbench.runtime.scores import top5

    assert top5(np.array([[0.1, 0.3, 0.2]], np.float32)).dtype == np.int32
    assert top5(np.array([[0.1, 0.3, 0.2]], np.float32)).tolist() == [[1, 2, 0]]
    assert top5(np.zeros((2, 9), np.float32)).dtype == np.int32
    p = softmax(np.array([[1000.0, 999.0], [0.0, -1.0]], np.float32))
    want = [1 / (1 + math.exp(-1)), math.exp(-1) / (1 + math.exp(-1))]
    assert np.all(np.isfinite(p)) and p.tolist() == [pytest.approx(want), pytest.approx(want)]
    assert p.dtype == np.float64


def test_schema_rest_before_named_keys_and_lists_of_sixteen():
    from clsbench.report.records import Num, Scalar, Str, validate

    schema = {"*": Num(), "a": Str()}
    with pytest.raises(ClsbenchError, match=r"field a: expected text, got int 1$"):
        validate({"a": 1}, schema, "r.json")
    assert validate({"f": [1] * 16}, {"f": Scalar()}, "r.json")


def test_load_record_says_each_kind(tmp_path):
    from clsbench.report.records import load_record

    env = {"cpu": "x"}
    perf = {"rows": [], "configs": [], "batches": [1], "warmup": 0, "min_iterations": 1, "duration_s": 1.0,
            "environment": env}
    rt = {"runtime": "onnxruntime", "version": "1"}
    lg = {"scenario": "server", "loadgen_scenario": "Server", "mode": "performance",
          "model": {"path": "m", "key": None, "provenance": "foreign"},
          "target": {"backend": "onnxruntime", "precision": "fp32", "batch_size": 1, "runtime": rt},
          "data": {"source": "random", "samples": 8, "labels": None}, "measured_batch_ms": 1.0, "runs": {},
          "peak": None, "environment": env}
    tune = {"plan": {}, "weights": "w", "data": "d", "options": {"max_drop": 0.5, "latency_bound_ms": None,
                                                                "percentile": 99},
            "split": {"calib": 1, "tune": 1, "held_out": 1},
            "search": {"candidates": [], "accuracy": {}, "path": [], "winner": None, "stopped": "done",
                       "space_size": 0, "timed": 0},
            "baselines": {}, "winner_commands": {}, "measured": 0, "reused": 0, "environment": env}
    for kind, name, rec in (("perf", "perf.json", perf), ("loadgen", "loadgen.json", lg), ("tune", "tune.json", tune)):
        d = tmp_path / kind
        d.mkdir()
        (d / name).write_text(json.dumps(rec))
        assert load_record(str(d)) == (kind, rec)
        (d / name).write_text(json.dumps({**rec, "environment": 3}))
        with pytest.raises(ClsbenchError) as e:
            load_record(str(d))
        assert str(e.value) == (f"{d / name}: not a clsbench record this version can read: field environment: "
                                "expected an object, got int 3")


def test_stability_defaults_bounds_and_wall_windows():
    from clsbench.runtime.timing import stability

    assert stability([10.0] * 10, 1)["repeats"] == 5  # five windows by default
    edge = stability([110.0, 110.0, 100.0], 11, repeats=3)  # 100, 100 and 110 images/s: a spread of exactly 10 %
    assert edge["rates"] == [100.0, 100.0, 110.0] and edge["spread"] == 0.1 and edge["stable"] is True
    w = stability([10.0, 30.0, 40.0, 80.0], 1, repeats=4, wall=True)  # windows of 10, 20, 10 and 40 ms
    assert w["rates"] == [100.0, 50.0, 100.0, 25.0]
    w3 = stability([10.0, 20.0, 30.0, 60.0, 70.0, 80.0], 1, repeats=2, wall=True)  # 3 runs in 30 ms, 3 in 50 ms
    assert w3["rates"] == [100.0, 60.0]
    f32 = np.array([1.1, 2.3, 3.7, 1.9], np.float32)
    assert stability(f32, 3, repeats=2)["rates"] == stability(f32.astype(np.float64), 3, repeats=2)["rates"]


def test_what_the_second_make_mutate_run_left_alive(tmp_path, monkeypatch):
    from clsbench.accuracy.evaluate import Scoring, check_result_path, evaluate
    from clsbench.measure.loadgen import setting_value
    from clsbench.plan import judge_accuracy

    out = tmp_path / "w1001"
    _txt_outputs(out, {"a": np.zeros(1001)})
    with pytest.raises(ClsbenchError, match=r"label 1000 of 'a' is out of range for a 1001-class output$"):
        evaluate(out, _labels(tmp_path / "l1.txt", {"a": 1000}))
    a_idx = [int(x) for x in (DATA / "imagenet_a_indices.txt").read_text().split()]
    out = tmp_path / "w1000"
    _txt_outputs(out, {"a": np.zeros(1000)})
    lf = _labels(tmp_path / "la.txt", {"a": a_idx[0]})
    assert evaluate(out, lf, scoring=Scoring(label_set="imagenet-a")).label_set == "imagenet-a"
    bad = _labels(tmp_path / "lb.txt", {"a": next(c for c in range(1000) if c not in a_idx)})
    with pytest.raises(ClsbenchError, match=rf"^{bad}: label \d+ of 'a' is not one of the 200 classes"):
        evaluate(out, bad, scoring=Scoring(label_set="imagenet-a"))
    with pytest.raises(ClsbenchError, match=rf"^{lf}: no output has a ReaL label"):
        evaluate(out, lf, scoring=Scoring(real_labels=True))
    with pytest.raises(ClsbenchError) as e:
        check_result_path(out, "r.json", out, None)
    assert str(e.value) == (f"{out / 'r.json'}: lies inside RESULT_DIR {out}, which is read as input (an output is "
                            "never written among its inputs); give another OUT_DIR or result.json name")
    v = setting_value("min_query_count", "5.0")
    assert v == 5 and isinstance(v, int)
    m = _model_plan(top1=80.0)
    v = judge_accuracy(m, 79.0, 50_000, 0.1)  # the margin, 0.3506, is the bound, said to 3 places
    assert v["allowed_drop"] == 0.351 == v["sampling_margin"]


def test_parquet_parts_counted_together_and_nan_refused(tmp_path, monkeypatch):
    from clsbench.accuracy.evaluate import evaluate

    monkeypatch.setenv("CLSBENCH_PARQUET_ROWS", "2")
    _parquet(tmp_path / "pq", {"a": [0, 1], "b": [1, 0], "c": [0, 1]})
    assert len(list((tmp_path / "pq").glob("part-*.parquet"))) == 2
    with pytest.raises(ClsbenchError, match=rf"none of the 3 outputs in {tmp_path / 'pq'} has a label$"):
        evaluate(tmp_path / "pq", _labels(tmp_path / "z.txt", {"z": 1}))
    _parquet(tmp_path / "nan", {"a": [0, float("nan")]})
    with pytest.raises(ClsbenchError, match=r"part-00000\.parquet: holds NaN or infinite scores$"):
        evaluate(tmp_path / "nan", _labels(tmp_path / "l.txt", {"a": 1}))


def test_folder_fingerprint_follows_the_images_only(tmp_path):
    import os

    from clsbench.plan import folder_fingerprint
    from PIL import Image

    d = tmp_path / "val"
    d.mkdir()
    for n in ("a", "b"):
        Image.new("RGB", (4, 4), (9, 9, 9)).save(d / f"{n}.JPEG")
    first = folder_fingerprint(d)
    assert first == folder_fingerprint(str(d)) and len(first) == 16
    (d / "notes.txt").write_text("not an image")
    assert folder_fingerprint(d) == first
    Image.new("RGB", (4, 4), (200, 9, 9)).save(d / "b.JPEG")
    os.utime(d / "b.JPEG", ns=(1, 1))
    second = folder_fingerprint(d)
    assert second != first
    os.rename(d / "b.JPEG", d / "c.JPEG")
    third = folder_fingerprint(d)
    assert third != second
    when = (d / "a.JPEG").stat().st_mtime_ns
    Image.new("RGB", (64, 64), (9, 9, 9)).save(d / "a.JPEG")  # another size, the same mtime
    os.utime(d / "a.JPEG", ns=(when, when))
    assert folder_fingerprint(d) != third


def test_an_empty_parquet_dataset_is_refused(tmp_path):
    from clsbench.accuracy.evaluate import evaluate

    (tmp_path / "outputs_device0.parquet").mkdir()
    with pytest.raises(ClsbenchError, match=r"outputs_device0\.parquet: holds no output rows \(part-\*\.parquet\)$"):
        evaluate(tmp_path / "outputs_device0.parquet", _labels(tmp_path / "l.txt", {"a": 1}))


def test_peak_cards_say_the_percentile_the_bound_was_judged_at():
    from clsbench.report.html import _lg_peak_card

    pk = {"peak_qps": 12.5, "bracket": [12.5, 14.0], "latency_bound_ms": 100.0, "tries": [{}, {}], "percentile": 90}
    assert "highest VALID Server load at p90 ≤ 100.0 ms" in _text(_lg_peak_card(pk))
    old = {k: v for k, v in pk.items() if k != "percentile"}  # records written before the field: p99, as run
    assert "at p99 ≤ 100.0 ms" in _text(_lg_peak_card(old))
    assert "no target QPS was VALID at p90 ≤ 100.0 ms (2 tries)" in _text(_lg_peak_card({**pk, "peak_qps": None}))
