"""Structured logs of the node daemon: one JSON object per line, never a raw identifier.

The daemon logs events with fields (``log.info("spooled", extra={"fields": {...}})``);
:class:`JsonFormatter` writes ``{"ts":…, "level":…, "event":…, …fields}`` to stderr,
which journald keeps. Raw identifiers never reach a log call by construction (the
pipeline pseudonymizes before anything is logged), and :class:`RedactFilter` is a
second line of defence: anything shaped like a MAC or BLE address (``aa:bb:cc:dd:ee:ff``,
``aa-bb-…``, 12 bare hex digits) in a message or field is replaced before it is written.

>>> redact("peer 02:00:00:00:00:01 seen, pid 308aac412a8b0d9a kept")
'peer <addr> seen, pid 308aac412a8b0d9a kept'
"""

from __future__ import annotations

import json
import logging
import re
import sys
import time
from typing import Any, TextIO

LOGGER = "footfall.node"

_MAC = re.compile(
    r"(?<![0-9A-Fa-f])(?:[0-9A-Fa-f]{2}[:\-.]){5}[0-9A-Fa-f]{2}(?![0-9A-Fa-f])"
    r"|(?<![0-9A-Fa-f])[0-9A-Fa-f]{12}(?![0-9A-Fa-f])"
)


def redact(text: str) -> str:
    """Replace every MAC/BLE-address-shaped token with ``<addr>`` (16-hex pids stay)."""
    return _MAC.sub("<addr>", text)


def _clean(v: Any) -> Any:
    if isinstance(v, str):
        return redact(v)
    if isinstance(v, dict):
        return {redact(str(k)): _clean(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_clean(x) for x in v]
    if isinstance(v, (int, float, bool)) or v is None:
        return v
    return redact(str(v))


class RedactFilter(logging.Filter):
    """Scrubs address-shaped tokens from every record passing the handler."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = redact(record.getMessage())
        record.args = None
        fields = getattr(record, "fields", None)
        if fields is not None:
            record.fields = _clean(fields)
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        d: dict[str, Any] = {
            "ts": round(record.created, 3),
            "level": record.levelname.lower(),
            "event": record.getMessage(),
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            d.update(fields)
        if record.exc_info:
            d["error"] = redact(self.formatException(record.exc_info))
        return json.dumps(d, separators=(",", ":"), default=str)


def setup(level: str = "info", stream: TextIO | None = None) -> logging.Logger:
    """Route the node's logger to ``stream`` (stderr) as redacted JSON lines."""
    log = logging.getLogger(LOGGER)
    log.setLevel(level.upper())
    for h in list(log.handlers):
        log.removeHandler(h)
    h = logging.StreamHandler(stream or sys.stderr)
    h.setFormatter(JsonFormatter())
    h.addFilter(RedactFilter())
    log.addHandler(h)
    log.propagate = False
    logging.Formatter.converter = time.gmtime
    return log


def get() -> logging.Logger:
    return logging.getLogger(LOGGER)


def event(log: logging.Logger, level: int, name: str, **fields: Any) -> None:
    """Log ``name`` with structured ``fields``."""
    if log.isEnabledFor(level):
        log.log(level, name, extra={"fields": fields})
