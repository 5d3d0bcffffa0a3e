"""Aggregator ingest against a real Mosquitto: bad payloads of every kind counted by
reason, never fatal; duplicates stored once; out-of-order and late batches stored."""

from __future__ import annotations

import json
import random
import sqlite3
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from heatmap.aggregator.broker import RunningBroker
from heatmap.aggregator.ingest import Ingestor
from heatmap.aggregator.ingest_stats import REJECT_REASONS
from sensing.runtime.mqtt_link import BrokerAddress
from sensing.wire import payloads, topics

from ingest_fixtures import T0, door, floor, obs, obs_payload, publisher, status, wait_until


def test_invalid_payloads_rejected_and_counted_valid_flow(
    mosquitto: RunningBroker, tmp_path: Path
) -> None:
    store = "ingest1"
    ing = Ingestor(store, str(tmp_path / "s.db"), mosquitto.address, "test-ingest-1")
    ing.start()
    obs_t = topics.obs_topic(store, "n1")
    bad = {
        "not_json": b"{{{",
        "not_utf8": b"\xff\xfe\xfd",
        "schema": json.dumps({"v": 1, "node": "n1", "seq": -1, "t0": 0, "obs": []}).encode(),
    }
    with publisher(mosquitto.address, "test-ingest-pub") as pub:
        pub.publish(obs_t, obs(0))
        for raw in bad.values():
            pub.publish(obs_t, raw)
        pub.publish(obs_t, obs(1, node="n2"))  # payload node differs from topic node
        pub.publish(f"footfall/v1/{store}/node/n1/bogus", obs(2))  # not subscribed: never seen
        door_t = topics.door_topic(store, "main")
        pub.publish(door_t, door(0, ev=[[0, 1], [10, 1], [20, -1]]))
        pub.publish(door_t, b'{"v":1,"seq":1,"t0":1795000000000,"ev":[[0,2]]}')
        pub.publish(obs_t, obs(3))
        pub.drain()
    wait_until(lambda: ing.stats.committed_messages >= 8, what="8 messages stored")
    ing.stop()
    db = sqlite3.connect(tmp_path / "s.db")
    assert db.execute("SELECT COUNT(*) FROM obs").fetchone()[0] == 20
    assert db.execute("SELECT SUM(dir) FROM door_events").fetchone()[0] == 1
    rejects = dict(db.execute("SELECT reason, n FROM rejects"))
    assert rejects == {"not_json": 1, "not_utf8": 1, "schema": 2, "node_mismatch": 1}
    assert dict(ing.rejects) == rejects


def test_every_inbound_kind_rejects_every_reason_and_keeps_going(
    mosquitto: RunningBroker, tmp_path: Path
) -> None:
    """Each inbound kind gets bad payloads for every reason it can have, interleaved
    with valid ones; every valid one is stored, every bad one counted, and the
    count per reason is exact."""
    store = "ingest3"
    ing = Ingestor(store, str(tmp_path / "s.db"), mosquitto.address, "test-ingest-3")
    ing.start()
    assert ing.subscribed  # what is published from here on is not lost to a late SUBSCRIBE
    o, st_, d, f = (
        topics.obs_topic(store, "n1"),
        topics.node_status_topic(store, "n1"),
        topics.door_topic(store, "main"),
        topics.floor_topic(store, "tiles"),
    )
    huge = b'{"v":1,"pad":"' + b"x" * payloads.MAX_PAYLOAD_BYTES + b'"}'
    bad: list[tuple[str, bytes, str]] = []
    for topic in (o, st_, d, f):
        bad += [
            (topic, b"\xc3\x28", "not_utf8"),
            (topic, b"[1, 2", "not_json"),
            (topic, b"NaN-ish", "not_json"),
            (topic, b"[]", "schema"),
            (topic, b'{"v":2}', "schema"),
            (topic, huge, "too_large"),
            (topic, b"[" * 10_000 + b"]" * 10_000, "too_deep"),
        ]
    bad += [
        (
            o,
            payloads.encode({**obs_payload(7), "obs": [[0, "AA:BB:CC:DD:EE:FF", -60, "ble", 0]]}),
            "schema",
        ),
        (o, payloads.encode({**obs_payload(7), "extra": 1}), "schema"),
        (o, obs(8, node="n9"), "node_mismatch"),
        (o, obs(9, t0=2**53 - 1 - 3_600_000), "time_future"),
        (d, door(9, t0=5), "time_past"),
        (f, floor(9, t0=0), "time_past"),
        (st_, status("sleeping"), "schema"),
        (st_, status("online", uptime_s=-1), "schema"),
        (d, door(5, ev=[[0, 0]]), "schema"),
        (d, door(5, ev=[[3_600_001, 1]]), "schema"),
        (f, b'{"v":1,"seq":0,"t0":0,"ev":[[0,256,1]]}', "schema"),
        (f, b'{"v":1,"seq":0,"t0":0,"ev":[[0,1,2]]}', "schema"),
        ("footfall/v1/ingest3/node/n.1/obs", obs(0, node="n1"), "bad_topic"),
        (o, obs(0, rows=3), "seq_reused"),  # seq 0 of n1 was stored with 10 rows
    ]
    good = [(o, obs(s)) for s in range(4)] + [(d, door(s)) for s in range(3)]
    good += [(f, floor(s)) for s in range(2)] + [(st_, status("online", uptime_s=1.5))]
    rng = random.Random(3)
    mixed: list[tuple[str, bytes]] = [(t, raw) for t, raw, _ in bad]
    rng.shuffle(mixed)
    with publisher(mosquitto.address, "test-ingest-pub3") as pub:
        pub.publish(o, obs(0))  # first, so that the reused seq comes after it
        for i, item in enumerate(mixed):
            pub.publish(*item)
            if i < len(good):
                pub.publish(*good[i])
        pub.drain()
    n_msgs = 1 + len(mixed) + len(good)  # obs(0) is in good too: published twice
    wait_until(lambda: ing.stats.committed_messages >= n_msgs, what="all messages handled")
    ing.stop()
    want: dict[str, int] = {}
    for _, _, reason in bad:
        want[reason] = want.get(reason, 0) + 1
    assert set(want) == set(REJECT_REASONS) - {"unexpected_kind", "undecodable"}
    db = sqlite3.connect(tmp_path / "s.db")
    assert dict(db.execute("SELECT reason, n FROM rejects")) == want
    assert db.execute("SELECT COUNT(*) FROM obs").fetchone()[0] == 40
    assert db.execute("SELECT COUNT(*) FROM door_events").fetchone()[0] == 6
    assert db.execute("SELECT COUNT(*) FROM floor_events").fetchone()[0] == 4
    assert db.execute("SELECT COUNT(*) FROM node_status").fetchone()[0] == 1
    assert ing.stats.duplicates == 1  # the second obs(0)
    assert ing.error is None


def test_redelivered_batches_stored_once(mosquitto: RunningBroker, tmp_path: Path) -> None:
    store = "ingest2"
    ing = Ingestor(store, str(tmp_path / "s.db"), mosquitto.address, "test-ingest-2")
    ing.start()
    with publisher(mosquitto.address, "test-ingest-pub2") as pub:
        for seq in (0, 1, 1, 2, 0, 2, 3):
            pub.publish(topics.obs_topic(store, "n1"), obs(seq))
        for seq in (0, 0):
            pub.publish(topics.door_topic(store, "main"), door(seq))
        pub.drain()
    wait_until(lambda: ing.stats.committed_messages >= 9)
    ing.stop()
    assert (ing.stats.stored, ing.stats.duplicates) == (5, 4)
    db = sqlite3.connect(tmp_path / "s.db")
    assert db.execute("SELECT COUNT(*) FROM obs").fetchone()[0] == 40
    assert db.execute("SELECT COUNT(*) FROM door_events").fetchone()[0] == 2
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def test_out_of_order_and_late_batches_are_stored(mosquitto: RunningBroker, tmp_path: Path) -> None:
    """Seqs shuffled, two nodes interleaved, and a batch from hours ago after newer
    ones: all stored, each once, at their own times."""
    store = "ingest4"
    ing = Ingestor(store, str(tmp_path / "s.db"), mosquitto.address, "test-ingest-4")
    ing.start()
    msgs = [(topics.obs_topic(store, n), obs(s, node=n)) for n in ("n1", "n2") for s in range(30)]
    random.Random(1).shuffle(msgs)
    late = obs(30, node="n1", t0=T0 - 5 * 3_600_000)
    with publisher(mosquitto.address, "test-ingest-pub4") as pub:
        for m in msgs:
            pub.publish(*m)
        pub.publish(topics.obs_topic(store, "n1"), late)
        pub.drain()
    wait_until(lambda: ing.stats.committed_messages >= 61)
    ing.stop()
    db = sqlite3.connect(tmp_path / "s.db")
    assert db.execute("SELECT COUNT(*) FROM obs").fetchone()[0] == 610
    assert db.execute("SELECT MIN(t_ms) FROM obs").fetchone()[0] == T0 - 5 * 3_600_000
    seqs = [r[0] for r in db.execute("SELECT seq FROM batches WHERE publisher='n1' ORDER BY seq")]
    assert seqs == list(range(31))
    assert ing.publishers[("obs", "n1")].last_seq == 30


def test_batches_older_than_the_horizon_are_not_stored(tmp_path: Path) -> None:
    horizon = T0
    ing = Ingestor(
        "s", str(tmp_path / "s.db"), BrokerAddress(), "unused", expire_before=lambda: horizon
    )
    ing.handle(topics.obs_topic("s", "n1"), obs(0, t0=T0 - 10_000))  # newest row < horizon
    ing.handle(topics.obs_topic("s", "n1"), obs(1, t0=T0 - 500))  # straddles: kept
    ing.handle(topics.door_topic("s", "d"), door(0, t0=T0 - 60_000))
    ing.db.commit()
    assert (ing.stats.expired, ing.stats.stored) == (2, 1)
    assert ing.db.count("obs") == 10
    ing.db.close()


_json = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats() | st.text(max_size=20),
    lambda kids: (
        st.lists(kids, max_size=6) | st.dictionaries(st.text(max_size=8), kids, max_size=6)
    ),
    max_leaves=30,
)


@settings(max_examples=300, deadline=None)
@given(
    kind=st.sampled_from(["obs", "node_status", "door_events", "floor_events"]),
    raw=st.one_of(
        st.binary(max_size=200),
        _json.map(lambda v: json.dumps(v).encode()),
        st.builds(
            lambda p, k, v: json.dumps({**p, k: v}).encode(),
            st.just(obs_payload(0)),
            st.sampled_from(["v", "node", "seq", "t0", "obs", "epoch", "x"]),
            _json,
        ),
    ),
)
def test_handle_never_raises(tmp_path_factory: object, kind: str, raw: bytes) -> None:
    """Arbitrary bytes and JSON on every inbound kind: counted, stored or rejected, never raised."""
    path = tmp_path_factory.mktemp("fuzz") / "s.db"  # type: ignore[attr-defined]
    ing = Ingestor("s", str(path), BrokerAddress(), "unused")
    topic = topics.build(kind, "s", "n1")
    ing.handle(topic, raw)
    ing.db.commit()
    handled = ing.stats.stored + ing.stats.duplicates + sum(ing.rejects.values())
    assert handled == 1 or kind == "node_status"
    ing.db.close()


def test_storage_failure_stops_ingest_and_the_broker_redelivers(
    mosquitto: RunningBroker, tmp_path: Path
) -> None:
    """Crash-only: when SQLite fails, ingest stops without acknowledging what it did
    not commit; the next session gets it again, and nothing is stored twice."""
    store, path = "ingest5", tmp_path / "s.db"
    ing = Ingestor(store, str(path), mosquitto.address, "test-ingest-5")
    ing.start()
    topic = topics.obs_topic(store, "n1")
    with publisher(mosquitto.address, "test-ingest-pub5") as pub:
        for seq in range(3):
            pub.publish(topic, obs(seq))
        pub.drain()
        wait_until(lambda: ing.stats.committed_messages >= 3)
        other = sqlite3.connect(path)
        other.execute("ALTER TABLE obs RENAME TO obs_away")  # the disk "fails"
        other.commit()
        for seq in range(3, 6):
            pub.publish(topic, obs(seq))
        pub.drain()
        wait_until(lambda: ing.error is not None, what="ingest stopped on the error")
        ing.stop()
        other.execute("ALTER TABLE obs_away RENAME TO obs")
        other.commit()
        other.close()
        ing = Ingestor(store, str(path), mosquitto.address, "test-ingest-5")
        ing.start()
        pub.publish(topic, obs(6))
        pub.drain()
        wait_until(lambda: ing.stats.committed_messages >= 4, what="the rest stored")
    ing.stop()
    db = sqlite3.connect(path)
    assert db.execute("SELECT COUNT(*), SUM(n) FROM batches").fetchone() == (7, 70)
    assert db.execute("SELECT COUNT(*) FROM obs").fetchone()[0] == 70
