"""Drops that drop everything: the node takes frames or events and publishes none.

Most drops are normal (a weak frame, an opted-out phone, the store's own access
point). A few reasons, when they fire, fire for *every* frame, and the node then
publishes nothing while looking busy:

* ``clock_unsynced``: the clock is not synchronized and ``[clock] require_sync``
  is on, so every frame and event is refused;
* ``stale_epoch``: the frames are older than the key's epoch (a capture older
  than the key's start, or a key rolled ahead of the frames), their key is erased;
* ``future_epoch``: the frames are stamped too far ahead of the clock.

:class:`TotalLoss` judges an interval from cumulative counters: taken (frames
offered to the node and board events), kept (observations made and events
batched) and the drops by reason. An interval in which something was taken,
nothing was kept and one of these reasons accounts for at least half of what was
taken has those reasons as its *problems*; the node's status then says
``healthy: false``, and a finished replay fails (:class:`~firmware_bridge.errors.AllDroppedError`).
An interval in which nothing was taken keeps the previous verdict.

>>> t = TotalLoss()
>>> t.update(taken=100, kept=0, dropped={"clock_unsynced": 100})
('clock_unsynced',)
>>> t.update(taken=100, kept=0, dropped={"clock_unsynced": 100})  # nothing new: unchanged
('clock_unsynced',)
>>> t.update(taken=150, kept=40, dropped={"clock_unsynced": 100, "weak": 10})
()
>>> explain({"stale_epoch": 600}, 600).split(" (")[0]
'every one of 600 frames or events was dropped: 600 stale_epoch'
"""

from __future__ import annotations

from collections.abc import Mapping

__all__ = ["ALL_DROPPING", "TotalLoss", "explain", "problems"]

ALL_DROPPING: dict[str, str] = {
    "clock_unsynced": "the clock is not synchronized and [clock] require_sync is on",
    "stale_epoch": (
        "frames older than the key epoch: their key is erased; "
        "check the key file against the capture or the clock"
    ),
    "future_epoch": "frames stamped ahead of the clock; check the clock",
}
"""reason → what it means for the operator"""


def problems(taken: int, kept: int, dropped: Mapping[str, int]) -> tuple[str, ...]:
    """The reasons that dropped everything of an interval (counts of that interval),
    in :data:`ALL_DROPPING`'s order; ``()`` if something was kept or nothing taken."""
    if taken <= 0 or kept > 0:
        return ()
    hits = {r: n for r in ALL_DROPPING if (n := int(dropped.get(r, 0))) > 0}
    if 2 * sum(hits.values()) < taken:
        return ()
    return tuple(hits)


def explain(dropped: Mapping[str, int], taken: int) -> str:
    """One line saying why everything was dropped (for logs and a failed replay)."""
    why = "; ".join(
        f"{dropped[r]} {r} ({meaning})"
        for r, meaning in ALL_DROPPING.items()
        if dropped.get(r, 0) > 0
    )
    return f"every one of {taken} frames or events was dropped: {why}"


class TotalLoss:
    """Judges successive intervals from cumulative counters (see the module doc)."""

    def __init__(self) -> None:
        self._taken = 0
        self._kept = 0
        self._dropped: dict[str, int] = {}
        self.problems: tuple[str, ...] = ()
        """the verdict of the last interval in which something was taken"""

    def update(self, taken: int, kept: int, dropped: Mapping[str, int]) -> tuple[str, ...]:
        """Counters since start, now; returns (and keeps) the verdict of the interval
        since the previous update."""
        d_taken, d_kept = taken - self._taken, kept - self._kept
        d_dropped = {r: int(dropped.get(r, 0)) - self._dropped.get(r, 0) for r in ALL_DROPPING}
        self._taken, self._kept = taken, kept
        self._dropped = {r: int(dropped.get(r, 0)) for r in ALL_DROPPING}
        if d_taken > 0:
            self.problems = problems(d_taken, d_kept, d_dropped)
        return self.problems
