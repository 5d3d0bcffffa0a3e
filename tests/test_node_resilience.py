"""Nothing lost, nothing stored twice: the node's spool and seq against a broker
killed mid-replay, an hour offline, and a node killed with SIGKILL mid-batch.

The aggregator is the real :class:`heatmap.aggregator.ingest.Ingestor` (persistent session,
dedup by (publisher, seq)); the broker is Mosquitto with persistence, killed with
SIGKILL and restarted on the same port. Counts are printed (``-s`` shows them).
"""

from __future__ import annotations

import json
import signal
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from heatmap.aggregator.ingest import Ingestor
from sensing.node import config as node_config
from sensing.node.clock_sync import FixedClock
from sensing.node.daemon import NodeDaemon
from sensing.node.spool import Spool

from broker_fixtures import (
    STORE,
    Broker,
    expected_observations,
    footfall,
    node_toml,
    plain_broker,
    store_key,
    stored,
    wait_for,
    write_capture,
)

pytestmark = [pytest.mark.timeout(240), pytest.mark.slow]


def _ingestor(tmp_path: Path, broker: Broker) -> Ingestor:
    ing = Ingestor(STORE, str(tmp_path / "agg" / "store.db"), broker.address, "agg-test")
    ing.start()
    return ing


def _saved_session(broker: Broker, since: float) -> bool:
    db = broker.workdir / "mosquitto.db"
    return db.exists() and db.stat().st_mtime > since


def _report(name: str, expected: int, db: Path, ing: Ingestor) -> tuple[int, int, int]:
    rows, batches, dup = stored(db)
    print(
        f"\n{name}: expected {expected} observations, stored {rows}, lost {expected - rows}, "
        f"stored twice {dup}; {batches} batches stored, {ing.stats.duplicates} redeliveries "
        "dropped by seq"
    )
    return rows, batches, dup


def test_broker_killed_and_restarted_mid_replay(tmp_path: Path) -> None:
    cap = write_capture(tmp_path / "cap", frames_per_s=50, seconds=160)
    key = store_key(tmp_path / "store.key")
    want = expected_observations(cap.dir, key)
    broker = plain_broker(tmp_path / "broker").start()
    ing = _ingestor(tmp_path, broker)
    t_sub = time.time()
    p = None
    try:
        wait_for(lambda: _saved_session(broker, t_sub), 10, "aggregator session saved")
        toml = node_toml(
            tmp_path / "node.toml", broker.address, tmp_path / "state", key,
            wifi={"pcap": str(cap.dir / "wifi.pcap")}, ble={"pcap": str(cap.dir / "ble.pcap")},
            replay={"realtime": True, "speed": 20.0}, batch={"max_items": 100},
        )  # fmt: skip
        p = footfall("node", "--config", str(toml))
        wait_for(lambda: ing.stats.stored >= 15, 30, "batches before the kill")
        broker.kill9()  # mid-replay: the node keeps reading, spools, retries
        time.sleep(2.0)
        broker.start()
        _out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
        assert any(json.loads(x)["event"] == "disconnected" for x in err.splitlines())
        assert ing.wait_complete({"n1"}, timeout_s=60), "aggregator did not get everything"
    finally:
        if p is not None and p.poll() is None:
            p.kill()
        ing.stop()
        broker.stop()
    rows, batches, dup = _report("broker kill -9", want, tmp_path / "agg" / "store.db", ing)
    assert rows == want and dup == 0
    assert batches == ing.node_status["n1"]["last_seq"] + 1  # type: ignore[operator]


def test_node_offline_for_an_hour_then_delivers_everything_in_order(tmp_path: Path) -> None:
    cap = write_capture(tmp_path / "cap", frames_per_s=5, seconds=3600)
    key = store_key(tmp_path / "store.key")
    want = expected_observations(cap.dir, key)
    broker = plain_broker(tmp_path / "broker").start()
    ing = _ingestor(tmp_path, broker)
    broker.stop()  # graceful: the aggregator's session is saved; the node finds no broker
    try:
        toml = node_toml(
            tmp_path / "node.toml", broker.address, tmp_path / "state", key,
            wifi={"pcap": str(cap.dir / "wifi.pcap")}, ble={"pcap": str(cap.dir / "ble.pcap")},
            broker={"reconnect_max_s": 2},
        )  # fmt: skip
        cfg = node_config.load(toml)
        daemon = NodeDaemon(cfg, clock=FixedClock(True))
        out: dict[str, Any] = {}
        t = threading.Thread(target=lambda: out.update(s=daemon.run(install_signals=False)))
        t.start()

        def spooled_hour() -> bool:
            try:
                with sqlite3.connect(cfg.spool_path) as c:
                    n, t_lo, t_hi = c.execute(
                        "SELECT COUNT(*), MIN(json_extract(payload,'$.t0')), "
                        "MAX(json_extract(payload,'$.t0')) FROM batches"
                    ).fetchone()
            except sqlite3.OperationalError:  # not created yet
                return False
            return bool(n) and t_hi - t_lo > 3_500_000  # an hour of capture waits in the spool

        wait_for(spooled_hour, 60, "an hour spooled")
        broker.start()
        t.join(120)
        assert not t.is_alive() and out["s"].state == "done"
        assert ing.wait_complete({"n1"}, timeout_s=60), "aggregator did not get everything"
        with sqlite3.connect(tmp_path / "agg" / "store.db") as c:
            order = [
                r[0]
                for r in c.execute(
                    "SELECT seq FROM batches WHERE kind='obs' ORDER BY received_ms, seq"
                )
            ]
        assert order == sorted(order)  # replayed in order
    finally:
        ing.stop()
        broker.stop()
    rows, batches, dup = _report("offline an hour", want, tmp_path / "agg" / "store.db", ing)
    assert rows == want and dup == 0 and batches == out["s"].batches["obs"]


def test_node_sigkill_mid_batch_spool_intact_and_replay_resumes(tmp_path: Path) -> None:
    cap = write_capture(tmp_path / "cap", frames_per_s=100, seconds=600)
    key = store_key(tmp_path / "store.key")
    want = expected_observations(cap.dir, key)
    broker = plain_broker(tmp_path / "broker").start()
    ing = _ingestor(tmp_path, broker)
    state = tmp_path / "state"
    toml = node_toml(
        tmp_path / "node.toml", broker.address, state, key,
        wifi={"pcap": str(cap.dir / "wifi.pcap")}, ble={"pcap": str(cap.dir / "ble.pcap")},
        batch={"max_items": 100},
    )  # fmt: skip
    p = None
    try:
        p = footfall("node", "--config", str(toml))  # as fast as it can: acks pile up
        wait_for(lambda: ing.stats.stored >= 20, 30, "batches before the kill")
        p.send_signal(signal.SIGKILL)  # mid-batch, with PUBACKs not yet taken off the spool
        p.wait(timeout=10)
        # the broker published the node's last will
        wait_for(lambda: ing.node_status.get("n1", {}).get("state") == "offline", 10, "will")
        with Spool(state / "spool.db") as sp:
            assert sp.integrity() == "ok"
            cursor, next_seq, depth = sp.cursor("capture"), sp.next_seq("obs"), sp.depth
        print(f"\nkilled: {next_seq} batches spooled, {depth} not yet acknowledged, "
              f"cursor at frame {cursor} of {cap.frames}")  # fmt: skip
        assert 0 < cursor < cap.frames and next_seq >= 20
        p = footfall("node", "--config", str(toml))  # resumes after the last spooled batch
        _out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
        assert ing.wait_complete({"n1"}, timeout_s=60), "aggregator did not get everything"
    finally:
        if p is not None and p.poll() is None:
            p.kill()
        ing.stop()
        broker.stop()
    rows, batches, dup = _report("node kill -9", want, tmp_path / "agg" / "store.db", ing)
    assert rows == want and dup == 0
    assert batches == ing.node_status["n1"]["last_seq"] + 1  # type: ignore[operator]
