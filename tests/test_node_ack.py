"""The node keeps a batch after the broker's PUBACK until the aggregator's
acknowledgement holds its seq (sensing/node/delivery.py, ack_watch.py): against a
real Mosquitto and the real Ingestor; resends after a reconnect and a timeout;
``keep_until_stored = false``."""

from __future__ import annotations

import doctest
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from heatmap.aggregator.ingest import Ingestor
from sensing.node import ack_watch
from sensing.node import config as node_config
from sensing.node.ack_watch import Ack
from sensing.node.clock_sync import FixedClock
from sensing.node.daemon import NodeDaemon
from sensing.node.delivery import MAX_BACKOFF, Delivery
from sensing.node.spool import Spool
from sensing.runtime.mqtt_link import LinkEvent, MqttLink
from sensing.wire import topics

from broker_fixtures import (
    STORE,
    Broker,
    node_toml,
    plain_broker,
    store_key,
    wait_for,
    write_capture,
)
from ingest_fixtures import T0

pytestmark = pytest.mark.timeout(90)


def test_docstring_examples() -> None:
    result = doctest.testmod(ack_watch)
    assert result.attempted > 0 and result.failed == 0


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Broker]:
    b = plain_broker(tmp_path / "broker").start()
    yield b
    b.stop()


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def _batch(spool: Spool, n: int) -> None:
    for _ in range(n):
        spool.put(
            "obs",
            topics.obs_topic(STORE, "n1"),
            {"v": 1, "node": "n1", "t0": T0, "obs": [[0, "0123456789abcdef", -60, "ble", 0]]},
            1,
        )


def _drain(d: Delivery, until: Any, what: str) -> list[LinkEvent]:
    seen: list[LinkEvent] = []

    def turn() -> bool:
        d.pump()
        d.events(seen.append, 0.05)
        return bool(until())

    wait_for(turn, 10, what)
    return seen


def test_kept_after_puback_confirmed_by_runs_resent_after_reconnect_and_timeout(
    tmp_path: Path, broker: Broker
) -> None:
    clock = Clock()
    link = MqttLink(broker.address, "t-node-ack", reconnect_max_s=1)
    link.start()
    with Spool(tmp_path / "spool.db") as spool:
        try:
            assert link.wait_connected(10)
            d = Delivery(spool, link, ack_timeout_s=30, clock=clock)
            _batch(spool, 6)  # seqs 0..5
            _drain(d, lambda: d.unconfirmed == 6, "six PUBACKs")
            assert d.published == 6 and spool.depth == 6  # the broker has them: kept
            # the aggregator has 0-1 and 3-4; 2 and 5 stay
            assert d.confirm(Ack("obs", 4, ((3, 4), (0, 1)))) == 4
            assert spool.depth == 2 and d.unconfirmed == 2
            assert [b.seq for b in spool.after(0, 10)] == [2, 5]
            # a timeout: sent again, then waits twice as long
            clock.t += 30
            _drain(d, lambda: d.resent == 2 and not d.inflight_ids(), "resent after 30 s")
            clock.t += 30
            d.pump()
            assert d.resent == 2  # not yet: 60 s now
            clock.t += 30
            _drain(d, lambda: d.resent == 4 and not d.inflight_ids(), "resent after 60 s")
            assert d.published == 6  # a resend is not counted as published again
            # a reconnect: every unconfirmed batch goes again at once
            broker.stop()
            wait_for(lambda: not link.connected, 10, "disconnected")
            broker.start()
            _drain(d, lambda: d.resent == 6 and not d.inflight_ids(), "resent on reconnect")
            assert d.confirm(Ack("obs", 5, ((0, 5),))) == 2
            assert spool.depth == 0 and d.unconfirmed == 0 and d.confirmed == 6
            # the wait never grows beyond MAX_BACKOFF × the timeout
            _batch(spool, 1)
            _drain(d, lambda: d.unconfirmed == 1, "one more PUBACK")
            for _ in range(10):
                clock.t += 30 * MAX_BACKOFF
                before = d.resent
                _drain(d, lambda b=before: d.resent == b + 1, "resent at the cap")
        finally:
            link.stop()


def test_keep_false_deletes_on_puback(tmp_path: Path, broker: Broker) -> None:
    link = MqttLink(broker.address, "t-node-noack")
    link.start()
    with Spool(tmp_path / "spool.db") as spool:
        try:
            assert link.wait_connected(10)
            d = Delivery(spool, link, keep=False)
            _batch(spool, 5)
            _drain(d, lambda: spool.depth == 0, "deleted on PUBACK")
            assert d.published == 5 and d.unconfirmed == 0
        finally:
            link.stop()


def _spool_depth(path: Path) -> int:
    c = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return int(c.execute("SELECT COUNT(*) FROM batches").fetchone()[0])
    finally:
        c.close()


def test_a_replay_ends_when_the_aggregator_has_everything(tmp_path: Path, broker: Broker) -> None:
    """With an aggregator that acknowledges, a finished replay waits until the store
    database has every batch: its spool is empty, its final status says 0 unconfirmed."""
    cap = write_capture(tmp_path / "cap", frames_per_s=50, seconds=60)
    key = store_key(tmp_path / "store.key")
    ing = Ingestor(STORE, str(tmp_path / "store.db"), broker.address, "t-ack-agg")
    ing.start()
    try:
        toml = node_toml(
            tmp_path / "node.toml", broker.address, tmp_path / "state", key,
            wifi={"pcap": str(cap.dir / "wifi.pcap")}, ble={"pcap": str(cap.dir / "ble.pcap")},
            batch={"max_items": 20},
            replay={"realtime": True, "speed": 30.0},  # 2 s: the aggregator is heard
        )  # fmt: skip
        d = NodeDaemon(node_config.load(toml), clock=FixedClock(True))
        s = d.run(install_signals=False)
        assert s.state == "done" and s.spool_depth == 0
        assert d.acks is not None and d.acks.received > 0
        assert d.delivery is not None and d.delivery.confirmed == s.batches["obs"] > 50
        assert _spool_depth(tmp_path / "state" / "spool.db") == 0
        wait_for(lambda: ing.node_status.get("n1", {}).get("state") == "done", 10, "done")
        assert ing.node_status["n1"]["unconfirmed"] == 0
        n, top = ing.db.stored_seqs("obs", "n1")
        assert (n, top) == (s.batches["obs"], s.batches["obs"] - 1)
    finally:
        ing.stop()


def test_the_bound_drops_unconfirmed_batches_and_counts_them(
    tmp_path: Path, broker: Broker
) -> None:
    """A long aggregator outage: the broker has every batch, the aggregator none; the
    spool's bound drops the oldest (counted), and ``unconfirmed`` follows the spool."""
    link = MqttLink(broker.address, "t-node-bound")
    link.start()
    with Spool(tmp_path / "spool.db", max_batches=4) as spool:
        try:
            assert link.wait_connected(10)
            d = Delivery(spool, link)
            _batch(spool, 4)
            _drain(d, lambda: d.unconfirmed == 4, "four PUBACKs")
            _batch(spool, 3)  # over the bound: the 3 oldest go, counted
            assert spool.stats().dropped_batches == 3 and spool.depth == 4
            assert d.unconfirmed == 1
            _drain(d, lambda: d.unconfirmed == 4, "the new ones acknowledged by the broker")
            assert [b.seq for b in spool.after(0, 10)] == [3, 4, 5, 6]
            assert d.confirm(Ack("obs", 6, ((3, 6),))) == 4 and spool.depth == 0
        finally:
            link.stop()
