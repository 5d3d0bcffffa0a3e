"""Door footfall and occupancy from the beams' events (no pseudonyms: kept for good).

Used by the batch report and the live aggregator alike.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray


@dataclass(frozen=True)
class DoorFlow:
    t0_ms: int
    ins: int
    """people in through the doors: counted, plus those the exits imply (``implied_ins``)"""
    outs: int
    occupancy: NDArray[np.floating[Any]]
    """people inside at each second after ``t0_ms``, never below 0 (:func:`door_flow`)"""
    implied_ins: int = 0
    """ins the beams missed (two people crossing as one), implied by more exits than
    entries: part of ``ins``"""

    @property
    def person_seconds(self) -> float:
        return float(self.occupancy.sum())

    @property
    def mean_dwell_s(self) -> float:
        """Little's law: mean time in store = occupancy integral / arrivals."""
        return self.person_seconds / self.ins if self.ins else 0.0


def door_flow(
    db: sqlite3.Connection, t0_ms: int, t1_ms: int, empty_ms: int | None = None
) -> DoorFlow:
    """Footfall and occupancy over [t0, t1) from the door events, counted from
    ``empty_ms`` (≤ t0; default t0), a time the store was empty (the local midnight
    before the period: door events are kept, they name nobody).

    Beams count two people crossing together as one. A lost exit only leaves the
    occupancy high until the store empties; a lost entry makes it run low for the
    rest of the day (on the benches' second layout 6 of 204 ins were lost, the
    occupancy fell 5–6 behind and Little's law came out −32 %). Occupancy cannot be
    negative, so every exit the count cannot explain is an entry the beams lost: by
    time t at least ``R(t)`` = the most exits ever in excess of entries were. Those
    are added, spread like the counted entries up to the lowest point of the count
    (more arrivals, more people crossing together), never fewer than ``R(t)``.
    """
    start = t0_ms if empty_ms is None else min(empty_ms, t0_ms)
    rows = np.array(
        db.execute(
            "SELECT t_ms, dir FROM door_events WHERE t_ms >= ? AND t_ms < ? ORDER BY t_ms",
            (start, t1_ms),
        ).fetchall(),
        dtype=np.int64,
    ).reshape(-1, 2)
    n = max((t1_ms - start) // 1000, 1)
    sec = np.minimum((rows[:, 0] - start) // 1000, n - 1)
    delta = np.bincount(sec, rows[:, 1], minlength=n)
    arrivals = np.cumsum(np.bincount(sec[rows[:, 1] > 0], minlength=n))
    count = np.cumsum(delta)
    must = np.maximum.accumulate(np.maximum(-count, 0.0))  # R(t): ins lost by t, at least
    lost = float(must[-1])
    if lost > 0:
        low = int(np.argmax(must))  # where the count first reaches its lowest
        spread = lost * np.minimum(arrivals / max(int(arrivals[low]), 1), 1.0)
        implied = np.maximum(spread, must)
    else:
        implied = np.zeros(n)
    occ = count + implied
    k = int((t0_ms - start) // 1000)
    in_period = rows[:, 0] >= t0_ms
    counted_in = int((rows[in_period, 1] > 0).sum())
    counted_out = int((rows[in_period, 1] < 0).sum())
    before = float(implied[k - 1]) if k > 0 else 0.0
    extra = round(float(implied[-1]) - before)
    return DoorFlow(t0_ms, counted_in + extra, counted_out, occ[k:], extra)
