"""People-facing output: accuracy and throughput tables (terminal, Markdown)."""
from __future__ import annotations

from rich.table import Table

from .evaluate import Accuracy
from .models import ModelSpec


def accuracy_rows(acc: Accuracy, spec: ModelSpec | None) -> list[tuple[str, str, str, str]]:
    ref = {1: spec.top1, 5: spec.top5} if spec else {}
    rows = []
    for k in range(1, 6):
        got = acc.percent(k)
        r = ref.get(k)
        rows.append((f"Top{k}", f"{got:.2f}", f"{r:.3f}" if r is not None else "",
                     f"{got - r:+.2f}" if r is not None else ""))
    return rows


def accuracy_table(acc: Accuracy, spec: ModelSpec | None, title: str = "Accuracy") -> Table:
    t = Table(title=f"{title} ({acc.images} images, {acc.num_classes} classes)")
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
    rows = []
    for stage, fields in record.get("stages", {}).items():
        for k, v in fields.items():
            unit = "img/s" if "throughput" in k.lower() else "ms"
            rows.append((stage, k, f"{v:,.2f} {unit}"))
    return rows


def perf_table(record: dict, title: str) -> Table:
    t = Table(title=title)
    for col in ("stage", "figure", "value"):
        t.add_column(col, justify="right" if col == "value" else "left")
    for row in perf_rows(record):
        t.add_row(*row)
    lat = record.get("compute_latency_ms_per_batch") or record.get("latency_ms_per_batch")
    if lat:
        t.add_row("compute", "latency/batch min|p50|p99|max",
                  f"{lat['min']:.2f} | {lat['p50']:.2f} | {lat['p99']:.2f} | {lat['max']:.2f} ms")
    return t


def backend_line(record: dict) -> str:
    b, env = record["backend"], record["environment"]
    return (f"{b['runtime']} {b['version']} {b.get('provider', '')} {b['precision']}, "
            f"{b['threads']} threads, batch {record['batch_size']}, on {env['cpu']}")
