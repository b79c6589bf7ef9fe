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
