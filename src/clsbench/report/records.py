"""Records read back (summary.json, perf.json) are untrusted input: a report is rebuilt from
folders that may come from anyone. `load_record` checks each field the report reads against
a schema (type and range) and refuses a bad record in one line naming the file and the
field, before anything is rendered or compared.
"""
from __future__ import annotations

import json
import math
import os
import re
from dataclasses import dataclass

from .. import ClsbenchError


@dataclass(frozen=True)
class Num:
    lo: float = -math.inf
    hi: float = math.inf
    none: bool = False
    integer: bool = False

    def check(self, v) -> str | None:
        if v is None:
            return None if self.none else "a number"
        if isinstance(v, bool) or not isinstance(v, (int, float)) or (self.integer and not isinstance(v, int)):
            return "a whole number" if self.integer else "a number"
        # abs() first: a JSON integer past float's range (10**400) overflows math.isfinite
        if abs(v) > 1e308 or not (math.isfinite(v) and self.lo <= v <= self.hi):
            return f"a number in {self.lo:g}..{self.hi:g}"
        return None


@dataclass(frozen=True)
class Str:
    pattern: str | None = None
    none: bool = False

    def check(self, v) -> str | None:
        if v is None:
            return None if self.none else "text"
        if not isinstance(v, str):
            return "text"
        if self.pattern and not re.fullmatch(self.pattern, v):
            return f"text matching {self.pattern}"
        return None


@dataclass(frozen=True)
class Bool:
    none: bool = False

    def check(self, v) -> str | None:
        return None if isinstance(v, bool) or (v is None and self.none) else "true or false"


@dataclass(frozen=True)
class Any_:
    def check(self, v) -> str | None:
        return None


@dataclass(frozen=True)
class Scalar:
    """Text, a number, a boolean or null, or a short list of those (shown as text)."""

    def check(self, v) -> str | None:
        if isinstance(v, list):
            return None if len(v) <= 16 and all(self._one(x) for x in v) else "text, a number or null"
        return None if self._one(v) else "text, a number or null"

    @staticmethod
    def _one(v) -> bool:
        return v is None or isinstance(v, (str, bool, int)) or (isinstance(v, float) and math.isfinite(v))


@dataclass(frozen=True)
class MapOf:
    value: object

    def check(self, v) -> str | None:
        return None if isinstance(v, dict) else "an object"


@dataclass(frozen=True)
class ListOf:
    item: object

    def check(self, v) -> str | None:
        return None if isinstance(v, list) else "a list"


@dataclass(frozen=True)
class Maybe:
    """null, or what `spec` says."""

    spec: object


INT0, INT1 = Num(0, integer=True), Num(1, integer=True)
PCT, FRAC = Num(0, 100), Num(0, 1)
POS = Num(0)
TEXT, OPT_TEXT = Str(), Str(none=True)
PCT_KEY = Str(r"p\d+(\.\d+)?")  # a percentile's name, used as a table header
# latency_stats: {} when nothing was timed
LATENCY = {"count?": INT0, "min?": POS, "mean?": POS, "max?": POS, "percentiles?": ListOf(PCT_KEY),
           "unresolved?": ListOf(PCT_KEY), "*": Num(0, none=True)}
STABILITY = {"repeats": INT0, "stable": Bool(none=True), "spread?": Num(0, none=True),
             "median?": Num(0, none=True), "reason?": OPT_TEXT}
ENVIRONMENT = {"logical_cpus?": Num(1, integer=True, none=True), "*": Scalar()}
RUNTIME = {"runtime": TEXT, "version": Scalar(), "precision?": TEXT, "threads?": Num(1, integer=True, none=True),
           "*": Any_()}

RUN = {
    "model": TEXT, "weights_tag?": OPT_TEXT, "tool?": TEXT, "command?": OPT_TEXT,
    "weights": {"path?": OPT_TEXT, "sha256?": OPT_TEXT, "verdict?": TEXT, "*": Any_()},
    "parity?": Maybe({"rel_l2_error": POS, "top1_agreement": FRAC, "bound_rel_l2_error?": Num(0, none=True),
                      "inputs?": Scalar(), "passed?": Bool(), "reasons?": ListOf(TEXT), "*": Any_()}),
    "compiled?": Maybe({"precision": TEXT, "backend?": TEXT, "artifact?": TEXT,
                        "parity?": {"top1_agreement": FRAC, "rel_l2_error": POS, "inputs?": Scalar(),
                                    "accuracy?": {"top1": PCT, "fp32_top1": PCT, "top1_drop": Num(-100, 100),
                                                  "labelled_images": INT0, "*": Any_()}, "*": Any_()},
                        "*": Any_()}),
    "preprocessing": MapOf(Scalar()),
    "dataset": {"images": TEXT, "labels": OPT_TEXT, "unreadable": ListOf({"file": TEXT, "error": TEXT}), "*": Any_()},
    "accuracy": Maybe({"images": INT0, "classes": INT0, "top1": PCT, "top2": PCT, "top3": PCT, "top4": PCT, "top5": PCT,
                 "reference_top1?": Maybe(PCT), "reference_top5?": Maybe(PCT), "top1_drop?": Num(-100, 100, none=True),
                 "tolerance": POS, "allowed_drop?": Num(0, none=True), "within_tolerance?": Bool(none=True),
                 "reference_source?": OPT_TEXT, "labels_without_output": INT0, "outputs_without_label": INT0,
                 "outside_calibration?": {"images": INT0, "top1": PCT, "*": Any_()},
                 "label_set?": OPT_TEXT, "real?": Maybe({"images": INT0, "top1": PCT, "top5": PCT,
                                                         "without_real_label": INT0, "*": Any_()}),
                 "*": Any_()}),
    # a run without labels: its first predictions (predict.record)
    "predictions?": Maybe({"file": TEXT, "images": INT0, "class_names": OPT_TEXT,
                           "shown": ListOf({"image": TEXT, "top5": ListOf({"class": INT0, "name": TEXT,
                                                                          "prob": FRAC})})}),
    "performance": {"batch_size": INT1, "backend": RUNTIME, "stages?": MapOf(MapOf(Num(0, none=True))),
                    "compute_latency_ms_per_batch?": Maybe(LATENCY), "compute_stability?": Maybe(STABILITY),
                    "from_earlier_run?": Bool(), "finished_at?": TEXT, "latencies_csv?": OPT_TEXT,
                    "environment?": ENVIRONMENT, "*": Any_()},
    "stage_seconds": MapOf(Num(0)),
    "files": MapOf(TEXT),
    "*": Any_(),
}
PERF = {
    "rows": ListOf({"backend": TEXT, "precision": TEXT, "batch_size": INT1, "input": TEXT, "iterations": INT0,
                    "throughput_compute": Num(0, none=True), "throughput_e2e": POS,
                    "stability?": Maybe(STABILITY),
                    "latency_ms?": Maybe(LATENCY),
                    "latencies_csv?": OPT_TEXT, "runtime": RUNTIME, "*": Any_()}),
    "configs": ListOf({"backend": TEXT, "precision": TEXT, "*": Any_()}),
    "batches": ListOf(INT1), "warmup": INT0, "min_iterations": INT1, "duration_s": POS, "repeats?": INT1,
    "threads?": Num(1, integer=True, none=True), "environment": ENVIRONMENT,
    "model?": Maybe({"path?": TEXT, "name?": OPT_TEXT, "key?": OPT_TEXT, "sha256?": OPT_TEXT, "*": Any_()}),
    "command?": OPT_TEXT, "*": Any_(),
}

LG_SUMMARY = {"fields": MapOf(Scalar()), "valid": Bool(), "result": OPT_TEXT, "notes": ListOf(TEXT),
              "reasons": ListOf(TEXT)}
LG_RUN = {"mode": TEXT, "folder": TEXT, "user_conf": MapOf(Num()), "wall_s": POS,
          "batches": {"count": INT0, "*": Any_()}, "summary?": LG_SUMMARY,
          "accuracy?": {"images": INT0, "top1?": PCT, "top5?": PCT, "result_json": OPT_TEXT, "*": Any_()},
          "*": Any_()}
LOADGEN = {
    "scenario": Str(r"offline|server|single-stream|multi-stream"), "loadgen_scenario": TEXT, "mode": TEXT,
    "command?": OPT_TEXT, "tool?": TEXT,
    "model": {"path": TEXT, "key": OPT_TEXT, "provenance": TEXT, "*": Any_()},
    "target": {"backend": TEXT, "precision": TEXT, "batch_size": INT1, "runtime": RUNTIME, "workers?": INT1,
               "*": Any_()},
    "data": {"source": TEXT, "samples": INT0, "labels": OPT_TEXT},
    "measured_batch_ms": POS, "runs": MapOf(LG_RUN),
    "peak": Maybe({"peak_qps": Num(0, none=True), "bracket": ListOf(Num(0, none=True)),
                   "step": Num(0, none=True), "latency_bound_ms": POS, "percentile?": Num(0, 100),
                   "tries": ListOf({"target_qps": POS, "valid": Bool(), "reasons": ListOf(TEXT),
                                    "completed_qps": Num(0, none=True), "p99_ms": Num(0, none=True),
                                    "folder": TEXT, "*": Any_()})}),
    "environment": ENVIRONMENT, "*": Any_(),
}

# `clsbench profile`'s profile.json (report/profiles.py reads it: load_profile)
PROFILE_NODE = {"name": TEXT, "op_type": TEXT, "kernel": TEXT, "precision": TEXT, "calls": INT1, "ms": POS,
                "mean_ms": POS, "percent": PCT, "source?": OPT_TEXT, "originals?": ListOf(TEXT), "*": Any_()}
PROFILE = {
    "plan": {"weights": TEXT, "model": MapOf(Any_()), "target": {"backend": TEXT, "precision": TEXT, "*": Any_()},
             "*": Any_()},
    "batch_size": INT1, "input": TEXT, "warmup": INT0, "runs": INT1, "timed_runs": INT1,
    "nodes": ListOf(PROFILE_NODE),
    "op_types": ListOf({"op_type": TEXT, "nodes": INT1, "calls": INT1, "ms": POS, "percent": PCT, "*": Any_()}),
    "coverage": {"node_ms_per_run": POS, "measured_ms": POS, "percent": Num(0, none=True), "text": TEXT,
                 "measured_after_ms?": Num(0, none=True), "unsteady?": Bool(), "profiled_run_ms?": POS},
    "kept_in_float?": ListOf(TEXT), "trace?": OPT_TEXT, "command?": OPT_TEXT, "runtime?": RUNTIME,
    "environment?": ENVIRONMENT, "*": Any_(),
}


def _check(v, spec, field: str) -> None:
    """Raises ValueError('field: expected ...') at the first field that does not fit."""
    if isinstance(spec, Maybe):
        if v is not None:
            _check(v, spec.spec, field)
        return
    if isinstance(spec, dict):
        if not isinstance(v, dict):
            raise ValueError(f"{field or 'the record'}: expected an object, got {_show(v)}")
        rest = spec.get("*")
        for key, sub in spec.items():
            if key == "*":
                continue
            name, optional = key.rstrip("?"), key.endswith("?")
            if name not in v:
                if not optional:
                    raise ValueError(f"{field + '/' if field else ''}{name}: missing")
                continue
            _check(v[name], sub, f"{field + '/' if field else ''}{name}")
        if rest is not None:
            for k, x in v.items():
                if k not in spec and k + "?" not in spec:
                    _check(x, rest, f"{field + '/' if field else ''}{k}")
        return
    why = spec.check(v)
    if why:
        raise ValueError(f"{field}: expected {why}, got {_show(v)}")
    if isinstance(spec, (ListOf, MapOf)):
        items = enumerate(v) if isinstance(spec, ListOf) else v.items()
        for k, x in items:
            _check(x, spec.item if isinstance(spec, ListOf) else spec.value, f"{field}/{k}")


def _show(v) -> str:
    text = json.dumps(v)[:60]
    return f"{type(v).__name__} {text}"


def validate(record, schema: dict, path: str) -> dict:
    try:
        _check(record, schema, "")
    except ValueError as e:
        raise ClsbenchError(f"{path}: not a clsbench record this version can read: field {e}") from None
    except RecursionError:
        raise ClsbenchError(f"{path}: nested too deeply to be a clsbench record") from None
    return record


_TUNE_ROW = {"key": TEXT, "label": TEXT, "top1": PCT, "drop": Num(-100, 100), "margin": Num(0, none=True),
             "accuracy_passed": Bool(), "confident": Bool(), "ips": POS, "latency_ms": Num(0, none=True),
             "meets_latency": Bool(), "server_qps": Num(0, none=True), "server_p_ms": Num(0, none=True),
             "y": Num(0), "frontier": Bool(), "*": Any_()}
TUNE = {  # tune.json (flows/tune_flow.py), the fields its page reads
    "command?": OPT_TEXT, "tool?": TEXT, "plan": {"*": Any_()}, "weights": TEXT, "data": TEXT,
    "options": {"max_drop": POS, "latency_bound_ms": Num(0, none=True), "percentile": PCT, "*": Any_()},
    "split": {"calib": INT0, "tune": INT0, "held_out": INT0, "*": Any_()},
    "search": {"candidates": ListOf(_TUNE_ROW), "accuracy": MapOf({"*": Any_()}), "path": ListOf({"*": Any_()}),
               "winner": Maybe({"key": TEXT, "label": TEXT, "value": POS, "*": Any_()}), "stopped": TEXT,
               "space_size": INT0, "timed": INT0, "*": Any_()},
    "baselines": MapOf({"*": Any_()}), "winner_commands": MapOf(TEXT), "measured": INT0, "reused": INT0,
    "environment": ENVIRONMENT, "*": Any_(),
}


def load_record(folder: str) -> tuple[str, dict]:
    """('run', summary.json), ('perf', perf.json) or ('loadgen', loadgen.json) of a folder,
    each field the report reads checked (records are untrusted: reports are sent, run
    folders compared)."""
    for kind, name, schema in (("run", "summary.json", RUN), ("perf", "perf.json", PERF),
                               ("loadgen", "loadgen.json", LOADGEN), ("tune", "tune.json", TUNE)):
        path = os.path.join(folder, name)
        if os.path.isfile(path):
            try:
                with open(path, encoding="utf-8") as f:
                    rec = json.load(f, parse_constant=_no_constant)
            except (OSError, ValueError) as e:
                raise ClsbenchError(f"{path}: not a readable clsbench record ({e})") from None
            return kind, validate(rec, schema, path)
    raise ClsbenchError(f"{folder}: no summary.json (a `clsbench run` folder), perf.json "
                        f"(a `clsbench perf` folder), loadgen.json (a `clsbench loadgen` folder) or tune.json "
                        f"(a `clsbench tune` folder)")


def _no_constant(name: str):
    raise ValueError(f"{name} is not a number a record may hold")
