"""THE table of defaults: every option of every command that has one. The parser takes its
values from here (`cli.commands` fills each action's default and says it in the help), and
the library's option dataclasses take theirs from here too, so a library call and the
command line decide alike. A value that differs between commands is explained in WHY; no
other module writes a default literal of an option (`scripts/layout_check.py` checks the
parser). What a run *is* (model, preset, backend, precision) has no default here: `plan`
decides it from the model file.
"""
from __future__ import annotations

# options several commands share, with one value everywhere
COMMON: dict[str, object] = {
    "device_id": 0, "openvino_hint": "latency", "cuda_mode": "graph", "ray_timeout": 30.0, "engine": "local",
    "outfmt": "txt", "tolerance": 1.0, "decode": "cpu", "calib_images": None, "output": None,
}

DEFAULTS: dict[str, dict[str, object]] = {
    "export": {"parity_batch": 16},
    "preprocess": {"format": "bin"},
    "infer": {"batch_size": 1, "output": "result", "warmup": 5},
    "eval": {},
    "compile": {"output": "compiled", "tune_images": 200, "parity_images": 200, "batches": "1,4,8,16,32,64",
                "soc_version": "Ascend710"},
    "perf": {"output": "perf", "compiled": "compiled", "configs": "onnxruntime:fp32", "batches": "1,4,8,16,32,64",
             "duration": 2.0, "iterations": 10, "warmup": 3, "repeats": 5},
    "zoo": {"output": "zoo", "configs": "onnxruntime:fp32", "batches": "32", "duration": 2.0, "iterations": 10,
            "warmup": 3},
    "models": {"filter": ""},
    "run": {"work_dir": "runs/latest", "batch_size": 16},
    "demo": {"work_dir": "runs/demo", "batch_size": 16, "per_class": 60, "proxy_images": 160},
    "report": {"output": "compare.html", "threshold": 5.0},
    "loadgen": {"output": "loadgen", "scenario": "offline", "mode": "performance", "batch_size": 8,
                "samples_per_query": 8, "max_wait_ms": 0.0, "duration": 5.0, "peak_steps": 6,
                "workers": 1},
    "info": {},
    "profile": {"batch_size": 1, "warmup": 5, "runs": 10, "timed_runs": 20, "top": 15},
    "tune": {"output": "tune", "max_drop": 0.5, "percentile": 99.0, "backends": "onnxruntime,openvino",
             "batches": "1,2,4,8,16,32,64", "calib_images": 100, "tune_images": 100, "duration": 1.0, "repeats": 3,
             "peak_steps": 3, "lg_duration": 1.0},
}

# why a value differs between commands (every option whose value is not one everywhere)
WHY: dict[str, str] = {
    "batch_size": "infer and profile 1: the vendor tool's own default (its -batch_size); run and demo 16: the batch the "
                  "guide runs its accuracy at (§5.2, device 1); loadgen 8: the largest batch its dynamic "
                  "batcher forms, small enough for a Server latency bound",
    "warmup": "infer --loop and profile 5: the vendor tool's pure-inference warm-up; perf and zoo 3: per cell, a sweep "
              "warms dozens of sessions",
    "duration": "perf and zoo 2 s a cell: a sweep has dozens of cells; loadgen 5 s a LoadGen run: LoadGen's "
                "early stopping needs a few thousand queries (MLPerf's own 600 s with --official-durations); "
                "tune 1 s a candidate: a search times tens of them, and a step is taken only past a 2 % gain",
    "batches": "compile (the cann .om files) and perf 1,4,8,16,32,64: the guide's §7 sweep; zoo 32: one batch "
               "across many models; tune 1,2,4,...,64: every power of two, as the batch doubles until a bound breaks",
    "calib_images": "compile and run None (300, adapted to a smaller folder); tune 100: its images are split in "
                    "three (calibration, accuracy-control tuning, held out) and the held-out share judges every "
                    "candidate",
    "tune_images": "compile 200; tune 100, for the same three-way split as its calib_images",
    "repeats": "perf 5 windows a cell; tune 3: its cells are 1 s each",
    "peak_steps": "loadgen 6 bisection steps; tune 3: a peak search per candidate, within 10 % of the bracket",
    "output": "each command's own folder, so that no two commands write into one by default",
    "work_dir": "run and demo each their own folder under runs/",
    "configs": "perf and zoo: ONNX Runtime fp32, the runtime every install has",
}


def default(command: str, option: str):
    """The default of `option` (the argparse dest) for `command`."""
    table = DEFAULTS[command]
    if option in table:
        return table[option]
    if option in COMMON:
        return COMMON[option]
    raise KeyError(f"no default for {command} --{option.replace('_', '-')} in clsbench.defaults")


def has_default(command: str, option: str) -> bool:
    return option in DEFAULTS.get(command, {}) or option in COMMON
