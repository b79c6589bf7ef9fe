"""Atomic file output: a reader never sees a half-written file, a crash leaves none."""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path


def file_sha256(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    path = os.fspath(path)
    # Same directory, so os.replace is a rename on one filesystem; the pid keeps two
    # processes apart, and one process writes a given name from one thread at a time.
    head, name = os.path.split(path)
    tmp = os.path.join(head, f".{name}.{os.getpid()}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException as e:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        if isinstance(e, OSError) and e.filename is None:  # os.write names no file: say which
            raise OSError(e.errno, e.strerror, path) from e
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
