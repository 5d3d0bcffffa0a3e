"""``footfall aggregator`` against a real Mosquitto: configuration errors name the
field; retained status (schema-valid) with rejects and node states; SIGKILL
mid-write leaves an intact database of whole batches, and a restart stores the
rest exactly once; the hourly retention job runs through the ingest writer."""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from firmware_bridge.errors import ConfigError
from heatmap.aggregator import config as aggregator_config
from heatmap.aggregator import status as aggregator_status
from heatmap.aggregator.broker import RunningBroker
from heatmap.aggregator.daemon import AggregatorDaemon
from heatmap.aggregator.ingest_stats import IngestStats, PublisherTrack
from heatmap.aggregator.pid_class import HOUR_MS
from sensing.runtime.mqtt_link import connect, make_client
from sensing.wire import payloads, topics

from broker_fixtures import recent_start_in_one_hour
from conftest import notify_socket
from ingest_fixtures import (
    T0,
    obs,
    obs_payload,
    publisher,
    start_aggregator,
    status,
    wait_until,
    write_config,
)

DEFAULT_PLAN = (
    Path(__file__).resolve().parents[1] / "heatmap" / "spatial" / "data" / "default_store.toml"
)

# ------------------------------------------------------------------ configuration


def _cfg(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "store.toml"
    p.write_text(text)
    return p


def test_minimal_and_full_config(tmp_path: Path) -> None:
    c = aggregator_config.load(_cfg(tmp_path, '[aggregator]\nstore = "demo"\ndb = "s.db"\n'))
    assert c.store == "demo" and c.db == tmp_path / "s.db" and c.k == 5
    assert c.retention.retention_hours == 24 and c.broker.port == 1883 and c.broker.tls is None
    assert c.client_id == "footfall-aggregator-demo" and c.plan_nodes == ()
    for name in ("ca.crt", "agg.crt", "agg.key"):
        (tmp_path / name).write_text("x")
    full = f"""
[aggregator]
store = "demo"
db = "/var/lib/footfall/store.db"
floor_plan = "{DEFAULT_PLAN}"
k = 7
status_interval_s = 5
offline_after_s = 120
client_id = "agg-1"

[retention]
retention_hours = 12
aggregate_after_s = 60
ble_min_rssi_dbm = -85
wifi_min_rssi_dbm = -72
visitor_min_span_s = 90

[broker]
host = "broker.local"
ca = "ca.crt"
cert = "agg.crt"
key = "agg.key"
username = "aggregator"
password = "secret"
"""
    c = aggregator_config.load(_cfg(tmp_path, full))
    assert c.k == 7 == c.retention.k and c.retention.retention_hours == 12
    assert c.retention.rule.ble_min_rssi_dbm == -85 and c.retention.rule.min_span_s == 90
    assert c.retention.tz == "Europe/Amsterdam" and c.plan_nodes[:2] == ("n1", "n2")
    assert c.broker.port == 8883 and c.broker.tls is not None
    assert c.broker.tls.key == tmp_path / "agg.key" and c.broker.username == "aggregator"


def test_shipped_example_parses(tmp_path: Path) -> None:
    """deploy/store.example.toml, its floor plan and TLS files pointed at ones here."""
    text = (DEFAULT_PLAN.parents[3] / "deploy" / "store.example.toml").read_text()
    assert '"/etc/footfall/floorplan.toml"' in text and text.count("/etc/footfall/tls/") == 3
    tls = tmp_path / "tls"
    tls.mkdir()
    for name in ("ca.crt", "aggregator-demo.crt", "aggregator-demo.key"):
        (tls / name).write_text("")
    text = text.replace('"/etc/footfall/floorplan.toml"', f'"{DEFAULT_PLAN}"')
    p = tmp_path / "store.toml"
    p.write_text(text.replace("/etc/footfall/tls/", f"{tls}/"))
    cfg = aggregator_config.load(p)
    assert cfg.store == "demo" and cfg.db == Path("/var/lib/footfall/store.db")
    assert cfg.broker.port == 8883 and cfg.broker.tls is not None and cfg.k == 5


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ('[aggregator]\ndb = "s.db"\n', "aggregator.store"),
        ('[aggregator]\nstore = "de/mo"\ndb = "s.db"\n', "aggregator.store"),
        ('[aggregator]\nstore = "demo"\n', "aggregator.db"),
        (
            '[aggregator]\nstore = "demo"\ndb = "s.db"\nretention_hour = 3\n',
            "aggregator.retention_hour",
        ),
        ('[aggregator]\nstore = "demo"\ndb = "s.db"\nk = 1\n', "aggregator.k"),
        ('[aggregator]\nstore = "demo"\ndb = "s.db"\nk = 5.5\n', "aggregator.k"),
        (
            '[aggregator]\nstore = "demo"\ndb = "s.db"\n[retention]\nretention_hours = 72\n',
            "retention.retention_hours",
        ),
        (
            '[aggregator]\nstore = "demo"\ndb = "s.db"\n[retention]\nretention_hours = "1d"\n',
            "retention.retention_hours",
        ),
        ('[aggregator]\nstore = "demo"\ndb = "s.db"\n[broker]\nport = 70000\n', "broker.port"),
        ('[aggregator]\nstore = "demo"\ndb = "s.db"\n[broker]\ncert = "c.crt"\n', "broker.key"),
        ('[aggregator]\nstore = "demo"\ndb = "s.db"\n[broker]\nca = "missing.crt"\n', "broker.ca"),
        (
            '[aggregator]\nstore = "demo"\ndb = "s.db"\n[broker]\npassword = "x"\n',
            "broker.password",
        ),
        (
            '[aggregator]\nstore = "other"\ndb = "s.db"\nfloor_plan = "PLAN"\n',
            "aggregator.floor_plan",
        ),
        (
            '[aggregator]\nstore = "demo"\ndb = "s.db"\nfloor_plan = "nope.toml"\n',
            "aggregator.floor_plan",
        ),
        ('[aggregator]\nstore = "demo"\ndb = "s.db"\n[mqtt]\nhost = "x"\n', "[mqtt]"),
        ("[aggregator\n", "invalid TOML"),
        ("", "[aggregator]"),
    ],
)
def test_config_errors_name_the_field(tmp_path: Path, text: str, field: str) -> None:
    p = _cfg(tmp_path, text.replace("PLAN", str(DEFAULT_PLAN)))
    with pytest.raises(ConfigError) as e:
        aggregator_config.load(p)
    assert str(e.value).startswith(f"{p}: ") and field in str(e.value)


def test_cli_reports_config_errors(tmp_path: Path) -> None:
    p = _cfg(tmp_path, '[aggregator]\nstore = "demo"\n')
    r = subprocess.run(
        [sys.executable, "-m", "sensing.cli.main", "aggregator", "--config", str(p)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert (
        r.returncode == 1
        and r.stderr.startswith("footfall: error: ")
        and "aggregator.db" in r.stderr
    )


# ------------------------------------------------------------------ status payload


def test_node_states() -> None:
    now = T0
    pubs = {
        ("obs", "n1"): PublisherTrack(now - 1000, 41, 42, 1200, now - 2200),
        ("obs", "n2"): PublisherTrack(now - 400_000, 7, 8, 900, now - 401_000),
        ("status", "n3"): PublisherTrack(now - 5000),
        ("obs", "n4"): PublisherTrack(now - 1000, 3, 4, 100, now - 1100),
        ("door", "main"): PublisherTrack(now - 10),
    }
    said = {"n3": {"state": "offline"}, "n4": {"state": "done"}}
    st = aggregator_status.node_states(pubs, said, ["n1", "n2", "n5"], now, 300)
    assert {n: s["state"] for n, s in st.items()} == {
        "n1": "online",
        "n2": "offline",  # silent for 400 s
        "n3": "offline",  # its last will
        "n4": "done",
        "n5": "never_seen",
    }
    assert st["n1"] == {
        "state": "online",
        "last_seen_ms": now - 1000,
        "lag_s": 1.2,
        "last_seq": 41,
        "batches": 42,
    }
    inputs = aggregator_status.StatusInputs(
        now, "0.1.0", 12.5, IngestStats(messages=130, observations=5000, stored=120),
        IngestStats(messages=30, observations=1000), 10.0, {"schema": 2, "not_json": 0}, st, 3,
        4096, 0, 3, 24.0, None, None,
    )  # fmt: skip
    p = aggregator_status.status_payload(inputs)
    payloads.validate("aggregator_status", p)
    assert p["ingest"]["messages_per_s"] == 10.0 and p["ingest"]["observations_per_s"] == 400.0
    assert p["rejects"] == {"schema": 2} and p["nodes_offline"] == ["n2", "n3", "n5"]


# ------------------------------------------------------------------ the daemon


class StatusWatch:
    """Retained status messages of one store, as BI or monitoring sees them."""

    def __init__(self, broker: RunningBroker, store: str) -> None:
        self.msgs: list[dict[str, Any]] = []
        self.c = make_client(broker.address, f"test-status-watch-{store}")
        self.c.on_message = lambda _c, _u, m: self.msgs.append(json.loads(m.payload))
        connect(self.c, broker.address)
        self.c.subscribe(topics.aggregator_status_topic(store), qos=1)

    def last(self) -> dict[str, Any]:
        return self.msgs[-1] if self.msgs else {}

    def close(self) -> None:
        self.c.disconnect()
        self.c.loop_stop()


def _batches(db: Path) -> list[tuple[str, int, int]]:
    try:
        c = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
    except sqlite3.Error:
        return []
    try:
        return c.execute("SELECT publisher, seq, n FROM batches WHERE kind='obs'").fetchall()
    except sqlite3.Error:
        return []
    finally:
        c.close()


def test_status_rejects_and_graceful_stop(mosquitto: RunningBroker, tmp_path: Path) -> None:
    store = "agg1"
    cfg = write_config(tmp_path / "store.toml", store, mosquitto.address)
    watch = StatusWatch(mosquitto, store)
    # as systemd starts it (Type=notify, WatchdogSec): a datagram socket to hear it
    sock, notes = notify_socket(tmp_path / "notify.sock")
    env = {"NOTIFY_SOCKET": str(tmp_path / "notify.sock"), "WATCHDOG_USEC": "400000"}
    proc = start_aggregator(cfg, tmp_path / "agg.log", env)
    try:
        wait_until(lambda: watch.last().get("state") == "online", what="status online")
        wait_until(lambda: any(n.startswith("READY=1") for n in notes), what="READY=1")
        now = int(time.time() * 1000)
        with publisher(mosquitto.address, "test-agg1-pub") as pub:
            pub.publish(topics.node_status_topic(store, "n1"), status("online"), retain=True)
            for seq in range(3):
                pub.publish(topics.obs_topic(store, "n1"), obs(seq, t0=now + seq))
            pub.publish(topics.obs_topic(store, "n1"), b"\x00garbage")
            pub.publish(topics.door_topic(store, "main"), b'{"v":1}')
            pub.drain()
        wait_until(lambda: watch.last().get("ingest", {}).get("batches") == 3, what="3 batches")
        wait_until(lambda: watch.last().get("rejects") == {"not_json": 1, "schema": 1})
        st = watch.last()
        payloads.validate("aggregator_status", st)
        assert st["nodes"]["n1"]["state"] == "online" and st["nodes"]["n1"]["last_seq"] == 2
        assert st["ingest"]["observations"] == 30 and st["retention"]["last_run_ms"] is not None
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
        wait_until(lambda: watch.last() == {"v": 1, "state": "offline"}, what="offline status")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        watch.close()
        sock.close()
    assert "WATCHDOG=1" in notes and "STOPPING=1" in notes, notes
    log = (tmp_path / "agg.log").read_text()
    assert "stopped; 6 messages, 30 observations stored" in log, log
    assert "rejects: not_json 1, schema 1" in log


def test_sigkill_mid_write_leaves_whole_batches_and_restart_loses_nothing(
    mosquitto: RunningBroker, tmp_path: Path
) -> None:
    store = "agg2"
    n_batches, rows = 400, 500
    cfg = write_config(tmp_path / "store.toml", store, mosquitto.address)
    db = tmp_path / "store.db"
    watch = StatusWatch(mosquitto, store)
    proc = start_aggregator(cfg, tmp_path / "agg.log")
    now = recent_start_in_one_hour(n_batches / 2)  # 1 s a batch; inside one hour
    sent = threading.Event()

    def flood() -> None:
        with publisher(mosquitto.address, "test-agg2-pub") as pub:
            for node in ("n1", "n2"):
                for seq in range(n_batches // 2):
                    raw = obs(seq, node=node, t0=now + seq * 1000, rows=rows, span_ms=999)
                    pub.publish(topics.obs_topic(store, node), raw)
            pub.drain(120)
        sent.set()

    try:
        wait_until(lambda: watch.last().get("state") == "online", what="status online")
        t = threading.Thread(target=flood)
        t.start()
        wait_until(lambda: len(_batches(db)) >= 60, timeout_s=60, what="60 batches committed")
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        at_kill = len(_batches(db))
        # the broker published the aggregator's last will
        wait_until(lambda: watch.last() == {"v": 1, "state": "offline"}, what="last will")
        conn = sqlite3.connect(db)
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        # every committed batch is whole: its rows (their pids name the seq) number its n
        per_batch = dict(
            ((node, int(prefix, 16)), n)
            for node, prefix, n in conn.execute(
                "SELECT node, substr(pid, 1, 8), COUNT(*) FROM obs GROUP BY 1, 2"
            )
        )
        stored = {(p, s): n for p, s, n in _batches(db)}
        assert stored and per_batch == stored and set(stored.values()) == {rows}
        conn.close()
        assert at_kill < n_batches, "killed after everything was in: nothing mid-write"
        # a restart picks up the persistent session: the rest arrives, nothing twice
        t.join(120)
        assert sent.is_set()
        proc = start_aggregator(cfg, tmp_path / "agg.log")
        wait_until(lambda: len(_batches(db)) == n_batches, timeout_s=90, what="all batches")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        watch.close()
    conn = sqlite3.connect(db)
    assert conn.execute("SELECT COUNT(*) FROM obs").fetchone()[0] == n_batches * rows
    assert conn.execute("SELECT COUNT(*), SUM(n) FROM batches").fetchone() == (
        n_batches,
        n_batches * rows,
    )
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert conn.execute("SELECT COUNT(*) FROM rejects").fetchone()[0] == 0


def test_hourly_job_through_the_ingest_writer(mosquitto: RunningBroker, tmp_path: Path) -> None:
    """The daemon's retention without the live aggregator: a clock two hours after the
    data; the hour is aggregated (``presence``), its passersby deleted by the RSSI rule, a
    visitor kept; nodes of the floor plan never heard are reported offline; data older
    than the horizon is refused at ingest."""
    store = "agg3"  # the default floor plan, as another store (the demo tests use "demo")
    plan = tmp_path / "plan.toml"
    plan.write_text(
        DEFAULT_PLAN.read_text().replace('[store]\nid = "demo"', f'[store]\nid = "{store}"')
    )
    cfg = aggregator_config.load(
        write_config(
            tmp_path / "store.toml",
            store,
            mosquitto.address,
            floor_plan=str(plan),
            client_id="test-agg3",
            k=2,
            live={"enabled": False},
        )
    )
    hour = T0 - T0 % HOUR_MS
    clock_s = (hour + 2 * HOUR_MS + 600_000) / 1000
    d = AggregatorDaemon(cfg, clock=lambda: clock_s)
    d.start()
    try:
        visitor = {**obs_payload(0, rows=0), "t0": hour + 60_000}
        visitor["obs"] = [[i * 30_000, "aaaaaaaaaaaaaaaa", -60, "ble", 0] for i in range(5)]
        walker = {**obs_payload(1, rows=0), "t0": hour + 120_000}
        walker["obs"] = [[i * 2000, f"{i:016x}", -70, "ble", 0] for i in range(4)]
        ancient = obs_payload(2, t0=hour - 30 * HOUR_MS)
        with publisher(mosquitto.address, "test-agg3-pub") as pub:
            for p in (visitor, walker, ancient):
                pub.publish(topics.obs_topic(store, "n1"), payloads.encode(p))
            pub.drain()
        wait_until(lambda: d.ingest.stats.committed_messages >= 3, what="3 messages")
        assert d.ingest.stats.expired == 1
        rep = d.run_retention()
        assert rep is not None and rep.hours_aggregated == [hour] and rep.passerby_obs == 4
        st = d.publish_status()
        assert (
            st["retention"]["deleted_passerby_obs"] == 4
            and st["retention"]["hours_aggregated"] == 1
        )
        assert st["nodes"]["n1"]["state"] == "online"
        assert set(st["nodes_offline"]) == set(cfg.plan_nodes) - {"n1"}
    finally:
        d.stop()
    conn = sqlite3.connect(cfg.db)
    assert conn.execute("SELECT DISTINCT pid FROM obs").fetchall() == [("aaaaaaaaaaaaaaaa",)]
    payload = json.loads(conn.execute("SELECT payload FROM aggregates").fetchone()[0])
    assert payload["visitor_devices"] is None and payload["passerby_devices"] == 4  # k = 2
    assert payload["period"].startswith("2026-11-18T") and payload["period"].count("+01:00") == 2
