"""The `clsbench profile` command: its parser (`add_parser`) and its call-and-print function
(`cmd_profile`). Registered by `cli.commands`."""
from __future__ import annotations

from .. import ClsbenchError


def add_parser(command) -> None:
    command("profile", help="(in progress)")


def cmd_profile(a) -> int:
    raise ClsbenchError("`clsbench profile` is not built yet")
