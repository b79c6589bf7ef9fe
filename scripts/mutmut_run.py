"""`make mutate`: mutation testing by a tool (mutmut 3) on the code that computes what a user
reads — scores and top-5, predictions, label sets and ReaL, evaluation, the record schema,
the resolver and the reuse rule, LoadGen's summary parsing, the numbers a report renders —
run against the in-process unit tests that cover it (pyproject's [tool.mutmut]).

It runs in a copy of the tree (build/mutate/: mutmut writes its mutants/ there, and the
working tree is never edited); tests/conftest.py refuses to start when the tests would import
clsbench from anywhere but that copy's mutants/src, so every mutant counted is one the tests
ran. Mutants written down as equivalent (scripts/mutmut_equivalent.toml, each with its
reason) are left out of the score. Prints one row per module and, with --write, puts the
table in docs/testing.md between its mutmut markers.

    python scripts/mutmut_run.py [--write] [--jobs N] [--only MODULE ...]
"""
from __future__ import annotations

import argparse
import datetime as dt
import fnmatch
import json
import os
import shutil
import subprocess
import sys
import time
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WORK = ROOT / "build" / "mutate"
EQUIVALENT = ROOT / "scripts" / "mutmut_equivalent.toml"
DOC = ROOT / "docs" / "testing.md"
BEGIN, END = "<!-- mutmut:begin -->", "<!-- mutmut:end -->"

# module → the functions mutated (mutmut's names: clsbench.plan.x_resolve_preset__mutmut_3);
# "*" is every function of the module. Where a module also starts processes or talks to a
# runtime, only its arithmetic and parsing are named: the rest is what scripts/mutate.py's
# cross-file and process-level faults cover.
SCOPE: dict[str, list[str]] = {
    "clsbench.runtime.scores": ["*"],
    "clsbench.accuracy.predict": ["*"],
    "clsbench.data.labelsets": ["*"],
    "clsbench.accuracy.evaluate": ["*"],
    "clsbench.report.records": ["*"],
    "clsbench.plan": ["folder_fingerprint", "resolve_preset", "check_tensor_preset", "judge_accuracy",
                      "_judged", "_recorded_provenance"],
    "clsbench.measure.sweep": ["reusable_cells", "cell_sources", "_check_compiled_from"],
    "clsbench.measure.loadgen": ["parse_summary", "_number", "decode_accuracy_log", "_batch_stats", "_ms",
                                 "setting_value"],
    "clsbench.report.tables": ["accuracy_rows", "perf_rows", "latency_cells", "stability_text", "_fps",
                               "accuracy_title"],
    "clsbench.report.html": ["num", "_cell", "_run_rows", "_perf_rows", "stability_cell", "latency_cells"],
    "clsbench.runtime.timing": ["pct_key", "parse_percentiles", "latency_stats", "stability", "rates", "_num",
                                "format_perf_file", "parse_batches"],
}


def globs(modules) -> list[str]:
    out = []
    for mod in modules:
        for fn in SCOPE[mod]:
            out.append(f"{mod}.x_{fn}__mutmut_*" if fn != "*" else f"{mod}.*")
            if fn != "*":  # methods: clsbench.mod.xǁClassǁname__mutmut_N
                out.append(f"{mod}.xǁ*ǁ{fn}__mutmut_*")
    return out


def copy_tree(dest: Path) -> None:
    """The tracked and untracked (not ignored) files of the working tree, as they are now."""
    listed = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=ROOT,
                            capture_output=True, check=True).stdout.decode().split("\0")
    if dest.exists():
        shutil.rmtree(dest)
    for rel in filter(None, listed):
        src = ROOT / rel
        if src.is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)


def results(work: Path) -> dict[str, str]:
    """mutant name → status, from mutmut's own .meta files (its exit-code table)."""
    from mutmut.stats import status_by_exit_code

    out = {}
    for meta in (work / "mutants").rglob("*.meta"):
        data = json.loads(meta.read_text())
        for name, code in data.get("exit_code_by_key", {}).items():
            out[name] = status_by_exit_code[code]
    return out


def survivors(work: Path, patterns: list[str]) -> list[str]:
    alive = ("killed", "timeout", "segfault")
    return sorted(n for n, s in results(work).items()
                  if s not in alive and any(fnmatch.fnmatch(n, p) for p in patterns))


def refresh_tests(work: Path) -> None:
    """The tests as they are now (mutmut copies them into mutants/ itself), and any source
    file changed since (mutmut makes that file's mutants again); the coverage of each function
    is collected again, so that a new test is run on the mutants it reaches."""
    for src in (ROOT / "src").rglob("*.py"):
        dest = work / src.relative_to(ROOT)
        if not dest.exists() or dest.read_bytes() != src.read_bytes():
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest)
    for rel in ("tests", "pyproject.toml"):
        src, dest = ROOT / rel, work / rel
        if src.is_dir():
            shutil.rmtree(dest, ignore_errors=True)
            shutil.copytree(src, dest, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(src, dest)
    (work / "mutants" / "mutmut-stats.json").unlink(missing_ok=True)


def equivalent() -> dict[str, str]:
    if not EQUIVALENT.exists():
        return {}
    return {k: v for k, v in tomllib.loads(EQUIVALENT.read_text()).get("equivalent", {}).items()}


def table(status: dict[str, str], patterns: list[str], modules, seconds: float) -> tuple[str, bool]:
    eq = equivalent()
    rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                         text=True).stdout.strip()
    rows = ["| module | mutants | killed | equivalent | survived | no test | score |",
            "|---|---:|---:|---:|---:|---:|---:|"]
    ok, survivors = True, []
    for mod in modules:
        names = [n for n in status if n.startswith(mod + ".") and any(fnmatch.fnmatch(n, p) for p in patterns)]
        killed = sum(status[n] in ("killed", "timeout", "segfault") for n in names)
        eqs = [n for n in names if n in eq and status[n] != "killed"]
        left = [n for n in names if status[n] not in ("killed", "timeout", "segfault") and n not in eq]
        no_test = sum(status[n] == "no tests" for n in left)
        judged = len(names) - len(eqs)
        score = 100.0 * killed / judged if judged else 100.0
        ok &= score >= 90.0
        survivors += left
        rows.append(f"| `{mod}` | {len(names)} | {killed} | {len(eqs)} | {len(left) - no_test} | {no_test} | "
                    f"{score:.1f} % |")
    head = (f"mutmut {_version()} on {dt.date.today().isoformat()}, revision {rev}, "
            f"{seconds / 60:.1f} min on {_cpu()} ({os.cpu_count()} CPUs):")
    text = "\n".join([head, "", *rows])
    if survivors:
        text += "\n\nNot killed and not written down as equivalent:\n" + "\n".join(f"- `{n}`" for n in survivors)
    return text, ok


def _version() -> str:
    from importlib.metadata import version

    return version("mutmut")


def _cpu() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "an unknown CPU"


def write_doc(text: str) -> None:
    doc = DOC.read_text()
    a, b = doc.index(BEGIN) + len(BEGIN), doc.index(END)
    DOC.write_text(doc[:a] + "\n" + text + "\n" + doc[b:])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--write", action="store_true", help="put the table in docs/testing.md")
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 2)
    ap.add_argument("--only", nargs="*", choices=sorted(SCOPE), default=sorted(SCOPE))
    ap.add_argument("--survivors", action="store_true",
                    help="test again only what the last run left alive, with the tests as they are now "
                         "(the code under test must be unchanged since that run)")
    a = ap.parse_args()
    patterns = globs(a.only)
    targets = patterns
    if a.survivors and (WORK / "mutants").exists():
        targets = survivors(WORK, patterns)
        refresh_tests(WORK)
        if not targets:
            print("no survivors to test again")
    else:
        copy_tree(WORK)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "MUTANT_UNDER_TEST")}
    start = time.monotonic()
    rc = 0 if not targets else subprocess.run([str(Path(sys.executable).parent / "mutmut"), "run", "--max-children", str(a.jobs),
                         *targets], cwd=WORK, env=env).returncode
    seconds = time.monotonic() - start
    if rc:
        print(f"mutmut run exited {rc}", file=sys.stderr)
        return rc
    text, ok = table(results(WORK), patterns, a.only, seconds)
    print(text)
    if a.write:
        write_doc(text)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
