"""The privacy audit of a store database: retention enforced, every aggregate k-anonymous.

**Retention** (:func:`retention_findings`). The pseudonymous tables are ``obs``,
``track_windows`` (both ``t_ms``) and ``pid_class`` (``hour_ms``). In the ``standard``
mode the oldest of their rows may be ``retention_hours`` old, plus the hour and the
grace the aggregator waits before it runs retention again
(:mod:`heatmap.aggregator.retention`); a passer-by's rows go once their hour is closed,
so an ``obs`` row of an hour closed and purged (``hour_purges``) whose pseudonym is not
that hour's visitor is a finding too. The ``strict`` mode allows no pseudonymous row
older than 5 minutes. Ages are measured against ``now``: the wall clock, or for a
simulated or replayed store the live aggregator's own clock (``meta.live_watermark``).

**k** (:func:`k_findings`). Every stored aggregate's counts of people or devices are
0, at least k, or null (suppressed): :mod:`heatmap.aggregator.live.k_guard`'s rule,
checked field by field on what is stored, and every payload's own ``k`` is the
config's or larger.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from heatmap.aggregator.pid_class import HOUR_MS

STRICT_MAX_AGE_S = 300.0
"""the strict mode: no pseudonymous row older than 5 minutes on any disk"""

PSEUDONYMOUS_TABLES = (("obs", "t_ms"), ("track_windows", "t_ms"), ("pid_class", "hour_ms"))
"""tables whose rows carry a pseudonym, and their time column (Unix ms)"""

COUNT_FIELDS = frozenset(
    {
        "door_in",
        "door_out",
        "door_in_implied",
        "visitors",
        "passersby",
        "visitor_devices",
        "passerby_devices",
        "seen_entering",
        "visits_ended",
        "staff_devices",
        "visits",
        "devices",
        "sessions_with_stays",
    }
)
"""payload fields (at any depth) that count people or devices: k-guarded"""
COUNT_MAPS = frozenset({"dwell_buckets"})
"""payload fields whose values are each a count of visits"""


@dataclass(frozen=True)
class Limits:
    mode: str
    retention_hours: float
    aggregate_after_s: float
    k: int

    def max_age_ms(self) -> int:
        """How old the oldest pseudonymous row may be, ms."""
        if self.mode == "strict":
            return int(STRICT_MAX_AGE_S * 1000)
        return int(self.retention_hours * HOUR_MS + HOUR_MS + self.aggregate_after_s * 1000)


def watermark_ms(conn: sqlite3.Connection) -> int | None:
    """The live aggregator's clock (``meta.live_watermark``), None before it ran."""
    row = conn.execute("SELECT value FROM meta WHERE key = 'live_watermark'").fetchone()
    try:
        return int(row[0]) if row else None
    except (TypeError, ValueError):
        return None


def _utc(ms: int) -> str:
    return f"{datetime.fromtimestamp(ms / 1000, UTC):%Y-%m-%d %H:%M} UTC"


def _tables(conn: sqlite3.Connection) -> set[str]:
    return {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}


def retention_findings(
    conn: sqlite3.Connection, now_ms: int, limits: Limits, source: str
) -> tuple[list[str], str]:
    """Findings about pseudonymous rows kept too long, and what was looked at."""
    out: list[str] = []
    tables = _tables(conn)
    max_age = limits.max_age_ms()
    rows = 0
    for table, col in PSEUDONYMOUS_TABLES:
        if table not in tables:
            continue
        n, oldest = conn.execute(f"SELECT COUNT(*), MIN({col}) FROM {table}").fetchone()
        rows += n
        if oldest is not None and now_ms - oldest > max_age:
            late = conn.execute(
                f"SELECT COUNT(*) FROM {table} WHERE {col} < ?", (now_ms - max_age,)
            ).fetchone()[0]
            out.append(
                f"{source}: table {table}: {late} pseudonymous rows older than "
                f"{max_age / HOUR_MS:.2f} h (the oldest from {_utc(oldest)}, "
                f"{(now_ms - oldest) / HOUR_MS:.1f} h before {_utc(now_ms)}; mode {limits.mode})"
            )
    if limits.mode == "standard" and {"obs", "hour_purges", "pid_class"} <= tables:
        (kept,) = conn.execute(
            """SELECT COUNT(*) FROM obs o JOIN hour_purges h
               ON o.t_ms >= h.hour_ms AND o.t_ms < h.hour_ms + ?
               WHERE NOT EXISTS (SELECT 1 FROM pid_class c WHERE c.hour_ms = h.hour_ms
                                 AND c.pid = o.pid AND c.class = 'visitor')""",
            (HOUR_MS,),
        ).fetchone()
        if kept:
            out.append(
                f"{source}: table obs: {kept} rows of passers-by kept after their hour was "
                "closed and purged"
            )
    return out, f"{rows:,} pseudonymous rows, at most {max_age / HOUR_MS:.2f} h old"


def _counts(node: Any, path: str) -> Iterator[tuple[str, Any]]:
    """(path, value) of every k-guarded count in a payload."""
    if isinstance(node, dict):
        for key, v in node.items():
            p = f"{path}.{key}" if path else key
            if key in COUNT_FIELDS and not isinstance(v, dict | list):
                yield p, v
            elif key in COUNT_MAPS and isinstance(v, dict):
                yield from ((f"{p}.{b}", c) for b, c in v.items())
            elif key == "moves" and isinstance(v, list):
                for m in v:
                    if isinstance(m, list) and len(m) == 4:
                        yield f"{p}[{m[0]}→{m[1]}].moves", m[2]
                        yield f"{p}[{m[0]}→{m[1]}].devices", m[3]
            else:
                yield from _counts(v, p)
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _counts(v, f"{path}[{i}]")


def k_findings(conn: sqlite3.Connection, k: int, source: str) -> tuple[list[str], str]:
    """Findings about stored aggregates that break k, and how many were checked."""
    if "aggregates" not in _tables(conn):
        return [], "no aggregates table"
    out: list[str] = []
    n = 0
    for kind, period, entity, payload in conn.execute(
        "SELECT kind, period, entity, payload FROM aggregates ORDER BY t0_ms, kind, entity"
    ):
        n += 1
        where = f"{source}: aggregate {kind}/{entity} {period}"
        try:
            p = json.loads(payload)
        except ValueError:
            out.append(f"{where}: payload is not JSON")
            continue
        pk = p.get("k") if isinstance(p, dict) else None
        if not isinstance(pk, int) or pk < k:
            out.append(f"{where}: written with k = {pk}, the config says {k}")
        for field, v in _counts(p, ""):
            if isinstance(v, int | float) and not isinstance(v, bool) and 0 < v < k:
                out.append(f"{where}: {field} = {v:g}, below k = {k} and not suppressed")
    return out, f"{n:,} aggregates"
