"""Board ticks (u32 milliseconds since the board's reset) → node time.

The node notes its own clock when a frame arrives; the offset between the two is
learned from the earliest-arriving frames (the minimum of node_time - tick is the
least-delayed frame, as in NTP's clock filter) and restarts when the board resets.

The minimum is taken over the last ``window`` observations only, so the offset
follows a board clock that runs slow or fast (a 16 MHz crystal is ±50 ppm, about
4 s a day; a ceramic resonator ±0.5 %, minutes a day). With a heartbeat a second
the error from drift stays under ``window`` s × the drift rate (60 ms at 0.1 %).

Mapped times never run backwards between resets: when a less-delayed frame lowers
the offset by a few ms, a later tick is not given an earlier time than an earlier
tick was (the board's events stay in their order; the correction is absorbed
within those few ms).

>>> c = BoardClock()
>>> c.observe(tick_ms=1000, node_ms=1_700_000_001_030)  # 30 ms in transit
>>> c.observe(tick_ms=2000, node_ms=1_700_000_002_005)  # 5 ms: the better one
>>> c.to_epoch_ms(1500)
1700000001505
"""

from __future__ import annotations

import time
from collections import deque

WRAP = 1 << 32


def epoch_ms() -> int:
    """The node's wall clock, Unix epoch ms."""
    return time.time_ns() // 1_000_000


class BoardClock:
    """Maps a board's tick counter to Unix epoch milliseconds of the node.

    Parameters
    ----------
    window
        number of most recent observations whose minimum offset is used;
        ``None`` keeps the minimum over all observations since the last reset.
    """

    def __init__(self, window: int | None = 60) -> None:
        if window is not None and window < 1:
            raise ValueError(f"window must be at least 1 observation, not {window}")
        self.window = window
        self._offsets: deque[int] = deque(maxlen=window)
        self._fixed: int | None = None
        self._offset: int | None = None
        self._last_tick: int | None = None
        self._wraps = 0
        self._last_mapped: tuple[int, int] | None = None
        """(unwrapped tick, epoch ms) of the last tick mapped"""

    def reset(self) -> None:
        """Board rebooted: ticks restart at 0."""
        self._offsets.clear()
        self._fixed = None
        self._offset = None
        self._last_tick = None
        self._wraps = 0
        self._last_mapped = None

    def observe(self, tick_ms: int, node_ms: int) -> None:
        """A frame stamped ``tick_ms`` by the board arrived at node time ``node_ms``."""
        unwrapped = self._unwrap(tick_ms)
        self._offsets.append(node_ms - unwrapped)
        self._update()

    def set_offset(self, tick0_epoch_ms: int) -> None:
        """Declare that board tick 0 happened at node time ``tick0_epoch_ms``
        (observations can still lower it, as a less-delayed frame would)."""
        self._fixed = tick0_epoch_ms
        self._update()

    @property
    def synchronised(self) -> bool:
        return self._offset is not None

    def to_epoch_ms(self, tick_ms: int) -> int:
        if self._offset is None:
            raise ValueError("board clock not synchronised yet")
        tick = self._unwrap(tick_ms)
        t = self._offset + tick
        if self._last_mapped is not None and tick >= self._last_mapped[0]:
            t = max(t, self._last_mapped[1])
        self._last_mapped = (tick, t)
        return t

    def _update(self) -> None:
        candidates = list(self._offsets)
        if self._fixed is not None:
            candidates.append(self._fixed)
        self._offset = min(candidates) if candidates else None

    def _unwrap(self, tick_ms: int) -> int:
        if self._last_tick is not None and tick_ms < self._last_tick - WRAP // 2:
            self._wraps += 1
        self._last_tick = tick_ms
        return tick_ms + self._wraps * WRAP
