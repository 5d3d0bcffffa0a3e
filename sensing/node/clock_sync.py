"""Is the node's clock synchronized? The kernel's own answer, via ``adjtimex(2)``.

Localization compares RSSI of one frame heard by several nodes, and door beams
with RF, so every node must agree on time to well under a second. Whatever keeps
the clock (systemd-timesyncd, chrony, ntpd, a GPS PPS) tells the kernel, and
``adjtimex`` with ``modes = 0`` reads that state without privileges: the clock is
synchronized unless the kernel says ``TIME_ERROR`` / ``STA_UNSYNC``, its offset is
what the discipline is still correcting, and ``maxerror`` is the kernel's bound
on the error (it grows 500 µs per second without updates).

The probe is the hardware-like edge of time: the daemon takes any
:class:`ClockProbe`, tests pass :class:`FixedClock`.

>>> FixedClock(synced=False).read().synced
False
"""

from __future__ import annotations

import ctypes
import ctypes.util
from dataclasses import dataclass
from typing import Any, Protocol

TIME_ERROR = 5
STA_UNSYNC = 0x0040
STA_NANO = 0x2000


@dataclass(frozen=True, slots=True)
class ClockState:
    """What is known of the node clock's synchronization."""

    synced: bool
    offset_ms: float | None
    """remaining offset from the reference the discipline is correcting, ms"""
    max_error_ms: float | None
    """the kernel's bound on the clock error, ms"""
    est_error_ms: float | None
    """the kernel's estimated error, ms"""
    source: str
    """``adjtimex``, ``fixed`` (tests/config), or ``unknown``"""

    def as_status(self) -> dict[str, Any]:
        """The ``clock`` object of the node status payload."""
        d: dict[str, Any] = {"synced": self.synced, "source": self.source}
        for k in ("offset_ms", "max_error_ms", "est_error_ms"):
            v = getattr(self, k)
            if v is not None:
                d[k] = round(v, 3)
        return d


class ClockProbe(Protocol):
    def read(self) -> ClockState: ...


class _Timex(ctypes.Structure):
    # struct timex: only the leading fields are read; the rest is padding large
    # enough for every ABI (the kernel writes the full struct).
    _fields_ = (
        ("modes", ctypes.c_uint),
        ("offset", ctypes.c_long),
        ("freq", ctypes.c_long),
        ("maxerror", ctypes.c_long),
        ("esterror", ctypes.c_long),
        ("status", ctypes.c_int),
        ("_rest", ctypes.c_byte * 256),
    )


class KernelClock:
    """Reads the kernel's NTP state with ``adjtimex(2)`` (Linux, no privileges)."""

    def __init__(self) -> None:
        self._adjtimex: Any = None
        name = ctypes.util.find_library("c")
        if name:
            try:
                libc = ctypes.CDLL(name, use_errno=True)
                self._adjtimex = libc.adjtimex
            except (OSError, AttributeError):
                self._adjtimex = None

    def read(self) -> ClockState:
        if self._adjtimex is None:
            return ClockState(False, None, None, None, "unknown")
        tx = _Timex()
        state = self._adjtimex(ctypes.byref(tx))
        if state < 0:
            return ClockState(False, None, None, None, "unknown")
        scale = 1e6 if tx.status & STA_NANO else 1e3  # offset in ns or µs → ms
        synced = state != TIME_ERROR and not tx.status & STA_UNSYNC
        return ClockState(
            synced, tx.offset / scale, tx.maxerror / 1e3, tx.esterror / 1e3, "adjtimex"
        )


@dataclass(frozen=True)
class FixedClock:
    """A clock state given by configuration or a test."""

    synced: bool = True
    offset_ms: float | None = 0.0

    def read(self) -> ClockState:
        return ClockState(self.synced, self.offset_ms, None, None, "fixed")
