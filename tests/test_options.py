"""Every numeric option of every command goes through the one parser helper (cli._number):
NaN, infinities, words and values below the bound are refused in one line naming the option,
before anything runs. Generated from the parser itself, so a new option is covered."""
from __future__ import annotations

import argparse

import pytest

from clsbench.cli import commands as cli


def _numeric_options():
    ap = cli.build_parser()
    sub = next(a for a in ap._actions if isinstance(a, argparse._SubParsersAction))
    out = []
    for cmd, p in sub.choices.items():
        for a in p._actions:
            if a.option_strings and a.type is not None and getattr(a.type, "__name__", "") in ("integer", "number"):
                out.append((cmd, a.option_strings[-1], a.type))
            elif a.option_strings and a.type in (int, float):
                out.append((cmd, a.option_strings[-1], a.type))
    return out


OPTIONS = _numeric_options()


def test_every_numeric_option_uses_the_one_parser():
    plain = [(c, o) for c, o, t in OPTIONS if t in (int, float)]
    assert not plain, f"options parsed with bare int/float (NaN, -1 accepted): {plain}"
    assert len(OPTIONS) >= 35  # the commands' numeric options: the generator found them


@pytest.mark.parametrize("cmd,option,parse", OPTIONS, ids=[f"{c}{o}" for c, o, _ in OPTIONS])
def test_bad_numbers_are_one_line_errors(cmd, option, parse):
    for bad in ("nan", "inf", "-inf", "-1", "seven"):
        with pytest.raises(argparse.ArgumentTypeError) as e:
            parse(bad)
        assert repr(bad) in str(e.value)
    assert parse("64") == 64  # every option accepts an ordinary value


@pytest.mark.parametrize("argv,option", [
    (["perf", "--model", "m.onnx", "--duration", "nan"], "--duration"),
    (["loadgen", "--model", "m.onnx", "--data", "d", "--target-qps", "inf"], "--target-qps"),
    (["eval", "r", "l", "o", "x.json", "--tolerance", "nan"], "--tolerance"),
    (["compile", "--model", "m.onnx", "--backend", "openvino", "--max-drop", "-0.5"], "--max-drop"),
    (["run", "--weights", "w", "--data", "d", "--mean", "nan,0.4,0.4"], "--mean"),
])
def test_the_cli_says_it_in_one_line(capsys, argv, option):
    with pytest.raises(SystemExit) as e:
        cli.main(argv)
    err = capsys.readouterr().err
    assert e.value.code == 2 and len(err.strip().splitlines()) == 1 and option in err, err
