"""What a long-running ``footfall`` service sets up before its loop: one log format on
stderr (the journal adds the time under systemd; kept for a terminal), and SIGTERM /
SIGINT turned into a stop event the loop waits on (systemd stops a unit with SIGTERM)."""

from __future__ import annotations

import logging
import signal
import sys
import threading

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def log_to_stderr(verbose: bool = False) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO, format=LOG_FORMAT, stream=sys.stderr
    )


def stop_on_signals() -> threading.Event:
    """An event set by SIGTERM or SIGINT (call from the main thread)."""
    stop = threading.Event()

    def on_signal(_sig: int, _frame: object) -> None:
        stop.set()

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, on_signal)
    return stop
