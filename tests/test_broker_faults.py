"""Faults at the broker edge (issue 23, cases 2, 4 and the refused publish of 8),
against a real Mosquitto on loopback:

* a 3 s broker outage, then 10,000 publishes: the publisher neither raises nor
  loses what it handed over; an aggregator stopped (SIGTERM) while the broker is
  down exits cleanly;
* another certificate of the store CA connecting with the aggregator's client id
  does not take the aggregator's persistent session;
* a publish the broker's ACL refuses is counted as refused, not as published.
"""

from __future__ import annotations

import dataclasses
import json
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest

from firmware_bridge.errors import BrokerError
from firmware_bridge.protocol import BoardKind, DoorCrossing, Hello, encode
from heatmap.aggregator import config as aggregator_config
from heatmap.aggregator.daemon import STATUS_PENDING_MAX, AggregatorDaemon
from heatmap.aggregator.ingest import Ingestor
from sensing.node import config as node_config
from sensing.node.clock_sync import FixedClock
from sensing.node.daemon import NodeDaemon
from sensing.node.delivery import Delivery
from sensing.node.doctor.broker import broker as doctor_broker
from sensing.node.spool import Spool
from sensing.runtime.mqtt_link import (
    BrokerAddress,
    LinkEvent,
    MqttLink,
    Publisher,
    connect,
    make_client,
)
from sensing.wire import topics

from broker_fixtures import (
    T0_MS,
    Broker,
    StorePki,
    make_pki,
    node_toml,
    plain_broker,
    store_key,
    stored,
    tls_broker,
    wait_for,
    write_capture,
)
from ingest_fixtures import T0, obs, publisher, start_aggregator, write_config

pytestmark = pytest.mark.timeout(180)


def _subscriber(addr: object, client_id: str, topic: str) -> tuple[mqtt.Client, list[bytes]]:
    """A persistent-session QoS 1 subscriber recording every payload."""
    got: list[bytes] = []
    lock = threading.Lock()
    c = make_client(addr, client_id, clean=False)  # type: ignore[arg-type]

    def on_message(_c: mqtt.Client, _u: object, m: mqtt.MQTTMessage) -> None:
        with lock:
            got.append(bytes(m.payload))

    subscribed = threading.Event()
    c.on_message = on_message
    c.on_subscribe = lambda *_a: subscribed.set()
    connect(c, addr)  # type: ignore[arg-type]
    c.subscribe(topic, qos=1)
    assert subscribed.wait(10), "no SUBACK"
    return c, got


@pytest.mark.slow
def test_publisher_survives_a_3s_outage_then_10000_publishes(tmp_path: Path) -> None:
    """Before: the publishes made while the broker was away stayed in the pending
    list with rc NO_CONN, and ~2,000 publishes later paho raised RuntimeError on
    them (the aggregator's status publisher died)."""
    b = plain_broker(tmp_path / "broker").start()
    sub, got = _subscriber(b.address, "faults-sub", "faults/#")
    c = make_client(b.address, "faults-pub")
    connect(c, b.address)
    pub = Publisher(c)
    n = 0

    def put() -> None:
        nonlocal n
        pub.publish("faults/x", str(n).encode())  # before the fix: RuntimeError
        n += 1

    try:
        for _ in range(100):
            put()
        pub.drain(10)
        b.stop()  # a clean stop: the subscriber's session is saved
        outage_end = time.monotonic() + 3.0
        while time.monotonic() < outage_end:  # the status loop goes on meanwhile
            put()
            time.sleep(0.01)
        assert n - 100 > 100
        b.start()
        for _ in range(10_000):
            put()
        pub.drain(120)
        assert pub.dropped == 0 and pub.refused == 0 and pub.acked == n == pub.handed
        wait_for(lambda: len(set(got)) >= n, 60, "the subscriber has every message")
        assert {int(p) for p in got} == set(range(n))  # 0 lost
    finally:
        c.disconnect()
        c.loop_stop()
        sub.disconnect()
        sub.loop_stop()
        b.stop()


def test_publisher_bounds_its_pending_list_while_the_broker_is_away(tmp_path: Path) -> None:
    """A long outage: the pending list stays bounded, the rest is dropped and
    counted, nothing raises, and what was handed over goes out after the reconnect."""
    b = plain_broker(tmp_path / "broker").start()
    c = make_client(b.address, "faults-bound")
    connect(c, b.address)
    pub = Publisher(c, max_pending=50, block_s=0.2)
    try:
        b.stop()
        wait_for(lambda: not c.is_connected(), 10, "the client saw the broker go")
        results = [pub.publish("faults/y", b"%d" % i, retain=True) for i in range(80)]
        assert results.count(True) == 50 and pub.dropped == 30 and pub.pending == 50
        assert "await their PUBACK" in pub.last_refusal
        b.start()
        pub.drain(60)
        assert pub.acked == 50 and pub.pending == 0
        assert pub.publish("faults/y", b"after")  # room again
        pub.drain(10)
    finally:
        c.disconnect()
        c.loop_stop()
        b.stop()


@pytest.mark.slow
def test_aggregator_stopped_while_the_broker_is_down_exits_cleanly(tmp_path: Path) -> None:
    """Before: SIGTERM during an outage ended in paho's RuntimeError traceback from
    the offline status's drain."""
    b = plain_broker(tmp_path / "broker").start()
    cfg = write_config(tmp_path / "store.toml", "s1", b.address)
    log = tmp_path / "aggregator.log"
    proc = start_aggregator(cfg, log)
    try:
        wait_for(lambda: b"store s1" in log.read_bytes() or (tmp_path / "store.db").exists(), 30)
        time.sleep(1.5)  # a few status publishes while up
        b.kill9()
        time.sleep(3.0)  # status publishes keep failing meanwhile
        proc.send_signal(signal.SIGTERM)
        rc = proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        b.stop()
    out = log.read_text(errors="replace")
    assert "Traceback" not in out, out
    assert rc == 0, out


# ------------------------------------------------------------------ client-id takeover


@pytest.fixture
def tls_store(tmp_path: Path) -> Iterator[tuple[StorePki, Broker]]:
    p = make_pki(tmp_path / "pki")
    b = tls_broker(tmp_path / "broker", p).start()
    yield p, b
    b.stop()


def _as(b: Broker, p: StorePki, user: str) -> BrokerAddress:
    return BrokerAddress("127.0.0.1", b.port, p.client(user))


AGGREGATOR_ID = "footfall-aggregator-s1"


def test_another_certificate_cannot_take_the_aggregators_session(
    tls_store: tuple[StorePki, Broker], tmp_path: Path
) -> None:
    """Before: node-n2's certificate connecting with the aggregator's client id (clean
    session) threw away the aggregator's persistent session and the 20 batches queued
    in it (0 of 20 stored); with the client id bound to the certificate at the broker,
    all 20 are stored, and the aggregator's live connection is not kicked either."""
    p, b = tls_store
    agg = _as(b, p, "aggregator-s1")
    db = tmp_path / "store.db"
    ing = Ingestor("s1", str(db), agg, AGGREGATOR_ID)
    ing.start()
    assert ing.subscribed
    ing.stop()  # the session (and its subscriptions) stays at the broker
    with publisher(_as(b, p, "node-n1"), "footfall-node-s1-n1") as pub:
        for seq in range(20):
            assert pub.publish(topics.obs_topic("s1", "n1"), obs(seq))
        pub.drain(30)
        assert pub.refused == 0
    for user in ("node-n2", "bi-dash"):  # the takeover: same client id, clean session
        thief = make_client(_as(b, p, user), AGGREGATOR_ID, clean=True)
        connect(thief, _as(b, p, user))
        thief.disconnect()
        thief.loop_stop()
    ing = Ingestor("s1", str(db), agg, AGGREGATOR_ID)
    ing.start()
    try:
        wait_for(lambda: stored(db)[1] >= 20, 30, "the 20 queued batches stored")
        # and while it runs, a thief connecting again does not kick it off
        kicked = threading.Event()
        ing.client.on_disconnect = lambda *_a: kicked.set()
        for _ in range(5):
            thief = make_client(_as(b, p, "node-n2"), AGGREGATOR_ID, clean=True)
            connect(thief, _as(b, p, "node-n2"))
            thief.disconnect()
            thief.loop_stop()
        with publisher(_as(b, p, "node-n1"), "footfall-node-s1-n1") as pub:
            for seq in range(20, 50):
                pub.publish(topics.obs_topic("s1", "n1"), obs(seq))
            pub.drain(30)
        wait_for(lambda: stored(db)[1] >= 50, 30, "all 50 batches stored")
        assert not kicked.is_set()
    finally:
        ing.stop()
    assert stored(db)[1:] == (50, 0)


# ------------------------------------------------------------------ refused publishes


def test_a_publish_the_acl_refuses_is_counted_as_refused_not_published(
    tls_store: tuple[StorePki, Broker], tmp_path: Path
) -> None:
    """Before: MQTT 3.1.1 acknowledges a refused publish like an accepted one, so a
    door the ACL does not grant (322 batches in the issue) was counted as published
    and deleted from the spool. Now the link speaks MQTT 5 and reads the PUBACK's
    reason code: the refused batches are counted, stay spooled, and the wait for
    delivery fails (a finite replay exits non-zero)."""
    p, b = tls_store
    link = MqttLink(_as(b, p, "node-n1"), "footfall-node-s1-n1")
    link.start()
    others: list[LinkEvent] = []
    with Spool(tmp_path / "spool.db") as spool:
        try:
            assert link.wait_connected(10)
            d = Delivery(spool, link)
            own = topics.door_topic("s1", "main")  # in node-n1's ACL
            stray = topics.door_topic("s1", "side")  # a door the ACL was not made for
            for _ in range(3):
                spool.put("door/main", own, {"v": 1, "t0": T0, "ev": [[0, 1]]}, 1)
                spool.put("door/side", stray, {"v": 1, "t0": T0, "ev": [[0, 1]]}, 1)
            assert d.wait(10, others.append) is False  # at once: only refused ones left
            assert d.published == 3 and d.refused == 3 and link.refused == 3
            # the refused batches stay spooled; so do the accepted ones, until an
            # aggregator acknowledges them (none runs here)
            assert d.unconfirmed == 3 and spool.depth == 3 + d.unconfirmed
            assert stray in d.last_refusal and "authorized" in d.last_refusal.lower()
            assert [e.kind for e in others] == ["connected", "refused", "refused", "refused"]
        finally:
            link.stop()


def test_the_status_publisher_counts_refusals_on_mqtt5(
    tls_store: tuple[StorePki, Broker],
) -> None:
    """The aggregator-side :class:`Publisher` on an MQTT 5 connection: a topic outside
    the ACL is refused and counted, the granted one acknowledged."""
    p, b = tls_store
    addr = _as(b, p, "aggregator-s1")
    c = make_client(addr, "footfall-aggregator-s1-probe", v5=True)
    connect(c, addr)
    pub = Publisher(c)
    try:
        assert pub.publish(topics.aggregator_status_topic("s1"), b'{"v":1,"state":"offline"}')
        assert pub.publish(topics.obs_topic("s1", "n1"), b"{}")  # a node's topic
        pub.drain(10)
        assert (pub.acked, pub.refused) == (1, 1)
        assert "node/n1/obs" in pub.last_refusal
    finally:
        c.disconnect()
        c.loop_stop()


def test_an_aggregator_with_a_node_certificate_fails_at_start(
    tls_store: tuple[StorePki, Broker], tmp_path: Path
) -> None:
    """An aggregator given a node's certificate. Before, its refused status publishes
    were acknowledged like accepted ones (MQTT 3.1.1), and Mosquitto's acl_file grants
    every subscription (reads are checked at delivery): it ran "healthy" and ingested
    nothing. Now its connection speaks MQTT 5, the refused status is read from the
    PUBACK, and start() fails with one line."""
    p, b = tls_store
    addr = _as(b, p, "node-n1")
    cfg = aggregator_config.load(write_config(tmp_path / "store.toml", "s1", addr))
    cfg = dataclasses.replace(cfg, db=tmp_path / "store.db", broker=addr)
    daemon = AggregatorDaemon(cfg)
    with pytest.raises(BrokerError, match="refused the aggregator's status"):
        daemon.start()
    assert daemon._pub.refused == 1 and daemon._pub.acked == 0


def test_the_aggregators_mqtt5_session_survives_a_broker_restart(
    tls_store: tuple[StorePki, Broker], tmp_path: Path
) -> None:
    """MQTT 5 ends a session at disconnect unless the client asks for an expiry: the
    aggregator asks for none (never expires) and resumes it (clean start off), so the
    batches queued while it was away survive a broker restart as they did on 3.1.1."""
    p, b = tls_store
    agg = _as(b, p, "aggregator-s1")
    db = tmp_path / "store.db"
    ing = Ingestor("s1", str(db), agg, AGGREGATOR_ID)
    ing.start()
    ing.stop()
    with publisher(_as(b, p, "node-n1"), "footfall-node-s1-n1") as pub:
        for seq in range(20):
            pub.publish(topics.obs_topic("s1", "n1"), obs(seq))
        pub.drain(30)
    b.stop()  # saves the sessions
    b.start()
    ing = Ingestor("s1", str(db), agg, AGGREGATOR_ID)
    ing.start()
    try:
        wait_for(lambda: stored(db)[1] >= 20, 30, "the 20 queued batches stored")
    finally:
        ing.stop()
    assert stored(db)[1:] == (20, 0)


@pytest.mark.slow
def test_a_replay_of_a_door_the_acl_does_not_grant_fails_and_counts_it(
    tls_store: tuple[StorePki, Broker], tmp_path: Path
) -> None:
    """The issue's case: a door id not in the ACL. Before, its batches were counted as
    published, deleted from the spool, and the replay reported success. Now the
    replay fails with one line naming the topic, the status counts the refused
    batches, and they stay spooled; the node's observations still go out."""
    p, b = tls_store
    cap = write_capture(tmp_path / "cap", seconds=10.0)
    uart = tmp_path / "door.uart"
    uart.write_bytes(
        encode(Hello(1, 0, BoardKind.DOOR, 2), 1, 0)
        + b"".join(encode(DoorCrossing(100 * i, 1 if i % 2 else -1), 1, i) for i in range(1, 40))
    )
    uart.with_suffix(".uart.json").write_text(json.dumps({"tick0_epoch_ms": T0_MS}))
    toml = node_toml(
        tmp_path / "node.toml", _as(b, p, "node-n1"), tmp_path / "state",
        store_key(tmp_path / "store.key"),
        wifi={"pcap": str(cap.dir / "wifi.pcap")}, ble={"pcap": str(cap.dir / "ble.pcap")},
        boards=[{"replay": str(uart), "door": "side"}],  # the ACL grants n1 door "main" only
        replay={"drain_timeout_s": 10},
    )  # fmt: skip
    rec_addr = _as(b, p, "aggregator-s1")
    got: list[bytes] = []
    watcher = make_client(rec_addr, "watch", v5=True)
    watcher.on_message = lambda _c, _u, m: got.append(bytes(m.payload))
    connect(watcher, rec_addr)
    watcher.subscribe(topics.node_status_topic("s1", "n1"), qos=1)
    d = NodeDaemon(node_config.load(toml), clock=FixedClock(True))
    try:
        with pytest.raises(BrokerError, match=r"refused 1 batches .*/door/side/events: Not auth"):
            d.run(install_signals=False)
        assert d.delivery is not None and d.delivery.refused >= 1
        assert d.delivery.published == d.summary.batches["obs"] > 0
        # kept for a fixed ACL (and the obs batches for the aggregator's acknowledgement)
        assert d.summary.spool_depth == d.delivery.refused + d.delivery.unconfirmed
        wait_for(lambda: got, 10, "a node status")
        last = json.loads(got[-1])
        assert last["dropped"]["publish_refused_batches"] == d.delivery.refused, last
        assert last["published"] == d.summary.batches["obs"]
    finally:
        watcher.disconnect()
        watcher.loop_stop()


def test_doctor_fails_a_board_whose_events_the_acl_refuses(
    tls_store: tuple[StorePki, Broker], tmp_path: Path
) -> None:
    """Before, doctor probed only the node's own topic and said "ok" for a node whose
    door the ACL does not grant. Now it probes the ``doctor`` leaf granted beside each
    board's events (nobody reads it) and reads the MQTT 5 PUBACK reason code."""
    p, b = tls_store
    uart = tmp_path / "door.uart"
    uart.write_bytes(encode(Hello(1, 0, BoardKind.DOOR, 2), 1, 0))
    key = store_key(tmp_path / "store.key")
    for door, level in (("main", "ok"), ("side", "FAIL")):
        toml = node_toml(
            tmp_path / f"{door}.toml", _as(b, p, "node-n1"), tmp_path / door, key,
            boards=[{"replay": str(uart), "door": door}],
        )  # fmt: skip
        checks = {c.name: c for c in doctor_broker(node_config.load(toml), 5.0)}
        assert checks["broker acl"].level == level, checks["broker acl"]
        if level == "FAIL":
            assert "door/side" in checks["broker acl"].message
            assert "not authorized" in checks["broker acl"].message.lower()


@pytest.mark.slow
def test_aggregator_survives_a_3s_outage_then_10000_status_publishes(tmp_path: Path) -> None:
    """The issue's case 4 on the daemon itself: statuses published while the broker is
    away are queued up to a bound (the rest dropped and counted), and the 10,000 after
    the reconnect neither raise (before: paho's RuntimeError ~2,000 publishes later)
    nor stop ingest."""
    b = plain_broker(tmp_path / "broker").start()
    cfg = aggregator_config.load(write_config(tmp_path / "store.toml", "s1", b.address))
    cfg = dataclasses.replace(cfg, db=tmp_path / "store.db")
    daemon = AggregatorDaemon(cfg)
    daemon.start()
    try:
        b.kill9()
        outage_end = time.monotonic() + 3.0
        while time.monotonic() < outage_end:
            daemon.publish_status()
            time.sleep(0.01)
        # more than the bound while the broker is still away (500 waiting for a PUBACK)
        for _ in range(STATUS_PENDING_MAX + 20 - daemon._pub.pending):
            daemon.publish_status()
        assert daemon._pub.dropped > 0  # beyond the bound: dropped and counted
        b.start()
        wait_for(lambda: daemon.ingest.client.is_connected(), 30, "the reconnect")
        for _ in range(10_000):
            daemon.publish_status()
        daemon._pub.drain(60)
        assert daemon.ingest.error is None
        st = daemon.publish_status()  # validated against the schema, and published
        assert st["mqtt"] == {
            "publish_refused": 0,
            "publish_dropped": daemon._pub.dropped,
            "subscriptions_refused": 0,
        }
        with publisher(b.address, "faults-node") as pub:
            pub.publish(topics.obs_topic("s1", "n1"), obs(1, t0=int(time.time() * 1000)))
            pub.drain(10)
        wait_for(lambda: daemon.ingest.snapshot().stats.stored >= 1, 30, "ingest goes on")
    finally:
        daemon.stop()
        b.stop()
