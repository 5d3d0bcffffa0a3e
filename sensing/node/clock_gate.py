"""The node's clock gate: no frame is taken while the clock is not synchronized.

A frame stamped by a wrong clock would be pseudonymized under the wrong key
epoch, and a clock in the future would roll the key for good. So, unless
``[clock] require_sync = false``, the daemon refuses frames (counted
``clock_unsynced``) and never rolls the key while the gate says
:attr:`ClockGate.refuse`. The daemon reads the clock at start and every
``clock_check_s``; each change of synchronization is logged once.
"""

from __future__ import annotations

import logging

from sensing.node import log as node_log
from sensing.node.clock_sync import ClockProbe, ClockState

__all__ = ["ClockGate"]


class ClockGate:
    """Whether the node takes frames, by the clock's synchronization.

    Parameters
    ----------
    probe
        reads the clock's synchronization (the kernel's, a fixed one in tests).
    require_sync
        refuse frames while the clock is not synchronized (``[clock] require_sync``).
    log
        where changes of synchronization are logged.
    """

    def __init__(self, probe: ClockProbe, require_sync: bool, log: logging.Logger) -> None:
        self.probe = probe
        self.require_sync = require_sync
        self.log = log
        self.state: ClockState | None = None
        """the last reading (None before the first :meth:`check`)"""
        self.refuse = False
        """frames are refused (not even pseudonymized) until the next check"""

    def check(self) -> None:
        """Read the clock; log when its synchronization changed."""
        state = self.probe.read()
        was = self.state
        self.state = state
        self.refuse = self.require_sync and not state.synced
        if was is None or was.synced != state.synced:
            node_log.event(
                self.log,
                20 if state.synced else 30,
                "clock_synced" if state.synced else "clock_unsynced",
                refusing=self.refuse,
                source=state.source,
                offset_ms=state.offset_ms,
            )
