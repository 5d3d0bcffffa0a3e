"""The aggregates table, and the hourly presence aggregate the aggregator writes itself.

``aggregates(kind, period, entity, t0_ms, t1_ms, payload, written_ms)`` holds
one k-anonymous JSON payload per (kind, period, entity); these rows are kept
when pseudonymous rows go. An hour ``H`` (UTC, Unix ms) counts as *aggregated*
once some row covers it: ``t0_ms <= H`` and ``t1_ms >= H + 1 h``. That is what
lets :mod:`heatmap.aggregator.retention` delete the hour's passersby.

Any step may write aggregates with :func:`put_aggregate` (the analytics step
writes footfall and zone figures). The aggregator daemon writes, for each hour
once it is complete, kind ``presence``, entity ``store``
(:func:`aggregate_hour`): devices by class, door counts and the number of
observations, so that the hour's passerby figures survive the deletion of the
passersby's rows. Counts of 1..k-1 are stored as null (k-anonymity).
"""

from __future__ import annotations

import json
import sqlite3
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from heatmap.aggregator import pid_class
from heatmap.aggregator.pid_class import HOUR_MS, ClassRule

PRESENCE = "presence"


def period(t0_ms: int, t1_ms: int, tz: str = "UTC") -> str:
    """ISO 8601 interval in local time with offset, as in the v1 payloads.

    >>> period(1794999600000, 1795003200000, "Europe/Amsterdam")
    '2026-11-18T12:00:00+01:00/2026-11-18T13:00:00+01:00'
    """
    z = ZoneInfo(tz)
    a = datetime.fromtimestamp(t0_ms / 1000, z).isoformat()
    b = datetime.fromtimestamp(t1_ms / 1000, z).isoformat()
    return f"{a}/{b}"


def put_aggregate(
    conn: sqlite3.Connection,
    kind: str,
    period_iso: str,
    entity: str,
    t0_ms: int,
    t1_ms: int,
    payload: dict[str, Any],
) -> None:
    """Store (or replace) one aggregate; the caller commits."""
    if t1_ms <= t0_ms:
        raise ValueError(f"empty period {t0_ms}..{t1_ms}")
    conn.execute(
        "INSERT OR REPLACE INTO aggregates VALUES (?,?,?,?,?,?,?)",
        (
            kind,
            period_iso,
            entity,
            t0_ms,
            t1_ms,
            json.dumps(payload, separators=(",", ":")),
            int(time.time() * 1000),
        ),
    )


def aggregated(conn: sqlite3.Connection, hour_ms: int) -> bool:
    """True when an aggregate covers the whole hour starting at ``hour_ms``."""
    row = conn.execute(
        "SELECT 1 FROM aggregates WHERE t0_ms <= ? AND t1_ms >= ? LIMIT 1",
        (hour_ms, hour_ms + HOUR_MS),
    ).fetchone()
    return row is not None


def _k_count(n: int, k: int) -> int | None:
    return n if n == 0 or n >= k else None


@dataclass(frozen=True)
class HourAggregate:
    hour_ms: int
    payload: dict[str, Any]
    classes: dict[str, pid_class.Class]
    """class of every pseudonym of the hour (kept in memory only by the caller)"""


def aggregate_hour(
    conn: sqlite3.Connection,
    hour_ms: int,
    k: int = 5,
    rule: ClassRule | None = None,
    tz: str = "UTC",
) -> HourAggregate:
    """Classify the hour's pseudonyms (stored classes win over the rule), store the
    rule's classes, and write the hour's ``presence`` aggregate. The caller commits."""
    if hour_ms % HOUR_MS:
        raise ValueError(f"hour_ms {hour_ms} is not the start of a UTC hour")
    h1 = hour_ms + HOUR_MS
    classes = pid_class.classify_hour(conn, hour_ms, rule)
    stored = pid_class.stored_classes(conn, hour_ms)
    pid_class.write_classes(
        conn,
        hour_ms,
        {p: c for p, c in classes.items() if p not in stored},
        "rule",
        replace=False,
    )
    visitors = sum(1 for c in classes.values() if c == pid_class.VISITOR)
    n_obs, n_nodes = conn.execute(
        "SELECT COUNT(*), COUNT(DISTINCT node) FROM obs WHERE t_ms >= ? AND t_ms < ?",
        (hour_ms, h1),
    ).fetchone()
    door_in, door_out = conn.execute(
        "SELECT COALESCE(SUM(dir > 0), 0), COALESCE(SUM(dir < 0), 0) FROM door_events "
        "WHERE t_ms >= ? AND t_ms < ?",
        (hour_ms, h1),
    ).fetchone()
    sources = [
        r[0]
        for r in conn.execute(
            "SELECT DISTINCT source FROM pid_class WHERE hour_ms = ? ORDER BY source", (hour_ms,)
        )
    ]
    payload: dict[str, Any] = {
        "v": 1,
        "period": period(hour_ms, h1, tz),
        "k": k,
        "visitor_devices": _k_count(visitors, k),
        "passerby_devices": _k_count(len(classes) - visitors, k),
        "door_in": _k_count(int(door_in), k),
        "door_out": _k_count(int(door_out), k),
        "observations": int(n_obs),
        "nodes_heard": int(n_nodes),
        "classes_from": sources,
    }
    put_aggregate(conn, PRESENCE, payload["period"], "store", hour_ms, h1, payload)
    return HourAggregate(hour_ms, payload, classes)
