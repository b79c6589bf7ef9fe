#!/usr/bin/env python3
"""Where `make test`'s CPU goes: runs the suite with a hook that logs every Python process's own
CPU time (the test processes and each `clsbench ...` subprocess they start), then prints the
totals per command and per test file. The hook is a .pth file put into this interpreter's
site-packages for the run and removed after it; it writes only when CLSBENCH_PROCLOG is set.

    .venv/bin/python scripts/suite_cpu.py [PYTEST ARGS]   # default: -n 2 --dist worksteal

Processes that end with os._exit (multiprocessing workers) are not logged.
"""
from __future__ import annotations

import collections
import os
import site
import subprocess
import sys
import tempfile
from pathlib import Path

HOOK = '''import os, sys, time, atexit
if os.environ.get("CLSBENCH_PROCLOG"):
    def _log(t0=time.time()):
        try:
            r = os.times()
            test = os.environ.get("PYTEST_CURRENT_TEST", "-").split(" ")[0]
            with open(os.environ["CLSBENCH_PROCLOG"], "a") as f:
                f.write(f"{time.time() - t0:.2f}\\t{r.user + r.system:.2f}\\t{test}\\t{' '.join(sys.argv)[:200]}\\n")
        except Exception:
            pass
    atexit.register(_log)
'''


def command_of(argv: str) -> str:
    words = argv.split()
    if not words:
        return "-"
    if words[0].endswith("cli.py") and len(words) > 1:
        return "clsbench " + words[1]
    # xdist workers run as `python -c ...`; without xdist the tests run in pytest itself
    return "test process" if words[0] == "-c" or "pytest" in words[0] else Path(words[0]).name


def main() -> int:
    root = Path(__file__).resolve().parents[1]
    pth = Path(site.getsitepackages()[0]) / "zz_clsbench_proclog.pth"
    log = Path(tempfile.mkstemp(prefix="clsbench-proclog-")[1])
    pth.write_text("import sys; exec(" + repr(HOOK) + ", {})\n")  # its own globals: site's lack time
    try:
        args = sys.argv[1:] or ["-n", "2", "--dist", "worksteal"]
        rc = subprocess.call([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args], cwd=root,
                             env=dict(os.environ, CLSBENCH_PROCLOG=str(log)))
    finally:
        pth.unlink(missing_ok=True)
    by_cmd, by_file = collections.Counter(), collections.Counter()
    count = collections.Counter()
    for line in log.read_text().splitlines():
        _, cpu, test, argv = line.split("\t", 3)
        cmd = command_of(argv)
        by_cmd[cmd] += float(cpu)
        count[cmd] += 1
        if cmd != "test process":
            by_file[test.split("::")[0]] += float(cpu)
    log.unlink()
    print("\nCPU seconds by command (processes logged; spawned workers carry their parent's command):")
    for cmd, cpu in by_cmd.most_common(15):
        print(f"  {cpu:8.1f}  {cmd} ({count[cmd]})")
    print("CPU seconds of subprocesses, by test file:")
    for f, cpu in by_file.most_common(15):
        print(f"  {cpu:8.1f}  {f}")
    return rc


if __name__ == "__main__":
    sys.exit(main())
