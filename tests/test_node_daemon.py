"""The node daemon against a real Mosquitto: batches per the v1 contract, the
clock rule, the spool bound, SIGTERM, systemd notify, logs without identifiers,
and live board sources (GPIO beams on gpiozero's mock pins, a pty board)."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from firmware_bridge.errors import AllDroppedError
from firmware_bridge.protocol import BoardKind, TileChange
from firmware_bridge.pty_board import PtyBoard
from heatmap.aggregator.broker import free_port
from sensing.node import config as node_config
from sensing.node.clock_sync import FixedClock
from sensing.node.config import BeamConfig, BoardConfig, NodeConfig
from sensing.node.daemon import NodeDaemon, RunSummary
from sensing.node.spool import time_seq_base
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
from conftest import Recorder, notify_socket

pytestmark = pytest.mark.timeout(120)


def _status(rec: Recorder, node: str = "n1") -> dict[str, Any]:
    topic = topics.node_status_topic(STORE, node)
    # live messages only: a retained status left on the shared broker by an earlier
    # test must not be taken for this run's
    st = [json.loads(p) for t, p, retained in rec.messages if t == topic and not retained]
    assert st, "no status published"
    return st[-1]


def _obs(rec: Recorder) -> list[dict[str, Any]]:
    topic = topics.obs_topic(STORE, "n1")
    return [payloads.decode("obs", p) for t, p, _ in rec.messages if t == topic]


class Running:
    """A NodeDaemon in a thread (the tests' stand-in for the process)."""

    def __init__(self, cfg: NodeConfig, **kw: Any) -> None:
        kw.setdefault("clock", FixedClock(True))
        self.daemon = NodeDaemon(cfg, **kw)
        self.summary: RunSummary | None = None
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            self.summary = self.daemon.run(install_signals=False)
        except BaseException as e:
            self.error = e

    def join(self, timeout_s: float = 60) -> RunSummary:
        self.thread.join(timeout_s)
        assert not self.thread.is_alive(), "the daemon did not stop"
        if self.error is not None:
            raise self.error
        assert self.summary is not None
        return self.summary


def _cfg(tmp_path: Path, brk: Broker, capture: Path, key: Path, **extra: Any) -> NodeConfig:
    extra.setdefault("wifi", {"pcap": str(capture / "wifi.pcap")})
    extra.setdefault("ble", {"pcap": str(capture / "ble.pcap")})
    toml = node_toml(tmp_path / "node.toml", brk.address, tmp_path / "state", key, **extra)
    return node_config.load(toml)


@pytest.fixture
def broker(tmp_path: Path) -> Any:
    b = plain_broker(tmp_path / "broker").start()
    yield b
    b.stop()


def test_replay_batches_follow_the_v1_contract(
    tmp_path: Path, broker: Broker, recorder_factory: Any
) -> None:
    cap = write_capture(tmp_path / "cap", frames_per_s=50, seconds=60)
    key = store_key(tmp_path / "store.key")
    rec = recorder_factory(broker.address, f"footfall/v1/{STORE}/#")
    cfg = _cfg(tmp_path, broker, cap.dir, key, batch={"max_items": 100, "max_age_ms": 2000})
    assert cfg.filters.chain_addresses  # the default ([capture] chain_addresses: test_node_config)
    s = Running(cfg).join()
    assert s.state == "done"
    wait_for(lambda: _status(rec)["state"] == "done", 10, "done status")
    obs = _obs(rec)
    assert [b["seq"] for b in obs] == list(range(len(obs)))  # in order, none missing
    assert sum(len(b["obs"]) for b in obs) == s.observations == cap.frames
    for b in obs:
        assert len(b["obs"]) <= 100 and max(r[0] for r in b["obs"]) < 2000  # size, age limits
        assert b["node"] == "n1" and b["epoch"] >= 0
    st = _status(rec)
    payloads.validate("node_status", st)
    assert st["last_seq"] == len(obs) - 1
    # no aggregator here: every batch is acknowledged by the broker and kept for the
    # aggregator's acknowledgement (sensing.node.delivery)
    assert st["spool_depth"] == st["unconfirmed"] == len(obs)
    assert st["published"] == len(obs) and st["observations"] == cap.frames
    ch = st["chaining"]  # address chaining is on by default, and says so
    assert ch["chains"] > 0 and ch["chains_evicted"] == 0
    assert ch["chains_open"] <= ch["chains"]
    chained = [r for b in obs for r in b["obs"] if len(r) == 7]
    assert chained and all(r[6] != r[1] for r in chained)  # chain beside the row's own pid
    for b in obs:
        payloads.validate("obs", b)
    assert st["clock"] == {"synced": True, "source": "fixed", "offset_ms": 0.0, "required": False}
    retained = [t for t, _, r in rec.messages if r]
    assert retained == []  # subscribed before: nothing arrived as a retained replay


def test_unsynchronized_clock_refuses_observations_and_counts_them(
    tmp_path: Path, broker: Broker, recorder_factory: Any
) -> None:
    cap = write_capture(tmp_path / "cap", frames_per_s=20, seconds=30)
    key = store_key(tmp_path / "store.key")
    rec = recorder_factory(broker.address, f"footfall/v1/{STORE}/#")
    cfg = replace(_cfg(tmp_path, broker, cap.dir, key), require_sync=True)
    with pytest.raises(AllDroppedError, match="clock_unsynced"):  # a replay that did nothing
        Running(cfg, clock=FixedClock(synced=False, offset_ms=None)).join()
    wait_for(lambda: _status(rec)["state"] == "done", 10, "done status")
    assert _obs(rec) == []
    st = _status(rec)
    assert st["dropped"]["clock_unsynced"] == cap.frames
    assert st["healthy"] is False and st["problems"] == ["clock_unsynced"]
    assert st["clock"] == {"synced": False, "source": "fixed", "required": True}
    # configured otherwise, the same clock publishes (and says it is unsynchronized)
    rec2 = recorder_factory(broker.address, f"footfall/v1/{STORE}/#")
    cfg2 = replace(cfg, require_sync=False, state_dir=tmp_path / "state2")
    Running(cfg2, clock=FixedClock(synced=False, offset_ms=None)).join()
    wait_for(lambda: _status(rec2)["state"] == "done", 10, "done status")
    assert sum(len(b["obs"]) for b in _obs(rec2)) == cap.frames
    assert _status(rec2)["clock"]["synced"] is False


def test_spool_bound_drops_oldest_and_status_counts_it(
    tmp_path: Path, recorder_factory: Any
) -> None:
    cap = write_capture(tmp_path / "cap", frames_per_s=20, seconds=60)
    key = store_key(tmp_path / "store.key")
    broker = plain_broker(tmp_path / "broker", port=free_port())  # not started: offline
    cfg = _cfg(
        tmp_path, broker, cap.dir, key, batch={"max_items": 40}, spool={"max_batches": 5},
        broker={"reconnect_max_s": 2},
    )  # fmt: skip
    node = Running(cfg)
    state_db = cfg.spool_path

    def dropped() -> int:
        import sqlite3

        try:
            with sqlite3.connect(state_db) as c:
                row = c.execute("SELECT value FROM meta WHERE key='dropped_batches'").fetchone()
        except sqlite3.OperationalError:  # the daemon has not made its tables yet
            return 0
        return int(row[0]) if row else 0

    wait_for(lambda: dropped() >= 25, 30, "spool overflow")
    time.sleep(0.5)  # the last batch closes when the files end
    broker.start()
    try:
        rec = recorder_factory(broker.address, f"footfall/v1/{STORE}/#")
        s = node.join()
        assert s.state == "done"
        wait_for(lambda: _status(rec)["state"] == "done", 10, "done status")
        total = s.batches["obs"]
        kept = sorted(b["seq"] for b in _obs(rec))
        assert kept == list(range(total - 5, total))  # the newest 5: oldest dropped
        st = _status(rec)
        assert st["dropped"]["spool_overflow_batches"] == total - 5
        assert st["dropped"]["spool_overflow_items"] == cap.frames - sum(
            len(b["obs"]) for b in _obs(rec)
        )
        # no aggregator: the broker has the 5, the spool keeps them for its acknowledgement
        assert st["spool_depth"] == st["unconfirmed"] == 5
    finally:
        broker.stop()


def _text_forms(mac: bytes) -> set[str]:
    h = mac.hex()
    pairs = [h[i : i + 2] for i in range(0, 12, 2)]
    return {h} | {sep.join(pairs) for sep in (":", "-", ".")}


def test_sigterm_flushes_spools_says_offline_notifies_systemd_logs_no_address(
    tmp_path: Path, broker: Broker, recorder_factory: Any
) -> None:
    cap = write_capture(tmp_path / "cap", frames_per_s=50, seconds=120)
    key = store_key(tmp_path / "store.key")
    rec = recorder_factory(broker.address, f"footfall/v1/{STORE}/#")
    toml = node_toml(
        tmp_path / "node.toml", broker.address, tmp_path / "state", key,
        wifi={"pcap": str(cap.dir / "wifi.pcap")}, ble={"pcap": str(cap.dir / "ble.pcap")},
        replay={"realtime": True, "speed": 10.0}, batch={"max_items": 100},
        log_level="debug",
    )  # fmt: skip
    sock, notes = notify_socket(tmp_path / "notify.sock")
    env = {"NOTIFY_SOCKET": str(tmp_path / "notify.sock"), "WATCHDOG_USEC": "400000"}
    p = footfall("node", "--config", str(toml), env=env)
    try:
        wait_for(lambda: "READY=1" in "".join(notes), 20, "READY=1")
        wait_for(lambda: len(_obs(rec)) >= 3, 20, "some batches")
        p.terminate()  # SIGTERM mid-replay (12 s of paced capture)
        _out, err = p.communicate(timeout=20)
    finally:
        if p.poll() is None:
            p.kill()
        sock.close()
    assert p.returncode == 0, err
    wait_for(lambda: _status(rec)["state"] == "offline", 10, "offline status")
    st = _status(rec)
    obs = _obs(rec)
    # every batch reached the broker; with no aggregator to acknowledge them they stay
    assert st["spool_depth"] == st["unconfirmed"] and st["published"] == len(obs)
    assert 0 < sum(len(b["obs"]) for b in obs) == st["observations"] < cap.frames
    joined = "\n".join(notes)
    assert "READY=1" in joined and "WATCHDOG=1" in joined and "STOPPING=1" in joined
    # logs: JSON lines, the events that matter, and no raw identifier in any spelling
    lines = [json.loads(x) for x in err.splitlines() if x.strip()]
    events = [x["event"] for x in lines]
    assert "started" in events and "connected" in events and events[-1] == "stopped"
    low = err.lower()
    leaked = [f for m in cap.macs for f in _text_forms(m) if f in low]
    assert leaked == []
    assert not (tmp_path / "state" / "spool.db").read_bytes().count(next(iter(cap.macs)))


def test_live_boards_gpio_beams_and_a_serial_board(
    tmp_path: Path, broker: Broker, recorder_factory: Any
) -> None:
    key = store_key(tmp_path / "store.key")
    rec = recorder_factory(broker.address, f"footfall/v1/{STORE}/#")
    t_start = time.time_ns() // 1_000_000
    with PtyBoard(board=2) as board:
        cfg = NodeConfig(
            store=STORE,
            node="n1",
            keyfile=key,
            state_dir=tmp_path / "state",
            broker=node_config.BrokerConfig("127.0.0.1", broker.port),
            max_age_ms=300,
            status_interval_s=0.5,
            beams=(BeamConfig("main", 17, 27, pin_factory="mock"),),
            boards=(BoardConfig(port=board.port, floor="tiles"),),
        )
        node = Running(cfg)
        try:
            wait_for(lambda: any(getattr(s, "beams", None) for s in node.daemon.sources), 10,
                     "beams open")  # fmt: skip
            beams = next(s for s in node.daemon.sources if getattr(s, "beams", None))
            a, b = beams.factory.pin(17), beams.factory.pin(27)
            for pin in (a.drive_low, b.drive_low, a.drive_high, b.drive_high):  # one person in
                pin()
                time.sleep(0.02)
            time.sleep(0.5)  # the serial link flushes its input when it opens
            board.hello(BoardKind.FLOOR, channels=16)
            board.send(TileChange(tick_ms=1000, tile=5, state=1))
            door_t = topics.door_topic(STORE, "main")
            floor_t = topics.floor_topic(STORE, "tiles")
            wait_for(lambda: any(t == door_t for t, _, _ in rec.messages), 10, "door events")
            wait_for(lambda: any(t == floor_t for t, _, _ in rec.messages), 10, "floor events")
            wait_for(lambda: "door/main" in _status(rec).get("boards", {}), 10, "boards status")
        finally:
            node.daemon.request_stop()
            node.join()
    door = [payloads.decode("door_events", p) for t, p, _ in rec.messages if t == door_t]
    floor = [payloads.decode("floor_events", p) for t, p, _ in rec.messages if t == floor_t]
    assert [e[1] for d in door for e in d["ev"]] == [1]
    assert [e[1:] for f in floor for e in f["ev"]] == [[5, 1]]
    assert door[0]["board"]["in"] == 1  # the beam pair's counters ride along
    st = _status(rec)
    assert st["state"] == "offline"
    # a live node's fresh spool numbers from the time of its first batch (a new seq
    # namespace per spool: sensing.node.spool), and the status says what it spooled
    assert st["boards"]["door/main"]["last_seq"] == door[-1]["seq"] >= time_seq_base(t_start)
    assert st["boards"]["floor/tiles"]["frames"] >= 2


class RecordingRadio:
    def __init__(self) -> None:
        self.tuned: list[int] = []

    def set_channel(self, channel: int) -> None:
        self.tuned.append(channel)


def test_live_wifi_hops_its_channel_plan_and_publishes(
    tmp_path: Path, broker: Broker, recorder_factory: Any
) -> None:
    from sensing.capture.capture_file import read_records
    from sensing.capture.channel_plan import ChannelPlan
    from sensing.capture.live_wifi import ReplaySocket
    from sensing.node.sources import LiveWifiSource

    now_ms = time.time_ns() // 1_000_000
    cap = write_capture(tmp_path / "cap", frames_per_s=40, seconds=5, t0_ms=now_ms - 6000)
    records = list(read_records(cap.dir / "wifi.pcap"))
    key = store_key(tmp_path / "store.key")
    rec = recorder_factory(broker.address, f"footfall/v1/{STORE}/#")
    cfg = NodeConfig(
        store=STORE,
        node="n1",
        keyfile=key,
        state_dir=tmp_path / "state",
        broker=node_config.BrokerConfig("127.0.0.1", broker.port),
        max_age_ms=200,
        status_interval_s=0.3,
        wifi=node_config.WifiConfig(
            interface="wlan9", plan=ChannelPlan.build([1, 6, 36], dwell_ms=50)
        ),
    )
    radio = RecordingRadio()
    src = LiveWifiSource("wlan9", open_socket=lambda _iface: ReplaySocket(records))
    node = Running(cfg, radio=radio, sources=[src])
    try:
        wait_for(lambda: sum(len(b["obs"]) for b in _obs(rec)) == len(records), 15, "all frames")
        wait_for(lambda: _status(rec).get("radio", {}).get("hops", 0) > 6, 10, "hops in status")
    finally:
        node.daemon.request_stop()
        node.join()
    assert radio.tuned[:6] == [1, 6, 36, 1, 6, 36]
    st = _status(rec)
    assert st["state"] == "offline" and st["radio"]["channels"] == [1, 6, 36]
    assert (tmp_path / "state" / "lists.key").exists()  # the live pipeline's opt-out key
