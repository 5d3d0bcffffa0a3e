"""systemd's notify protocol, with the standard library only (no ``sdnotify``).

With ``Type=notify`` and ``WatchdogSec=`` in the unit, systemd passes the
``NOTIFY_SOCKET`` (a unix datagram socket, ``@`` = abstract namespace) and
``WATCHDOG_USEC`` in the environment; the daemon sends ``READY=1`` once it runs,
``WATCHDOG=1`` at least every half watchdog period while its main loop turns,
``STATUS=…`` for ``systemctl status`` and ``STOPPING=1`` on shutdown. Outside
systemd every call is a no-op.

>>> n = Notifier(env={})
>>> n.enabled, n.watchdog_interval_s
(False, None)
>>> n.ready()
False
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Mapping


class Notifier:
    """Sends state changes to systemd when started by it."""

    def __init__(self, env: Mapping[str, str] | None = None) -> None:
        env = os.environ if env is None else env
        addr = env.get("NOTIFY_SOCKET", "")
        self._addr = "\0" + addr[1:] if addr.startswith("@") else addr
        self._sock: socket.socket | None = None
        if self._addr:
            self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
        usec = env.get("WATCHDOG_USEC", "")
        pid = env.get("WATCHDOG_PID", "")
        mine = not pid or pid == str(os.getpid())
        self.watchdog_interval_s: float | None = (
            int(usec) / 2e6 if usec.isdigit() and int(usec) > 0 and mine and self._sock else None
        )
        """how often :meth:`watchdog` must be called (half the unit's WatchdogSec)"""
        self._last_ping = 0.0

    @property
    def enabled(self) -> bool:
        return self._sock is not None

    def notify(self, message: str) -> bool:
        """Send one raw notification; False if not under systemd or it failed."""
        if self._sock is None:
            return False
        try:
            self._sock.sendto(message.encode(), self._addr)
        except OSError:
            return False
        return True

    def ready(self, status: str | None = None) -> bool:
        return self.notify("READY=1" + (f"\nSTATUS={status}" if status else ""))

    def status(self, text: str) -> bool:
        return self.notify(f"STATUS={text}")

    def stopping(self) -> bool:
        return self.notify("STOPPING=1")

    def watchdog(self, now: float | None = None) -> bool:
        """Ping the watchdog if half its period has passed since the last ping."""
        if self.watchdog_interval_s is None:
            return False
        now = time.monotonic() if now is None else now
        if now - self._last_ping < self.watchdog_interval_s:
            return False
        self._last_ping = now
        return self.notify("WATCHDOG=1")

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None
