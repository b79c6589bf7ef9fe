"""The layout rules of DEVELOPERS.md, checked: no import circles between clsbench's modules
(lazy imports inside functions count), imports only downward through the packages' LAYERS,
no function over 60 lines or 8 parameters (a *args or **kw counts as one), and the guide
model's name written once. Prints what breaks them; exit 1 if anything does.

    python scripts/layout_check.py
"""
from __future__ import annotations

import ast
import sys
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "clsbench"
MAX_LINES, MAX_PARAMS = 60, 8


def module_name(p: Path) -> str:
    parts = list(p.relative_to(SRC).with_suffix("").parts)
    return ".".join(["clsbench"] + (parts[:-1] if parts[-1] == "__init__" else parts))


def imports(p: Path) -> set[str]:
    me = module_name(p)
    pkg = me if p.name == "__init__.py" else me.rsplit(".", 1)[0]
    out = set()
    for n in ast.walk(ast.parse(p.read_text())):
        if isinstance(n, ast.ImportFrom) and n.level:
            base = pkg.split(".")[:len(pkg.split(".")) - (n.level - 1)]
            target = ".".join(base + ([n.module] if n.module else []))
            out |= {f"{target}.{a.name}" for a in n.names} if n.module is None else {target}
        elif isinstance(n, ast.ImportFrom) and (n.module or "").startswith("clsbench"):
            out.add(n.module)
        elif isinstance(n, ast.Import):
            out |= {a.name for a in n.names if a.name.startswith("clsbench")}
    return out


def circles() -> list[list[str]]:
    files = {module_name(p): p for p in SRC.rglob("*.py")}
    graph = {m: {d for d in imports(p) if d in files and d != m} for m, p in files.items()}
    index, low, stack, on, found = {}, {}, [], set(), []

    def visit(v):  # Tarjan's strongly connected components
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


# The packages from the bottom up: a module imports only from its own layer or one below
# (each package's __init__ says what it owns). The root helpers, then what a model and the
# data are, running them, scoring, the resolver, making artifacts, reports, measuring one
# plan, the flows that chain commands, the command line.
LAYERS = (("clsbench", "clsbench._io", "clsbench.ui", "clsbench.defaults"), ("clsbench.model",), ("clsbench.data",),
          ("clsbench.runtime",), ("clsbench.accuracy",), ("clsbench.plan",), ("clsbench.compile",),
          ("clsbench.report",), ("clsbench.measure",), ("clsbench.flows",), ("clsbench.cli", "clsbench.__main__"))


def layer(module: str) -> int:
    best = None
    for i, prefixes in enumerate(LAYERS):
        for pre in prefixes:
            if (module == pre or module.startswith(pre + ".")) and (best is None or len(pre) > best[1]):
                best = (i, len(pre))
    if best is None:
        raise SystemExit(f"{module}: in no layer of scripts/layout_check.py's LAYERS: add its package there")
    return best[0]


def upward_imports() -> list[str]:
    files = {module_name(p): p for p in SRC.rglob("*.py")}
    out = []
    for m, p in sorted(files.items()):
        for d in sorted(imports(p)):
            target = d if d in files else d.rsplit(".", 1)[0]
            if target in files and layer(target) > layer(m):
                out.append(f"upward import: {m} (layer {layer(m)}) imports {target} (layer {layer(target)})")
    return out


def default_literals() -> list[str]:
    """The parser takes every default from clsbench.defaults: an option's default written in
    cli/ as a number or a string is a second table."""
    out = []
    for p in sorted((SRC / "cli").rglob("*.py")):
        for n in ast.walk(ast.parse(p.read_text())):
            if isinstance(n, ast.Call) and getattr(n.func, "attr", "") == "add_argument":
                for k in n.keywords:
                    if k.arg == "default" and isinstance(k.value, ast.Constant) and k.value.value not in (None, False):
                        out.append(f"{p.relative_to(SRC.parent)}:{n.lineno} default={k.value.value!r}: "
                                   f"put it in clsbench/defaults.py")
    return out


def big_functions() -> list[str]:
    out = []
    for p in sorted(SRC.rglob("*.py")):
        for n in ast.walk(ast.parse(p.read_text())):
            if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)):
                a = n.args
                params = (len(a.posonlyargs) + len(a.args) + len(a.kwonlyargs) + (a.vararg is not None)
                          + (a.kwarg is not None) - (a.args[:1] != [] and a.args[0].arg in ("self", "cls")))
                lines = n.end_lineno - n.lineno + 1
                if lines > MAX_LINES or params > MAX_PARAMS:
                    out.append(f"{p.relative_to(SRC.parent)}:{n.lineno} {n.name}: {lines} lines, {params} parameters")
    return out


def guide_literals() -> list[str]:
    return [f"{p.relative_to(SRC.parent)}:{i}" for p in sorted(SRC.rglob("*.py"))
            for i, line in enumerate(p.read_text().splitlines(), 1) if '"mnasnet1_0"' in line]


def main() -> int:
    bad = [f"import circle: {' -> '.join(c)}" for c in circles()] + upward_imports() + default_literals() + big_functions()
    lits = guide_literals()
    if len(lits) != 1:
        bad.append(f'"mnasnet1_0" written {len(lits)} times (once, as model.table.GUIDE_MODEL): {", ".join(lits)}')
    print("\n".join(bad) or "layout rules hold: no import circle, imports only downward, no default literal in the parser, no function over "
                            f"{MAX_LINES} lines or {MAX_PARAMS} parameters, the guide model named once")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
