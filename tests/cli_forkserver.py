"""Run ``footfall`` command lines, each in its own forked process, from one warm interpreter.

A table test of a hundred bad inputs would spend most of its time importing
numpy, scipy, shapely and matplotlib a hundred times (2–3 s a command on a small
machine). This server imports them once, then forks a child per command line: the
child runs :func:`sensing.cli.main.main` exactly as the ``footfall`` entry point
does (its exit code, its stdout and stderr, an uncaught exception's traceback and
exit 1), and the server kills it when it runs past the limit.

Protocol, one JSON object a line: requests on stdin ``{"argv": [...], "stdin":
"...", "cwd": "...", "env": {...}, "limit_s": 10}``, replies on stdout ``{"rc":
int | null, "stdout": "...", "stderr": "...", "seconds": float}`` (``rc`` null:
killed at the limit). Run as ``python tests/cli_forkserver.py``.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import tempfile
import time
import traceback
from typing import Any

POLL_S = 0.01
"""how often the server looks whether a child has finished, s"""


def _preload() -> None:
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    os.environ.setdefault("MPLBACKEND", "Agg")
    import heatmap.report.store_report  # numpy, scipy, shapely, matplotlib
    import heatmap.spatial.node_placement  # noqa: F401
    import sensing.cli.main
    import sensing.node.daemon  # noqa: F401


def _child(req: dict[str, Any], out: int, err: int, inp: int) -> None:
    """In the forked child: run the command line, never return."""
    rc = 1
    try:
        os.dup2(inp, 0)
        os.dup2(out, 1)
        os.dup2(err, 2)
        sys.stdin = open(0, closefd=False)  # noqa: SIM115 (the child's own stdin, from fd 0)
        os.chdir(req["cwd"])
        os.environ.clear()
        os.environ.update(req["env"])
        signal.signal(signal.SIGINT, signal.default_int_handler)
        from sensing.cli.main import main

        sys.argv = ["footfall", *req["argv"]]
        try:
            rc = main(req["argv"])
        except SystemExit as e:  # argparse: usage errors (2), --help (0)
            rc = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
        except BaseException:
            traceback.print_exc()
            rc = 1
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(rc)


def run(req: dict[str, Any]) -> dict[str, Any]:
    """Fork a child for ``req``, wait at most ``limit_s``, return what it did."""
    with (
        tempfile.TemporaryFile() as out,
        tempfile.TemporaryFile() as err,
        tempfile.TemporaryFile() as inp,
    ):
        inp.write(req.get("stdin", "").encode())
        inp.flush()
        inp.seek(0)
        started = time.monotonic()
        pid = os.fork()
        if pid == 0:
            _child(req, out.fileno(), err.fileno(), inp.fileno())
        deadline = started + float(req.get("limit_s", 10.0))
        rc: int | None = None
        while True:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                rc = os.waitstatus_to_exitcode(status)
                break
            if time.monotonic() > deadline:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                break
            time.sleep(POLL_S)
        seconds = time.monotonic() - started
        out.seek(0)
        err.seek(0)
        return {
            "rc": rc,
            "stdout": out.read().decode(errors="replace"),
            "stderr": err.read().decode(errors="replace"),
            "seconds": seconds,
        }


def serve() -> None:
    _preload()
    print(json.dumps({"ready": True}), flush=True)
    for line in sys.stdin:
        if line.strip():
            print(json.dumps(run(json.loads(line))), flush=True)


if __name__ == "__main__":
    serve()
