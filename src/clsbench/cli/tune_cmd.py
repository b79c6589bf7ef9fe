"""The `clsbench tune` command: its parser (`add_parser`) and its call-and-print function
(`cmd_tune`). Registered by `cli.commands`."""
from __future__ import annotations

from .args import _int, _real, command_line


def add_parser(command) -> None:
    p = command("tune", help="the fastest deployment that keeps its accuracy and meets its latency",
                description="Searches backend x precision (int8 through accuracy control) x batch x parallelism "
                            "for the highest throughput whose Top-1 on held-out labelled images stays within "
                            "--max-drop of fp32 and, with --latency-bound-ms, the highest LoadGen Server QPS "
                            "meeting the bound. A candidate over the accuracy bound is never timed; the batch "
                            "doubles until a bound breaks; parallelism hill-climbs from the runtime's default. "
                            "Resumable: a killed tune measures only what is missing. Writes tune.json and "
                            "report.html, and prints the winner's commands.")
    p.add_argument("--weights", required=True, help="PyTorch weights (.pth) or an fp32 ONNX, as `run` takes")
    p.add_argument("--data", required=True, help="labelled images (val/ + val_label.txt, or class folders): the "
                                                 "first calibrate, the next tune accuracy control, the rest judge")
    p.add_argument("--model", default=None, help="NAME[:TAG] of the architecture (as run's --model)")
    p.add_argument("--max-drop", type=_real(0), help="Top-1 points a candidate may lose against fp32 (default 0.5)")
    p.add_argument("--latency-bound-ms", type=_real(0, strict=True), default=None,
                   help="rank by the highest LoadGen Server QPS whose --percentile latency meets this bound")
    p.add_argument("--percentile", type=_real(0, strict=True), help="the latency percentile (default 99)")
    p.add_argument("--backends", help="comma-separated backends to search (default onnxruntime,openvino)")
    p.add_argument("--batches", help="batch sizes, ascending (default 1,2,4,8,16,32,64)")
    p.add_argument("--budget-min", type=_real(0, strict=True), default=None,
                   help="stop after this many minutes with the best so far")
    p.add_argument("--calib-images", type=_int(1), help="images that calibrate int8 (default 100)")
    p.add_argument("--tune-images", type=_int(1), help="images accuracy control tunes on (default 100)")
    p.add_argument("--duration", type=_real(0, strict=True), help="seconds each candidate is timed (default 1)")
    p.add_argument("--repeats", type=_int(1), help="windows each timing's median is taken over (default 3)")
    p.add_argument("--peak-steps", type=_int(0), help="bisection steps of each Server peak search (default 3)")
    p.add_argument("--loadgen-duration", dest="lg_duration", type=_real(0, strict=True),
                   help="minimum seconds of each LoadGen try (default 1)")
    p.add_argument("--exhaustive", action="store_true", help="time every candidate (to check the search)")
    p.add_argument("--no-baselines", action="store_true",
                   help="skip PyTorch eager, ONNX Runtime's defaults and OpenVINO's THROUGHPUT hint")
    p.add_argument("--output", help="output folder (default ./tune)")


def cmd_tune(a) -> int:
    from ..flows.tune_flow import TuneOptions, run_tune
    from ..ui import out

    o = TuneOptions(model=a.model, max_drop=a.max_drop, latency_bound_ms=a.latency_bound_ms,
                    percentile=a.percentile, backends=a.backends, batches=a.batches, budget_min=a.budget_min,
                    output=a.output, calib_images=a.calib_images, tune_images=a.tune_images, duration=a.duration,
                    repeats=a.repeats, peak_steps=a.peak_steps, lg_duration=a.lg_duration,
                    exhaustive=a.exhaustive, baselines=not a.no_baselines, command=command_line())
    rec = run_tune(a.weights, a.data, o)
    print_tune(rec)
    out.print(f"report: {rec['report']}", markup=False)
    return 0 if rec["search"]["winner"] else 1


def _f(v, fmt: str = ",.1f") -> str:
    return "—" if v is None else format(v, fmt)


def print_tune(rec: dict) -> None:
    """Every candidate timed (Top-1, drop ± margin, offline img/s, QPS at the bound, the
    batch's latency), the variants never timed, the winner, its ratios and its commands."""
    from rich.table import Table

    from ..ui import out

    s, o = rec["search"], rec["options"]
    pct = f"p{o['percentile']:g}"
    t = Table(title=f"tune: {len(s['candidates'])} candidates timed of {s['space_size']} "
                    f"({s['stopped']}; {rec['measured']} measured, {rec['reused']} read back)")
    bound = o.get("latency_bound_ms") is not None  # without a bound there is no Server column
    cols = ("candidate", "Top-1 %", "drop ± margin", "img/s") + ((f"QPS at {pct} <= bound",) if bound else ()) \
        + (f"{pct} ms a batch",)
    for col in cols:
        t.add_column(col, justify="left" if col == "candidate" else "right")
    for r in s["candidates"]:
        told = "" if r.get("confident", True) else " (cannot be told from over the bound)"
        t.add_row(r["label"], _f(r["top1"], ".2f"), f"{r['drop']:+.2f} ± {r['margin']:.2f}{told}", _f(r["ips"]),
                  *((_f(r["server_qps"]),) if bound else ()), _f(r["latency_ms"], ".2f"))
    out.print(t)
    for v, a in s["accuracy"].items():
        if not a["passed"]:
            out.print(f"never timed: {v} — Top-1 {a['top1']:.2f} %, drop {a['drop']:+.2f} ± {a['margin']:.2f} "
                      f"points: {a['verdict']}", markup=False)
    w = s["winner"]
    if not w:
        out.print(_no_winner(rec), markup=False)
        return
    out.print(f"winner: {w['label']} — {w['offline']['ips']:,.1f} img/s offline"
              + (f", {_f(w['server']['peak_qps'])} QPS at {pct} <= {o['latency_bound_ms']:g} ms"
                 if w.get("server") else ""), markup=False)
    for name, b in rec["baselines"].items():
        if b.get("error"):
            out.print(f"  {name}: not measured ({b['error']})", markup=False)
        elif b.get("offline_ratio"):
            out.print(f"  {b['offline_ratio']:.2f}x {name} ({b['label']}: {b['offline']['ips']:,.1f} img/s)"
                      + (f"; Server {b['server_ratio']:.2f}x" if b.get("server_ratio") else ""), markup=False)
    for name, cmd in rec["winner_commands"].items():
        out.print(f"{name}: {cmd}", markup=False)


def _no_winner(rec: dict) -> str:
    """Why there is no winner: the budget ran out first (what to type), or nothing met both bounds."""
    s, o = rec["search"], rec["options"]
    if s["stopped"] == "budget":
        return (f"no winner: the --budget-min {o['budget_min']:g} budget ran out after {len(s['candidates'])} "
                f"candidate(s) timed, none meeting the bounds; give a larger --budget-min (a rerun reads back "
                f"what was measured)")
    lat = [r["latency_ms"] for r in s["candidates"] if r.get("latency_ms") is not None]
    if o.get("latency_bound_ms") is not None and lat and min(lat) > o["latency_bound_ms"]:
        return (f"no winner: no candidate meets p{o['percentile']:g} <= {o['latency_bound_ms']:g} ms (the quickest "
                f"batch took {min(lat):.2f} ms); give a --latency-bound-ms above {min(lat):.2f}")
    if s["accuracy"] and not any(a.get("passed") for a in s["accuracy"].values()):
        return (f"no winner: every variant is over --max-drop {o['max_drop']:g} ({', '.join(s['accuracy'])}); give a "
                f"larger --max-drop, or --backends with more variants")
    return "no candidate meets both bounds"
