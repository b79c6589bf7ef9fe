"""One test per mutation that once survived the suite, each against a reference computed
here from first principles (numpy's per-row softmax, LoadGen's own ns field, the shipped
label files, the record's value x 100, /proc), never against clsbench's own helpers."""
from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest

from helpers import PHOTO_CASES, ROOT, default_sigint, photo, run_cli, stamped

DATA = ROOT / "src" / "clsbench" / "data"


def _photos(folder: Path, cases) -> Path:
    folder.mkdir(parents=True)
    for name, src, size in cases:
        photo(src).resize(size).save(folder / name)
    return folder


# ---------------------------------------------------------------- 1. fingerprint follows symlinks

def test_fingerprint_of_a_symlink_is_its_replaced_targets(tmp_path):
    from clsbench._io import file_fingerprint

    target = tmp_path / "store" / "cat.JPEG"
    target.parent.mkdir()
    target.write_bytes(b"a" * 10)
    link = tmp_path / "cat.JPEG"
    link.symlink_to(target)
    before = file_fingerprint(link)
    target.write_bytes(b"b" * 2000)  # replaced in place: the link itself is untouched
    os.utime(target, ns=(os.stat(target).st_atime_ns, os.stat(target).st_mtime_ns + 5 * 10**9))
    st = os.stat(target)  # the target's own facts, read here
    assert file_fingerprint(link) == [str(target.resolve()), 2000, st.st_mtime_ns]
    assert file_fingerprint(link) != before


def test_run_on_symlinked_data_recomputes_a_replaced_target(tmp_path):
    """A data folder of symlinks; one target replaced in place by another photo: the rerun in
    the same work dir gives what a fresh run on the new data gives, not the stale output."""
    store = _photos(tmp_path / "store", PHOTO_CASES[:3])
    data = tmp_path / "data"
    data.mkdir()
    for f in sorted(store.iterdir()):
        (data / f.name).symlink_to(f)
    model = stamped(tmp_path / "m.onnx", "resnet18:IMAGENET1K_V1")

    def predictions(work):
        run_cli("run", "-q", "--weights", model, "--data", data, "--work-dir", work)
        return (work / "predictions.csv").read_text()

    old = predictions(tmp_path / "w")
    victim = store / PHOTO_CASES[0][0]
    tmp = store / "new.tmp.jpg"
    photo("astronaut.png").resize(PHOTO_CASES[0][2]).save(tmp, format="JPEG")
    os.replace(tmp, victim)
    again, fresh = predictions(tmp_path / "w"), predictions(tmp_path / "fresh")
    assert fresh != old  # premise: the new photo is classified otherwise
    assert again == fresh


# ---------------------------------------------------------------- 2. LoadGen latencies in ms

class _Sleepy:
    """A backend stand-in: a fixed service time per batch."""

    def __init__(self, batch_size: int, seconds: float):
        self.batch_size, self.seconds = batch_size, seconds

    def run(self, x):
        time.sleep(self.seconds)
        return np.tile(np.arange(10, dtype=np.float32), (len(x), 1))


def _ns_field(summary: Path, name: str) -> int:
    for line in summary.read_text().splitlines():
        head, _, value = line.partition(":")
        if head.strip() == name:
            return int(value.strip())
    raise AssertionError(f"{summary}: no {name!r}")


def test_peak_search_records_p99_in_milliseconds(tmp_path):
    pytest.importorskip("mlperf_loadgen")
    from clsbench.measure.loadgen import Bench, LoadgenOptions, Samples, find_peak

    be = _Sleepy(4, 0.004)
    o = LoadgenOptions(scenario="server", duration_s=0.3, batch_size=4, latency_bound_ms=40, peak_steps=0)
    b = Bench(be, Samples(np.zeros((16, 3, 8, 8), np.float32), [f"s{i}" for i in range(16)], "test", None), o,
              expected_qps=1000.0, expected_latency_ms=4.0)
    t0 = time.perf_counter()
    pk = find_peak(b, tmp_path / "peak")
    elapsed_ms = (time.perf_counter() - t0) * 1e3
    assert pk["tries"]
    for t in pk["tries"]:
        ns = _ns_field(Path(t["folder"]) / "mlperf_log_summary.txt", "99.00 percentile latency (ns)")
        assert t["p99_ms"] == pytest.approx(ns / 1e6, abs=1e-4), t
        assert 4.0 <= t["p99_ms"] < elapsed_ms, t  # at least one service time, within the search's wall time


# ---------------------------------------------------------------- 3. the 1001-class shift

def _npy_outputs(folder: Path, keys, logits) -> Path:
    folder.mkdir(parents=True)
    for k, row in zip(keys, logits):
        np.save(folder / f"{k}_1.npy", row.astype(np.float32))
    return folder


def _with_background(logits: np.ndarray) -> np.ndarray:
    return np.concatenate([np.zeros((len(logits), 1), logits.dtype), logits], axis=1)


def test_imagenet_a_scores_1001_class_outputs_like_1000(tmp_path):
    from clsbench.accuracy.evaluate import Scoring, evaluate

    indices = [int(x) for x in (DATA / "imagenet_a_indices.txt").read_text().split()]
    rng = np.random.default_rng(11)
    n = 60
    keys = [f"img{i:03d}" for i in range(n)]
    labels = rng.choice(indices, n)
    logits = rng.standard_normal((n, 1000)).astype(np.float32)
    logits[np.arange(n)[::2], labels[::2]] += 10  # half right
    (tmp_path / "l.txt").write_text("".join(f"{k} {int(c)}\n" for k, c in zip(keys, labels)))
    pred = np.array(indices)[np.argmax(logits[:, indices], axis=1)]
    want = 100.0 * np.mean(pred == labels)
    assert 40 <= want < 100
    for width, scores in ((1000, logits), (1001, _with_background(logits))):
        acc = evaluate(_npy_outputs(tmp_path / str(width), keys, scores), tmp_path / "l.txt",
                       scoring=Scoring(label_set="imagenet-a"))
        assert acc.percent(1) == pytest.approx(want), width


def test_real_labels_score_1001_class_outputs_like_1000(tmp_path):
    from clsbench.accuracy.evaluate import Scoring, evaluate

    real = json.loads((DATA / "imagenet_real_labels.json").read_text())
    idx = [i for i in range(200) if real[i]][:60]
    keys = [f"ILSVRC2012_val_{i + 1:08d}" for i in idx]
    rng = np.random.default_rng(12)
    logits = rng.standard_normal((len(idx), 1000)).astype(np.float32)
    for j, i in enumerate(idx[::2]):
        logits[2 * j, real[i][0]] += 10  # half right
    (tmp_path / "l.txt").write_text("".join(f"{k} {real[i][0]}\n" for k, i in zip(keys, idx)))
    want = 100.0 * np.mean([int(np.argmax(row)) in real[i] for row, i in zip(logits, idx)])
    assert 40 <= want < 100
    for width, scores in ((1000, logits), (1001, _with_background(logits))):
        acc = evaluate(_npy_outputs(tmp_path / str(width), keys, scores), tmp_path / "l.txt",
                       scoring=Scoring(real_labels=True))
        assert acc.real["top1"] == pytest.approx(want), width


# ---------------------------------------------------------------- 4. softmax per row, Parquet outputs

def test_parquet_predictions_are_each_rows_softmax(tmp_path):
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    from clsbench.accuracy.predict import predictions, write_predictions

    rng = np.random.default_rng(4)
    logits = (rng.standard_normal((40, 1000)) * 3).astype(np.float32)
    keys = [f"img{i:03d}" for i in range(40)]
    d = tmp_path / "o.parquet"
    d.mkdir()
    for part, s in enumerate((slice(0, 25), slice(25, 40))):
        pq.write_table(pa.table({"image": keys[s], "logits": pa.FixedSizeListArray.from_arrays(
            pa.array(logits[s].ravel()), 1000)}), d / f"part-{part:05d}.parquet")
    rows = predictions(d, None)
    write_predictions(rows, tmp_path / "p.csv")
    with open(tmp_path / "p.csv", newline="") as f:
        got = {r[0]: [float(r[3 + 3 * j]) for j in range(5)] for r in list(csv.reader(f))[1:]}
    for key, row in zip(keys, logits.astype(np.float64)):
        e = np.exp(row - row.max())
        p = e / e.sum()  # this row's softmax, nothing else's
        top = np.argsort(-row, kind="stable")[:5]
        assert got[key] == pytest.approx(p[top].tolist(), abs=1e-6), key
    assert max(v[0] for v in got.values()) > 0.1  # premise: not all near 1/rows


# ---------------------------------------------------------------- a run without labels (5, 6)

@pytest.fixture(scope="module")
def unlabelled_run(tmp_path_factory):
    d = tmp_path_factory.mktemp("unlabelled")
    photos = _photos(d / "photos", PHOTO_CASES[:4])
    model = stamped(d / "m.onnx", "resnet18:IMAGENET1K_V1")
    run_cli("run", "-q", "--weights", model, "--data", photos, "--work-dir", d / "w", "--batch-size", "2")
    return d / "w"


def test_record_with_true_for_an_integer_is_refused_in_one_line(tmp_path, unlabelled_run):
    from clsbench import ClsbenchError
    from clsbench.report.records import load_record

    work = tmp_path / "w"
    shutil.copytree(unlabelled_run, work)
    s = json.loads((work / "summary.json").read_text())
    assert s["performance"]["batch_size"] == 2
    s["performance"]["batch_size"] = True
    (work / "summary.json").write_text(json.dumps(s))
    (work / "report.html").unlink()
    with pytest.raises(ClsbenchError, match="performance/batch_size: expected a whole number, got bool true"):
        load_record(str(work))
    p = run_cli("report", work, check=False)
    err = p.stderr.strip()
    assert p.returncode == 2 and "Traceback" not in p.stdout + p.stderr, p.stderr
    assert "performance/batch_size" in err and len(err.splitlines()) == 1, err
    assert not (work / "report.html").exists()


class _Tables(HTMLParser):
    """The text of each table row after a given heading, cell by cell."""

    def __init__(self, heading: str):
        super().__init__()
        self.heading, self.after, self.in_h2, self.rows, self.cell = heading, False, False, [], None

    def handle_starttag(self, tag, attrs):
        self.in_h2 = tag == "h2" or self.in_h2
        if self.after and tag == "tr":
            self.rows.append([])
        elif self.after and tag in ("td", "th"):
            self.cell = ""

    def handle_endtag(self, tag):
        if tag == "h2":
            self.in_h2 = False
        elif tag in ("td", "th") and self.cell is not None and self.rows:
            self.rows[-1].append(" ".join(self.cell.split()))
            self.cell = None
        elif tag == "table" and self.after:
            self.after = None  # only the first table after the heading

    def handle_data(self, data):
        if self.in_h2 and self.after is False:
            self.after = data.strip() == self.heading
        if self.cell is not None:
            self.cell += data


def test_report_shows_probabilities_as_percent(unlabelled_run):
    shown = json.loads((unlabelled_run / "summary.json").read_text())["predictions"]["shown"]
    parser = _Tables("Predictions")
    parser.feed((unlabelled_run / "report.html").read_text())
    body = [r for r in parser.rows if r and r[0] != "image"]
    assert [r[0] for r in body] == [x["image"] for x in shown]
    for r, x in zip(body, shown):
        want = [f"{c['prob'] * 100:.1f} %" for c in x["top5"][:3]]
        assert r[-3:] == want, (r, x)
    assert max(c["prob"] for x in shown for c in x["top5"]) >= 0.05  # premise: ×1 and ×100 differ in text


# ---------------------------------------------------------------- 7. streaming workers die with the parent

def _children(pid: int) -> list[int]:
    out = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                stat = Path(f"/proc/{d}/stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                out.append(int(d))
    return out


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _count(folder: Path) -> int:
    try:
        return sum(1 for n in os.listdir(folder) if not n.startswith("."))
    except FileNotFoundError:
        return 0


def _start_stream(tmp_path: Path):
    from clsbench.data.proxy_task import write_images

    write_images(tmp_path / "data", 200, seed=9)
    model = stamped(tmp_path / "m.onnx", "resnet18:IMAGENET1K_V1")
    cmd = [sys.executable, "-m", "clsbench.cli", "run", "-q", "--stream", "--workers", "2", "--batch-size", "2",
           "--weights", str(model), "--data", str(tmp_path / "data"), "--work-dir", str(tmp_path / "w")]
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            start_new_session=True, preexec_fn=default_sigint)


def test_stream_workers_die_with_a_killed_parent(tmp_path):
    """kill -9 of the parent alone (not its group): its workers are gone within a few
    seconds (/proc) and write no output after it."""
    dump = tmp_path / "w" / "result" / "dumpOutput_device0"
    p = _start_stream(tmp_path)
    workers: list[int] = []
    try:
        t0 = time.monotonic()
        while p.poll() is None and time.monotonic() - t0 < 120 and _count(dump) < 8:
            time.sleep(0.005)
        workers = _children(p.pid)
        assert p.poll() is None and len(workers) >= 2, (workers, p.stderr.read() if p.poll() is not None else "")
        os.kill(p.pid, signal.SIGKILL)
        p.wait(timeout=30)
        time.sleep(0.3)
        at_kill = _count(dump)
        assert at_kill < 200  # premise: the run was cut short
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline and any(_alive(w) for w in workers):
            time.sleep(0.05)
        time.sleep(max(0.0, deadline - time.monotonic()))
        assert [w for w in workers if _alive(w)] == []
        assert _count(dump) == at_kill
    finally:
        for w in workers:
            if _alive(w):
                os.kill(w, signal.SIGKILL)
        if p.poll() is None:
            p.kill()
        p.stderr.close()
