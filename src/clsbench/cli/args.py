"""The pieces of the command line every command's parser and call share: THE parser of every
numeric option (`_number`, `_int`, `_real`), `--accept-preset-mismatch`, and this invocation as
one line for the records (`command_line`). `cli.commands` and the commands in modules of their
own (`profile_cmd`, `tune_cmd`) import them from here."""
from __future__ import annotations

import argparse
import sys

_ARGV: list[str] | None = None  # main()'s argv, for command_line()


def set_argv(argv: list[str] | None) -> None:
    global _ARGV
    _ARGV = argv


def _number(kind, least: float, strict: bool):
    """THE parser of every numeric option: a finite number of `kind` (int or float), at least
    `least` (above it when `strict`); NaN, infinities, words and out-of-range values are told
    in one line naming the value and the bound."""
    import math

    bound = f"{'>' if strict else '>='} {least:g}"

    def parse(text: str):
        try:
            v = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r}: not {'a whole number' if kind is int else 'a number'}") from None
        if not math.isfinite(v) or v < least or (strict and v == least):
            raise argparse.ArgumentTypeError(f"must be {'a whole number' if kind is int else 'a finite number'} "
                                             f"{bound}, got {text!r}")
        return v

    parse.__name__ = "integer" if kind is int else "number"
    return parse


def _int(least: int):
    return _number(int, least, False)


def _real(least: float, strict: bool = False):
    return _number(float, least, strict)


def _add_accept_preset(p) -> None:
    p.add_argument("--accept-preset-mismatch", action="store_true",
                   help="run tensors whose recorded preprocessing is not the model's preset (refused by "
                        "default; the record says it was accepted)")


def command_line() -> str:
    """This invocation as one shell-quoted line, recorded beside the figures it produces."""
    import shlex

    return shlex.join(["clsbench", *(_ARGV if _ARGV is not None else sys.argv[1:])])
