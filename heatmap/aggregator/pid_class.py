"""Visitor or passerby: the class of each pseudonym in each hour, for retention.

docs/architecture.md ("Storage and retention") keeps a passerby's pseudonymous rows only
until the hour's aggregates are written, a visitor's for ``retention_hours``.
So every pseudonym seen in an hour gets a class for that hour, stored in
``pid_class(hour_ms, pid, class, source)``.

Where a class comes from, first match wins:

1. a class stored for (hour, pid) — written by the analytics step, which
   localizes devices (:func:`heatmap.report.analytics.device_tracks`), with
   :func:`write_classes` and ``source="analytics"``;
2. otherwise the RSSI-span rule below, computed from the observations alone
   (``source="rule"``).

The rule (:func:`rule_classes`), for pseudonym ``pid`` and hour ``H``:
an observation is *strong* when its RSSI is at least ``ble_min_rssi_dbm`` (BLE)
or ``wifi_min_rssi_dbm`` (Wi-Fi, any band); ``pid`` is a **visitor** in ``H`` when
its strong observations within ``[H - min_span_s, H + 1 h + min_span_s)`` span
at least ``min_span_s`` (last minus first), and a **passerby** otherwise. The
window reaches into the neighbouring hours so that someone who walked in at
10:59 and stayed is a visitor of hour 10 too. Someone walking past the window
is heard for seconds; someone who came in for a minute or more is a visitor.
The rule leans to "passerby" when in doubt (a visitor whose phone is never
heard strongly), which deletes more, never less.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

Class = Literal["visitor", "passerby"]
VISITOR: Class = "visitor"
PASSERBY: Class = "passerby"
HOUR_MS = 3_600_000


@dataclass(frozen=True, slots=True)
class ClassRule:
    """Parameters of the RSSI-span rule."""

    ble_min_rssi_dbm: int = -80
    """a BLE observation at least this strong (dBm) is strong"""
    wifi_min_rssi_dbm: int = -70
    """a Wi-Fi observation at least this strong (dBm) is strong"""
    min_span_s: float = 60.0
    """strong observations spanning at least this long (s) make a visitor"""


def hour_of(t_ms: int) -> int:
    """Start of the UTC hour holding ``t_ms`` (Unix ms)."""
    return t_ms - t_ms % HOUR_MS


def rule_classes(conn: sqlite3.Connection, hour_ms: int, rule: ClassRule) -> dict[str, Class]:
    """The rule's class of every pseudonym observed in ``[hour_ms, hour_ms + 1 h)``."""
    span = int(rule.min_span_s * 1000)
    rows = conn.execute(
        """
        SELECT pid,
               MAX(t_ms >= :h0 AND t_ms < :h1) AS in_hour,
               MIN(CASE WHEN rssi >= CASE WHEN band = 'ble' THEN :ble ELSE :wifi END
                        THEN t_ms END) AS first_strong,
               MAX(CASE WHEN rssi >= CASE WHEN band = 'ble' THEN :ble ELSE :wifi END
                        THEN t_ms END) AS last_strong
        FROM obs WHERE t_ms >= :c0 AND t_ms < :c1
        GROUP BY pid
        """,
        {
            "h0": hour_ms,
            "h1": hour_ms + HOUR_MS,
            "c0": hour_ms - span,
            "c1": hour_ms + HOUR_MS + span,
            "ble": rule.ble_min_rssi_dbm,
            "wifi": rule.wifi_min_rssi_dbm,
        },
    )
    out: dict[str, Class] = {}
    for pid, in_hour, first, last in rows:
        if in_hour:
            visitor = first is not None and last - first >= span
            out[pid] = VISITOR if visitor else PASSERBY
    return out


def stored_classes(conn: sqlite3.Connection, hour_ms: int) -> dict[str, Class]:
    """Classes stored for ``hour_ms`` (by analytics or an earlier run of the rule)."""
    return dict(conn.execute("SELECT pid, class FROM pid_class WHERE hour_ms = ?", (hour_ms,)))


def classify_hour(
    conn: sqlite3.Connection, hour_ms: int, rule: ClassRule | None = None
) -> dict[str, Class]:
    """Class of every pseudonym observed in the hour starting ``hour_ms`` (UTC, Unix ms):
    the stored class where there is one, else the rule's."""
    out = rule_classes(conn, hour_ms, rule or ClassRule())
    out.update((p, c) for p, c in stored_classes(conn, hour_ms).items() if p in out)
    return out


def write_classes(
    conn: sqlite3.Connection,
    hour_ms: int,
    classes: Mapping[str, Class],
    source: str,
    replace: bool = True,
) -> int:
    """Store classes of ``hour_ms``; ``replace=False`` keeps classes already stored.
    The caller commits. Returns the number of rows written."""
    if hour_ms % HOUR_MS:
        raise ValueError(f"hour_ms {hour_ms} is not the start of a UTC hour")
    bad = {c for c in classes.values() if c not in (VISITOR, PASSERBY)}
    if bad:
        raise ValueError(f"unknown pseudonym class(es) {sorted(bad)}")
    verb = "INSERT OR REPLACE" if replace else "INSERT OR IGNORE"
    cur = conn.executemany(
        f"{verb} INTO pid_class VALUES (?, ?, ?, ?)",
        [(hour_ms, pid, c, source) for pid, c in classes.items()],
    )
    return max(cur.rowcount, 0)
