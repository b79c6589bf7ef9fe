"""Properties over generated inputs (Hypothesis), each against a reference written here:
the ranking rule, the per-row softmax, label sets and ReaL on 1000- and 1001-class outputs,
latency statistics, the fingerprint rule, the record schema, the unit of recorded durations."""
from __future__ import annotations

import json
import math
import os
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from helpers import PHOTO_CASES, ROOT, photo, run_options, stamped

DATA = ROOT / "src" / "clsbench" / "data"
QUIET = dict(deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])  # no .hypothesis/ in the tree
FAST = settings(max_examples=60, **QUIET)
FEW = settings(max_examples=15, **QUIET)


def ranked(x: np.ndarray) -> np.ndarray:
    """The reference rule: best first, a tie to the lower class index, NaN last."""
    out = []
    for row in x:
        key = [(1, 0.0, i) if math.isnan(v) else (0, -v, i) for i, v in enumerate(row.tolist())]
        out.append([i for *_, i in sorted(key)[:5]])
    return np.array(out, dtype=np.int64)


# ---------------------------------------------------------------- ranking

ties = hnp.arrays(np.float32, hnp.array_shapes(min_dims=2, max_dims=2, min_side=1, max_side=30),
                  elements=st.sampled_from([-2.0, -1.0, 0.0, 1.0, 2.0, np.inf, -np.inf]))
with_nan = hnp.arrays(np.float32, hnp.array_shapes(min_dims=2, max_dims=2, min_side=1, max_side=30),
                      elements=st.floats(-1e6, 1e6, width=32) | st.just(np.nan))


@FAST
@given(st.one_of(ties, with_nan))
def test_top5_ranks_best_first_ties_by_class_index_nan_last(x):
    from clsbench.runtime.scores import top5

    got = top5(x)
    assert got.shape == (x.shape[0], min(5, x.shape[1]))
    assert np.array_equal(got, ranked(x)[:, :5]), x


@FAST
@given(hnp.arrays(np.float32, st.tuples(st.integers(1, 6), st.integers(6, 40)),
                  elements=st.integers(-3, 3).map(float)))
def test_top5_of_a_tied_row_is_its_lowest_indices_of_the_best_value(x):
    from clsbench.runtime.scores import top5

    for row, got in zip(x, top5(x)):
        best = [i for i in range(len(row)) if row[i] == row.max()]
        assert got[:len(best)].tolist() == best[:5]


# ---------------------------------------------------------------- softmax per row

logits = hnp.arrays(np.float64, st.tuples(st.integers(1, 8), st.integers(1, 50)),
                    elements=st.floats(-80, 80))


@FAST
@given(logits, st.lists(st.floats(-50, 50), min_size=8, max_size=8))
def test_softmax_rows_sum_to_one_and_ignore_a_constant_per_row(x, shift):
    from clsbench.accuracy.predict import softmax

    p = softmax(x)
    assert p.shape == x.shape and np.all(p >= 0)
    assert np.allclose(p.sum(axis=1), 1.0, atol=1e-12)
    c = np.array(shift[:len(x)])[:, None]
    assert np.allclose(softmax(x + c), p, atol=1e-9)
    for row, q in zip(x, p):  # each row on its own
        e = np.exp(row - row.max())
        assert np.allclose(q, e / e.sum(), atol=1e-12)


# ---------------------------------------------------------------- label sets and ReaL, 1000 and 1001 classes

A_IDX = [int(x) for x in (DATA / "imagenet_a_indices.txt").read_text().split()]
REAL = json.loads((DATA / "imagenet_real_labels.json").read_text())


def _background(x: np.ndarray) -> np.ndarray:
    """The 1001-class output of the same model: a background column 0 below every score."""
    return np.concatenate([x.min(axis=1, keepdims=True) - 1, x], axis=1)


def _score(keys, scores, labels, scoring):
    from clsbench.accuracy.evaluate import evaluate_scores

    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "l.txt"
        path.write_text("".join(f"{k} {int(c)}\n" for k, c in zip(keys, labels)))
        return evaluate_scores("mem", keys, scores, path, scoring)


def _tied_logits(rng_seed: int, n: int) -> np.ndarray:
    rng = np.random.default_rng(rng_seed)
    return rng.integers(-3, 4, (n, 1000)).astype(np.float32)  # small integers: many ties


@FEW
@given(st.integers(0, 2**32 - 1), st.integers(1, 30), st.sampled_from(["imagenet-a", "imagenet-r"]))
def test_label_set_scores_the_same_on_1000_and_1001_classes(seed, n, label_set):
    from clsbench.accuracy.evaluate import Scoring

    idx = [int(x) for x in (DATA / f"imagenet_{label_set.split('-')[1]}_indices.txt").read_text().split()]
    x = _tied_logits(seed, n)
    labels = np.random.default_rng(seed + 1).choice(idx, n)
    x[np.arange(n)[::2], labels[::2]] = 9  # some right
    keys = [f"i{j}" for j in range(n)]
    sub = x[:, idx]
    rank = ranked(sub)
    pos = np.array([idx.index(int(c)) for c in labels])
    want = [int(np.sum(rank[:, k] == pos)) for k in range(5)]
    for scores in (x, _background(x)):
        acc = _score(keys, scores, labels, Scoring(label_set=label_set))
        assert acc.hits == want and acc.num_classes == 200


@FEW
@given(st.lists(st.integers(0, 49_999), min_size=1, max_size=30, unique=True), st.integers(0, 2**32 - 1))
def test_real_labels_score_the_same_on_1000_and_1001_classes(images, seed):
    from clsbench.accuracy.evaluate import Scoring

    assume(any(REAL[i] for i in images))
    x = _tied_logits(seed, len(images))
    for j, i in enumerate(images[::2]):
        if REAL[i]:
            x[2 * j, REAL[i][-1]] = 9
    keys = [f"ILSVRC2012_val_{i + 1:08d}" for i in images]
    labels = [REAL[i][0] if REAL[i] else 0 for i in images]
    rank = ranked(x)
    have = [(r, set(REAL[i])) for r, i in zip(rank, images) if REAL[i]]
    top1 = 100.0 * sum(int(r[0]) in s for r, s in have) / len(have)
    top5 = 100.0 * sum(bool(set(r.tolist()) & s) for r, s in have) / len(have)
    for scores in (x, _background(x)):
        real = _score(keys, scores, labels, Scoring(real_labels=True)).real
        assert real["images"] == len(have) and real["without_real_label"] == len(images) - len(have)
        assert real["top1"] == pytest.approx(top1) and real["top5"] == pytest.approx(top5)


# ---------------------------------------------------------------- latency statistics

latencies = st.lists(st.floats(0.001, 1e4), min_size=1, max_size=300)
percentile_sets = st.lists(st.sampled_from([1.0, 25.0, 50.0, 90.0, 95.0, 99.0, 99.5, 99.9, 99.99]),
                           min_size=1, max_size=5, unique=True).map(sorted)


@FAST
@given(latencies, percentile_sets)
def test_latency_stats_are_numpys_percentiles_and_name_the_unresolved(ms, pcts):
    from clsbench.runtime.timing import latency_stats

    s = latency_stats(ms, tuple(pcts))
    a = np.asarray(ms)
    assert s["count"] == len(ms) and s["min"] == a.min() and s["max"] == a.max()
    assert a.min() - 1e-9 * a.max() <= s["mean"] <= a.max() * (1 + 1e-12)
    keys = [f"p{p:g}" for p in pcts]
    assert s["percentiles"] == keys
    got = [s[k] for k in keys]
    assert got == pytest.approx(np.percentile(a, pcts).tolist(), rel=1e-12)
    assert got == sorted(got) and a.min() <= got[0] and got[-1] <= a.max()
    # p is resolved when count >= 100 / (100 - p), computed exactly
    want = [f"p{p:g}" for p in pcts if len(ms) < Fraction(100) / (100 - Fraction(str(p)))]
    assert s["unresolved"] == want


@FAST
@given(latencies, st.integers(1, 64), st.integers(1, 8))
def test_stability_windows_rates_and_spread(ms, batch, repeats):
    from clsbench.runtime.timing import UNSTABLE_SPREAD, stability

    s = stability(ms, batch, repeats)
    n = min(repeats, len(ms))
    sizes = [len(ms) // n + (1 if i < len(ms) % n else 0) for i in range(n)]
    starts = np.cumsum([0] + sizes)
    rates = [batch * k / (sum(ms[b:b + k]) / 1000) for b, k in zip(starts, sizes)]
    assert s["repeats"] == n and s["rates"] == pytest.approx(rates, rel=1e-9)
    med = float(np.median(rates))
    assert s["median"] == pytest.approx(med, rel=1e-9)
    if n == 1:
        assert s["spread"] is None and s["stable"] is None
    else:
        spread = (max(rates) - min(rates)) / med
        assert s["spread"] == pytest.approx(spread, rel=1e-9, abs=1e-12)
        assert s["stable"] is (s["spread"] <= UNSTABLE_SPREAD)
        assert (s["reason"] is None) is s["stable"]


# ---------------------------------------------------------------- the fingerprint rule

@FEW
@given(st.binary(min_size=0, max_size=64), st.binary(min_size=0, max_size=64), st.booleans())
def test_fingerprint_sees_a_symlinks_target_replaced_or_retargeted(old, new, keep_times):
    """Replaced in place (another size or mtime), or the link pointed at another file of the
    same size and mtime: another fingerprint. Compared with the target's own os.stat."""
    from clsbench._io import file_fingerprint

    with tempfile.TemporaryDirectory() as d:
        d = Path(d)
        a, b, link = d / "a.JPEG", d / "b.JPEG", d / "link.JPEG"
        a.write_bytes(old)
        link.symlink_to(a)
        st0 = os.stat(a)
        before = file_fingerprint(link)
        assert before == [str(a.resolve()), len(old), st0.st_mtime_ns]
        (d / "tmp").write_bytes(new)
        os.utime(d / "tmp", ns=(st0.st_atime_ns, st0.st_mtime_ns + (0 if keep_times else 10**9)))
        os.replace(d / "tmp", a)
        after = file_fingerprint(link)
        assert after == [str(a.resolve()), len(new), os.stat(a).st_mtime_ns]
        if len(new) != len(old) or not keep_times:
            assert after != before
        b.write_bytes(new)
        os.utime(b, ns=(st0.st_atime_ns, os.stat(a).st_mtime_ns))  # same size and mtime as a
        link.unlink()
        link.symlink_to(b)
        assert file_fingerprint(link) != after and file_fingerprint(link)[1:] == after[1:]


# ---------------------------------------------------------------- the record schema

@pytest.fixture(scope="module")
def base_record(tmp_path_factory):
    """summary.json of a real run (a tiny model, three photos, no labels)."""
    from clsbench.flows.run import run

    d = tmp_path_factory.mktemp("record")
    photos = d / "photos"
    photos.mkdir()
    for name, src, size in PHOTO_CASES[:3]:
        photo(src).resize(size).save(photos / name)
    model = stamped(d / "m.onnx", "resnet18:IMAGENET1K_V1")
    run(str(model), str(photos), run_options(work_dir=str(d / "w"), batch_size=2))
    return json.loads((d / "w" / "summary.json").read_text())


def _paths(v, here=()):
    yield here
    items = v.items() if isinstance(v, dict) else enumerate(v) if isinstance(v, list) else ()
    for k, x in items:
        yield from _paths(x, (*here, k))


RAW = ["NaN", "Infinity", "-Infinity", "1e400", "-1e400", "1" + "0" * 400, "-" + "9" * 320, "true", "false",
       "null", "[]", "{}", '"x"', "[[[[[[1]]]]]]", '{"a": {"b": [null, true, 1e999]}}', "1.5", "-1", "0"]
junk = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=5),
                    lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=3), c, max_size=3),
                    max_leaves=8)


def _load(tmp: Path, text: str):
    from clsbench.report.records import load_record

    (tmp / "summary.json").write_text(text)
    return load_record(str(tmp))


@settings(max_examples=150, **QUIET)
@given(st.data())
def test_any_damaged_record_loads_or_is_refused_in_one_line(base_record, data):
    from clsbench import ClsbenchError

    paths = [p for p in _paths(base_record) if p]
    where = data.draw(st.sampled_from(paths))
    raw = data.draw(st.sampled_from(RAW) | junk.map(json.dumps))
    rec = json.loads(json.dumps(base_record))
    parent = rec
    for k in where[:-1]:
        parent = parent[k]
    parent[where[-1]] = "\x00RAW\x00"
    text = json.dumps(rec).replace('"\\u0000RAW\\u0000"', raw)
    with tempfile.TemporaryDirectory() as d:
        try:
            _load(Path(d), text)
        except ClsbenchError as e:
            assert "\n" not in str(e) and "summary.json" in str(e)


def _integer_fields(v, spec, here=()):
    """Paths of the record that the schema says hold a whole number."""
    from clsbench.report.records import Maybe, Num

    if isinstance(spec, Maybe):
        spec = spec.spec
    if isinstance(spec, Num) and spec.integer and isinstance(v, int):
        yield here
    elif isinstance(spec, dict) and isinstance(v, dict):
        for key, sub in spec.items():
            name = key.rstrip("?")
            if key != "*" and name in v:
                yield from _integer_fields(v[name], sub, (*here, name))
    elif hasattr(spec, "item") and isinstance(v, list):
        for i, x in enumerate(v):
            yield from _integer_fields(x, spec.item, (*here, i))


@FAST
@given(st.data())
def test_true_where_a_whole_number_belongs_is_refused(base_record, data):
    from clsbench import ClsbenchError
    from clsbench.report.records import RUN

    fields = list(_integer_fields(base_record, RUN))
    assert ("performance", "batch_size") in fields
    where = data.draw(st.sampled_from(fields))
    value = data.draw(st.sampled_from([True, False, 1.5, "2", 10**400, float("nan")]))
    rec = json.loads(json.dumps(base_record))
    parent = rec
    for k in where[:-1]:
        parent = parent[k]
    parent[where[-1]] = value
    with tempfile.TemporaryDirectory() as d:
        with pytest.raises(ClsbenchError, match="/".join(map(str, where)) if not isinstance(value, float) or
                           not math.isnan(value) else "NaN"):
            _load(Path(d), json.dumps(rec))


# ---------------------------------------------------------------- the unit of recorded durations

class _Sleeper:
    """A backend whose run takes at least `ms` milliseconds (time.sleep never returns early)."""

    input_shape = (3, 4, 4)

    def __init__(self, ms: float):
        self.ms = ms

    def run(self, x):
        time.sleep(self.ms / 1e3)
        return np.zeros((len(x), 10), np.float32)

    def describe(self):
        return {"runtime": "sleeper", "version": "0"}


@FEW
@given(st.floats(1.0, 4.0), st.integers(1, 8), st.integers(3, 12))
def test_perf_records_milliseconds_and_images_per_second_by_an_outside_clock(ms, batch, iters):
    from unittest import mock

    from clsbench.runtime import backends, timing

    with mock.patch.object(backends, "open_backend", lambda *a, **k: _Sleeper(ms)):
        t0 = time.perf_counter()
        row = timing.measure(timing.Config("sleeper", "fp32", "m"), batch,
                             timing.Timing(duration=0, iterations=iters, warmup=0, repeats=2))
        outside_ms = (time.perf_counter() - t0) * 1e3
    lat, n = row["latency_ms"], row["iterations"]
    assert n == iters and lat["count"] == n
    assert ms <= lat["min"] <= lat["max"] and lat["mean"] * n <= outside_ms
    assert batch * n / (outside_ms / 1e3) <= row["throughput_e2e"] <= batch * 1e3 / ms
    assert row["throughput_compute"] <= batch * 1e3 / ms
