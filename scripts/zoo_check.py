"""Export and check every torchvision classifier once; write docs/zoo.md (not in CI).

    .venv/bin/python scripts/zoo_check.py [--tags default|all] [--only NAME ...] [--work DIR]

For each architecture (its DEFAULT weights, or every weights entry with --tags all):
realistic weights (BatchNorm statistics re-estimated on real photos, classifier rescaled;
the official files cannot be downloaded here), `clsbench export` with its parity check
against PyTorch float64 on real photos, then ONNX Runtime fp32 compute-only img/s at batch
1 and 32 on this machine (median of timed runs within a time cap; a batch whose single run
would take longer than the cap is left out and says so). Resumable: finished models are
kept in WORK/zoo.jsonl and skipped on a rerun.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")


def rate(model: str, bs: int, crop: int, cap_s: float) -> float | str:
    from clsbench.runtime.backends import open_backend

    rt = open_backend("onnxruntime", model, batch_size=bs)
    x = np.random.default_rng(0).standard_normal((bs, 3, crop, crop), dtype=np.float32)
    t0 = time.perf_counter()
    rt.run(x)  # warm-up, and the estimate of one run
    one = time.perf_counter() - t0
    if one > cap_s:
        return f"> {cap_s:.0f} s per run"
    times = []
    t_end = time.perf_counter() + cap_s
    while time.perf_counter() < t_end or len(times) < 3:
        t0 = time.perf_counter()
        rt.run(x)
        times.append(time.perf_counter() - t0)
    return bs / statistics.median(times)


def check(key: str, work: Path, photos: str, cap_s: float) -> dict:
    from clsbench.flows.demo import calibration_batch
    from clsbench.compile.export import export_onnx
    from clsbench.model.table import get_model
    from clsbench.model.stand_in import save_realistic_weights

    spec = get_model(key)
    d = work / key.replace(":", "_")
    d.mkdir(parents=True, exist_ok=True)
    w = d / "w.pth"
    t0 = time.perf_counter()
    save_realistic_weights(spec, calibration_batch(spec.preprocessing, n=4 if spec.params > 1e8 else 8), str(w))
    t1 = time.perf_counter()
    rec = export_onnx(str(w), str(d / "m.onnx"), model=key, parity_images=photos,
                      parity_batch=1 if spec.params > 3e8 else 2, check=False)
    t2 = time.perf_counter()
    size = sum(f.stat().st_size for f in d.iterdir() if f.name.startswith("m.onnx"))
    row = {"key": key, "weights_s": round(t1 - t0, 1), "export_s": round(t2 - t1, 1), "onnx_mb": size / 2**20,
           "opset": rec["opset"], "passed": rec["passed"], "reasons": rec["parity"]["reasons"],
           "rel_l2": rec["parity"]["rel_l2_error"], "bound": rec["parity"]["bound_rel_l2_error"],
           "fp32_rel_l2": rec["parity"]["torch_fp32_vs_float64"]["rel_l2_error"],
           "top1_agreement": rec["parity"]["top1_agreement"], "preset": spec.preprocessing.describe(),
           "gflops": spec.gflops, "params": spec.params}
    for bs in (1, 32):
        row[f"ort_bs{bs}"] = rate(str(d / "m.onnx"), bs, spec.preprocessing.crop, cap_s)
    for f in d.iterdir():  # keep the disk free: the table is the result
        f.unlink()
    return row


def fmt(v) -> str:
    return f"{v:.1f}" if isinstance(v, float) else str(v)


def write_doc(rows: list[dict], out: Path, cap_s: float, total: int) -> None:
    from clsbench.runtime.timing import environment

    env = environment()
    ok = sum(r["passed"] for r in rows)
    lines = ["# The torchvision zoo through clsbench", "",
             f"`scripts/zoo_check.py` on {env['cpu']} ({env['logical_cpus']} CPUs), onnxruntime "
             f"{env.get('onnxruntime')}, clsbench {env['clsbench']}: realistic weights (BatchNorm re-estimated "
             f"on real photos, classifier rescaled: the official files cannot be downloaded here), export with "
             f"clsbench's parity check against PyTorch float64 on real photos, then ONNX Runtime fp32 "
             f"compute-only img/s (random input, all threads, median of runs within {cap_s:.0f} s).", "",
             f"**{ok} of {len(rows)} checked exported and passed the parity check**"
             + (f" ({total - len(rows)} of {total} not run yet: rerun the script to continue)." if total > len(rows)
                else "."), "",
             "| model:weights | preset | opset | export s | ONNX MB | rel. L2 vs float64 (bound) | top-1 agr. | "
             "GFLOPS | ORT img/s bs1 | ORT img/s bs32 | verdict |",
             "|---|---|---:|---:|---:|---|---:|---:|---:|---:|---|"]
    for r in rows:
        verdict = "pass" if r["passed"] else "FAIL: " + "; ".join(r["reasons"])
        lines.append(f"| {r['key']} | {r['preset']} | {r['opset']} | {r['export_s']} | {r['onnx_mb']:.0f} | "
                     f"{r['rel_l2']:.1e} ({r['bound']:.1e}) | {r['top1_agreement']:.0%} | {r['gflops']} | "
                     f"{fmt(r['ort_bs1'])} | {fmt(r['ort_bs32'])} | {verdict} |")
    out.write_text("\n".join(lines) + "\n")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tags", choices=("default", "all"), default="default")
    ap.add_argument("--only", nargs="*", help="architectures to run now (the doc keeps every row)")
    ap.add_argument("--redo", action="store_true", help="with --only: measure them again")
    ap.add_argument("--work", default="/tmp/clsbench-zoo")
    ap.add_argument("--cap", type=float, default=8.0, help="seconds of timing per batch size")
    ap.add_argument("--out", default=str(ROOT / "docs" / "zoo.md"))
    a = ap.parse_args()
    from clsbench.model.table import all_models, default_tag

    from clsbench.flows.demo import build_demo_dataset

    work = Path(a.work)
    work.mkdir(parents=True, exist_ok=True)
    photos = str(build_demo_dataset(work / "photos", per_class=1) / "val")
    all_keys = [s.key for s in all_models() if a.tags == "all" or s.tag == default_tag(s.name)]
    keys = [k for k in all_keys if not a.only or k.split(":")[0] in a.only]  # --only: what runs now
    done_file = work / "zoo.jsonl"
    rows = {json.loads(l)["key"]: json.loads(l) for l in done_file.read_text().splitlines()} if done_file.exists() else {}
    for i, key in enumerate(keys):
        if key in rows and not (a.only and a.redo):
            continue
        print(f"[{i + 1}/{len(keys)}] {key}", flush=True)
        try:
            row = check(key, work, photos, a.cap)
        except Exception as e:  # one model's failure is a row of the table, not the end of the run
            row = {"key": key, "passed": False, "reasons": [f"{type(e).__name__}: {str(e)[:300]}"],
                   "export_s": "", "onnx_mb": 0.0, "opset": "", "rel_l2": float("nan"), "bound": float("nan"),
                   "top1_agreement": 0.0, "gflops": "", "ort_bs1": "", "ort_bs32": "", "preset": ""}
        rows[key] = row
        done_file.write_text("".join(json.dumps(r) + "\n" for r in rows.values()))
        print(f"    {'pass' if row['passed'] else 'FAIL'} {row.get('export_s')} s export, "
              f"bs1 {fmt(row.get('ort_bs1'))}, bs32 {fmt(row.get('ort_bs32'))} img/s", flush=True)
        write_doc([rows[k] for k in all_keys if k in rows], Path(a.out), a.cap, len(all_keys))  # resumable
    write_doc([rows[k] for k in all_keys if k in rows], Path(a.out), a.cap, len(all_keys))
    print(f"wrote {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
