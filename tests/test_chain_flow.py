"""The whole chain (issue 18): a running store aggregator publishes its aggregates on the
store's broker (TLS, ACL, the shipped config); the generated bridge forwards them to the
central broker (TLS, its generated ACL); `footfall chain run` writes them into chDB.

The aggregator serves the demo's store database on the store's clock, just after the
day closed: the closed hours and the day are what a chain reads. What must hold: every
closed period the store stored arrives in ClickHouse once, with the store's figures
(nulls where it has nulls); nothing else crosses (no observation, no pseudonym); an
aggregator restart publishes everything again and ClickHouse still holds one row each.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from heatmap.aggregator import config as aggregator_config
from heatmap.aggregator.daemon import AggregatorDaemon
from heatmap.aggregator.live import periods
from heatmap.chain.clickhouse_store import ChainStore, ChdbBackend
from heatmap.spatial import floorplan

from bridge_fixtures import AUDIT, Collector, build_rig, start_rig
from broker_fixtures import wait_for
from conftest import DemoRun

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

ROOT = Path(__file__).resolve().parents[1]
PID = re.compile(rb"(?<![0-9a-f])[0-9a-f]{16}(?![0-9a-f])")


def _aggregator_config(tmp: Path, demo: DemoRun, rig: Any) -> Path:
    plan = tmp / "plan.toml"
    src = floorplan.load_default()
    text = (ROOT / "heatmap" / "spatial" / "data" / "default_store.toml").read_text()
    plan.write_text(text.replace(f'[store]\nid = "{src.store_id}"', '[store]\nid = "s1"'))
    db = tmp / "store.db"
    shutil.copy(demo.out / "aggregator" / "store.db", db)
    tls = rig.store_pki.client("aggregator-s1")
    cfg = tmp / "store.toml"
    cfg.write_text(
        f"""[aggregator]
store = "s1"
db = "{db}"
floor_plan = "{plan}"
status_interval_s = 1
client_id = "aggregator-s1"

[live]
occupancy_interval_s = 1

[broker]
host = "127.0.0.1"
port = {rig.store_broker.port}
ca = "{tls.ca}"
cert = "{tls.cert}"
key = "{tls.key}"
"""
    )
    return cfg


def _run_aggregator(cfg: Path, at_s: float) -> tuple[AggregatorDaemon, threading.Event, Any]:
    d = AggregatorDaemon(aggregator_config.load(cfg), clock=lambda: at_s)
    d.start()
    stop = threading.Event()
    t = threading.Thread(target=d.run, args=(stop,), daemon=True)
    t.start()
    return d, stop, t


def _chain(rig: Any, db: Path, stats: Path, err: Path) -> subprocess.Popen[bytes]:
    d = rig.central_dir
    argv = [
        sys.executable, "-m", "sensing.cli.main", "chain", "run",
        "--broker", f"127.0.0.1:{rig.central.port}",
        "--ca", str(d / "ca.crt"), "--cert", str(d / "chain-main.crt"),
        "--key", str(d / "chain-main.key"),
        "--db", str(db), "--consumers", "2", "--log-every", "0.2", "--stats", str(stats),
    ]  # fmt: skip
    env = dict(os.environ, MPLBACKEND="Agg")
    return subprocess.Popen(argv, stderr=err.open("w"), env=env)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(60) == 0


def test_store_aggregates_reach_clickhouse_once_through_the_bridge(
    demo_run: DemoRun, tmp_path: Path
) -> None:
    rig = start_rig(build_rig(tmp_path / "rig"))
    audit = Collector(rig.central_addr(AUDIT), "audit", ["#"])
    chdb_dir, stats = tmp_path / "chain", tmp_path / "stats.json"
    chain = _chain(rig, chdb_dir, stats, tmp_path / "chain.err")
    cfg = _aggregator_config(tmp_path, demo_run, rig)
    plan = floorplan.load(tmp_path / "plan.toml")
    conn = sqlite3.connect(f"file:{tmp_path / 'store.db'}?mode=ro", uri=True)
    stored = {
        (json.loads(p)["unit"], a): json.loads(p)
        for p, a in conn.execute(
            "SELECT payload, t0_ms FROM aggregates WHERE kind = 'footfall' AND entity = 'store'"
        )
        if json.loads(p)["unit"] in ("hour", "day")
    }
    (last,) = conn.execute("SELECT MAX(t1_ms) FROM aggregates").fetchone()
    conn.close()
    assert any(u == "hour" for u, _ in stored) and any(u == "day" for u, _ in stored)
    # the store's clock: just after the day's aggregates were written
    at_s = (last + 15 * 60_000) / 1000
    try:
        wait_for(stats.exists, 30, "the chain consumer running")

        def written() -> int:
            try:
                return int(json.loads(stats.read_text())["accepted_total"])
            except (OSError, ValueError, KeyError):
                return 0

        d, stop, t = _run_aggregator(cfg, at_s)
        try:
            # closed hours + day + hour + today + zones + occupancy + status
            wait_for(lambda: written() >= len(stored) + 2 + len(plan.zones) + 2, 60, "arrivals")
            time.sleep(2.0)
        finally:
            stop.set()
            t.join(30)
            d.stop()
        first = written()
        d, stop, t = _run_aggregator(cfg, at_s + 5)  # a restart publishes it all again
        try:
            wait_for(lambda: written() >= first + len(stored), 60, "the restart's republish")
            time.sleep(2.0)
        finally:
            stop.set()
            t.join(30)
            d.stop()
    finally:
        _stop(chain)
        audit.close()
        rig.stop()
    # nothing but aggregates (and the bridge's own state) crossed; no pseudonym
    for m in audit.messages():
        assert not PID.search(m.payload), m.topic
        assert (
            re.fullmatch(r"footfall/v1/s1/(occupancy|footfall/[^/]+|zone/[^/]+/stats|"
                         r"aggregator/status)", m.topic)
            or m.topic == "footfall/bridge/s1/state"
        ), m.topic  # fmt: skip
    store = ChainStore(ChdbBackend(chdb_dir))
    try:
        rows = store.rows(
            "SELECT unit, toUnixTimestamp64Milli(period_start), visitors, passersby, door_in, "
            "dwell_p50, count() OVER (PARTITION BY unit, period_start) FROM footfall.footfall "
            "FINAL WHERE store = 's1' AND final ORDER BY period_start, unit"
        )
        raw = store.rows("SELECT count() FROM footfall.footfall WHERE store = 's1' AND final")
    finally:
        store.close()
    got = {(u, int(a)): (v, p, i, d50, n) for u, a, v, p, i, d50, n in rows}
    assert set(got) == set(stored), "every closed hour and day, and nothing else"
    for key, p in stored.items():
        v, ps, door_in, d50, n = got[key]
        assert n == 1, key
        assert (v, ps, door_in) == (p["visitors"], p["passersby"], p["door_in"]), key
        assert d50 == p["dwell_s"]["p50"], key
    assert raw[0][0] >= len(stored), "rows as inserted; FINAL folds the restart's copies"
    day0 = periods.floor_local(int(at_s * 1000), "day", plan.timezone)
    assert day0 > min(a for _, a in stored)
