"""The guide's offline route to an Ascend NPU: ONNX -> .om with the vendor's `atc` compiler.

`clsbench compile --backend cann` runs, for each batch size (the guide's 1, 4, 8, 16, 32, 64),
the command line of the guide's onnx2om.sh as formats.md §2 records it: framework 5 (ONNX),
input `image:<bs>,3,<H>,<W>`, NCHW, one fixed-batch model per batch size, and the SoC the
figures are for (the guide measured an Ascend 710; `--soc-version` picks another). The .om
files are what the vendor's benchmark/msame tools run; clsbench cannot run them itself (use
the cann backend on the ONNX for clsbench's own runs). Without `atc` on PATH it refuses in one
line. ATC reads ONNX opset 11 (guide §3.1): an export at another opset is refused.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

from .. import ClsbenchError, __version__
from .._io import atomic_write_json

GUIDE_BATCHES = (1, 4, 8, 16, 32, 64)
ATC_OPSET = 11


def atc_command(onnx_path: str, output_stem: str, batch: int, size: int, soc_version: str,
                precision: str) -> list[str]:
    from ..runtime.backends.cann import PRECISION_MODE

    return ["atc", "--framework=5", f"--model={onnx_path}", f"--output={output_stem}",
            "--input_format=NCHW", f"--input_shape=image:{batch},3,{size},{size}", "--log=error",
            f"--soc_version={soc_version}", f"--precision_mode={PRECISION_MODE[precision]}"]


def _check(onnx_path: str) -> int:
    from ..model.files import kind, read_metadata

    if kind(onnx_path) != "onnx":
        raise ClsbenchError(f"{onnx_path}: compile takes an ONNX model (see `clsbench export`)")
    if shutil.which("atc") is None:
        raise ClsbenchError("compile --backend cann needs the vendor's ATC compiler (`atc`), which is not on "
                            "PATH: install the CANN toolkit and `source /usr/local/Ascend/ascend-toolkit/set_env.sh`")
    import onnx

    m = onnx.load(onnx_path, load_external_data=False)
    opset = next((o.version for o in m.opset_import if o.domain in ("", "ai.onnx")), None)
    if opset != ATC_OPSET:
        raise ClsbenchError(f"{onnx_path}: opset {opset}; ATC reads opset {ATC_OPSET} (guide §3.1): "
                            f"export with --opset {ATC_OPSET}")
    size = int(m.graph.input[0].type.tensor_type.shape.dim[2].dim_value)
    return size or int(read_metadata(onnx_path, "onnx").get("input_size", 224))


def compile_om(onnx_path: str, *, output_dir: str, precision: str = "fp16", batches=GUIDE_BATCHES,
               soc_version: str = "Ascend710", log=None) -> dict:
    """One .om per batch size, named as the guide's (<stem>_bs<N>.om); returns the record."""
    from ..model.files import check_external_data

    check_external_data(onnx_path)  # atc would read any file the model points at into the .om
    size = _check(onnx_path)
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    stem = Path(onnx_path).stem
    made = []
    for bs in batches:
        target = out / f"{stem}_bs{bs}"
        cmd = atc_command(os.path.abspath(onnx_path), str(target), bs, size, soc_version, precision)
        if log:
            import shlex

            log(shlex.join(cmd))  # a line the user can paste
        t0 = time.perf_counter()
        p = subprocess.run(cmd, capture_output=True, text=True)
        om = target.with_suffix(".om")
        if p.returncode != 0 or not om.is_file():
            last = (p.stderr or p.stdout).strip().splitlines()[-1:] or ["no output"]
            raise ClsbenchError(f"atc failed for batch {bs} (exit {p.returncode}): {last[0]}")
        made.append({"batch": bs, "om": str(om), "command": cmd, "seconds": round(time.perf_counter() - t0, 2)})
    record = {"tool": f"clsbench {__version__}", "source": os.path.abspath(onnx_path), "backend": "cann",
              "precision": precision, "soc_version": soc_version, "artifacts": made,
              "note": "run them with the vendor's benchmark or msame tool; clsbench's own runs use "
                      "--backend cann on the ONNX"}
    atomic_write_json(out / f"{stem}.cann.compile.json", record)
    return record
