"""The `clsbench tune` command: its parser (`add_parser`) and its call-and-print function
(`cmd_tune`). Registered by `cli.commands`."""
from __future__ import annotations

from .. import ClsbenchError


def add_parser(command) -> None:
    command("tune", help="(in progress)")


def cmd_tune(a) -> int:
    raise ClsbenchError("`clsbench tune` is not built yet")
