"""`clsbench tune`: the fastest deployment that keeps its accuracy and meets its latency.

The search is a pure function (`search`) over a measurer with three calls, so the tests drive
the real search with stand-in backends of known service times:
    accuracy(backend, precision) -> {"top1", "fp32_top1", "drop", "margin", "images", ...}
    offline(candidate)           -> {"ips", "latency_ms"}   (latency_ms: the --percentile of one batch)
    server(candidate)            -> {"peak_qps", "p_ms"}    (the highest LoadGen Server QPS meeting the bound)
How it avoids trying everything: a (backend, precision) whose accuracy breaks --max-drop is
never timed; the batch grows (doubling) until the latency bound breaks or the throughput stops
rising; parallelism hill-climbs from the runtime's own default, one step in one setting at a
time; the batch is checked once more around the best; with a latency bound, only each
variant's best is taken through the (slow) LoadGen peak search, and from there the Server peak
hill-climbs workers (the parallel sessions, LoadGen's --workers) x batch. It stops at the budget with the
best so far. Every measurement goes through `Recorded` (one JSON file per try, keyed by a
fingerprint of everything it was measured from), so a killed tune measures only what is missing.
The real measurer is `flows.tune_measure.RealMeasurer`; the command is `run_tune` there.
"""
from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import time
from dataclasses import asdict, dataclass, field, replace

log = logging.getLogger("clsbench")

IMPROVES = 1.02  # a step is taken only when it gains more than 2 % (timing noise on a busy CPU)
Z95 = 1.96


@dataclass(frozen=True)
class Candidate:
    """One deployment: what runs (backend, precision) and how (batch, parallelism)."""

    backend: str
    precision: str
    batch: int
    threads: int | None = None  # None: the runtime's own default
    sessions: int = 1  # parallel sessions (ONNX Runtime), each with `threads` intra-op threads
    hint: str | None = None  # OpenVINO's performance hint: latency or throughput

    @property
    def variant(self) -> tuple[str, str]:
        return self.backend, self.precision

    @property
    def parallel(self) -> "Parallel":
        return Parallel(self.threads, self.sessions, self.hint)

    def key(self) -> str:
        return (f"{self.backend}-{self.precision}-bs{self.batch}-t{self.threads or 'default'}-s{self.sessions}"
                + (f"-{self.hint}" if self.hint else ""))

    def label(self) -> str:
        par = [f"{self.threads} threads" if self.threads else "default threads"]
        if self.sessions > 1:
            par.append(f"{self.sessions} sessions")
        if self.hint:
            par.append(f"{self.hint} hint")
        return f"{self.backend} {self.precision} · batch {self.batch} · {', '.join(par)}"

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Parallel:
    threads: int | None = None
    sessions: int = 1
    hint: str | None = None


@dataclass
class Space:
    """What may be tried: the (backend, precision) variants, the batch sizes (ascending), and
    per backend its parallelism settings, the runtime's own default first."""

    variants: list
    batches: list
    parallel: dict  # backend -> [Parallel, ...], [0] is the runtime's default
    cores: int = 1  # what a default thread count (None) means: the CPUs the runtimes size their pools by

    def neighbours(self, backend: str, p: Parallel) -> list[Parallel]:
        """The settings one step from `p`: threads or sessions doubled or halved, both at once
        keeping threads x sessions (one pool split in two), or the other hint. The default's
        threads (None) count as `cores`, what the runtimes size their pools by."""
        def logs(q):
            return math.log2(q.threads or self.cores), math.log2(q.sessions)

        (t, s), out = logs(p), []
        for q in self.parallel.get(backend) or [Parallel()]:
            (tq, sq), hint = logs(q), q.hint == p.hint
            one = (abs(tq - t) <= 1 and sq == s) or (abs(sq - s) <= 1 and tq == t) or (abs(tq + sq - t - s) < 1e-9
                                                                                   and abs(tq - t) <= 1)
            if q != p and ((hint and one) or (not hint and (tq, sq) == (t, s))):
                out.append(q)
        return out

    def size(self, variants=None) -> int:
        vs = self.variants if variants is None else variants
        return sum(len(self.batches) * len(self.parallel.get(b) or [Parallel()]) for b, _ in vs)


@dataclass(frozen=True)
class Bounds:
    max_drop: float  # Top-1 points against fp32 on the same held-out images
    latency_ms: float | None = None  # the --percentile latency bound (None: offline throughput only)
    percentile: float = 99.0


def judge(acc: dict, max_drop: float) -> dict:
    """The accuracy verdict of one variant: passed when the measured drop is within the bound;
    `confident` when drop + margin is within it too, else the drop "cannot be told from one
    over the bound" (said so in the table)."""
    drop, margin = acc["drop"], acc.get("margin", 0.0)
    passed = drop <= max_drop + 1e-9
    confident = drop + margin <= max_drop + 1e-9
    said = ("within the bound" if passed and confident else
            "within the bound, but cannot be told from one over it (drop + margin > bound)" if passed else
            "over the bound" + ("" if drop - margin > max_drop else " (cannot be told from within it)"))
    return {**acc, "passed": passed, "confident": confident, "verdict": said}


def paired_margin(ref_right, got_right) -> float:
    """95 % margin (points) of the Top-1 difference of two models on the same images: the
    paired (McNemar) standard error from the images exactly one of them gets right."""
    n = len(ref_right)
    if n == 0:
        return math.inf
    b = sum(1 for r, g in zip(ref_right, got_right) if r and not g)
    c = sum(1 for r, g in zip(ref_right, got_right) if g and not r)
    var = (b + c) - (b - c) ** 2 / n
    return 100 * Z95 * math.sqrt(max(var, 0.0)) / n


# ---------------------------------------------------------------- the search


@dataclass
class State:
    bounds: Bounds
    measurer: object
    budget_s: float | None
    clock: object
    t0: float
    tries: list = field(default_factory=list)
    path: list = field(default_factory=list)
    offline: dict = field(default_factory=dict)  # Candidate -> result
    server: dict = field(default_factory=dict)
    stopped: str | None = None

    def out_of_time(self) -> bool:
        if self.budget_s is not None and self.clock() - self.t0 >= self.budget_s:
            self.stopped = self.stopped or "budget"
        return self.stopped is not None

    def score(self, c: Candidate) -> float:
        """Offline img/s when the batch meets the latency bound, else -1."""
        r = self.offline.get(c)
        if r is None:
            return -1.0
        lat = r.get("latency_ms")
        if self.bounds.latency_ms is not None and lat is not None and lat > self.bounds.latency_ms:
            return -1.0
        return float(r["ips"])

    def time(self, c: Candidate, why: str) -> float:
        """Offline img/s of `c` (measured once), -1 when it breaks the bound; nan when out of time."""
        if c not in self.offline:
            if self.out_of_time():
                return math.nan
            r = self.measurer.offline(c)
            self.offline[c] = r
            self.tries.append({"kind": "offline", "candidate": c.as_dict(), "result": r, "why": why})
            self.path.append({"step": len(self.path) + 1, "candidate": c.key(), "why": why,
                              "ips": r["ips"], "latency_ms": r.get("latency_ms"), "score": self.score(c)})
            log.info(f"tune: {c.label()}: {r['ips']:,.1f} img/s" + (f", {r['latency_ms']:.1f} ms a batch"
                                                                     if r.get("latency_ms") else "") + f" ({why})")
        return self.score(c)


def search(space: Space, measurer, bounds: Bounds, *, budget_s: float | None = None, clock=time.monotonic,
           exhaustive: bool = False) -> dict:
    """The tune: accuracy first (a variant over --max-drop is never timed), then the guided
    search (or every candidate, `exhaustive`). Returns the record's search part: accuracy per
    variant, every try with why, the path, the winner (None when nothing meets both bounds)."""
    st = State(bounds, measurer, budget_s, clock, clock())
    accuracy, passing = _accuracy_pass(st, space)
    best = {}
    for v in passing:
        if st.out_of_time():
            break
        best[v] = _every(st, space, v) if exhaustive else _guided(st, space, v)
    if bounds.latency_ms is not None:
        _server_pass(st, best, exhaustive, space)
    winner = _winner(st)
    pruned = [f"{b}:{p}" for (b, p) in space.variants if not accuracy[f"{b}:{p}"]["passed"]]
    return {"accuracy": accuracy, "pruned": pruned, "tries": st.tries, "path": st.path,
            "winner": winner, "stopped": st.stopped or "searched", "seconds": round(clock() - st.t0, 3),
            "space_size": space.size(), "timed": len(st.offline), "server_timed": len(st.server),
            "exhaustive": exhaustive, "candidates": _table(st, accuracy)}


def _accuracy_pass(st: State, space: Space):
    accuracy, passing = {}, []
    for b, p in space.variants:
        a = judge(st.measurer.accuracy(b, p), st.bounds.max_drop)
        accuracy[f"{b}:{p}"] = a
        st.tries.append({"kind": "accuracy", "candidate": {"backend": b, "precision": p}, "result": a,
                         "why": "accuracy first"})
        log.info(f"tune: {b} {p}: Top-1 {a['top1']:.2f} %, drop {a['drop']:+.2f} ± {a.get('margin', 0):.2f} "
                 f"points — {a['verdict']}" + ("" if a["passed"] else ": never timed"))
        if a["passed"]:
            passing.append((b, p))
    return accuracy, passing


def _guided(st: State, space: Space, v) -> Candidate | None:
    """One variant: the batch doubles from the smallest until the bound breaks or img/s stops
    rising; parallelism hill-climbs from the default at that batch; the batch walks again from
    there at the parallelism found. Returns the variant's best candidate."""
    backend, precision = v
    par = (space.parallel.get(backend) or [Parallel()])[0]
    best = None
    for bs in space.batches:  # batch grows until the bound breaks or it stops paying
        c = Candidate(backend, precision, bs, par.threads, par.sessions, par.hint)
        s = st.time(c, "batch grows")
        if math.isnan(s) or s < 0:
            break
        if best is not None and s <= st.score(best) * IMPROVES:
            break
        best = c if best is None or s > st.score(best) else best
    if best is None:
        return None
    best = _climb(st, space, best)
    return _batch_again(st, space, best)


def _climb(st: State, space: Space, best: Candidate) -> Candidate:
    """Hill-climbing over the parallelism settings at `best`'s batch: move to the best
    neighbour while it gains more than IMPROVES."""
    while not st.out_of_time():
        moved = None
        for q in space.neighbours(best.backend, best.parallel):
            c = replace(best, threads=q.threads, sessions=q.sessions, hint=q.hint)
            s = st.time(c, "hill-climb parallelism")
            if not math.isnan(s) and s > st.score(best) * IMPROVES and (moved is None or s > st.score(moved)):
                moved = c
        if moved is None:
            return best
        best = moved
    return best


def _batch_again(st: State, space: Space, best: Candidate) -> Candidate:
    """The batch walks again from the best, at the parallelism the climb found: up while it
    gains, else down while it gains (the climb can move where the batch pays, e.g. several
    single-threaded sessions scale with the batch where one session on every core did not)."""
    for step in (1, -1):
        moved = False
        while not st.out_of_time():
            j = space.batches.index(best.batch) + step
            if not 0 <= j < len(space.batches):
                break
            c = replace(best, batch=space.batches[j])
            s = st.time(c, "batch again at the parallelism found")
            if math.isnan(s) or s <= st.score(best) * IMPROVES:
                break
            best, moved = c, True
        if moved:
            break
    return best


def _every(st: State, space: Space, v) -> Candidate | None:
    backend, precision = v
    best = None
    for par in space.parallel.get(backend) or [Parallel()]:
        for bs in space.batches:
            c = Candidate(backend, precision, bs, par.threads, par.sessions, par.hint)
            s = st.time(c, "exhaustive")
            if not math.isnan(s) and s >= 0 and (best is None or s > st.score(best)):
                best = c
    return best


def _server_pass(st: State, best: dict, exhaustive: bool, space: Space) -> None:
    """With a latency bound: the LoadGen peak search for each variant's best (every timed
    candidate meeting the bound, `exhaustive`), fastest first, while the budget lasts. A
    variant whose best misses the bound under load steps its batch down until one meets it;
    from there (the parallelism the Offline search found: sessions become LoadGen's workers)
    the Server peak hill-climbs workers x batch (`_server_climb`)."""
    batches = space.batches
    pool = [c for c in st.offline if st.score(c) >= 0] if exhaustive else [c for c in best.values() if c]
    for c in sorted(pool, key=st.score, reverse=True):
        while c is not None and not st.out_of_time():
            _peak(st, c)
            if exhaustive or _meets(st, c):
                break
            smaller = [b for b in batches if b < c.batch]
            c = replace(c, batch=smaller[-1]) if smaller else None
            if c is not None and c not in st.offline:
                st.time(c, "batch steps down: the Server run missed the bound")
        if c is not None and not exhaustive and _meets(st, c):
            _server_climb(st, space, c)


def _server_neighbours(space: Space, c: Candidate) -> list[Candidate]:
    """One step from `c` in workers (sessions doubled or halved, threads kept or the pool
    split), in the batch, or in both keeping workers x batch (twice the workers at half the
    batch: the samples in flight stay, each waits for a smaller batch): what the Server climb tries."""
    j = space.batches.index(c.batch) if c.batch in space.batches else -1

    def batch(k):
        return [space.batches[j + k]] if j >= 0 and 0 <= j + k < len(space.batches) else []

    out = []
    for q in space.neighbours(c.backend, c.parallel):
        if q.sessions != c.sessions and q.hint == c.hint:
            w = replace(c, threads=q.threads, sessions=q.sessions)
            out += [w] + [replace(w, batch=b) for b in batch(-1 if q.sessions > c.sessions else 1)]
    return out + [replace(c, batch=b) for b in batch(-1) + batch(1)]


def _server_climb(st: State, space: Space, best: Candidate) -> Candidate:
    """Hill-climbing of the Server peak over workers x batch from `best` (which meets the
    bound): a neighbour is timed offline first (a batch that breaks the bound alone is never
    offered LoadGen's load), then through the peak search; it moves while one gains > 2 %."""
    def qps(c):
        return st.server[c]["peak_qps"] if _meets(st, c) else -1.0

    while not st.out_of_time():
        moved = None
        for n in _server_neighbours(space, best):
            if n not in st.offline and math.isnan(st.time(n, "Server climb: workers x batch")):
                break
            if st.score(n) < 0 or st.out_of_time():
                continue
            _peak(st, n, "Server climb: workers x batch")
            if qps(n) > qps(best) * IMPROVES and (moved is None or qps(n) > qps(moved)):
                moved = n
        if moved is None:
            return best
        best = moved
    return best


def _peak(st: State, c: Candidate, why: str = "LoadGen peak at the latency bound") -> None:
    if c in st.server:
        return
    r = st.measurer.server(c)
    st.server[c] = r
    st.tries.append({"kind": "server", "candidate": c.as_dict(), "result": r, "why": why})
    st.path.append({"step": len(st.path) + 1, "candidate": c.key(), "why": "LoadGen Server peak" + ("" if why.startswith("LoadGen") else f": {why}"),
                    "peak_qps": r.get("peak_qps"), "p_ms": r.get("p_ms")})
    peak = r.get("peak_qps")
    log.info(f"tune: {c.label()}: Server peak {'none' if peak is None else f'{peak:,.2f}'} QPS at p{st.bounds.percentile:g} "
             f"<= {st.bounds.latency_ms:g} ms")


def _meets(st: State, c: Candidate) -> bool:
    if st.score(c) < 0:
        return False
    if st.bounds.latency_ms is None:
        return True
    r = st.server.get(c) or {}
    return bool(r.get("peak_qps")) and (r.get("p_ms") is None or r["p_ms"] <= st.bounds.latency_ms)


def _winner(st: State) -> dict | None:
    ok = [c for c in st.offline if _meets(st, c)]
    if not ok:
        return None
    key = (lambda c: st.server[c]["peak_qps"]) if st.bounds.latency_ms is not None else st.score
    c = max(ok, key=key)
    return {"candidate": c.as_dict(), "key": c.key(), "label": c.label(), "offline": st.offline[c],
            "server": st.server.get(c), "objective": "server_qps" if st.bounds.latency_ms is not None else "offline_ips",
            "value": key(c)}


def _table(st: State, accuracy: dict) -> list[dict]:
    rows = []
    for c, r in st.offline.items():
        a = accuracy[f"{c.backend}:{c.precision}"]
        s = st.server.get(c) or {}
        rows.append({"key": c.key(), "label": c.label(), "candidate": c.as_dict(), "top1": a["top1"],
                     "drop": a["drop"], "margin": a.get("margin"), "accuracy_passed": a["passed"],
                     "confident": a["confident"], "ips": r["ips"], "latency_ms": r.get("latency_ms"),
                     "meets_latency": st.score(c) >= 0, "server_qps": s.get("peak_qps"), "server_p_ms": s.get("p_ms")})
    def y(row):
        return (row["server_qps"] or 0) if st.bounds.latency_ms is not None else row["ips"]

    rows.sort(key=y, reverse=True)
    for r in rows:  # the frontier: no other candidate is at least as accurate and as fast, and better in one
        r["y"] = y(r)
        r["frontier"] = r["meets_latency"] and y(r) > 0 and not any(
            o is not r and o["meets_latency"] and o["top1"] >= r["top1"] and y(o) >= y(r)
            and (o["top1"] > r["top1"] or y(o) > y(r)) for o in rows)
    return rows


# ---------------------------------------------------------------- resumable measurements


class Recorded:
    """A measurer whose every answer is one JSON file in `folder`, written atomically and named
    by a fingerprint of what it was measured from (`identity`: the files' SHA-256, the data,
    the machine, the timing settings, plus the call): a killed tune, run again, reads back
    what it had and measures only what is missing. `plan` goes into every file."""

    def __init__(self, inner, folder: str, identity: dict, plan: dict | None = None):
        self.inner, self.folder, self.identity, self.plan = inner, folder, identity, plan or {}
        self.measured = self.reused = 0
        os.makedirs(folder, exist_ok=True)

    def _call(self, kind: str, what: dict, fn):
        from .._io import atomic_write_json, read_record
        from .. import ClsbenchError

        ident = {"kind": kind, "what": what, "identity": self.identity}
        digest = hashlib.sha256(json.dumps(ident, sort_keys=True, default=str).encode()).hexdigest()
        name = "-".join(str(v) for v in what.values() if v is not None)
        path = os.path.join(self.folder, f"{kind}-{name}-{digest[:12]}.json")
        try:
            old = read_record(path)
        except ClsbenchError:
            old = None  # unreadable: measured again
        if old and old.get("fingerprint") == digest and isinstance(old.get("result"), dict):  # else: measured again
            self.reused += 1
            return {**old["result"], "reused": True}
        result = fn()
        self.measured += 1
        atomic_write_json(path, {"kind": kind, "candidate": what, "fingerprint": digest, "identity": self.identity,
                                 "plan": self.plan, "result": result, "measured_at": time.time()})
        return result

    def accuracy(self, backend: str, precision: str) -> dict:
        return self._call("accuracy", {"backend": backend, "precision": precision},
                          lambda: self.inner.accuracy(backend, precision))

    def offline(self, c: Candidate) -> dict:
        return self._call("offline", c.as_dict(), lambda: self.inner.offline(c))

    def server(self, c: Candidate) -> dict:
        return self._call("server", c.as_dict(), lambda: self.inner.server(c))
