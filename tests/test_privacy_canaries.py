"""No raw identifier leaves the capture boundary.

Every transmitter address and SSID in the simulated air (read back from the
capture files with scapy, independently of our decoders) is a canary; none may
appear in any MQTT payload, database row, log line or file the demo wrote
outside ``sim/capture/`` (the stand-in for the radio), in any usual spelling.
"""

from __future__ import annotations

import sqlite3

import pytest
from scapy.layers.bluetooth4LE import BTLE_ADV
from scapy.layers.dot11 import Dot11, Dot11Elt
from scapy.utils import PcapReader

from conftest import DemoRun

pytestmark = pytest.mark.slow


def _canaries(demo_run: DemoRun) -> tuple[set[bytes], set[bytes]]:
    macs: set[bytes] = set()
    ssids: set[bytes] = set()
    for pcap in (demo_run.out / "sim" / "capture").rglob("*.pcap"):
        with PcapReader(str(pcap)) as rd:
            for p in rd:
                if p.haslayer(Dot11):
                    macs.add(bytes.fromhex(p[Dot11].addr2.replace(":", "")))
                    el = p[Dot11Elt]
                    if el.ID == 0 and el.info:
                        ssids.add(bytes(el.info))
                elif p.haslayer(BTLE_ADV):
                    macs.add(bytes.fromhex(p[BTLE_ADV].AdvA.replace(":", "")))
    return macs, ssids


def _text_forms(mac: bytes) -> set[bytes]:
    """aabbccddeeff and aa:bb:cc:dd:ee:ff / aa-bb-… / aa.bb.… (compared case-insensitively)."""
    h = mac.hex()
    pairs = [h[i : i + 2] for i in range(0, 12, 2)]
    return {h.encode()} | {sep.join(pairs).encode() for sep in (":", "-", ".")}


COMPRESSED = (".png", ".npz")


def test_no_address_or_ssid_anywhere_downstream(demo_run: DemoRun) -> None:
    macs, ssids = _canaries(demo_run)
    assert len(macs) > 100 and ssids, "the simulated air must hold canaries"
    text = {f for m in macs for f in _text_forms(m)} | {s.lower() for s in ssids}
    binary = macs | {m[::-1] for m in macs}  # display and air (little-endian) byte order
    haystacks: list[tuple[str, bytes]] = []
    capture = demo_run.out / "sim" / "capture"
    for f in demo_run.out.rglob("*"):
        if f.is_file() and capture not in f.parents:
            haystacks.append((str(f), f.read_bytes()))
    db = sqlite3.connect(demo_run.out / "aggregator" / "store.db")
    for table in ("obs", "door_events", "floor_events", "node_status", "rejects", "batches"):
        rows = db.execute(f"SELECT * FROM {table}").fetchall()
        haystacks.append((f"db:{table}", repr(rows).encode()))
    for topic, raw, _ in demo_run.mqtt.messages:
        haystacks.append((f"mqtt:{topic}", topic.encode() + b" " + raw))
    assert len(haystacks) > 20
    hits = []
    for name, blob in haystacks:
        low = blob.lower()
        hits += [(name, n) for n in text if n in low]
        # a random 6-byte string can occur by chance inside compressed data
        if not name.endswith(COMPRESSED):
            hits += [(name, n) for n in binary if n in blob]
    assert hits == []
