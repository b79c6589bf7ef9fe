"""The real measurer of `clsbench tune` (the search is `flows.tune.search`), composed of the
library calls every other command uses: the plan (`plan.resolve`), the export (`flows.run`'s),
int8 compiled with accuracy control (`compile.compile_model`, `max_drop`), scoring on labelled
images (`accuracy.evaluate.evaluate_scores`), a perf cell's timing (`runtime.timing.measure`)
and LoadGen's Server peak search (`measure.loadgen.find_peak`).

The images of --data are split once, by position in their sorted listing, as compile splits
them: the first `calib_images` calibrate the int8 artifacts, the next `tune_images` are what
accuracy control tunes on, and every image after them is the held-out set each candidate is
judged on (its Top-1 against fp32 ONNX Runtime's on the same images). The three name lists are
recorded and checked disjoint.
"""
from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .. import ClsbenchError
from .tune import Candidate, paired_margin

log = logging.getLogger("clsbench")

EVAL_BATCH = 16  # the batch the held-out images are scored at (accuracy does not depend on it)
MIN_HELD_OUT = 20
# the Server peak search goes no lower than this share of one batch's back-to-back rate: a
# candidate that misses the bound below it is not the fastest, and each try must hold LoadGen's
# minimum query count (662 at p99: a try at 2 QPS is 5 minutes)
PEAK_FLOOR = 0.25


@dataclass
class Prepared:
    """What every measurement of one tune shares."""

    plan: object  # plan.Plan
    onnx: str  # the fp32 ONNX (exported here, or the --weights file)
    pth: str | None  # the PyTorch weights, for the eager baseline
    val: str
    label_file: str
    labels: dict
    split: dict  # calib, tune, held_out: counts and positions
    x: np.ndarray  # the held-out images, preprocessed
    names: list
    work: str


class RealMeasurer:
    """accuracy / offline / server on this machine's runtimes (see flows.tune)."""

    def __init__(self, p: Prepared, o):
        self.p, self.o = p, o
        self.artifacts: dict = {}
        self.compiled: dict = {}
        self._ref = None

    # ------------------------------------------------------------ what each variant runs
    def artifact(self, backend: str, precision: str) -> tuple[str, dict]:
        """(model file, backend options) of a variant; int8 compiled here with accuracy control."""
        if (backend, precision) in self.artifacts:
            return self.artifacts[(backend, precision)]
        from ..runtime.backends import target

        t = target(backend, precision)
        if "pth" in t.runs:
            from ..measure.sweep import _eager_options

            if not self.p.pth:
                raise ClsbenchError(f"{backend}: runs PyTorch weights; tune was given a model file: give --weights "
                                    f"W.pth, or leave {backend} out of --backends")
            got = (self.p.pth, dict(_eager_options(self.p.onnx, f"{backend}:{precision}")))
        elif t.compiled:
            got = (self._compile(backend, precision), {})
        else:
            got = (self.p.onnx, {})
        self.artifacts[(backend, precision)] = got
        return got

    def _compile(self, backend: str, precision: str) -> str:
        from ..compile.artifacts import CompileOptions, compile_model

        s = self.p.split
        log.info(f"tune: compile {backend} {precision} with accuracy control (Top-1 drop <= {self.o.max_drop} "
                 f"points on {s['tune']} tuning images; {s['calib']} calibration images)")
        rec = compile_model(self.p.onnx, CompileOptions(
            backend=backend, precision=precision, output_dir=str(Path(self.p.work) / "compiled"), data=self.p.val,
            calib_images=s["calib"], parity_images=0, pp=self.p.plan.preset.pp, labels=self.p.labels,
            max_drop=self.o.max_drop, tune_images=s["tune"]))
        used = set(rec.get("calibration_names") or []) | set((rec.get("accuracy_control") or {}).get("tuning_names") or [])
        if used & set(self.p.names):
            raise ClsbenchError(f"{rec['artifact']}: calibrated or tuned on held-out images "
                                f"({len(used & set(self.p.names))}); the split is wrong")
        self.compiled[f"{backend}:{precision}"] = {k: rec.get(k) for k in ("artifact", "artifact_sha256", "notes",
                                                                           "calibration_images", "reused")}
        return rec["artifact"]

    def _open(self, backend, precision, batch, threads=None, hint=None):
        from ..runtime.backends import open_backend

        path, opts = self.artifact(backend, precision)
        if backend == "openvino" and hint:
            opts = {**opts, "hint": hint}
        return open_backend(backend, path, batch_size=batch, threads=threads, precision=precision, **opts)

    # ------------------------------------------------------------ accuracy on the held-out images
    def reference(self) -> np.ndarray:
        from ..runtime.stages import run_all

        if self._ref is None:
            self._ref = run_all(self._open("onnxruntime", "fp32", EVAL_BATCH), self.p.x, EVAL_BATCH)
        return self._ref

    def accuracy(self, backend: str, precision: str) -> dict:
        from ..accuracy.evaluate import evaluate_scores
        from ..runtime.stages import run_all

        ref = self.reference()
        got = ref if (backend, precision) == ("onnxruntime", "fp32") else run_all(
            self._open(backend, precision, EVAL_BATCH), self.p.x, EVAL_BATCH)
        y = np.array([self.p.labels[n] for n in self.p.names])
        ref_right, got_right = ref.argmax(1) == y, got.argmax(1) == y
        acc = evaluate_scores("the held-out images", self.p.names, got, self.p.label_file, self.p.plan.scoring)
        fp32 = float(ref_right.mean() * 100)
        top1 = acc.percent(1)
        return {"top1": top1, "top5": acc.percent(5), "fp32_top1": fp32, "drop": round(fp32 - top1, 6),
                "margin": paired_margin(ref_right.tolist(), got_right.tolist()), "images": len(y),
                "agreement_with_fp32": float((ref.argmax(1) == got.argmax(1)).mean() * 100),
                "artifact": self.artifact(backend, precision)[0]}

    # ------------------------------------------------------------ speed
    def offline(self, c: Candidate) -> dict:
        """Offline img/s back to back on the held-out tensors: one session through the perf
        cell's timing, several sessions each in its own thread (the runtimes release the GIL)."""
        from ..runtime.timing import Config, Timing, measure, pct_key

        pct = (float(self.o.percentile),)
        t = Timing(self.o.duration, 5, 2, c.threads, c.hint or "latency", self.o.repeats, pct)
        if c.sessions > 1:
            return self._sessions(c, t)
        path, opts = self.artifact(c.backend, c.precision)
        row = measure(Config(c.backend, c.precision, path, tuple(opts.items())), c.batch, t, pool=self.p.x)
        lat = (row.get("latency_ms") or {}).get(pct_key(pct[0]))
        return {"ips": round(row["throughput_e2e"], 3), "ips_compute": round(row["throughput_compute"], 3),
                "latency_ms": lat, "iterations": row["iterations"], "unstable": row["stability"].get("unstable"),
                "runtime": row.get("runtime")}

    def _sessions(self, c: Candidate, t) -> dict:
        from ..runtime.timing import latency_stats, pct_key

        rts = [self._open(c.backend, c.precision, c.batch, c.threads, c.hint) for _ in range(c.sessions)]
        x = np.ascontiguousarray(np.resize(self.p.x, (c.batch, *self.p.x.shape[1:])))
        for rt in rts:
            for _ in range(t.warmup):
                rt.run(x)
        lat, counts, stop = [], [0] * len(rts), threading.Event()

        def loop(i, rt):
            while not stop.is_set():
                t0 = time.perf_counter()
                rt.run(x)
                lat.append((time.perf_counter() - t0) * 1e3)
                counts[i] += 1

        threads = [threading.Thread(target=loop, args=(i, rt), daemon=True) for i, rt in enumerate(rts)]
        t0 = time.perf_counter()
        for th in threads:
            th.start()
        time.sleep(max(t.duration, 0.2))
        stop.set()
        for th in threads:
            th.join()
        wall = time.perf_counter() - t0
        stats = latency_stats(lat, t.percentiles)
        return {"ips": round(c.batch * sum(counts) / wall, 3), "latency_ms": stats.get(pct_key(t.percentiles[0])),
                "iterations": sum(counts), "sessions": c.sessions}

    def server(self, c: Candidate) -> dict:
        """LoadGen's Server peak at the bound (measure.loadgen.find_peak), the SUT's dynamic
        batcher forming batches up to c.batch for c.sessions workers (each its own session of
        c.threads threads, in its own thread, all fed by the one batcher)."""
        from ..measure.loadgen import Bench, LoadgenOptions, Samples, _latency_ms, batch_sizes, find_peak

        o = LoadgenOptions(scenario="server", batch_size=c.batch, threads=c.threads, workers=c.sessions,
                           latency_bound_ms=self.o.latency_bound_ms, duration_s=self.o.lg_duration,
                           peak_steps=self.o.peak_steps, openvino_hint=c.hint or "latency",
                           max_wait_ms=self.o.latency_bound_ms / 10,
                           settings={"target_latency_percentile": float(self.o.percentile),
                                     "min_query_count": min_queries(self.o.percentile)})
        workers = [{n: self._open(c.backend, c.precision, n, c.threads, c.hint) for n in batch_sizes(o)}
                   for _ in range(c.sessions)]
        lat = _latency_ms(workers[0][c.batch], self.p.x)
        samples = Samples(self.p.x, list(self.p.names), "the held-out images", None)
        b = Bench(workers if c.sessions > 1 else workers[0], samples, o,
                  expected_qps=c.sessions * c.batch * 1e3 / lat, expected_latency_ms=lat)
        peak = find_peak(b, Path(self.p.work) / "loadgen" / c.key(), floor_share=PEAK_FLOOR)
        at = [t for t in peak["tries"] if t["valid"] and peak["peak_qps"] is not None
              and abs(t["target_qps"] - peak["peak_qps"]) < 0.01]  # the peak as tried (rounded to 0.01 QPS)
        return {"peak_qps": peak["peak_qps"], "p_ms": _percentile_ms(at[0], self.o.percentile) if at else None,
                "p99_ms": at[0]["p99_ms"] if at else None, "bracket": peak["bracket"],
                "tries": len(peak["tries"]), "max_wait_ms": o.max_wait_ms, "workers": c.sessions,
                "folder": str(Path(self.p.work) / "loadgen" / c.key())}


def _percentile_ms(tried: dict, percentile: float) -> float | None:
    """The --percentile latency (ms) of one peak-search try, read back from LoadGen's summary
    (LoadGen reports 50, 90, 95, 97, 99 and 99.9); its p99 where LoadGen reports no other."""
    from ..measure.loadgen import parse_summary

    f = parse_summary(Path(tried["folder"]) / "mlperf_log_summary.txt")["fields"]
    ns = f.get(f"{percentile:.2f} percentile latency (ns)")
    return round(ns / 1e6, 4) if isinstance(ns, (int, float)) else tried["p99_ms"]


def min_queries(percentile: float) -> int:
    """The fewest queries with which LoadGen's early stopping can pass at this percentile when
    every query meets the bound (LoadGen 6: 662 at p99, 64 at p90; measure.loadgen's
    SHORT_MIN_QUERIES): a lower percentile needs far shorter tries."""
    from ..measure.loadgen import SHORT_MIN_QUERIES

    return 64 if percentile <= 90 else SHORT_MIN_QUERIES["server"]


def prepare(weights: str, data: str, o) -> Prepared:
    """The plan of the tuned model (run's rules), its fp32 ONNX, the labels, the split, the
    held-out images in memory."""
    from ..data.folders import list_images
    from ..data.preprocess import load_folder
    from .run import RunOptions, _labels, _model_for, plan_run

    work = Path(o.output)
    plan = plan_run(weights, data, RunOptions(model=o.model, work_dir=str(work / "export"), show_progress=False))
    if not plan.data.labelled:
        raise ClsbenchError(f"{data}: tune judges accuracy first and needs labels (val_label.txt or class folders)")
    val = Path(plan.data.images)
    (work / "export").mkdir(parents=True, exist_ok=True)
    label_file, labels = _labels(plan, val, work / "export")
    onnx = weights if plan.weights_kind == "onnx" else None
    if plan.weights_kind == "pth":
        onnx, _ = _model_for(dataclasses_replace_target(plan), work / "export", val, RunOptions())
    if onnx is None:
        raise ClsbenchError(f"{weights}: tune takes PyTorch weights (.pth) or an fp32 ONNX model")
    n = len(list_images(val).images)
    calib, tune = split_counts(n, o.calib_images, o.tune_images, str(val))
    held = load_folder(val, plan.preset.pp, calib + tune)
    check_labelled(held.names, labels, str(label_file))
    split = {"calib": calib, "tune": tune, "held_out": len(held.names), "held_out_from": calib + tune,
             "images": n, "held_out_names": held.names}
    return Prepared(plan, str(onnx), weights if plan.weights_kind == "pth" else None, str(val), str(label_file),
                    labels, split, held.x, held.names, str(work))


def check_labelled(names: list, labels: dict, label_file: str) -> None:
    """Every held-out image has a label (each is judged against it); else one line naming the
    label file and the first images without one."""
    missing = [n for n in names if n not in labels]
    if missing:
        shown = ", ".join(missing[:3]) + (f" and {len(missing) - 3} more" if len(missing) > 3 else "")
        raise ClsbenchError(f"{label_file}: no label for {len(missing)} of the {len(names)} held-out images "
                            f"({shown}); add their lines to it, or remove those images from --data")


def split_counts(n: int, calib_images: int, tune_images: int, where: str) -> tuple[int, int]:
    """(calibration, tuning) image counts of a folder of n: each at most a third of it, and at
    least MIN_HELD_OUT left to judge; else one line saying what to type."""
    calib, tune = min(calib_images, n // 3), min(tune_images, n // 3)
    if n - calib - tune >= MIN_HELD_OUT:
        return calib, tune
    k = (n - MIN_HELD_OUT) // 2
    fix = (f"give --calib-images {k} --tune-images {k}, or more images" if k >= 1 else
           f"give at least {MIN_HELD_OUT + 2} images (1 calibrates, 1 tunes, {MIN_HELD_OUT} are held out)")
    raise ClsbenchError(f"{where}: holds {n} images; tune needs --calib-images ({calib} here) + --tune-images "
                        f"({tune} here) + at least {MIN_HELD_OUT} held-out images: {fix}")


def dataclasses_replace_target(plan):
    """The plan with an exporting target (the export step runs for a .pth whatever the plan's
    own target is: torch's plan would skip it)."""
    import dataclasses

    if plan.target.artifact != "weights":
        return plan
    return dataclasses.replace(plan, target=dataclasses.replace(plan.target, artifact="export"))
