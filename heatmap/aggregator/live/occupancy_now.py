"""Live occupancy, every few seconds: door-based where there are beams, RF-based otherwise.

* **door**: people in minus people out since the local midnight (the store is empty
  then), with the entries the beams missed implied by the exits
  (:func:`heatmap.aggregator.door_counts.door_flow`). Uncertainty: two people
  crossing abreast count as one (about 2 % of crossings on the benches) and the
  implied entries are a guess; the interval is ±1.96·√(0.02·entries + implied).
* **rf**: the RF devices inside over the last located interval (the live
  aggregator's), times the people per device of the day's door fusion (1 without
  doors); ±1.96·√devices (Poisson), scaled the same way. It is as old as that
  interval (``as_of``).

``confidence`` is 1 minus the interval's half-width relative to the estimate
(0 when the interval is as wide as the estimate). An occupancy of fewer than k
people is published as suppressed (k-anonymity, as every aggregate).
"""

from __future__ import annotations

import math
import sqlite3
from typing import Any

from heatmap.aggregator.door_counts import door_flow
from heatmap.aggregator.live import periods
from heatmap.spatial.floorplan import FloorPlan

MISSED_SHARE = 0.02
"""share of crossings the beams count as one with another (people abreast)"""


def occupancy_payload(
    conn: sqlite3.Connection,
    plan: FloorPlan,
    now_ms: int,
    k: int,
    people_per_device: float | None = None,
) -> dict[str, Any]:
    """The retained ``footfall/v1/{store}/occupancy`` payload at ``now_ms``."""
    tz = plan.timezone
    if plan.doors:
        day0 = periods.floor_local(now_ms, "day", tz)
        door = door_flow(conn, day0, max(now_ms, day0 + 1000), empty_ms=day0)
        est = float(door.occupancy[-1]) if len(door.occupancy) else 0.0
        half = 1.96 * math.sqrt(MISSED_SHARE * door.ins + door.implied_ins)
        return _payload(now_ms, now_ms, est, half, "door", k)
    row = conn.execute(
        "SELECT t0_ms, t1_ms, rf_inside_s FROM live_intervals ORDER BY t0_ms DESC LIMIT 1"
    ).fetchone()
    if row is None:
        return _payload(now_ms, now_ms, 0.0, 0.0, "rf", k)
    a, b, rf_s = row
    devices = rf_s / ((b - a) / 1000)
    ppd = people_per_device or 1.0
    return _payload(now_ms, int(b), devices * ppd, 1.96 * math.sqrt(devices) * ppd, "rf", k)


def _payload(t: int, as_of: int, est: float, half: float, source: str, k: int) -> dict[str, Any]:
    n = round(est)
    low, high = max(math.floor(est - half), 0), math.ceil(est + half)
    confidence = round(max(0.0, 1.0 - half / est), 3) if est > 0 else (1.0 if half == 0 else 0.0)
    suppressed = 0 < n < k
    return {
        "v": 1,
        "t": t,
        "as_of": as_of,
        "occupancy": None if suppressed else n,
        "low": None if suppressed else low,
        "high": None if suppressed else high,
        "confidence": confidence,
        "source": source,
        "k": k,
        "suppressed": suppressed,
    }
