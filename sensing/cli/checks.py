"""Checks of command-line arguments, made before a command starts its work.

A bad argument must end in one line ``footfall: error: …`` within moments, not in
a traceback after minutes of work: output paths are checked before anything is
computed, numbers against their sane ranges, times against the calendar.
Every check raises :class:`~firmware_bridge.errors.ConfigError` naming the option.

Light: standard library only (the node imports this module too).
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from pathlib import Path

from firmware_bridge.errors import ConfigError

MAX_TIME_MS = int(datetime(3000, 1, 1, tzinfo=UTC).timestamp() * 1000)
"""latest time an option may name, Unix ms (year 3000)"""


def _existing_ancestor(p: Path) -> Path:
    q = p.absolute().parent
    while not q.exists() and q != q.parent:
        q = q.parent
    return q


def output_file(path: str | Path, option: str) -> Path:
    """``path`` as a file the command may write: not a directory, under a directory.

    >>> output_file("/", "--out")
    Traceback (most recent call last):
    ...
    firmware_bridge.errors.ConfigError: --out /: is a directory; give a file name
    """
    p = Path(path)
    if p.is_dir():
        raise ConfigError(f"{option} {p}: is a directory; give a file name")
    up = _existing_ancestor(p)
    if not up.is_dir():
        raise ConfigError(f"{option} {p}: {up} is a file, not a directory")
    return p


def output_dir(path: str | Path, option: str) -> Path:
    """``path`` as a directory the command may create or write into."""
    p = Path(path)
    if p.exists() and not p.is_dir():
        raise ConfigError(f"{option} {p}: exists and is not a directory")
    up = _existing_ancestor(p)
    if not up.is_dir():
        raise ConfigError(f"{option} {p}: {up} is a file, not a directory")
    return p


def within(value: float, lo: float, hi: float, option: str, unit: str = "") -> float:
    """``value`` if it is a finite number in [lo, hi].

    >>> within(float("nan"), 0, 5, "--cell", " m")
    Traceback (most recent call last):
    ...
    firmware_bridge.errors.ConfigError: --cell nan: must be within 0..5 m
    """
    if not (math.isfinite(value) and lo <= value <= hi):
        raise ConfigError(f"{option} {value:g}: must be within {lo:g}..{hi:g}{unit}")
    return value


def time_ms(ms: int, option: str) -> int:
    """``ms`` if it is a time between 1970 and the year 3000 (Unix ms)."""
    if not 0 <= ms < MAX_TIME_MS:
        raise ConfigError(f"{option}: {ms} ms is not a time between 1970 and the year 3000")
    return ms


def iso_time(text: str, option: str) -> datetime:
    """``text`` as an ISO 8601 time (UTC if it has no offset), between 1970 and 3000."""
    try:
        dt = datetime.fromisoformat(text)
    except ValueError as e:
        raise ConfigError(f"{option}: not an ISO time: {text!r}") from e
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    try:
        ms = int(dt.timestamp() * 1000)
    except (OverflowError, ValueError, OSError) as e:
        raise ConfigError(f"{option}: {text!r} is out of range") from e
    time_ms(ms, option)
    return dt


def tls_files(tls: object | None, what: str) -> None:
    """The broker TLS files of a config (``ca``, ``cert``, ``key`` attributes, or None)
    load as a CA and a client certificate with its key: a certificate given as the
    key, a key of another certificate or an unreadable file is a ConfigError before
    the daemon starts, not an ``ssl.SSLError`` inside the MQTT client."""
    import ssl

    if tls is None:
        return
    ca, cert, key = (getattr(tls, n, None) for n in ("ca", "cert", "key"))
    try:
        ctx = ssl.create_default_context(cafile=str(ca) if ca else None)
    except (ssl.SSLError, OSError, ValueError) as e:
        raise ConfigError(f"{what}: broker.ca {ca}: not a readable PEM CA certificate: {e}") from e
    if cert is None:
        return
    try:
        ctx.load_cert_chain(str(cert), str(key) if key else None)
    except (ssl.SSLError, OSError, ValueError) as e:
        raise ConfigError(
            f"{what}: broker.cert {cert} and broker.key {key}: not a PEM certificate and "
            f"its private key: {e}"
        ) from e
