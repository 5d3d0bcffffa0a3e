"""Intervals, 15-minute slots, local hours and local days as epoch-ms spans.

Intervals and slots are multiples of their length since the epoch (every time zone
in use is a whole number of quarter hours from UTC, so a slot is a local quarter
hour too); hours and days are the store's local ones (23 or 25 h on the days
clocks change).

>>> floor_local(1794991500000, "hour", "Europe/Amsterdam")  # 10:25 local
1794990000000
>>> d0 = floor_local(1794991500000, "day", "Europe/Amsterdam"); next_local(d0, "day",
...     "Europe/Amsterdam") - d0
86400000
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Literal
from zoneinfo import ZoneInfo

Unit = Literal["slot", "hour", "day"]
SLOT_MS = 900_000


def floor_ms(t_ms: int, step_ms: int) -> int:
    return t_ms - t_ms % step_ms


def floor_local(t_ms: int, unit: Unit, tz: str) -> int:
    """Start of the slot, local hour or local day holding ``t_ms``."""
    if unit == "slot":
        return floor_ms(t_ms, SLOT_MS)
    z = ZoneInfo(tz)
    dt = datetime.fromtimestamp(t_ms / 1000, z)
    if unit == "hour":
        dt = dt.replace(minute=0, second=0, microsecond=0)
    else:
        dt = dt.replace(hour=0, minute=0, second=0, microsecond=0)
    return int(dt.timestamp() * 1000)


def next_local(t0_ms: int, unit: Unit, tz: str) -> int:
    """End of the period starting at ``t0_ms``."""
    if unit == "slot":
        return t0_ms + SLOT_MS
    if unit == "hour":
        return t0_ms + 3_600_000
    z = ZoneInfo(tz)
    d = datetime.fromtimestamp(t0_ms / 1000, z).date() + timedelta(days=1)
    return int(datetime(d.year, d.month, d.day, tzinfo=z).timestamp() * 1000)


def spans(t0_ms: int, t1_ms: int, unit: Unit, tz: str) -> list[tuple[int, int]]:
    """The periods of ``unit`` that overlap [t0, t1), in order."""
    out = []
    a = floor_local(t0_ms, unit, tz)
    while a < t1_ms:
        b = next_local(a, unit, tz)
        out.append((a, b))
        a = b
    return out
