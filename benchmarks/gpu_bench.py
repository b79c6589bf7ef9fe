#!/usr/bin/env python3
"""MnasNet1.0 on one NVIDIA GPU, measured in one unattended run (benchmarks/gpu.sh calls it).

Prints and writes to OUT (gpu.md, gpu.json):
  1. the machine: GPU, driver, CUDA, cuDNN, torch, CPUs;
  2. parity of every GPU precision (fp32/fp16/bf16) against PyTorch fp32 on the CPU, on the
     trained proxy and its own task's images (accuracy with both);
  3. compute-only img/s and latency p50/p99 per batch size (1 ... 1024) per precision and mode
     (eager, CUDA graph, torch.compile under a graph): uint8 input already on the GPU,
     normalization + model timed with CUDA events, 3 timed repeats of >= 0.25 s, median;
  4. the pixel difference and top-1 agreement of the GPU decode path vs the exact path;
  5. end to end JPEG -> result.json through `clsbench run --stream --backend cuda` with the
     exact CPU decode (all cores) and with --decode gpu, on generated ImageNet-like JPEGs.
Stays inside --budget-s (cells left out are listed, never silently dropped).

    PYTHONPATH=src python3 benchmarks/gpu_bench.py --out perf-gpu
    PYTHONPATH=src python3 benchmarks/gpu_bench.py --out /tmp/smoke --device cpu --smoke   # CPU check
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "benchmarks"))

import numpy as np  # noqa: E402

WEIGHTS = ROOT / "src/clsbench/data/proxy_mnasnet1_0.pth"
BATCHES = (1, 8, 32, 64, 128, 256, 512, 1024)
COMPILE_BATCHES = (1, 64, 256, 1024)  # inductor compiles each batch size: 10-17 s on an H100


def log(*a):
    print(*a, flush=True)


def machine(torch, device) -> dict:
    m = {"torch": torch.__version__, "cpus": os.cpu_count(), "python": sys.version.split()[0]}
    try:
        import torchvision
        m["torchvision"] = torchvision.__version__
    except ImportError:
        pass
    if device == "cuda":
        p = torch.cuda.get_device_properties(0)
        m.update(gpu=p.name, sm_count=p.multi_processor_count, memory_gib=round(p.total_memory / 2**30, 1),
                 cuda=torch.version.cuda, cudnn=torch.backends.cudnn.version())
        try:
            m["driver"] = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                                         capture_output=True, text=True, timeout=20).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            m["driver"] = "?"
    return m


# --smoke: the script's every path on tiny work (a CPU check, not a measurement): runtimes of
# this batch instead of 64, one timed repeat of a few runs, the profile at batch 1
SMOKE = {"on": False, "batch": 8}


def rt_batch(bs: int = 64) -> int:
    return SMOKE["batch"] if SMOKE["on"] else bs


def open_cuda(device, bs, precision, mode):
    from clsbench.runtime.backends import open_backend

    return open_backend("cuda", str(WEIGHTS), batch_size=bs, precision=precision, mode=mode, device=device,
                        arch="mnasnet1_0")


def exact_crops(paths, pp, workers):
    from concurrent.futures import ProcessPoolExecutor
    from functools import partial

    from clsbench.data.preprocess import crop_chw

    with ProcessPoolExecutor(workers) as ex:
        return np.stack(list(ex.map(partial(crop_chw, pp=pp), paths, chunksize=16)))


def logits_of(rt, crops):
    outs = [out for out in rt.pipelined(_padded(crops, rt.batch_size))]
    return np.concatenate(outs)[:len(crops)]


def _padded(crops, bs):
    for i in range(0, len(crops), bs):
        b = crops[i:i + bs]
        if len(b) < bs:
            b = np.concatenate([b, np.repeat(b[-1:], bs - len(b), 0)])
        yield b


def parity_section(device, n, workdir, workers) -> dict:
    from clsbench.runtime.backends.torch import TorchBackend
    from clsbench.compile.export import parity
    from clsbench.model.table import get_model
    from clsbench.data.preprocess import normalize_batch
    from clsbench.data.proxy_task import write_images

    pp = get_model("mnasnet1_0").preprocessing
    pairs = write_images(workdir / "proxy", n, seed=7)
    crops = exact_crops([workdir / "proxy/val" / p for p, _ in pairs], pp, workers)
    y = np.array([k for _, k in pairs])
    ref = TorchBackend(str(WEIGHTS), arch="mnasnet1_0", batch_size=n)
    r = ref.run(normalize_batch(crops, pp))
    rows = {"reference": f"PyTorch fp32 on the CPU, {n} proxy-task images (exact preprocessing)",
            "reference_top1": float((r.argmax(1) == y).mean() * 100)}
    for prec in ("fp32", "fp16", "bf16"):
        got = logits_of(open_cuda(device, rt_batch(), prec, "graph" if device == "cuda" else "eager"), crops)
        rows[prec] = {**parity(r, got), "top1": float((got.argmax(1) == y).mean() * 100)}
    return rows


def time_cell(torch, rt, device, min_s=0.25, repeats=3) -> dict:
    """uint8 input already on the device: normalization + model, CUDA-event timed."""
    rt.in_u8.copy_(torch.randint(0, 256, rt.in_u8.shape, dtype=torch.uint8, device=rt.dev))
    run = rt._runner("u8")[0]
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    if SMOKE["on"]:
        min_s, repeats = 0.0, 1
    for _ in range(1 if SMOKE["on"] else 3):
        run()
    sync()
    t0 = time.perf_counter()
    run()
    sync()
    iters = max(1 if SMOKE["on"] else 3, min(2000, int(min_s / max(time.perf_counter() - t0, 1e-5))))
    rates, lat = [], []
    for _ in range(repeats):
        if device == "cuda":
            ev = [torch.cuda.Event(enable_timing=True) for _ in range(iters + 1)]
            ev[0].record()
            for i in range(iters):
                run()
                ev[i + 1].record()
            sync()
            ms = [ev[i].elapsed_time(ev[i + 1]) for i in range(iters)]
        else:
            ms = []
            for _ in range(iters):
                t = time.perf_counter()
                run()
                ms.append((time.perf_counter() - t) * 1e3)
        rates.append(rt.batch_size * iters / (sum(ms) / 1e3))
        lat += ms
    return {"img_s": float(np.median(rates)), "p50_ms": float(np.percentile(lat, 50)),
            "p99_ms": float(np.percentile(lat, 99)), "iters": iters * repeats}


def sweep_section(torch, device, plan, deadline) -> tuple[list, list]:
    """Time every (precision, mode, batch) cell of `plan` while the budget lasts."""
    cells, skipped = [], []
    if device != "cuda":
        plan = [c for c in plan if c[1] == "eager"]
    for prec, mode, bs in plan:
        if time.monotonic() > deadline - (60 if mode == "compile" else 0):
            skipped.append(f"{prec} {mode} bs{bs}: out of the time budget")
            continue
        try:
            t0 = time.perf_counter()
            rt = open_cuda(device, bs, prec, mode)
            setup = time.perf_counter() - t0
            cell = {"precision": prec, "mode": mode, "batch": bs, **time_cell(torch, rt, device),
                    "setup_s": round(setup, 2), "compile_s": rt.compile_s}
            cells.append(cell)
            log(f"  {prec:5s} {mode:7s} bs{bs:<5d} {cell['img_s']:10.0f} img/s  p50 {cell['p50_ms']:.3f} ms"
                f"  p99 {cell['p99_ms']:.3f} ms" + (f"  compile {rt.compile_s:.0f} s" if rt.compile_s else ""))
            del rt
        except Exception as e:  # noqa: BLE001 - one failing cell must not lose the others
            skipped.append(f"{prec} {mode} bs{bs}: {type(e).__name__}: {str(e).splitlines()[0][:200]}")
            log("  skipped", skipped[-1])
        if device == "cuda":
            torch.cuda.empty_cache()
    return cells, skipped


def profile_section(torch, device, bs=256) -> dict:
    """Where fp16 eager time goes at one batch size: CUDA kernel time by kind (torch.profiler)."""
    from torch.profiler import ProfilerActivity, profile

    cuda = device == "cuda"
    # --smoke on a CPU: fp32 (fp16 convolutions there take seconds an image; parity covers fp16)
    rt = open_cuda(device, bs, "fp32" if SMOKE["on"] and device != "cuda" else "fp16", "eager")
    rt.in_u8.copy_(torch.randint(0, 256, rt.in_u8.shape, dtype=torch.uint8, device=rt.dev))
    run = rt._runner("u8")[0]
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    warm, reps = (1, 1) if SMOKE["on"] else (3, 5)
    for _ in range(warm):
        run()
    sync()
    with profile(activities=[ProfilerActivity.CUDA if cuda else ProfilerActivity.CPU]) as prof:
        for _ in range(reps):
            run()
        sync()
    kinds: dict = {}
    for ev in prof.key_averages():
        us = (getattr(ev, "device_time_total", 0) or getattr(ev, "cuda_time_total", 0)) if cuda else \
            (ev.self_cpu_time_total if ev.key.startswith("aten::") else 0)
        if not us or (cuda and ev.key.startswith(("aten::", "cuda", "Memcpy", "Memset"))):
            continue
        k = ev.key.lower()
        kind = ("depthwise conv" if "depthwise" in k or "dw" in k.split("_") else
                "conv (cuDNN)" if any(w in k for w in ("conv", "xmma", "sm90", "implicit", "gemm", "cutlass")) else
                "batchnorm" if "batch_norm" in k or "bn_" in k or "batchnorm" in k else
                "elementwise" if "elementwise" in k or "vectorized" in k or "unrolled" in k else "other")
        kinds.setdefault(kind, [0.0, 0, []])
        kinds[kind][0] += us / reps
        kinds[kind][1] += ev.count // reps
        kinds[kind][2].append((us / 5, ev.key[:90]))
    total = sum(v[0] for v in kinds.values())
    return {"batch": bs, "precision": "fp16", "mode": "eager", "kernel_us_per_batch": total,
            "kinds": {k: {"us": v[0], "share": v[0] / total, "kernels": v[1],
                          "top": [n for _, n in sorted(v[2], reverse=True)[:3]]} for k, v in kinds.items()}}


def make_jpegs(root: Path, n: int, distinct: int, workers: int) -> Path:
    """ImageNet-val-like JPEGs (benchmarks/e2e.py's generator), `distinct` encoded in parallel."""
    from concurrent.futures import ProcessPoolExecutor

    import e2e

    step = -(-distinct // workers)
    with ProcessPoolExecutor(workers) as ex:
        list(ex.map(_make_part, [(str(root), i, min(i + step, distinct)) for i in range(0, distinct, step)]))
    return e2e.make_dataset(root, n, distinct, noise=6.0)


def _make_part(a):
    import e2e

    root, lo, hi = a
    part = Path(root) / f"part{lo}"
    e2e.make_dataset(part, hi - lo, hi - lo, noise=6.0, seed=lo)
    (Path(root) / "val").mkdir(parents=True, exist_ok=True)
    for i, p in enumerate(sorted((part / "val").iterdir())):
        dst = Path(root) / "val" / f"ILSVRC2012_val_{lo + i + 1:08d}.JPEG"
        if not dst.exists():
            os.replace(p, dst)


def decode_section(torch, device, data: Path, n, workers) -> dict:
    """GPU decode vs the exact path on `n` distinct images: pixels and top-1 (fp32 and fp16)."""
    from clsbench.runtime.gpudecode import DeviceDecoder
    from clsbench.model.table import get_model

    pp = get_model("mnasnet1_0").preprocessing
    paths = sorted((data / "val").iterdir())[:n]
    exact = exact_crops(paths, pp, workers)
    dec = DeviceDecoder(pp, device)
    blobs = [p.read_bytes() for p in paths]
    gpu = torch.cat([dec(blobs[i:i + 256], [str(p) for p in paths[i:i + 256]])
                     for i in range(0, n, 256)]).cpu().numpy()
    d = np.abs(exact.astype(np.int16) - gpu.astype(np.int16))
    rec = {"images": n, "mean_abs_diff": float(d.mean()), "max_abs_diff": int(d.max()),
           "p99_abs_diff": float(np.percentile(d, 99)), "values_differing": float((d > 0).mean()),
           "values_off_by_more_than_2": float((d > 2).mean())}
    # --smoke on a CPU: fp32 only (fp16 convolutions there take most of a second an image)
    for prec in ("fp32",) if SMOKE["on"] and device != "cuda" else ("fp32", "fp16"):
        rt = open_cuda(device, rt_batch(), prec, "graph" if device == "cuda" else "eager")
        a, b = logits_of(rt, exact), logits_of(rt, gpu)
        rec[f"top1_agreement_{prec}"] = float((a.argmax(1) == b.argmax(1)).mean())
    # decode throughput alone (files already in memory), the GPU path's ceiling
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    sync()
    t0 = time.perf_counter()
    for i in range(0, n, 256):
        dec(blobs[i:i + 256], [""] * len(blobs[i:i + 256]))
    sync()
    rec["gpu_decode_only_img_s"] = n / (time.perf_counter() - t0)
    return rec


def _e2e_run(data, workdir, decode, batch, opts, precision):
    from clsbench.flows.run import RunOptions, run

    return run(str(WEIGHTS), str(data), RunOptions(
        backend="cuda", precision=precision, batch_size=batch, stream=True, decode=decode,
        work_dir=str(workdir / f"run-{decode}"), overwrite=True, show_progress=False,
        backend_options=opts))


def e2e_section(data: Path, workdir: Path, device, batch, deadline, precision="fp16") -> list:
    rows = []
    opts = {} if device == "cuda" else {"device": "cpu", "mode": "eager"}
    for decode in ("cpu", "gpu"):
        if time.monotonic() > deadline:
            rows.append({"decode": decode, "skipped": "out of the time budget"})
            continue
        t0 = time.perf_counter()
        try:
            s = _e2e_run(data, workdir, decode, batch, opts, precision)
        except Exception as e:  # noqa: BLE001 - the other decode path still runs
            rows.append({"decode": decode, "skipped": f"{type(e).__name__}: {str(e).splitlines()[0][:300]}"})
            log("  e2e", rows[-1])
            continue
        wall = time.perf_counter() - t0
        perf = json.loads(next((workdir / f"run-{decode}/result").glob("perf_*.json")).read_text())

        st = perf["stages"]
        rows.append({"decode": decode, "precision": precision, "images": perf["samples"], "command_wall_s": round(wall, 2),
                     "stream_img_s": st["e2e"]["throughputRate"],
                     "stage_s": {k: round(v.get("moduleLatency", 0) * perf["samples"] / 1e3, 2)
                                 for k, v in st.items() if k != "e2e"},
                     "result_json": str(workdir / f"run-{decode}/result.json"),
                     "result_images": s["accuracy"]["images"], "layout": perf["backend"].get("layout")})
        log(f"  e2e decode={decode}: {rows[-1]['stream_img_s']:.0f} img/s over {perf['samples']} images "
            f"(command {wall:.1f} s)")
    if all("skipped" not in r for r in rows):
        rows.append(_agreement(workdir))
    return rows


def _agreement(workdir: Path, n: int = 2048) -> dict:
    """Top-1 agreement of the two decode paths' written outputs on a sample (a race or a
    mix-up of outputs would show as disagreement far beyond the decode difference)."""
    from clsbench.runtime.outputs import load_scores

    a_dir, b_dir = (workdir / f"run-{d}/result/dumpOutput_device0" for d in ("cpu", "gpu"))
    pick = sorted(os.listdir(a_dir))[:n]  # the first images are the distinct ones
    same = sum(int(load_scores(a_dir / f).argmax() == load_scores(b_dir / f).argmax()) for f in pick)
    return {"decode": "agreement", "sampled": len(pick), "top1_agreement": same / len(pick)}


def markdown(rec: dict) -> str:
    m = rec["machine"]
    out = [f"# MnasNet1.0 on {m.get('gpu', m.get('device', '?'))}", "",
           f"torch {m['torch']}, torchvision {m.get('torchvision', '?')}, CUDA {m.get('cuda', '-')}, "
           f"cuDNN {m.get('cudnn', '-')}, driver {m.get('driver', '-')}, {m['cpus']} CPUs, "
           f"Python {m['python']}. Weights: the trained proxy (src/clsbench/data/proxy_mnasnet1_0.pth). "
           f"Command: `{rec['command']}`; total {rec['total_s']:.0f} s.", ""]
    p = rec.get("parity")
    if p:
        out += ["## Parity vs PyTorch fp32 on the CPU", "", p["reference"] + f"; its Top-1 {p['reference_top1']:.1f} %", "",
                "| precision | rel. L2 error | max abs | top-1 agreement | top-5 set agreement | Top-1 % |",
                "|---|---|---|---|---|---|"]
        for k in ("fp32", "fp16", "bf16"):
            if k in p:
                r = p[k]
                out.append(f"| {k} | {r['rel_l2_error']:.2e} | {r['max_abs_error']:.3g} | {r['top1_agreement']:.1%} "
                           f"| {r['top5_set_agreement']:.1%} | {r['top1']:.1f} |")
        out.append("")
    cells = rec.get("compute", [])
    if cells:
        out += ["## Compute only (uint8 batch on the GPU; normalization + model; CUDA events)", "",
                "img/s (median of 3 timed repeats) · p50 / p99 ms per batch, back to back", ""]
        cols = sorted({(c["precision"], c["mode"]) for c in cells}, key=lambda pm: (pm[1] != "graph", pm))
        out.append("| batch | " + " | ".join(f"{p} {m}" for p, m in cols) + " |")
        out.append("|---" * (len(cols) + 1) + "|")
        by = {(c["precision"], c["mode"], c["batch"]): c for c in cells}
        for b in sorted({c["batch"] for c in cells}):
            row = []
            for p_, m_ in cols:
                c = by.get((p_, m_, b))
                row.append(f"{c['img_s']:,.0f} · {c['p50_ms']:.2f}/{c['p99_ms']:.2f}" if c else "–")
            out.append(f"| {b} | " + " | ".join(row) + " |")
        best = max(cells, key=lambda c: c["img_s"])
        out += ["", f"Best: **{best['img_s']:,.0f} img/s** ({best['precision']} {best['mode']}, batch {best['batch']})."]
        comp = [c for c in cells if c.get("compile_s")]
        if comp:
            out.append("torch.compile time per batch size: " +
                       ", ".join(f"bs{c['batch']} {c['compile_s']:.0f} s" for c in comp) + ".")
        out.append("")
    pr = rec.get("profile")
    if pr:
        out += [f"## Where the time goes: fp16 eager, batch {pr['batch']} (torch.profiler, CUDA kernels)", "",
                f"{pr['kernel_us_per_batch'] / 1e3:.2f} ms of kernels per batch "
                f"({pr['batch'] / pr['kernel_us_per_batch'] * 1e6:,.0f} img/s if nothing else ran)", "",
                "| kind | share | ms per batch | kernels per batch | largest |", "|---|---|---|---|---|"]
        for k, v in sorted(pr["kinds"].items(), key=lambda kv: -kv[1]["us"]):
            out.append(f"| {k} | {v['share']:.0%} | {v['us'] / 1e3:.2f} | {v['kernels']} | {'; '.join(v['top'][:2])} |")
        out.append("")
    d = rec.get("decode")
    if d:
        out += ["## GPU decode vs the exact path", "",
                f"{d['images']} generated JPEGs: mean |Δ| {d['mean_abs_diff']:.3f} levels, p99 {d['p99_abs_diff']:.0f}, "
                f"max {d['max_abs_diff']}; {d['values_differing']:.1%} of values differ, "
                f"{d['values_off_by_more_than_2']:.2%} by more than 2. Top-1 agreement with the exact path: "
                + ", ".join(f"{k} {d[f'top1_agreement_{k}']:.1%}" for k in ("fp32", "fp16") if f"top1_agreement_{k}" in d)
                + ". "
                f"Decode+resize+crop alone: {d['gpu_decode_only_img_s']:,.0f} img/s.", ""]
    e = rec.get("e2e")
    if e:
        prec = next((r["precision"] for r in e if "precision" in r), "fp16")
        out += [f"## End to end: JPEG → result.json (`clsbench run --stream --backend cuda --precision {prec}`)", "",
                "| decode | images | img/s (stream) | command wall s | decode s | infer s | post s |", "|---|---|---|---|---|---|---|"]
        for r in e:
            if r["decode"] == "agreement":
                out.append(f"| top-1 agreement of the two paths' outputs | {r['sampled']} sampled | "
                           f"{r['top1_agreement']:.1%} | | | | |")
                continue
            if "skipped" in r:
                out.append(f"| {r['decode']} | skipped: {r['skipped']} | | | | | |")
                continue
            s = r["stage_s"]
            out.append(f"| {r['decode']} | {r['images']} | {r['stream_img_s']:,.0f} | {r['command_wall_s']} | "
                       f"{s.get('data read', 0)} | {s.get('infer', 0)} | {s.get('post', 0)} |")
        out.append("")
    if rec.get("skipped"):
        out += ["Left out: " + "; ".join(rec["skipped"]), ""]
    return "\n".join(out)


def _csv(kind):
    return lambda text: tuple(kind(x) for x in text.split(",") if x)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True)
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--budget-s", type=float, default=300)
    ap.add_argument("--images", type=int, default=32768, help="end-to-end JPEGs (hard links to --distinct)")
    ap.add_argument("--distinct", type=int, default=1024)
    ap.add_argument("--smoke", action="store_true", help="tiny sizes: checks the script, not the GPU")
    ap.add_argument("--sections", type=_csv(str), default="parity,compute,profile,decode,e2e,compiled")
    ap.add_argument("--precisions", type=_csv(str), default="fp16,bf16,fp32")
    ap.add_argument("--modes", type=_csv(str), default="graph",
                    help="modes timed for every precision and batch (graph, eager)")
    ap.add_argument("--eager-batches", type=_csv(int), default="1,64,256,1024",
                    help="fp16 eager cells beside the graph ones (the launch-overhead comparison)")
    ap.add_argument("--batches", type=_csv(int), default=",".join(map(str, BATCHES)))
    ap.add_argument("--compile-batches", type=_csv(int), default=",".join(map(str, COMPILE_BATCHES)))
    ap.add_argument("--compile-precisions", type=_csv(str), default="fp16")
    ap.add_argument("--reserve-s", type=float, default=150,
                    help="seconds of the budget the plain sweep leaves for the sections after it")
    a = ap.parse_args()
    import torch

    if a.device == "cuda" and not torch.cuda.is_available():
        print("gpu_bench: no CUDA device is visible to PyTorch; nothing was measured", file=sys.stderr)
        return 2
    t_start = time.monotonic()
    deadline = t_start + a.budget_s
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    workers = os.cpu_count() or 1
    cbatches, n_par = a.compile_batches, 512
    if a.smoke:
        a.batches, cbatches, n_par, a.eager_batches = (1, 2), (), 8, ()
        SMOKE["on"] = True
        if a.device != "cuda":  # fp16/bf16 numerics are checked by the parity section
            a.precisions = ("fp32",)
    if a.device != "cuda":
        a.modes, cbatches = ("eager",), ()
    if a.smoke:
        a.images, a.distinct = 24, 16
    rec = {"command": " ".join([Path(sys.argv[0]).name] + sys.argv[1:]), "machine": machine(torch, a.device),
           "skipped": []}
    log("machine:", json.dumps(rec["machine"]))
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)

        def section(name, fn, *args):
            t0 = time.monotonic()
            try:
                rec[name] = fn(*args)
            except Exception as e:  # noqa: BLE001 - a failing section must not lose the others
                import traceback

                traceback.print_exc()
                rec["skipped"].append(f"{name}: {type(e).__name__}: {str(e).splitlines()[0][:300]}")
            log(f"[{name}] {time.monotonic() - t0:.0f} s (total {time.monotonic() - t_start:.0f} s)")

        plan = [(p, m, b) for m in a.modes for p in a.precisions for b in a.batches]
        plan += [("fp16", "eager", b) for b in a.eager_batches if "eager" not in a.modes]
        want = set(a.sections)
        if "parity" in want:
            section("parity", parity_section, a.device, n_par, work, workers)
        if "compute" in want:
            section("compute", sweep_section, torch, a.device, plan, deadline - a.reserve_s)
        if "profile" in want:
            section("profile", profile_section, torch, a.device, 1 if a.smoke else 256)
        data = work / "jpegs"
        if want & {"decode", "e2e"}:
            section("jpegs", make_jpegs, data, a.images, a.distinct, workers)
        if "decode" in want:
            section("decode", decode_section, torch, a.device, data, min(a.distinct, 1024), workers)
        if "e2e" in want:
            # --smoke on a CPU: fp32 (fp16 there took 14 s for 24 images; its numerics are parity's)
            section("e2e", e2e_section, data, work, a.device, 8 if a.smoke else 256, deadline - 40,
                    "fp32" if a.smoke and a.device != "cuda" else "fp16")
        if cbatches and "compiled" in want:
            section("compiled", sweep_section, torch, a.device,
                    [(p, "compile", b) for p in a.compile_precisions for b in cbatches], deadline)
        rec.pop("jpegs", None)
        for k in ("compute", "compiled"):
            if k in rec:
                cells, skipped = rec.pop(k)
                rec.setdefault("cells", []).extend(cells)
                rec["skipped"] += skipped
        rec["compute"] = rec.pop("cells", [])
    rec["total_s"] = time.monotonic() - t_start
    (out / "gpu.json").write_text(json.dumps(rec, indent=1))
    md = markdown(rec)
    (out / "gpu.md").write_text(md)
    print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
