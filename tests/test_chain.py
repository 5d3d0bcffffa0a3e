"""The chain's centre (issue 18): stores' aggregates from a central Mosquitto into chDB.

Real parts throughout: a Mosquitto on loopback (MQTT 5, shared subscriptions), the
``footfall chain run`` command as a process (two consumers in one shared group),
chDB on a directory, and the ``footfall chain report`` command on what it wrote. The
stores' messages are those of :mod:`heatmap.chain.simulated_stores`, published as the
stores' bridges would (QoS 1, retained) under many store ids.
"""

from __future__ import annotations

import csv
import doctest
import importlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import date, datetime, timedelta
from pathlib import Path
from random import Random
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from heatmap.aggregator.broker import free_port
from heatmap.aggregator.hour_aggregates import period
from heatmap.aggregator.publish import bi_payloads
from heatmap.chain.aggregate_rows import parse_period
from heatmap.chain.clickhouse_store import ChainStore, ChdbBackend
from heatmap.chain.consumer import row_of
from heatmap.chain.simulated_stores import StoreDay, footfall_payload, store_day
from sensing.runtime.mqtt_link import Publisher, connect, make_client
from sensing.wire import payloads, topics

from broker_fixtures import Broker, plain_broker, wait_for

CLI = (sys.executable, "-m", "sensing.cli.main")
MONDAY = date(2026, 11, 16)
"""first day of ISO week 2026-W47"""


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Broker]:
    b = plain_broker(tmp_path / "broker").start()
    yield b
    b.stop()


class ChainRun:
    """``footfall chain run`` as a process, its counters read from ``--stats``."""

    def __init__(self, broker: Broker, db: Path, work: Path, consumers: int = 2) -> None:
        self.stats_path = work / "stats.json"
        self.stats_path.unlink(missing_ok=True)
        self.err = work / f"chain-{time.monotonic_ns()}.err"
        argv = [
            *CLI,
            "chain",
            "run",
            "--broker",
            f"127.0.0.1:{broker.port}",
            "--db",
            str(db),
            "--consumers",
            str(consumers),
            "--log-every",
            "0.2",
            "--stats",
            str(self.stats_path),
        ]
        env = dict(os.environ, MPLBACKEND="Agg")
        self.proc = subprocess.Popen(argv, stderr=self.err.open("w"), env=env)
        wait_for(self.stats_path.exists, 30, "the consumer's first progress line")

    def stats(self) -> dict[str, Any]:
        try:
            s: dict[str, Any] = json.loads(self.stats_path.read_text())
        except (OSError, ValueError):
            return {"accepted_total": 0, "rejected_total": 0, "cleared": 0, "rejected": {}}
        return s

    def wait_handled(self, n: int, timeout_s: float = 40.0) -> dict[str, Any]:
        """Until ``n`` messages were written, rejected or counted as clears."""

        def done() -> bool:
            s = self.stats()
            return s["accepted_total"] + s["rejected_total"] + s["cleared"] >= n

        wait_for(done, timeout_s, f"{n} messages handled")
        return self.stats()

    def stop(self) -> str:
        self.proc.send_signal(signal.SIGTERM)
        assert self.proc.wait(30) == 0
        return self.log()

    def kill9(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def log(self) -> str:
        return self.err.read_text()


def publish(broker: Broker, messages: list[tuple[str, bytes]], retain: bool = True) -> None:
    """Publish as a store's bridge does: QoS 1, retained; wait for every PUBACK."""
    c = make_client(broker.address, f"bridge-{time.monotonic_ns()}", v5=True)
    connect(c, broker.address)
    pub = Publisher(c, max_pending=1000)
    for topic, payload in messages:
        assert pub.publish(topic, payload, retain=retain)
    pub.drain(30)
    c.disconnect()
    c.loop_stop()


def open_store(db: Path) -> ChainStore:
    return ChainStore(ChdbBackend(db))


def identities(days: list[StoreDay]) -> set[tuple[str, str, int]]:
    """(store, unit, period start in UTC) of every footfall message of ``days``."""
    out = set()
    for d in days:
        for topic, payload in d.messages:
            t = topics.parse(topic)
            if t.kind != "footfall" or not payload:
                continue
            p = payloads.decode("footfall", payload)
            a, _b = parse_period(p["period"])
            out.add((t.store, p["unit"], int(a.timestamp())))
    return out


def period_start(payload: bytes) -> int:
    """Unix seconds of the start of a footfall payload's period."""
    return int(parse_period(payloads.decode("footfall", payload)["period"])[0].timestamp())


def footfall_rows(store: ChainStore) -> dict[tuple[str, str, int], list[Any]]:
    rows = store.rows(
        "SELECT store, unit, toUnixTimestamp(period_start), final, visitors, passersby, level "
        "FROM footfall.footfall FINAL"
    )
    return {(r[0], r[1], int(r[2])): r[3:] for r in rows}


# ------------------------------------------------------------------ every aggregate once


@pytest.mark.slow
def test_every_aggregate_once_replaced_and_reported(broker: Broker, tmp_path: Path) -> None:
    """6 stores × 3 days through two consumers: every aggregate once; the same again and
    a changed hour: still once, the changed one replaced; the hour and the day in
    progress become the closed ones; the report's CSV has the published figures."""
    stores = [f"store-{i}" for i in range(6)]
    days = [store_day(s, MONDAY + timedelta(days=d)) for s in stores for d in range(3)]
    first = [m for d in days for m in d.messages]
    run = ChainRun(broker, tmp_path / "db", tmp_path)

    # the day and an hour in progress of store-0's Wednesday, before they close
    wed = MONDAY + timedelta(days=2)
    open_day = store_day("store-0", wed)
    hour_msgs = [m for m in open_day.messages if m[0].endswith(f"/{wed}T11")]
    p_hour = payloads.decode("footfall", hour_msgs[0][1])
    p_hour.update(final=False, as_of=p_hour["as_of"] - 1_800_000, visitors=3 + p_hour["visitors"])
    day_topic = topics.build("footfall", "store-0", f"{wed}")
    p_day = payloads.decode("footfall", dict(open_day.messages)[day_topic])
    p_day.update(final=False, as_of=p_day["as_of"] - 3 * 3_600_000, visitors=1)
    p_day.update(suppressed=False)
    in_progress = [
        (topics.build("footfall", "store-0", "hour"), payloads.encode(p_hour)),
        (topics.build("footfall", "store-0", "today"), payloads.encode(p_day)),
    ]
    publish(broker, in_progress)
    run.wait_handled(2)
    bridges = [(f"footfall/bridge/{s}/state", b"1") for s in stores]
    first = bridges + first + [("footfall/bridge/store-4/state", b"0")]
    publish(broker, first)
    s1 = run.wait_handled(2 + len(first))
    assert s1["rejected_total"] == 0, s1["rejected"]

    # everything again (a bridge reconnecting, a store republishing), and late data
    # changing one closed hour's figures: published after the first one, same as_of
    changed_topic = topics.build("footfall", "store-3", f"{MONDAY}T15")
    p = payloads.decode("footfall", dict(days[9].messages)[changed_topic])
    assert not p["suppressed"]
    p["visitors"] += 7
    publish(broker, first)
    publish(broker, [(changed_topic, payloads.encode(p))])
    s2 = run.wait_handled(2 + 2 * len(first) + 1)
    assert s2["accepted_total"] == 2 + 2 * len(first) + 1 and s2["rejected_total"] == 0
    log = run.stop()
    assert "Traceback" not in log and "stopped;" in log

    store = open_store(tmp_path / "db")
    try:
        got = footfall_rows(store)
        want = identities(days)
        assert set(got) == want
        assert len(got) == 6 * 3 * 25
        counts = {t: store.count(t) for t in ("footfall", "zone_stats", "occupancy")}
        assert counts["footfall"].rows == len(want)
        assert counts["zone_stats"].rows == 6 * 3 * 6
        assert counts["occupancy"].rows == 6
        assert store.count("store_status").rows == 6
        assert store.rows(
            "SELECT store, connected FROM footfall.bridge_state FINAL ORDER BY store"
        ) == [[s, s != "store-4"] for s in stores]
        dupes = store.rows(
            "SELECT count() FROM (SELECT store, unit, period_start, count() AS n "
            "FROM footfall.footfall FINAL GROUP BY store, unit, period_start HAVING n > 1)"
        )
        assert dupes == [[0]]
        # every published hour's visitors as published (None: suppressed)
        for d in days:
            msgs = dict(d.messages)
            for hour, vis in d.hour_visitors.items():
                level = f"{d.day}T{hour:02d}"
                row = got[
                    (d.store, "hour", period_start(msgs[topics.build("footfall", d.store, level)]))
                ]
                want_vis = p["visitors"] if (d is days[9] and hour == 15) else vis
                assert row[1] == want_vis, (d.store, d.day, hour)
                assert row[0] is True
        # the in-progress hour and day were replaced by the closed ones
        a11 = int(parse_period(p_hour["period"])[0].timestamp())
        assert got[("store-0", "hour", a11)][0] is True
        assert got[("store-0", "hour", a11)][3] == f"{wed}T11"
        ad = int(parse_period(p_day["period"])[0].timestamp())
        assert got[("store-0", "day", ad)][:2] == [True, open_day.day_visitors]
    finally:
        store.close()

    # the chain report of the week: the published day figures, suppressed hours as such
    out = tmp_path / "report"
    db = str(tmp_path / "db")
    argv = [*CLI, "chain", "report", "--db", db, "--week", "2026-W47", "--out", str(out)]
    r = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "queries" in r.stdout
    with (out / "chain_week_days.csv").open() as f:
        rows = {(x["store"], x["day"]): x for x in csv.DictReader(f)}
    assert len(rows) == 6 * 7
    for d in days:
        x = rows[(d.store, d.day.isoformat())]
        assert (x["status"], int(x["visitors"])) == ("closed", d.day_visitors)
        assert int(x["passersby"]) == d.day_passersby
    assert rows[("store-1", f"{MONDAY + timedelta(days=5)}")]["status"] == "missing"
    with (out / "chain_week_stores.csv").open() as f:
        summary = {x["store"]: x for x in csv.DictReader(f)}
    for s in stores:
        mine = [d for d in days if d.store == s]
        assert int(summary[s]["visitors"]) == sum(d.day_visitors for d in mine)
        assert summary[s]["days_counted"] == "3"
    with (out / "chain_week_hours.csv").open() as f:
        hours = {(x["store"], int(x["hour"])): x for x in csv.DictReader(f)}
    night = hours[("store-2", 3)]
    assert (night["mean_visitors"], night["hours_counted"], night["hours_suppressed"]) == (
        "",
        "0",
        "3",
    )
    mine = [d.hour_visitors[12] for d in days if d.store == "store-2"]
    assert all(v is not None for v in mine)
    assert float(hours[("store-2", 12)]["mean_visitors"]) == pytest.approx(sum(mine) / 3, abs=0.01)
    png = out / "chain_week.png"
    assert png.stat().st_size > 20_000 and png.read_bytes()[:4] == b"\x89PNG"


# ------------------------------------------------------------------ bad input


def test_bad_messages_rejected_by_reason_and_nothing_written(
    broker: Broker, tmp_path: Path
) -> None:
    good = store_day("s1", MONDAY)
    by_topic = dict(good.messages)
    hour_topic = topics.build("footfall", "s1", f"{MONDAY}T10")
    p = payloads.decode("footfall", by_topic[hour_topic])
    zone_topic = topics.build("zone_stats", "s1", "fruit")
    z = payloads.decode("zone_stats", by_topic[zone_topic])
    bad = [
        ("footfall/v1/s.1/occupancy", by_topic[topics.build("occupancy", "s1")]),  # bad_topic
        ("footfall/v1/s1/node/n1/obs", b'{"v":1}'),  # unexpected_kind
        (hour_topic, b"{not json"),  # not_json
        (hour_topic, payloads.encode({**p, "visitors": -1})),  # schema
        (hour_topic, payloads.encode({**p, "extra": 1})),  # schema
        (topics.build("footfall", "s1", f"{MONDAY}T11"), by_topic[hour_topic]),  # period_mismatch
        (topics.build("footfall", "s1", "today"), by_topic[hour_topic]),  # period_mismatch
        (hour_topic, payloads.encode({**p, "period": p["period"].replace("T11:", "T12:")})),
        (topics.build("zone_stats", "s1", "bakery"), payloads.encode(z)),  # zone_mismatch
        (hour_topic, b"\xff\xfe"),  # not_utf8
        (hour_topic, b""),  # a store clearing an old period: counted, nothing deleted
        ("footfall/bridge/s1/state", b"yes"),  # bad_bridge_state
        ("footfall/bridge/s.1/state", b"1"),  # bad_topic
    ]
    run = ChainRun(broker, tmp_path / "db", tmp_path)
    publish(broker, bad)
    s = run.wait_handled(len(bad))
    assert s["rejected"] == {
        "bad_topic": 2,
        "unexpected_kind": 1,
        "not_json": 1,
        "schema": 2,
        "period_mismatch": 2,
        "bad_period": 1,
        "zone_mismatch": 1,
        "not_utf8": 1,
        "bad_bridge_state": 1,
    }
    assert s["cleared"] == 1 and s["accepted_total"] == 0
    log = run.stop()
    assert "Traceback" not in log
    assert "rejected (zone_mismatch)" in log and "rejected 12" in log
    store = open_store(tmp_path / "db")
    try:
        for t in ("footfall", "zone_stats", "occupancy", "store_status", "bridge_state"):
            assert store.count(t).stored == 0
    finally:
        store.close()


def test_row_identity_and_version() -> None:
    """The hour in progress and the closed hour share one identity; the closed one
    has the higher version even with the same as_of; a later arrival beats an earlier."""
    z = ZoneInfo("Europe/Amsterdam")
    a = datetime(2026, 11, 18, 10, tzinfo=z)
    b = datetime(2026, 11, 18, 11, tzinfo=z)
    end = int(b.timestamp() * 1000)
    live = footfall_payload(a, b, "hour", False, end, 40, 100, Random(1))
    closed = footfall_payload(a, b, "hour", True, end, 42, 100, Random(1))
    r_live = row_of("footfall/v1/s1/footfall/hour", payloads.encode(live), 2_000)
    r_closed = row_of("footfall/v1/s1/footfall/2026-11-18T10", payloads.encode(closed), 1_000)
    assert isinstance(r_live, tuple) and isinstance(r_closed, tuple)
    key = ("store", "unit", "period_start")
    assert [r_live[1][k] for k in key] == [r_closed[1][k] for k in key]
    assert int(r_closed[1]["ver"]) > int(r_live[1]["ver"])
    again = row_of("footfall/v1/s1/footfall/2026-11-18T10", payloads.encode(closed), 3_000)
    assert isinstance(again, tuple) and int(again[1]["ver"]) > int(r_closed[1]["ver"])


# ------------------------------------------------------------------ kill -9


@pytest.mark.slow
def test_consumer_killed_and_restarted_loses_nothing(broker: Broker, tmp_path: Path) -> None:
    """kill -9 while writing, more published while it is down, restarted with the same
    client ids: every aggregate in chDB, none twice (the unacknowledged ones came again).

    Published without retain here: Mosquitto sends a new shared subscription every
    retained message, which would bring back what a consumer lost; this test is about
    the sessions (a message acknowledged on receipt instead of after its INSERT is lost
    at the kill, and the test fails)."""
    first = [store_day(f"k{i}", MONDAY) for i in range(150)]
    later = [store_day(f"k{i}", MONDAY + timedelta(days=1)) for i in range(20)]
    msgs = [m for d in first for m in d.messages]
    run = ChainRun(broker, tmp_path / "db", tmp_path)
    publish(broker, msgs[:33], retain=False)
    run.wait_handled(33)
    c = make_client(broker.address, "bridge-kill", v5=True)
    connect(c, broker.address)
    pub = Publisher(c, max_pending=1000)
    for topic, payload in msgs[33:]:
        assert pub.publish(topic, payload)
    wait_for(lambda: run.stats()["accepted_total"] >= 600, 30, "600 written")
    run.kill9()
    at_kill = run.stats()["accepted_total"]
    assert at_kill < len(msgs), "the consumer was not killed while it was writing"
    pub.drain(30)
    c.disconnect()
    c.loop_stop()
    down = [m for d in later for m in d.messages]
    publish(broker, down, retain=False)  # queued in the stopped consumers' sessions
    run2 = ChainRun(broker, tmp_path / "db", tmp_path)
    # at least what was left and what came while down; redelivered ones come again
    s = run2.wait_handled(len(msgs) - at_kill + len(down), 60)
    time.sleep(1.0)  # anything still coming arrives too
    log = run2.stop()
    assert "Traceback" not in log and s["rejected_total"] == 0
    store = open_store(tmp_path / "db")
    try:
        got = footfall_rows(store)
        assert set(got) == identities(first + later)
        assert store.count("zone_stats").rows == (150 + 20) * 6
        assert store.count("occupancy").rows == 150
        for d in first + later:
            assert got[(d.store, "day", period_start(d.messages[24][1]))][1] == d.day_visitors
    finally:
        store.close()


# ------------------------------------------------------------------ the command line


def test_bad_command_lines_end_in_one_line(tmp_path: Path) -> None:
    """Each bad argument: exit 1 and one line ``footfall: error: ...``, no traceback."""
    a_file = tmp_path / "a-file"
    a_file.write_text("x")
    (tmp_path / "e").mkdir()
    db = str(tmp_path / "db")

    def run(name: str) -> list[str]:  # a directory each: one process owns a chDB directory
        return ["chain", "run", "--db", str(tmp_path / name), "--broker"]

    cases = {
        "broker": [*run("b"), "no-port"],
        "port": [*run("p"), "127.0.0.1:99999"],
        "nobody": [*run("n"), f"127.0.0.1:{free_port()}"],
        "consumers": [*run("c"), "127.0.0.1:1883", "--consumers", "0"],
        "group": [*run("g"), "127.0.0.1:1883", "--group", "a/b"],
        "ca": [*run("ca"), "127.0.0.1:1883", "--ca", str(tmp_path / "missing.crt")],
        "both": [*run("bo"), "127.0.0.1:1883", "--clickhouse", "http://localhost:1"],
        "week": ["chain", "report", "--db", db, "--week", "2026-47"],
        "stores": ["chain", "report", "--db", db, "--week", "2026-W47", "--stores", "a b"],
        "no-db": ["chain", "report", "--db", str(tmp_path / "none"), "--week", "2026-W47"],
        "db-file": ["chain", "run", "--db", str(a_file), "--broker", "127.0.0.1:1883"],
        "empty-db": ["chain", "report", "--db", str(tmp_path / "e"), "--week", "2026-W47"],
    }

    def one(argv: list[str]) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*CLI, *argv], capture_output=True, text=True, timeout=60)

    with ThreadPoolExecutor(2) as ex:
        results = dict(zip(cases, ex.map(one, cases.values()), strict=True))
    for name, r in results.items():
        lines = r.stderr.strip().splitlines()
        assert r.returncode == 1, (name, r.stderr)
        assert lines[-1].startswith("footfall: error: "), (name, r.stderr)
        assert "Traceback" not in r.stderr, (name, r.stderr)
    assert "cannot reach broker" in results["nobody"].stderr
    assert "no chain tables" in results["empty-db"].stderr


@pytest.mark.parametrize(
    "module", ["aggregate_rows", "consumer", "chain_report", "simulated_stores"]
)
def test_doctests(module: str) -> None:
    res = doctest.testmod(importlib.import_module(f"heatmap.chain.{module}"))
    assert res.attempted > 0 and res.failed == 0


def test_what_stores_publish_becomes_rows() -> None:
    """The schemas' examples and the store aggregator's own payload builders
    (heatmap/aggregator/publish/bi_payloads.py) are accepted as rows: the consumer and
    the publisher read the contract alike (topic levels, periods, DST's repeated hour)."""
    for kind in ("footfall", "zone_stats", "occupancy", "aggregator_status"):
        for ex in payloads.schema(kind)["examples"]:
            if kind == "footfall":
                a, _b = parse_period(ex["period"])
                entity: str | None = a.strftime("%Y-%m-%dT%H" if ex["unit"] == "hour" else "%F")
            else:
                entity = ex.get("zone")
            r = row_of(topics.build(kind, "s1", entity), payloads.encode(ex), 1)
            assert isinstance(r, tuple), (kind, r)
    tz = "Europe/Prague"
    second_two = 1_792_890_000_000  # 2026-10-25 01:00 UTC: the second 02:00 in Prague
    store = {"visitors": 12, "passersby": 40, "capture_rate": 0.23, "mean_dwell_s": 300.0}
    for t0, doors in ((second_two - 3_600_000, True), (second_two, False)):
        p = bi_payloads.footfall_payload(
            store,
            period=period(t0, t0 + 3_600_000, tz),
            unit="hour",
            final=True,
            as_of=t0 + 3_600_000,
            k=5,
            doors=doors,
        )
        level = bi_payloads.period_id(t0, "hour", tz)
        r = row_of(topics.build("footfall", "s1", level), payloads.encode(p), 1)
        assert isinstance(r, tuple), (level, r)
        assert r[1]["visitors"] == 12 and r[1]["local_hour"] == 2
        assert ("in" in r[1]["not_measured"]) is not doors
    z = ZoneInfo(tz)
    d0 = int(datetime(2026, 10, 25, tzinfo=z).timestamp() * 1000)
    d1 = int(datetime(2026, 10, 26, tzinfo=z).timestamp() * 1000)
    assert d1 - d0 == 25 * 3_600_000
    zp = bi_payloads.zone_payload(
        "fruit",
        "Fruit",
        {"visits": 9, "dwell_p50_s": 60.0, "dwell_p90_s": 200.0},
        period=period(d0, d1, tz),
        as_of=second_two,
        k=5,
        occupancy=None,
        occupancy_as_of=None,
    )
    r = row_of(topics.build("zone_stats", "s1", "fruit"), payloads.encode(zp), 1)
    assert isinstance(r, tuple) and r[1]["local_date"] == "2026-10-25", r


def test_retained_sweep_reads_what_was_published_before(broker: Broker, tmp_path: Path) -> None:
    """``--retained``'s sweep: the retained aggregates on the broker (published before any
    consumer subscribed) are written once each; a cleared period (zero-length retained)
    is no longer retained, so it is not there to be read."""
    from heatmap.chain.consumer import retained_sweep

    days = [store_day(f"r{i}", MONDAY) for i in range(4)]
    publish(broker, [m for d in days for m in d.messages])
    cleared = topics.build("footfall", "r0", f"{MONDAY}T03")
    publish(broker, [(cleared, b"")])
    store = open_store(tmp_path / "db")
    try:
        stats = retained_sweep(broker.address, store, quiet_s=0.5, timeout_s=30)
        assert sum(stats.accepted.values()) == 4 * 33 - 1 and not stats.rejected
        assert store.count("footfall").rows == 4 * 25 - 1
        assert store.count("zone_stats").rows == 4 * 6
        again = retained_sweep(broker.address, store, "r1", quiet_s=0.5, timeout_s=30)
        assert sum(again.accepted.values()) == 33
        assert store.count("footfall").rows == 4 * 25 - 1  # replaced, not added
    finally:
        store.close()


def test_the_docs_sql_runs(tmp_path: Path) -> None:
    """Every statement of docs/chain.md's SQL for BI runs on the chain's tables and
    returns rows (a store's day, its hours, a bridge down, the occupancy)."""
    doc = (Path(__file__).resolve().parents[1] / "docs" / "chain.md").read_text()
    block = doc.split("```sql\n", 1)[1].split("```", 1)[0]
    statements = [q.strip() for q in block.split(";") if q.strip()]
    assert len(statements) == 4
    store = open_store(tmp_path / "db")
    try:
        store.create_schema()
        rows: dict[str, list[dict[str, Any]]] = {}
        day = store_day("s1", MONDAY)
        for topic, payload in [*day.messages, ("footfall/bridge/s1/state", b"0")]:
            r = row_of(topic, payload, time.time_ns())
            assert isinstance(r, tuple)
            rows.setdefault(r[0], []).append(r[1])
        for table, rs in rows.items():
            store.insert(table, rs)
        for q in statements:
            assert store.rows(q), q
    finally:
        store.close()


@pytest.mark.slow
def test_sigterm_mid_stream_then_restart_loses_nothing(broker: Broker, tmp_path: Path) -> None:
    """SIGTERM while messages stream in: exit 0 after writing and acknowledging what it
    took; what came after stays in the sessions and the next start writes it."""
    days = [store_day(f"t{i}", MONDAY) for i in range(100)]
    msgs = [m for d in days for m in d.messages]
    run = ChainRun(broker, tmp_path / "db", tmp_path)
    publish(broker, msgs[:33], retain=False)  # the first INSERTs are the slow ones
    run.wait_handled(33)
    c = make_client(broker.address, "bridge-term", v5=True)
    connect(c, broker.address)
    pub = Publisher(c, max_pending=1000)

    def stream() -> None:  # about 1,000 a second: still streaming at the SIGTERM
        for i, (topic, payload) in enumerate(msgs[33:]):
            pub.publish(topic, payload)  # not retained: only the sessions bring it back
            if i % 50 == 49:
                time.sleep(0.05)

    streaming = threading.Thread(target=stream)
    streaming.start()
    wait_for(lambda: run.stats()["accepted_total"] >= 500, 30, "500 written")
    log = run.stop()
    stopped = run.stats()
    assert "stopped;" in log and "Traceback" not in log
    assert stopped["acked"] == stopped["received"] < len(msgs)
    streaming.join(30)
    assert pub.handed == len(msgs) - 33
    pub.drain(30)
    c.disconnect()
    c.loop_stop()
    run2 = ChainRun(broker, tmp_path / "db", tmp_path)
    run2.wait_handled(len(msgs) - stopped["accepted_total"], 60)
    time.sleep(0.5)
    run2.stop()
    store = open_store(tmp_path / "db")
    try:
        assert set(footfall_rows(store)) == identities(days)
        assert store.count("zone_stats").rows == 100 * 6
    finally:
        store.close()
