"""The `clsbench profile` command: its parser (`add_parser`) and its call-and-print function
(`cmd_profile`). Registered by `cli.commands`."""
from __future__ import annotations

from .args import _add_accept_preset, _int, command_line


def add_parser(command) -> None:
    from ..runtime.backends import available

    p = command("profile", help="where the time goes: per-operator profile of one batch (ORT, OpenVINO, torch)",
                description="Profiles one batch of the model on its runtime, in a session of its own after a "
                            "warm-up and never inside a timed run: ONNX Runtime's session profiling, OpenVINO's "
                            "performance counters (PERF_COUNT), torch.profiler. Writes one normalised table "
                            "(profile.json, profile.csv: node, op type, kernel, precision, calls, total and mean "
                            "ms, %), trace.json (Trace Event format: Perfetto, chrome://tracing) and report.html, "
                            "and says what share of the batch's un-profiled latency the nodes account for. "
                            "`clsbench report A B` compares two profile folders node by node.")
    p.add_argument("--model", required=True,
                   help="model: .onnx, .xml IR, a `clsbench compile` artifact, or a .pth with --backend torch")
    p.add_argument("--backend", default=None, choices=available(),
                   help="runtime (default: what the model file is); cann is refused (msprof is not installed)")
    p.add_argument("--precision", default=None, help="precision (default: the one the model file records)")
    p.add_argument("--batch-size", type=_int(1), help="images per batch")
    p.add_argument("--data", help="folder of preprocessed .bin tensors (default: random normal input)")
    p.add_argument("--output", required=True, help="folder for profile.json, profile.csv, trace.json, report.html")
    p.add_argument("--threads", type=_int(1), default=None, help="runtime threads (default: all usable CPUs)")
    p.add_argument("--arch", default=None, help="NAME[:TAG] of a .pth's architecture (--backend torch)")
    p.add_argument("--warmup", type=_int(0), help="untimed runs before the timed and the profiled runs")
    p.add_argument("--runs", type=_int(1), help="profiled runs")
    p.add_argument("--timed-runs", type=_int(1),
                   help="un-profiled runs timed for the coverage (their mean is the batch's latency; onnxruntime "
                        "and openvino time them between the profiled runs)")
    p.add_argument("--top", type=_int(1), help="rows of the terminal table")
    _add_accept_preset(p)


def cmd_profile(a) -> int:
    from ..measure.profile import ProfileOptions, profile_model
    from ..report.profiles import terminal_table
    from ..ui import out

    o = ProfileOptions(output=a.output, backend=a.backend, precision=a.precision, batch_size=a.batch_size,
                       data=a.data, threads=a.threads, arch=a.arch, warmup=a.warmup, runs=a.runs,
                       timed_runs=a.timed_runs, accept_preset_mismatch=a.accept_preset_mismatch,
                       command=command_line())
    rec = profile_model(a.model, o)
    nodes, types, coverage = terminal_table(rec, a.top)
    out.print(nodes)
    out.print(types)
    out.print(coverage, markup=False)
    f = rec["files"]
    out.print(f"wrote {f['json']}, {f['csv']}, {f['trace']} (Perfetto, chrome://tracing)", markup=False)
    out.print(f"report: {f['html']}", markup=False)
    return 0
