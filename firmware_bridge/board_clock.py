"""Board ticks (u32 milliseconds since the board's reset) → node time.

The node notes its own clock when a frame arrives; the offset between the two is
learned from the earliest-arriving frames (the minimum of node_time - tick is the
least-delayed frame, as in NTP's clock filter) and restarts when the board resets.
"""

from __future__ import annotations

WRAP = 1 << 32


class BoardClock:
    """Maps a board's tick counter to Unix epoch milliseconds of the node."""

    def __init__(self) -> None:
        self._offset: int | None = None
        self._last_tick: int | None = None
        self._wraps = 0

    def reset(self) -> None:
        """Board rebooted: ticks restart at 0."""
        self._offset = None
        self._last_tick = None
        self._wraps = 0

    def observe(self, tick_ms: int, node_ms: int) -> None:
        """A frame stamped ``tick_ms`` by the board arrived at node time ``node_ms``."""
        unwrapped = self._unwrap(tick_ms)
        offset = node_ms - unwrapped
        if self._offset is None or offset < self._offset:
            self._offset = offset

    def set_offset(self, tick0_epoch_ms: int) -> None:
        """Declare that board tick 0 happened at node time ``tick0_epoch_ms``."""
        self._offset = tick0_epoch_ms

    def to_epoch_ms(self, tick_ms: int) -> int:
        if self._offset is None:
            raise ValueError("board clock not synchronised yet")
        return self._offset + self._unwrap(tick_ms)

    def _unwrap(self, tick_ms: int) -> int:
        if self._last_tick is not None and tick_ms < self._last_tick - WRAP // 2:
            self._wraps += 1
        self._last_tick = tick_ms
        return tick_ms + self._wraps * WRAP
