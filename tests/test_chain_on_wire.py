"""A node's address chains on the wire (issue 20): two replaying nodes hear a phone
rotate its Wi-Fi address; each publishes every frame under its own pseudonym and the
rotated address's rows with their chain head's as ``chain``; a real Mosquitto carries
the batches to a real aggregator ingest; the ``obs`` table holds ``chain``, and the
aggregator's device linking joins the two addresses on it (and only them). Then the
parts: both insert paths of the store, reading frames, and the rules by which the
aggregator joins the nodes' links."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from heatmap.aggregator import rf_live
from heatmap.aggregator.ingest import Ingestor
from heatmap.aggregator.rf_devices import ChainSettings, Frames, chain_devices
from heatmap.aggregator.store_db import Claim, StoreDB
from heatmap.simulate import frames
from sensing.node import config as node_config
from sensing.node.clock_sync import FixedClock
from sensing.node.daemon import NodeDaemon, RunSummary
from sensing.privacy.key_file import KeyFile
from sensing.privacy.pseudonym import Pseudonymizer
from sensing.wire import payloads

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


# ------------------------------------------------------------------ the parts


def _ble(pid: str, node: str, t0_s: float, t1_s: float, chain: str | None = None) -> list[Any]:
    """A BLE pseudonym advertising every second at one node (rows of the obs table)."""
    return [
        (int(t * 1000), node, pid, -60, "ble", 1, None, chain)
        for t in np.arange(t0_s, t1_s, 1.0).tolist()
    ]


@pytest.mark.parametrize("with_text", [True, False])
def test_the_store_keeps_chain_from_either_insert_path(tmp_path: Path, with_text: bool) -> None:
    """The ingest stores a batch from its text (SQLite's JSON reader) or row by row:
    ``chain`` (and a null sig) reach the table either way, old rows get NULL."""
    p = {
        "v": 1, "node": "n1", "seq": 0, "t0": T0_MS,
        "obs": [[0, "aa" * 8, -60, "ble", 1], [10, "bb" * 8, -61, "ble", 1, None, "aa" * 8],
                [20, "cc" * 8, -62, "wifi24", 1, "0a0b0c0d", "aa" * 8],
                [30, "dd" * 8, -63, "wifi24", 1, "0a0b0c0d"]],
    }  # fmt: skip
    raw = payloads.encode(p)
    obj, text = payloads.decode_with_text("obs", raw)
    db = StoreDB(tmp_path / "s.db")
    assert db.add_obs("n1", obj, text=text if with_text else None) is Claim.NEW
    db.commit()
    got = db.conn.execute("SELECT pid, sig, chain FROM obs ORDER BY t_ms").fetchall()
    db.close()
    assert got == [
        ("aa" * 8, None, None),
        ("bb" * 8, None, "aa" * 8),
        ("cc" * 8, "0a0b0c0d", "aa" * 8),
        ("dd" * 8, "0a0b0c0d", None),
    ]


def test_frames_read_without_the_column_and_from_mixed_rows() -> None:
    """The strict mode's working memory has no ``chain`` column: read as none; rows of
    7 and 8 columns mix."""
    mem = sqlite3.connect(":memory:")
    mem.execute("CREATE TABLE obs (t_ms, node, pid, rssi, band, flags, sig)")
    mem.execute("INSERT INTO obs VALUES (1000, 'n1', 'aa', -60, 'ble', 1, NULL)")
    f = rf_live.read_frames(mem, 0, 2000)
    assert len(f) == 1 and f.chain is None
    rows = [(1000, "n1", "aa", -60, "ble", 1, None), (2000, "n1", "bb", -60, "ble", 1, None, "aa")]
    assert Frames.from_rows(rows).chain.tolist() == ["", "aa"]  # type: ignore[union-attr]


def test_a_node_link_between_two_pseudonyms_heard_at_once_is_refused() -> None:
    """n1 wrongly puts bb in aa's chain while both advertise: one device has one
    address at a time, so the link is refused; cc, after aa, is joined."""
    rows = _ble("aa", "n1", 0, 60) + _ble("bb", "n1", 30, 90, chain="aa")
    rows += _ble("cc", "n1", 61, 120, chain="aa")
    d = chain_devices(Frames.from_rows(rows), ChainSettings(link=False))
    assert (d.node_links, d.node_refused) == (1, 1)
    assert d.device_of["aa"] == d.device_of["cc"] != d.device_of["bb"]


def test_a_link_two_nodes_could_make_needs_both() -> None:
    """Both nodes heard aa and bb: one node's link alone is refused (its own mistake,
    as likely as not), the same link from both is joined."""
    base = _ble("aa", "n1", 0, 60) + _ble("aa", "n2", 0, 60) + _ble("bb", "n2", 62, 120)
    one = base + _ble("bb", "n1", 62, 120, chain="aa")
    d1 = chain_devices(Frames.from_rows(one), ChainSettings(link=False))
    assert (d1.n_devices, d1.node_links, d1.node_refused) == (2, 0, 1)
    both = _ble("aa", "n1", 0, 60) + _ble("aa", "n2", 0, 60)
    both += _ble("bb", "n1", 62, 120, chain="aa") + _ble("bb", "n2", 62, 120, chain="aa")
    d2 = chain_devices(Frames.from_rows(both), ChainSettings(link=False))
    assert (d2.n_devices, d2.node_links, d2.node_refused) == (1, 1, 0)
    d3 = chain_devices(Frames.from_rows(one), ChainSettings(link=False, node_support=1))
    assert d3.n_devices == 1  # trusting every node's word
