"""The ``footfall`` command line.

Subcommands live in small modules listed in ``COMMAND_MODULES``; each has a
``register(subparsers)`` and imports its heavy dependencies only when run, so a
node never loads the aggregator's libraries.

Exit codes: 0 ok, 1 error (``footfall: error: …``), 2 usage. Tracebacks only
with ``FOOTFALL_DEBUG=1``.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Callable

from firmware_bridge.errors import FootfallError
from sensing.runtime.version import __version__

COMMAND_MODULES = (
    "sensing.cli.store",  # demo, simulate, floorplan
    "sensing.cli.aggregator",  # aggregator, db
    "sensing.cli.plan",  # plan, calibrate
    "sensing.cli.report",  # report
    "sensing.cli.compare",  # compare (before / after a re-layout)
    "sensing.cli.keys",  # keygen
    "sensing.cli.node",  # node, doctor, provision
    "sensing.cli.optout",  # optout add|remove|list
    "sensing.cli.schema",  # schema (JSON Schema / Markdown reference of a file kind)
    "sensing.cli.chain",  # chain run|report (the chain's centre: aggregates into ClickHouse)
    "sensing.cli.privacy",  # privacy notice|audit|inventory (the privacy officer's kit)
)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="footfall",
        description="Camera-free footfall and heatmap sensing for physical stores.",
    )
    p.add_argument("--version", action="version", version=f"footfall {__version__}")
    sub = p.add_subparsers(dest="cmd", required=True)
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    # numpy's BLAS threads fight the localizer's worker processes on small machines
    # (analyze took 3x longer at load 5); set before any subcommand imports numpy
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    parser = build_parser()
    args = parser.parse_args(argv)
    func: Callable[[argparse.Namespace], int] = args.func
    try:
        return func(args)
    except FootfallError as e:
        if os.environ.get("FOOTFALL_DEBUG") == "1":
            raise
        print(f"footfall: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("footfall: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # output piped into `head` and the like: stop quietly, as the shell tools do
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except OSError as e:
        # a file the command was pointed at that the system refuses (permissions, a
        # full disk, a path through a file): the user's to fix, so one line too
        if os.environ.get("FOOTFALL_DEBUG") == "1":
            raise
        print(f"footfall: error: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
