"""report.html as a person sees it: rendered in headless Chromium with networking off (a
loopback-only network namespace), no console errors, no request but the file itself,
charts present, and every number shown equal to the one in summary.json / perf.json /
compare.json.

Needs Debian's `chromium` and the `playwright` package (make test installs both)."""
from __future__ import annotations

import json
import math
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import run_cli

PROBE = Path(__file__).with_name("browser_probe.py")


def _have_browser() -> bool:
    try:
        import playwright  # noqa: F401
    except ImportError:
        return False
    return bool(shutil.which("chromium") or shutil.which("chromium-browser") or os.environ.get("CLSBENCH_CHROMIUM"))


# (in CI a skip is a failure: conftest.pytest_sessionfinish)
pytestmark = pytest.mark.skipif(not _have_browser(), reason="no chromium/playwright here (make test installs them)")


def render(out_dir: Path, *pages: Path, screenshot: Path | None = None) -> dict:
    """The probe's findings for each page, the browser started inside `unshare -n` with only
    loopback up: a request that tried to leave would fail, and the probe still records it."""
    out = out_dir / "probe.json"
    args = [sys.executable, str(PROBE), str(out), *map(str, pages)]
    if screenshot:
        args += ["--screenshot", str(screenshot)]
    inner = "(ip link set lo up 2>/dev/null || true); exec " + " ".join(f"'{a}'" for a in args)
    p = subprocess.run(["unshare", "-n", "sh", "-c", inner], capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stdout + p.stderr
    return {Path(k).name if Path(k).name != "report.html" else Path(k).parent.name: v
            for k, v in json.loads(out.read_text()).items()}


def lookup(record, field: str):
    for part in field.split("/"):
        record = record[int(part)] if isinstance(record, list) else record[part]
    return record


# The record's fractions (0..1) that a page shows as percentages: decided here, from the
# record's schema (report/records.py: FRAC fields and the spread of stability), never from
# the page's own data-scale, which a page that forgot the ×100 would simply not carry.
FRACTIONS = re.compile(r"(/spread|/prob|top1_agreement)$")


def check_numbers(page: dict, record: dict) -> int:
    """Each tagged number: its data-value is the record's value at its field, and the text
    shown is that value, ×100 where the record holds a fraction, rounded as displayed
    (digits after the point, or 3 significant digits in e-notation). Returns how many were
    checked."""
    for f in page["fields"]:
        want = lookup(record, f["field"])
        got = float(f["value"])
        assert got == pytest.approx(want, rel=1e-12, abs=0), f
        shown = re.sub(r"[≈,%\s]", "", f["text"])
        scale = 100.0 if FRACTIONS.search(f["field"]) else 1.0
        assert float(f["scale"]) == scale, f  # the page says what it did; the test knows what it should
        scaled = want * scale
        if "e" in shown:
            assert float(shown) == pytest.approx(scaled, rel=6e-3), f
        else:
            decimals = len(shown.split(".")[1]) if "." in shown else 0
            assert abs(float(shown) - scaled) <= 0.5 * 10 ** -decimals + 1e-9, f
    return len(page["fields"])


NUMBER = re.compile(r"^[≈+-]?[\d,]*\.?\d+(e[+-]?\d+)?( ?%| ms| images/s)?$")


def numbers_in(record) -> list[float]:
    out = []
    if isinstance(record, dict):
        for v in record.values():
            out += numbers_in(v)
    elif isinstance(record, list):
        for v in record:
            out += numbers_in(v)
    elif isinstance(record, (int, float)) and not isinstance(record, bool):
        out.append(float(record))
    return out


def shown_equals(text: str, want: float, scale: float = 1.0) -> bool:
    shown = re.sub(r"[≈,%\s]|ms|images/s", "", text)
    if "e" in shown:
        return float(shown) == pytest.approx(want * scale, rel=6e-3)
    decimals = len(shown.split(".")[1]) if "." in shown else 0
    return abs(float(shown) - want * scale) <= 0.5 * 10 ** -decimals + 1e-9


def check_run_tables(page: dict, s: dict) -> int:
    """Every numeric cell of every table on a run's page, tagged or not: the accuracy and
    latency tables cell by cell against the figures they show (differences recomputed from
    the record), any other numeric cell against some number the record holds."""
    acc, lat = s["accuracy"], s["performance"]["compute_latency_ms_per_batch"]
    known = numbers_in(s)
    checked = 0
    for t in page["tables"]:
        head = t[0]
        for row in t[1:]:
            if head[:4] == ["", "measured %", "reference %", "difference"]:
                k = int(row[0].split("-")[1])
                ref = acc.get(f"reference_top{k}") if k in (1, 5) else None
                assert shown_equals(row[1], acc[f"top{k}"]), row
                assert (row[2] == "") == (ref is None) and (row[3] == "") == (ref is None), row
                if ref is not None:
                    assert shown_equals(row[2], ref) and shown_equals(row[3], acc[f"top{k}"] - ref), row
                checked += 1
                continue
            if head[:2] == ["runs", "min"]:
                assert int(row[0]) == lat["count"], row
                for name, cell in zip(head[1:], row[1:]):
                    assert shown_equals(cell, lat[name]), (name, cell)
                checked += 1
                continue
            for cell in row[1:]:
                if NUMBER.match(cell):
                    want = [x for x in known if shown_equals(cell, x) or shown_equals(cell, x, 100)]
                    assert want, (head, row, cell)
                    checked += 1
    return checked


def assert_clean(page: dict, url_end: str):
    assert page["console"] == [], page["console"]
    assert page["requests"] and all(u.startswith("file://") for u in page["requests"]), page["requests"]
    assert page["requests"] == [r for r in page["requests"] if r.endswith(url_end)]


@pytest.fixture(scope="module")
def reports(tmp_path_factory, proxy_weights, proxy_dataset, onnx_model, prep):
    """A real run (two unreadable files among good ones), a real perf sweep, and a copy of
    that sweep made slower by hand, compared."""
    tmp = tmp_path_factory.mktemp("reports")
    data = tmp / "data"
    shutil.copytree(proxy_dataset, data)
    (data / "val" / "proxy_2024_000900.JPEG").write_bytes(b"")
    (data / "val" / "proxy_2024_000901.JPEG").write_bytes(b"\xff\xd8 not really a jpeg")
    run_cli("run", "-q", "--weights", proxy_weights, "--data", data, "--batch-size", "4", "--work-dir", tmp / "run",
            "--percentiles", "50,90,99,99.9")
    run_cli("perf", "-q", "--model", onnx_model, "--batches", "1,2", "--duration", "0", "--iterations", "6",
            "--warmup", "1", "--data", prep, "--output", tmp / "perf", "--repeats", "3")
    slow = tmp / "slower"
    slow.mkdir()
    rec = json.loads((tmp / "perf" / "perf.json").read_text())
    for r in rec["rows"]:
        r["throughput_compute"] *= 0.8  # 20 % slower: a regression beyond the 5 % threshold
        r["stability"]["stable"], r["stability"]["spread"] = True, 0.01
    (slow / "perf.json").write_text(json.dumps(rec))
    base = json.loads((tmp / "perf" / "perf.json").read_text())
    for r in base["rows"]:  # the baseline marked stable too, so every row is judged
        r["stability"]["stable"], r["stability"]["spread"] = True, 0.01
    (tmp / "base").mkdir()
    (tmp / "base" / "perf.json").write_text(json.dumps(base))
    run_cli("report", tmp / "base", slow, "--output", tmp / "compare.html")
    return tmp


def check_charts(page: dict) -> None:
    """What a person sees in the charts: every point of every series inside the plot area
    (none under the axis), the guide's reference series told apart by their dashes, and
    every label written on a bar fitting inside its bar (measured by Chromium's layout)."""
    for chart in page["geometry"]:
        if chart["plot"]:
            left, top, right, bottom = chart["plot"]
            for s in chart["series"]:
                for x, y, r in s["circles"]:
                    assert left <= x <= right and top <= y <= bottom, (chart["title"], s["name"], x, y)
            refs = [s for s in chart["series"] if s["name"].endswith("(guide)")]
            assert len({(s["dash"], s["stroke"]) for s in refs}) == len(refs), refs
            assert len({s["dash"] for s in refs}) == len(refs), refs
        for t in chart["onbar"]:
            assert t["width"] + 4 <= t["room"], t


@pytest.fixture(scope="module")
def pages(reports):
    """The run, perf and comparison pages, rendered by one Chromium start (each start ~2.5 s)."""
    return render(reports, reports / "run" / "report.html", reports / "perf" / "report.html",
                  reports / "compare.html", screenshot=reports / "run.png")


def test_run_report_in_chromium(reports, pages):
    page = pages["run"]
    assert_clean(page, "run/report.html")
    summary = json.loads((reports / "run" / "summary.json").read_text())
    assert check_numbers(page, summary) >= 25
    assert check_run_tables(page, summary) >= 7
    fields = {f["field"] for f in page["fields"]}
    assert {"accuracy/top1", "accuracy/top5", "parity/rel_l2_error", "performance/compute_latency_ms_per_batch/p99.9",
            "performance/stages/infer/Interface throughputRate"} <= fields
    assert page["charts"] == 3  # images/s at the run's batch, time per stage, pipeline steps
    check_charts(page)
    own = [s for s in page["geometry"][0]["series"] if not s["name"].endswith("(guide)")]
    assert len(own) == 2 and all(len(s["circles"]) == 1 and s["circles"][0][2] >= 6 for s in own), own
    assert len([s for s in page["geometry"][0]["series"] if s["name"].endswith("(guide)")]) == 3
    assert dict(page["verdicts"])["Accuracy"] == ("pass" if summary["accuracy"]["within_tolerance"] else "fail")
    assert dict(page["verdicts"])["Parity"] == "pass"
    for name in ("proxy_2024_000900.JPEG", "proxy_2024_000901.JPEG"):  # the skipped files, listed
        assert name in page["text"]
    assert summary["command"].startswith("clsbench run -q --weights") and summary["command"] in page["text"]
    assert (reports / "run.png").read_bytes()[:4] == b"\x89PNG"


def test_perf_report_in_chromium(reports, pages):
    page = pages["perf"]
    assert_clean(page, "perf/report.html")
    rec = json.loads((reports / "perf" / "perf.json").read_text())
    assert check_numbers(page, rec) >= 4 * 9
    # one point per batch size for each configuration and input, and the guide's devices
    # beside the guide's model
    assert page["series"]["onnxruntime fp32"] == 2 and page["series"]["onnxruntime fp32 (real data)"] == 2
    assert page["series"]["Ascend 710 (guide)"] == 6
    check_charts(page)
    assert all(f"rows/{i}/latency_ms/p99.9" in {f["field"] for f in page["fields"]} for i in range(4))


def test_compare_report_in_chromium(reports, pages):
    page = pages["compare.html"]
    assert_clean(page, "compare.html")
    rec = json.loads((reports / "compare.json").read_text())
    assert check_numbers(page, rec) >= 8
    side = next(t for t in page["tables"] if t[0][:2] == ["configuration", "figure"])
    assert len(side) - 1 == len(rec["rows"])
    for shown, row in zip(side[1:], rec["rows"]):  # every cell, tagged or not: value, then its difference
        for text, cell in zip(shown[2:], row["cells"]):
            value, _, rest = text.partition(" ")
            assert shown_equals(value, cell["value"]), (text, cell)
            if cell.get("delta") is not None and rest:
                assert shown_equals(rest.strip("(").split(" ")[0], cell["delta"]), (text, cell)
    assert page["regressions"] == 4 == rec["regressions"]  # every row 20 % slower, each marked
    for row in rec["rows"]:
        assert row["cells"][1]["delta"] == pytest.approx(-20.0) and row["cells"][1]["regression"]
    assert dict(page["verdicts"])["Regressions"] == "fail"


def test_the_probe_sees_a_request_that_leaves(reports):
    """The check above could not fail if the probe missed requests: a page that fetches an
    outside image must show up (the namespace makes the fetch itself fail)."""
    bad = reports / "leaky.html"
    bad.write_text('<html><body><img src="http://203.0.113.7/x.png"><script>console.error("boom")</script>'
                   '</body></html>')
    page = render(reports, bad)["leaky.html"]
    assert any(u.startswith("http://203.0.113.7") for u in page["requests"])
    assert any("boom" in m for m in page["console"])
    with pytest.raises(AssertionError):
        assert_clean(page, "leaky.html")


def test_numbers_check_catches_a_wrong_figure(reports):
    """check_numbers fails when the page shows a figure the record does not hold."""
    summary = json.loads((reports / "run" / "summary.json").read_text())
    page = {"fields": [{"field": "accuracy/top1", "value": repr(summary["accuracy"]["top1"]), "scale": "1",
                        "text": f"{summary['accuracy']['top1'] + 0.1:.2f}"}]}
    with pytest.raises(AssertionError):
        check_numbers(page, summary)
    assert not math.isnan(summary["accuracy"]["top1"])


# ---------------------------------------------------------------- records from elsewhere are untrusted

PAYLOAD = ('<meta http-equiv="refresh" content="0;url=http://evil.example/"><script>console.error("pwned")'
           '</script><img src="http://203.0.113.9/x.png"></td></tr></table><h1>')


def poison(obj, keys: bool = False):
    """Every text value of a record with the payload in front of it (and, with `keys`, the
    keys of the maps the page prints as rows)."""
    if isinstance(obj, dict):
        return {(PAYLOAD + k if keys else k): poison(v, k in ("files", "stage_seconds", "environment")) for k, v in obj.items()}
    if isinstance(obj, list):
        return [poison(v) for v in obj]
    return PAYLOAD + obj if isinstance(obj, str) else obj


def test_poisoned_records_render_as_text(reports, tmp_path):
    """A run record and a perf record whose every text field (and the names of the files,
    stages and environment rows) carries markup: Chromium shows the markup as text, stays on
    the page, runs nothing and requests nothing but the file; the comparison page too."""
    pages = {}
    for kind, name in (("run", "summary.json"), ("perf", "perf.json")):
        d = tmp_path / kind
        d.mkdir()
        rec = json.loads((reports / kind / name).read_text())
        # percentile names are table headers: the schema allows only p<number> (tested below)
        for lat in ([r["latency_ms"] for r in rec["rows"]] if kind == "perf"
                    else [rec["performance"]["compute_latency_ms_per_batch"]]):
            lat.pop("percentiles", None), lat.pop("unresolved", None)
        (d / name).write_text(json.dumps(poison(rec)))
        run_cli("report", d)
        pages[kind] = d / "report.html"
    run_cli("report", tmp_path / "run", reports / "run", "--output", tmp_path / "cmp.html")
    found = render(tmp_path, pages["run"], pages["perf"], tmp_path / "cmp.html", screenshot=tmp_path / "poisoned.png")
    for key, page in found.items():
        assert page["active"] == 0, key  # no script, image, meta refresh... made it into the DOM
        assert page["location"].startswith("file://"), key  # never navigated
        assert page["console"] == [], key
        assert all(u.startswith("file://") for u in page["requests"]), page["requests"]
        assert "http-equiv" in page["text"] and "<script>" in page["text"]  # shown, as text
    assert found["run"]["title"].startswith("clsbench run")


@pytest.mark.parametrize("field,value", [
    ("accuracy/classes", '<meta http-equiv="refresh" content="0;url=http://evil.example/">'),
    ("accuracy/labels_without_output", "<b>many</b>"), ("accuracy/top1", "75.8"),
    ("performance/compute_latency_ms_per_batch/count", "<i>12</i>"),
    ("performance/compute_latency_ms_per_batch/percentiles", ["p50", "<th>x</th>"]),
    ("performance/batch_size", 0), ("accuracy/top5", float("nan")), ("dataset/unreadable", {"a": 1}),
])
def test_wrongly_typed_run_record_refused_in_one_line(reports, tmp_path, field, value):
    rec = json.loads((reports / "run" / "summary.json").read_text())
    *path, last = field.split("/")
    lookup(rec, "/".join(path))[last] = value
    (tmp_path / "summary.json").write_text(json.dumps(rec))
    p = run_cli("report", tmp_path, check=False)
    assert p.returncode == 2 and "Traceback" not in p.stderr and len(p.stderr.strip().splitlines()) == 1, p.stderr
    assert str(tmp_path / "summary.json") in p.stderr.replace("\n", "")
    assert (field in p.stderr or "not a number a record may hold" in p.stderr), p.stderr
    assert not (tmp_path / "report.html").exists()


@pytest.mark.parametrize("field,value", [("warmup", "<b>3</b>"), ("environment/logical_cpus", "2<script>"),
                                         ("batches", [1, "x"]), ("rows/0/batch_size", "4"),
                                         ("rows/0/iterations", None)])
def test_wrongly_typed_perf_record_refused_in_one_line(reports, tmp_path, field, value):
    rec = json.loads((reports / "perf" / "perf.json").read_text())
    *path, last = field.split("/")
    target = lookup(rec, "/".join(path)) if path else rec
    target[int(last) if isinstance(target, list) else last] = value
    (tmp_path / "perf.json").write_text(json.dumps(rec))
    p = run_cli("report", reports / "perf", tmp_path, "--output", tmp_path / "c.html", check=False)
    assert p.returncode == 2 and "Traceback" not in p.stderr and field in p.stderr, p.stderr


def test_bar_labels_fit_their_bars_as_chromium_lays_them_out(tmp_path):
    """Bars whose share sits where the old width estimate (5.6 px a character) put a label
    that Chromium draws wider than the bar ("infer: 3.33 s (15" cut): each label on a bar
    must fit it, the others go to the legend. And a lone point per series is drawn large,
    with its value beside it."""
    from clsbench.report.html import page
    from clsbench.report.svg import line_chart, stacked_bar

    bars = [stacked_bar([("infer", 3.33), ("preprocess+infer", 18.9)], unit="s", title="steps"),
            stacked_bar([("read/decode", 1.2), ("preprocess", 2.1), ("inference", 3.3), ("write", 0.4)],
                        unit="ms", title="stages"),
            stacked_bar([("export", 36.2), ("compile", 5.5), ("preprocess", 6.1), ("infer", 3.3), ("eval", 0.1)],
                        unit="s", title="run")]
    chart = line_chart([{"name": "one", "colour": "#0072B2", "points": [(16, 211.4, "t", False)]}],
                       xlabel="batch", ylabel="images/s", title="lone", xticks=[16])
    html = tmp_path / "bars.html"
    html.write_text(page("bars", "", [*bars, chart]))
    got = render(tmp_path, html)["bars.html"]
    check_charts(got)
    assert sum(len(c["onbar"]) for c in got["geometry"]) >= 3  # some labels are on their bars
    assert "211.4" in got["text"]


def test_loadgen_report_in_chromium(tmp_path):
    """A LoadGen Server run with a peak search: the verdict cards, every number shown equal
    to loadgen.json's, the charts' points inside their plots, nothing loaded from outside."""
    pytest.importorskip("mlperf_loadgen")
    from helpers import bin_tensors, tiny_classifier

    model = tiny_classifier(tmp_path / "m.onnx", size=32)
    data = bin_tensors(tmp_path / "bins", 32, 32)
    run_cli("loadgen", "--model", model, "--data", data, "--scenario", "server", "--find-peak", "--peak-steps", "1",
            "--duration", "1", "--latency-bound-ms", "50", "--output", tmp_path / "lg", check=False)
    page = render(tmp_path, tmp_path / "lg" / "report.html")["lg"]
    assert_clean(page, "lg/report.html")
    rec = json.loads((tmp_path / "lg" / "loadgen.json").read_text())
    assert check_numbers(page, rec) >= 5
    states = dict(page["verdicts"])
    assert states["Peak"] == ("pass" if rec["peak"]["peak_qps"] else "fail")
    assert "Server" in page["title"] and "p99 latency against offered load" in page["text"]
    check_charts(page)
    tries = rec["peak"]["tries"]
    peak_table = next(t for t in page["tables"] if t[0][:2] == ["target QPS", "LoadGen"])
    assert len(peak_table) == len(tries) + 1  # one row per try, and the header
    assert [r[1] for r in peak_table[1:]] == ["VALID" if t["valid"] else "INVALID" for t in tries]
