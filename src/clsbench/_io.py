"""Files: atomic writes, hashing, and the one answer to "does this folder hold a compatible run".

Folders that a guide script reads (`dumpOutput_device<N>/` for imagenet_acc_eval.py,
`prep_dataset/` for gen_dataset_info.py) hold nothing but what that script expects: their
records, temp files and locks live beside them (`sidecar`, `temp_dir`, `folder_lock`).
"""
from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import shutil
from pathlib import Path

from . import ClsbenchError, __version__


class ConflictError(ClsbenchError):
    """A folder holds the results of another run. The CLI adds the advice that fits the
    command (which flags it has); the library only says what differs."""

    advice = "conflict"


def regular_file(path: str | os.PathLike, what: str = "file") -> str:
    """`path` if it is a regular file (after symlinks); a FIFO, device or socket would block or
    stream forever when read, a directory is not a file: one-line errors, before opening."""
    import stat

    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise ClsbenchError(f"{path}: {what} not found") from None
    if stat.S_ISDIR(st.st_mode):
        raise ClsbenchError(f"{path}: is a directory, not a {what}")
    if not stat.S_ISREG(st.st_mode):
        raise ClsbenchError(f"{path}: not a regular file (a FIFO, device or socket); clsbench reads a {what} "
                            f"only from a regular file")
    return os.fspath(path)


def usable_cpus() -> int:
    """The CPUs this process may run on (its affinity: taskset, a container's cpuset), not
    the machine's count: thread pools and worker processes sized by os.cpu_count() under a
    2-of-64-CPU cpuset spin on each other."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except AttributeError:  # no affinity API (macOS)
        return os.cpu_count() or 1


def available_memory() -> int:
    """Bytes of memory available now (Linux MemAvailable; elsewhere the free pages)."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def check_memory(nbytes: int, what: str) -> None:
    """Refuse up front what cannot fit, instead of a MemoryError traceback after the slow steps."""
    have = available_memory()
    if nbytes > have:
        raise ClsbenchError(f"{what} needs {nbytes / 2**30:,.1f} GiB, more than the {have / 2**30:,.1f} GiB of "
                            f"memory available")


def file_sha256(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def file_fingerprint(path: str | os.PathLike) -> list:
    """What make and rsync compare: resolved path, size, mtime_ns. A file replaced in place,
    or another file at the same name, has another fingerprint."""
    st = os.stat(path)
    return [os.path.realpath(path), st.st_size, st.st_mtime_ns]


def fingerprint(rows) -> str:
    """A short digest of JSON-able rows (the data set's identity in records)."""
    h = hashlib.sha256()
    for r in rows:
        h.update(json.dumps(r).encode())
        h.update(b"\n")
    return h.hexdigest()[:16]


def atomic_write_bytes(path: str | os.PathLike, data: bytes, tmp_dir: str | os.PathLike | None = None) -> None:
    """Write to a temp file, then rename: a reader never sees a half-written file and a
    crash leaves none at the final name. `tmp_dir` (same filesystem) keeps the temp file
    out of a folder that another program lists."""
    path = os.fspath(path)
    head, name = os.path.split(path)
    tmp = None
    try:
        fd, tmp = exclusive_temp(os.fspath(tmp_dir) if tmp_dir else head or ".", name)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException as e:
        if tmp:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
        if isinstance(e, OSError) and e.filename is None:  # os.write names no file: say which
            raise OSError(e.errno, e.strerror, path) from e
        raise


def atomic_write_text(path: str | os.PathLike, text: str, tmp_dir=None) -> None:
    atomic_write_bytes(path, text.encode("utf-8"), tmp_dir)


def atomic_write_json(path: str | os.PathLike, obj, indent: int | None = 2) -> None:
    atomic_write_text(path, json.dumps(obj, indent=indent) + ("\n" if indent else ""))


def worker_start(parent: int) -> None:
    """First thing in every worker process clsbench starts: Ctrl-C is the parent's to handle,
    and the worker dies with its parent (Linux PR_SET_PDEATHSIG; elsewhere a check that the
    parent is still there), so a killed run leaves no process writing outside its lock."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C goes to the whole group; the parent decides
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGKILL), 0, 0, 0)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass
    if os.getppid() != parent:  # the parent died before the line above took effect
        os._exit(1)


def exclusive_temp(directory: str, name: str) -> tuple[int, str]:
    """(fd, path) of a new temp file for `name` in `directory`, created exclusively
    (O_CREAT|O_EXCL under a random name: a file or symlink planted there is never opened);
    `.<name>.<pid>.<random>.tmp`, the pid telling `remove_dead_temps` whose it is."""
    import tempfile

    fd, tmp = tempfile.mkstemp(prefix=f".{name}.{os.getpid()}.", suffix=".tmp", dir=directory)
    os.fchmod(fd, 0o644)
    return fd, tmp


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_dead_temps(directory: str | os.PathLike) -> int:
    """Delete the temp files of writers that no longer run (a killed run's, named by
    `exclusive_temp` with their pid); a live process's are left alone. Returns the count."""
    import re

    n = 0
    for p in Path(directory).glob("*.tmp"):  # hidden ones too; 0.1 named them <file>.<pid>.tmp
        m = re.fullmatch(r".+\.(\d+)(\.[A-Za-z0-9_]+)?\.tmp", p.name)
        if not m or int(m.group(1)) == os.getpid() or _alive(int(m.group(1))):
            continue
        if p.is_symlink() or p.is_file():
            p.unlink(missing_ok=True)
            n += 1
    return n


def remove_stale_temps(directory: str | os.PathLike) -> int:
    """Delete temp files left by a killed writer in a folder this process holds the lock of
    (so none is in use); returns how many were removed."""
    n = 0
    for p in Path(directory).glob(".*.tmp"):
        p.unlink(missing_ok=True)
        n += 1
    return n


# ---------------------------------------------------------------- what lives beside a folder

def _beside(folder: str | os.PathLike, fmt: str) -> Path:
    f = Path(os.path.abspath(folder))
    return f.parent / fmt.format(f.name)


def sidecar(folder: str | os.PathLike) -> Path:
    """The record of what wrote `folder`: `<folder>.clsbench.json`, beside it."""
    return _beside(folder, "{}.clsbench.json")


def temp_dir(folder: str | os.PathLike) -> Path:
    """Where files bound for `folder` are written before their rename (same filesystem);
    emptied of a killed writer's leftovers."""
    d = _beside(folder, ".{}.tmp")
    d.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(d)
    return d


def remove_temp_dir(folder: str | os.PathLike) -> None:
    shutil.rmtree(_beside(folder, ".{}.tmp"), ignore_errors=True)


def read_record(path: str | os.PathLike) -> dict | None:
    """A JSON record; None when absent; an error naming the file when corrupt."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    try:
        obj = json.loads(text)
        if not isinstance(obj, dict):
            raise ValueError("not a JSON object")
        return obj
    except ValueError as e:
        raise ClsbenchError(f"{path}: unreadable clsbench record ({e}); remove it to start afresh") from None


def normalized(obj):
    """What a JSON round trip makes of obj (tuples become lists), for comparisons with records."""
    return json.loads(json.dumps(obj))


def matching_record(path: str | os.PathLike, identity: dict, what: str) -> dict | None:
    """THE resume check: None when no record exists; the record when its identity equals
    `identity` (resume); ConflictError naming what differs otherwise. A corrupt record is
    an error, the same for every command."""
    old = read_record(path)
    if old is None:
        return None
    want = normalized(identity)
    have = old.get("identity", {})
    diff = {k: {"there": have.get(k), "now": v} for k, v in want.items() if have.get(k) != v}
    if diff:
        raise ConflictError(f"{what} holds the results of another run; differs in "
                            + "; ".join(f"{k}: {d['there']!r} there, {d['now']!r} now" for k, d in diff.items()))
    return old


def reusable_record(path: str | os.PathLike, identity: dict) -> dict | None:
    """For derived results that are cheap to redo (compiled artifacts, perf cells): the
    record when its identity equals `identity`, else None (redo them). Where a mismatch
    must not be redone silently (a user's outputs), use `matching_record`."""
    try:
        old = read_record(path)
    except ClsbenchError:
        return None
    return old if old is not None and old.get("identity") == normalized(identity) else None


# ---------------------------------------------------------------- output folders: the one reuse rule

def claim(folder: Path, identity: dict, overwrite: bool, listing, clear, what: str) -> tuple[Path, dict | None]:
    """Make `folder` this run's (either output writer): refuse outputs of another run (a
    record naming another identity, or `listing()` non-empty with no record) unless
    `overwrite`, which `clear()`s them. Returns the temp folder beside it and the source
    fingerprints the earlier record vouches for (None: no record, or one that vouches for
    none). The caller records this run's with `record_sources` once stale outputs are gone."""
    folder.mkdir(parents=True, exist_ok=True)
    old = None
    if overwrite:
        clear()
    else:
        old = matching_record(sidecar(folder), identity, str(folder))
        if old is None and listing():
            raise ConflictError(f"{folder}: holds {what} that clsbench did not write "
                                f"(no {sidecar(folder).name} beside it)")
    return temp_dir(folder), (old or {}).get("sources")


def record_sources(folder: Path, identity: dict, sources: dict) -> None:
    """The record beside an output folder: this run's identity and, per output, the
    fingerprint of the input it is computed from (plan.file_fingerprint)."""
    atomic_write_json(sidecar(folder), {"tool": f"clsbench {__version__}", "identity": identity,
                                        "sources": sources}, indent=None)


def still_valid(present, recorded: dict | None, sources: dict) -> set[str]:
    """THE reuse rule for outputs: an output counts as done only when the record vouches
    that it was computed from the very input file this run has under its name."""
    if recorded is None:
        return set()
    return {n for n in present if n in sources and recorded.get(n) == sources[n]}


@contextlib.contextmanager
def folder_lock(folder: str | os.PathLike):
    """Exclusive use of `folder` by this process: a second clsbench process on the same
    folder is refused at once instead of interleaving writes. The lock file lives beside
    the folder and the lock dies with the process (flock), so a kill leaves nothing stale."""
    import fcntl

    path = Path(os.path.realpath(folder))  # the folder itself, however it is spelled (symlinks)
    path = path.parent / f".{path.name}.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            if e.errno not in (errno.EAGAIN, errno.EACCES):
                raise
            other = os.pread(fd, 64, 0).decode(errors="replace").strip() or "?"
            raise ClsbenchError(f"{os.path.abspath(folder)}: in use by another clsbench process "
                                f"(pid {other}); wait for it to finish or use another folder") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        yield
    finally:
        os.close(fd)


def check_own_folder(output: str, own, writes: str, other: str, earlier: str) -> None:
    """--output is a new folder, an empty one or an earlier one of this command's (its entries
    `own`): never a file, never a folder holding anything else (another command's outputs would
    be replaced or hidden). `writes`: what it holds, for the file case; `other`: how the foreign
    entries are named; `earlier`: what giving an earlier folder of this command does."""
    if os.path.exists(output) and not os.path.isdir(output):
        raise ClsbenchError(f"--output {output}: an existing file, not a folder; give a folder for {writes}")
    if not os.path.isdir(output):
        return
    found = sorted(n for n in os.listdir(output) if n not in own and not n.startswith("."))
    if found:
        shown = ", ".join(found[:3]) + (f" and {len(found) - 3} more" if len(found) > 3 else "")
        raise ClsbenchError(f"--output {output}: holds {other} ({shown}); give a new or empty folder, or {earlier}")


def check_not_input(output: str | os.PathLike, inputs: dict | None = None, what: str = "--output", *,
                    folders: dict | None = None) -> None:
    """THE rule that an output is never its own input, in every command, checked before any
    slow step: `output` (a file or folder about to be written) may not be one of `inputs`
    ({"the --weights file": path, "one of the images DIR lists": [paths]}), nor be or lie
    inside one of `folders` ({"SRC_DIR": folder read whole}). The same file however it is
    spelled: `./a/../a/x`, a symlink (realpath), a hard link (samefile). One-line error
    naming both, and `what` to change."""
    out = os.path.realpath(output)
    for label, paths in (inputs or {}).items():
        for p in ([paths] if isinstance(paths, (str, os.PathLike)) else paths or ()):
            same = os.path.realpath(p) == out
            with contextlib.suppress(OSError):
                same = same or os.path.samefile(output, p)
            if same:
                spelled = "" if os.fspath(p) == os.fspath(output) else f"{p}, "
                raise ClsbenchError(f"{output}: is also {label} ({spelled}the same file); give another {what}")
    for label, folder in (folders or {}).items():
        f = os.path.realpath(folder)
        if out == f or out.startswith(f.rstrip(os.sep) + os.sep):
            where = "is" if out == f else "lies inside"
            raise ClsbenchError(f"{output}: {where} {label} {folder}, which is read as input (an output is never "
                                f"written among its inputs); give another {what}")
