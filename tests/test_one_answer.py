"""One answer by every path (issue 33): output format (txt, bin, npy, parquet) × engine (local,
`--stream`, `--engine ray` joined to this module's loopback head as tests/test_ray.py does it)
× class count (1000; 1001: the same model with a background column 0 prepended whose score is
always the lowest) give the same result.json, ReaL figures (`--real-labels`), ImageNet-A figures
(`clsbench eval --label-set imagenet-a` on the run's outputs) and predictions.csv.

Every cell is compared byte for byte with the first cell (txt, local, 1000 classes), and every
cell's figures, outputs and predictions with a reference computed here: ONNX Runtime run
directly on tensors preprocessed by `helpers.reference_bin` (formats.md read independently),
ranked with numpy's stable argsort; ReaL labels read from the shipped json, ImageNet-A's
classes from the shipped index list. Between 1000 and 1001 classes only "Number of classes" in
result.json and the class numbers of predictions.csv (a 1001-class output's columns, column 0
the background) may differ: every figure is the same.

The data: 12 small textured JPEGs named as ImageNet validation images (ReaL labels shipped),
their colours picked so that the tiny linear model (helpers.tiny_classifier, seed 0) ranks
known classes: 5 ReaL top-1 hits, 3 more in its top 5; labels (all ImageNet-A classes) hit at
several ranks of both the 1000 classes and the 200 of ImageNet-A, and one misses everywhere.

predictions.csv comes from a second run of the same cell on a folder of symlinks to the same
images without labels, in the same work dir: the outputs are reused (an output's fingerprint
follows the symlink), so that run is the cell's engine and format writing predictions from its
own outputs.

Cells dropped, for time (the file: 97 s on the 2-core machine at load average ~5, 2026-12-07:
Ray 38 s, --stream 34 s, local 15 s, data and reference 9 s): a Ray run costs a
fresh interpreter, a Ray job and its actor's imports (11-15 s each measured here, under load),
so Ray runs two cells, txt with 1000 classes and parquet with 1001 (the driver's two writers,
each class count once); its bin, npy, txt/1001 and parquet/1000 cells are dropped (bin and npy
are the per-image writer txt goes through, with another encoding). `--stream` runs one worker
process (a spawn costs ~2 s of CPU here) over two chunks (8 and 4 images, batch 2); several
workers are tests/test_survivors.py's and tests/test_ray.py's."""
from __future__ import annotations

import csv
import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest

from helpers import ROOT, installed, reference_bin, run_cli, tiny_classifier

DATA = ROOT / "src" / "clsbench" / "data"
FORMATS = ("txt", "bin", "npy", "parquet")
RAY_CELLS = (("txt", 1000), ("parquet", 1001))
CLASSES = (1000, 1001)
BATCH = 4
# (validation image number, RGB colour, label): see the module's docstring
CASES = [(9, (92, 60, 212), 234), (19, (20, 140, 148), 470), (23, (28, 20, 52), 643), (40, (228, 28, 44), 411),
         (89, (140, 84, 28), 752), (2, (156, 108, 228), 845), (3, (84, 100, 20), 557), (4, (124, 228, 92), 94),
         (5, (228, 228, 132), 39), (17, (36, 180, 124), 108), (26, (212, 60, 228), 845), (14, (228, 188, 76), 90)]
MEAN, STD = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]


# ---------------------------------------------------------------- the data, the models, the reference

class World:
    """The images (labelled and not), both models and the reference figures."""

    def __init__(self, root: Path):
        self.root = root
        self.labelled, self.unlabelled = root / "labelled", root / "unlabelled"
        self.models = {1000: root / "m1000.onnx", 1001: root / "m1001.onnx"}
        self.names = [f"ILSVRC2012_val_{n:08d}" for n, _, _ in sorted(CASES)]
        self.labels = {f"ILSVRC2012_val_{n:08d}": label for n, _, label in CASES}
        self.logits: dict[int, np.ndarray] = {}
        self.cells: dict[tuple, dict] = {}


def _images(w: World) -> None:
    from PIL import Image

    val = w.labelled / "val"
    val.mkdir(parents=True)
    w.unlabelled.mkdir()
    rng = np.random.default_rng(5)
    for i, (n, colour, _) in enumerate(CASES):
        h, wd = 40 + 7 * i, 64 - 3 * i  # small, of different shapes: each is resized up to 256
        px = np.clip(np.array(colour)[None, None, :] + rng.integers(-10, 11, (h, wd, 3)), 0, 255)
        name = f"ILSVRC2012_val_{n:08d}.JPEG"
        Image.fromarray(px.astype(np.uint8)).save(val / name, quality=95)
        (w.unlabelled / name).symlink_to(val / name)
    (w.labelled / "val_label.txt").write_text("".join(f"{k}.JPEG {v}\n" for k, v in w.labels.items()))


def _models(w: World) -> None:
    """1000 classes: helpers.tiny_classifier with the resnet18 preset recorded (no model named:
    a model file from elsewhere); 1001: the same graph with column 0 prepended, weights 0 and
    bias -1000 (the others' logits are within ±50 here), so it is always ranked last."""
    import onnx
    from onnx import numpy_helper

    from clsbench.model.table import get_model

    pp = get_model("resnet18:IMAGENET1K_V1").preprocessing
    assert (pp.resize, pp.crop, list(pp.mean), list(pp.std)) == (256, 224, MEAN, STD)
    tiny_classifier(w.models[1000], meta={"preprocessing": json.dumps(pp.as_dict())})
    m = onnx.load(w.models[1000])
    init = {t.name: t for t in m.graph.initializer}
    wt, b = numpy_helper.to_array(init["w"]), numpy_helper.to_array(init["b"])
    init["w"].CopyFrom(numpy_helper.from_array(np.concatenate([np.zeros((3, 1), np.float32), wt], 1), "w"))
    init["b"].CopyFrom(numpy_helper.from_array(np.concatenate([np.float32([-1000]), b]), "b"))
    m.graph.output[0].type.tensor_type.shape.dim[1].dim_value = 1001
    onnx.checker.check_model(m)
    onnx.save(m, w.models[1001])


def _reference_logits(w: World) -> None:
    import onnxruntime as ort

    val = w.labelled / "val"
    x = np.stack([np.frombuffer(reference_bin(val / f"{k}.JPEG", 256, 224, MEAN, STD), "<f4").reshape(3, 224, 224)
                  for k in w.names])
    for c, path in w.models.items():
        w.logits[c] = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"image": x})[0]
    a, b = w.logits[1000], w.logits[1001]
    assert b.shape == (12, 1001) and np.array_equal(b[:, 1:], a)  # premise: the same model
    assert np.all(b[:, 0] < b[:, 1:].min(axis=1))  # premise: the background is always last


def _ranks(logits: np.ndarray) -> np.ndarray:
    return np.argsort(-logits, axis=1, kind="stable")


def _guide_json(images: int, classes: int, hits_at: list[int]) -> str:
    """formats.md §6: the guide's result.json, Top-k cumulative, str(round(x * 100, 2)) + '%'."""
    value = [{"key": "Number of images", "value": str(images)}, {"key": "Number of classes", "value": str(classes)}]
    for k in range(1, 6):
        acc = sum(r < k for r in hits_at) / images
        value.append({"key": f"Top{k} accuracy", "value": str(round(acc * 100, 2)) + "%"})
    return json.dumps({"title": "Overall statistical evaluation", "value": value})


def expected(w: World, classes: int) -> dict:
    """The figures, from the 1000-class reference logits (the 1001 model's are the same plus
    the background column, checked above): a 1001-class output is scored on its columns 1..1000."""
    logits = w.logits[1000]
    ranked = _ranks(logits)
    labels = np.array([w.labels[k] for k in w.names])
    rank_of = [int(np.nonzero(r == lab)[0][0]) for r, lab in zip(ranked, labels)]
    a_idx = np.array([int(x) for x in (DATA / "imagenet_a_indices.txt").read_text().split()])
    a_ranked = a_idx[_ranks(logits[:, a_idx])]
    a_rank_of = [int(np.nonzero(r == lab)[0][0]) for r, lab in zip(a_ranked, labels)]
    real = json.loads((DATA / "imagenet_real_labels.json").read_text())
    sets = [real[int(k[-8:]) - 1] for k in w.names]
    assert all(sets)  # premise: every image has a ReaL label
    return {"result": _guide_json(12, classes, rank_of), "label_set": _guide_json(12, 200, a_rank_of),
            "real": (100.0 * np.mean([r[0] in s for r, s in zip(ranked, sets)]),
                     100.0 * np.mean([any(c in s for c in r[:5]) for r, s in zip(ranked, sets)])),
            "rank_of": rank_of, "a_rank_of": a_rank_of}


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> World:
    w = World(tmp_path_factory.mktemp("one-answer"))
    _images(w)
    _models(w)
    _reference_logits(w)
    e = expected(w, 1000)
    # premises: the figures are informative, and differ by rank (a lost rank changes them)
    assert sorted(e["rank_of"])[:5] == [0, 0, 0, 3, 4], e["rank_of"]
    assert sorted(e["a_rank_of"]) == [0] * 7 + [1, 1, 2, 3, 29], e["a_rank_of"]
    assert e["real"] == pytest.approx((100 * 5 / 12, 100 * 8 / 12))
    return w


# ---------------------------------------------------------------- one cell

def _args(w: World, fmt: str, engine: str, classes: int, data: Path, work: Path) -> list:
    a = ["run", "-q", "--weights", w.models[classes], "--data", data, "--work-dir", work, "--outfmt", fmt,
         "--batch-size", 2 if engine == "stream" else BATCH]
    if engine == "stream":  # one worker process (a spawn costs ~2 s of CPU here), two chunks (8 + 4 images)
        a += ["--stream", "--workers", "1"]
    elif engine == "ray":
        a += ["--engine", "ray", "--workers", "1"]
    return a + (["--real-labels"] if data == w.labelled else [])


def _run(args: list, engine: str, head) -> None:
    if engine != "ray":
        run_cli(*args)
        return
    p = head.run([sys.executable, "-m", "clsbench.cli", *map(str, args)])
    assert p.returncode == 0, p.stdout + p.stderr


def run_cell(w: World, fmt: str, engine: str, classes: int, head=None) -> dict:
    """The cell's labelled run (result.json, ReaL in summary.json), `clsbench eval
    --label-set imagenet-a` on its outputs, and the unlabelled run's predictions.csv."""
    key = (fmt, engine, classes)
    if key in w.cells:
        return w.cells[key]
    work = w.root / "-".join(map(str, key))
    _run(_args(w, fmt, engine, classes, w.labelled, work), engine, head)
    summary = json.loads((work / "summary.json").read_text())
    out = work / "result" / ("outputs_device0.parquet" if fmt == "parquet" else "dumpOutput_device0")
    run_cli("eval", "-q", out, w.labelled / "val_label.txt", work, "imagenet_a.json", "--label-set", "imagenet-a")
    _run(_args(w, fmt, engine, classes, w.unlabelled, work), engine, head)
    cell = {"work": work, "outputs": out, "summary": summary, "result": (work / "result.json").read_bytes(),
            "label_set": (work / "imagenet_a.json").read_bytes(),
            "predictions": (work / "predictions.csv").read_bytes(),
            "unlabelled_summary": json.loads((work / "summary.json").read_text())}
    w.cells[key] = cell
    return cell


def _read_outputs(out: Path, fmt: str) -> dict[str, np.ndarray]:
    """The cell's logits per image, read as formats.md describes each format (not by clsbench)."""
    if fmt == "parquet":
        import pyarrow.parquet as pq

        parts = sorted(out.glob("part-*.parquet"))
        assert parts, f"{out}: no Parquet parts"
        return {r["image"]: np.array(r["logits"], np.float32) for p in parts for r in pq.read_table(p).to_pylist()}
    got = {}
    for name in sorted(os.listdir(out)):
        assert name.endswith(f"_1.{fmt}"), name  # nothing but this format's outputs
        f = out / name
        got[name[:-len(f"_1.{fmt}")]] = (np.array(f.read_text().split(), np.float32) if fmt == "txt"
                                         else np.fromfile(f, "<f4") if fmt == "bin" else np.load(f))
    return got


def _read_predictions(raw: bytes) -> list[list[str]]:
    rows = list(csv.reader(raw.decode().splitlines()))
    assert rows[0] == ["image"] + [f"{x}{r}" for r in range(1, 6) for x in ("class", "name", "prob")]
    return rows[1:]


def check_against_reference(w: World, cell: dict, fmt: str, engine: str, classes: int) -> None:
    # the path it claims: format, engine, layout
    plan, perf = cell["summary"]["plan"], cell["summary"]["performance"]
    assert (plan["outfmt"], plan["engine"], plan["stream"]) == (fmt, "ray" if engine == "ray" else "local",
                                                                 engine != "local")
    assert perf["samples"] == 12 and perf["resumed"] == 0, perf  # this run inferred every image itself
    backend = perf["backend"]
    if engine == "ray":
        assert backend["engine"] == "ray" and "MapBatches(Infer)" in backend["ray_operators"], backend
    elif engine == "stream":
        assert backend["processes"] == 1 and "pipeline" in backend["layout"], backend
    else:
        assert "processes" not in backend and "engine" not in backend, backend
        assert len(list((cell["work"] / "prep_dataset").glob("*.bin"))) == 12  # the .bin path, not streamed
    assert cell["outputs"].is_dir()
    assert not (cell["work"] / "result" / ("dumpOutput_device0" if fmt == "parquet" else
                                           "outputs_device0.parquet")).exists()
    # the outputs: each image's logits, as the model gives them
    got = _read_outputs(cell["outputs"], fmt)
    assert sorted(got) == w.names
    for i, k in enumerate(w.names):
        np.testing.assert_allclose(got[k], w.logits[classes][i], rtol=1e-5, atol=1e-4, err_msg=k)
    # the figures
    e = expected(w, classes)
    assert cell["result"].decode() == e["result"]
    assert cell["label_set"].decode() == e["label_set"]
    real = cell["summary"]["accuracy"]["real"]
    assert (real["images"], real["without_real_label"], real["not_validation_names"]) == (12, 0, 0)
    assert (real["top1"], real["top5"]) == pytest.approx(e["real"], abs=1e-9)
    # predictions: the reference's top 5, its softmax probabilities (1001: a column's number)
    assert cell["unlabelled_summary"]["accuracy"] is None
    rows = _read_predictions(cell["predictions"])
    assert [r[0] for r in rows] == w.names
    logits = w.logits[1000].astype(np.float64)
    prob = np.exp(logits - logits.max(1, keepdims=True))
    prob /= prob.sum(1, keepdims=True)
    for r, ranked, p in zip(rows, _ranks(w.logits[1000])[:, :5], prob):
        assert [int(c) for c in r[1::3]] == [int(c) + (classes == 1001) for c in ranked], r
        assert [float(x) for x in r[3::3]] == pytest.approx(p[ranked].tolist(), abs=2e-6), r
    assert max(float(r[3]) for r in rows) > 0.5 and min(float(r[3]) for r in rows) < 0.5  # premise


def check_against_first(cell: dict, classes: int, firsts: dict) -> None:
    """Byte for byte: the first cell of the same class count; across class counts, result.json
    differs by its "Number of classes" only, the ImageNet-A and ReaL figures not at all."""
    assert cell["result"] == firsts[classes]["result"]
    assert cell["predictions"] == firsts[classes]["predictions"]
    assert cell["result"].replace(b'"Number of classes", "value": "1001"', b'"Number of classes", "value": "1000"'
                                  ) == firsts[1000]["result"]
    assert cell["label_set"] == firsts[1000]["label_set"]
    assert cell["summary"]["accuracy"]["real"] == firsts[1000]["summary"]["accuracy"]["real"]


@pytest.fixture(scope="module")
def firsts(world) -> dict:
    """The first cell (txt, local, 1000 classes) and its 1001-class twin, each checked against
    the reference."""
    out = {}
    for classes in CLASSES:
        out[classes] = run_cell(world, "txt", "local", classes)
        check_against_reference(world, out[classes], "txt", "local", classes)
    return out


def _matrix(world, firsts, engine: str, cells, head=None) -> None:
    done = []
    for fmt, classes in cells:
        cell = run_cell(world, fmt, engine, classes, head)
        try:
            check_against_reference(world, cell, fmt, engine, classes)
            check_against_first(cell, classes, firsts)
        except AssertionError as e:
            raise AssertionError(f"cell {fmt}/{engine}/{classes} (after {done} agreed): {e}") from e
        done.append((fmt, classes))


@pytest.mark.parametrize("engine", ["local", "stream"])
def test_every_format_and_class_count_gives_one_answer(world, firsts, engine):
    _matrix(world, firsts, engine, [(f, c) for c in CLASSES for f in FORMATS])


@pytest.mark.skipif(not installed("ray"), reason="pip install 'clsbench[ray]' (make test installs it)")
def test_ray_gives_the_same_answer(world, firsts, request):
    head = request.getfixturevalue("ray_head")
    _matrix(world, firsts, "ray", RAY_CELLS, head)


def test_1001_class_predictions_name_the_same_classes(firsts):
    rows = {c: _read_predictions(firsts[c]["predictions"]) for c in CLASSES}
    for a, b in zip(rows[1000], rows[1001]):
        assert [int(c) + 1 for c in a[1::3]] == [int(c) for c in b[1::3]]  # premise: the columns shift
        assert a[3::3] == b[3::3]
        assert a[2::3] == b[2::3], (a, b)


# the suite's loopback Ray head (tests/test_ray.py), started for this module only when its test runs
if installed("ray"):
    from test_ray import ray_env, ray_head  # noqa: E402,F401
