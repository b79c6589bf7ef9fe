"""Terminal output: progress bars, and the handler that shows the library's log records.

Library code reports through the `clsbench` logger (and `progress`, which only draws when
asked); the CLI installs `install_log_handler` so records appear on stderr, and a notebook
gets them through ordinary logging.
"""
from __future__ import annotations

import contextlib
import logging
import sys

from rich.console import Console
from rich.markup import escape
from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn,
                           TimeElapsedColumn, TimeRemainingColumn)

console = Console(stderr=True, highlight=False, soft_wrap=True)  # paths stay copyable
# piped or captured output (logs, CI) gets wide tables instead of 80-column wrapping
out = Console(highlight=False, soft_wrap=True, width=None if sys.stdout.isatty() else 160)
log = logging.getLogger("clsbench")

# The step in progress, so an interruption can say what was finished.
current = {"task": None, "done": 0, "total": 0}


@contextlib.contextmanager
def progress(total: int, description: str, enabled: bool = True):
    """Yields advance(n=1); draws a bar unless disabled. Always tracks `current`."""
    current.update(task=description, done=0, total=total)

    def count(n=1):
        current["done"] += n

    if not enabled or total <= 0 or not console.is_terminal:  # piped: no bar, no blank lines
        yield count
        return
    bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                   TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn(),
                   console=console, disable=False)
    with bar:
        task = bar.add_task(description, total=total)

        def advance(n=1):
            count(n)
            bar.advance(task, n)

        yield advance


def printable(text: str) -> str:
    """`text` with control characters shown as escapes (\\x1b, \\x07, \\u009b…): a file name
    from a data set may carry terminal escape sequences; they are shown, never obeyed."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() or c in "\n\t" else c.encode("unicode_escape").decode("ascii")
                   for c in text)


def warn(msg: str) -> None:
    log.warning(msg)


def info(msg: str) -> None:
    log.info(msg)


class _RichHandler(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        msg = escape(printable(record.getMessage()))
        if record.levelno >= logging.WARNING:
            msg = f"[bold yellow]warning:[/] {msg}"
        console.print(msg)


def install_log_handler() -> None:
    """Show clsbench's records (INFO and up) on stderr; silence other libraries' chatter."""
    if not any(isinstance(h, _RichHandler) for h in log.handlers):
        log.addHandler(_RichHandler())
    log.setLevel(logging.INFO)
    log.propagate = False
    # set on the exact loggers: torch configures its parent loggers when it is imported
    for noisy in ("nncf", "openvino", "torch", "onnxruntime", "torch.utils.cpp_extension"):
        logging.getLogger(noisy).setLevel(logging.ERROR)
