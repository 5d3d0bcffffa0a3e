"""The v1 BI payloads (``footfall/{period}``, ``zone/{zone}/stats``) from the stored aggregates.

The live aggregator (:mod:`heatmap.aggregator.live`) writes k-anonymous aggregates per
15-minute slot, hour and local day; BI gets:

* every **closed** hour and day as it was stored (``final: true``);
* the **hour and the day in progress** composed from the pieces stored so far
  (:func:`heatmap.aggregator.live.composed_period.load_period`), up to ``as_of`` = the end
  of the last stored slot. Their door counts come from the door events up to the same
  ``as_of`` (a piece suppressed below k would otherwise leave its people out of the
  day's sum); the k-guard applies to the total;
* per zone, today so far and the people in it now (the last located interval).

A figure from fewer than k people (k distinct devices for radio figures) is null; a field
that is absent was not measured (door counts without beams). ``suppressed`` is true
when every figure is null. Nothing here reads a pseudonym except the zone occupancy's
count of distinct devices in the last interval, which only decides the k-guard.
"""

from __future__ import annotations

import sqlite3
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from heatmap.aggregator import hour_aggregates
from heatmap.aggregator.door_counts import door_flow
from heatmap.aggregator.live import k_guard, periods
from heatmap.aggregator.live.composed_period import load_period
from heatmap.spatial.floorplan import FloorPlan

FIGURES = (
    "in",
    "out",
    "in_implied",
    "visitors",
    "passersby",
    "capture_rate",
    "occupancy_mean",
    "occupancy_max",
    "dwell_mean_s",
    "visits",
)
PERCENTILES = ("p25", "p50", "p75", "p90")


def period_id(t0_ms: int, unit: str, tz: str) -> str:
    """The topic level of a closed period: ``YYYY-MM-DD`` (a local day) or ``YYYY-MM-DDTHH``
    (a local hour; the second of two equal hours of a DST fall-back gets a ``b``).

    >>> period_id(1_795_129_200_000, "day", "Europe/Prague")
    '2026-11-20'
    >>> period_id(1_795_165_200_000, "hour", "Europe/Prague")
    '2026-11-20T10'
    >>> t = 1_792_890_000_000  # 2026-10-25 01:00 UTC: the second 02:00 in Prague
    >>> period_id(t - 3_600_000, "hour", "Europe/Prague"), period_id(t, "hour", "Europe/Prague")
    ('2026-10-25T02', '2026-10-25T02b')
    """
    local = datetime.fromtimestamp(t0_ms / 1000, ZoneInfo(tz))
    if unit == "day":
        return local.strftime("%Y-%m-%d")
    ident = local.strftime("%Y-%m-%dT%H")
    if local.fold:
        ident += "b"
    return ident


def footfall_payload(
    store: dict[str, Any],
    *,
    period: str,
    unit: str,
    final: bool,
    as_of: int,
    k: int,
    doors: bool,
) -> dict[str, Any]:
    """The ``footfall/{period}`` payload from a stored (or composed) ``footfall/store``
    aggregate; its nulls (suppressed figures) stay null."""
    p: dict[str, Any] = {
        "v": 1,
        "period": period,
        "unit": unit,
        "final": final,
        "as_of": as_of,
        "k": k,
        "suppressed": False,
        "source": store.get("occupancy_source") or ("door" if doors else "rf"),
        "in": store.get("door_in"),
        "out": store.get("door_out"),
        "in_implied": store.get("door_in_implied"),
        "visitors": store.get("visitors"),
        "passersby": store.get("passersby"),
        "capture_rate": store.get("capture_rate"),
        "occupancy_mean": store.get("occupancy_mean"),
        "occupancy_max": store.get("occupancy_max"),
        "dwell_mean_s": store.get("mean_dwell_s"),
        "visits": store.get("visits_ended"),
        "dwell_s": {q: (store.get("dwell_s") or {}).get(q) for q in PERCENTILES},
    }
    if not doors:
        for key in ("in", "out", "in_implied"):
            del p[key]
    p["suppressed"] = all(p.get(f) is None for f in FIGURES) and all(
        v is None for v in p["dwell_s"].values()
    )
    return p


def closed_period(
    t0: int, t1: int, unit: str, payload: dict[str, Any], plan: FloorPlan
) -> tuple[str, dict[str, Any]]:
    """(topic level, payload) of a stored hour or day aggregate."""
    return period_id(t0, unit, plan.timezone), footfall_payload(
        payload,
        period=payload.get("period") or hour_aggregates.period(t0, t1, plan.timezone),
        unit=unit,
        final=True,
        as_of=t1,
        k=int(payload.get("k", 5)),
        doors=bool(plan.doors),
    )


def in_progress(
    conn: sqlite3.Connection, plan: FloorPlan, unit: str, now_ms: int, k: int
) -> tuple[dict[str, Any], dict[str, dict[str, Any]], int]:
    """The hour or day in progress at ``now_ms``: its footfall payload, its zones'
    composed figures, and ``as_of``."""
    tz = plan.timezone
    t0 = periods.floor_local(now_ms, unit, tz)  # type: ignore[arg-type]
    t1 = periods.next_local(t0, unit, tz)  # type: ignore[arg-type]
    (as_of,) = conn.execute(
        "SELECT MAX(t1_ms) FROM aggregates WHERE kind = 'footfall' AND entity = 'store' "
        "AND t0_ms >= ? AND t1_ms <= ?",
        (t0, min(t1, now_ms)),
    ).fetchone()
    as_of = int(as_of) if as_of is not None else t0
    if as_of > t0:
        fig = load_period(conn, plan, t0, as_of)
        store, zones = dict(fig.store), fig.zones
    else:
        store, zones = {}, {}
    if plan.doors and as_of > t0:
        day0 = periods.floor_local(t0, "day", tz)
        door = door_flow(conn, t0, as_of, empty_ms=day0)
        store["door_in"] = k_guard.count(door.ins, k)
        store["door_out"] = k_guard.count(door.outs, k)
        store["door_in_implied"] = k_guard.count(door.implied_ins, k)
        store["visitors"] = k_guard.count(door.ins, k)
        vis, pas = store["visitors"], store.get("passersby")
        store["capture_rate"] = (
            round(vis / (vis + pas), 4) if vis is not None and pas is not None else None
        )
    payload = footfall_payload(
        store,
        period=hour_aggregates.period(t0, t1, tz),
        unit=unit,
        final=False,
        as_of=as_of,
        k=k,
        doors=bool(plan.doors),
    )
    return payload, zones, as_of


def zone_occupancy_now(
    conn: sqlite3.Connection,
    plan: FloorPlan,
    k: int,
    window_s: float,
    people_per_device: float,
    now_ms: int,
) -> tuple[dict[str, int | None], int | None]:
    """People in each zone over the last interval located by ``now_ms`` (device-seconds in
    the zone over the interval's length, times people per device); null where fewer than k
    distinct devices were located in it. Returns (zone id → people, the interval's end)."""
    last = conn.execute(
        "SELECT t0_ms, t1_ms FROM live_intervals WHERE t1_ms <= ? ORDER BY t0_ms DESC LIMIT 1",
        (now_ms,),
    ).fetchone()
    out: dict[str, int | None] = {z.id: None for z in plan.zones}
    if last is None:
        return out, None
    a, b = last
    rows = conn.execute(
        "SELECT zone, COUNT(*), COUNT(DISTINCT pid) FROM track_windows "
        "WHERE t_ms >= ? AND t_ms < ? AND zone >= 0 GROUP BY zone",
        (a, b),
    ).fetchall()
    span_s = max((b - a) / 1000, 1.0)
    seen = {zone: (n, devices) for zone, n, devices in rows}
    for i, z in enumerate(plan.zones):
        n, devices = seen.get(i, (0, 0))
        if devices == 0:
            out[z.id] = 0  # nobody located there: a zero is no one's figure
        elif devices >= k:
            out[z.id] = round(n * window_s / span_s * people_per_device)
    return out, int(b)


def zone_payload(
    zone_id: str,
    name: str,
    day: dict[str, Any],
    *,
    period: str,
    as_of: int,
    k: int,
    occupancy: int | None,
    occupancy_as_of: int | None,
) -> dict[str, Any]:
    """The ``zone/{zone}/stats`` payload: today so far (composed) and the people in it now."""
    p: dict[str, Any] = {
        "v": 1,
        "zone": zone_id,
        "name": name[:120],
        "period": period,
        "unit": "day",
        "final": False,
        "as_of": as_of,
        "k": k,
        "suppressed": False,
        "occupancy": occupancy,
        "visits": day.get("visits"),
        "dwell_s": {"p50": day.get("dwell_p50_s"), "p90": day.get("dwell_p90_s")},
        "person_seconds": _rounded(day.get("person_seconds")),
        "reach_share": day.get("reach_share"),
    }
    if occupancy_as_of is not None:
        p["occupancy_as_of"] = occupancy_as_of
    figures = (p["occupancy"], p["visits"], p["person_seconds"], p["reach_share"])
    p["suppressed"] = all(v is None for v in figures) and all(
        v is None for v in p["dwell_s"].values()
    )
    return p


def _rounded(v: float | None, ndigits: int = 1) -> float | None:
    return None if v is None else round(float(v), ndigits)
