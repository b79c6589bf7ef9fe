"""An output is never its own input, in every command; an export's arguments are all checked
before torch is imported, and a failed export leaves no model that a later run takes as
checked; compile's default calibration count adapts to a small folder and says so."""
import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import run_cli

from test_isolation import BLOCK_TORCH  # the same import blocker, one copy


def tree(root) -> dict:
    """Every entry under root (hidden ones too): a file's SHA-256, a link's target, a folder."""
    got = {}
    for d, dirs, files in os.walk(root):
        for n in dirs + files:
            p = os.path.join(d, n)
            rel = os.path.relpath(p, root)
            if os.path.islink(p):
                got[rel] = ("link", os.readlink(p))
            elif os.path.isdir(p):
                got[rel] = "dir"
            else:
                with open(p, "rb") as f:
                    got[rel] = hashlib.sha256(f.read()).hexdigest()
    return got


def refused(p, *needles):
    """Exit 2 with one line naming what was refused."""
    assert p.returncode == 2, p.stdout + p.stderr
    assert "Traceback" not in p.stderr and len(p.stderr.strip().splitlines()) == 1, p.stderr
    for n in needles:
        assert n in p.stderr, (n, p.stderr)


# ---------------------------------------------------------------- export

@pytest.mark.parametrize("how", ["same", "dotdot", "symlink", "hardlink", "parity-record"])
def test_export_never_writes_over_its_weights(tmp_path, proxy_weights, how):
    """The user's report: `export --weights w/r18.pth --output w/r18.pth` exited 0 and the
    weights file was an ONNX model afterwards. Refused however the same file is spelled, and
    when the parity record <output>.parity.json would land on the weights."""
    (tmp_path / "w").mkdir()
    weights = "w/r18.parity.json" if how == "parity-record" else "w/r18.pth"
    shutil.copyfile(proxy_weights, tmp_path / weights)
    output = {"same": "w/r18.pth", "dotdot": "./w/../w/r18.pth", "symlink": "link.onnx", "hardlink": "w/r18.onnx",
              "parity-record": "w/r18.onnx"}[how]
    if how == "symlink":
        os.symlink("w/r18.pth", tmp_path / "link.onnx")
    if how == "hardlink":
        os.link(tmp_path / weights, tmp_path / "w" / "r18.onnx")
    named = "w/r18.parity.json" if how == "parity-record" else output
    before = tree(tmp_path)
    p = run_cli("export", "--weights", weights, "--output", output, cwd=tmp_path, check=False)
    refused(p, f"{named}: is also the --weights file", "give another --output")
    assert tree(tmp_path) == before  # the weights byte-identical, nothing written beside them


@pytest.mark.parametrize("args,needle", [
    (["--parity-images", "MISSING"], "MISSING: --parity-images folder not found"),
    (["--parity-images", "empty"], "empty: --parity-images folder holds no images"),
    (["--opset", "99"], "--opset 99: the exporter writes opsets 7 to 20"),
    (["--output", "afile/m.onnx"], "afile/m.onnx: its folder cannot be made"),
])
def test_export_arguments_are_checked_before_torch(tmp_path, proxy_weights, args, needle):
    """A wrong argument is told before torch is imported (here torch cannot be imported at
    all: the export's slow steps are out of reach) and nothing is written."""
    shutil.copyfile(proxy_weights, tmp_path / "w.pth")
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("no images here\n")
    (tmp_path / "afile").write_text("a file, not a folder\n")
    argv = ["export", "--weights", "w.pth", "--output", "m.onnx", *args]
    if "--output" in args:
        argv = ["export", "--weights", "w.pth", *args]
    code = BLOCK_TORCH + f"from clsbench.cli.commands import main; sys.exit(main({argv!r}))"
    before = tree(tmp_path)
    p = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    refused(p, needle)
    assert tree(tmp_path) == before


def test_missing_parity_images_through_the_cli_leave_no_model(tmp_path, proxy_weights):
    """The report's second case, as a user runs it: no model is written before the error."""
    shutil.copyfile(proxy_weights, tmp_path / "w.pth")
    before = tree(tmp_path)
    p = run_cli("export", "--weights", "w.pth", "--output", "out/m.onnx", "--parity-images", "MISSING",
                cwd=tmp_path, check=False)
    refused(p, "MISSING: --parity-images folder not found")
    assert tree(tmp_path) == before  # no out/, no m.onnx, no record


def test_a_failed_export_leaves_no_model_at_output(tmp_path, proxy_weights):
    """A model refused by its parity check is not placed (an earlier one there is removed):
    only its record, which says it failed, is left, so neither `run` nor `infer` takes it."""
    import torch

    from clsbench.compile.export import current_export, read_parity
    from clsbench.model.table import get_model

    sd = torch.load(proxy_weights, map_location="cpu", weights_only=True)
    sd["classifier.1.weight"].zero_()  # logits that ignore the input: no evidence, a failed check
    torch.save(sd, tmp_path / "z.pth")
    (tmp_path / "m.onnx").write_bytes(b"an earlier model")
    p = run_cli("export", "--weights", "z.pth", "--output", "m.onnx", cwd=tmp_path, check=False)
    refused(p, "m.onnx: the exported model does not compute what PyTorch computes", "no model written")
    assert not (tmp_path / "m.onnx").exists()
    assert sorted(os.listdir(tmp_path)) == ["m.parity.json", "z.pth"]  # no work folder left either
    assert read_parity(str(tmp_path / "m.onnx"))["passed"] is False
    assert current_export(tmp_path / "m.onnx", get_model("mnasnet1_0"), str(tmp_path / "z.pth")) is None


def test_the_export_cache_takes_only_the_file_its_record_judged(tmp_path, proxy_onnx, proxy_weights):
    """`run` reuses work/model.onnx when its parity record passed for these weights; a model
    put there since (an interrupted export, a copy over it) is not the one the record judged."""
    import onnx

    from clsbench.compile.export import current_export, parity_path
    from clsbench.model.table import get_model

    spec, onnx_path = get_model("mnasnet1_0"), tmp_path / "model.onnx"
    shutil.copyfile(proxy_onnx, onnx_path)
    shutil.copyfile(parity_path(str(proxy_onnx)), parity_path(str(onnx_path)))
    assert current_export(onnx_path, spec, str(proxy_weights)) is not None
    m = onnx.load(onnx_path)
    m.graph.node[0].name = "another"
    onnx.save(m, onnx_path)
    assert current_export(onnx_path, spec, str(proxy_weights)) is None


# ---------------------------------------------------------------- preprocess, info, eval

@pytest.mark.parametrize("fmt", ["bin", "store"])
@pytest.mark.parametrize("dst", ["val", "val/prep", "./val/../val"])
def test_preprocess_never_writes_among_its_images(tmp_path, proxy_dataset, fmt, dst):
    shutil.copytree(proxy_dataset / "val", tmp_path / "val")
    before = tree(tmp_path)
    p = run_cli("preprocess", "-q", "--format", fmt, "val", dst, cwd=tmp_path, check=False)
    refused(p, f"{Path(dst)}: ", "SRC_DIR val", "give another DST_DIR")
    assert tree(tmp_path) == before


@pytest.mark.parametrize("mode", ["bin", "jpg"])
def test_info_never_writes_over_a_file_it_lists(tmp_path, proxy_dataset, mode):
    """OUT.info beside the files (the guide's habit) is fine; OUT.info that is one of them is not."""
    d = tmp_path / "d"
    if mode == "bin":
        d.mkdir()
        for n in ("a.bin", "b.bin"):
            (d / n).write_bytes(os.urandom(64))
    else:
        shutil.copytree(proxy_dataset / "val", d)
    victim = "d/" + sorted(n for n in os.listdir(d) if not n.startswith("."))[0]
    extra = ["224", "224"] if mode == "bin" else []
    before = tree(tmp_path)
    p = run_cli("info", mode, "d", victim, *extra, cwd=tmp_path, check=False)
    refused(p, f"{victim}: is also one of the", "give another OUT.info")
    assert tree(tmp_path) == before
    run_cli("info", mode, "d", "d/x.info", *extra, cwd=tmp_path)  # inside DIR, as the guide does
    assert (d / "x.info").is_file()


@pytest.fixture
def outputs(tmp_path):
    """A result folder of three per-image outputs and their labels."""
    r = tmp_path / "result" / "dumpOutput_device0"
    r.mkdir(parents=True)
    for i, n in enumerate(("a", "b", "c")):
        (r / f"{n}_1.txt").write_text(" ".join(str(float(k == i)) for k in range(10)) + "\n")
    (tmp_path / "val_label.txt").write_text("a.JPEG 0\nb.JPEG 1\nc.JPEG 5\n")
    return r


@pytest.mark.parametrize("out_dir,name,needle", [
    (".", "val_label.txt", "val_label.txt: is also the label file"),
    ("result/dumpOutput_device0", "result.txt", "lies inside RESULT_DIR"),
    ("result/dumpOutput_device0", "result.json", "lies inside RESULT_DIR"),
    ("result/dumpOutput_device0", "a_1.txt", "lies inside RESULT_DIR"),
])
def test_eval_never_writes_over_its_inputs(tmp_path, outputs, out_dir, name, needle):
    """result.json is not written over the labels, nor into the folder of outputs (the
    guide's eval reads every file there; a *.txt would be read back as an output)."""
    before = tree(tmp_path)
    p = run_cli("eval", "result/dumpOutput_device0", "val_label.txt", out_dir, name, cwd=tmp_path, check=False)
    refused(p, needle, "give another OUT_DIR or result.json name")
    assert tree(tmp_path) == before


# ---------------------------------------------------------------- compile

@pytest.mark.parametrize("how", ["output-is-data", "output-inside-data", "artifact-is-the-model"])
def test_compile_never_writes_over_its_inputs(tmp_path, proxy_onnx, proxy_dataset, how):
    shutil.copytree(proxy_dataset / "val", tmp_path / "val")
    shutil.copyfile(proxy_onnx, tmp_path / "m.onnx")
    output = {"output-is-data": "val", "output-inside-data": "val/compiled", "artifact-is-the-model": "compiled"}[how]
    if how == "artifact-is-the-model":
        (tmp_path / "compiled").mkdir()
        os.symlink("../m.onnx", tmp_path / "compiled" / "m.onnxruntime.fp32.onnx")
    before = tree(tmp_path)
    p = run_cli("compile", "--model", "m.onnx", "--backend", "onnxruntime", "--precision", "fp32",
                "--data", "val", "--parity-images", "4", "--output", output, cwd=tmp_path, check=False)
    needle = ("compiled/m.onnxruntime.fp32.onnx: is also the --model file" if how == "artifact-is-the-model"
              else f"{output}: ")
    refused(p, needle, "give another --output folder")
    assert tree(tmp_path) == before


def test_compile_default_calibration_adapts_to_a_small_folder(tmp_path, proxy_onnx, proxy_dataset, caplog):
    """int8's default 300 calibration images on a 24-image folder: 16 calibrate, the last 8
    are held out for parity, one line says so and the record keeps the numbers. A folder too
    small for 8 calibration images is refused; an explicit count is never adapted."""
    from clsbench import ClsbenchError
    from clsbench.compile.artifacts import compile_model, record_path

    names = sorted(os.listdir(proxy_dataset / "val"))
    for n, k in (("d24", 24), ("d10", 10)):
        (tmp_path / n).mkdir()
        for f in names[:k]:
            shutil.copyfile(proxy_dataset / "val" / f, tmp_path / n / f)
    kw = dict(backend="onnxruntime", precision="int8", output_dir=str(tmp_path / "c"))
    with caplog.at_level("INFO", logger="clsbench"):
        rec = compile_model(str(proxy_onnx), data=str(tmp_path / "d24"), calib_images=None, **kw)
    said = [r.getMessage() for r in caplog.records if "--calib-images" in r.getMessage()]
    assert len(said) == 1 and "default 300 is more than the 24 images" in said[0] and "calibrating on 16" in said[0]
    assert rec["calibration_images"] == 16 and rec["identity"]["calib_images"] == 16
    assert rec["calib_images_adapted"] == {"default": 300, "folder_images": 24, "used": 16, "held_out": 8}
    assert len(rec["parity"]["held_out_names"]) == 8
    assert not set(rec["parity"]["held_out_names"]) & set(rec["calibration_names"])
    assert json.loads(open(record_path(rec["artifact"])).read())["calib_images_adapted"]["used"] == 16
    with pytest.raises(ClsbenchError, match="holds 10 images; onnxruntime:int8 calibrates on at least 8"):
        compile_model(str(proxy_onnx), data=str(tmp_path / "d10"), calib_images=None, **kw)
    with pytest.raises(ClsbenchError, match="holds 24 images; .* --calib-images 300"):
        compile_model(str(proxy_onnx), data=str(tmp_path / "d24"), calib_images=300, **kw)
