"""Retention deletes exactly what is due: a brute-force model of the rule in
heatmap/aggregator/retention.py (written from its docstring, row by row in plain Python)
against the SQL implementation, on a randomized store with visitors, passersby,
hour-crossing visits, analytics-classified pseudonyms, aggregated and
unaggregated hours, an hour straddling the horizon, and late batches."""

from __future__ import annotations

import json
import random
import sqlite3
from dataclasses import dataclass
from pathlib import Path

import pytest

from heatmap.aggregator import hour_aggregates, pid_class, retention
from heatmap.aggregator.pid_class import HOUR_MS, ClassRule
from heatmap.aggregator.retention import RetentionPolicy
from heatmap.aggregator.store_db import StoreDB

NOW_HOUR = 1_795_003_200_000  # 2026-11-18 12:00 UTC
NOW = NOW_HOUR + 20 * 60_000
RULE = ClassRule()
POLICY = RetentionPolicy(retention_hours=4.0, aggregate_after_s=300, rule=RULE, k=3)
SPAN = int(RULE.min_span_s * 1000)


@dataclass(frozen=True)
class Row:
    t: int
    node: str
    pid: str
    rssi: int
    band: str


def _strong(r: Row) -> bool:
    return r.rssi >= (RULE.ble_min_rssi_dbm if r.band == "ble" else RULE.wifi_min_rssi_dbm)


def model_rule(rows: list[Row], hr: int) -> dict[str, str]:
    out = {}
    for pid in {r.pid for r in rows if hr <= r.t < hr + HOUR_MS}:
        ts = [
            r.t
            for r in rows
            if r.pid == pid and hr - SPAN <= r.t < hr + HOUR_MS + SPAN and _strong(r)
        ]
        out[pid] = "visitor" if ts and max(ts) - min(ts) >= SPAN else "passerby"
    return out


def model_classes(rows: list[Row], hr: int, stored: dict[tuple[int, str], str]) -> dict[str, str]:
    return {p: stored.get((hr, p), c) for p, c in model_rule(rows, hr).items()}


def model(
    rows: list[Row],
    ever: list[Row],
    stored: dict[tuple[int, str], str],
    aggregated: set[int],
    purged: dict[int, int],
    late: dict[int, int],
    now: int,
    aggregate: bool,
) -> tuple[list[Row], dict[tuple[int, str], str], set[int]]:
    """The retention rule, step by step, on plain lists: ``rows`` in the database,
    ``ever`` stored (each batch lies within one hour), ``late``: hour → when its last
    obs batch arrived. Returns the rows, classes and aggregated hours left."""
    horizon = now - int(POLICY.retention_hours * HOUR_MS)
    batch_hours = {pid_class.hour_of(r.t) for r in ever if r.t >= horizon}
    rows = [r for r in rows if r.t >= horizon]
    stored = {k: v for k, v in stored.items() if k[0] + HOUR_MS > horizon}
    grace = int(POLICY.aggregate_after_s * 1000)
    if aggregate:
        for hr in sorted(batch_hours):
            if hr + HOUR_MS > horizon and hr + HOUR_MS + grace <= now and hr not in aggregated:
                for p, c in model_classes(rows, hr, stored).items():
                    stored.setdefault((hr, p), c)
                aggregated = aggregated | {hr}
    for hr in sorted(batch_hours):
        if hr + HOUR_MS <= horizon or hr + HOUR_MS > now or hr not in aggregated:
            continue
        if hr in purged and late.get(hr, 0) <= purged[hr]:
            continue
        cl = model_classes(rows, hr, stored)
        gone = {p for p, c in cl.items() if c == "passerby"}
        rows = [r for r in rows if not (hr <= r.t < hr + HOUR_MS and r.pid in gone)]
        stored = {k: v for k, v in stored.items() if not (k[0] == hr and k[1] in gone)}
        for p, c in cl.items():
            if c == "visitor":
                stored.setdefault((hr, p), c)
    return rows, stored, aggregated


def visit(rng: random.Random, pid: str, start: int, kind: str) -> list[Row]:
    """Rows of one device: a dwell, a walk past, a weak signal, Wi-Fi probes."""
    node = rng.choice(["n1", "n2", "n3"])
    if kind == "dwell":
        dur, rssi, band = rng.randint(70, 900), (-75, -45), "ble"
    elif kind == "walk":
        dur, rssi, band = rng.randint(5, 50), (-78, -50), "ble"
    elif kind == "weak":
        dur, rssi, band = rng.randint(60, 900), (-95, -81), "ble"
    else:  # wifi probes: strong or not by the Wi-Fi threshold
        dur, rssi, band = rng.randint(30, 600), (-80, -60), rng.choice(["wifi24", "wifi5"])
    n = rng.randint(2, 12)
    ts = sorted(start + rng.randint(0, dur * 1000) for _ in range(n))
    return [Row(t, node, pid, rng.randint(*rssi), band) for t in ts]


def make_store(rng: random.Random) -> list[Row]:
    rows: list[Row] = []
    for h in range(-7, 1):
        hr = NOW_HOUR + h * HOUR_MS
        for i in range(rng.randint(8, 16)):
            pid = f"{(h + 10) * 1000 + i:016x}"
            kind = rng.choice(["dwell", "walk", "weak", "wifi"])
            start = hr + rng.randint(0, HOUR_MS - 1000)
            if i == 0:  # a visit across the hour boundary: 10:59:30 → 11:01
                start, kind = hr + HOUR_MS - 30_000, "dwell"
            rows += [r for r in visit(rng, pid, start, kind) if r.t < NOW]
    return sorted(rows, key=lambda r: r.t)


def store_rows(db: StoreDB, rows: list[Row], received_ms: int, first_seq: int = 0) -> None:
    """Store ``rows`` as obs batches of ≤ 40 rows per node and hour."""
    seq = first_seq
    for node, hr in sorted({(r.node, pid_class.hour_of(r.t)) for r in rows}):
        mine = [r for r in rows if r.node == node and pid_class.hour_of(r.t) == hr]
        for i in range(0, len(mine), 40):
            chunk = mine[i : i + 40]
            t0 = chunk[0].t
            p = {
                "v": 1,
                "node": node,
                "seq": seq,
                "t0": t0,
                "obs": [[r.t - t0, r.pid, r.rssi, r.band, 0] for r in chunk],
            }
            db.add_obs(node, p, received_ms)
            seq += 1
    db.commit()


def db_rows(conn: sqlite3.Connection) -> list[Row]:
    return sorted(
        (Row(*r) for r in conn.execute("SELECT t_ms, node, pid, rssi, band FROM obs")),
        key=lambda r: (r.t, r.pid, r.node, r.rssi),
    )


def db_classes(conn: sqlite3.Connection) -> dict[tuple[int, str], str]:
    return {(h, p): c for h, p, c in conn.execute("SELECT hour_ms, pid, class FROM pid_class")}


def _sorted(rows: list[Row]) -> list[Row]:
    return sorted(rows, key=lambda r: (r.t, r.pid, r.node, r.rssi))


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
@pytest.mark.parametrize("aggregate", [False, True])
def test_deletes_exactly_what_is_due(tmp_path: Path, seed: int, aggregate: bool) -> None:
    rng = random.Random(seed)
    rows = make_store(rng)
    db = StoreDB(tmp_path / "s.db")
    store_rows(db, rows, received_ms=NOW)  # not before the rows: rows also age by arrival
    conn = db.conn
    conn.execute("INSERT INTO door_events VALUES (?, 'main', 1)", (NOW_HOUR - 5 * HOUR_MS,))
    # analytics aggregated some hours (one report over two hours) and classified some
    # pseudonyms against the rule's verdict
    aggregated = {NOW_HOUR - 6 * HOUR_MS, NOW_HOUR - 3 * HOUR_MS, NOW_HOUR - 2 * HOUR_MS}
    for a, b in [(-6, -5), (-3, -1)]:
        t0, t1 = NOW_HOUR + a * HOUR_MS, NOW_HOUR + b * HOUR_MS
        hour_aggregates.put_aggregate(
            conn, "footfall", hour_aggregates.period(t0, t1), "store", t0, t1, {"v": 1}
        )
    stored: dict[tuple[int, str], str] = {}
    for hr in sorted(aggregated):
        rule = model_rule(rows, hr)
        for pid, c in list(rule.items())[:3]:
            stored[(hr, pid)] = "visitor" if c == "passerby" else "passerby"
    for (hr, pid), c in stored.items():
        pid_class.write_classes(conn, hr, {pid: c}, "analytics")  # type: ignore[dict-item]
    db.commit()

    want_rows, want_classes, want_agg = model(
        rows, rows, stored, aggregated, {}, {}, NOW, aggregate
    )
    rep = retention.run(conn, NOW, POLICY, aggregate=aggregate)

    assert db_rows(conn) == _sorted(want_rows)
    assert db_classes(conn) == want_classes
    assert len(want_rows) < len(rows)  # something was due …
    assert {r.pid for r in want_rows} & {r.pid for r in rows if r.t < NOW_HOUR}  # … not all
    horizon = POLICY.horizon_ms(NOW)
    assert rep.expired_obs == sum(1 for r in rows if r.t < horizon)
    assert rep.expired_obs + rep.passerby_obs == len(rows) - len(want_rows)
    assert {h for h in want_agg if hour_aggregates.aggregated(conn, h)} == want_agg
    if aggregate:
        assert rep.hours_aggregated and set(rep.hours_aggregated) == want_agg - aggregated
        for hr in rep.hours_aggregated:
            payload = json.loads(
                conn.execute(
                    "SELECT payload FROM aggregates WHERE kind='presence' AND t0_ms=?", (hr,)
                ).fetchone()[0]
            )
            for key in ("visitor_devices", "passerby_devices"):
                assert payload[key] is None or payload[key] == 0 or payload[key] >= POLICY.k
    else:
        assert rep.hours_aggregated == []
    # kept: door events, aggregates; nothing at all newer than the last complete hour
    assert conn.execute("SELECT COUNT(*) FROM door_events").fetchone()[0] == 1
    current = [r for r in rows if r.t >= NOW_HOUR]
    assert [r for r in db_rows(conn) if r.t >= NOW_HOUR] == _sorted(current)
    # a second run finds nothing more to do
    again = retention.run(conn, NOW, POLICY, aggregate=aggregate)
    assert (again.passerby_obs, again.expired_obs, again.hours_purged) == (0, 0, [])
    assert db_rows(conn) == _sorted(want_rows)
    db.close()


def test_late_batches_into_purged_hours_are_purged_on_the_next_run(tmp_path: Path) -> None:
    rng = random.Random(9)
    rows = make_store(rng)
    db = StoreDB(tmp_path / "s.db")
    store_rows(db, rows, received_ms=NOW - HOUR_MS)
    first = retention.run(db.conn, NOW, POLICY)
    purged = {hr: NOW for hr in first.hours_purged}
    assert purged
    rows_after, classes_after, agg = model(rows, rows, {}, set(), {}, {}, NOW, True)
    assert db_rows(db.conn) == _sorted(rows_after)
    # a node comes back and replays an hour that was already aggregated and purged:
    # a visitor's further rows and a stranger walking past
    hr = max(purged)
    kept_visitor = next(p for (h, p), c in classes_after.items() if h == hr and c == "visitor")
    late_rows = [
        Row(hr + 1000, "n9", kept_visitor, -60, "ble"),
        Row(hr + 2000, "n9", "feedfacecafebeef", -55, "ble"),
        Row(hr + 9000, "n9", "feedfacecafebeef", -57, "ble"),
    ]
    later = NOW + 30 * 60_000
    store_rows(db, late_rows, received_ms=NOW + 60_000, first_seq=10_000)
    want, _, _ = model(
        rows_after + late_rows,
        rows + late_rows,
        classes_after,
        agg,
        purged,
        {hr: NOW + 60_000},
        later,
        True,
    )
    rep = retention.run(db.conn, later, POLICY)
    assert rep.hours_purged == [hr]
    assert rep.passerby_obs == 2  # the stranger's two rows; the visitor's stays
    assert db_rows(db.conn) == _sorted(want)
    db.close()


def test_dry_run_reports_exactly_and_changes_nothing(tmp_path: Path) -> None:
    rows = make_store(random.Random(5))
    db = StoreDB(tmp_path / "s.db")
    store_rows(db, rows, received_ms=NOW - HOUR_MS)
    dry = retention.run(db.conn, NOW, POLICY, dry_run=True)
    assert db_rows(db.conn) == _sorted(rows)
    assert db.conn.execute("SELECT COUNT(*) FROM aggregates").fetchone()[0] == 0
    real = retention.run(db.conn, NOW, POLICY)
    assert dry == real and real.passerby_obs > 0 and real.expired_obs > 0
    db.close()


def test_the_rule_on_small_cases(tmp_path: Path) -> None:
    db = StoreDB(tmp_path / "s.db")
    hr = NOW_HOUR - 2 * HOUR_MS
    rows = [
        # strong over 61 s: visitor
        Row(hr + 10_000, "n1", "a" * 16, -70, "ble"),
        Row(hr + 71_000, "n1", "a" * 16, -80, "ble"),
        # strong over exactly 60 s: visitor
        Row(hr + 20_000, "n3", "9" * 16, -70, "ble"),
        Row(hr + 80_000, "n3", "9" * 16, -70, "ble"),
        # strong over 59 s: passerby
        Row(hr + 10_000, "n1", "b" * 16, -70, "ble"),
        Row(hr + 69_000, "n1", "b" * 16, -60, "ble"),
        # long but weak: passerby; Wi-Fi at -75 is weak, BLE at -75 is strong
        Row(hr + 10_000, "n1", "c" * 16, -81, "ble"),
        Row(hr + 900_000, "n1", "c" * 16, -81, "ble"),
        Row(hr + 10_000, "n2", "d" * 16, -75, "wifi5"),
        Row(hr + 900_000, "n2", "d" * 16, -75, "wifi5"),
        # 20 s before the hour and 45 s into it: a visitor of this hour
        Row(hr - 20_000, "n1", "e" * 16, -60, "ble"),
        Row(hr + 45_000, "n1", "e" * 16, -60, "ble"),
        # strong only outside the hour's window: not of this hour at all
        Row(hr - 30 * 60_000, "n1", "f" * 16, -60, "ble"),
    ]
    store_rows(db, rows, received_ms=NOW)
    assert pid_class.classify_hour(db.conn, hr) == {
        "a" * 16: "visitor",
        "9" * 16: "visitor",
        "b" * 16: "passerby",
        "c" * 16: "passerby",
        "d" * 16: "passerby",
        "e" * 16: "visitor",
    }
    assert pid_class.classify_hour(db.conn, hr - HOUR_MS) == {
        "e" * 16: "visitor",
        "f" * 16: "passerby",
    }
    pid_class.write_classes(db.conn, hr, {"c" * 16: "visitor"}, "analytics")
    assert pid_class.classify_hour(db.conn, hr)["c" * 16] == "visitor"  # analytics wins
    with pytest.raises(ValueError):
        pid_class.write_classes(db.conn, hr + 1, {"a" * 16: "visitor"}, "analytics")
    with pytest.raises(ValueError):
        pid_class.write_classes(db.conn, hr, {"a" * 16: "shopper"}, "analytics")  # type: ignore[dict-item]
    db.close()


def test_hour_aggregate_is_k_anonymous(tmp_path: Path) -> None:
    db = StoreDB(tmp_path / "s.db")
    hr = NOW_HOUR - 2 * HOUR_MS
    rows = [Row(hr + i * 1000, "n1", f"{i:016x}", -90, "ble") for i in range(4)]  # 4 passersby
    rows += [Row(hr + s * 1000, "n1", "a" * 16, -60, "ble") for s in (0, 100)]  # 1 visitor
    store_rows(db, rows, received_ms=NOW)
    for t in range(6):
        db.conn.execute("INSERT INTO door_events VALUES (?, 'main', 1)", (hr + t,))
    agg = hour_aggregates.aggregate_hour(db.conn, hr, k=5)
    p = agg.payload
    assert p["visitor_devices"] is None and p["passerby_devices"] is None  # 1 and 4 < k
    assert p["door_in"] == 6 and p["door_out"] == 0 and p["observations"] == 6
    assert p["classes_from"] == ["rule"]
    assert hour_aggregates.aggregated(db.conn, hr) and not hour_aggregates.aggregated(
        db.conn, hr + HOUR_MS
    )
    db.close()


def test_footfall_db_retention_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from datetime import UTC, datetime

    from sensing.cli.main import main as footfall

    rows = make_store(random.Random(7))
    db = StoreDB(tmp_path / "s.db")
    store_rows(db, rows, received_ms=NOW - HOUR_MS)
    want = retention.run(db.conn, NOW, POLICY, dry_run=True)
    db.close()
    now = datetime.fromtimestamp(NOW / 1000, UTC).isoformat()
    args = ["db", "retention", "--db", str(tmp_path / "s.db"), "--now", now]
    args += ["--retention-hours", "4"]
    assert footfall([*args, "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "retention due" in out
    assert f"passersby's observations deleted: {want.passerby_obs:,}" in out
    assert f"observations past the horizon deleted: {want.expired_obs:,}" in out
    assert footfall(args) == 0
    assert "retention done" in capsys.readouterr().out
    assert footfall([*args, "--dry-run"]) == 0
    assert "passersby's observations deleted: 0" in capsys.readouterr().out
    assert footfall([*args[:-2], "--retention-hours", "100"]) == 1
    assert "--retention-hours" in capsys.readouterr().err
