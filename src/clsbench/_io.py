"""Atomic file output: a reader never sees a half-written file, a crash leaves none."""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    path = Path(path)
    # The temp file lives in the target directory so os.replace is a same-filesystem rename.
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike, obj, indent: int | None = 2) -> None:
    atomic_write_text(path, json.dumps(obj, indent=indent) + ("\n" if indent else ""))


def remove_stale_temps(directory: str | os.PathLike) -> int:
    """Delete temp files left by a killed writer; returns how many were removed."""
    n = 0
    for p in Path(directory).glob(".*.tmp"):
        p.unlink(missing_ok=True)
        n += 1
    return n
