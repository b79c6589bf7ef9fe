"""`clsbench tune` as a flow: the search space of this machine, the resumable measurer, the
search (`flows.tune.search`), the baselines beside the winner (PyTorch eager fp32, ONNX
Runtime's defaults, OpenVINO's THROUGHPUT hint, each at the winner's batch), the winner's
commands, tune.json and report.html in --output."""
from __future__ import annotations

import contextlib

import logging
import os
import shlex
import time
from dataclasses import dataclass
from pathlib import Path

from .. import ClsbenchError, __version__
from ..defaults import default
from .tune import Bounds, Candidate, Parallel, Recorded, Space, search

log = logging.getLogger("clsbench")

PRECISIONS = {"onnxruntime": ("fp32", "int8"), "openvino": ("fp32", "bf16", "int8"), "torch": ("fp32",),
              "cuda": ("fp16", "fp32")}


TRIES_VERSION = 3  # what a try file's result means (2: p_ms is the --percentile's latency at the peak; 3: a Server
# try of several sessions runs them as LoadGen workers, where 2 recorded no peak): older ones are remeasured

# at a latency bound, the baselines also taken through the Server peak search: OpenVINO's own
# hint (the comparison at the bound); PyTorch eager's tries would each take minutes
SERVER_BASELINES = ("openvino_throughput_hint",)


@dataclass
class TuneOptions:
    model: str | None = None
    max_drop: float = default("tune", "max_drop")
    latency_bound_ms: float | None = None
    percentile: float = default("tune", "percentile")
    backends: str = default("tune", "backends")
    batches: str = default("tune", "batches")
    budget_min: float | None = None
    output: str = default("tune", "output")
    calib_images: int = default("tune", "calib_images")
    tune_images: int = default("tune", "tune_images")
    duration: float = default("tune", "duration")
    repeats: int = default("tune", "repeats")
    peak_steps: int = default("tune", "peak_steps")
    lg_duration: float = default("tune", "lg_duration")
    exhaustive: bool = False
    baselines: bool = True
    command: str | None = None


def build_space(o: TuneOptions, cores: int) -> tuple[Space, list[str]]:
    """The variants this machine runs (precisions it cannot run left out, and why), the batch
    sizes, each backend's parallelism: its default first, then powers of two of threads (and,
    for ONNX Runtime, of parallel sessions: LoadGen's SUT runs them as --workers) up to the CPUs."""
    from ..runtime.backends import available, precision_unsupported
    from ..runtime.timing import parse_batches

    notes, variants = [], []
    have = set(available())
    for item in [s.strip() for s in o.backends.split(",") if s.strip()]:
        b, _, only = item.partition(":")
        if b not in PRECISIONS or (only and only not in PRECISIONS[b]):
            raise ClsbenchError(f"--backends {o.backends}: {item!r} is not one of {', '.join(PRECISIONS)} (or "
                                f"BACKEND:PRECISION, e.g. onnxruntime:int8)")
        if b not in have or (b == "cuda" and not _cuda()):
            notes.append(f"{b}: not installed or no device here: left out")
            continue
        for p in [only] if only else PRECISIONS[b]:
            why = precision_unsupported(b, p)
            if why:
                notes.append(f"{b} {p}: {why}: left out")
            else:
                variants.append((b, p))
    if not variants and not notes:
        raise ClsbenchError(f"--backends {o.backends!r}: names no backend; give e.g. --backends onnxruntime,openvino")
    if not variants:
        raise ClsbenchError(f"--backends {o.backends}: none of them runs here ({'; '.join(notes)})")
    pows = [2 ** k for k in range(cores.bit_length()) if 2 ** k <= cores]
    ort = [Parallel(None, 1)] + [Parallel(t, s) for t in pows for s in pows
                                 if t * s <= cores and (t, s) != (cores, 1)]
    par = {"onnxruntime": ort, "openvino": [Parallel(None, 1, "latency"), Parallel(None, 1, "throughput")]
           + [Parallel(t, 1, "latency") for t in pows if t < cores],
           "torch": [Parallel(None)] + [Parallel(t) for t in pows if t < cores], "cuda": [Parallel(None)]}
    return Space(variants, sorted(set(parse_batches(o.batches))), par, cores), notes


def _cuda() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return bool(torch.cuda.is_available())


def identity(p, o: TuneOptions, space: Space) -> dict:
    """What every measurement depends on besides its candidate: the model files' bytes, the
    data, the split, the machine, the runtimes, the settings (measure.sweep.cell_sources'
    rule, for a tune)."""
    from .._io import fingerprint, usable_cpus
    from ..measure.sweep import file_sha256, runtime_version
    from ..runtime.timing import cpu_model

    return {"tries_version": TRIES_VERSION, "onnx_sha256": file_sha256(p.onnx), "pth_sha256": file_sha256(p.pth) if p.pth else None,
            "data": p.plan.data.fingerprint, "held_out": fingerprint(p.names),
            "split": {k: v for k, v in p.split.items() if k != "held_out_names"}, "cpu": cpu_model(),
            "usable_cpus": usable_cpus(), "clsbench": __version__,
            "runtimes": {b: runtime_version(b) for b in sorted({b for b, _ in space.variants} | {"onnxruntime"})},
            "settings": {"max_drop": o.max_drop, "percentile": o.percentile, "latency_bound_ms": o.latency_bound_ms,
                         "duration": o.duration, "repeats": o.repeats, "peak_steps": o.peak_steps,
                         "lg_duration": o.lg_duration}}


def _remove_empty(folder: Path) -> None:
    """`folder` and the folders under it, where they hold no file."""
    for sub in sorted((p for p in folder.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)):
        with contextlib.suppress(OSError):
            sub.rmdir()
    with contextlib.suppress(OSError):
        folder.rmdir()


def run_tune(weights: str, data: str, options: TuneOptions | None = None, **kw) -> dict:
    """`clsbench tune`: returns the record (also tune.json, report.html in --output)."""
    from .._io import atomic_write_json, check_not_input, folder_lock, usable_cpus
    from .tune_measure import RealMeasurer, prepare

    o = options or TuneOptions(**kw)
    check_options(o)
    check_not_input(o.output, {"the --weights file": weights}, "--output", folders={"the --data folder": data})
    check_output_folder(o.output, data)
    out = Path(o.output)
    created = not out.exists()
    out.mkdir(parents=True, exist_ok=True)
    with folder_lock(out):
        t0 = time.monotonic()
        space, notes = build_space(o, usable_cpus())
        try:
            p = prepare(weights, data, o)
        except ClsbenchError:  # refused before anything was measured: leave no empty folder behind
            if created:
                _remove_empty(out)
            raise
        plan = p.plan.as_dict()
        m = Recorded(RealMeasurer(p, o), str(out / "tries"), identity(p, o, space), plan)
        bounds = Bounds(o.max_drop, o.latency_bound_ms, o.percentile)
        budget = None if o.budget_min is None else o.budget_min * 60
        result = search(space, m, bounds, budget_s=budget, exhaustive=o.exhaustive)
        base = baselines(m, result, space, bounds) if o.baselines and result["winner"] else {}
        name_artifacts(m.inner, space.variants)
        heldout = write_held_out(p, out)
        notes += split_notes(p.split, o)
        rec = {"tool": f"clsbench {__version__}", "command": o.command, "plan": plan, "weights": os.path.abspath(weights),
               "data": p.plan.data.images, "options": _options(o), "space": _space_dict(space), "notes": notes,
               "split": {**p.split, "held_out_folder": heldout}, "compiled": m.inner.compiled,
               "search": result, "baselines": base, "measured": m.measured, "reused": m.reused,
               "wall_s": round(time.monotonic() - t0, 2), "environment": _env()}
        rec["winner_commands"] = winner_commands(rec, m.inner, heldout)
        atomic_write_json(out / "tune.json", rec)
        from ..report.html import write_report

        rec["report"] = write_report(str(out))
    return rec


def name_artifacts(real, variants) -> None:
    """Every variant's artifact, also where each try was read back (a resumed tune): so that the
    record's `compiled` is the same however the tune ran, and each int8 artifact's calibration and
    tuning names are checked disjoint from the held-out ones again (compile reuses it by its rule)."""
    for b, p in variants:
        try:
            real.artifact(b, p)
        except ClsbenchError as e:  # e.g. torch for an ONNX --weights: said in the accuracy pass already
            log.info(f"tune: {b} {p}: no artifact ({e})")


def check_options(o: TuneOptions) -> None:
    """Before anything slow: the settings a tune cannot run with, each in one line."""
    from ..runtime.timing import parse_batches

    if not 0 < o.percentile <= 100:
        raise ClsbenchError(f"--percentile must be in (0, 100], got {o.percentile:g}")
    if o.max_drop < 0:
        raise ClsbenchError(f"--max-drop must be >= 0 Top-1 points, got {o.max_drop:g}")
    parse_batches(o.batches)
    if o.latency_bound_ms is not None:
        from ..measure.loadgen import _lg

        _lg()  # the Server peak search needs LoadGen: said now, not after the accuracy pass


# what a tune writes in --output: an earlier tune's folder is resumed; any other entry is another
# command's (a `run` work dir, a perf folder: its report.html would be replaced by tune's)
OWN_ENTRIES = {"tune.json", "report.html", "tries", "export", "compiled", "heldout", "loadgen", "winner-run",
               "winner-loadgen"}


def check_output_folder(output: str, data: str) -> None:
    """--output is a new folder, an empty one or an earlier tune's: never a file, never a folder
    holding another command's outputs, never one the --data folder lies in (tune rewrites its
    held-out folder there)."""
    from .._io import check_own_folder

    out, d = os.path.realpath(output), os.path.realpath(data)
    if d == out or d.startswith(out.rstrip(os.sep) + os.sep):
        raise ClsbenchError(f"--output {output}: the --data folder {data} lies inside it, and tune rewrites its "
                            f"folders (the held-out images among them); give another --output")
    check_own_folder(output, OWN_ENTRIES, f"tune.json, report.html and the tries (e.g. --output {output}.tune)",
                     "another command's files", "an earlier tune's folder (it resumes there)")


def split_notes(split: dict, o: TuneOptions) -> list[str]:
    """What the split took of --calib-images / --tune-images where the folder held too few
    (each is at most a third of the images): said, not silently shrunk."""
    return [f"--{flag} {want}: {got} used (at most a third of the {split['images']} images)"
            for flag, want, got in (("calib-images", o.calib_images, split["calib"]),
                                    ("tune-images", o.tune_images, split["tune"])) if got < want]


def baselines(m, result: dict, space: Space, bounds: Bounds) -> dict:
    """The winner beside what a user gets without tuning, at the winner's batch, measured now
    (read back when a try already has them): PyTorch eager fp32, ONNX Runtime fp32 with its
    defaults, OpenVINO's THROUGHPUT hint (at the winner's precision where OpenVINO runs it
    within the accuracy bound, else fp32). Each as a ratio: the winner's figure over its."""
    w = result["winner"]
    bs = w["candidate"]["batch"]
    acc = result["accuracy"]
    ov_p = w["candidate"]["precision"] if acc.get(f"openvino:{w['candidate']['precision']}", {}).get("passed") else "fp32"
    want = {"pytorch_eager_fp32": Candidate("torch", "fp32", bs),
            "onnxruntime_defaults": Candidate("onnxruntime", "fp32", bs),
            "openvino_throughput_hint": Candidate("openvino", ov_p, bs, hint="throughput")}
    out = {}
    for name, c in want.items():
        try:
            r = m.offline(c)
            s = m.server(c) if bounds.latency_ms is not None and name in SERVER_BASELINES else None
        except ClsbenchError as e:
            out[name] = {"candidate": c.as_dict(), "error": str(e)}
            log.info(f"tune: baseline {name}: not measured ({e})")
            continue
        ratio = w["offline"]["ips"] / r["ips"] if r.get("ips") else None
        srv = (w["server"] or {}).get("peak_qps") if w.get("server") else None
        out[name] = {"candidate": c.as_dict(), "label": c.label(), "offline": r, "server": s,
                     "offline_ratio": ratio, "server_ratio": (srv / s["peak_qps"]) if s and s.get("peak_qps") and srv else None}
        log.info(f"tune: baseline {c.label()}: {r.get('ips') or 0:,.1f} img/s"
                 + (f" — the winner is {ratio:.2f}x" if ratio else " — no ratio (no throughput)"))
    return out


def write_held_out(p, out: Path) -> str:
    """The held-out images as a data folder of their own (links to the images, their labels),
    so that the winner's `clsbench run` scores exactly the images tune judged it on."""
    from .._io import atomic_write_text
    from ..data.folders import list_images, stem

    folder = out / "heldout"
    val = folder / "val"
    val.mkdir(parents=True, exist_ok=True)
    names, want = set(p.names), {}
    for rel in list_images(p.val).images:
        if stem(Path(rel).name) in names:
            want[Path(rel).name] = Path(p.val).resolve() / rel
    for old in val.iterdir():  # an earlier tune's (other data, another split): exactly this tune's images stay
        stale = old.name not in want or not old.is_symlink() or Path(os.readlink(old)) != want[old.name]
        if stale and (old.is_symlink() or old.is_file()):
            old.unlink()
    for name, target in want.items():
        if not (val / name).is_symlink():
            (val / name).symlink_to(target)
    lines = [f"{name} {p.labels[stem(name)]}" for name in want]
    atomic_write_text(folder / "val_label.txt", "\n".join(lines) + "\n")
    return str(folder)


def winner_commands(rec: dict, real, heldout: str) -> dict:
    """The commands that reproduce the winner: its accuracy and offline throughput (`run` on
    the held-out images, with the artifact tune judged), its Server peak (`loadgen`)."""
    from .tune_measure import min_queries

    w = rec["search"]["winner"]
    if not w:
        return {}
    c = Candidate(**w["candidate"])
    path, _ = real.artifact(c.backend, c.precision)
    path, heldout, out = os.path.abspath(path), os.path.abspath(heldout), os.path.abspath(rec["options"]["output"])
    flags = ["--backend", c.backend, "--precision", c.precision, "--batch-size", str(c.batch)]
    flags += ["--threads", str(c.threads)] if c.threads else []
    workers = ["--workers", str(c.sessions)] if c.sessions > 1 else []
    flags += ["--openvino-hint", c.hint] if c.backend == "openvino" and c.hint and c.hint != "latency" else []
    if c.backend in ("torch", "cuda"):
        flags += ["--model", real.p.plan.model.spec.name]
    run = ["clsbench", "run", "--weights", path, "--data", heldout, *flags, "--work-dir",
           str(Path(out) / "winner-run"), "--overwrite"]  # an earlier winner's run there is replaced, not refused
    cmds = {"run": shlex.join(run)}
    if c.sessions > 1:
        cmds["note"] = (f"run runs one session; the winner's {c.sessions} sessions of {c.threads} threads are a "
                        f"deployment of {c.sessions} processes, each with --threads {c.threads} (loadgen runs them "
                        f"as --workers {c.sessions}, one batcher feeding them)")
    if rec["options"]["latency_bound_ms"] is not None and c.backend not in ("torch", "cuda"):
        srv = w.get("server") or {}
        lg = ["clsbench", "loadgen", "--model", path, "--data", heldout, *flags[:6], *flags[6:], *workers,
              "--scenario", "server", "--latency-bound-ms", f"{rec['options']['latency_bound_ms']:g}",
              "--max-wait-ms", f"{srv.get('max_wait_ms') or 0:g}", "--find-peak",
              "--peak-steps", str(rec["options"]["peak_steps"]), "--duration", f"{rec['options']['lg_duration']:g}",
              "--setting", f"target_latency_percentile={rec['options']['percentile']:g}",
              "--setting", f"min_query_count={min_queries(rec['options']['percentile'])}",  # tune's own tries
              "--output", str(Path(out) / "winner-loadgen")]
        cmds["loadgen"] = shlex.join(lg)
    return cmds


def _options(o: TuneOptions) -> dict:
    import dataclasses

    return dataclasses.asdict(o)


def _space_dict(space: Space) -> dict:
    import dataclasses

    return {"variants": [f"{b}:{p}" for b, p in space.variants], "batches": space.batches, "cores": space.cores,
            "parallel": {b: [dataclasses.asdict(q) for q in qs] for b, qs in space.parallel.items()},
            "size": space.size()}


def _env() -> dict:
    from ..runtime.timing import environment

    return environment()
