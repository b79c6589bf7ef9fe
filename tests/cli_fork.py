"""A fork server for the suite's `clsbench ...` calls (tests/helpers.py: run_cli).

    python cli_fork.py REQUEST_FD REPLY_FD [torch] [no-gc-freeze]

The suite runs the CLI some hundreds of times; each fresh interpreter spent ~0.4 s here
importing the same third-party modules before clsbench's own code ran. This process imports
numpy, onnx, PIL, rich and jinja2 once, then forks one child per call (not onnxruntime: a
child forked after importing it hangs in its exit, ONNX Runtime 1.32). Given `torch`, it
imports torch and torchvision too (~5 s of one core in each call that exports a model);
helpers.run_cli sends there only the calls that import torch anyway, since a run records
the torch it finds imported (perf.environment). The child is what `python -m clsbench.cli.commands
ARGS` is, minus that import: its own process, with the call's environment, working directory, stdin /dev/null and stdout/stderr to files; clsbench
itself (whose modules read the environment when imported) is imported fresh in each child;
the child leaves through Python's normal exit (threads joined, atexit handlers run, streams
flushed), so its exit status is the CLI's own.

Requests are JSON lines {"argv", "env", "cwd", "out", "err"} (and "script": a Python file run as
`python SCRIPT ARGV` is, for tests/helpers.run_script); each reply is a line holding
the child's exit status as subprocess reports it (negative: killed by that signal).
"""
import gc
import json
import os
import sys

import jinja2  # noqa: F401  (imported here once, for every child)
import numpy  # noqa: F401
import onnx  # noqa: F401
import PIL.Image  # noqa: F401
import rich.console  # noqa: F401
import rich.progress  # noqa: F401
import rich.table  # noqa: F401


def child(req: dict, requests, reply_fd: int) -> None:
    """In the forked child: become the CLI process of `req`, then run the CLI as `-m` does."""
    import runpy

    requests.close()
    os.close(reply_fd)
    os.chdir(req["cwd"])
    os.environ.clear()
    os.environ.update(req["env"])
    for fd, path, flags in ((0, os.devnull, os.O_RDONLY), (1, req["out"], os.O_WRONLY | os.O_TRUNC),
                            (2, req["err"], os.O_WRONLY | os.O_TRUNC)):
        f = os.open(path, flags)
        os.dup2(f, fd)
        os.close(f)
    if req.get("script"):  # `python SCRIPT ARGS`
        script = os.path.abspath(req["script"])
        sys.argv = [req["script"], *req["argv"]]
        sys.path[0] = os.path.dirname(script)  # as `python SCRIPT` puts it
        runpy.run_path(script, run_name="__main__")
    else:
        sys.argv = [sys.argv[0], *req["argv"]]
        sys.path[0] = os.getcwd()  # as `python -m` puts it
        runpy.run_module("clsbench.cli.commands", run_name="__main__", alter_sys=True)
    sys.exit(0)  # returned without sys.exit: status 0, as python gives


def main(request_fd: int, reply_fd: int, preload: list) -> None:
    if "torch" in preload:  # imported only: no torch operation starts its thread pools here
        import torch  # noqa: F401
        import torchvision  # noqa: F401
    # what is imported stays out of the children's garbage collections: each child's exit
    # would otherwise touch, and so copy, every page of it (Python's docs advise gc.freeze
    # before fork; benchmarks/suite_costs.py times a call with and without, "no-gc-freeze")
    if "no-gc-freeze" not in preload:
        gc.freeze()
    requests = os.fdopen(request_fd, "r")
    while line := requests.readline():
        req = json.loads(line)
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            child(req, requests, reply_fd)  # leaves through SystemExit: Python's own exit
        _, status = os.waitpid(pid, 0)
        os.write(reply_fd, f"{os.waitstatus_to_exitcode(status)}\n".encode())


if __name__ == "__main__":
    main(int(sys.argv[1]), int(sys.argv[2]), sys.argv[3:])
