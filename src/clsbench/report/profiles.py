"""Per-operator profiles (`clsbench profile`): THE normalised table, whatever the runtime
measured (ONNX Runtime's session profile, OpenVINO's performance counters, torch.profiler),
its files (profile.json, profile.csv), its terminal table and report page, and the
comparison of two profiles (`clsbench report A B` on two profile folders).

A node of the table: {name, op_type, kernel, precision, calls, ms, mean_ms, percent, source,
originals}. `ms` is the node's total over the profiled runs; `percent` its share of every
node's time; `source` the float graph's node it maps back to (a quantized or fused node's
float ancestor, as the collector decided from the model's own graph), `originals` the
names the runtime says it fused into it. The collection lives in `measure/profile.py`;
this module only reads what a collector hands over, and records read back are checked
against `records.PROFILE` first.
"""
from __future__ import annotations

import csv
import io
import json
import os
from collections import defaultdict

from markupsafe import Markup

from .. import ClsbenchError
from .html import T, join, num, page, table, verdict

PROFILE_FILE, CSV_FILE, TRACE_FILE = "profile.json", "profile.csv", "trace.json"
CSV_COLUMNS = ("name", "op_type", "kernel", "precision", "calls", "ms", "mean_ms", "percent", "source")
QDQ = ("QuantizeLinear", "DequantizeLinear", "DynamicQuantizeLinear", "FakeQuantize")


# ---------------------------------------------------------------- the normalised table

def summarise(events: list[dict]) -> list[dict]:
    """One node per name from a collector's events ({name, op_type, kernel, precision, ms,
    source?, originals?}, one per call): calls, total and mean ms, % of all nodes' time;
    the most expensive first."""
    nodes: dict[str, dict] = {}
    for e in events:
        n = nodes.setdefault(e["name"], {"name": e["name"], "op_type": e["op_type"], "kernel": e["kernel"],
                                         "precision": e["precision"], "calls": 0, "ms": 0.0,
                                         "source": e.get("source"), "originals": list(e.get("originals") or []),
                                         **({"shape": e["shape"]} if e.get("shape") else {})})
        n["calls"] += 1
        n["ms"] += float(e["ms"])
    total = sum(n["ms"] for n in nodes.values())
    for n in nodes.values():
        n["mean_ms"] = n["ms"] / n["calls"]
        n["percent"] = min(100.0, 100.0 * n["ms"] / total) if total else 0.0
    return sorted(nodes.values(), key=lambda n: (-n["ms"], n["name"]))


def op_types(nodes: list[dict]) -> list[dict]:
    """Totals per op type: nodes, calls, ms, % of all nodes' time; the most expensive first."""
    by: dict[str, dict] = {}
    for n in nodes:
        t = by.setdefault(n["op_type"], {"op_type": n["op_type"], "nodes": 0, "calls": 0, "ms": 0.0, "percent": 0.0})
        t["nodes"] += 1
        t["calls"] += n["calls"]
        t["ms"] += n["ms"]
        t["percent"] = min(100.0, t["percent"] + n["percent"])  # a sum's rounding never past 100
    return sorted(by.values(), key=lambda t: (-t["ms"], t["op_type"]))


def ms_text(ms: float) -> str:
    """Milliseconds in a sentence: three significant digits, never in exponent form (4,170, not 4.17e+03)."""
    return f"{ms:,.0f}" if abs(ms) >= 1000 else f"{ms:.3g}"


def coverage(nodes: list[dict], runs: int, measured_ms: float, after_ms: float | None = None,
             before_ms: float | None = None) -> dict:
    """The nodes' time per profiled run against the same batch's un-profiled latency, said
    in one sentence ("nodes account for 91 % of 12.4 ms; the rest is the runtime between
    nodes"). `after_ms`: the latency timed again after the profiled runs, `before_ms` the one
    timed before them (default `measured_ms`); when the two differ by more than 10 % the
    machine's speed changed meanwhile, and the sentence says so."""
    per_run = sum(n["ms"] for n in nodes) / runs
    pct = 100.0 * per_run / measured_ms if measured_ms > 0 else None
    if pct is None:
        text = f"nodes account for {ms_text(per_run)} ms a run; no un-profiled latency to set it against"
    elif pct <= 102:  # within the timing's noise of the whole run
        text = (f"nodes account for {pct:.0f} % of {ms_text(measured_ms)} ms (the batch's mean un-profiled "
                f"latency); the rest is the runtime between nodes")
    else:
        text = (f"nodes add up to {pct:.0f} % of {ms_text(measured_ms)} ms (the batch's mean un-profiled latency): "
                f"the profiler's own cost, or nodes timed in parallel, counts more than the run takes")
    before = measured_ms if before_ms is None else before_ms
    drift = after_ms is not None and before > 0 and abs(after_ms / before - 1) > 0.10
    if drift:
        text += (f"; timed before the profile: {ms_text(before)} ms, after it: {ms_text(after_ms)} ms, so the "
                 f"machine's speed changed meanwhile (other load?) and the share is approximate")
    return {"node_ms_per_run": per_run, "measured_ms": measured_ms, "percent": pct, "text": text,
            "measured_after_ms": after_ms, "unsteady": drift}


def csv_text(nodes: list[dict]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(CSV_COLUMNS)
    for n in nodes:
        w.writerow([n.get(c) if c not in ("ms", "mean_ms", "percent") else f"{n[c]:.6f}" for c in CSV_COLUMNS])
    return buf.getvalue()


def load_profile(folder: str) -> dict:
    """A profile folder's profile.json, checked against records.PROFILE (records are untrusted)."""
    from .records import _no_constant, validate, PROFILE

    path = os.path.join(folder, PROFILE_FILE)
    if not os.path.isfile(path):
        raise ClsbenchError(f"{folder}: no {PROFILE_FILE} (a `clsbench profile` folder)")
    try:
        with open(path, encoding="utf-8") as f:
            rec = json.load(f, parse_constant=_no_constant)
    except (OSError, ValueError) as e:
        raise ClsbenchError(f"{path}: not a readable clsbench record ({e})") from None
    return validate(rec, PROFILE, path)


def is_profile_folder(folder: str) -> bool:
    return os.path.isfile(os.path.join(folder, PROFILE_FILE))


def title_of(rec: dict) -> str:
    t = rec["plan"].get("target", {})
    m = rec["plan"].get("model", {})
    model = m.get("key") or os.path.basename(str(rec["plan"].get("weights", "model")))
    if m.get("provenance") not in (None, "official"):
        model += f" ({m['provenance']} weights)"
    return f"{model} · {t.get('backend', '?')} {t.get('precision', '?')} · batch {rec['batch_size']}"


def _op(n: dict) -> str:
    """A node's op type, a convolution's kind beside it (depthwise 3x3, pointwise 1x1)."""
    return f"{n['op_type']} ({n['shape']})" if n.get("shape") else n["op_type"]


def terminal_table(rec: dict, top: int):
    """The top `top` nodes and the op-type totals as rich tables, and the coverage line."""
    from rich.table import Table

    nodes = Table(title=f"where the time goes: {title_of(rec)} ({rec['runs']} profiled runs)")
    for c, just in (("node", "left"), ("op type", "left"), ("kernel", "left"), ("precision", "left"),
                    ("calls", "right"), ("total ms", "right"), ("mean ms", "right"), ("%", "right")):
        nodes.add_column(c, justify=just)
    for n in rec["nodes"][:top]:
        nodes.add_row(n["name"], _op(n), n["kernel"], n["precision"], str(n["calls"]), f"{n['ms']:.3f}",
                      f"{n['mean_ms']:.4f}", f"{n['percent']:.1f}")
    types = Table(title="per op type")
    for c in ("op type", "nodes", "calls", "total ms", "%"):
        types.add_column(c, justify="left" if c == "op type" else "right")
    for t in rec["op_types"]:
        types.add_row(t["op_type"], str(t["nodes"]), str(t["calls"]), f"{t['ms']:.3f}", f"{t['percent']:.1f}")
    return nodes, types, rec["coverage"]["text"]


# ---------------------------------------------------------------- report.html of one profile

BAR = ('<div class="bar" style="width:280px"><div style="width:{{ w }}%;background:{{ colour }};height:12px;'
       'border-radius:2px"></div></div>')


def _bars(rows: list[tuple[str, str, float, Markup]], colour: str) -> Markup:
    """Label, detail, share (%) and the shown number per row, the share drawn as a bar."""
    top = max([r[2] for r in rows] + [1e-12])
    cells = [[name, detail, T(BAR, w=f"{max(0.5, 100 * share / top):.1f}", colour=colour), shown]
             for name, detail, share, shown in rows]
    return table(["", "", "share", "%"], cells)


def profile_section(rec: dict, top: int = 20, field: str = "") -> list:
    """The profile's part of a page: the coverage verdict, the top operations and the op-type
    shares as bars (every number tagged with its field in the record)."""
    from .svg import PALETTE

    cov = rec["coverage"]
    state = "info" if cov["percent"] is not None and 50 <= cov["percent"] <= 110 and not cov.get("unsteady") else "warn"
    v = verdict(state, "Coverage", T("{{ text }} ({{ n }} of a run over {{ r }} profiled runs)", text=cov["text"],
                                     n=num(f"{field}coverage/node_ms_per_run", cov["node_ms_per_run"], ",.3f",
                                           suffix=" ms"), r=rec["runs"]))
    ops = [(n["name"] + (f" ({n['source']})" if n.get("source") not in (None, n["name"]) else ""),
            f"{_op(n)} · {n['kernel']} · {n['precision']}", n["percent"],
            num(f"{field}nodes/{i}/percent", n["percent"], ".1f")) for i, n in enumerate(rec["nodes"][:top])]
    types = [(t["op_type"], f"{t['nodes']} node" + ("s" if t["nodes"] != 1 else ""), t["percent"],
              num(f"{field}op_types/{i}/percent", t["percent"], ".1f"))
             for i, t in enumerate(rec["op_types"])]
    detail = [[n["name"], _op(n), n["kernel"], n["precision"], num(f"{field}nodes/{i}/calls", n["calls"], "d"),
               num(f"{field}nodes/{i}/ms", n["ms"], ",.3f"), num(f"{field}nodes/{i}/mean_ms", n["mean_ms"], ",.4f"),
               num(f"{field}nodes/{i}/percent", n["percent"], ".1f")] for i, n in enumerate(rec["nodes"])]
    return [T('<div class="verdicts">{{ v }}</div>', v=v),
            T("<h2>Top {{ n }} operations</h2>", n=len(ops)), _bars(ops, PALETTE[0]),
            Markup("<h2>Time per op type</h2>"), _bars(types, PALETTE[2]),
            T("<details><summary>every node ({{ n }})</summary>{{ t }}</details>", n=len(detail),
              t=table(["node", "op type", "kernel", "precision", "calls", "total ms", "mean ms", "%"], detail))]


def profile_page(rec: dict) -> str:
    from .html import environment_section

    sub = T("{{ input }} · warm-up {{ w }} runs, then {{ r }} profiled runs in a session of their own; the latency "
            "from {{ t }} un-profiled runs (Coverage says how) · trace: {{ trace }} (Perfetto, chrome://tracing)",
            input=rec["input"],
            w=rec["warmup"], r=rec["runs"], t=rec["timed_runs"], trace=rec.get("trace") or "–")
    body = profile_section(rec)
    body += environment_section(dict(rec.get("environment") or {}), rec.get("runtime"), rec.get("command"),
                                {"model file": rec["plan"].get("weights", ""), "profiler": rec.get("profiler", "")})
    return page(f"clsbench profile · {title_of(rec)}", sub, body)


def write_profile_report(folder: str) -> str:
    """folder/report.html from folder/profile.json (checked first); returns its path."""
    from .._io import atomic_write_text

    path = os.path.join(folder, "report.html")
    atomic_write_text(path, profile_page(load_profile(folder)))
    return path


# ---------------------------------------------------------------- what changed between two profiles

def _key(n: dict) -> str:
    return n.get("source") or n["name"]


def _groups(rec: dict) -> dict[str, dict]:
    """The nodes of a profile grouped by the float graph's node they map back to, per run."""
    runs = rec["runs"]
    out: dict[str, dict] = {}
    for n in rec["nodes"]:
        g = out.setdefault(_key(n), {"ms": 0.0, "names": [], "kernels": [], "precisions": [], "op_types": [],
                                     "originals": [], "shape": n.get("shape")})
        g["ms"] += n["ms"] / runs
        g["float_node"] = g.get("float_node") or n.get("source") is not None  # a node of the float graph
        for k, v in (("names", n["name"]), ("kernels", n["kernel"]), ("precisions", n["precision"]),
                     ("op_types", n["op_type"])):
            if v not in g[k]:
                g[k].append(v)
        g["originals"] += [o for o in n.get("originals") or [] if o not in g["originals"]]
    return out


def _match(a: dict[str, dict], b: dict[str, dict]) -> dict[str, str]:
    """B's group key -> A's: the same float node, else a name or fused original A knows."""
    index: dict[str, str] = {}
    for k, g in a.items():
        for name in (k, *g["names"], *g["originals"]):
            index.setdefault(name, k)
    out = {}
    for k, g in b.items():
        hit = next((index[x] for x in (k, *g["names"], *g["originals"]) if x in index), None)
        out[k] = hit or k
    return out


def _why(ga: dict | None, gb: dict | None, kept: bool, b_int8: bool) -> str:
    own = "the runtime's own: no float-graph node"
    if ga is None:
        if set(gb["op_types"]) & set(QDQ) or any("/fq_" in x for x in gb["names"]):  # OpenVINO's FakeQuantize
            return "added in B (quantize/dequantize)"
        # a node of the float graph with no node of its own in A: A's runtime fused it into a neighbour
        return "fused into another node in A (its time is there)" if gb.get("float_node") else f"only in B ({own})"
    if gb is None:
        return "gone in B (fused or folded away)" if ga.get("float_node") else f"only in A ({own})"
    if kept:
        return "kept in float by accuracy control"
    if b_int8 and set(gb["precisions"]) <= {"fp32"}:
        return "stayed in float"
    if set(ga["kernels"]) == set(gb["kernels"]):
        return "same kernel"
    return "kernel changed"


def _row(key: str, ga: dict | None, gb: dict | None, kept: bool, threshold: float, b_int8: bool = False) -> dict:
    a_ms, b_ms = (ga or {}).get("ms", 0.0), (gb or {}).get("ms", 0.0)
    change = 100.0 * (b_ms - a_ms) / a_ms if a_ms else None
    shape = (ga or {}).get("shape") or (gb or {}).get("shape")
    return {"node": key, "op_type": (ga or gb)["op_types"][0], "shape": shape, "a_ms": a_ms, "b_ms": b_ms,
            "gained_ms": a_ms - b_ms, "speedup": a_ms / b_ms if a_ms and b_ms else None,
            "change_percent": change, "a_kernels": (ga or {}).get("kernels", []),
            "b_kernels": (gb or {}).get("kernels", []),
            "a_precisions": (ga or {}).get("precisions", []), "b_precisions": (gb or {}).get("precisions", []),
            "b_names": (gb or {}).get("names", []), "kept_in_float": kept,
            "significant": change is None or abs(change) > threshold, "why": _why(ga, gb, kept, b_int8)}


def compare_profiles(folders: list[str], output: str, threshold: float) -> dict:
    """Two profiles, A the baseline: each float-graph node's time per run before and after
    (quantized, fused and renamed nodes mapped back, collector's `source`), its speed-up,
    kernels and precisions, whether accuracy control kept it in float; the same per op type;
    sorted by the time gained or lost. Writes `output` (HTML) and its JSON beside it."""
    from .._io import atomic_write_json, atomic_write_text, check_not_input

    if len(folders) != 2:
        raise ClsbenchError(f"report compares two profiles (A B), got {len(folders)} profile folders")
    json_path = os.path.splitext(output)[0] + ".json"
    if json_path == output or os.path.isdir(output):
        raise ClsbenchError(f"--output {output}: give --output NAME.html, a file (its JSON goes beside it)")
    own = (PROFILE_FILE, CSV_FILE, TRACE_FILE, "report.html")  # a profile's own files, its report.html too
    records = {f"a file of the profile {f}": [os.path.join(f, n) for n in own] for f in folders}
    for path in (output, json_path):
        check_not_input(path, records, "--output")
    a, b = (load_profile(f) for f in folders)
    same_model(a, b, folders)
    result = compare_records(a, b, threshold)
    result.update(a=os.path.abspath(folders[0]), b=os.path.abspath(folders[1]))
    os.makedirs(os.path.dirname(os.path.abspath(output)), exist_ok=True)
    atomic_write_json(json_path, result)
    atomic_write_text(output, compare_page(result, a, b))
    return {**result, "html": output, "json": json_path}


def same_model(a: dict, b: dict, folders: list[str]) -> None:
    """Two profiles compare node by node only when they are of one model (its fp32 and int8,
    two runtimes) at one batch size: refused when their records name two models or two batches."""
    ka, kb = (r["plan"].get("model", {}).get("key") for r in (a, b))
    if ka != kb:
        what = [k or f"a model clsbench does not know ({os.path.basename(str(r['plan'].get('weights', '?')))})"
                for k, r in ((ka, a), (kb, b))]
        raise ClsbenchError(f"{folders[0]} profiles {what[0]}, {folders[1]} {what[1]}: the nodes of two models do "
                            f"not match; compare two profiles of one model (fp32 and int8, two runtimes)")
    if a["batch_size"] != b["batch_size"]:  # every time is per batch: a bigger batch is not a slower node
        raise ClsbenchError(f"{folders[0]} is a profile at batch {a['batch_size']}, {folders[1]} at batch "
                            f"{b['batch_size']}: their times are per batch; profile both at one --batch-size")


def compare_records(a: dict, b: dict, threshold: float) -> dict:
    ga, gb = _groups(a), _groups(b)
    to_a = _match(ga, gb)
    kept = set(b.get("kept_in_float") or [])
    merged: dict[str, dict] = {}
    for kb, g in gb.items():
        m = merged.setdefault(to_a[kb], {"ms": 0.0, "names": [], "kernels": [], "precisions": [], "op_types": [],
                                         "originals": []})
        m["ms"] += g["ms"]
        m["float_node"] = m.get("float_node") or g.get("float_node")
        for k in ("names", "kernels", "precisions", "op_types"):
            m[k] += [x for x in g[k] if x not in m[k]]
    keys = list(dict.fromkeys([*ga, *merged]))
    b_int8 = b["plan"].get("target", {}).get("precision") == "int8"
    rows = [_row(k, ga.get(k), merged.get(k), k in kept or bool(set((merged.get(k) or {}).get("names", [])) & kept),
                 threshold, b_int8) for k in keys]
    rows.sort(key=lambda r: (-abs(r["gained_ms"]), r["node"]))
    types: dict[str, dict] = defaultdict(lambda: {"a_ms": 0.0, "b_ms": 0.0})
    for r in rows:  # per op type, a convolution by its kind (depthwise, pointwise): they quantize differently
        t = f"{r['op_type']} {r['shape']}" if r.get("shape") else r["op_type"]
        types[t]["a_ms"] += r["a_ms"]
        types[t]["b_ms"] += r["b_ms"]
    type_rows = sorted(({"op_type": t, **v, "gained_ms": v["a_ms"] - v["b_ms"],
                         "speedup": v["a_ms"] / v["b_ms"] if v["a_ms"] and v["b_ms"] else None}
                        for t, v in types.items()), key=lambda r: (-abs(r["gained_ms"]), r["op_type"]))
    ta, tb = a["coverage"]["node_ms_per_run"], b["coverage"]["node_ms_per_run"]
    la, lb = a["coverage"]["measured_ms"], b["coverage"]["measured_ms"]
    return {"threshold_percent": threshold, "a_title": title_of(a), "b_title": title_of(b),
            "node_ms": [ta, tb], "measured_ms": [la, lb], "speedup_nodes": ta / tb if tb else None,
            "speedup_measured": la / lb if lb else None, "rows": rows, "op_types": type_rows,
            "not_faster": [r["node"] for r in rows if r["speedup"] is not None and r["speedup"] < 1 + threshold / 100],
            "kept_in_float": sorted(kept)}


def compare_terminal(result: dict, top: int = 20):
    from rich.table import Table

    t = Table(title=f"A {result['a_title']}  →  B {result['b_title']}: nodes {result['node_ms'][0]:.3f} → "
                    f"{result['node_ms'][1]:.3f} ms a run, measured {result['measured_ms'][0]:.3f} → "
                    f"{result['measured_ms'][1]:.3f} ms")
    for c in ("node", "op type", "A ms", "B ms", "speed-up", "A kernel", "B kernel", "why"):
        t.add_column(c, justify="right" if c in ("A ms", "B ms", "speed-up") else "left")
    for r in result["rows"][:top]:
        t.add_row(r["node"], _op(r), f"{r['a_ms']:.4f}", f"{r['b_ms']:.4f}",
                  f"{r['speedup']:.2f}×" if r["speedup"] else "–", ", ".join(r["a_kernels"]) or "–",
                  ", ".join(r["b_kernels"]) or "–", r["why"] + (" *" if r["significant"] else ""))
    return t


def compare_page(result: dict, a: dict, b: dict) -> str:
    def x(v, field):
        return num(field, v, ".2f", suffix="×") if v is not None else Markup('<span class="muted">–</span>')

    sub = T("A (baseline) {{ a }} · B {{ b }} · a change beyond {{ th }} % is marked", a=result["a_title"],
            b=result["b_title"], th=result["threshold_percent"])
    v = verdict("info", "Speed-up", T("nodes {{ na }} → {{ nb }} ms a run ({{ sn }}); measured latency {{ la }} → "
                                      "{{ lb }} ms ({{ sm }})",
                                      na=num("node_ms/0", result["node_ms"][0], ",.3f"),
                                      nb=num("node_ms/1", result["node_ms"][1], ",.3f"),
                                      sn=x(result["speedup_nodes"], "speedup_nodes"),
                                      la=num("measured_ms/0", result["measured_ms"][0], ",.3f"),
                                      lb=num("measured_ms/1", result["measured_ms"][1], ",.3f"),
                                      sm=x(result["speedup_measured"], "speedup_measured")))
    rows = [[r["node"], _op(r), num(f"rows/{i}/a_ms", r["a_ms"], ",.4f"), num(f"rows/{i}/b_ms", r["b_ms"], ",.4f"),
             x(r["speedup"], f"rows/{i}/speedup"),
             T("{{ w }}{% if k %} <b>(kept in float)</b>{% endif %}", w=r["why"], k=r["kept_in_float"]),
             ", ".join(r["a_kernels"]) or "–", ", ".join(r["b_kernels"]) or "–"]
            for i, r in enumerate(result["rows"])]
    marks = ["warnrow" if r["significant"] and (r["speedup"] or 0) < 1 else "" for r in result["rows"]]
    types = [[r["op_type"], num(f"op_types/{i}/a_ms", r["a_ms"], ",.4f"), num(f"op_types/{i}/b_ms", r["b_ms"], ",.4f"),
              x(r["speedup"], f"op_types/{i}/speedup")] for i, r in enumerate(result["op_types"])]
    body = [T('<div class="verdicts">{{ v }}</div>', v=v), Markup("<h2>Per op type (the float graph's)</h2>"),
            table(["op type", "A ms", "B ms", "speed-up"], types),
            Markup("<h2>Per node, by time gained or lost</h2>"),
            table(["node (float graph)", "op type", "A ms", "B ms", "speed-up", "why", "A kernel", "B kernel"], rows,
                  marks),
            Markup("<h2>A</h2>"), join(profile_section(a, 10, "a/")), Markup("<h2>B</h2>"),
            join(profile_section(b, 10, "b/"))]
    return page("clsbench profile comparison", sub, body)


def report_command(folders: list[str], output: str, threshold: float, out) -> int:
    """`clsbench report` on profile folders: one rebuilds its report.html, two are compared
    (A the baseline); prints to the console `out`."""
    for f in folders:
        if not os.path.isdir(f):
            raise ClsbenchError(f"{f}: " + ("not a folder" if os.path.exists(f) else "folder not found")
                                + "; give `clsbench profile` output folders (they hold profile.json)")
    other = [f for f in folders if not is_profile_folder(f)]
    if other:
        cells = sorted(os.path.join(other[0], "profiles", c) for c in
                       (os.listdir(os.path.join(other[0], "profiles")) if os.path.isdir(os.path.join(other[0], "profiles"))
                        else []) if is_profile_folder(os.path.join(other[0], "profiles", c)))
        hint = f" (its `perf --profile` profiles: {', '.join(cells[:3])})" if cells else ""
        raise ClsbenchError(f"{other[0]}: not a profile folder (no {PROFILE_FILE}){hint}; cannot compare a profile "
                            f"folder with another kind of folder: give two `clsbench profile` folders")
    if len(folders) == 1:
        out.print(f"report: {write_profile_report(folders[0])}", markup=False)
        return 0
    r = compare_profiles(folders, output, threshold)
    out.print(compare_terminal(r))
    sn, sm = r["speedup_nodes"], r["speedup_measured"]
    out.print(f"B against A: nodes {sn:.2f}× faster, measured latency {sm:.2f}× faster; "
              f"{len(r['not_faster'])} node(s) gained less than {threshold:g} %"
              if sn and sm else "B against A: no speed-up to state", markup=False)
    out.print(f"comparison: {r['html']} (and {r['json']})", markup=False)
    return 0
