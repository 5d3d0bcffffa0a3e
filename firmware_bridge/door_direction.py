"""Direction of a crossing from two offset beams, A (street side) and B (inside).

The same state machine runs in the door board's firmware
(``hardware/firmware/src/door_direction.c``) and on the Pi for beams wired straight to
GPIO (:mod:`firmware_bridge.gpio_beams`). A full A↓ B↓ A↑ B↑ sequence is one person
coming in (+1); B↓ A↓ B↑ A↑ going out (-1). A second person blocking the first
beam again while the first still blocks the second is counted as a tailgater.
Half crossings (someone steps into the door and back) are counted, not reported
as crossings; a sequence that stalls longer than ``timeout_ms`` is counted as a
timeout and restarted from the beams' current levels.

>>> d = DoorDirection()
>>> [d.edge(t, beam, blocked) for t, beam, blocked in
...  [(0, "A", True), (80, "B", True), (250, "A", False), (330, "B", False)]]
[None, None, None, 1]
"""

from __future__ import annotations

from collections import Counter
from enum import Enum


class _S(Enum):
    IDLE = 0
    FIRST = 1  # only the first beam of the sequence blocked
    BOTH = 2  # both blocked
    SECOND = 3  # first cleared, second still blocked


class DoorDirection:
    """Feed beam edges in time order; ``edge`` returns +1/-1 when a crossing completes."""

    def __init__(self, timeout_ms: int = 3000) -> None:
        self.timeout_ms = timeout_ms
        self.stats: Counter[str] = Counter()
        """counts: in, out, tailgate, half_crossing, timeout"""
        self._state = _S.IDLE
        self._first = ""  # "A" or "B": which beam the current sequence began with
        self._since = 0
        self._blocked = {"A": False, "B": False}

    def edge(self, t_ms: int, beam: str, blocked: bool) -> int | None:
        """Beam ``beam`` ("A" or "B") became blocked/clear at ``t_ms``."""
        if beam not in ("A", "B"):
            raise ValueError(f"beam must be 'A' or 'B', not {beam!r}")
        if self._blocked[beam] == blocked:
            return None  # repeated level: nothing changed
        if self._state is not _S.IDLE and t_ms - self._since > self.timeout_ms:
            # the sequence stalled (someone lingered in a beam): forget it, but restart
            # from the beam levels as they were just before this edge, so a person who
            # stood in beam A and then walks in is still counted
            self.stats["timeout"] += 1
            self._restart_from_levels()
        self._blocked[beam] = blocked
        result = self._step(beam, blocked)
        self._since = t_ms
        if self._state is _S.IDLE and (self._blocked["A"] or self._blocked["B"]):
            # someone is still in a beam after a sequence ended: start anew from levels
            self._restart_from_levels()
        return result

    def _restart_from_levels(self) -> None:
        a, b = self._blocked["A"], self._blocked["B"]
        if a and b:
            self._state = _S.BOTH  # keep the stalled sequence's first beam
        elif a or b:
            self._first, self._state = ("A" if a else "B"), _S.FIRST
        else:
            self._state = _S.IDLE

    def _step(self, beam: str, blocked: bool) -> int | None:
        s = self._state
        if s is _S.IDLE:
            if blocked:
                self._first, self._state = beam, _S.FIRST
            return None
        second = "B" if self._first == "A" else "A"
        if s is _S.FIRST:
            if beam == second and blocked:
                self._state = _S.BOTH
            elif beam == self._first and not blocked:
                self.stats["half_crossing"] += 1
                self._state = _S.IDLE
            return None
        if s is _S.BOTH:
            if beam == self._first and not blocked:
                self._state = _S.SECOND
            elif beam == second and not blocked:
                self._state = _S.FIRST  # stepped back out of the second beam
            return None
        # SECOND: first beam clear, second still blocked
        if beam == second and not blocked:
            self._state = _S.IDLE
            return self._count()
        if beam == self._first and blocked:
            # the next person enters the first beam while this one is in the second
            self.stats["tailgate"] += 1
            self._state = _S.BOTH
            return self._count()
        return None

    def _count(self) -> int:
        direction = 1 if self._first == "A" else -1
        self.stats["in" if direction > 0 else "out"] += 1
        return direction
