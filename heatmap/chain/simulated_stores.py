"""Simulated stores' days of aggregates, as their aggregators publish them (v1 contract).

For the chain's tests, its bench and trying ``footfall chain`` without stores: a store's
local day as 24 closed hours, the closed day, zone statistics of the day (``zones``
zones, as the day in progress at 21:00), its occupancy and its aggregator's status,
every payload valid against its schema. Hours with fewer than k visitors (the night)
are published suppressed, as a store does; the day's visitors are the sum of its
hours' true visitors, as the live aggregator composes a day.

>>> day = store_day("s1", date(2026, 11, 18), seed=1)
>>> len(day.messages), sum(1 for t, _ in day.messages if "/footfall/" in t)
(33, 25)
>>> day.hour_visitors[3], day.day_visitors == sum(day.true_hours)
(None, True)
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sensing.wire import payloads, topics

K = 5
PROFILE = (0, 0, 0, 0, 0, 0, 0, 1, 6, 14, 22, 30, 38, 34, 28, 30, 36, 44, 50, 40, 22, 8, 1, 0)
"""relative visitors per local hour of a day"""
ZONES = ("entrance", "fruit", "bakery", "drinks", "household", "checkout", "fitting", "garden")


@dataclass(frozen=True)
class StoreDay:
    """One store's published day and the figures it carries."""

    store: str
    day: date
    messages: list[tuple[str, bytes]]
    """(topic, payload) in the order an aggregator publishes them"""
    true_hours: list[int]
    """visitors of each local hour (also those published suppressed)"""
    hour_visitors: dict[int, int | None]
    """visitors of each hour as published (None: suppressed)"""
    day_visitors: int
    day_passersby: int


def _ms(dt: datetime) -> int:
    return int(dt.timestamp() * 1000)


def _period(a: datetime, b: datetime) -> str:
    return f"{a.isoformat(timespec='seconds')}/{b.isoformat(timespec='seconds')}"


def footfall_payload(
    a: datetime,
    b: datetime,
    unit: str,
    final: bool,
    as_of: int,
    visitors: int,
    passersby: int,
    rng: random.Random,
) -> dict[str, Any]:
    """A footfall payload of [a, b): suppressed (every figure null) below k visitors."""
    p: dict[str, Any] = {
        "v": 1,
        "period": _period(a, b),
        "unit": unit,
        "final": final,
        "as_of": as_of,
        "k": K,
        "suppressed": visitors < K,
        "source": "door",
    }
    if visitors < K:
        for key in ("in", "out", "in_implied", "visitors", "passersby", "capture_rate"):
            p[key] = None
        for key in ("occupancy_mean", "occupancy_max", "dwell_mean_s", "visits"):
            p[key] = None
        p["dwell_s"] = {"p25": None, "p50": None, "p75": None, "p90": None}
        return p
    implied = rng.randrange(0, 3)
    dwell = rng.uniform(400, 900)
    hours = (b - a).total_seconds() / 3600
    p.update(
        {
            "in": visitors - implied,
            "out": visitors - rng.randrange(0, 3),
            "in_implied": implied,
            "visitors": visitors,
            "passersby": passersby,
            "capture_rate": round(visitors / (visitors + passersby), 4),
            "occupancy_mean": round(visitors * dwell / 3600 / hours, 2),
            "occupancy_max": float(round(visitors * dwell / 3600 / hours * 1.6 + 1)),
            "dwell_mean_s": round(dwell, 1),
            "visits": visitors // 2,
            "dwell_s": {"p25": 240.0, "p50": 410.5, "p75": 655.0, "p90": 980.0},
        }
    )
    return p


def store_day(
    store: str,
    day: date,
    seed: int = 0,
    scale: float = 1.0,
    zones: int = 6,
    tz: str = "Europe/Amsterdam",
) -> StoreDay:
    """The messages of ``store``'s local ``day``; ``scale`` multiplies its visitors."""
    rng = random.Random(f"{store}/{day}/{seed}")
    z = ZoneInfo(tz)
    start = datetime(day.year, day.month, day.day, tzinfo=z)
    end = datetime.combine(day + timedelta(days=1), datetime.min.time(), tzinfo=z)
    size = scale * rng.uniform(0.6, 1.6)
    msgs: list[tuple[str, bytes]] = []
    true_hours: list[int] = []
    published: dict[int, int | None] = {}
    day_pass = 0
    t = start.astimezone(UTC)
    while t < end.astimezone(UTC):
        a, b = t.astimezone(z), (t + timedelta(hours=1)).astimezone(z)
        vis = max(0, round(PROFILE[a.hour] * size * rng.uniform(0.7, 1.3)))
        pas = round(vis * rng.uniform(2.0, 5.0)) + rng.randrange(5, 30)
        true_hours.append(vis)
        day_pass += pas
        p = footfall_payload(a, b, "hour", True, _ms(b), vis, pas, rng)
        published[a.hour] = p["visitors"]
        level = f"{a:%Y-%m-%dT%H}" + ("b" if a.fold else "")
        msgs.append((topics.build("footfall", store, level), payloads.encode(p)))
        t += timedelta(hours=1)
    day_vis = sum(true_hours)
    p = footfall_payload(start, end, "day", True, _ms(end), day_vis, day_pass, rng)
    msgs.append((topics.build("footfall", store, f"{day:%Y-%m-%d}"), payloads.encode(p)))
    as_of = _ms(start.replace(hour=21))
    for zone in ZONES[:zones]:
        n = round(day_vis * rng.uniform(0.1, 0.8))
        zp: dict[str, Any] = {
            "v": 1,
            "zone": zone,
            "name": zone.title(),
            "period": _period(start, end),
            "unit": "day",
            "final": False,
            "as_of": as_of,
            "k": K,
            "suppressed": n < K,
            "occupancy": rng.randrange(5, 20) if n >= K else None,
            "occupancy_as_of": as_of,
            "visits": n if n >= K else None,
            "dwell_s": {"p50": 142.0, "p90": 610.0} if n >= K else {"p50": None, "p90": None},
            "person_seconds": round(n * rng.uniform(60, 300), 1) if n >= K else None,
            "reach_share": round(min(1.0, n / max(day_vis, 1)), 3) if n >= K else None,
        }
        msgs.append((topics.build("zone_stats", store, zone), payloads.encode(zp)))
    occ = rng.randrange(5, 40)
    op = {
        "v": 1,
        "t": as_of,
        "as_of": as_of,
        "occupancy": occ,
        "low": occ - 2,
        "high": occ + 3,
        "confidence": 0.85,
        "source": "door",
        "k": K,
        "suppressed": False,
    }
    msgs.append((topics.build("occupancy", store), payloads.encode(op)))
    sp = {
        "v": 1,
        "state": "online",
        "t": as_of,
        "version": "0.1.0",
        "uptime_s": 3600.0,
        "ingest": {
            "window_s": 10.0,
            "messages_per_s": 12.0,
            "observations_per_s": 4000.0,
            "messages": 1000,
            "observations": 400000,
            "batches": 1000,
            "duplicates": 0,
            "expired": 0,
            "queue_depth": 0,
        },
        "rejects": {},
        "nodes": {"n1": {"state": "online"}},
        "nodes_offline": [],
    }
    msgs.append((topics.build("aggregator_status", store), payloads.encode(sp)))
    return StoreDay(store, day, msgs, true_hours, published, day_vis, day_pass)
