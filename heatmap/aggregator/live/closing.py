"""Closing periods: when an hour may close, and what a day takes from its hours.

An hour's aggregates are written, and its passers-by's rows deleted, once every node's
rows of it are in (:func:`hour_complete`). After that the hour's passers-by are no longer
in the rows: a day takes them, its heatmap and its zones' person-seconds from its hours
(:func:`compose_day`, :func:`carry_passersby`).
"""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from heatmap.aggregator import pid_class
from heatmap.aggregator.live import calibration_state, k_guard, periods
from heatmap.aggregator.live.period_figures import Aggregate


def hour_complete(conn: sqlite3.Connection, a: int, b: int, now_ms: int, grace_ms: int) -> bool:
    """Whether every node's rows of the hour are in, or the hour's grace is over.

    A node's batches carry consecutive ``seq`` numbers and a node replays its spool
    in order, so its rows of [a, b) are all in when its batches around the hour have
    no gap in their seqs and one reaches past the hour's end. Closing an hour deletes
    its passers-by's rows, after which late rows cannot be located: so an hour a
    node owes batches of waits for it, up to ``grace_ms``.
    """
    if now_ms >= b + grace_ms:
        return True
    margin = 60_000
    rows = conn.execute(
        "SELECT publisher, MIN(seq), MAX(seq), COUNT(*), MAX(t1) FROM batches "
        "WHERE kind = 'obs' AND t1 >= ? AND t0 < ? GROUP BY publisher",
        (a - margin, b + margin),
    ).fetchall()
    return all(hi - lo + 1 == n and last >= b for _p, lo, hi, n, last in rows)


def hours_with_rows(conn: sqlite3.Connection, a: int, b: int, tz: str) -> list[tuple[int, int]]:
    """The hours of [a, b) that have located intervals."""
    starts = {
        periods.floor_local(int(r[0]), "hour", tz)
        for r in conn.execute(
            "SELECT t0_ms FROM live_intervals WHERE t0_ms >= ? AND t0_ms < ? AND windows > 0",
            (a, b),
        )
    }
    return [(h, periods.next_local(h, "hour", tz)) for h in sorted(starts)]


def compose_day(conn: sqlite3.Connection, aggs: list[Aggregate], a: int, b: int) -> None:
    """What a day holds of its passers-by comes from its hours (their rows are gone
    by the day's close): the heatmap is the sum of the hours' kept cells, and the zones'
    person-seconds follow it. Visits, dwell and zone stays are the visitors', whose
    rows are still there: the day's own, exact percentiles included."""
    hours: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for kind, ent, pl in conn.execute(
        "SELECT kind, entity, payload FROM aggregates WHERE t0_ms >= ? AND t1_ms <= ? "
        "AND t1_ms - t0_ms = ? AND kind IN ('heatmap', 'zone')",
        (a, b, pid_class.HOUR_MS),
    ):
        hours.setdefault((kind, ent), []).append(json.loads(pl))
    span_s = (b - a) / 1000
    for g in aggs:
        if g.kind == "heatmap":
            cells: dict[str, float] = {}
            for h in hours.get(("heatmap", "store"), []):
                for i, v in h["cells"].items():
                    cells[i] = cells.get(i, 0.0) + v
            g.payload["cells"] = {
                i: round(v, 1) for i, v in sorted(cells.items(), key=lambda kv: int(kv[0]))
            }
            g.payload["cells_suppressed"] = sum(
                h["cells_suppressed"] for h in hours.get(("heatmap", "store"), [])
            )
            g.payload["from_hours"] = True
        elif g.kind == "zone":
            hz = hours.get(("zone", g.entity), [])
            ps = sum(h["person_seconds"] for h in hz)
            g.payload["person_seconds"] = round(ps, 1)
            g.payload["occupancy_mean"] = round(ps / span_s, 3)
            g.payload["cells_suppressed"] = sum(h["cells_suppressed"] for h in hz)


def carry_passersby(
    conn: sqlite3.Connection, agg: Aggregate, unit: str, a: int, b: int, k: int
) -> None:
    """Passers-by of hours whose rows were deleted are no longer in the rows: a day
    takes them from its hours (they add up), a period written again (late rows)
    keeps the figures it had."""
    purged = conn.execute(
        "SELECT COUNT(*) FROM hour_purges WHERE hour_ms >= ? AND hour_ms < ?",
        (pid_class.hour_of(a), b),
    ).fetchone()[0]
    if not purged:
        return
    p = agg.payload
    if unit == "day":
        rows = conn.execute(
            "SELECT payload FROM aggregates WHERE kind = 'footfall' AND entity = 'store' "
            "AND t0_ms >= ? AND t1_ms <= ? AND t1_ms - t0_ms = ?",
            (a, b, pid_class.HOUR_MS),
        ).fetchall()
        hours = [json.loads(r[0]) for r in rows]
        pas = [h["passersby"] for h in hours if h["passersby"] is not None]
        dev = [h["rf"]["passerby_devices"] for h in hours if h["rf"]["passerby_devices"]]
        p["passersby"] = k_guard.count(sum(pas), k) if hours else p["passersby"]
        p["rf"]["passerby_devices"] = k_guard.count(sum(dev), k)
    else:
        row = conn.execute(
            "SELECT payload FROM aggregates WHERE kind = 'footfall' AND entity = 'store' "
            "AND t0_ms = ? AND t1_ms = ?",
            (a, b),
        ).fetchone()
        if row is None:
            return
        old = json.loads(row[0])
        p["passersby"] = old["passersby"]
        p["rf"]["passerby_devices"] = old["rf"]["passerby_devices"]
    v, pas_n = p["visitors"], p["passersby"]
    p["capture_rate"] = (
        round(v / (v + pas_n), 4) if v is not None and pas_n is not None and v + pas_n else None
    )


def drop_late_passersby(c: sqlite3.Connection, a: int, b: int) -> int:
    """Late BLE rows in [a, b) of an hour whose passers-by were deleted already: the
    rows of pseudonyms the hour does not know as visitors are a passer-by's (their
    other rows are gone, so they could not be located anyway). They are deleted on
    arrival, as the hour's other passers-by's were."""
    hour = pid_class.hour_of(a)
    if c.execute("SELECT 1 FROM hour_purges WHERE hour_ms = ?", (hour,)).fetchone() is None:
        return 0
    cal = calibration_state.load(c)
    beacons = sorted(cal.beacons) if cal is not None else []
    marks = ",".join("?" * len(beacons))
    keep_beacons = f"AND pid NOT IN ({marks})" if beacons else ""
    n = c.execute(
        f"DELETE FROM obs WHERE t_ms >= ? AND t_ms < ? AND band = 'ble' {keep_beacons} "
        "AND pid NOT IN (SELECT pid FROM track_windows WHERE t_ms >= ? AND t_ms < ?)",
        (a, b, *beacons, hour, hour + pid_class.HOUR_MS),
    ).rowcount
    return int(n)
