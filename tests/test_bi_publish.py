"""What a BI client gets from a running store aggregator (issue 18): the shipped TLS broker
with the generated ACL, nodes replaying a simulated store with their own certificates,
the aggregator (live) with its certificate, and a BI client with the BI certificate.

The aggregator runs in-process on the store's clock (the replayed day is in the past),
so the live steps that would take hours of wall time take seconds.
"""

from __future__ import annotations

import json
import re
import sqlite3
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest

from heatmap.aggregator import config as aggregator_config
from heatmap.aggregator.daemon import AggregatorDaemon
from heatmap.aggregator.publish.bi_payloads import period_id
from heatmap.simulate.demo import node_boards
from heatmap.simulate.scenario import Scenario
from heatmap.simulate.store_day import simulate
from heatmap.spatial import floorplan
from sensing.node.replay import replay_node
from sensing.privacy.key_file import KeyFile
from sensing.provision.broker_acl import layout_from_plan
from sensing.runtime.mqtt_link import BrokerAddress, connect, make_client
from sensing.wire import payloads, topics

from broker_fixtures import STORE, Broker, StorePki, make_pki, tls_broker, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.timeout(400)]

DEFAULT_PLAN = (
    Path(__file__).resolve().parents[1] / "heatmap" / "spatial" / "data" / "default_store.toml"
)
PID = re.compile(rb"[0-9a-f]{16}")
START = datetime(2026, 11, 20, 10, 0)
HOURS = 1.5


@dataclass
class Bi:
    """A BI client with the BI certificate, recording the retained state it sees."""

    addr: BrokerAddress
    name: str
    state: dict[str, bytes] = field(default_factory=dict)
    retained: dict[str, bool] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self.c = make_client(self.addr, self.name, v5=True)
        self.c.on_message = self._on_message
        connect(self.c, self.addr)
        self.c.subscribe([("footfall/#", 1), ("homeassistant/#", 1)])

    def _on_message(self, _c: mqtt.Client, _u: object, m: mqtt.MQTTMessage) -> None:
        with self.lock:
            self.state[m.topic] = bytes(m.payload)
            self.retained[m.topic] = bool(m.retain)

    def get(self, topic: str) -> dict[str, Any] | None:
        with self.lock:
            raw = self.state.get(topic)
        return json.loads(raw) if raw else None

    def close(self) -> None:
        self.c.loop_stop()
        self.c.disconnect()


@dataclass
class Store:
    pki: StorePki
    broker: Broker
    cfg_path: Path
    plan: floorplan.FloorPlan
    end_ms: int


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    d = tmp_path_factory.mktemp("bi")
    plan_path = d / "plan.toml"
    plan_path.write_text(
        DEFAULT_PLAN.read_text().replace('[store]\nid = "demo"', f'[store]\nid = "{STORE}"')
    )
    plan = floorplan.load(plan_path)
    layout = layout_from_plan(plan, ["dash"])
    p = make_pki(d / "pki", layout)
    b = tls_broker(d / "broker", p, layout).start()
    sc = Scenario(start_local=START, hours=HOURS, seed=3)
    sim = simulate(plan, sc, d / "sim")
    capture = sim.out / "capture"
    assert sum(sim.people.values()) > 50, sim.people
    keyfile = d / "store.key"
    KeyFile.provision(keyfile, START.date(), 4, plan.timezone)
    agg = p.client(f"aggregator-{STORE}")
    cfg = d / "store.toml"
    cfg.write_text(
        f"""[aggregator]
store = "{STORE}"
db = "{d / "store.db"}"
floor_plan = "{plan_path}"
status_interval_s = 0.5
client_id = "aggregator-{STORE}"

[live]
occupancy_interval_s = 1

[broker]
host = "127.0.0.1"
port = {b.port}
ca = "{agg.ca}"
cert = "{agg.cert}"
key = "{agg.key}"
"""
    )
    end_ms = sc.t0_ms + int(HOURS * 3600) * 1000
    s = Store(p, b, cfg, plan, end_ms)
    # the nodes replay their captures with their own certificates, the aggregator listening
    clock = {"s": end_ms / 1000 + 60}
    daemon = AggregatorDaemon(aggregator_config.load(cfg), clock=lambda: clock["s"])
    daemon.start()
    try:
        for n in plan.nodes:
            addr = BrokerAddress("127.0.0.1", b.port, p.client(f"node-{n.id}"))
            replay_node(
                STORE, n.id, capture / n.id, keyfile, addr, None, node_boards(plan, capture, n.id)
            )
        assert daemon.ingest.wait_complete({n.id for n in plan.nodes}, timeout_s=120)
    finally:
        daemon.stop()
    yield s
    b.stop()


def _run(store: Store, at_ms: int) -> tuple[AggregatorDaemon, threading.Event, threading.Thread]:
    clock = {"s": at_ms / 1000}
    d = AggregatorDaemon(aggregator_config.load(store.cfg_path), clock=lambda: clock["s"])
    d.start()
    stop = threading.Event()
    t = threading.Thread(target=d.run, args=(stop,), daemon=True)
    t.start()
    return d, stop, t


def _stop(d: AggregatorDaemon, stop: threading.Event, t: threading.Thread) -> None:
    stop.set()
    t.join(60)
    d.stop()


def test_a_bi_client_gets_the_live_aggregates_k_anonymous_and_retained(store: Store) -> None:
    base = f"footfall/v1/{STORE}"
    now = store.end_ms + 20 * 60_000  # 20 min after the last replayed minute
    d, stop, t = _run(store, now)
    bi = Bi(BrokerAddress("127.0.0.1", store.broker.port, store.pki.client("bi-dash")), "bi-dash")
    tz = store.plan.timezone
    closed = period_id(int(store.end_ms - HOURS * 3_600_000), "hour", tz)  # 10:00-11:00
    try:
        wait_for(lambda: bi.get(f"{base}/footfall/{closed}") is not None, 180, "a closed hour")
        wait_for(lambda: (bi.get(f"{base}/footfall/today") or {}).get("visitors"), 60, "today")
        wait_for(lambda: (bi.get(f"{base}/aggregator/status") or {}).get("bi"), 30, "bi status")
        time.sleep(1.0)
        with bi.lock:
            seen = dict(bi.state)
        # every payload validates; nothing pseudonymous; no obs or node status reach BI
        for topic, raw in seen.items():
            assert not PID.search(raw), topic
            if topic.startswith("homeassistant/"):
                continue
            if raw:
                payloads.decode(topics.parse(topic).kind, raw)
        kinds = {topics.parse(tp).kind for tp in seen if tp.startswith("footfall/")}
        assert kinds == {"occupancy", "footfall", "zone_stats", "aggregator_status"}
        zones = {topics.parse(tp).entity for tp in seen if "/zone/" in tp}
        assert zones == {z.id for z in store.plan.zones}
        # the closed hour is the stored hour aggregate, nulls where it has nulls
        conn = sqlite3.connect(f"file:{d.cfg.db}?mode=ro", uri=True)
        a0 = int(store.end_ms - HOURS * 3_600_000)
        (row,) = conn.execute(
            "SELECT payload FROM aggregates WHERE kind = 'footfall' AND entity = 'store' "
            "AND t0_ms = ? AND t1_ms = ?",
            (a0, a0 + 3_600_000),
        ).fetchone()
        stored = json.loads(row)
        pub = bi.get(f"{base}/footfall/{closed}")
        assert pub is not None and pub["final"] and pub["unit"] == "hour"
        assert pub["in"] == stored["door_in"] and pub["visitors"] == stored["visitors"]
        assert pub["passersby"] == stored["passersby"]
        assert pub["dwell_s"]["p50"] == stored["dwell_s"]["p50"]
        for key in ("in", "out", "visitors", "passersby", "visits"):
            assert pub[key] is None or pub[key] >= 5, (key, pub)
        today = bi.get(f"{base}/footfall/today")
        assert today is not None and not today["final"] and today["visitors"] >= pub["visitors"]
        for zid in zones:
            z = bi.get(f"{base}/zone/{zid}/stats")
            assert z is not None and z["zone"] == zid
            day = conn.execute(
                "SELECT SUM(json_extract(payload, '$.devices')) FROM aggregates WHERE kind = "
                "'zone' AND entity = ? AND t1_ms <= ?",
                (zid, z["as_of"]),
            ).fetchone()[0]
            assert (z["visits"] is None) == (day is None), (zid, z, day)
        conn.close()
        occ = bi.get(f"{base}/occupancy")
        assert occ is not None and occ["source"] == "door"
        status = bi.get(f"{base}/aggregator/status")
        assert status is not None and status["bi"]["refused"] == 0 and status["bi"]["errors"] == 0
        before = {tp: raw for tp, raw in seen.items() if "/footfall/" in tp or "/zone/" in tp}
    finally:
        _stop(d, stop, t)
        bi.close()
    # a BI client connecting while the aggregator is down finds the state retained ...
    late = Bi(BrokerAddress("127.0.0.1", store.broker.port, store.pki.client("bi-dash")), "bi-2")
    try:
        wait_for(lambda: late.get(f"{base}/footfall/today") is not None, 10, "retained")
        time.sleep(1.0)
        for tp, raw in before.items():
            assert late.get(tp) == (json.loads(raw) if raw else None), tp
            assert late.retained[tp], f"{tp} came retained to a client that connected later"
        status = late.get(f"{base}/aggregator/status")
        assert status == {"v": 1, "state": "offline"}, "BI tells a stopped pipeline"
        # ... and the same state after the aggregator is back
        d, stop, t = _run(store, now + 10_000)
        try:
            wait_for(lambda: (late.get(f"{base}/aggregator/status") or {}).get("state") == "online")
            wait_for(lambda: d.bi is not None and d.bi.counts.recomputed >= 1, 30, "a BI tick")
            time.sleep(1.0)
            for tp, raw in before.items():
                assert late.get(tp) == (json.loads(raw) if raw else None), tp
        finally:
            _stop(d, stop, t)
    finally:
        late.close()


def test_home_assistant_discovery_follows_birth_and_a_removed_zone(store: Store) -> None:
    """Discovery is retained, sent again when Home Assistant announces itself, and a zone
    taken out of the floor plan is removed from Home Assistant in two steps."""
    topic = f"homeassistant/device/{STORE}/config"
    now = store.end_ms + 20 * 60_000
    zone_ids = [z.id for z in store.plan.zones]
    last = f"zone_{zone_ids[-1]}_occupancy"
    count: dict[str, int] = {"n": 0}
    ha = Bi(BrokerAddress("127.0.0.1", store.broker.port, store.pki.client("bi-dash")), "bi-dash")
    ha.c.message_callback_add(topic, lambda _c, _u, m: count.__setitem__("n", count["n"] + 1))
    d, stop, t = _run(store, now)
    try:
        wait_for(lambda: count["n"] >= 1, 60, "discovery")
        wait_for(lambda: ha.c.is_connected(), 10)
        n = count["n"]
        ha.c.publish("homeassistant/status", b"online", qos=1)
        wait_for(lambda: count["n"] > n, 30, "discovery again after Home Assistant's birth")
    finally:
        _stop(d, stop, t)
    # the last zone leaves the floor plan (the others keep their places)
    plan2 = store.cfg_path.parent / "plan_without_last_zone.toml"
    text = (store.cfg_path.parent / "plan.toml").read_text()
    cut = text.rindex("[[zones]]")
    end = text.find("\n[", cut + 1)
    plan2.write_text(text[:cut] + (text[end + 1 :] if end >= 0 else ""))
    cfg2 = store.cfg_path.parent / "store2.toml"
    cfg2.write_text(store.cfg_path.read_text().replace("plan.toml", plan2.name))
    got: list[dict[str, Any]] = []
    ha.c.message_callback_add(topic, lambda _c, _u, m: got.append(json.loads(m.payload)))
    d, stop, t = _run(Store(store.pki, store.broker, cfg2, store.plan, store.end_ms), now + 5_000)
    try:
        wait_for(lambda: got and got[-1]["cmps"].get(last) == {"p": "sensor"}, 60, "removal")
        assert all(f"zone_{z}_occupancy" in got[-1]["cmps"] for z in zone_ids[:-1])
        n = len(got)
        ha.c.publish("homeassistant/status", b"online", qos=1)
        wait_for(lambda: len(got) > n and last not in got[-1]["cmps"], 30, "left out")
    finally:
        _stop(d, stop, t)
        ha.close()
