"""A node's address chains on the wire (issue 20): two replaying nodes hear a phone
rotate its Wi-Fi address; each publishes every frame under its own pseudonym and the
rotated address's rows with their chain head's as ``chain``; a real Mosquitto carries
the batches to a real aggregator ingest; the ``obs`` table holds ``chain``, and the
aggregator's device linking joins the two addresses on it (and only them)."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path
from typing import Any

import pytest

from heatmap.aggregator import rf_live
from heatmap.aggregator.ingest import Ingestor
from heatmap.aggregator.rf_devices import ChainSettings, chain_devices
from heatmap.simulate import frames
from sensing.node import config as node_config
from sensing.node.clock_sync import FixedClock
from sensing.node.daemon import NodeDaemon, RunSummary
from sensing.privacy.key_file import KeyFile
from sensing.privacy.pseudonym import Pseudonymizer

from broker_fixtures import STORE, T0_MS, Broker, node_toml, plain_broker, store_key, wait_for
from broker_fixtures import _pcap as write_pcap

PHONE_A = bytes.fromhex("02a1b2c3d4e5")
"""the phone's first address"""
PHONE_B = bytes.fromhex("06f1e2d3c4b5")
"""its next one: sequence numbers and IE layout continue"""
OTHER = bytes.fromhex("0a1122334455")
"""another phone of the same IE layout, heard at the same time as PHONE_A"""
LAYOUT = [(1, b"\x02\x04\x0b\x16")]


def _probe(addr: bytes, seq: int, rssi: int) -> bytes:
    return frames.wifi_frame(frames.probe_request_body(addr, seq, b"", LAYOUT, 6), 6, rssi)


def _capture(out: Path, rssi: int, hears_a: bool) -> Path:
    """One node's Wi-Fi capture: PHONE_A 10 s (if ``hears_a``), then PHONE_B 10 s
    from 20 s on, its sequence numbers continuing A's; OTHER all along."""
    rows = []
    for i in range(10):
        if hears_a:
            rows.append((T0_MS + i * 1000, _probe(PHONE_A, 100 + i, rssi)))
        rows.append((T0_MS + 20_000 + i * 1000, _probe(PHONE_B, 112 + i, rssi)))
    for i in range(30):
        rows.append((T0_MS + 500 + i * 1000, _probe(OTHER, 3000 + i * 7, rssi - 8)))
    out.mkdir(parents=True)
    write_pcap(out / "wifi.pcap", 127, rows)
    return out / "wifi.pcap"


def _replay(tmp: Path, broker: Broker, key: Path, node: str, pcap: Path) -> RunSummary:
    toml = node_toml(
        tmp / f"{node}.toml", broker.address, tmp / f"state-{node}", key,
        node={"id": node}, wifi={"pcap": str(pcap)},
    )  # fmt: skip
    cfg = node_config.load(toml)
    assert cfg.filters.chain_addresses  # the default
    out: dict[str, Any] = {}

    def run() -> None:
        try:
            out["summary"] = NodeDaemon(cfg, clock=FixedClock(True)).run(install_signals=False)
        except BaseException as e:  # re-raised in the test's thread
            out["error"] = e

    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(60)
    assert not t.is_alive(), f"node {node} did not finish"
    if "error" in out:
        raise out["error"]
    summary: RunSummary = out["summary"]
    return summary


@pytest.fixture
def broker(tmp_path: Path) -> Any:
    b = plain_broker(tmp_path / "broker").start()
    yield b
    b.stop()


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_chain_reaches_the_obs_table_and_links_the_devices(tmp_path: Path, broker: Broker) -> None:
    key = store_key(tmp_path / "store.key")
    db_path = tmp_path / "store.db"
    ing = Ingestor(STORE, str(db_path), broker.address, "t-chain-wire-agg")
    ing.start()
    try:
        s1 = _replay(tmp_path, broker, key, "n1", _capture(tmp_path / "c1", -60, True))
        s2 = _replay(tmp_path, broker, key, "n2", _capture(tmp_path / "c2", -66, False))
        assert s1.state == s2.state == "done"
        wait_for(lambda: ing.stats.committed_observations >= 50 + 40, 30, "both nodes stored")
        assert ing.stats.committed_observations == 90
    finally:
        ing.stop()
    assert ing.error is None and not ing.rejects

    pseudo = Pseudonymizer(*KeyFile(key).load())
    assert pseudo.epoch_for(T0_MS) is not None  # the key of the capture's day
    a, b, other = (pseudo.ring.pid(x) for x in (PHONE_A, PHONE_B, OTHER))
    db = sqlite3.connect(db_path)
    rows = db.execute("SELECT node, pid, chain, COUNT(*) FROM obs GROUP BY node, pid, chain")
    got = {(n, p, c): k for n, p, c, k in rows}
    # every row under its frame's own pseudonym; B's rows at n1 name A's (its first
    # frame continues A's sequence numbers); n2 never heard A: B is its own head there
    assert got == {
        ("n1", a, None): 10,
        ("n1", b, a): 10,
        ("n1", other, None): 30,
        ("n2", b, None): 10,
        ("n2", other, None): 30,
    }

    f = rf_live.read_frames(db, T0_MS - 1000, T0_MS + 60_000)
    assert f.chain is not None and set(f.chain.tolist()) == {"", a}
    off = ChainSettings(link=False, node_chains=False)
    nodes_only = ChainSettings(link=False)
    d0, d1 = chain_devices(f, off), chain_devices(f, nodes_only)
    assert d0.n_devices == 3 and d0.device_of[a] != d0.device_of[b]
    # n2 never heard A: n1 alone heard both ends, so its link is enough
    assert d1.n_devices == 2 and d1.device_of[a] == d1.device_of[b] != d1.device_of[other]
    assert (d1.node_links, d1.node_refused) == (1, 0)
    both = chain_devices(f, ChainSettings())  # and the aggregator's own linking after
    assert both.n_devices == 2 and both.device_of[a] == both.device_of[b]
