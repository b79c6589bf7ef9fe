"""DEVELOPERS.md's layout rules stay true: scripts/layout_check.py (import circles, function
size, the guide model named once) passes, and it does catch a circle when one is made."""
from __future__ import annotations

import subprocess
import sys

from helpers import ROOT


def test_layout_rules_hold():
    p = subprocess.run([sys.executable, str(ROOT / "scripts" / "layout_check.py")], capture_output=True, text=True)
    assert p.returncode == 0, p.stdout + p.stderr


def test_the_check_sees_a_circle(tmp_path, monkeypatch):
    import importlib.util

    spec = importlib.util.spec_from_file_location("layout_check", ROOT / "scripts" / "layout_check.py")
    lc = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(lc)
    pkg = tmp_path / "clsbench"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("def f():\n    from .b import g\n")
    (pkg / "b.py").write_text("from . import a\n")
    (pkg / "c.py").write_text("def h(" + ", ".join(f"p{i}" for i in range(9)) + "):\n    pass\n")
    monkeypatch.setattr(lc, "SRC", pkg)
    assert lc.circles() == [["clsbench.a", "clsbench.b"]]
    assert [x.split(" ", 1)[1] for x in lc.big_functions()] == ["h: 2 lines, 9 parameters"]


def test_the_check_sees_an_upward_import_and_counts_kw(tmp_path, monkeypatch):
    """A lazy import from a lower package into a higher one (model/ reaching measure/) is
    refused; a **kw counts as a parameter."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("layout_check", ROOT / "scripts" / "layout_check.py")
    lc = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(lc)
    pkg = tmp_path / "clsbench"
    for sub in ("model", "measure"):
        (pkg / sub).mkdir(parents=True)
        (pkg / sub / "__init__.py").write_text("")
    (pkg / "__init__.py").write_text("")
    (pkg / "model" / "table.py").write_text("def f():\n    from ..measure.sweep import g\n")
    (pkg / "measure" / "sweep.py").write_text("from ..model.table import f\n\n\ndef g(" +
                                              ", ".join(f"p{i}" for i in range(8)) + ", **kw):\n    pass\n")
    monkeypatch.setattr(lc, "SRC", pkg)
    assert lc.upward_imports() == ["upward import: clsbench.model.table (layer 1) imports clsbench.measure.sweep "
                                   "(layer 8)"]
    assert [x.split(" ", 1)[1] for x in lc.big_functions()] == ["g: 2 lines, 9 parameters"]
