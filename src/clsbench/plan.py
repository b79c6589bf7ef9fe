"""What a run is, resolved once, before any slow step: the plan.

`resolve(weights, data, options)` turns what the user asked for (`flows.run.RunOptions`, no
defaults filled in) and what the model file says about itself into a frozen `Plan`:

    model    identity, provenance (official │ proxy │ stand-in │ other weights │ foreign file),
             the reference accuracy to judge against, or why there is none
    preset   every preprocessing field with where it came from (model file │ table │ flag │
             the default model's preset)
    target   backend, precision, what artifact runs (exported, compiled here, given as is)
             and the backend's options
    data     images, labels, layout and a fingerprint of every file (path, size, mtime_ns)
    run      batch, engine, outputs, the resolved work directory

One precedence order, as timm's resolve_data_config: a flag beats what the model file
records, which beats the model table, which beats `DEFAULT_MODEL`. Every policy check of a
run happens here, so a bad combination stops in one line before a single image is
decoded. Nothing else in clsbench fills a default of what a run is.
"""
from __future__ import annotations

import dataclasses
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

from . import ClsbenchError
from ._io import file_fingerprint, fingerprint
from .accuracy.evaluate import Scoring
from .model.table import ModelSpec, Preprocessing
from .model.provenance import DEFAULT_MODEL, PROVENANCE, proxy_record, weights_provenance

log = logging.getLogger("clsbench")

PRESET_FIELDS = ("resize", "crop", "interpolation", "mean", "std", "exif_transpose")


@dataclass(frozen=True)
class ModelPlan:
    key: str | None  # NAME:TAG, None for an unnamed foreign file
    provenance: str  # a PROVENANCE key
    weights_sha256: str | None
    reference_top1: float | None  # what the accuracy is judged against; None: not judged
    reference_top5: float | None
    reference_source: str  # where the reference comes from, or why there is none
    num_classes: int  # the classes labels may name: the model's outputs
    reference_classes: int | None = None  # the classes its reference was measured over (16 for the proxy's task)
    spec: ModelSpec | None = field(default=None, compare=False)  # the table's entry, for export/torch
    # the images its reference was measured on, when those were a sample of their own (the proxy's
    # 256 draws, scripts/make_proxy_weights.py); None: the published figure of these exact weights
    reference_images: int | None = None

    def as_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d.pop("spec")
        d["provenance_text"] = PROVENANCE[self.provenance]
        return d


@dataclass(frozen=True)
class PresetPlan:
    pp: Preprocessing
    sources: tuple  # (field, source) pairs

    def as_dict(self) -> dict:
        return {**self.pp.as_dict(), "sources": dict(self.sources)}

    def describe(self) -> str:
        by: dict[str, list] = {}
        for f, s in self.sources:
            by.setdefault(s, []).append(f)
        return f"{self.pp.describe()} (" + "; ".join(f"{', '.join(fs)} from {s}" for s, fs in by.items()) + ")"


@dataclass(frozen=True)
class TargetPlan:
    backend: str
    precision: str
    artifact: str  # "export" (a .pth exported to ONNX), "compile" (compiled here), "as is", "weights"
    options: tuple  # (name, value) pairs handed to the backend
    threads: int | None

    @property
    def label(self) -> str:
        return f"{self.backend}:{self.precision}"


@dataclass(frozen=True)
class DataPlan:
    images: str  # resolved image folder
    labels: str | None  # resolved label file, or None: labels from class folders, or no labels at all
    layout: str
    count: int
    fingerprint: str  # over every image's (relative path, size, mtime_ns) and the label file's bytes
    labelled: bool = True  # False: no label file and no class folders: predictions only, no accuracy

    @property
    def label_text(self) -> str:
        if not self.labelled:
            return "none (predictions only, no accuracy)"
        return self.labels or "from the class folders"


@dataclass(frozen=True)
class Plan:
    weights: str
    weights_kind: str  # pth, onnx, ir
    model: ModelPlan
    preset: PresetPlan
    target: TargetPlan
    data: DataPlan
    batch_size: int
    engine: str
    stream: bool
    outfmt: str
    work_dir: str  # resolved
    scoring: Scoring = Scoring()  # label set, ReaL labels

    @property
    def spec(self) -> ModelSpec:
        """The ModelSpec every stage reads: the table's entry (or a stand-in for an unnamed
        file) with this plan's preset, reference and class count."""
        base = self.model.spec or ModelSpec(self.model.key or os.path.basename(self.weights), "", self.preset.pp,
                                            None, None, self.model.num_classes)
        return dataclasses.replace(base, preprocessing=self.preset.pp, top1=self.model.reference_top1,
                                   top5=self.model.reference_top5, num_classes=self.model.num_classes)

    def as_dict(self) -> dict:
        return {"weights": os.path.abspath(self.weights), "weights_kind": self.weights_kind,
                "model": self.model.as_dict(), "preset": self.preset.as_dict(),
                "target": target_dict(self.target),
                "data": dataclasses.asdict(self.data), "batch_size": self.batch_size, "engine": self.engine,
                "stream": self.stream, "outfmt": self.outfmt, "work_dir": self.work_dir,
                "scoring": dataclasses.asdict(self.scoring)}

    def runnable(self, path: str) -> "Runnable":
        """This plan's model, preset and target for the file that runs (the weights, their
        export or a compiled artifact): what `infer` is handed instead of resolving again."""
        from .model.files import kind

        return Runnable(path, self.weights_kind if path == self.weights else kind(path), self.model,
                        self.preset, self.target)

    def describe(self) -> list[str]:
        m, t, d = self.model, self.target, self.data
        ref = (f"reference Top-1 {m.reference_top1} ({m.reference_source})" if m.reference_top1 is not None
               else f"no accuracy verdict: {m.reference_source}")
        return [f"model     {m.key or 'unnamed'} · {PROVENANCE[m.provenance]}",
                f"          {ref}; {m.reference_classes or m.num_classes} classes",
                f"preset    {self.preset.describe()}",
                f"target    {t.label} · {dict(ARTIFACTS)[t.artifact]}"
                + (f" · options {', '.join(k for k, _ in t.options)}" if t.options else "") + f" · threads {t.threads or 'all'}",
                f"data      {d.images} · {d.count} images ({d.layout}) · labels "
                f"{d.label_text} · fingerprint {d.fingerprint}",
                f"run       batch {self.batch_size} · engine {self.engine}"
                + (" · streaming" if self.stream else " · .bin files") + f" · outputs {self.outfmt}"
                + f" · work dir {self.work_dir}"
                + (f" · scored on {self.scoring.label_set}" if self.scoring.label_set else "")
                + (" · ReaL labels too" if self.scoring.real_labels else "")]


ARTIFACTS = (("export", "the .pth exported to ONNX, checked against PyTorch"),
             ("compile", "compiled here from the model file"),
             ("as is", "the model file given, run as is"),
             ("weights", "the PyTorch weights, run eagerly"))


# ---------------------------------------------------------------- fingerprints

def folder_fingerprint(folder: str | os.PathLike) -> str:
    """The fingerprint of an image folder's listing: what a compiled artifact calibrated on."""
    from .data.folders import list_images

    folder = Path(folder)
    return fingerprint([str(rel), *file_fingerprint(folder / rel)[1:]] for rel in list_images(folder).images)


def _data_plan(data: str, images: Path, labels: Path | None, layout: str, listing, labelled=True) -> DataPlan:
    rows = [[str(rel), *file_fingerprint(images / rel)[1:]] for rel in listing]
    if labels is not None:
        from ._io import file_sha256

        rows.append(["labels", file_sha256(labels)])
    return DataPlan(str(images.resolve()), str(labels.resolve()) if labels else None, layout, len(listing),
                    fingerprint(rows), labelled)


def resolve_data(data: str) -> DataPlan:
    """An ImageNet-layout directory (val/ + val_label.txt, or val/<wnid>/ class folders), or
    any folder of images without labels: then predictions only."""
    from .data.folders import list_images

    root = Path(data)
    if not root.is_dir():
        raise ClsbenchError(f"{data}: data directory not found")
    val = root / "val" if (root / "val").is_dir() else root
    if root.name == "val" and (root.parent / "val_label.txt").is_file():
        raise ClsbenchError(f"{data}: --data takes the folder above val/, where val_label.txt is: "
                            f"--data {root.parent}")
    listing = list_images(val)
    if not listing.images:
        hint = f"; --data takes the folder above val/ ({root.parent})" if root.name == "val" else ""
        raise ClsbenchError(f"{val}: holds no images{hint}")
    for cand in (root / "val_label.txt", val / "val_label.txt"):
        if cand.is_file():
            return _data_plan(data, val, cand, listing.layout, listing.images)
    if listing.layout == "class-folders":
        return _data_plan(data, val, None, listing.layout, listing.images)
    log.info(f"labels: {val} has no val_label.txt and no class folders: predictions only, no accuracy")
    return _data_plan(data, val, None, listing.layout, listing.images, labelled=False)


# ---------------------------------------------------------------- the model

PROXY_EVAL_IMAGES = 256  # scripts/make_proxy_weights.py: proxy_task.batch(256, seed=99_999)


def _judged(spec: ModelSpec | None, provenance: str, sha: str | None) -> ModelPlan:
    """The reference a run is judged against, by provenance."""
    key = spec.key if spec else None
    classes = spec.num_classes if spec else 1000
    if provenance == "proxy":
        rec = proxy_record()
        return ModelPlan(key, provenance, sha, round(rec["task_accuracy"] * 100, 3), None,
                         f"the proxy's training record: {PROXY_EVAL_IMAGES} other draws of its own 16-class task "
                         f"(256×256, not JPEG-compressed)", classes, 16, spec,
                         reference_images=PROXY_EVAL_IMAGES)
    if provenance == "official" and spec and spec.top1 is not None:
        return ModelPlan(key, provenance, sha, spec.top1, spec.top5, f"torchvision's table for {key}", classes,
                         classes, spec)
    why = ("the model has no published accuracy" if provenance == "official"
           else PROVENANCE[provenance].split(": ", 1)[-1])
    return ModelPlan(key, provenance, sha, None, None, why, classes, None, spec)


def reference_for(name: str) -> ModelPlan:
    """The reference of a model named by the user (`eval --model`): the table's published
    accuracy, taken as the claim to judge against."""
    from .model.table import get_model

    return _judged(get_model(name), "official", None)


def outputs_reference(result_dir: str, model: str | None) -> ModelPlan | None:
    """What `eval` judges outputs against: the model recorded beside them by the clsbench run
    that wrote them (`<folder>.clsbench.json`: its provenance decides, as `run`'s plan does, so
    outputs of stand-in weights get no verdict), else the model named with --model, taken as
    the published weights (the vendor's tools record nothing). A --model that contradicts the
    record is refused. None: nothing to judge against."""
    from ._io import read_record, sidecar
    from .model.table import get_model

    where = sidecar(Path(result_dir))
    recorded = ((read_record(where) or {}).get("identity") or {}).get("model")
    if recorded is None:
        return reference_for(model) if model else None
    key, provenance = (recorded.get("key"), recorded.get("provenance")) if isinstance(recorded, dict) else (0, 0)
    if not isinstance(provenance, str) or provenance not in PROVENANCE or not isinstance(key, (str, type(None))):
        raise ClsbenchError(f"{where}: identity.model is not a model record ({recorded!r:.80}); remove it or "
                            f"evaluate outputs that clsbench wrote")
    asked = get_model(model) if model else None
    if asked and key and asked.key != get_model(key).key:
        raise ClsbenchError(f"{result_dir}: outputs of {key} ({where}); --model {model} contradicts it "
                            f"(leave --model out)")
    spec = get_model(key) if key else asked
    log.info(f"{result_dir}: outputs of {key or 'an unnamed model'}, {PROVENANCE[provenance]} (from {where})")
    m = _judged(spec, provenance, recorded.get("weights_sha256"))
    if m.reference_top1 is None:
        m = dataclasses.replace(m, reference_source=f"outputs of {PROVENANCE[provenance]}, as {where.name} records")
    return m


def _pth_provenance(weights: str, spec: ModelSpec, stand_in: bool) -> tuple[str, str]:
    from .model.weights import identify_weights

    ident = identify_weights(weights, spec)  # a file named like the official one with another digest: error
    return weights_provenance(ident, stand_in), ident.sha256


def _recorded_provenance(meta: dict, spec: ModelSpec | None) -> str:
    if "weights_tag" not in meta:
        return "foreign"
    if meta.get("provenance") in PROVENANCE:
        return meta["provenance"]
    sha = meta.get("weights_sha256", "")
    if sha and sha == proxy_record()["sha256"]:
        return "proxy"
    off = spec.official if spec else None
    if off and off.sha256_prefix and sha.startswith(off.sha256_prefix):
        return "official"
    return "unrecorded"


def resolve_model(weights: str, kind: str, meta: dict, recorded: ModelSpec | None, model: str | None,
                  stand_in: bool) -> ModelPlan:
    """Which model: what the file records, else --model, else DEFAULT_MODEL for a .pth (the
    torchvision architecture must be known to load it); an unnamed foreign ONNX/IR stays unnamed."""
    from .model.table import get_model

    asked = get_model(model) if model else None
    if recorded and asked and recorded.key != asked.key:
        raise ClsbenchError(f"{weights}: exported from {recorded.key}; --model {model} ({asked.key}) "
                            f"contradicts it (leave --model out)")
    if kind == "pth":
        spec = asked or get_model(DEFAULT_MODEL)
        provenance, sha = _pth_provenance(weights, spec, stand_in)
        return _judged(spec, provenance, sha)
    spec = recorded or asked
    provenance = "stand-in" if stand_in else _recorded_provenance(meta, recorded)
    return _judged(spec, provenance, meta.get("weights_sha256"))


# ---------------------------------------------------------------- the preset

def resolve_preset(base: Preprocessing | None, base_source: str, overrides: dict) -> PresetPlan:
    """The model's own preset with the flags given applied on top, each field's source named.
    `base` None (a foreign file that records none): DEFAULT_MODEL's preset, said as such."""
    from .model.table import custom_preprocessing, get_model

    given = {k: v for k, v in overrides.items() if v is not None and v is not False}
    if base is None:
        base, base_source = get_model(DEFAULT_MODEL).preprocessing, f"the default model {DEFAULT_MODEL}'s preset"
        unset = [f for f in PRESET_FIELDS[:5] if f not in given]
        if unset:
            log.warning(f"the model records no preset: {', '.join(unset)} from {DEFAULT_MODEL}'s "
                        f"(give --model NAME[:TAG] or --{' --'.join(unset)})")
    exif = given.pop("exif_transpose", None)
    try:
        pp = custom_preprocessing(base, **given)
        if exif:
            pp = dataclasses.replace(pp, exif_transpose=True)
    except ClsbenchError as e:
        raise ClsbenchError(f"{e} (flags {', '.join('--' + k for k in given) or 'none'} on {base_source})") from None
    sources = tuple((f, "flag" if f in given or (f == "exif_transpose" and exif) else
                     "default (off, as torchvision)" if f == "exif_transpose" else base_source)
                    for f in PRESET_FIELDS)
    return PresetPlan(pp, sources)


# ---------------------------------------------------------------- the target

def resolve_target(weights: str, kind: str, backend: str | None, precision: str | None,
                   options: dict, threads: int | None) -> TargetPlan:
    """(backend, precision) and what runs: a .pth is exported for the ONNX backends (run
    eagerly by torch/cuda); a model file records its own backend and precision (a compiled
    int8 file is int8), flags that contradict it are errors; a float ONNX asked to run at a
    precision that needs compiling is compiled here."""
    from .runtime.backends import DEFAULT_PRECISION, OPTIONS, check_precision_supported, resolve, target
    from .model.files import read_metadata, stored_precision

    if kind == "pth":
        t = target(backend or "onnxruntime", precision or DEFAULT_PRECISION.get(backend or "onnxruntime", "fp32"))
        artifact = "weights" if "pth" in t.runs else ("compile" if t.compiled else "export")
    else:
        stored = stored_precision(weights, kind)
        chosen = backend or read_metadata(weights, kind).get("backend") or {"ir": "openvino"}.get(kind, "onnxruntime")
        if stored is None and precision and target(chosen, precision).compiled:
            t = target(chosen, precision)  # a float file, compiled here (int8)
            if kind != "onnx":
                raise ClsbenchError(f"{weights}: an OpenVINO IR; {t.label} is compiled from an ONNX model "
                                    f"(give the ONNX, or a compiled {t.label} file)")
            artifact = "compile"
        else:
            t = resolve(weights, chosen, precision)  # the file's own backend/precision, contradictions refused
            artifact = "as is"
        if "pth" in t.runs:
            raise ClsbenchError(f"{weights}: {t.label} runs PyTorch weights (.pth), not this file")
    check_precision_supported(t.backend, t.precision)  # as executed: never a label for what would not run
    extra = sorted(set(options) - OPTIONS.get(t.backend, set()))
    if extra:
        raise ClsbenchError(f"the {t.backend} backend has no option {', '.join(extra)}"
                            + (" (--openvino-hint applies to the openvino backend)" if "hint" in extra else ""))
    return TargetPlan(t.backend, t.precision, artifact, tuple(sorted(options.items())), threads)


def _backend_options(backend: str, spec: ModelSpec | None, pp: Preprocessing, o) -> dict:
    """The options a backend gets, decided here once: the PyTorch backends build the
    architecture themselves (they are told which), OpenVINO's hint, cuda's mode."""
    return {**runtime_options(backend, spec, pp, o.openvino_hint, o.cuda_mode), **o.backend_options}


def runtime_options(backend: str, spec: ModelSpec | None, pp: Preprocessing, hint: str | None,
                    cuda_mode: str | None) -> dict:
    """`_backend_options` for every command: the architecture and preset for torch/cuda,
    cuda's mode (default graph), OpenVINO's hint (default latency, refused elsewhere)."""
    opts = {}
    if backend in ("torch", "cuda"):
        if spec is None:
            raise ClsbenchError(f"the {backend} backend builds a torchvision architecture: name it with --model")
        opts["arch"], opts["preprocessing"] = spec.key, pp
    if backend == "cuda":
        opts["mode"] = cuda_mode or "graph"
    if backend != "cuda" and cuda_mode not in (None, "graph"):
        raise ClsbenchError(f"--cuda-mode applies to the cuda backend, not {backend}")
    if backend == "openvino" and hint not in (None, "latency"):
        opts["hint"] = hint
    elif hint not in (None, "latency"):
        raise ClsbenchError(f"--openvino-hint applies to the openvino backend, not {backend}")
    return opts


# ---------------------------------------------------------------- checks against the model file

def check_input_shape(weights: str, kind: str, crop: int, batch_size: int, preset: PresetPlan) -> None:
    """A fixed-batch ONNX, or one whose input is not the preset's crop, is refused now, not
    after every image was preprocessed."""
    if kind != "onnx":
        return
    from .model.files import parsed_onnx

    inputs = parsed_onnx(weights).inputs
    if len(inputs) != 1:
        return  # the backend names what is wrong with such a graph
    dims = list(inputs[0][1])
    if len(dims) != 4:
        raise ClsbenchError(f"{weights}: input {inputs[0][0]!r} has {len(dims)} dimensions; an image "
                            f"classifier takes (N, 3, H, W)")
    n, c, h, w = dims
    if h and w:
        from ._io import check_memory

        # the batch buffer, the runtime's input copy and its output: three batches' worth at least
        check_memory(3 * batch_size * (c or 3) * h * w * 4, f"{weights}: a batch of {batch_size} inputs of {h}x{w}")
    if n is not None and n != batch_size:
        raise ClsbenchError(f"{weights}: input {inputs[0][0]!r} has a fixed batch of {n}; use "
                            f"--batch-size {n} (or export with a dynamic batch)")
    if h is None or w is None:
        raise ClsbenchError(f"{weights}: input {inputs[0][0]!r} has symbolic spatial dims {dims}; clsbench runs "
                            f"a fixed input size: export it with H = W = the crop ({crop})")
    if (h, w) != (crop, crop):
        src = dict(preset.sources)["crop"]
        raise ClsbenchError(f"{weights}: the model takes {h}x{w} images; the preset crops {crop}x{crop} "
                            f"(crop from {src}); give --crop {h}" + (f" --resize {h}" if h > preset.pp.resize else ""))


def check_options(o) -> None:
    """Every argument checked before any slow step."""
    for name, v in (("--batch-size", o.batch_size), ("--threads", o.threads), ("--workers", o.workers),
                    ("--calib-images", o.calib_images)):
        if v is not None and v < 1:
            raise ClsbenchError(f"{name} must be >= 1, got {v}")
    if o.engine not in ("local", "ray"):
        raise ClsbenchError(f"--engine must be local or ray, got {o.engine!r}")
    if o.ray_address and o.engine != "ray":
        raise ClsbenchError("--ray-address needs --engine ray")
    if not o.ray_timeout > 0:
        raise ClsbenchError(f"--ray-timeout must be > 0 seconds, got {o.ray_timeout:g}")


def model_and_preset(weights: str, k: str, model: str | None, stand_in: bool,
                     overrides: dict) -> tuple[ModelPlan, PresetPlan]:
    """The model (resolve_model) and its preset: what the file records, else the table's
    entry, each flag in `overrides` applied on top (resolve_preset). `run` and `loadgen`."""
    from .model.files import identity_of, read_metadata

    meta = read_metadata(weights, k) if k != "pth" else {}
    recorded, recorded_pp = identity_of(weights, k) if k != "pth" else (None, None)
    m = resolve_model(weights, k, meta, recorded, model, stand_in)
    base, base_source = ((recorded_pp, "the model file") if recorded_pp is not None else
                         (m.spec.preprocessing, f"the table's {m.spec.key}") if m.spec else (None, ""))
    return m, resolve_preset(base, base_source, overrides)


def check_inputs(weights: str | None, o) -> None:
    """What resolve() refuses before it reads anything: the options, the memory a batch needs
    and the weights path (None: the demo makes its own). The demo calls it before it builds
    its photo folder, so a wrong flag is told at once and leaves nothing behind."""
    from ._io import check_memory

    check_options(o)
    check_memory(3 * o.batch_size * 3 * max(o.crop or 224, 224) ** 2 * 4, f"--batch-size {o.batch_size}")
    if weights is None:
        return
    if not os.path.exists(weights):
        raise ClsbenchError(f"{weights}: weights/model file not found")
    if not os.path.isfile(weights):
        raise ClsbenchError(f"{weights}: not a regular file")


def resolve(weights: str, data: str, o) -> Plan:
    """THE resolver of `clsbench run` (and demo): see the module's docstring."""
    from .data.folders import check_no_whitespace
    from .model.files import kind

    check_inputs(weights, o)
    for path, what in ((o.work_dir, "the work directory"), (data, "the data path")):
        check_no_whitespace(os.path.abspath(path), what)
    k = kind(weights)
    model, preset = model_and_preset(weights, k, o.model, o.stand_in_weights,
                                     {f: getattr(o, f) for f in PRESET_FIELDS})
    stream = o.stream or o.engine == "ray"  # Ray decodes on the cluster: the streaming layout
    if o.decode != "cpu" and not (stream and o.backend == "cuda" and o.engine == "local"):
        raise ClsbenchError("--decode gpu needs --stream, --backend cuda and the local engine")
    t = resolve_target(weights, k, o.backend, o.precision, {}, o.threads)
    opts = _backend_options(t.backend, model.spec, preset.pp, o)
    t = resolve_target(weights, k, t.backend, t.precision, opts, o.threads)
    check_input_shape(weights, k, preset.pp.crop, o.batch_size, preset)
    if model.reference_top1 is None and o.check:
        raise ClsbenchError(f"--check: no accuracy verdict for these weights ({model.reference_source})")
    scoring = Scoring(o.label_set, o.real_labels)
    if o.check and scoring.label_set:
        raise ClsbenchError(f"--check: the reference is ImageNet-1k's validation accuracy, not {scoring.label_set}'s")
    d = resolve_data(data)
    if not d.labelled and (o.check or scoring != Scoring()):
        flag = "--check" if o.check else "--label-set" if o.label_set else "--real-labels"
        raise ClsbenchError(f"{flag} scores against labels: {data} has none (no val_label.txt, no class "
                            f"folders); without it the run writes predictions only")
    from ._io import check_not_input

    check_not_input(o.work_dir, {"the weights": weights, "the label file": d.labels or []},
                    "--work-dir (outside --data)", folders={"--data": data, "the images of --data": d.images})
    return Plan(weights, k, model, preset, t, d, o.batch_size, o.engine, stream, o.outfmt,
                str(Path(o.work_dir).resolve()), scoring)


# ---------------------------------------------------------------- one model file, for every command

@dataclass(frozen=True)
class Runnable:
    """What a command that runs one model file decides (infer, loadgen, perf, profile): the
    plan's model, preset and target, resolved by the same code as `resolve`, recorded in the
    same schema as `Plan.as_dict()`'s parts."""
    path: str
    kind: str
    model: ModelPlan
    preset: PresetPlan
    target: TargetPlan

    @property
    def preset_known(self) -> bool:
        """Whether the preset is the model's own (its file or the table), not a fallback."""
        return not any(s.startswith("the default model") for _, s in self.preset.sources)

    def open_kwargs(self) -> dict:
        """backends.open_backend's arguments for this target (batch size and device apart)."""
        t = self.target
        return {"backend": t.backend, "precision": t.precision, "threads": t.threads, **dict(t.options)}

    def as_dict(self) -> dict:
        return {"weights": os.path.abspath(self.path), "weights_kind": self.kind, "model": self.model.as_dict(),
                "preset": self.preset.as_dict(), "target": target_dict(self.target)}


def target_dict(t: TargetPlan) -> dict:
    return {**dataclasses.asdict(t), "options": {k: v.as_dict() if hasattr(v, "as_dict") else v
                                                  for k, v in t.options}}


@dataclass(frozen=True)
class RunnableRequest:
    """What the user typed for one model file (None: not given; the resolver decides)."""
    model: str | None = None  # NAME[:TAG] (the architecture of a .pth; checked against what a file records)
    backend: str | None = None
    precision: str | None = None
    threads: int | None = None
    hint: str | None = None  # openvino
    cuda_mode: str | None = None
    stand_in: bool = False


def resolve_runnable(path: str, r: RunnableRequest, *, can_export: bool = False) -> Runnable:
    """The model, preset and target of one model file, as `resolve` decides them for `run`.
    A command that cannot export or compile (`can_export` False) refuses a target that needs
    it, saying what to type: the same file and flags mean the same thing everywhere."""
    from .model.files import kind

    if not os.path.exists(path):
        raise ClsbenchError(f"{path}: model file not found")
    if not os.path.isfile(path):
        raise ClsbenchError(f"{path}: not a regular file")
    for name, v in (("--threads", r.threads),):
        if v is not None and v < 1:
            raise ClsbenchError(f"{name} must be >= 1, got {v}")
    k = kind(path)
    model, preset = model_and_preset(path, k, r.model, r.stand_in, {})
    t = resolve_target(path, k, r.backend, r.precision, {}, r.threads)
    if not can_export and t.artifact in ("export", "compile"):
        raise ClsbenchError(_needs_artifact(path, model, t))
    opts = runtime_options(t.backend, model.spec, preset.pp, r.hint, r.cuda_mode)
    t = resolve_target(path, k, t.backend, t.precision, opts, r.threads)
    return Runnable(path, k, model, preset, t)


def _needs_artifact(path: str, model: ModelPlan, t: TargetPlan) -> str:
    if t.artifact == "export":
        return (f"{path}: PyTorch weights ({model.key}); {t.label} runs an ONNX model: export it first "
                f"(`clsbench export --weights {path} --model {model.key} --output model.onnx`), or run the "
                f"weights eagerly with --backend torch")
    return (f"{path}: a float model; {t.label} runs a compiled artifact: make it first (`clsbench compile "
            f"--model {path} --backend {t.backend} --precision {t.precision} --data IMAGES`)")


def check_tensor_preset(where: str, made_with: Preprocessing | None, r: Runnable, accept: bool) -> dict:
    """Tensors meet only the model whose preset made them: `made_with` (what the .bin folder's
    or store's record says) against the model's preset. Returns what the record says of it."""
    from ._io import normalized

    want = r.preset.pp
    if made_with is None:
        log.info(f"{where}: the tensors' preprocessing is not recorded (not made by clsbench preprocess): "
                 f"not checked against the model's ({want.describe()})")
        return {"tensors": None, "checked": False, "why": "the tensors' preprocessing is not recorded"}
    have, need = normalized(made_with.as_dict()), normalized(want.as_dict())
    rec = {"tensors": have, "checked": r.preset_known}
    if have == need or not r.preset_known:
        if not r.preset_known:
            log.info(f"{where}: the model records no preset; the tensors' ({made_with.describe()}) taken as is")
            rec["why"] = "the model records no preset"
        return {**rec, "match": have == need}
    differ = [f for f in need if have.get(f) != need.get(f)]
    if not accept:
        raise ClsbenchError(f"{where}: tensors preprocessed with {made_with.describe()}; the model "
                            f"{r.model.key or os.path.basename(r.path)} expects {want.describe()} (they differ in "
                            f"{', '.join(differ)}): preprocess them again with `clsbench preprocess --model "
                            f"{r.model.key or 'NAME'} ...`, or give --accept-preset-mismatch to run them anyway")
    log.warning(f"{where}: tensors preprocessed with {made_with.describe()}, not the model's {want.describe()} "
                f"(--accept-preset-mismatch): recorded")
    return {**rec, "match": False, "accepted_mismatch": differ}


# ---------------------------------------------------------------- the verdict

def judge_accuracy(model: ModelPlan, top1: float, images: int, tolerance: float,
                   max_label: int | None = None) -> dict:
    """The accuracy verdict, only where the reference means something (official weights, the
    proxy on its own task: labels below its reference_classes). The allowed drop is
    --tolerance, widened to the 95 % sampling margin when that is larger: of a binomial
    proportion over `images` (29 images cannot tell 1 point), and, for a reference measured
    on a sample of its own (the proxy's 256 draws), of the difference of the two."""
    why = model.reference_source
    off_task = (max_label is not None and model.reference_classes is not None
                and max_label >= model.reference_classes)
    if off_task:
        why = f"labels up to {max_label}: not the {model.reference_classes} classes its reference was measured over"
    if model.reference_top1 is None or off_task:
        return {"reference_top1": None, "reference_top5": None, "reference_source": why,
                "top1_drop": None, "tolerance": tolerance, "allowed_drop": None, "within_tolerance": None,
                "judged": False}
    import math

    p = min(max(model.reference_top1 / 100, 0.0), 1.0)
    ref_var = p * (1 - p) / model.reference_images if model.reference_images else 0.0
    margin = 196 * math.sqrt(p * (1 - p) / images + ref_var) if images else math.inf
    allowed = max(tolerance, margin)
    drop = model.reference_top1 - top1
    return {"reference_top1": model.reference_top1, "reference_top5": model.reference_top5,
            "reference_source": model.reference_source, "reference_images": model.reference_images,
            "top1_drop": drop, "tolerance": tolerance,
            "sampling_margin": round(margin, 3), "allowed_drop": round(allowed, 3),
            "within_tolerance": drop <= allowed, "judged": True}
