"""Terminal output: progress bars and tables on stderr/stdout, silent when asked."""
from __future__ import annotations

import contextlib
import sys

from rich.console import Console
from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn,
                           TimeElapsedColumn, TimeRemainingColumn)

console = Console(stderr=True, highlight=False, soft_wrap=True)  # paths stay copyable
out = Console(highlight=False, soft_wrap=True)


@contextlib.contextmanager
def progress(total: int, description: str, enabled: bool = True):
    """Yields advance(n=1). Disabled (a no-op) when not wanted or when total is 0."""
    if not enabled or total <= 0:
        yield lambda n=1: None
        return
    bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                   TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn(),
                   console=console, transient=not console.is_terminal, disable=False)
    with bar:
        task = bar.add_task(description, total=total)
        yield lambda n=1: bar.advance(task, n)


def warn(msg: str) -> None:
    console.print(f"[bold yellow]warning:[/] {msg}")


def info(msg: str) -> None:
    console.print(msg)


def is_quiet_env() -> bool:
    return not sys.stderr.isatty()
