"""Fault injection for tests, kept out of clsbench: a folder put first on PYTHONPATH makes
every Python process of a run (the driver, Ray's workers) import this at start-up.

CLSBENCH_FAULT_RAY_DIE=FILE:N — the first Ray inference actor to reach its N-th batch exits
hard (once: it creates FILE), the way a crashed or OOM-killed worker disappears. The actor
class is wrapped when its module is imported, so production code carries no hook."""
import importlib.abc
import importlib.util
import os
import sys

TARGET = "clsbench.runtime.engines.raydata"


def _die_at(marker: str, n: int, calls: int) -> None:
    if calls == n:
        try:
            fd = os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            return
        os.close(fd)
        os._exit(1)


def _wrap(module) -> None:
    marker, n = os.environ["CLSBENCH_FAULT_RAY_DIE"].rsplit(":", 1)
    call = module.Infer.__call__

    def dying_call(self, batch):
        self._fault_calls = getattr(self, "_fault_calls", 0)
        _die_at(marker, int(n), self._fault_calls)
        self._fault_calls += 1
        return call(self, batch)

    module.Infer.__call__ = dying_call


class _Finder(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name != TARGET:
            return None
        sys.meta_path.remove(self)
        try:
            spec = importlib.util.find_spec(name)
        finally:
            sys.meta_path.insert(0, self)
        exec_module = spec.loader.exec_module

        def exec_and_wrap(module):
            exec_module(module)
            _wrap(module)

        spec.loader.exec_module = exec_and_wrap
        return spec


if os.environ.get("CLSBENCH_FAULT_RAY_DIE"):
    sys.meta_path.insert(0, _Finder())
