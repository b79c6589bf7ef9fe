"""pth -> ONNX (formats.md §1) with a parity check against PyTorch, the export cache.

Needs the `export` extra (torch, torchvision); nothing else in clsbench imports torch.
Weights are read with torch.load(weights_only=True): a .pth carrying a pickle payload is
refused, never executed.
"""
from __future__ import annotations

import contextlib
import hashlib
import io
import json
import logging
import os
import re
import shutil
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .. import ClsbenchError
from .._io import atomic_write_json
from ..model.table import ModelSpec, get_model
from ..model.weights import _torch, build_model, identify_weights, load_state_dict

FP32_MAX_REL_ERROR = 1e-5


log = logging.getLogger("clsbench")

# The exported model is judged against PyTorch in float64, relative to how far PyTorch's own
# fp32 result is from it: a correct export is fp32 arithmetic in another order (and, in ONNX
# Runtime, approximated Sigmoid/SiLU kernels), so its error is of the same size. Measured
# over the zoo (docs/zoo.md, realistic weights): ratios 0.6-1.2 for most families, 1.0-6.7
# for EfficientNet b0-b7 (deep SiLU stacks); a wrong export is 100-10,000x off (a conv
# weight x1.01: 1.6e-2; one BatchNorm eps: 2.2e-3; bounds ~1e-5-1e-4).
PARITY_FACTOR = 10.0  # allowed: this many times PyTorch fp32's own error ...
PARITY_FLOOR = 1e-6  # ... plus this (relative L2), for models where fp32 is nearly exact
MARGIN_FACTOR = 10.0  # top-1 must agree where the float64 top-1/top-2 margin is this many
                      # times the image's fp32 noise (max |fp32 - float64| over its logits)


def parity(reference: np.ndarray, candidate: np.ndarray) -> dict:
    """Relative L2 error of the logits and top-1 / top-5 agreement of candidate vs reference."""
    ref, cand = reference.astype(np.float64), candidate.astype(np.float64)
    rel = float(np.linalg.norm(cand - ref) / max(np.linalg.norm(ref), 1e-30))
    top1 = float(np.mean(ref.argmax(1) == cand.argmax(1)))
    r5 = np.argsort(-ref, axis=1, kind="stable")[:, :5]
    c5 = np.argsort(-cand, axis=1, kind="stable")[:, :5]
    overlap = float(np.mean([len(set(a) & set(b)) / 5 for a, b in zip(r5, c5)]))
    same5 = float(np.mean([set(a) == set(b) for a, b in zip(r5, c5)]))
    return {"samples": int(ref.shape[0]), "rel_l2_error": rel, "max_abs_error": float(np.abs(cand - ref).max()),
            "top1_agreement": top1, "top5_set_agreement": same5, "top5_overlap": overlap,
            "reference_logit_std": float(ref.std())}


def torch_references(net, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(fp32, float64) PyTorch logits of x; the float64 copy is the ground truth."""
    import copy

    torch, _ = _torch()
    with torch.no_grad():
        ref32 = net(torch.from_numpy(x)).numpy()
        # in NCHW order: preprocessed images are channels-last views (HWC transposed), and
        # PyTorch's float64 convolutions in that layout are ~3x slower (benchmarks/layouts.py:
        # MnasNet on 15 photos, one core, 6.39 s vs 1.94)
        x64 = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float64))
        ref64 = copy.deepcopy(net).double()(x64).numpy()
    return ref32, ref64


def _depends_on_input(ref64: np.ndarray) -> bool:
    """Whether the reference logits tell the parity images apart (one image: whether they
    vary at all). A zero head gives every image its bias: any export matching that passes."""
    return bool(np.ptp(ref64, axis=0).max() > 0) if len(ref64) > 1 else bool(np.ptp(ref64) > 0)


def judge_parity(ref32: np.ndarray, ref64: np.ndarray, got: np.ndarray) -> dict:
    """Every figure of the export check, and its verdict with the reasons it failed."""
    fp32 = parity(ref64, ref32)
    cand = parity(ref64, got)
    bound = PARITY_FACTOR * fp32["rel_l2_error"] + PARITY_FLOOR
    top2 = np.sort(ref64, axis=1)[:, -2:]
    margin = top2[:, 1] - top2[:, 0]
    noise = np.abs(ref32.astype(np.float64) - ref64).max(axis=1)
    clear = margin > MARGIN_FACTOR * noise
    disagree = clear & (got.argmax(1) != ref64.argmax(1))
    reasons = []
    if not _depends_on_input(ref64):
        reasons.append(f"PyTorch's own logits are the same for all {len(ref64)} parity images: they do not depend "
                       f"on the input (untrained weights? a freshly built ViT has a zero head), so no comparison "
                       f"can tell a wrong export from a right one; export trained weights or realistic stand-ins "
                       f"(`clsbench demo --model NAME` leaves some in its work dir, realistic_random_NAME.pth), or "
                       f"write it unchecked with --no-check")
    if not cand["rel_l2_error"] <= bound:
        reasons.append(f"rel. L2 error vs float64 PyTorch {cand['rel_l2_error']:.2e} exceeds "
                       f"{bound:.2e} ({PARITY_FACTOR:g} x PyTorch fp32's own {fp32['rel_l2_error']:.2e} "
                       f"+ {PARITY_FLOOR:g})")
    if disagree.any():
        reasons.append(f"top-1 differs from float64 PyTorch on {int(disagree.sum())} of {int(clear.sum())} "
                       f"images whose top-1/top-2 margin is clearly above fp32 noise "
                       f"(first: sample {int(np.argmax(disagree))})")
    return {"reference": "PyTorch float64 (same weights)", "candidate": "onnxruntime fp32 CPU",
            **cand, "torch_fp32_vs_float64": fp32,
            "top1_agreement_vs_torch_fp32": parity(ref32, got)["top1_agreement"],
            "rel_l2_error_vs_torch_fp32": parity(ref32, got)["rel_l2_error"],
            "bound_rel_l2_error": bound, "rule": {"factor": PARITY_FACTOR, "floor": PARITY_FLOOR,
                                                   "margin_factor": MARGIN_FACTOR},
            "clear_margin_images": int(clear.sum()), "clear_margin_disagreements": int(disagree.sum()),
            "passed": not reasons, "reasons": reasons}


def check_export(net, onnx_path: str, x: np.ndarray) -> dict:
    """Run the exported file with ONNX Runtime and judge it against `net` (see judge_parity)."""
    from ..runtime.backends.onnxruntime import OnnxRuntimeBackend

    ref32, ref64 = torch_references(net, x)
    got = OnnxRuntimeBackend(onnx_path, batch_size=x.shape[0]).run(x)
    return judge_parity(ref32, ref64, got)


def parity_inputs(spec: ModelSpec, images: str | None, n: int = 16, seed: int = 0) -> tuple[np.ndarray, str]:
    """Real photos preprocessed with the model's preset when a folder is given."""
    if images:
        from ..data.preprocess import load_folder

        got = load_folder(images, spec.preprocessing, 0, n)
        note = f" ({got.skipped} unreadable skipped)" if got.skipped else ""
        return got.x, f"{len(got.x)} images from {os.path.abspath(images)}{note}"
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((n, 3, spec.preprocessing.crop, spec.preprocessing.crop), dtype=np.float32),
            f"{n} synthetic normal samples (seed {seed}); pass --parity-images for real photos")


# ---------------------------------------------------------------- export

OPSETS = (11, 13, 14, 17, 18)  # the guide's 11 first; then the lowest that exports the architecture
LARGE = 2 ** 31 - 2 ** 26  # protobuf's 2 GiB limit, with room for the graph: weights go beside


@contextlib.contextmanager
def _fd1_to_debug_log():
    """File descriptor 1 into a temporary file for a while, then into the debug log. The
    TorchScript exporter's logging is always on (torch 2.14.1 tests `_jit_is_onnx_log_enabled`
    without calling it), and where an operator lacks a symbolic at an opset its C++ side
    writes the whole Torch IR to stdout (1,700 lines for ViT-B/32 at opset 11) before the
    next opset is tried: no place for it in clsbench's output."""
    import sys
    import tempfile

    sys.stdout.flush()
    try:
        saved = os.dup(1)
    except OSError:  # no stdout at all: nothing to keep clean
        yield
        return
    with tempfile.TemporaryFile() as f:
        os.dup2(f.fileno(), 1)
        try:
            yield
        finally:
            os.dup2(saved, 1)
            os.close(saved)
            f.seek(0)
            said = f.read(4000).decode(errors="replace")
            if said:
                log.debug(f"the ONNX exporter wrote to stdout: {said}")


def _export_once(net, size: int, path, opset: int) -> None:
    """One export to `path` (a file name, or a BytesIO for a model that fits in one protobuf)."""
    torch, _ = _torch()
    with warnings.catch_warnings(), _fd1_to_debug_log():
        # torch 2.9+ defaults to the dynamo exporter, but asked for opset 11 (the guide's,
        # ATC's) it fails to down-convert MnasNet (ReduceMean axes) and falls back to opset 18
        # (measured with torch 2.14.1); the TorchScript exporter writes opset 11 directly
        warnings.simplefilter("ignore")
        torch.onnx.export(net, torch.zeros(1, 3, size, size), path, input_names=["image"],
                          output_names=["class"], opset_version=opset, dynamo=False,
                          dynamic_axes={"image": {0: "-1"}, "class": {0: "-1"}})


def _exported_graph(net, spec: ModelSpec, tmp: Path, opset: int | None, output: str):
    """The exported ModelProto and its opset (OPSETS tried in order when `opset` is None).
    A model that fits in one protobuf is exported to memory and serialized once, after its
    metadata is stamped (VGG-11, 0.5 GB: one write, one read and one serialization fewer);
    a larger one goes through `tmp`, where the exporter puts its weights beside the graph."""
    import onnx

    in_memory = sum(t.numel() * t.element_size() for t in net.state_dict().values()) <= LARGE
    errors = []
    for o in ([opset] if opset else OPSETS):
        dest = io.BytesIO() if in_memory else str(tmp)
        try:
            _export_once(net, spec.preprocessing.crop, dest, o)
            break
        except Exception as e:  # an operator without a symbolic at this opset: try the next
            errors.append(f"opset {o}: {str(e).splitlines()[0][:200]}")
    else:
        raise ClsbenchError(f"{output}: {spec.name} does not export to ONNX ({'; '.join(errors)})")
    if not in_memory:
        return onnx.load(str(tmp)), o
    raw = dest.getvalue()
    dest.close()  # one copy of the graph in memory at a time, as from a file
    return onnx.load_from_string(raw), o


def _tensor_bytes(t) -> int:
    """An initializer's size from its shape and type (len(raw_data) copies the bytes)."""
    from onnx.helper import tensor_dtype_to_np_dtype

    return int(np.prod(t.dims, dtype=np.int64)) * tensor_dtype_to_np_dtype(t.data_type).itemsize


def _stage_onnx(net, spec: ModelSpec, output: str, opset: int | None, metadata: dict) -> tuple[Path, int]:
    """Export (trying OPSETS in order when `opset` is None), stamp the metadata and check the
    graph, into a work folder beside `output`: `final.onnx` there (and, for a model over 2 GB,
    its weights in `<output name>.data` beside it). Nothing is at `output` yet (`_place`).
    Returns the work folder and the opset written."""
    import onnx

    from ..model.files import set_onnx_metadata

    Path(output).parent.mkdir(parents=True, exist_ok=True)
    work = Path(output).parent / f".{Path(output).name}.export"  # the exporter may write weight files
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir()
    try:
        m, opset = _exported_graph(net, spec, work / Path(output).name, opset, output)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    data = Path(output).name + ".data"
    try:
        set_onnx_metadata(m, {**metadata, "opset": opset})
        # ByteSize() itself fails past protobuf's 2 GiB (and copies): count the weights instead
        large = sum(_tensor_bytes(t) for t in m.graph.initializer) > LARGE
        final = work / "final.onnx"
        if large:  # all weights in one file beside the model, checked from the path
            onnx.save(m, final, save_as_external_data=True, all_tensors_to_one_file=True, location=data)
            onnx.checker.check_model(str(final), full_check=True)
        else:
            blob = m.SerializeToString()
            onnx.checker.check_model(blob, full_check=True)
            final.write_bytes(blob)
    except Exception as e:
        shutil.rmtree(work, ignore_errors=True)
        raise ClsbenchError(f"{output}: exported graph fails onnx.checker ({e})") from None
    return work, opset


def _place(work: Path, output: str) -> None:
    """The staged model (and its weights file, if any) moved to `output`, the weights first."""
    data = Path(output).name + ".data"
    if (work / data).is_file():
        os.replace(work / data, Path(output).parent / data)
    os.replace(work / "final.onnx", output)


def _write_onnx(net, spec: ModelSpec, output: str, opset: int | None, metadata: dict) -> int:
    """Export, stamp, check and move into place, unjudged (`export_onnx` judges before it
    places). Returns the opset written."""
    work, opset = _stage_onnx(net, spec, output, opset, metadata)
    try:
        _place(work, output)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return opset


# torch 2.14.1's TorchScript exporter (dynamo=False): torch/onnx/_constants.py ONNX_MIN_OPSET,
# ONNX_TORCHSCRIPT_EXPORTER_MAX_OPSET
OPSET_RANGE = (7, 20)


def _check_output(output: str) -> None:
    """--output names a file whose folder exists or can be made, and can be written in."""
    if os.path.isdir(output):
        raise ClsbenchError(f"{output}: is a directory; --output names the ONNX file to write")
    there = Path(os.path.abspath(output)).parent
    while not there.exists() and there != there.parent:
        there = there.parent
    if not there.is_dir():
        raise ClsbenchError(f"{output}: its folder cannot be made ({there} is a file, not a folder)")
    if not os.access(there, os.W_OK | os.X_OK):
        raise ClsbenchError(f"{output}: cannot write in {there} (permission denied); give another --output")


def check_export_arguments(weights: str, output: str, opset: int | None, parity_images: str | None,
                           parity_batch: int) -> None:
    """Every argument of an export, checked before torch is imported or anything is written:
    a wrong one is told at once, not after the slow export. The model, its parity record and
    its weights file (`<output>.data`) are never an input: the weights, a parity image."""
    from .._io import check_not_input, regular_file
    from ..data.folders import list_images

    if parity_batch < 1:
        raise ClsbenchError(f"--parity-batch must be >= 1, got {parity_batch}")
    if opset is not None and not OPSET_RANGE[0] <= opset <= OPSET_RANGE[1]:
        raise ClsbenchError(f"--opset {opset}: the exporter writes opsets {OPSET_RANGE[0]} to {OPSET_RANGE[1]}")
    regular_file(weights, "weights file")
    from ..model.files import kind

    try:
        k = kind(weights)
    except ClsbenchError:
        k = "pth"  # not recognised: torch.load names what is wrong with it (or what to install)
    if k != "pth":
        what = {"onnx": "an ONNX model", "ir": "an OpenVINO IR"}[k]
        raise ClsbenchError(f"{weights}: {what}, already exported; export takes PyTorch weights (.pth). Run it as "
                            f"it is: clsbench run --weights {weights} --data DIR")
    images = []
    if parity_images:
        if not os.path.isdir(parity_images):
            raise ClsbenchError(f"{parity_images}: --parity-images folder not found (or not a folder)")
        images = [os.path.join(parity_images, str(p)) for p in list_images(parity_images).images]
        if not images:
            raise ClsbenchError(f"{parity_images}: --parity-images folder holds no images")
    output = os.fspath(output)
    _check_output(output)
    for path in (output, parity_path(output), output + ".data"):
        check_not_input(path, {"the --weights file": weights, "one of the --parity-images": images}, "--output")


def export_onnx(weights: str, output: str, *, model: str | None = None, opset: int | None = None,
                parity_images: str | None = None, parity_batch: int = 16,
                check: bool = True, provenance: str | None = None) -> dict:
    """Export, check the graph, judge it against PyTorch float64; writes `<output>.parity.json`.
    `model` None: plan.DEFAULT_MODEL. `provenance` (plan.PROVENANCE; None: told from the file's
    digest) is recorded in the ONNX, so every later run knows where its weights came from.
    Every argument is checked before torch is imported; the model reaches `output` only once
    it passed (or with check=False): a failed check leaves no model there, only its record."""
    from .. import __version__
    from ..model.provenance import DEFAULT_MODEL, PROVENANCE, weights_provenance

    spec = get_model(model or DEFAULT_MODEL)
    check_export_arguments(weights, output, opset, parity_images, parity_batch)
    x, source = parity_inputs(spec, parity_images, parity_batch)  # unreadable photos: told before torch
    ident = identify_weights(weights, spec)
    provenance = provenance or weights_provenance(ident, stand_in=False)
    if provenance not in PROVENANCE:
        raise ClsbenchError(f"provenance {provenance!r} not in {', '.join(PROVENANCE)}")
    torch, _ = _torch()
    net = build_model(spec, load_state_dict(weights), source=weights)
    pp = spec.preprocessing
    work, opset = _stage_onnx(net, spec, output, opset, {
        "architecture": spec.name, "weights_tag": spec.tag, "num_classes": spec.num_classes,
        "preprocessing": json.dumps(pp.as_dict()), "weights_sha256": ident.sha256,
        "provenance": provenance, "tool": f"clsbench {__version__}",
        **({"reference_top1": spec.top1, "reference_top5": spec.top5} if spec.top1 is not None else {})})
    try:
        p = {**check_export(net, str(work / "final.onnx"), x), "inputs": source, "torch": torch.__version__}
        record = {"model": spec.name, "weights_tag": spec.tag, "onnx": os.path.abspath(output), "opset": opset,
                  "input": "image", "output": "class", "dynamic_batch": True,
                  "weights": {"path": os.path.abspath(weights), "md5": ident.md5, "sha256": ident.sha256,
                              "official": ident.official, "provenance": provenance,
                              "verdict": PROVENANCE[provenance] if provenance != "official" else ident.verdict},
                  "parity": p, "passed": p["passed"]}
        _settle(work, output, record, keep=record["passed"] or not check)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if check and not record["passed"]:
        raise ClsbenchError(f"{output}: the exported model does not compute what PyTorch computes: "
                            + "; ".join(p["reasons"]) + f" (all figures: {parity_path(output)}; no model written)")
    return record


def _settle(work: Path, output: str, record: dict, keep: bool) -> None:
    """The judged model moved to `output` with its record (`onnx_sha256`: the very file the
    record judged, which `current_export` compares); a model refused by its check is not
    placed, and an earlier one at `output` is removed (its record is replaced by this one)."""
    from .._io import file_sha256

    if keep:
        record["onnx_sha256"] = file_sha256(work / "final.onnx")
        _place(work, output)
    else:
        record["onnx"], record["onnx_sha256"] = None, None
        for old in (Path(output), Path(output + ".data")):
            if old.is_file() or old.is_symlink():
                old.unlink()
    atomic_write_json(parity_path(output), record)


def parity_path(onnx_path: str) -> str:
    return str(Path(onnx_path).with_suffix("")) + ".parity.json"


def current_export(onnx_path, spec: ModelSpec, weights: str, provenance: str | None = None) -> dict | None:
    """The parity record of `onnx_path` when it is a passing export of exactly these weights
    as `spec` (with this provenance recorded, when one is given) and the file there is the
    one that record judged (its SHA-256: not a model a failed or interrupted export left,
    nor one copied over it); None when it must be (re)exported. The one reuse check for exports."""
    from .._io import file_sha256

    rec = read_parity(str(onnx_path))
    if (os.path.isfile(onnx_path) and rec and rec.get("passed") is True and rec.get("model") == spec.name
            and rec.get("weights_tag") == spec.tag and rec["weights"]["sha256"] == file_sha256(weights)
            and (provenance is None or rec["weights"].get("provenance") == provenance)
            and rec.get("onnx_sha256") == file_sha256(onnx_path)):  # the very file it judged
        return rec
    return None


def read_parity(onnx_path: str) -> dict | None:
    try:
        return json.loads(Path(parity_path(onnx_path)).read_text())
    except (OSError, ValueError):
        return None


# ---------------------------------------------------------------- the export cache

CACHE_KEEP = 8  # most recent exports kept


def cache_dir() -> Path | None:
    """Where passing exports are kept for other work dirs: $CLSBENCH_CACHE, else
    $XDG_CACHE_HOME/clsbench/exports (~/.cache); CLSBENCH_CACHE=off: no cache."""
    env = os.environ.get("CLSBENCH_CACHE")
    if env == "off":
        return None
    if env:
        return Path(env)
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "clsbench" / "exports"


def cache_key(weights_sha256: str, spec: ModelSpec, provenance: str | None, parity_data: str) -> str:
    """What an export is a function of: the weights' bytes (their SHA-256), the architecture
    and its weights tag, the provenance recorded in it, the data parity was measured on (the
    plan's fingerprint of its images and labels), the exporter (clsbench, torch, onnx
    versions) and the opsets tried."""
    from importlib import metadata

    from .. import __version__
    from .._io import fingerprint

    versions = []
    for dist in ("torch", "onnx"):
        try:
            versions.append(metadata.version(dist))
        except metadata.PackageNotFoundError:
            versions.append(None)
    return fingerprint([[weights_sha256, spec.key, provenance, parity_data, __version__, *versions,
                         list(OPSETS)]])


def from_cache(key: str, onnx_path: Path, weights: str) -> dict | None:
    """The cached export of `key` copied to onnx_path (+ its parity record, paths rewritten),
    when the entry is whole: the ONNX bytes must hash to what the entry recorded."""
    import shutil

    from .._io import atomic_write_json, file_sha256

    root = cache_dir()
    entry = root / key if root else None
    if entry is None or not (entry / "entry.json").is_file():
        return None
    try:
        meta = json.loads((entry / "entry.json").read_text())
        if file_sha256(entry / "model.onnx") != meta["onnx_sha256"]:
            log.warning(f"export cache {entry}: model.onnx does not match its record; not used")
            return None
        rec = json.loads((entry / "model.parity.json").read_text())
    except (OSError, ValueError, KeyError):
        return None
    tmp = onnx_path.with_name(f".{onnx_path.name}.{os.getpid()}.tmp")
    shutil.copyfile(entry / "model.onnx", tmp)
    os.replace(tmp, onnx_path)
    rec["onnx"], rec["weights"]["path"] = str(onnx_path), os.path.abspath(weights)
    rec["onnx_sha256"] = meta["onnx_sha256"]  # the bytes just verified (entries kept before it was recorded)
    rec["from_cache"] = str(entry)
    atomic_write_json(parity_path(str(onnx_path)), rec)
    os.utime(entry)  # recently used
    return rec


def to_cache(key: str, onnx_path: Path) -> None:
    """Keeps a passing export for other work dirs (best effort: a full or read-only cache
    only costs the next run an export)."""
    import shutil

    from .._io import atomic_write_json, file_sha256

    root = cache_dir()
    if root is None:
        return
    entry = root / key
    tmp = root / f".{key}.{os.getpid()}.tmp"
    try:
        tmp.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(onnx_path, tmp / "model.onnx")
        shutil.copyfile(parity_path(str(onnx_path)), tmp / "model.parity.json")
        atomic_write_json(tmp / "entry.json", {"onnx_sha256": file_sha256(tmp / "model.onnx")})
        if entry.exists():
            shutil.rmtree(tmp)
        else:
            os.replace(tmp, entry)
        entries = sorted((p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")),
                         key=lambda p: p.stat().st_mtime, reverse=True)
        for old in entries[CACHE_KEEP:]:
            shutil.rmtree(old, ignore_errors=True)
    except OSError as e:
        shutil.rmtree(tmp, ignore_errors=True)
        log.info(f"export cache {root}: not kept ({e.strerror or e})")
