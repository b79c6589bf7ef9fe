"""One table of defaults (clsbench.defaults), read by the parser and by the library's option
dataclasses alike: a library call decides what the command line decides, and a value that
differs between commands says why."""
from __future__ import annotations

import argparse
import dataclasses

import pytest

from clsbench import defaults
from clsbench.cli import commands

OPTION_CLASSES = {  # command -> the library's options dataclass the command fills
    "infer": "clsbench.measure.infer:InferOptions", "perf": "clsbench.measure.sweep:PerfOptions",
    "loadgen": "clsbench.measure.loadgen:LoadgenOptions", "run": "clsbench.flows.run:RunOptions",
    "zoo": "clsbench.flows.zoo:ZooOptions", "compile": "clsbench.compile.artifacts:CompileOptions",
}


def _parsers():
    ap = commands.build_parser()
    sub = next(a for a in ap._actions if isinstance(a, argparse._SubParsersAction))
    return sub.choices


def _cls(path: str):
    import importlib

    mod, name = path.split(":")
    return getattr(importlib.import_module(mod), name)


@pytest.mark.parametrize("cmd", sorted(defaults.DEFAULTS))
def test_the_parser_takes_every_default_from_the_table(cmd):
    p = _parsers()[cmd]
    for a in p._actions:
        if defaults.has_default(cmd, a.dest):
            assert a.default == defaults.default(cmd, a.dest), (cmd, a.dest)
    for name in defaults.DEFAULTS[cmd]:
        assert name in {a.dest for a in p._actions}, f"{cmd} has no option {name}: a stale row"


@pytest.mark.parametrize("cmd", sorted(OPTION_CLASSES))
def test_the_library_takes_the_same_defaults(cmd):
    fields = {f.name: f.default for f in dataclasses.fields(_cls(OPTION_CLASSES[cmd]))}
    shared = [n for n in fields if defaults.has_default(cmd, n)]
    assert shared, cmd
    for name in shared:
        assert fields[name] == defaults.default(cmd, name), (cmd, name)


def test_a_value_that_differs_between_commands_says_why():
    values: dict[str, set] = {}
    for cmd, table in defaults.DEFAULTS.items():
        for name, v in table.items():
            values.setdefault(name, set()).add(repr(v))
    differing = {n for n, vs in values.items() if len(vs) > 1}
    assert differing >= {"batch_size", "warmup", "duration"}  # the premise: they do differ
    assert differing <= set(defaults.WHY), f"no reason given for {sorted(differing - set(defaults.WHY))}"


def test_help_says_the_default_it_applies():
    """A help text that names a number as the default names the one the table gives."""
    import re

    for cmd, p in _parsers().items():
        for a in p._actions:
            m = re.search(r"\(default:? ([0-9][0-9.,]*)", a.help or "")
            if m and defaults.has_default(cmd, a.dest) and isinstance(a.default, (int, float, str)):
                assert m.group(1).rstrip(",.") in str(a.default), (cmd, a.dest, a.help, a.default)
