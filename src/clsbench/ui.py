"""Terminal output: progress bars and tables on stderr/stdout, silent when asked."""
from __future__ import annotations

import contextlib
import sys

from rich.console import Console
from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn,
                           TimeElapsedColumn, TimeRemainingColumn)

console = Console(stderr=True, highlight=False, soft_wrap=True)  # paths stay copyable
out = Console(highlight=False, soft_wrap=True)


# The step in progress, so an interruption can say what was finished.
current = {"task": None, "done": 0, "total": 0}


@contextlib.contextmanager
def progress(total: int, description: str, enabled: bool = True):
    """Yields advance(n=1); draws a bar unless disabled. Always tracks `current`."""
    current.update(task=description, done=0, total=total)

    def count(n=1):
        current["done"] += n

    if not enabled or total <= 0:
        yield count
        return
    bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                   TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn(),
                   console=console, transient=not console.is_terminal, disable=False)
    with bar:
        task = bar.add_task(description, total=total)

        def advance(n=1):
            count(n)
            bar.advance(task, n)

        yield advance


def warn(msg: str) -> None:
    console.print(f"[bold yellow]warning:[/] {msg}")


def info(msg: str) -> None:
    console.print(msg)


def is_quiet_env() -> bool:
    return not sys.stderr.isatty()
