"""Aggregator ingest against a real Mosquitto: bad payloads counted, never fatal;
duplicates stored once."""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path

from heatmap.broker import RunningBroker
from heatmap.ingest import Ingestor
from sensing import payloads, topics
from sensing.mqtt_link import Publisher, connect, make_client


def _obs(seq: int, node: str = "n1") -> bytes:
    return payloads.encode(
        {
            "v": 1,
            "node": node,
            "seq": seq,
            "t0": 1_795_000_000_000 + seq,
            "obs": [[i, f"{seq:08x}{i:08x}", -60, "ble", 0] for i in range(10)],
        }
    )


def _wait(cond: object, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():  # type: ignore[operator]
            return
        time.sleep(0.05)
    raise AssertionError("condition not met in time")


def test_invalid_payloads_rejected_and_counted_valid_flow(
    mosquitto: RunningBroker, tmp_path: Path
) -> None:
    store = "ingest1"
    ing = Ingestor(store, str(tmp_path / "s.db"), mosquitto.address, "test-ingest-1")
    ing.start()
    c = make_client(mosquitto.address, "test-ingest-pub")
    connect(c, mosquitto.address)
    pub = Publisher(c)
    obs_t = topics.obs_topic(store, "n1")
    bad = {
        "not_json": b"{{{",
        "not_utf8": b"\xff\xfe\xfd",
        "schema": json.dumps({"v": 1, "node": "n1", "seq": -1, "t0": 0, "obs": []}).encode(),
    }
    pub.publish(obs_t, _obs(0))
    for raw in bad.values():
        pub.publish(obs_t, raw)
    pub.publish(obs_t, _obs(1, node="n2"))  # payload node differs from topic node
    pub.publish(f"footfall/v1/{store}/node/n1/bogus", _obs(2))  # not subscribed: never seen
    pub.publish(
        topics.door_topic(store, "main"),
        payloads.encode({"v": 1, "seq": 0, "t0": 5, "ev": [[0, 1], [10, 1], [20, -1]]}),
    )
    pub.publish(topics.door_topic(store, "main"), b'{"v":1,"seq":1,"t0":5,"ev":[[0,2]]}')
    pub.publish(obs_t, _obs(3))
    pub.drain()
    _wait(lambda: ing.stats.messages >= 8)  # the bogus topic is not subscribed
    ing.stop()
    c.loop_stop()
    c.disconnect()
    db = sqlite3.connect(tmp_path / "s.db")
    assert db.execute("SELECT COUNT(*) FROM obs").fetchone()[0] == 20
    assert db.execute("SELECT SUM(dir) FROM door_events").fetchone()[0] == 1
    rejects = dict(db.execute("SELECT reason, n FROM rejects"))
    assert rejects == {"not_json": 1, "not_utf8": 1, "schema": 2, "node_mismatch": 1}


def test_redelivered_batches_stored_once(mosquitto: RunningBroker, tmp_path: Path) -> None:
    store = "ingest2"
    ing = Ingestor(store, str(tmp_path / "s.db"), mosquitto.address, "test-ingest-2")
    ing.start()
    c = make_client(mosquitto.address, "test-ingest-pub2")
    connect(c, mosquitto.address)
    pub = Publisher(c)
    for seq in (0, 1, 1, 2, 0, 2, 3):
        pub.publish(topics.obs_topic(store, "n1"), _obs(seq))
    pub.drain()
    _wait(lambda: ing.stats.messages >= 7)
    ing.stop()
    c.loop_stop()
    c.disconnect()
    assert (ing.stats.stored, ing.stats.duplicates) == (4, 3)
    db = sqlite3.connect(tmp_path / "s.db")
    assert db.execute("SELECT COUNT(*) FROM obs").fetchone()[0] == 40
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
