"""The targets of `clsbench tune` (issue 36), measured in one run on this machine, as ratios:

  winner / PyTorch eager fp32 at the same batch          (target >= 10x, within --max-drop 0.5)
  winner / OpenVINO's THROUGHPUT hint at the same batch  (target >= 1.0x)
  winner's Server peak at the bound / its own Offline    (target >= 0.8, with --latency-bound-ms)
  guided search's best / an exhaustive search's best     (target >= 0.95, in <= 30 % of its time)

on the trained proxy's own task (--images drawn images: the first --calib calibrate int8, the
next --tune tune accuracy control, the rest are the held-out images every candidate is judged
on). Prints a table; every tune's folder (tune.json, report.html) stays under --work.

    .venv/bin/python benchmarks/tune_targets.py [--images 400] [--bound-ms 100] [--work /tmp/tune-targets]
"""
from __future__ import annotations

import argparse
import shutil
import time
from pathlib import Path

from clsbench.data.proxy_task import write_images
from clsbench.flows.tune_flow import TuneOptions, run_tune

PROXY = Path(__file__).resolve().parents[1] / "src" / "clsbench" / "data" / "proxy_mnasnet1_0.pth"


def tune(data: Path, out: Path, **kw) -> tuple[dict, float]:
    t0 = time.monotonic()
    rec = run_tune(str(PROXY), str(data), TuneOptions(output=str(out), **kw))
    return rec, time.monotonic() - t0


def seed_from(src: Path, dst: Path) -> None:
    """The export and the int8 artifacts of an earlier tune (each reused by its own rule), so
    that the exhaustive search's time is its timing, not a second compile."""
    for name in ("export", "compiled"):
        if (src / name).is_dir() and not (dst / name).exists():
            shutil.copytree(src / name, dst / name, symlinks=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--images", type=int, default=400)
    ap.add_argument("--calib", type=int, default=100)
    ap.add_argument("--tune", type=int, default=100)
    ap.add_argument("--bound-ms", type=float, default=100.0)
    ap.add_argument("--percentile", type=float, default=99.0)
    ap.add_argument("--backends", default="onnxruntime,openvino")
    ap.add_argument("--batches", default="1,2,4,8,16,32,64")
    ap.add_argument("--duration", type=float, default=1.0)
    ap.add_argument("--work", default="/tmp/tune-targets")
    ap.add_argument("--skip-exhaustive", action="store_true")
    a = ap.parse_args()
    work = Path(a.work)
    data = work / "data"
    if not (data / "val_label.txt").is_file():
        write_images(data, a.images, seed=4242)
    common = dict(backends=a.backends, batches=a.batches, calib_images=a.calib, tune_images=a.tune,
                  duration=a.duration, max_drop=0.5)
    guided, t_guided = tune(data, work / "guided", **common)
    rows = [("tune (guided), no latency bound", guided, t_guided)]
    bound = None
    if a.bound_ms:
        seed_from(work / "guided", work / "bound")
        bound, t_bound = tune(data, work / "bound", latency_bound_ms=a.bound_ms, percentile=a.percentile, **common)
        rows.append((f"tune at p{a.percentile:g} <= {a.bound_ms:g} ms", bound, t_bound))
    full = None
    if not a.skip_exhaustive:
        seed_from(work / "guided", work / "exhaustive")
        full, t_full = tune(data, work / "exhaustive", exhaustive=True, baselines=False, **common)
        rows.append(("exhaustive, no latency bound", full, t_full))
    report(rows, guided, bound, full)


def timing_seconds(rec: dict) -> float:
    """Seconds a tune spent timing (its first timing's end to its last's, plus the first's
    share): from the try files' measured_at, so that an int8 compile in the accuracy pass
    (done once, reused by the exhaustive run) is not counted against either search."""
    import json

    from clsbench.flows.tune import Candidate

    searched = {c["key"] for c in rec["search"]["candidates"]}  # the baselines' own tries left out
    acc, timed = [], []
    for f in (Path(rec["options"]["output"]) / "tries").glob("*.json"):
        r = json.loads(f.read_text())
        if r["kind"] == "accuracy":
            acc.append(r["measured_at"])
        elif Candidate(**r["candidate"]).key() in searched:
            timed.append(r["measured_at"])
    return max(timed) - max(acc) if timed and acc else float("nan")


def _ratio(rec: dict, name: str, key: str = "offline_ratio") -> str:
    b = (rec or {}).get("baselines", {}).get(name) or {}
    return f"{b[key]:.2f}x" if b.get(key) else "—"


def report(rows, guided: dict, bound: dict | None, full: dict | None) -> None:
    print("\n| run | winner | img/s | QPS at bound | candidates timed | search s | wall s |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for name, rec, wall in rows:
        w = rec["search"]["winner"] or {}
        srv = (w.get("server") or {}).get("peak_qps")
        print(f"| {name} | {w.get('label', 'none')} | {w.get('offline', {}).get('ips', 0):,.1f} | "
              f"{srv if srv is not None else '—'} | {rec['search']['timed']} of {rec['search']['space_size']} | "
              f"{rec['search']['seconds']:.0f} | {wall:.0f} |")
    print("\n| target | measured |")
    print("|---|---:|")
    print(f"| winner / PyTorch eager fp32, same batch (>= 10x) | {_ratio(guided, 'pytorch_eager_fp32')} |")
    print(f"| winner / ONNX Runtime defaults, same batch | {_ratio(guided, 'onnxruntime_defaults')} |")
    print(f"| winner / OpenVINO THROUGHPUT hint, same batch (>= 1.0x) | {_ratio(guided, 'openvino_throughput_hint')} |")
    if bound and bound["search"]["winner"] and bound["search"]["winner"].get("server"):
        w = bound["search"]["winner"]
        print(f"| at the bound: winner / OpenVINO THROUGHPUT hint, Server QPS (>= 1.0x) | "
              f"{_ratio(bound, 'openvino_throughput_hint', 'server_ratio')} |")
        print(f"| at the bound: Server peak / own Offline (>= 0.8) | "
              f"{w['server']['peak_qps'] / w['offline']['ips']:.2f} |")
    if full and full["search"]["winner"]:
        g, f = guided["search"], full["search"]
        print(f"| guided best / exhaustive best (>= 0.95) | {g['winner']['value'] / f['winner']['value']:.2f} |")
        tg, tf = timing_seconds(guided), timing_seconds(full)
        print(f"| guided search time / exhaustive (<= 0.30) | {tg / tf:.2f} ({tg:.0f} s vs {tf:.0f} s of timing; "
              f"{g['timed']} vs {f['timed']} candidates timed) |")


if __name__ == "__main__":
    main()
