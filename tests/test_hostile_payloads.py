"""Issue 23, the aggregator's input path: hostile payloads are rejected and counted by
reason, acknowledged, never fatal; the status keeps validating and being published;
times are sanity-checked at ingest and rows age by arrival whatever their times say;
``bench/hostile.py`` runs clean."""

from __future__ import annotations

import json
import math
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from firmware_bridge.errors import PayloadError
from heatmap.aggregator import retention, store_db
from heatmap.aggregator.broker import RunningBroker
from heatmap.aggregator.ingest import Ingestor
from heatmap.aggregator.ingest_stats import (
    MAX_CLOCK_SKEW_MS,
    REJECT_REASONS,
    IngestStats,
)
from heatmap.aggregator.ingest_writer import IngestWriter
from heatmap.aggregator.retention import RetentionPolicy
from heatmap.aggregator.status import StatusInputs, status_payload
from heatmap.aggregator.store_db import StoreDB
from sensing.wire import payloads, topics

from ingest_fixtures import (
    ROOT,
    T0,
    door,
    obs,
    obs_payload,
    publisher,
    start_aggregator,
    wait_until,
    write_config,
)

STORE = "hostile"
DEEP = b"[" * 10_000 + b"]" * 10_000
MAX_T = 2**53 - 1


def writer(tmp_path: Path, now_ms: int = T0 + 60_000) -> IngestWriter:
    return IngestWriter(STORE, str(tmp_path / "s.db"), clock=lambda: now_ms / 1000)


# ---------------------------------------------------------------- case 1: parser and validator


@pytest.mark.parametrize("kind", sorted(payloads.SCHEMA_FILES))
@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (DEEP, "too_deep"),
        (b'{"v":1,"a":' + b"[" * 900 + b"]" * 900 + b"}", "too_deep"),
        (b'{"v":1,"a":' + b'{"b":' * 5000 + b"1" + b"}" * 5000 + b"}", "too_deep"),
        (b'{"v":1,"seq":' + b"9" * 5_000 + b"}", "not_json"),
        (b'{"v":1,"seq":1' + b"0" * 400 + b".5}", "not_json"),
        (b'{"v":1,"seq":NaN}', "not_json"),
        (b'{"v":1,"seq":-Infinity}', "not_json"),
        (b'{"v":1,"t0":1e999}', "not_json"),
    ],
    ids=["deep", "deep900", "deep_obj", "digits", "float_range", "nan", "inf", "1e999"],
)
def test_hostile_json_is_a_payload_error_with_reason(kind: str, raw: bytes, reason: str) -> None:
    with pytest.raises(PayloadError) as e:
        payloads.decode(kind, raw)
    if kind in payloads.FAST_CHECKS and reason == "too_deep" and raw != DEEP:
        # a fast check refuses the unknown key "a" before any depth matters
        assert e.value.reason in ("too_deep", "schema")
    else:
        assert e.value.reason == reason


def test_deep_nesting_in_a_thread_with_little_stack_left_is_a_reject(tmp_path: Path) -> None:
    """The validator thread may call decode with frames already on its stack."""
    w = writer(tmp_path)

    def nest(n: int) -> str | object:
        if n:
            return nest(n - 1)
        return w.validate(topics.obs_topic(STORE, "n1"), DEEP)

    assert nest(900) == "too_deep"


def test_any_decoder_failure_is_counted_never_raised(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A failure the decoder does not name (a bug) is an ``undecodable`` reject."""
    w = writer(tmp_path)

    def boom(kind: str, raw: bytes) -> Any:
        raise MemoryError("simulated")

    monkeypatch.setattr(payloads, "decode_with_text", boom)
    w.handle(topics.obs_topic(STORE, "n1"), obs(0))
    assert w.rejects == {"undecodable": 1}
    monkeypatch.undo()
    w.handle(topics.obs_topic(STORE, "n1"), obs(0))
    w.commit()
    assert w.stats.stored == 1
    assert w.db.rejects() == {"undecodable": 1}


def test_deep_payload_through_mosquitto_is_acked_and_ingest_goes_on(
    mosquitto: RunningBroker, tmp_path: Path
) -> None:
    """Case 1 as found: a nested payload on obs, and retained on a node status topic.
    Both are rejected, counted, acknowledged (a new session gets neither again), and
    the batches after them are stored."""
    store = "hostile1"
    db = str(tmp_path / "s.db")
    o = topics.obs_topic(store, "n1")
    st = topics.node_status_topic(store, "n1")
    ing = Ingestor(store, db, mosquitto.address, "test-hostile-1")
    ing.start()
    with publisher(mosquitto.address, "test-hostile-pub1") as pub:
        pub.publish(st, DEEP, retain=True)
        pub.publish(o, DEEP)
        pub.publish(o, obs(0))
        pub.drain()
    wait_until(lambda: ing.stats.committed_messages >= 3, what="3 messages handled")
    ing.stop()
    assert ing.error is None
    assert dict(ing.rejects) == {"too_deep": 2}
    # a new session of the same client id: nothing redelivered, the retained one again
    ing2 = Ingestor(store, db, mosquitto.address, "test-hostile-1")
    ing2.start()
    with publisher(mosquitto.address, "test-hostile-pub1") as pub:
        pub.publish(o, obs(1))
        pub.publish(st, b"", retain=True)  # clear the retained message
        pub.drain()
    wait_until(lambda: ing2.stats.stored >= 1, what="the next batch stored")
    time.sleep(0.5)
    ing2.stop()
    assert ing2.error is None
    assert ing2.stats.duplicates == 0
    conn = sqlite3.connect(db)
    assert conn.execute("SELECT COUNT(*) FROM obs").fetchone()[0] == 20


# ---------------------------------------------------------------- case 3: status keeps validating


def _status(rejects: dict[str, int]) -> dict[str, Any]:
    s = IngestStats(messages=sum(rejects.values()))
    return status_payload(
        StatusInputs(
            now_ms=T0,
            version="0.0.0",
            uptime_s=1.0,
            stats=s,
            previous=IngestStats(),
            window_s=1.0,
            rejects=rejects,
            nodes={},
            queue_depth=0,
            db_bytes=0,
            wal_bytes=0,
            schema_version=store_db.SCHEMA_VERSION,
            retention_hours=24.0,
            retention=None,
            retention_ran_ms=None,
        )
    )


def test_status_validates_with_every_reject_reason() -> None:
    payloads.validate("aggregator_status", _status(dict.fromkeys(REJECT_REASONS, 3)))
    for r in REJECT_REASONS:
        payloads.validate("aggregator_status", _status({r: 1}))


def test_a_non_utf8_payload_leaves_a_valid_status(tmp_path: Path) -> None:
    w = writer(tmp_path)
    for topic in (topics.obs_topic(STORE, "n1"), topics.door_topic(STORE, "d")):
        w.handle(topic, b"\xff\xfe\xc3\x28")
    snap = w.snapshot()
    assert snap.rejects == {"not_utf8": 2}
    payloads.validate("aggregator_status", _status(snap.rejects))


def test_status_schema_refuses_nan_and_integral_floats() -> None:
    """Case 9: NaN passed the status schema; 1.0 passed as an integer."""
    good = _status({"schema": 1})
    payloads.validate("aggregator_status", good)
    for path, bad in [
        (("uptime_s",), math.nan),
        (("uptime_s",), math.inf),
        (("ingest", "messages_per_s"), math.nan),
        (("ingest", "messages"), 1.0),
        (("ingest", "queue_depth"), True),
        (("t",), float(T0)),
        (("v",), 1.0),
    ]:
        p = json.loads(json.dumps(good))
        d = p
        for k in path[:-1]:
            d = d[k]
        d[path[-1]] = bad
        with pytest.raises(PayloadError):
            payloads.validate("aggregator_status", p)


def test_patterns_end_at_the_end_of_the_string() -> None:
    """Case 9: "n1\\n" matched ``^...$`` (Python's $ matches before a final newline)."""
    p = obs_payload(0)
    p["node"] = "n1\n"
    with pytest.raises(PayloadError):
        payloads.validate("obs", p)
    with pytest.raises(PayloadError):
        payloads.check_obs(p)
    s = _status({"schema": 1})
    s["nodes"] = {"n1\n": {"state": "never_seen"}}
    with pytest.raises(PayloadError):
        payloads.validate("aggregator_status", s)


# ---------------------------------------------------------------- case 5: times


@pytest.mark.parametrize(
    ("t0", "reason"),
    [
        (MAX_T - 3_600_000, "time_future"),
        (T0 + 60_000 + MAX_CLOCK_SKEW_MS + 1, "time_future"),
        (0, "time_past"),
        (1_000_000_000_000, "time_past"),  # 2001
    ],
)
def test_batches_with_insane_times_are_rejected_and_counted(
    tmp_path: Path, t0: int, reason: str
) -> None:
    w = writer(tmp_path)
    w.handle(topics.obs_topic(STORE, "n1"), obs(0, t0=t0))
    w.handle(topics.door_topic(STORE, "d"), door(0, t0=t0))
    w.commit()
    assert w.rejects == {reason: 2}
    assert w.db.rejects() == {reason: 2}
    assert w.db.count("obs") == 0


def test_rows_within_the_skew_allowance_are_stored(tmp_path: Path) -> None:
    now = T0 + 60_000
    w = writer(tmp_path, now)
    t0 = now + MAX_CLOCK_SKEW_MS - 900  # newest row exactly at the allowance
    w.handle(topics.obs_topic(STORE, "n1"), obs(0, t0=t0))
    w.commit()
    assert (w.rejects, w.stats.stored) == ({}, 1)


def test_retention_deletes_by_arrival_whatever_the_timestamps_say(tmp_path: Path) -> None:
    """Rows stored (before ingest checked times) with t0 = 2^53 - 1 - 1 h are deleted
    once they arrived longer than retention_hours ago; rows that arrived in time stay."""
    db = StoreDB(tmp_path / "s.db")
    day = 24 * 3_600_000
    now = T0 + 2 * day
    db.add_obs("n1", obs_payload(0, t0=MAX_T - 3_600_000), received_ms=now - day - 1)
    db.add_obs("n1", obs_payload(1, t0=now - 10_000), received_ms=now - 1_000)
    db.add_obs("n2", obs_payload(2, t0=MAX_T - 3_600_000), received_ms=now - 1_000)
    db.add_door("d", {"v": 1, "seq": 0, "t0": MAX_T - 10, "ev": [[0, 1]]}, now - day - 1)
    db.commit()
    rep = retention.run(db.conn, now, RetentionPolicy(retention_hours=24))
    assert rep.expired_obs == 10
    left = db.conn.execute("SELECT node, COUNT(*) FROM obs GROUP BY node ORDER BY node")
    assert left.fetchall() == [("n1", 10), ("n2", 10)]
    seqs = db.conn.execute("SELECT kind, publisher, seq FROM batches ORDER BY publisher, seq")
    assert seqs.fetchall() == [("obs", "n1", 1), ("obs", "n2", 2)]
    db.close()


def test_db_stats_on_a_database_with_times_beyond_the_calendar(tmp_path: Path) -> None:
    db = StoreDB(tmp_path / "s.db")
    db.add_obs("n1", obs_payload(0, t0=MAX_T - 3_600_000), received_ms=T0)
    db.commit()
    db.close()
    r = subprocess.run(
        [sys.executable, "-m", "sensing.cli.main", "db", "stats", "--db", str(tmp_path / "s.db")],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    assert r.returncode == 0, r.stderr
    assert "Traceback" not in r.stderr
    assert f"{MAX_T - 3_600_000} ms" in r.stdout


# ---------------------------------------------------------------- the bench, small


def test_hostile_bench_small_run_has_no_crash_and_counts_every_reject(tmp_path: Path) -> None:
    out = tmp_path / "hostile.json"
    r = subprocess.run(
        [
            sys.executable,
            str(ROOT / "bench" / "hostile.py"),
            "--count",
            "3000",
            "--seed",
            "7",
            "--db",
            str(tmp_path / "h.db"),
            "--json",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    res = json.loads(out.read_text())
    assert res["payloads"] == 3000
    assert res["crashes"] == 0
    assert res["accepted"] + sum(res["rejects"].values()) == 3000
    assert set(res["rejects"]) <= set(REJECT_REASONS)
    assert res["rejects"].get("undecodable", 0) == 0
    assert res["db_rejects"] == res["rejects"]
    assert res["status_valid"]
    for reason in ("too_deep", "not_utf8", "not_json", "schema", "time_future", "time_past"):
        assert res["rejects"].get(reason, 0) > 0, reason


def test_an_outbound_kind_is_rejected_before_its_payload_is_decoded(tmp_path: Path) -> None:
    w = writer(tmp_path)
    for topic in (topics.aggregator_status_topic(STORE), f"footfall/v1/{STORE}/occupancy"):
        w.handle(topic, DEEP)
        w.handle(topic, obs(0))
    assert w.rejects == {"unexpected_kind": 4}


@pytest.mark.slow
def test_the_aggregator_daemon_survives_hostile_payloads_and_keeps_publishing_status(
    mosquitto: RunningBroker, tmp_path: Path, recorder_factory: Any
) -> None:
    """Cases 1 and 3 end to end: the daemon under systemd's restart policy crash-looped
    on a nested payload and froze its status on a non-UTF-8 one. Now each is a counted
    reject, the status keeps coming (and validates), and the next batch is stored."""
    store = "hostile2"
    cfg = write_config(tmp_path / "store.toml", store, mosquitto.address)
    rec = recorder_factory(mosquitto.address, topics.aggregator_status_topic(store))

    def last() -> dict[str, Any]:
        with rec.lock:
            return json.loads(rec.messages[-1][1]) if rec.messages else {}

    proc = start_aggregator(cfg, tmp_path / "agg.log")
    o = topics.obs_topic(store, "n1")
    st = topics.node_status_topic(store, "n1")
    try:
        wait_until(lambda: last().get("state") == "online", what="status online")
        now = int(time.time() * 1000)
        with publisher(mosquitto.address, "test-hostile-pub2") as pub:
            pub.publish(st, DEEP, retain=True)
            pub.publish(o, DEEP)
            pub.publish(o, b"\xff\xfe\xc3\x28")
            pub.publish(o, b'{"v":1,"node":"n1","seq":NaN,"t0":1,"obs":[]}')
            pub.publish(o, obs(0, t0=MAX_T - 3_600_000))
            pub.publish(o, obs(1, t0=now))
            pub.drain()
        want = {"too_deep": 2, "not_utf8": 1, "not_json": 1, "time_future": 1}
        wait_until(lambda: last().get("rejects") == want, what=f"status rejects {want}")
        t_seen = last()["t"]
        wait_until(lambda: last().get("t", 0) > t_seen, what="the next status")
        payloads.validate("aggregator_status", last())
        assert last()["state"] == "online" and last()["ingest"]["batches"] == 1
        assert proc.poll() is None
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        with publisher(mosquitto.address, "test-hostile-pub2") as pub:
            pub.publish(st, b"", retain=True)  # the retained nested payload goes
            pub.drain()
