"""report.html: one self-contained page per run or perf sweep, and the comparison of several.

Built only from the records a run leaves (summary.json, perf.json, latencies/*.csv), so
`clsbench report DIR` rebuilds it any time. Nothing in the page is fetched: styles are
inline, charts are inline SVG (svg.py), there is no script. Every number shown carries
`data-field` (its path in the record, '/'-separated) and `data-value` (the recorded value),
so a test can check that the page shows what the records hold.
"""
from __future__ import annotations

import functools
import os

from markupsafe import Markup

from .. import ClsbenchError
from ..model.table import GUIDE_MODEL  # the guide's reference devices are drawn only beside this model
from .svg import PALETTE, REFERENCE_STYLES, line_chart, stacked_bar


@functools.lru_cache(maxsize=1)
def _env():
    import jinja2

    # autoescape on: every value is escaped unless it is Markup made by these helpers
    return jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined, keep_trailing_newline=True,
                              loader=jinja2.PackageLoader("clsbench.report", "templates"))


@functools.lru_cache(maxsize=None)
def _fragment(src: str):
    return _env().from_string(src)


def T(src: str, **values) -> Markup:
    """An HTML fragment rendered by Jinja2 with autoescape: `src` is this module's own markup
    (the audited exception), every value in it is escaped unless it is already Markup."""
    return Markup(_fragment(src).render(**values))


def join(parts, sep: str = "") -> Markup:
    return Markup(sep).join(parts)

CSS = """
body{font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;color:#1d2330;background:#f5f6f8}
main{max-width:1000px;margin:0 auto;padding:24px 28px 60px;background:#fff;box-shadow:0 0 0 1px #e3e6eb}
h1{font-size:1.55em;margin:.2em 0 .1em}h2{font-size:1.15em;margin:1.8em 0 .5em;padding-bottom:.2em;border-bottom:2px solid #e8eaef}
.sub{color:#5a6272;margin:0 0 1em}.verdicts{display:flex;flex-wrap:wrap;gap:10px;margin:14px 0}
.verdict{border-radius:8px;padding:10px 14px;min-width:200px;flex:1;border:1px solid;overflow-wrap:anywhere}
.verdict .vt{display:block;font-size:1.05em;font-weight:700}.pass{background:#eaf6ee;border-color:#8cc9a0}
.fail{background:#fdecec;border-color:#e29a9a}.warn{background:#fff6e0;border-color:#e6c36a}
.info{background:#eef2f8;border-color:#b3c1d8}
table{border-collapse:collapse;margin:.4em 0 1em;font-variant-numeric:tabular-nums}
th,td{padding:4px 10px;border-bottom:1px solid #eceef2;text-align:left;vertical-align:top}
th{background:#f3f5f8;font-weight:600}td.n{text-align:right;white-space:nowrap}tr.bad td{background:#fdecec}tr.warnrow td{background:#fff6e0}
.regress{color:#b00020;font-weight:600}.better{color:#137333}.muted{color:#7a8190}
pre{background:#f3f5f8;padding:10px;overflow-x:auto;white-space:pre-wrap;word-break:break-all}
svg.chart{max-width:100%;height:auto;font:12px system-ui,sans-serif;fill:#1d2330}
svg .grid{stroke:#e6e8ec}svg .title{font-weight:600;font-size:13px}svg .onbar{fill:#fff;font-weight:600}svg .value{font-weight:600}
details{margin:.3em 0}code{font-size:.92em}.scroll{overflow-x:auto}td .num+b,td b.regress{white-space:nowrap}
"""


# ---------------------------------------------------------------- loading records

RECORD_FILES = ("summary.json", "perf.json", "loadgen.json", "tune.json")  # what load() reads (records.load_record)


def load(folder: str) -> tuple[str, dict]:
    """('run', summary.json) or ('perf', perf.json) of a folder, checked against its schema
    (records.py): a record from elsewhere is untrusted input."""
    from .records import load_record

    return load_record(folder)


def write_report(folder: str) -> str:
    """Writes folder/report.html from the folder's records; returns its path."""
    from .._io import atomic_write_text

    kind, rec = load(folder)
    html = str({"run": run_page, "perf": perf_page, "loadgen": loadgen_page, "tune": tune_page}[kind](rec))
    path = os.path.join(folder, "report.html")
    atomic_write_text(path, html)
    return path


# ---------------------------------------------------------------- small pieces

def num(field: str, value, fmt: str = ",.2f", scale: float = 1.0, suffix: str = "") -> Markup:
    """A number as shown, tagged with where it comes from in the record."""
    if value is None:
        return Markup('<span class="muted">–</span>')
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ClsbenchError(f"record field {field}: {value!r} is not a number")
    shown = format(value * scale if scale != 1 else value, fmt)
    return T('<span class="num" data-field="{{ f }}" data-value="{{ v }}"{% if s %} data-scale="{{ s }}"{% endif %}>'
             '{{ shown }}{{ suffix }}</span>', f=field, v=repr(value), s=f"{scale:g}" if scale != 1 else "",
             shown=shown, suffix=suffix)


def _numeric(cell) -> bool:
    cell = str(cell)
    return cell.startswith(('<span class="num"', "≈<span")) or cell.replace(",", "").replace(".", "").isdigit()


def table(head: list | None, rows: list[list], classes: list[str] | None = None) -> Markup:
    """Numbers right-aligned, text left; `head` None: a two-column key/value table. Cells
    that are not Markup are escaped."""
    return T('''<div class="scroll"><table>{% if head %}<tr>{% for h in head %}<th>{{ h }}</th>{% endfor %}</tr>{% endif %}
{% for r in rows %}<tr{% if classes[loop.index0] %} class="{{ classes[loop.index0] }}"{% endif %}>\
{% for c in r %}<td class="{{ 'n' if head and numeric(c) else 'l' }}">{{ c }}</td>{% endfor %}</tr>
{% endfor %}</table></div>''', head=head, rows=rows, classes=classes or [""] * len(rows), numeric=_numeric)


def verdict(state: str, title: str, text) -> Markup:
    word = {"pass": "PASS", "fail": "FAIL", "warn": "CHECK", "info": "—"}[state]
    return T('<div class="verdict {{ state }}" data-verdict="{{ title }}" data-state="{{ state }}">'
             '<span class="vt">{{ title }}: {{ word }}</span>{{ text }}</div>', state=state, title=title, word=word,
             text=text)


def page(title: str, subtitle, body: list) -> str:
    """The whole page: templates/page.html.j2 (the CSP forbids it to load anything)."""
    return _env().get_template("page.html.j2").render(title=title, subtitle=subtitle, body=body, css=Markup(CSS))


def stability_cell(field: str, stab: dict | None) -> Markup:
    if not stab or not stab.get("repeats"):
        return Markup('<span class="muted">–</span>')
    if stab["stable"] is None:
        return Markup("1 window: spread unknown")
    word = Markup("stable") if stab["stable"] else Markup('<b class="regress">UNSTABLE</b>')
    return T("{{ n }} × · spread {{ spread }} {{ word }}", n=stab["repeats"],
             spread=num(field + "/spread", stab["spread"], ".1f", 100, " %"), word=word)


def latency_cells(field: str, lat: dict) -> tuple[list, list]:
    """min, mean, every recorded percentile, max (ms per batch); '≈' marks a percentile the
    run count cannot resolve."""
    keys = ["min", "mean", *lat.get("percentiles", []), "max"]
    unresolved = set(lat.get("unresolved", []))
    cells = [(Markup("≈") if k in unresolved else Markup("")) + num(f"{field}/{k}", lat[k], ",.3f")
             for k in keys if k in lat]
    return ["runs"] + [k for k in keys if k in lat], [str(lat.get("count", "?"))] + cells


def environment_section(env: dict, backend: dict | None, command: str | None, extra: dict) -> list:
    code = '<code>{{ c }}</code>'
    rows = [["command", T(code, c=command) if command else
             Markup('<span class="muted">none recorded (a library call)</span>')]]
    rev = env.get("git_revision")
    rows.append(["clsbench", f"{env.get('clsbench', '?')}" + (f" (git {rev})" if rev else "")])
    if backend:
        rows.append(["runtime", " ".join(str(backend.get(k, "")) for k in ("runtime", "version", "provider"))])
        for k in ("engine", "precision", "threads", "processes", "cluster_cpus", "hint", "streams", "layout", "mode",
                  "device"):
            if backend.get(k) is not None:
                rows.append([k, str(backend[k])])
    for k in ("cpu", "logical_cpus", "gpu", "platform", "python", "numpy", "onnxruntime", "openvino", "torch",
              "torchvision"):
        if env.get(k) is not None:
            rows.append([k, str(env[k])])
    rows += [[str(k), str(v)] for k, v in extra.items()]
    return [Markup("<h2>Environment and reproduction</h2>"), table(None, rows)]


# ---------------------------------------------------------------- throughput chart

def reference_series(model_name: str | None) -> list[dict]:
    """The guide's devices, only beside the guide's model (elsewhere they would mislead)."""
    if model_name != GUIDE_MODEL:
        return []
    from ..runtime.timing import GUIDE_REFERENCE

    return [{"name": f"{name} (guide)", "colour": colour, "dashed": dash,
             "points": [(b, v, f"{name}, batch {b}: {v:,.1f} images/s (the guide's figure)", False)
                        for b, v in d.items()]}
            for (name, d), (colour, dash) in zip(GUIDE_REFERENCE.items(), REFERENCE_STYLES)]


def throughput_chart(series: list[dict], batches: list[int], model_name: str | None, title: str) -> str:
    for i, s in enumerate(series):
        s.setdefault("colour", PALETTE[i % len(PALETTE)])
    refs = reference_series(model_name)
    ticks = sorted(set(batches) | ({b for r in refs for b, *_ in r["points"]} if refs else set()))
    return line_chart(series + refs, xlabel="batch size (log scale)", ylabel="images/s", title=title,
                      xticks=ticks)


# ---------------------------------------------------------------- one run

def run_page(s: dict) -> str:
    perf = s["performance"]
    b = perf["backend"]
    title = f"clsbench run · {s['model']}" + (f" ({s['weights_tag']})" if s.get("weights_tag") else "")
    sub = T("{{ b.runtime }} {{ b.version }} {{ b.precision }}, batch {{ bs }}, {{ b.threads }} threads · finished "
            "{{ when }} · {{ tool }}", b=b, bs=perf["batch_size"], when=perf.get("finished_at", "?"),
            tool=s.get("tool", ""))
    body = [T('<div class="verdicts">{{ v }}</div>', v=join(run_verdicts(s)))]
    body += accuracy_section(s) + parity_section(s) + run_perf_section(s)
    env = dict(perf.get("environment", {}))
    pp = s.get("preprocessing", {})
    extra = {"preprocessing": ", ".join(f"{k} {v}" for k, v in pp.items()),
             "data": s["dataset"]["images"], "labels": s["dataset"]["labels"] or "none (predictions only)",
             "weights": f"{s['weights'].get('path')} (sha256 {str(s['weights'].get('sha256', ''))[:16]}…)"}
    body += environment_section(env, b, s.get("command"), extra)
    body += [Markup("<h2>Files</h2>"), table(None, [[k, T("<code>{{ v }}</code>", v=str(v))]
                                                    for k, v in s["files"].items()])]
    return page(title, sub, body)


def run_verdicts(s: dict) -> list:
    acc, out = s["accuracy"], []
    if acc is None:
        p = s.get("predictions") or {}
        out.append(verdict("info", "Accuracy", T("no labels: predictions only, no accuracy ({{ n }} images, "
                                                 "top-5 each in {{ f }})", n=p.get("images", 0),
                                                 f=str(p.get("file", "predictions.csv")))))
        return out + _run_verdicts_rest(s)
    top1 = num("accuracy/top1", acc["top1"], ".2f", suffix=" %")
    if acc.get("within_tolerance") is None:
        why = acc.get("reference_source") or "no reference accuracy for this model to judge it against"
        out.append(verdict("info", "Accuracy", T("Top-1 {{ top1 }} on {{ n }} images: the accuracy of these weights, "
                                                 "not judged ({{ why }})", top1=top1, n=acc["images"], why=str(why))))
    else:
        drop = acc["top1_drop"]
        where = (T("{{ d }} points below", d=num("accuracy/top1_drop", drop, ".2f")) if drop >= 0
                 else T("{{ d }} points above", d=f"{-drop:.2f}"))
        out.append(verdict("pass" if acc["within_tolerance"] else "fail", "Accuracy", T(
            "Top-1 {{ top1 }}, {{ where }} the reference {{ ref }} ({{ source }}; allowed drop {{ allowed }}: "
            "tolerance {{ tol }} point or the sampling margin of {{ n }} images, the wider). Weights: {{ weights }}",
            top1=top1, where=where, ref=num("accuracy/reference_top1", acc["reference_top1"], ".3f"),
            source=str(acc.get("reference_source", "")),
            allowed=num("accuracy/allowed_drop", acc.get("allowed_drop", acc["tolerance"]), ".2f"),
            tol=num("accuracy/tolerance", acc["tolerance"], "g"), n=acc["images"],
            weights=s["weights"].get("verdict", "a model file"))))
    return out + _run_verdicts_rest(s)


def _run_verdicts_rest(s: dict) -> list:
    out = [parity_verdict(s)]
    stab = s["performance"].get("compute_stability")
    if stab and stab.get("stable") is not None:
        out.append(verdict("pass" if stab["stable"] else "warn", "Measurement",
                           T("compute images/s over the run's consecutive windows: {{ c }}",
                             c=stability_cell("performance/compute_stability", stab))))
    bad = len(s["dataset"]["unreadable"])
    if bad:
        out.append(verdict("warn", "Input", T("{{ n }} unreadable image(s) skipped, listed under Accuracy", n=bad)))
    return out


def parity_verdict(s: dict) -> Markup:
    p, comp = s.get("parity"), s.get("compiled")
    parts, state = [], "info"
    if p:
        state = "pass" if p.get("passed", True) else "fail"
        parts.append(T("export vs PyTorch float64: rel. L2 {{ l2 }}, top-1 agreement {{ agree }}",
                       l2=num("parity/rel_l2_error", p["rel_l2_error"], ".2e"),
                       agree=num("parity/top1_agreement", p["top1_agreement"], ".1f", 100, " %")))
    q = (comp or {}).get("parity", {}).get("accuracy")
    if q:
        ok = q["top1_drop"] <= (s["accuracy"] or {}).get("tolerance", 1.0)
        state = "fail" if not ok else ("pass" if state != "fail" else state)
        parts.append(T("{{ precision }} vs fp32: Top-1 drop {{ drop }} points on {{ n }} held-out labelled images",
                       precision=comp["precision"], n=q["labelled_images"],
                       drop=num("compiled/parity/accuracy/top1_drop", q["top1_drop"], "+.2f")))
    if not parts:
        return verdict("info", "Parity", "not checked here (a model file given as is)")
    return verdict(state, "Parity", join(parts, "; "))


def predictions_section(s: dict) -> list:
    p = s["predictions"]
    rows = [[r["image"], *(T("{{ n }} <span class=\"muted\">{{ c }}</span>", n=c["name"] or "", c=c["class"])
                           for c in r["top5"][:3]),
             *(num(f"predictions/shown/{i}/top5/{j}/prob", c["prob"], ".1f", 100, " %") for j, c in enumerate(r["top5"][:3]))]
            for i, r in enumerate(p["shown"])]
    return [Markup("<h2>Predictions</h2>"),
            T("<p>No labels: predictions only, no accuracy. {{ n }} images{% if more %}, the first {{ shown }} "
              "shown{% endif %}; each image's top-5 classes and probabilities (softmax of the outputs) are in "
              "<code>{{ f }}</code>.</p>", n=p["images"], more=p["images"] > len(p["shown"]),
              shown=len(p["shown"]), f=str(p["file"])),
            table(["image", "#1", "#2", "#3", "p #1", "p #2", "p #3"], rows)]


def accuracy_section(s: dict) -> list:
    acc = s["accuracy"]
    if acc is None:
        return predictions_section(s) + _unreadable(s)
    rows = []
    for k in range(1, 6):
        ref = acc.get(f"reference_top{k}") if k in (1, 5) else None
        rows.append([f"Top-{k}", num(f"accuracy/top{k}", acc[f"top{k}"], ".2f"),
                     num(f"accuracy/reference_top{k}", ref, ".3f") if ref is not None else "",
                     f"{acc[f'top{k}'] - ref:+.2f}" if ref is not None else ""])
    real = acc.get("real")
    if real:
        rows += [[f"ReaL Top-{k}", num(f"accuracy/real/top{k}", real[f"top{k}"], ".2f"), "", ""] for k in (1, 5)]
    scope = (T("the {{ c }} classes of {{ s }}", c=acc["classes"], s=acc["label_set"]) if acc.get("label_set")
             else T("{{ c }} classes", c=acc["classes"]))
    out = [Markup("<h2>Accuracy</h2>"),
           T("<p>{{ n }} images counted, {{ scope }}; {{ lwo }} labelled images without output and "
             "{{ owl }} outputs without label (not counted).{% if real %} ReaL: {{ real.images }} of them with a "
             "ReaL label ({{ real.without_real_label }} without one, left out).{% endif %}</p>",
             n=num("accuracy/images", acc["images"], "d"), scope=scope, real=real,
             lwo=acc["labels_without_output"], owl=acc["outputs_without_label"]),
           table(["", "measured %", "reference %", "difference"], rows)]
    o = acc.get("outside_calibration")
    if o:
        out.append(T("<p>Top-1 on the {{ n }} images outside the calibration set: {{ top1 }}</p>", n=o["images"],
                     top1=num("accuracy/outside_calibration/top1", o["top1"], ".2f", suffix=" %")))
    return out + _unreadable(s)


def _unreadable(s: dict) -> list:
    out = []
    bad = s["dataset"]["unreadable"]
    if bad:
        out.append(T("<details open><summary>{{ n }} unreadable image(s) skipped</summary><ul>"
                     "{% for x in bad %}<li><code>{{ x.error }}</code></li>{% endfor %}</ul></details>",
                     n=len(bad), bad=bad))
    else:
        out.append(Markup("<p>No image was skipped.</p>"))
    return out


def parity_section(s: dict) -> list:
    out = [Markup("<h2>Parity</h2>")]
    p = s.get("parity")
    rows = []
    if p:
        rows.append(["ONNX export vs PyTorch float64", num("parity/top1_agreement", p["top1_agreement"], ".1f", 100, " %"),
                     num("parity/rel_l2_error", p["rel_l2_error"], ".2e"),
                     T("bound {{ b }}", b=num("parity/bound_rel_l2_error", p.get("bound_rel_l2_error"), ".2e")),
                     str(p.get("inputs", p.get("reference", ""))),
                     "PASS" if p.get("passed", True) else "FAIL: " + "; ".join(map(str, p.get("reasons", [])))])
    comp = s.get("compiled")
    if comp and comp.get("parity"):
        c = comp["parity"]
        q = c.get("accuracy")
        drop = T("Top-1 {{ a }} % vs fp32 {{ b }} %", a=num("compiled/parity/accuracy/top1", q["top1"], ".2f"),
                 b=num("compiled/parity/accuracy/fp32_top1", q["fp32_top1"], ".2f")) if q else ""
        rows.append([f"{comp.get('backend', '')} {comp['precision']} vs the fp32 ONNX",
                     num("compiled/parity/top1_agreement", c["top1_agreement"], ".1f", 100, " %"),
                     num("compiled/parity/rel_l2_error", c["rel_l2_error"], ".2e"), drop,
                     str(c.get("inputs", "")), str(comp.get("artifact", ""))])
    if not rows:
        return out + [Markup("<p>Not checked in this run: the model file was given as is (no PyTorch weights to "
                             "compare with) and nothing was compiled.</p>")]
    return out + [table(["artifact", "top-1 agreement", "rel. L2 error", "", "judged on", "verdict / file"], rows)]


def run_perf_section(s: dict) -> list:
    perf = s["performance"]
    b, st = perf["backend"], perf.get("stages", {})
    out = [Markup("<h2>Performance</h2>")]
    if perf.get("from_earlier_run"):
        out.append(T('<p class="muted">Nothing was left to infer: these figures are the earlier run\'s ({{ w }}).</p>',
                     w=perf.get("finished_at", "?")))
    label = f"{b['runtime']} {b['precision']}"
    comp = st.get("infer", {}).get("Interface throughputRate")
    e2e = st.get("e2e", {}).get("throughputRate")
    bs = perf["batch_size"]
    if comp:
        out.append(T("<p>Compute only {{ c }} images/s; end to end (read, preprocess, infer, write) {{ e }} images/s "
                     "at batch {{ bs }}.</p>", c=num("performance/stages/infer/Interface throughputRate", comp, ",.1f"),
                     e=num("performance/stages/e2e/throughputRate", e2e, ",.1f"), bs=bs))
        series = [{"name": f"{label} compute", "points": [(bs, comp, f"{label}: {comp:,.1f} images/s", False)]},
                  {"name": f"{label} end to end", "points": [(bs, e2e, f"end to end: {e2e:,.1f} images/s", False)]}]
        out.append(throughput_chart(series, [bs], s["model"], f"images/s at batch {bs}"))
    lat = perf.get("compute_latency_ms_per_batch")
    if lat:
        head, cells = latency_cells("performance/compute_latency_ms_per_batch", lat)
        out += [Markup("<h3>Compute latency, ms per batch</h3>"), table(head, [cells]),
                T("<p>Raw per-batch latencies: <code>{{ csv }}</code>. ≈ marks a percentile the run count cannot "
                  "resolve.</p>", csv=str(perf.get("latencies_csv") or "not saved"))]
    parts = [("read/decode", st.get("data read", {}).get("moduleLatency")),
             ("preprocess", st.get("preprocess", {}).get("moduleLatency")),
             ("inference", st.get("infer", {}).get("moduleLatency")),
             ("write", st.get("post", {}).get("moduleLatency"))]
    out.append(stacked_bar(parts, unit="ms", title="Where each image's time went (ms per image, by stage)"))
    out.append(stacked_bar(list(s.get("stage_seconds", {}).items()), unit="s",
                           title="Pipeline steps (seconds of wall time)"))
    return out


# ---------------------------------------------------------------- one perf sweep

def perf_page(p: dict) -> str:
    model = (p.get("model") or {})
    env = p["environment"]
    title = f"clsbench perf · {model.get('name') or os.path.basename(str(model.get('path', 'model')))}"
    sub = T("{{ n }} measurements on {{ cpu }} ({{ cpus }} CPUs) · each: warm-up {{ w }} runs, then ≥ {{ it }} runs "
            "and ≥ {{ d }} s, images/s = median of {{ r }} repeats", n=len(p["rows"]), cpu=env.get("cpu", "?"),
            cpus=env.get("logical_cpus"), w=p["warmup"], it=p["min_iterations"], d=p["duration_s"],
            r=p.get("repeats", 1))
    unstable = [r for r in p["rows"] if (r.get("stability") or {}).get("stable") is False]
    v = verdict("pass" if not unstable else "warn", "Measurement", T(
        "{{ ok }} of {{ n }} figures stable (repeats within 10 %){% if bad %}; unstable: {{ bad|join(', ') }}{% endif %}",
        ok=len(p["rows"]) - len(unstable), n=len(p["rows"]),
        bad=[f"{r['backend']} {r['precision']} bs{r['batch_size']} ({r['input']})" for r in unstable]))
    body = [T('<div class="verdicts">{{ v }}</div>', v=v), Markup("<h2>Throughput</h2>"), sweep_chart(p),
            Markup("<h2>Every measurement</h2>"), rows_table(p)]
    body += environment_section(env, None, p.get("command"), {
        "model file": model.get("path", ""), "threads asked": p.get("threads") or "runtime default",
        "runtimes": "; ".join(sorted({f"{r['runtime']['runtime']} {r['runtime']['version']} "
                                      f"({r['runtime'].get('threads')} threads)" for r in p["rows"]}))})
    return page(title, sub, body)


def sweep_chart(p: dict) -> Markup:
    series = []
    for c in p["configs"]:
        for mode in ("random normal", "real data"):
            pts = [(r["batch_size"], r["throughput_compute"],
                    f"{c['backend']} {c['precision']} ({mode}), batch {r['batch_size']}: "
                    f"{r['throughput_compute']:,.1f} images/s" +
                    (f" — UNSTABLE: {r['stability']['reason']}" if (r.get("stability") or {}).get("stable") is False else ""),
                    (r.get("stability") or {}).get("stable") is False)
                   for r in p["rows"] if (r["backend"], r["precision"], r["input"]) == (c["backend"], c["precision"], mode)]
            if pts:
                series.append({"name": f"{c['backend']} {c['precision']}" + (" (real data)" if mode == "real data" else ""),
                               "points": sorted(pts), "dashed": False})
    name = (p.get("model") or {}).get("name")
    chart = throughput_chart(series, p["batches"], name, "Compute-only images/s against batch size")
    note = "Grey dashed: the guide's figures for its devices (other hardware). " if name == GUIDE_MODEL else ""
    return chart + T('<p class="muted">{{ note }}Hollow points with a red ring: unstable (repeats spread > 10 %).</p>',
                     note=note)


def rows_table(p: dict) -> Markup:
    """Two tables over the same rows: images/s with its repeats, then latency per batch."""
    pcts = next((r["latency_ms"].get("percentiles") or [] for r in p["rows"] if r.get("latency_ms")), [])
    tput, lat_rows, classes = [], [], []
    for i, r in enumerate(p["rows"]):
        f, name = f"rows/{i}", [f"{r['backend']} {r['precision']}", str(r["input"]), str(r["batch_size"])]
        tput.append([*name, num(f + "/throughput_compute", r["throughput_compute"], ",.1f"),
                     num(f + "/throughput_e2e", r["throughput_e2e"], ",.1f"),
                     stability_cell(f + "/stability", r.get("stability")), str(r["iterations"])])
        lat = r.get("latency_ms") or {}
        cells = (latency_cells(f + "/latency_ms", lat)[1][1:] if lat  # without the run count
                 else ["(requests overlap)"] + [""] * (len(pcts) + 2))
        raw = r.get("latencies_csv")
        prof = os.path.dirname(str(r["profile"])) + "/report.html" if r.get("profile") else None  # perf --profile
        lat_rows.append([*name, *cells, T('{% if raw %}<a href="{{ raw }}">csv</a>{% endif %}{% if prof %} '
                                          '<a href="{{ prof }}">profile</a>{% endif %}', raw=raw, prof=prof)])
        classes.append("warnrow" if (r.get("stability") or {}).get("stable") is False else "")
    return (table(["config", "input", "batch", "images/s compute", "images/s end to end", "repeats", "runs"],
                  tput, classes) + Markup("<h3>Latency, ms per batch</h3>") +
            table(["config", "input", "batch", "min", "mean", *pcts, "max", "raw"], lat_rows) +
            Markup('<p class="muted">≈: a percentile the run count cannot resolve; raw: every run\'s latency (CSV).</p>'))


# ---------------------------------------------------------------- several runs side by side

ENV_KEYS = ("clsbench", "git_revision", "onnxruntime", "openvino", "torch", "python", "numpy", "cpu",
            "logical_cpus", "platform")


def plan_fields(r: dict, kind: str) -> dict:
    """What a record measured, as comparable text: the fields a verdict needs to be equal
    (JUDGED_ON) and the rest of the plan, shown when they differ. Records from before
    plans were recorded give what they hold."""
    if kind == "perf":
        m = r.get("model") or {}
        return {"model": str(m.get("key") or m.get("name") or "?"), "model file": str(m.get("sha256") or m.get("path"))}
    plan = r.get("plan") or {}
    b = r["performance"]["backend"]
    pp = {k: v for k, v in r.get("preprocessing", {}).items() if k != "preset"}
    return {"model": str((plan.get("model") or {}).get("key") or f"{r['model']}:{r.get('weights_tag', '')}"),
            "weights": str(r["weights"].get("sha256", "?"))[:16],
            "preset": ", ".join(f"{k} {v}" for k, v in pp.items()),
            "data": f"{r['dataset']['images']} ({r['dataset'].get('fingerprint') or (r['accuracy'] or {}).get('images')})",
            "batch": str(r["performance"]["batch_size"]), "backend": f"{b['runtime']} {b['precision']}"}


JUDGED_ON = ("model", "model file", "weights", "preset", "data", "batch")


def compare(folders: list[str], output: str, threshold: float = 5.0) -> dict:
    """The first folder is the baseline. Writes `output` (HTML) and the same rows as JSON
    beside it; returns their paths, the rows, a terminal table and the regression count.
    Regressions are judged only between like runs (JUDGED_ON equal); otherwise the runs are
    shown side by side with what differs, and no verdict."""
    from .._io import atomic_write_json, atomic_write_text, check_not_input

    json_path = os.path.splitext(output)[0] + ".json"
    if json_path == output:
        raise ClsbenchError(f"--output {output}: the comparison page is HTML and its JSON goes beside it "
                            f"({json_path}); give --output NAME.html")
    records = {f"{f}'s record": [os.path.join(f, n) for n in RECORD_FILES] for f in folders}
    for path in (output, json_path):  # the page and compare.json beside it: never over a record read
        check_not_input(path, records, "--output")
    loaded = [load(f) for f in folders]
    kinds = {k for k, _ in loaded}
    if len(kinds) != 1:
        what = {"run": "a run folder", "perf": "a perf folder", "loadgen": "a LoadGen folder"}
        raise ClsbenchError(f"{', '.join(folders)}: cannot compare " + " with ".join(what[k] for k in sorted(kinds))
                            + "; compare folders of one kind")
    kind = kinds.pop()
    if kind == "loadgen":
        raise ClsbenchError("report compares runs and perf sweeps; for LoadGen folders open each one's report.html")
    labels = _labels(folders)
    recs = [r for _, r in loaded]
    plans = [plan_fields(r, kind) for r in recs]
    plan_diff = [[k] + [p.get(k, "–") for p in plans] for k in plans[0] if len({p.get(k) for p in plans}) > 1]
    unlike = [row[0] for row in plan_diff if row[0] in JUDGED_ON]
    judge = not unlike
    rows = _run_rows(recs, threshold, judge) if kind == "run" else _perf_rows(recs, threshold, judge)
    envs = [(r["performance"] if "performance" in r else r).get("environment", {}) for r in recs]
    envs = [{**e, **_runtime_of(r)} for e, r in zip(envs, recs)]
    env_diff = [[k] + [str(e.get(k, "–")) for e in envs] for k in (*ENV_KEYS, "runtime", "threads")
                if len({str(e.get(k)) for e in envs}) > 1]
    result = {"baseline": os.path.abspath(folders[0]), "runs": dict(zip(labels, map(os.path.abspath, folders))), "threshold_percent": threshold,
              "rows": rows, "plan_differences": plan_diff, "environment_differences": env_diff,
              "judged": judge, "not_judged_because": unlike,
              "regressions": sum(c.get("regression", False) for r in rows for c in r["cells"])}
    os.makedirs(os.path.dirname(os.path.abspath(output)), exist_ok=True)
    atomic_write_json(json_path, result)
    atomic_write_text(output, compare_page(result, labels, recs, kind))
    return {"html": output, "json": json_path, "rows": rows, "regressions": result["regressions"],
            "judged": judge, "not_judged_because": unlike, "table": compare_table(result, labels)}


def _runtime_of(r: dict) -> dict:
    """The runtimes and thread counts a record measured with, as comparable text."""
    descs = [r["performance"]["backend"]] if "performance" in r else [x["runtime"] for x in r["rows"]]
    return {"runtime": ", ".join(sorted({f"{d['runtime']} {d['version']} {d.get('provider', '')}".strip()
                                          for d in descs})),
            "threads": ", ".join(sorted({str(d.get("threads")) for d in descs}))}


def _labels(folders: list[str]) -> list[str]:
    names = [os.path.basename(os.path.normpath(f)) or f for f in folders]
    return names if len(set(names)) == len(names) else [os.path.normpath(f) for f in folders]


def _cell(value, base, *, higher_is_better=True, percent=True, limit=None, unstable=False) -> dict:
    """One run's figure against the baseline's: the difference, and whether it regressed
    (worse by more than `limit`: percent of the baseline, or points when not `percent`)."""
    if value is None or base is None:
        return {"value": value, "delta": None}
    delta = (value - base) / base * 100 if percent and base else value - base
    worse = -delta if higher_is_better else delta
    cell = {"value": value, "delta": delta, **({} if percent else {"points": True})}
    if limit is not None and unstable and abs(delta) > limit:
        cell["unstable"] = True  # a gain or a drop, not judged: the figures themselves moved by more than that
    elif limit is not None and worse > limit:
        cell["regression"] = True
    return cell


def _run_rows(recs: list[dict], threshold: float, judge: bool = True) -> list[dict]:
    def fig(r, name):
        st = r["performance"].get("stages", {})
        lat = r["performance"].get("compute_latency_ms_per_batch") or {}
        acc = r["accuracy"] or {}
        return {"Top-1 %": acc.get("top1"), "Top-5 %": acc.get("top5"),
                "images counted": acc.get("images", (r.get("predictions") or {}).get("images")),
                "images/s compute": st.get("infer", {}).get("Interface throughputRate"),
                "images/s end to end": st.get("e2e", {}).get("throughputRate"),
                "p50 ms per batch": lat.get("p50"), "p99 ms per batch": lat.get("p99")}[name]

    same_data = judge and len({(r["dataset"]["images"], fig(r, "images counted")) for r in recs}) == 1
    unstable = [(r["performance"].get("compute_stability") or {}).get("stable") is False for r in recs]
    limit = threshold if judge else None
    rules = {"Top-1 %": dict(percent=False, limit=0.1 if same_data else None),
             "Top-5 %": dict(percent=False, limit=0.1 if same_data else None),
             "images counted": dict(percent=False),
             "images/s compute": dict(limit=limit), "images/s end to end": dict(limit=limit),
             "p50 ms per batch": dict(higher_is_better=False), "p99 ms per batch": dict(higher_is_better=False)}
    rows = []
    for name, rule in rules.items():
        base, timed = fig(recs[0], name), name.startswith(("images/s", "p50", "p99"))
        rows.append({"figure": name, "config": " | ".join(dict.fromkeys(_config(r) for r in recs)),
                     # a timing's instability says nothing about accuracy: only timed figures are spared
                     "cells": [_cell(fig(r, name), base, unstable=(unstable[0] or unstable[i]) and timed, **rule)
                               for i, r in enumerate(recs)]})
    return rows


def _config(r: dict) -> str:
    b = r["performance"]["backend"]
    return f"{r['model']} · {b['runtime']} {b['precision']} · batch {r['performance']['batch_size']}"


def _perf_rows(recs: list[dict], threshold: float, judge: bool = True) -> list[dict]:
    def key(row):
        return (row["backend"], row["precision"], row["batch_size"], row["input"])

    index = [{key(row): row for row in r["rows"]} for r in recs]
    keys = list(dict.fromkeys(k for ix in index for k in ix))
    rows = []
    for k in keys:
        base = index[0].get(k)
        cells = []
        for ix in index:
            row = ix.get(k)
            unstable = any((x.get("stability") or {}).get("stable") is False for x in (row, base) if x)
            cells.append(_cell(row and row["throughput_compute"], base and base["throughput_compute"],
                               limit=threshold if judge else None, unstable=unstable))
        rows.append({"figure": "images/s compute", "config": f"{k[0]} {k[1]} · batch {k[2]} · {k[3]}",
                     "cells": cells})
    return rows


def _cell_html(field: str, c: dict, first: bool) -> Markup:
    v = c["value"]
    if v is None:
        return Markup('<span class="muted">–</span>')
    text = num(field + "/value", v, ",.2f" if isinstance(v, float) else "d")
    if first or c.get("delta") is None:
        return text
    d = num(field + "/delta", c["delta"], "+.2f")
    unit = "" if c.get("points") else " %"
    if c.get("regression"):
        src = '{{ t }} <span class="regress" data-regression="1">({{ d }}{{ u }} ▼ regression)</span>'
    elif c.get("unstable"):
        src = '{{ t }} <span class="muted">({{ d }}{{ u }}, unstable: not judged)</span>'
    else:
        src = '{{ t }} <span class="muted">({{ d }}{{ u }})</span>'
    return T(src, t=text, d=d, u=unit)


def compare_page(result: dict, labels: list[str], recs: list[dict], kind: str) -> str:
    n = result["regressions"]
    if result.get("judged", True):
        v = verdict("fail" if n else "pass", "Regressions", T(
            "{{ n }} figure(s) worse than the baseline <b>{{ base }}</b> beyond the limits (images/s: {{ t }} %, "
            "accuracy: 0.1 points on the same data)", n=n, base=labels[0], t=f"{result['threshold_percent']:g}"))
    else:
        v = verdict("warn", "Not comparable", T(
            "the runs differ in {{ what }}: shown side by side, no regression verdict (see what differs below)",
            what=", ".join(result["not_judged_because"])))
    head = ["configuration", "figure", *[x + (" (baseline)" if i == 0 else "") for i, x in enumerate(labels)]]
    rows, classes = [], []
    for i, r in enumerate(result["rows"]):
        rows.append([r["config"], r["figure"],
                     *[_cell_html(f"rows/{i}/cells/{j}", c, j == 0) for j, c in enumerate(r["cells"])]])
        classes.append("bad" if any(c.get("regression") for c in r["cells"]) else "")
    body = [T('<div class="verdicts">{{ v }}</div>', v=v), Markup("<h2>Side by side</h2>"),
            Markup('<p class="muted">Differences are against the baseline: percent for images/s and latency, '
                   "points for accuracy.</p>"), table(head, rows, classes)]
    if kind == "perf":
        body += [Markup("<h2>Throughput</h2>"), _compare_chart(labels, recs)]
    diff = result.get("plan_differences", []) + result["environment_differences"]
    body += [Markup("<h2>What differs between the runs</h2>"),
             table(["", *labels], [[str(c) for c in r] for r in diff]) if diff
             else Markup("<p>Nothing in the plan or the recorded environment (versions, CPU, revision).</p>")]
    code = "<code>{{ c }}</code>"
    body += [Markup("<h2>Runs</h2>"), table(["", "folder", "command"], [
        [lbl, T(code, c=f), T(code, c=str(r.get("command") or "–"))]
        for (lbl, f), r in zip(result["runs"].items(), recs)])]
    return page(f"clsbench comparison · {len(labels)} runs", T("baseline: {{ b }}", b=result["baseline"]), body)


def _compare_chart(labels: list[str], recs: list[dict]) -> str:
    series = []
    for lbl, r in zip(labels, recs):
        for c in r["configs"]:
            pts = [(x["batch_size"], x["throughput_compute"], f"{lbl} {c['backend']} {c['precision']}, batch "
                    f"{x['batch_size']}: {x['throughput_compute']:,.1f} images/s",
                    (x.get("stability") or {}).get("stable") is False)
                   for x in r["rows"] if (x["backend"], x["precision"], x["input"]) ==
                   (c["backend"], c["precision"], "random normal")]
            if pts:
                series.append({"name": f"{lbl}: {c['backend']} {c['precision']}", "points": sorted(pts)})
    batches = sorted({b for r in recs for b in r["batches"]})
    names = {(r.get("model") or {}).get("name") for r in recs}
    return throughput_chart(series, batches, names.pop() if len(names) == 1 else None,
                            "Compute-only images/s (random input) against batch size")


def compare_table(result: dict, labels: list[str]):
    from rich.table import Table

    if result.get("judged", True):
        title = (f"Against the baseline {labels[0]} (regression: images/s down more than "
                 f"{result['threshold_percent']:g} %, Top-1/5 down more than 0.1 points)")
    else:
        title = (f"NOT COMPARABLE: the runs differ in {', '.join(result['not_judged_because'])}; "
                 f"side by side, no regression verdict")
    t = Table(title=title)
    for col in ["configuration", "figure", *labels]:
        t.add_column(col, justify="left" if col in ("configuration", "figure") else "right")
    for r in result["rows"]:
        cells = []
        for j, c in enumerate(r["cells"]):
            v = c["value"]
            s = "–" if v is None else (f"{v:,.2f}" if isinstance(v, float) else str(v))
            if j and c.get("delta") is not None:
                s += f" ({c['delta']:+.2f}{'' if c.get('points') else ' %'})"
                s += " [bold red]▼ regression[/]" if c.get("regression") else (" unstable" if c.get("unstable") else "")
            cells.append(s)
        t.add_row(r["config"], r["figure"], *cells)
    for row in result.get("plan_differences", []):
        t.add_row("differs", *row)
    return t


# ---------------------------------------------------------------- one LoadGen run

LG_PERCENTILES = (50.0, 90.0, 95.0, 97.0, 99.0, 99.9)


def loadgen_page(r: dict) -> str:
    t = r["target"]
    title = f"clsbench loadgen · {r['loadgen_scenario']} · {r['model'].get('key') or os.path.basename(r['model']['path'])}"
    sub = T("{{ rt.runtime }} {{ rt.version }} {{ t.precision }}, batch {{ t.batch_size }} · {{ n }} samples in "
            "memory ({{ source }}) · MLPerf LoadGen · {{ tool }}", rt=t["runtime"], t=t, n=r["data"]["samples"],
            source=r["data"]["source"], tool=r.get("tool", ""))
    cards, body = [], []
    for mode, run in r["runs"].items():
        cards.append(_lg_card(mode, run, r["scenario"]))
        body += _lg_run_section(mode, run)
    if r.get("peak"):
        cards.append(_lg_peak_card(r["peak"]))
        body += _lg_peak_section(r["peak"])
    body = [T('<div class="verdicts">{{ v }}</div>', v=join(cards))] + body
    body += environment_section(dict(r["environment"]), t["runtime"], r.get("command"),
                                {"model": r["model"]["path"], "data": r["data"]["source"],
                                 "scenario": r["scenario"], "mode": r["mode"]})
    return page(title, sub, body)


def tune_page(r: dict) -> str:
    """`clsbench tune`'s page: templates/tune.html.j2 (the winner, its ratios and commands, the
    frontier chart, every candidate, the search's path), then the environment."""
    model = (r["plan"].get("model") or {}).get("key") or os.path.basename(r["weights"])
    body = Markup(_env().get_template("tune.html.j2").render(r=r, num=num))
    env = environment_section(dict(r["environment"]), None, r.get("command"),
                              {"weights": r["weights"], "data": r["data"], "held-out images": r["split"].get("held_out_folder")})
    sub = T("backends × precisions × batch × parallelism, accuracy first · {{ tool }}", tool=r.get("tool", ""))
    return page(f"clsbench tune · {model}", sub, [body, *env])


def _lg_card(mode: str, run: dict, scenario: str) -> Markup:
    if mode == "accuracy":
        a = run.get("accuracy") or {}
        if a.get("top1") is None:
            return verdict("info", "Accuracy", T("{{ n }} responses logged, not scored (no labels)", n=a.get("images", 0)))
        return verdict("info", "Accuracy", T("Top-1 {{ t1 }}, Top-5 {{ t5 }} over {{ n }} LoadGen responses "
                                             "(the logits the SUT returned, decoded)",
                                             t1=num(f"runs/{mode}/accuracy/top1", a["top1"], ".2f", suffix=" %"),
                                             t5=num(f"runs/{mode}/accuracy/top5", a["top5"], ".2f", suffix=" %"),
                                             n=a["images"]))
    sm = run["summary"]
    f = sm["fields"]
    head = next((k for k in ("Samples per second", "Completed samples per second", "Samples per query")
                 if k in f), None)
    why = "; ".join(sm["reasons"]) or "every constraint LoadGen checks is satisfied"
    return verdict("pass" if sm["valid"] else "fail", f"LoadGen {f.get('Scenario', scenario)}",
                   T("{{ result }}{% if head %}: {{ head }} {{ v }}{% endif %} — {{ why }}", result=sm["result"] or "?",
                     head=head, v=num(f"runs/{mode}/summary/fields/{head}", f[head], ",.2f") if head else "", why=why))


def _lg_latency_points(f: dict) -> list:
    pts = []
    for p in LG_PERCENTILES:
        v = f.get(f"{p:.2f} percentile latency (ns)")
        if isinstance(v, (int, float)) and v > 0:
            pts.append((100 / (100 - p), v / 1e6, f"p{p:g}: {v / 1e6:.3f} ms", False))
    return pts


def _lg_run_section(mode: str, run: dict) -> list:
    out = [T("<h2>{{ m }} run</h2>", m=mode.capitalize()),
           T("<p>LoadGen's own logs: <code>{{ d }}</code> (mlperf_log_summary.txt, mlperf_log_detail.txt, "
             "mlperf_log_accuracy.json, and the user.conf it ran with). {{ n }} batches, mean size {{ mean }}"
             "{% if wait %}, the batcher waiting at most {{ wait }} ms for a batch to fill{% endif %}.</p>",
             d=run["folder"], n=run["batches"].get("count", 0), mean=run["batches"].get("mean", "–"),
             wait=run.get("max_wait_ms"))]
    sm = run.get("summary")
    if not sm:
        return out
    rows = [[k, num(f"runs/{mode}/summary/fields/{k}", v, ",.2f" if isinstance(v, float) else ",d")
             if isinstance(v, (int, float)) and not isinstance(v, bool) else str(v)]
            for k, v in sm["fields"].items()]
    pts = _lg_latency_points(sm["fields"])
    if pts:
        ticks = [x for x, *_ in pts]
        out.append(line_chart([{"name": "latency", "colour": PALETTE[0], "points": pts}],
                              xlabel="percentile", ylabel="ms", title="Latency distribution (LoadGen)",
                              xticks=ticks, xtick_labels={x: f"p{100 - 100 / x:g}" for x in ticks}))
    if sm["notes"]:
        out.append(T("<ul>{% for n in notes %}<li>{{ n }}</li>{% endfor %}</ul>", notes=sm["notes"]))
    out.append(T("<details><summary>Every field of mlperf_log_summary.txt</summary>{{ t }}</details>",
                 t=table(None, rows)))
    return out


def _lg_peak_card(pk: dict) -> Markup:
    if pk["peak_qps"] is None:
        return verdict("fail", "Peak", T("no target QPS was VALID at p{{ p }} ≤ {{ b }} ms ({{ n }} tries)",
                                         p="%g" % pk.get("percentile", 99), b=pk["latency_bound_ms"],
                                         n=len(pk["tries"])))
    return verdict("pass", "Peak", T("{{ q }} QPS, the highest VALID Server load at p{{ p }} ≤ {{ b }} ms "
                                     "(next try {{ hi }} INVALID; {{ n }} LoadGen runs)",
                                     q=num("peak/peak_qps", pk["peak_qps"], ",.2f"), b=pk["latency_bound_ms"],
                                     p="%g" % pk.get("percentile", 99), hi=pk["bracket"][1] if pk["bracket"][1] is not None else "–",
                                     n=len(pk["tries"])))


def _lg_peak_section(pk: dict) -> list:
    tries = sorted(pk["tries"], key=lambda t: t["target_qps"])
    pts = [(t["target_qps"], t["p99_ms"], f"{t['target_qps']:g} QPS: p99 {t['p99_ms']} ms, "
            f"{'VALID' if t['valid'] else 'INVALID'}", not t["valid"]) for t in tries if t["p99_ms"]]
    xs = [p[0] for p in pts]
    series = [{"name": "p99 latency (hollow: INVALID)", "colour": PALETTE[0], "points": pts}]
    if xs:
        series.append({"name": f"bound {pk['latency_bound_ms']:g} ms", "colour": PALETTE[3], "dashed": "4 3",
                       "points": [(min(xs), pk["latency_bound_ms"], "bound", False),
                                  (max(xs), pk["latency_bound_ms"], "bound", False)]})
    rows = [[num(f"peak/tries/{i}/target_qps", t["target_qps"], ",.2f"),
             "VALID" if t["valid"] else "INVALID", num(f"peak/tries/{i}/completed_qps", t["completed_qps"], ",.2f"),
             num(f"peak/tries/{i}/p99_ms", t["p99_ms"], ".3f"), "; ".join(t["reasons"])]
            for i, t in enumerate(pk["tries"])]
    return [Markup("<h2>Peak search (Server)</h2>"),
            line_chart(series, xlabel="offered QPS (log scale)", ylabel="p99 ms", title="p99 latency against offered load",
                       xticks=sorted(set(round(x) for x in xs)) if xs else [1]),
            table(["target QPS", "LoadGen", "completed QPS", "p99 ms", "why INVALID"], rows,
                  ["" if t["valid"] else "bad" for t in pk["tries"]])]
