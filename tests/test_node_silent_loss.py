"""Issue 23 case 8, silent loss on the node: a UART replay never lets a CRC-good
frame with an impossible value poison a batch; door and tile events are stored
once however often they are replayed; a re-imaged node's new seq namespace is
accepted; drops that drop everything are loud (status, doctor, exit code)."""

from __future__ import annotations

import json
import shutil
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from test_bridge_payloads import event_batches

from firmware_bridge.errors import AllDroppedError
from firmware_bridge.events import DoorEvent
from firmware_bridge.protocol import BoardKind, DoorCrossing, Heartbeat, Hello, TileChange, encode
from heatmap.aggregator.ingest import Ingestor
from heatmap.aggregator.store_db import Claim, StoreDB
from sensing.capture.capture_file import read_records
from sensing.capture.live_wifi import ReplaySocket
from sensing.node import config as node_config
from sensing.node.clock_sync import FixedClock
from sensing.node.config import NodeConfig
from sensing.node.daemon import NodeDaemon
from sensing.node.doctor.runner import Doctor
from sensing.node.sources import LiveWifiSource, board_events
from sensing.wire import payloads, topics

from broker_fixtures import (
    STORE,
    Broker,
    footfall,
    node_toml,
    plain_broker,
    store_key,
    wait_for,
    write_capture,
)


def _uart(path: Path, frames: bytes, tick0: int = 1_795_000_000_000) -> Path:
    path.write_bytes(frames)
    path.with_suffix(path.suffix + ".json").write_text(json.dumps({"tick0_epoch_ms": tick0}))
    return path


def test_uart_replay_rejects_an_impossible_direction_or_state(tmp_path: Path) -> None:
    door = _uart(
        tmp_path / "door.uart",
        encode(Hello(1, 0, BoardKind.DOOR, 2), 1, 0)
        + encode(DoorCrossing(100, 1), 1, 1)
        + encode(DoorCrossing(200, 0), 1, 2)  # CRC-good, direction 0
        + encode(Heartbeat(1000), 1, 3)
        + encode(DoorCrossing(1300, -1), 1, 4)
        + encode(TileChange(1400, 3, 7), 1, 5),  # CRC-good, state 7
    )
    events, stats = board_events(door)
    assert [(e.t_ms - 1_795_000_000_000, getattr(e, "direction", None)) for e in events] == [
        (100, 1),
        (1300, -1),
    ]
    assert stats["reject_value"] == 2
    for batch in event_batches([e for e in events if isinstance(e, DoorEvent)], stats):
        payloads.validate("door_events", batch)  # the batch is not poisoned


T0 = 1_795_000_000_000
T0_OLD = 1_759_300_000_000
"""2025-10-01: before the test key's start (2026-11-01)"""


def _door_batch(seq: int, rows: list[list[int]], t0: int = T0) -> dict[str, object]:
    return {"v": 1, "seq": seq, "t0": t0, "ev": rows}


def test_the_same_door_and_tile_events_are_stored_once(tmp_path: Path) -> None:
    db = StoreDB(tmp_path / "store.db")
    rows = [[0, 1], [850, -1], [2000, 1]]
    assert db.add_door("main", _door_batch(0, rows)) is Claim.NEW
    # the same stream again under other seqs (a second replay, a live board re-fed)
    assert db.add_door("main", _door_batch(7, rows)) is Claim.DUPLICATE
    assert db.add_door("main", _door_batch(8, [*rows[1:], [2500, -1]])) is Claim.NEW
    tiles = {"v": 1, "seq": 0, "t0": T0, "ev": [[0, 3, 1], [40, 3, 0]]}
    assert db.add_floor("f1", tiles) is Claim.NEW
    assert db.add_floor("f1", {**tiles, "seq": 1}) is Claim.DUPLICATE
    db.commit()
    assert db.count("door_events") == 4 and db.count("floor_events") == 2
    # another door, and the same door's other direction at the same instant, are other events
    assert db.add_door("side", _door_batch(0, rows)) is Claim.NEW
    assert db.add_door("main", _door_batch(9, [[0, -1]])) is Claim.NEW
    assert db.count("door_events") == 8


def test_a_reimaged_board_restarting_its_seq_is_stored_not_rejected(tmp_path: Path) -> None:
    db = StoreDB(tmp_path / "store.db")
    for seq in range(3):
        db.add_door("main", _door_batch(seq, [[i * 100, 1] for i in range(25)], T0 + seq * 10_000))
    later = T0 + 3_600_000  # the re-imaged node's spool numbers from 0 again
    out = [[i * 100, -1] for i in range(25)]
    claims = [db.add_door("main", _door_batch(s, out, later + s * 10_000)) for s in range(3)]
    assert claims == [Claim.NEW] * 3
    db.commit()
    assert db.count("door_events") == 150  # 75 + the re-imaged node's 75 crossings


# ------------------------------------------------------------------ drops that drop everything


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Broker]:
    b = plain_broker(tmp_path / "broker").start()
    yield b
    b.stop()


def _retained_status(brk: Broker, node: str = "n1") -> dict[str, Any]:
    """The node's retained status, read by a fresh subscriber (bounded wait)."""
    got: list[bytes] = []
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="t-silent-status")
    c.on_message = lambda _c, _u, m: got.append(bytes(m.payload))
    c.connect(brk.address.host, brk.address.port)
    c.subscribe(topics.node_status_topic(STORE, node), qos=1)
    c.loop_start()
    try:
        wait_for(lambda: got, 10, "retained status")
    finally:
        c.loop_stop()
        c.disconnect()
    st = json.loads(got[-1])
    payloads.validate("node_status", st)
    return st


def _run_node(toml: Path) -> tuple[int, str]:
    p = footfall("node", "--config", str(toml))
    _, err = p.communicate(timeout=90)
    return p.returncode, err


def _one_error_line(err: str) -> str:
    assert "Traceback" not in err
    lines = [ln for ln in err.splitlines() if ln.startswith("footfall: error:")]
    assert len(lines) == 1, err
    return lines[0]


@pytest.mark.timeout(120)
def test_a_replay_that_refuses_every_frame_exits_non_zero_and_says_why(
    tmp_path: Path, broker: Broker
) -> None:
    cap = write_capture(tmp_path / "cap", frames_per_s=20, seconds=10)
    key = store_key(tmp_path / "store.key")
    # require_sync on a clock that is not synchronized (this host's, in a test
    # container, or a fixed one): every frame refused
    cfg = node_toml(
        tmp_path / "node.toml",
        broker.address,
        tmp_path / "state",
        key,
        wifi={"pcap": str(cap.dir / "wifi.pcap")},
        ble={"pcap": str(cap.dir / "ble.pcap")},
        clock={"require_sync": True},
    )
    d = NodeDaemon(node_config.load(cfg), clock=FixedClock(synced=False, offset_ms=None))
    with pytest.raises(AllDroppedError, match="clock_unsynced"):
        d.run(install_signals=False)
    assert d.summary.problems == ("clock_unsynced",)
    st = _retained_status(broker)
    assert st["state"] == "done" and st["healthy"] is False
    assert st["problems"] == ["clock_unsynced"]
    assert st["dropped"]["clock_unsynced"] == cap.frames
    doc = Doctor(node_config.load(cfg), clock=FixedClock(synced=False), broker_timeout_s=2)
    clock = {c.name: c for c in doc.run()}["clock"]
    assert clock.level == "FAIL" and "clock_unsynced" in clock.message, clock


@pytest.mark.timeout(120)
def test_a_capture_older_than_the_key_exits_non_zero_and_doctor_fails(
    tmp_path: Path, broker: Broker
) -> None:
    # the store key starts on 2026-11-01; this capture is from a month before
    cap = write_capture(tmp_path / "cap", frames_per_s=20, seconds=10, t0_ms=T0_OLD)
    key = store_key(tmp_path / "store.key")
    cfg = node_toml(
        tmp_path / "node.toml",
        broker.address,
        tmp_path / "state",
        key,
        wifi={"pcap": str(cap.dir / "wifi.pcap")},
        ble={"pcap": str(cap.dir / "ble.pcap")},
    )
    rc, err = _run_node(cfg)
    assert rc == 1
    line = _one_error_line(err)
    assert f"every one of {cap.frames} frames" in line and "stale_epoch" in line, line
    st = _retained_status(broker)
    assert st["healthy"] is False and st["problems"] == ["stale_epoch"]
    checks = {c.name: c for c in Doctor(node_config.load(cfg), broker_timeout_s=2).run()}
    assert checks["key file"].level == "FAIL", checks["key file"]
    assert "stale_epoch" in checks["key file"].message


@pytest.mark.timeout(120)
def test_a_healthy_replay_says_healthy(tmp_path: Path, broker: Broker) -> None:
    cap = write_capture(tmp_path / "cap", frames_per_s=20, seconds=10)
    key = store_key(tmp_path / "store.key")
    cfg = node_toml(
        tmp_path / "node.toml",
        broker.address,
        tmp_path / "state",
        key,
        wifi={"pcap": str(cap.dir / "wifi.pcap")},
        ble={"pcap": str(cap.dir / "ble.pcap")},
    )
    rc, err = _run_node(cfg)
    assert rc == 0, err
    st = _retained_status(broker)
    assert st["healthy"] is True and "problems" not in st
    checks = {c.name: c for c in Doctor(node_config.load(cfg), broker_timeout_s=2).run()}
    assert checks["key file"].level == "ok", checks["key file"]


# ------------------------------------------------------------------ a re-imaged node


def _live_run(tmp_path: Path, brk: Broker, key: Path, t0_ms: int, seed: int) -> int:
    """A live node (Wi-Fi monitor fed from a replay socket) that publishes one
    capture's frames and stops; returns the observations it made."""
    cap = write_capture(tmp_path / f"cap{seed}", frames_per_s=40, seconds=3, t0_ms=t0_ms, seed=seed)
    records = list(read_records(cap.dir / "wifi.pcap"))
    cfg = NodeConfig(
        store=STORE,
        node="n1",
        keyfile=key,
        state_dir=tmp_path / "state",  # the same path: a re-image wipes it in between
        broker=node_config.BrokerConfig("127.0.0.1", brk.port),
        max_age_ms=200,
        status_interval_s=0.3,
        wifi=node_config.WifiConfig(interface="wlan9"),
    )
    src = LiveWifiSource("wlan9", open_socket=lambda _iface: ReplaySocket(records))
    d = NodeDaemon(cfg, clock=FixedClock(True), radio=_NoRadio(), sources=[src])
    t = threading.Thread(target=d.run, kwargs={"install_signals": False}, daemon=True)
    t.start()
    try:
        wait_for(lambda: _delivered(d, len(records)), 20, "all delivered")
    finally:
        d.request_stop()
        t.join(30)
    assert not t.is_alive()
    return d.summary.observations


def _delivered(d: NodeDaemon, records: int) -> bool:
    """Every record was taken and every batch it made acknowledged (main loop state,
    read from the test thread: a stale read only means one more poll)."""
    streams = getattr(d, "streams", None)
    if streams is None or d.spool is None or d.delivery is None:
        return False
    return streams.taken >= records and d.spool.depth == 0 and d.delivery.published > 0


class _NoRadio:
    def set_channel(self, channel: int) -> None:
        pass


@pytest.mark.timeout(120)
def test_a_reimaged_live_node_starts_a_new_seq_namespace(tmp_path: Path, broker: Broker) -> None:
    key = store_key(tmp_path / "store.key")
    ing = Ingestor(STORE, str(tmp_path / "store.db"), broker.address, "t-silent-agg")
    ing.start()
    try:
        now = time.time_ns() // 1_000_000
        first = _live_run(tmp_path, broker, key, now - 8000, seed=1)
        shutil.rmtree(tmp_path / "state")  # re-imaged: a new, empty spool
        second = _live_run(tmp_path, broker, key, now - 4000, seed=2)
        wait_for(lambda: ing.stats.committed_observations >= first + second, 20, "all stored")
    finally:
        ing.stop()
    assert ing.stats.committed_observations == first + second
    assert "seq_reused" not in ing.rejects
    db = sqlite3.connect(tmp_path / "store.db")
    seqs = [s for (s,) in db.execute("SELECT seq FROM batches WHERE kind='obs' ORDER BY seq")]
    assert len(seqs) == len(set(seqs)) and seqs[0] > 0  # two disjoint namespaces, time-based


@pytest.mark.timeout(120)
def test_a_live_node_refusing_every_frame_says_unhealthy(tmp_path: Path, broker: Broker) -> None:
    key = store_key(tmp_path / "store.key")
    now = time.time_ns() // 1_000_000
    cap = write_capture(tmp_path / "cap", frames_per_s=40, seconds=3, t0_ms=now - 5000)
    records = list(read_records(cap.dir / "wifi.pcap"))
    cfg = NodeConfig(
        store=STORE,
        node="n1",
        keyfile=key,
        state_dir=tmp_path / "state",
        broker=node_config.BrokerConfig("127.0.0.1", broker.port),
        status_interval_s=0.3,
        require_sync=True,
        wifi=node_config.WifiConfig(interface="wlan9"),
    )
    src = LiveWifiSource("wlan9", open_socket=lambda _iface: ReplaySocket(records))
    d = NodeDaemon(cfg, clock=FixedClock(False), radio=_NoRadio(), sources=[src])
    t = threading.Thread(target=d.run, kwargs={"install_signals": False}, daemon=True)
    t.start()
    try:
        wait_for(lambda: getattr(d, "streams", None) and d.streams.taken >= len(records), 20,
                 "every frame taken")  # fmt: skip
        wait_for(lambda: _retained_status(broker).get("healthy") is False, 10, "unhealthy")
    finally:
        d.request_stop()
        t.join(30)
    st = _retained_status(broker)
    assert st["state"] == "offline" and st["healthy"] is False
    assert st["problems"] == ["clock_unsynced"] and st["dropped"]["clock_unsynced"] == len(records)
