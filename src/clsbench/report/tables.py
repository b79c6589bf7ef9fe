"""People-facing output: accuracy and throughput tables (terminal, Markdown)."""
from __future__ import annotations

from rich.table import Table

from ..accuracy.evaluate import Accuracy
from ..model.table import ModelSpec


def accuracy_rows(acc: Accuracy, spec: ModelSpec | None) -> list[tuple[str, str, str, str]]:
    ref = {1: spec.top1, 5: spec.top5} if spec else {}
    rows = []
    for k in range(1, 6):
        got = acc.percent(k)
        r = ref.get(k)
        rows.append((f"Top{k}", f"{got:.2f}", f"{r:.3f}" if r is not None else "",
                     f"{got - r:+.2f}" if r is not None else ""))
    if acc.real:
        rows += [(f"ReaL Top{k}", f"{acc.real[f'top{k}']:.2f}", "", "") for k in (1, 5)]
    return rows


def accuracy_table(acc: Accuracy, spec: ModelSpec | None, title: str = "Accuracy", classes: int | None = None) -> Table:
    scope = f"the {acc.num_classes} classes of {acc.label_set}" if acc.label_set else f"{classes or acc.num_classes} classes"
    real = (f"; ReaL: {acc.real['images']} of them with a ReaL label" if acc.real else "")
    t = Table(title=f"{title} ({acc.images} images, {scope}{real})")
    for col in ("", "measured %", "reference %", "diff"):
        t.add_column(col, justify="right")
    for row in accuracy_rows(acc, spec):
        t.add_row(*row)
    return t


def accuracy_markdown(acc: Accuracy, spec: ModelSpec | None) -> str:
    lines = ["| | measured % | reference % | diff |", "|---|---:|---:|---:|"]
    lines += [f"| {a} | {b} | {c} | {d} |" for a, b, c, d in accuracy_rows(acc, spec)]
    return "\n".join(lines) + "\n"


def perf_rows(record: dict) -> list[tuple[str, str, str]]:
    """The vendor's stage figures for people: a stage under 0.005 ms per image did no work
    here (the .bin files were preprocessed beforehand, outputs reused): its rate of millions
    of images/s would only mislead, so it is shown as such."""
    rows = []
    for stage, fields in record.get("stages", {}).items():
        idle = (fields.get("moduleLatency") or 0) < 0.005 and "moduleLatency" in fields
        if idle:
            rows.append((stage, "time per image", "– (under 0.005 ms: no work in this step here)"))
            continue
        for k, v in fields.items():
            if v is None:
                rows.append((stage, k, "– (no measurable time)"))
            elif "throughput" in k.lower():
                rows.append((stage, k, f"{v:,.2f} images/s"))
            else:  # the vendor's fields: latency of the whole stage, moduleLatency per image
                rows.append((stage, k, f"{v:,.2f} ms" + ("" if k == "latency" else " per image")))
    return rows


def latency_cells(lat: dict) -> list[tuple[str, str]]:
    """(name, 'x.xx') for min, mean, each recorded percentile and max; a percentile the
    sample cannot resolve is marked '≈' (interpolated between the slowest runs)."""
    keys = ["min", "mean", *lat.get("percentiles", [k for k in ("p50", "p90", "p99") if k in lat]), "max"]
    unresolved = set(lat.get("unresolved", []))
    return [(k, ("≈" if k in unresolved else "") + f"{lat[k]:.2f}") for k in keys if k in lat]


def stability_text(stab: dict | None) -> str:
    if not stab or not stab.get("repeats"):
        return ""
    if stab["stable"] is None:
        return "1 window: spread unknown"
    verdict = "stable" if stab["stable"] else "UNSTABLE"
    return f"median of {stab['repeats']}, spread {stab['spread']:.1%}: {verdict}"


def perf_table(record: dict, title: str) -> Table:
    t = Table(title=title)
    for col in ("stage", "figure", "value"):
        t.add_column(col, justify="right" if col == "value" else "left")
    for row in perf_rows(record):
        t.add_row(*row)
    lat = record.get("compute_latency_ms_per_batch") or record.get("latency_ms_per_batch")
    if lat:
        cells = latency_cells(lat)
        t.add_row("compute", f"ms per batch {'|'.join(k for k, _ in cells)}", " | ".join(v for _, v in cells))
    stab = record.get("compute_stability")
    if stab and stab.get("median"):
        t.add_row("compute", "images/s, windows of the run", f"{stab['median']:,.2f} ({stability_text(stab)})",
                  style=None if stab["stable"] is not False else "bold yellow")
    return t


def backend_line(record: dict) -> str:
    b, env = record["backend"], record["environment"]
    return (f"{b['runtime']} {b['version']} {b.get('provider', '')} {b['precision']}, "
            f"{b['threads']} threads, batch {record['batch_size']}, on {env['cpu']}")


# ---------------------------------------------------------------- perf sweep (guide §7.3)

def _fps(result: dict, label: str, bs: int, mode: str) -> float | None:
    for r in result["rows"]:
        if f"{r['backend']} {r['precision']}" == label and r["batch_size"] == bs and r["input"] == mode:
            return r["throughput_compute"]
    return None


def _guide_model(result: dict) -> bool:
    from ..model.table import GUIDE_MODEL

    return (result.get("model") or {}).get("name") == GUIDE_MODEL


def perf_markdown(result: dict) -> str:
    """The guide's §7.3 table: FPS per batch size per configuration, reference columns, best row."""
    from ..runtime.timing import GUIDE_REFERENCE

    labels = [f"{c['backend']} {c['precision']}" for c in result["configs"]]
    modes = sorted({r["input"] for r in result["rows"]}, key=lambda m: m != "random normal")
    env = result["environment"]
    out = [f"# Throughput sweep ({env['cpu']}, {env['logical_cpus']} CPUs, clsbench {env['clsbench']})", "",
           f"Compute-only images/s (the guide's \"Interface throughputRate\", its FPS column); each cell: warm-up "
           f"{result['warmup']} runs, then at least {result['min_iterations']} runs and "
           f"{result['duration_s']} s; the figure is the median of {result.get('repeats', 1)} repeats "
           f"(consecutive windows of those runs)."
           + (" Reference columns are the guide's figures (other hardware)." if _guide_model(result) else ""), ""]
    # the guide's devices measured its MnasNet1.0: beside any other model they would mislead
    refs = list(GUIDE_REFERENCE) if _guide_model(result) else []
    t4 = refs[-1] if refs else None
    for mode in modes:
        out += [f"## {mode} input", ""]
        head = ["batchsize"] + [f"{l} images/s" for l in labels] + [f"{r} images/s" for r in refs]
        head += [f"{l}/T4" for l in labels] if refs else []
        out += ["| " + " | ".join(head) + " |", "|" + "---:|" * len(head)]
        best = {l: (None, 0.0) for l in labels + refs}
        for bs in result["batches"]:
            cells = [str(bs)]
            for l in labels:
                v = _fps(result, l, bs, mode)
                cells.append(f"{v:.1f}" if v else "")
                if v and v > best[l][1]:
                    best[l] = (bs, v)
            for r in refs:
                v = GUIDE_REFERENCE[r].get(bs)
                cells.append(f"{v:.1f}" if v else "")
                if v and v > best[r][1]:
                    best[r] = (bs, v)
            for l in labels if refs else []:
                v, ref = _fps(result, l, bs, mode), GUIDE_REFERENCE[t4].get(bs)
                cells.append(f"{v / ref:.3f}" if v and ref else "")
            out.append("| " + " | ".join(cells) + " |")
        cells = ["best"] + [f"{best[l][0]}:{best[l][1]:.1f}" if best[l][0] else "" for l in labels + refs]
        cells += [f"{best[l][1] / best[t4][1]:.3f}" if best[l][0] and best[t4][1] else ""
                  for l in labels] if refs else []
        out += ["| " + " | ".join(cells) + " |", ""]
    out += _latency_markdown(result["rows"])
    out += ["", "Runtimes: " + "; ".join(sorted({f"{r['runtime']['runtime']} {r['runtime']['version']} "
                                                 f"({r['runtime']['threads']} threads)" for r in result["rows"]}))]
    return "\n".join(out) + "\n"


def _latency_markdown(rows: list[dict]) -> list[str]:
    pcts = next((r["latency_ms"].get("percentiles") for r in rows if r["latency_ms"]), None) or ["p50", "p90", "p99"]
    keys = ["min", "mean", *pcts, "max"]
    out = ["## Latency per batch (ms) and images/s", "",
           "Compute images/s: the median of the repeats (consecutive windows of the timed runs); a spread "
           "(max − min) / median above 10 % is marked UNSTABLE. ≈: a percentile the run count cannot resolve.", "",
           f"| config | input | batch | {' | '.join(keys)} | compute images/s | e2e images/s | runs | repeats |",
           "|---|---|---:|" + "---:|" * (len(keys) + 4)]
    for r in rows:
        s = r["latency_ms"]
        lat = (" | ".join(v for _, v in latency_cells(s)) if s
               else " | ".join(["(requests overlap)"] + [""] * (len(keys) - 1)))
        out.append(f"| {r['backend']} {r['precision']} | {r['input']} | {r['batch_size']} | {lat} | "
                   f"{r['throughput_compute']:.1f} | {r['throughput_e2e']:.1f} | {r['iterations']} | "
                   f"{stability_text(r.get('stability'))} |")
    return out


def perf_plot(result: dict, path: str) -> str | None:
    """PNG of throughput vs batch size; None when matplotlib is absent."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    from ..runtime.timing import GUIDE_REFERENCE

    fig, ax = plt.subplots(figsize=(9, 5.5))
    modes = sorted({r["input"] for r in result["rows"]})
    colours = plt.get_cmap("tab10").colors
    for i, c in enumerate(result["configs"]):
        label = f"{c['backend']} {c['precision']}"
        for mode in modes:  # one colour per configuration; dotted = real data
            pts = [(bs, _fps(result, label, bs, mode)) for bs in result["batches"]]
            pts = [(b, v) for b, v in pts if v]
            if pts:
                ax.plot(*zip(*pts), marker="o", color=colours[i % len(colours)],
                        linestyle="-" if mode == "random normal" else ":",
                        label=label if mode == "random normal" else f"{label} (real data)")
    for j, (name, d) in enumerate(GUIDE_REFERENCE.items()):
        ax.plot(list(d), list(d.values()), linestyle="--", color="grey", alpha=0.4 + 0.2 * j,
                label=f"{name} (guide)")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xticks(result["batches"], [str(b) for b in result["batches"]])
    ax.set_xlabel("batch size")
    ax.set_ylabel("images/s (compute only)")
    ax.set_title(f"MnasNet1.0 throughput — {result['environment']['cpu']}")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5))
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def accuracy_title(s: dict) -> str:
    """What a run's accuracy is measured against, from its record."""
    acc = s["accuracy"]
    key = (s.get("plan") or {}).get("model", {}).get("key") or s.get("model") or "the model"
    if acc.get("reference_top1") is None:
        return f"Accuracy of {key} (these weights; no reference)"
    return f"Accuracy of {key} vs {acc.get('reference_source') or 'its reference'}"


def predictions_table(p: dict) -> Table:
    """The first predictions of a run without labels: image, then each of the top-5."""
    more = p["images"] - len(p["shown"])
    t = Table(title=f"Predictions (no labels: no accuracy) — {p['images']} images"
                    + (f", the first {len(p['shown'])} shown" if more > 0 else ""),
              caption=f"all of them: {p['file']}" + ("" if p.get("class_names") else
                                                     " (class names unknown for this model: indices only)"))
    t.add_column("image")
    for r in range(1, 4):
        t.add_column(f"#{r}")
    for row in p["shown"]:
        t.add_row(row["image"], *(f"{c['name'] or c['class']} {c['prob']:.1%}" for c in row["top5"][:3]))
    return t


def print_accuracy(s: dict, spec: ModelSpec) -> None:
    from ..ui import out

    acc = s["accuracy"]
    out.print(accuracy_table(s["_accuracy"], spec, accuracy_title(s), acc.get("classes")))
    if acc.get("judged"):
        word = "[bold green]PASS[/]" if acc["within_tolerance"] else "[bold red]FAIL[/]"
        out.print(f"Accuracy {word}: Top-1 {acc['top1']:.2f} vs {acc['reference_top1']} (allowed drop "
                  f"{acc['allowed_drop']:.2f} points: --tolerance {acc['tolerance']:g}, or the 95 % sampling "
                  f"margin of {acc['images']} images if wider)")
    else:
        out.print(f"No accuracy verdict: {acc.get('reference_source') or 'no reference'}", markup=False)
    if "outside_calibration" in acc:
        o = acc["outside_calibration"]
        out.print(f"Top-1 on the {o['images']} images outside the calibration set: {o['top1']:.2f} %")
    if acc["labels_without_output"] or acc["outputs_without_label"]:
        out.print(f"{acc['labels_without_output']} labelled images without output, "
                  f"{acc['outputs_without_label']} outputs without label (not counted)")


def print_run_summary(s: dict, spec: ModelSpec) -> None:
    """The end of `clsbench run`: accuracy table (or predictions), throughput, unreadable
    files, stage times, files."""
    from ..ui import out, printable

    out.print()
    if s["accuracy"] is None:
        out.print(predictions_table(s["predictions"]))
    else:
        print_accuracy(s, spec)
    comp = s.get("compiled")
    if comp and comp.get("parity", {}).get("accuracy"):
        q = comp["parity"]["accuracy"]
        out.print(f"{comp['precision']} vs fp32 on {q['labelled_images']} held-out labelled images: "
                  f"Top-1 {q['top1']:.2f} % vs {q['fp32_top1']:.2f} % (drop {q['top1_drop']:+.2f} points)")
    perf = s["performance"]
    title = f"Throughput: {backend_line(perf)}"
    if perf.get("from_earlier_run"):
        title += f" — figures of the earlier run ({perf.get('finished_at', '?')}): nothing was left to infer"
    out.print(perf_table(perf, title))
    bad = s["dataset"]["unreadable"]
    if bad:
        out.print(f"[bold yellow]{len(bad)} unreadable images skipped[/] (not counted in the accuracy):",
                  soft_wrap=True)
        for b in bad:
            out.print(f"  {printable(b['error'])}", soft_wrap=True, markup=False)
    out.print("Stage seconds: " + ", ".join(f"{k} {v:.2f}" for k, v in s["stage_seconds"].items()))
    out.print("Files:")
    for k, v in s["files"].items():
        out.print(f"  {k:<13} {printable(str(v))}", markup=False)


def print_proxy_demo(d: dict) -> None:
    """The demo's numbers that mean something: the trained proxy, fp32 and reduced precisions,
    each reduced precision beside fp32 on the very images it was judged on."""
    from ..ui import out

    s = d["summary"]
    acc = s["accuracy"]
    t = Table(title=f"Trained proxy, {acc['images']} images of its own task (16 classes, chance 6.25 %)",
              caption="Δ and agreement: against fp32 on the same images (the 'fp32 on them' column); an int8 "
                      "model is judged only on the images it was not calibrated on")
    for col in ("configuration", "images", "fp32 on them %", "Top-1 %", "Δ vs fp32", "agree", "calibration"):
        t.add_column(col, justify="left" if col in ("configuration", "calibration") else "right")
    t.add_row("ORT fp32 (whole flow)", str(acc["images"]), "", f"{acc['top1']:.2f}", "", "", "")
    t.add_row("when trained", f"{d['reference_images']} others", "", f"{d['reference']:.2f}", "", "", "")
    for r in d["precisions"]:
        n = r["calibration_images"]
        t.add_row(r["config"].replace("onnxruntime", "ORT").replace("openvino", "OpenVINO"),
                  str(r["labelled_images"]), f"{r['fp32_top1']:.2f}", f"{r['top1']:.2f}",
                  f"{-r['top1_drop']:+.2f}", f"{r['agreement']:.1%}",
                  f"{n} images, not judged" if n else "none (a run-time precision)")
    out.print(t)
    if acc.get("judged"):
        gap = d["reference"] - acc["top1"]
        inside = "inside" if gap <= acc["sampling_margin"] else "outside"
        side = "below" if gap > 0 else "above"
        out.print(f"The whole flow's {acc['top1']:.2f} % vs {d['reference']:.2f} % when trained: {abs(gap):.2f} points "
                  f"{side}, "
                  f"{inside} the 95 % margin of two samples ({acc['sampling_margin']:.2f}: {acc['images']} and "
                  f"{d['reference_images']} images). The training figure was measured on {d['reference_images']} "
                  f"other draws at 256×256 without JPEG; the flow's are JPEGs of 260-500 px, resized and "
                  f"centre-cropped, so some shapes are cut at the border.", markup=False)
    out.print("Stage seconds (proxy fp32 run): " +
              ", ".join(f"{k} {v:.2f}" for k, v in s["stage_seconds"].items()))
    out.print(f"proxy run summary: {s['files']['summary_md']}", markup=False)


def models_json(specs) -> list[dict]:
    from ..model.table import default_tag

    return [{"name": s.name, "tag": s.tag, "key": s.key, "default": s.tag == default_tag(s.name),
             "preset": s.preprocessing.as_dict(),
             "top1": s.top1, "top5": s.top5, "gflops": s.gflops, "params": s.params,
             "file": s.official.filename if s.official else None} for s in specs]


def models_table(specs) -> Table:
    from ..model.table import default_tag

    t = Table(title=f"{len(specs)} torchvision classifiers (weights)",
              caption="(default): the weights NAME alone means, as torchvision's DEFAULT")
    for col in ("model", "weights", "resize/crop", "interp.", "mean / std", "Top-1", "Top-5", "GFLOPS", "params"):
        t.add_column(col, justify="left" if col in ("model", "weights", "interp.", "mean / std") else "right")
    for s in specs:
        p = s.preprocessing
        norm = "ImageNet" if (p.mean, p.std) == ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)) else f"{p.mean} / {p.std}"
        tag = s.tag + (" (default)" if s.tag == default_tag(s.name) else "")
        t.add_row(s.name, tag, f"{p.resize}/{p.crop}", p.interpolation, norm, f"{s.top1:.3f}", f"{s.top5:.3f}",
                  f"{s.gflops:.2f}" if s.gflops else "", f"{s.params / 1e6:.1f} M" if s.params else "")
    return t


def print_loadgen(rec: dict) -> None:
    """The end of `clsbench loadgen`: LoadGen's verdict and figures, by its own field names."""
    from ..ui import out

    for mode, run in rec["runs"].items():
        if mode == "accuracy":
            a = run.get("accuracy") or {}
            if a.get("top1") is not None:
                out.print(f"accuracy mode: Top-1 {a['top1']:.2f} %, Top-5 {a['top5']:.2f} % over {a['images']} "
                          f"responses → {a['result_json']}", markup=False)
            continue
        sm = run["summary"]
        f = sm["fields"]
        t = Table(title=f"LoadGen {f.get('Scenario', rec['loadgen_scenario'])}: {sm['result']}"
                        + (f" ({'; '.join(sm['reasons'])})" if sm["reasons"] else ""),
                  caption=f"LoadGen's logs: {run['folder']}")
        t.add_column("field (LoadGen's name)")
        t.add_column("value", justify="right")
        for k, v in f.items():
            if k.startswith("target_latency") and not v:
                continue  # a setting the scenario does not use
            if "latency" in k or "per second" in k or "per query" in k or k.startswith(("Result", "Min ", "Early")):
                t.add_row(k, f"{v / 1e6:,.3f} ms" if isinstance(v, (int, float)) and "(ns)" in k else str(v))
        out.print(t)
        for n in sm["notes"]:
            out.print(f"  {n}", markup=False)
    pk = rec.get("peak")
    if pk:
        t = Table(title=f"Peak search: highest VALID Server QPS at p{pk.get('percentile', 99):g} <= "
                        f"{pk['latency_bound_ms']:g} ms: "
                        f"{pk['peak_qps'] if pk['peak_qps'] is not None else 'none'}")
        for col in ("target QPS", "LoadGen", "completed QPS", "p99 ms", "why"):
            t.add_column(col, justify="right" if col != "why" else "left")
        for x in pk["tries"]:
            t.add_row(f"{x['target_qps']:,.2f}", "VALID" if x["valid"] else "INVALID",
                      f"{x['completed_qps'] or 0:,.2f}", f"{x['p99_ms']}", "; ".join(x["reasons"]))
        out.print(t)
