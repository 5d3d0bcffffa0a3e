"""The aggregator's retained BI state against a real Mosquitto: published once, again
until the broker acknowledged the latest, across a broker outage; a refused topic is
counted and not hammered; the occupancy goes out when it changes (issue 18)."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest

from heatmap.aggregator.publish.bi_publisher import BiPublisher
from heatmap.aggregator.publish.retained_state import RetainedState
from heatmap.spatial.floorplan import load_default
from sensing.runtime.mqtt_link import BrokerAddress, Publisher, connect, make_client

from broker_fixtures import make_pki, plain_broker, tls_broker, wait_for

pytestmark = pytest.mark.timeout(120)


def _retained(addr: BrokerAddress, topic: str, name: str) -> bytes | None:
    """What the broker holds retained on ``topic`` (None: nothing), read by a new client."""
    got: list[bytes] = []
    done = threading.Event()
    c = make_client(addr, name, v5=True)

    def on_message(_c: mqtt.Client, _u: object, m: mqtt.MQTTMessage) -> None:
        if m.retain:
            got.append(bytes(m.payload))
        done.set()

    c.on_message = on_message
    connect(c, addr)
    c.subscribe(topic, qos=1)
    done.wait(2.0)
    c.loop_stop()
    c.disconnect()
    return got[-1] if got else None


def test_published_once_and_again_until_acknowledged_across_an_outage(tmp_path: Path) -> None:
    b = plain_broker(tmp_path / "b").start()
    try:
        c = make_client(b.address, "agg", clean=False, v5=True)
        connect(c, b.address)
        pub = Publisher(c, max_pending=10, block_s=0.1)
        st = RetainedState(pub)
        assert st.want("footfall/v1/s1/footfall/today", b'{"a":1}')
        wait_for(lambda: st.confirmed("footfall/v1/s1/footfall/today") == b'{"a":1}', 10)
        assert not st.want("footfall/v1/s1/footfall/today", b'{"a":1}'), "unchanged: not again"
        assert st.published == 1
        b.kill9()
        # while the broker is away: handed to paho's queue (or not handed: wanted again)
        for i in range(30):
            st.want(f"footfall/v1/s1/footfall/2026-11-20T{i:02d}", b'{"h":%d}' % i)
        st.want("footfall/v1/s1/footfall/today", b'{"a":2}')
        assert st.confirmed("footfall/v1/s1/footfall/today") == b'{"a":1}'
        b.start()

        def settled() -> bool:  # the daemon's tick: want everything again
            for i in range(30):
                st.want(f"footfall/v1/s1/footfall/2026-11-20T{i:02d}", b'{"h":%d}' % i)
            st.want("footfall/v1/s1/footfall/today", b'{"a":2}')
            return st.topics() == 31 and st.confirmed("footfall/v1/s1/footfall/today") == b'{"a":2}'

        wait_for(settled, 60, "every topic confirmed after the outage")
        assert st.not_handed > 0, "the pending list was full while the broker was away"
        assert _retained(b.address, "footfall/v1/s1/footfall/today", "r1") == b'{"a":2}'
        assert _retained(b.address, "footfall/v1/s1/footfall/2026-11-20T29", "r2") == b'{"h":29}'
        c.loop_stop()
        c.disconnect()
    finally:
        b.stop()


def test_a_refused_topic_is_counted_and_tried_again_only_later(tmp_path: Path) -> None:
    p = make_pki(tmp_path / "pki")
    b = tls_broker(tmp_path / "b", p).start()
    try:
        addr = BrokerAddress("127.0.0.1", b.port, p.client("bi-dash"))
        c = make_client(addr, "bi-dash", v5=True)
        connect(c, addr)
        clock = {"t": 0.0}
        st = RetainedState(Publisher(c), refused_retry_s=300, clock=lambda: clock["t"])
        topic = "footfall/v1/s1/footfall/today"  # BI reads aggregates, never writes them
        assert st.want(topic, b"{}")
        wait_for(lambda: st.refused == 1, 10, "the ACL's refusal")
        assert st.confirmed(topic) is None
        assert not st.want(topic, b"{}"), "not again within refused_retry_s"
        clock["t"] = 301.0
        assert st.want(topic, b"{}")
        c.loop_stop()
        c.disconnect()
    finally:
        b.stop()


def test_occupancy_goes_out_when_it_changes_and_every_five_minutes(tmp_path: Path) -> None:
    b = plain_broker(tmp_path / "b").start()
    try:
        c = make_client(b.address, "agg", v5=True)
        connect(c, b.address)
        seen: list[dict[str, Any]] = []
        r = make_client(b.address, "rec", v5=True)
        r.on_message = lambda _c, _u, m: seen.append(json.loads(m.payload))
        connect(r, b.address)
        r.subscribe("footfall/v1/s1/occupancy", qos=1)
        plan = load_default()
        bi = BiPublisher("s1", plan, 5, RetainedState(Publisher(c)))

        def occ(t: int, n: int) -> dict[str, Any]:
            return {
                "v": 1, "t": t, "as_of": t, "occupancy": n, "low": n - 1, "high": n + 2,
                "confidence": 0.8, "source": "door", "k": 5, "suppressed": False,
            }  # fmt: skip

        t0 = 1_795_165_200_000
        bi._occupancy(occ(t0, 12), t0)
        bi._occupancy(occ(t0 + 10_000, 12), t0 + 10_000)  # unchanged: not published
        bi._occupancy(occ(t0 + 20_000, 13), t0 + 20_000)  # changed
        bi._occupancy(occ(t0 + 330_000, 13), t0 + 330_000)  # unchanged, 5 min on: refreshed
        wait_for(lambda: len(seen) == 3, 10)
        time.sleep(0.3)
        assert [(p["t"], p["occupancy"]) for p in seen] == [
            (t0, 12),
            (t0 + 20_000, 13),
            (t0 + 330_000, 13),
        ]
        for cl in (c, r):
            cl.loop_stop()
            cl.disconnect()
    finally:
        b.stop()


def test_a_broker_that_lost_its_retained_messages_gets_them_again(tmp_path: Path) -> None:
    """A broker killed inside its autosave window forgets what it had acknowledged: once the
    connection was seen down, the next ticks publish everything again."""
    b = plain_broker(tmp_path / "b", persistence=False).start()
    try:
        c = make_client(b.address, "agg", clean=False, v5=True)
        connect(c, b.address)
        st = RetainedState(Publisher(c, max_pending=10, block_s=0.1))
        topic, body = "footfall/v1/s1/footfall/2026-11-20T10", b'{"h":10}'
        assert not st.watch_connection()
        st.want(topic, body)
        wait_for(lambda: st.confirmed(topic) == body, 10)
        b.kill9()  # no persistence: every retained message is gone
        wait_for(lambda: not c.is_connected(), 10, "the client sees the broker go")
        assert not st.watch_connection()  # down: nothing to do yet
        b.start()
        wait_for(lambda: c.is_connected(), 30, "the reconnect")
        assert _retained(b.address, topic, "r0") is None, "the broker lost it"
        assert st.watch_connection() and st.refreshes == 1
        assert st.want(topic, body), "published again"
        wait_for(lambda: st.confirmed(topic) == body, 10)
        assert _retained(b.address, topic, "r1") == body
        assert not st.watch_connection(), "once per outage"
        c.loop_stop()
        c.disconnect()
    finally:
        b.stop()
