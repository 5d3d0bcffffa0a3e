"""The aggregator's end-to-end acknowledgement (heatmap/aggregator/ingest_ack.py):
runs of stored seqs per publisher, published retained only for what a checkpoint
made durable, at start and after every change; real SQLite, real Mosquitto."""

from __future__ import annotations

import dataclasses
import doctest
import json
import random
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest

from firmware_bridge.errors import BrokerError
from heatmap.aggregator import config as aggregator_config
from heatmap.aggregator import ingest_ack
from heatmap.aggregator.daemon import AggregatorDaemon
from heatmap.aggregator.ingest import Ingestor
from heatmap.aggregator.ingest_ack import RUNS_KEPT, RUNS_PUBLISHED, AckRuns
from heatmap.aggregator.ingest_writer import IngestWriter
from sensing.runtime.mqtt_link import BrokerAddress, connect, make_client
from sensing.wire import payloads, topics

from broker_fixtures import Broker, make_pki, plain_broker, tls_broker, wait_for
from ingest_fixtures import door, obs, publisher, write_config

pytestmark = pytest.mark.timeout(60)
STORE = "s1"


def test_docstring_examples() -> None:
    result = doctest.testmod(ingest_ack)
    assert result.attempted > 0 and result.failed == 0


def _model_runs(seqs: set[int]) -> list[list[int]]:
    out: list[list[int]] = []
    for s in sorted(seqs, reverse=True):
        if out and out[-1][0] == s + 1:
            out[-1][0] = s
        else:
            out.append([s, s])
    return out


def test_runs_are_exactly_the_stored_seqs_whatever_the_order() -> None:
    rng = random.Random(5)
    for _ in range(200):
        seqs = {rng.randrange(60) for _ in range(rng.randrange(1, 50))}
        order = list(seqs) + [rng.choice(list(seqs)) for _ in range(5)]  # redeliveries
        rng.shuffle(order)
        r = AckRuns()
        for s in order:
            r.add("obs", "n1", s)
        assert r.runs("obs", "n1", limit=1000) == _model_runs(seqs)
        assert r.runs("obs", "n1") == _model_runs(seqs)[:RUNS_PUBLISHED]


def test_publishers_of_other_kinds_are_apart_and_the_runs_kept_are_bounded() -> None:
    r = AckRuns()
    r.add("obs", "main", 1)
    r.add("door", "main", 7)
    assert r.runs("obs", "main") == [[1, 1]] and r.runs("door", "main") == [[7, 7]]
    assert r.take_changed() == [("door", "main"), ("obs", "main")] and not r.changed
    for s in range(0, 4 * RUNS_KEPT, 2):  # a gap after every seq
        r.add("floor", "t", s)
    runs = r.runs("floor", "t", limit=10 * RUNS_KEPT)
    assert len(runs) == RUNS_KEPT and runs[0] == [4 * RUNS_KEPT - 2] * 2  # the highest kept
    topic, raw = r.message(STORE, "floor", "t", now_ms=5)
    p = payloads.decode("aggregator_ack", raw)
    assert topic == "footfall/v1/s1/aggregator/ack/floor-t"
    assert p["seq"] == 4 * RUNS_KEPT - 2 and len(p["runs"]) == RUNS_PUBLISHED and p["t"] == 5


def test_runs_load_from_the_batches_table(tmp_path: Path) -> None:
    db = str(tmp_path / "store.db")
    w = IngestWriter(STORE, db)
    for s in (0, 1, 2, 5, 6, 9):
        w.handle(topics.obs_topic(STORE, "n1"), obs(s))
    w.handle(topics.door_topic(STORE, "main"), door(3))
    w.commit()
    w.db.close()
    again = IngestWriter(STORE, db)
    assert again.acks.runs("obs", "n1") == [[9, 9], [5, 6], [0, 2]]
    assert again.acks.runs("door", "main") == [[3, 3]]
    assert set(again.acks.take_changed()) == {("obs", "n1"), ("door", "main")}
    again.db.close()


def test_a_commit_is_acknowledged_only_once_checkpointed(tmp_path: Path) -> None:
    """A reader holding an old snapshot stops the checkpoint short of the -wal's end:
    the commit is in the -wal only (a lost -wal or a power cut could take it back),
    so it is not acknowledged until a later checkpoint copies it."""
    db = str(tmp_path / "store.db")
    w = IngestWriter(STORE, db)
    w.handle(topics.obs_topic(STORE, "n1"), obs(0))
    w.commit()
    assert w.settle_acks(time.monotonic()) and w.acks.runs("obs", "n1") == [[0, 0]]
    reader = sqlite3.connect(db)
    reader.execute("BEGIN")
    reader.execute("SELECT COUNT(*) FROM batches").fetchone()  # a snapshot before seq 1
    w.handle(topics.obs_topic(STORE, "n1"), obs(1))
    w.commit()
    assert not w.settle_acks(time.monotonic())
    assert w.acks.runs("obs", "n1") == [[0, 0]]
    reader.rollback()
    reader.close()
    assert w.settle_acks(time.monotonic()) and w.acks.runs("obs", "n1") == [[0, 1]]
    w.db.close()


class AckWatcher:
    """Records the retained acknowledgements a node would receive."""

    def __init__(self, addr: BrokerAddress) -> None:
        self.got: dict[str, list[dict[str, object]]] = {}
        self.lock = threading.Lock()
        self.c = make_client(addr, f"watch-{time.monotonic_ns()}", v5=True)
        self.c.on_message = self._on
        connect(self.c, addr)
        done = threading.Event()
        self.c.on_subscribe = lambda *_a: done.set()
        self.c.subscribe(f"footfall/v1/{STORE}/aggregator/ack/#", qos=1)
        assert done.wait(5)

    def _on(self, _c: mqtt.Client, _u: object, m: mqtt.MQTTMessage) -> None:
        with self.lock:
            self.got.setdefault(m.topic.rsplit("/", 1)[1], []).append(json.loads(m.payload))

    def last(self, pub: str) -> dict[str, object] | None:
        with self.lock:
            v = self.got.get(pub)
            return v[-1] if v else None

    def close(self) -> None:
        self.c.disconnect()
        self.c.loop_stop()


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Broker]:
    b = plain_broker(tmp_path / "broker").start()
    yield b
    b.stop()


def test_the_ingestor_publishes_runs_retained_and_again_at_start(
    tmp_path: Path, broker: Broker
) -> None:
    db = str(tmp_path / "store.db")
    ing = Ingestor(STORE, db, broker.address, "agg-ack")
    ing.start()
    watch = AckWatcher(broker.address)
    try:
        with publisher(broker.address, "pub-ack") as pub:
            for s in (0, 1, 2, 4):  # 3 lost on the way
                assert pub.publish(topics.obs_topic(STORE, "n1"), obs(s))
            assert pub.publish(topics.door_topic(STORE, "main"), door(7))
            pub.drain()
            wait_for(lambda: (watch.last("node-n1") or {}).get("seq") == 4, 10, "node-n1 ack")
            assert watch.last("node-n1")["runs"] == [[4, 4], [0, 2]]  # type: ignore[index]
            wait_for(lambda: watch.last("door-main"), 10, "door-main ack")
            assert watch.last("door-main")["runs"] == [[7, 7]]  # type: ignore[index]
            assert pub.publish(topics.obs_topic(STORE, "n1"), obs(3))  # sent again
            assert pub.publish(topics.obs_topic(STORE, "n1"), obs(2))  # a redelivery
            pub.drain()
            wait_for(
                lambda: watch.last("node-n1")["runs"] == [[0, 4]],  # type: ignore[index]
                10,
                "the gap closed",
            )
        for p in watch.got.values():
            for m in p:
                payloads.validate("aggregator_ack", m)
        n_before = len(watch.got["node-n1"])
    finally:
        ing.stop()
        watch.close()
    # a later subscriber (a node that connects) finds the mark retained
    late = AckWatcher(broker.address)
    try:
        wait_for(lambda: late.last("node-n1"), 5, "the retained ack")
        assert late.last("node-n1")["runs"] == [[0, 4]]  # type: ignore[index]
        t_retained = late.last("node-n1")["t"]  # type: ignore[index]
        # a restarted aggregator publishes every publisher's runs from the database
        ing = Ingestor(STORE, db, broker.address, "agg-ack")
        ing.start()
        try:
            wait_for(lambda: len(late.got["node-n1"]) >= 2, 10, "the ack again at start")
            m = late.last("node-n1")
            assert m["runs"] == [[0, 4]] and m["t"] >= t_retained  # type: ignore[index,operator]
            wait_for(lambda: len(late.got.get("door-main", [])) >= 2, 10, "door-main at start")
        finally:
            ing.stop()
    finally:
        late.close()
    assert n_before >= 2


def test_an_aggregator_whose_acl_refuses_acknowledgements_fails_at_start(tmp_path: Path) -> None:
    """An ACL made before acknowledgements (no ``aggregator/ack/+`` for the aggregator)
    and a database that holds batches, so acknowledgements go out at start: they are
    refused (MQTT 5 PUBACK), counted by the status publisher they share, and start()
    fails naming the ack topic; with the current ACL the same start succeeds and
    publishes the acknowledgement through that publisher."""
    db = tmp_path / "store.db"
    w = IngestWriter(STORE, str(db))
    w.handle(topics.obs_topic(STORE, "n1"), obs(0))
    w.commit()
    w.db.close()
    p = make_pki(tmp_path / "pki")
    b = tls_broker(tmp_path / "broker", p)
    acl = Path(b.conf.read_text().split("acl_file ")[1].split("\n")[0])
    current = acl.read_text()
    acl.write_text(current.replace(f"topic write footfall/v1/{STORE}/aggregator/ack/+\n", ""))
    assert acl.read_text() != current
    b.start()
    try:
        addr = BrokerAddress("127.0.0.1", b.port, p.client("aggregator-s1"))
        cfg = aggregator_config.load(write_config(tmp_path / "store.toml", STORE, addr))
        cfg = dataclasses.replace(cfg, db=db, broker=addr)
        daemon = AggregatorDaemon(cfg)
        with pytest.raises(BrokerError, match=r"aggregator/ack/node-n1: Not authorized"):
            daemon.start()
        assert daemon._pub.refused >= 1
        b.stop()
        acl.write_text(current)
        b.start()
        daemon = AggregatorDaemon(cfg)
        daemon.start()
        try:
            wait_for(lambda: daemon.ingest.acks_published >= 1, 5, "an acknowledgement")
            daemon._pub.drain(5)
            assert daemon._pub.refused == 0 and daemon._pub.acked >= 2  # status and ack
        finally:
            daemon.ingest.stop(timeout_s=10)
    finally:
        b.stop()
