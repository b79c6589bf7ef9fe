#!/usr/bin/env python3
"""Per-call costs behind the suite's time (DEVELOPERS.md, Tests): an export, a model build
with and without torch.nn.init's random fills, and a CLI call from a fresh interpreter vs
one forked from the tests' fork servers (tests/cli_fork.py; an export from the one with torch
imported). Medians of --repeats runs,
alternated so drift hits both sides alike. Run it on one core, as a test process is pinned:

    taskset -c 0 .venv/bin/python benchmarks/suite_costs.py [--model vgg11] [--repeats 3]
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")
sys.path[:0] = [str(ROOT / "src"), str(ROOT / "tests")]


def timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def export_rows(model: str, repeats: int, work: Path) -> list[tuple[str, float]]:
    from clsbench.flows.demo import calibration_batch
    from clsbench.model.weights import _torchvision_model
    from clsbench.compile.export import export_onnx
    from clsbench.model.table import get_model
    from clsbench.model.stand_in import save_realistic_weights

    spec = get_model(model)
    w = save_realistic_weights(spec, calibration_batch(spec.preprocessing, n=8), str(work / "w.pth"))
    init, skip, export = [], [], []
    for i in range(repeats):
        init.append(timed(lambda: _torchvision_model(spec, skip_init=False)))
        skip.append(timed(lambda: _torchvision_model(spec, skip_init=True)))
        export.append(timed(lambda: export_onnx(w, str(work / f"m{i}.onnx"), model=model)))
    return [(f"{model}: build with random init", statistics.median(init)),
            (f"{model}: build, init skipped (a state dict follows)", statistics.median(skip)),
            (f"{model}: export_onnx (16 synthetic parity samples)", statistics.median(export))]


def cli_rows(repeats: int, work: Path) -> list[tuple[str, float]]:
    import helpers
    from clsbench.compile.export import export_onnx
    from clsbench.data.proxy_task import write_images

    onnx = str(work / "proxy.onnx")
    export_onnx(str(helpers.PROXY), onnx)
    write_images(work / "data", 32, seed=7)
    run = ("run", "-q", "--weights", onnx, "--data", work / "data", "--work-dir", work / "w")
    helpers.run_cli(*run)  # the work dir is finished: later calls measure the call itself
    export = ("export", "--weights", helpers.PROXY, "--output", work / "e" / "m.onnx", "--parity-batch", "2")
    rows = []
    for args, name in ((("models", "resnet18"), "models resnet18"), (run, "run (work dir finished)"),
                       (export, "export (the proxy, 2 parity samples, no cache)")):
        spawn, fork = [], []
        server = "the torch fork server" if helpers.imports_torch(list(map(str, args))) else "the fork server"
        for _ in range(repeats):
            os.environ["CLSBENCH_TEST_SPAWN"] = "1"
            spawn.append(timed(lambda: helpers.run_cli(*args, env={"CLSBENCH_CACHE": "off"})))
            del os.environ["CLSBENCH_TEST_SPAWN"]
            fork.append(timed(lambda: helpers.run_cli(*args, env={"CLSBENCH_CACHE": "off"})))
        rows += [(f"clsbench {name}: fresh interpreter", statistics.median(spawn)),
                 (f"clsbench {name}: forked from {server}", statistics.median(fork))]
    return rows + freeze_rows(repeats)


def freeze_rows(repeats: int) -> list[tuple[str, float]]:
    """A trivial call forked from a server with torch imported, with and without gc.freeze()
    before the fork (without it, the child's exit collects and so copies the server's pages)."""
    import helpers

    rows = []
    for preload, how in ((("torch",), "gc.freeze"), (("torch", "no-gc-freeze"), "no gc.freeze")):
        server = helpers._ForkServer(preload=preload)
        call = lambda: helpers._forked(server, ["models", "resnet18"], dict(os.environ), None)  # noqa: E731
        call()  # starts the server
        rows.append((f"clsbench models resnet18: torch fork server, {how}",
                     statistics.median(timed(call) for _ in range(repeats))))
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="vgg11")
    ap.add_argument("--repeats", type=int, default=3)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="suite-costs-") as d:
        rows = export_rows(a.model, a.repeats, Path(d)) + cli_rows(max(a.repeats, 5), Path(d))
    print(f"CPUs usable: {len(os.sched_getaffinity(0))}; medians of {a.repeats} (CLI: {max(a.repeats, 5)}) runs\n")
    print(f"| {'what':<84} | seconds |\n|{'-' * 86}|--------:|")
    for what, s in rows:
        print(f"| {what:<84} | {s:7.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
