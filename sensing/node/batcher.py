"""Batching into v1 payloads: observations, door crossings, tile changes.

A batch closes when it holds ``max_items`` or its oldest item is ``max_age_ms``
older than the newest (capture time, so a replay batches like the live node).
``seq`` counts batches per publisher; ``t0`` is the batch's earliest item and
every item carries its offset ``dt_ms`` from it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

Row = tuple[int, list[Any]]  # (t_ms, items after dt_ms)


@dataclass
class Batcher:
    """Collects rows; ``add`` returns a finished payload dict when a batch closes."""

    key: str
    """payload key holding the rows: "obs" or "ev" """
    header: dict[str, Any] = field(default_factory=dict)
    """fixed fields of every payload (e.g. {"node": "n1"})"""
    max_items: int = 500
    max_age_ms: int = 5000
    seq: int = 0
    """seq of the next batch"""
    extra: Callable[[], dict[str, Any]] | None = None
    """fields computed at close time (e.g. link counters)"""
    _rows: list[Row] = field(default_factory=list)
    _t_min: int = 0
    _t_max: int = 0

    def add(self, t_ms: int, items: list[Any]) -> dict[str, Any] | None:
        """Add a row; a batch that the row would make too big or too long is closed first
        (time going backwards counts too, so ``dt_ms`` stays within the age limit)."""
        out = None
        if self._rows and (
            len(self._rows) >= self.max_items
            or max(self._t_max, t_ms) - min(self._t_min, t_ms) >= self.max_age_ms
        ):
            out = self.flush()
        if not self._rows:
            self._t_min = self._t_max = t_ms
        self._t_min = min(self._t_min, t_ms)
        self._t_max = max(self._t_max, t_ms)
        self._rows.append((t_ms, items))
        return out

    def flush(self) -> dict[str, Any] | None:
        """Close the open batch (None if empty)."""
        if not self._rows:
            return None
        t0 = min(t for t, _ in self._rows)
        payload: dict[str, Any] = {
            "v": 1,
            **self.header,
            "seq": self.seq,
            "t0": t0,
            self.key: [[t - t0, *items] for t, items in self._rows],
        }
        if self.extra is not None:
            payload.update(self.extra())
        self.seq += 1
        self._rows = []
        return payload

    def __len__(self) -> int:
        return len(self._rows)
