"""Ascend NPUs without the hardware: the CANN provider's options, the refusals, and the
guide's ONNX -> .om command lines run through a stand-in `atc` that records them."""
from __future__ import annotations

import os
import stat
import sys

import pytest
from helpers import run_cli

from clsbench import ClsbenchError


def test_provider_options_mirror_the_guides_atc_settings():
    from clsbench.runtime.backends.cann import provider_options

    assert provider_options(3, "fp16") == {"device_id": "3", "precision_mode": "force_fp16",
                                           "enable_cann_graph": "1", "arena_extend_strategy": "kNextPowerOfTwo"}
    assert provider_options(0, "fp32")["precision_mode"] == "force_fp32"
    with pytest.raises(ClsbenchError, match="precision 'int8' not in fp16, fp32"):
        provider_options(0, "int8")


def test_cann_backend_says_what_is_missing(proxy_onnx):
    import onnxruntime as ort

    from clsbench.runtime.backends import open_backend

    if "CANNExecutionProvider" in ort.get_available_providers():
        pytest.skip("expected: an Ascend machine; the backend would run")
    with pytest.raises(ClsbenchError, match=r"has no CANNExecutionProvider; on an Ascend machine install "
                                            r"onnxruntime-cann \(pip install 'clsbench\[cann\]'\)"):
        open_backend("cann", str(proxy_onnx), batch_size=1)


def _path_without_atc(tmp_path):
    return {**os.environ, "PATH": f"{os.path.dirname(sys.executable)}:/usr/bin:/bin"}


def test_compile_cann_refuses_without_atc(tmp_path, proxy_onnx):
    p = run_cli("compile", "--model", str(proxy_onnx), "--backend", "cann", "--output", str(tmp_path / "om"),
                env=_path_without_atc(tmp_path), check=False)
    assert p.returncode == 2 and "needs the vendor's ATC compiler (`atc`), which is not on PATH" in p.stderr
    assert "Traceback" not in p.stderr and not list((tmp_path).glob("om/*.om"))


def test_compile_cann_runs_the_guides_atc_command_per_batch(tmp_path, proxy_onnx):
    """A stand-in atc records its arguments and writes <output>.om, as the real one does."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    atc = bindir / "atc"
    atc.write_text('#!/bin/sh\necho "$@" >> "$ATC_LOG"\nfor a in "$@"; do case $a in --output=*) '
                   'touch "${a#--output=}.om";; esac; done\n')
    atc.chmod(atc.stat().st_mode | stat.S_IEXEC)
    env = {**_path_without_atc(tmp_path), "ATC_LOG": str(tmp_path / "atc.log")}
    env["PATH"] = f"{bindir}:{env['PATH']}"
    p = run_cli("compile", "--model", str(proxy_onnx), "--backend", "cann", "--batches", "1,16",
                "--output", str(tmp_path / "om"), env=env)
    assert p.returncode == 0
    lines = (tmp_path / "atc.log").read_text().splitlines()
    stem = proxy_onnx.stem
    assert lines == [f"--framework=5 --model={proxy_onnx} --output={tmp_path}/om/{stem}_bs{bs} --input_format=NCHW "
                     f"--input_shape=image:{bs},3,224,224 --log=error --soc_version=Ascend710 "
                     f"--precision_mode=force_fp16" for bs in (1, 16)]
    assert sorted(f.name for f in (tmp_path / "om").glob("*.om")) == [f"{stem}_bs1.om", f"{stem}_bs16.om"]
    assert (tmp_path / "om" / f"{stem}.cann.compile.json").is_file()


def test_compile_cann_refuses_an_opset_atc_cannot_read(tmp_path, proxy_onnx):
    import onnx

    m = onnx.load(str(proxy_onnx))
    for o in m.opset_import:
        if o.domain in ("", "ai.onnx"):
            o.version = 13
    onnx.save(m, str(tmp_path / "m13.onnx"))
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "atc").write_text("#!/bin/sh\nexit 1\n")
    (bindir / "atc").chmod(0o755)
    env = _path_without_atc(tmp_path)
    env["PATH"] = f"{bindir}:{env['PATH']}"
    p = run_cli("compile", "--model", str(tmp_path / "m13.onnx"), "--backend", "cann", "--output",
                str(tmp_path / "om"), env=env, check=False)
    assert p.returncode == 2 and "opset 13; ATC reads opset 11 (guide §3.1): export with --opset 11" in p.stderr
