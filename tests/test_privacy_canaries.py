"""No raw identifier leaves the capture boundary.

Every transmitter address and SSID in the simulated air (read back from the
capture files with tshark, independently of our decoders) is a canary; none may
appear in any MQTT payload, database row, log line or file the demo wrote
outside ``sim/capture/`` (the stand-in for the radio), in any usual spelling.

The haystacks are searched token-wise (every hex run and separated address in the
text, every 6-byte window of the bytes, against sets), not canary by canary: a
half-hour demo has ~450 addresses (BLE and Wi-Fi), a two-hour one ~2,600 and ~50 MB.
"""

from __future__ import annotations

import re
import sqlite3
import subprocess

import numpy as np
import pytest

from conftest import DemoRun

pytestmark = pytest.mark.slow


def _canaries(demo_run: DemoRun) -> tuple[set[bytes], set[bytes]]:
    """Transmitter addresses (Wi-Fi SA, BLE AdvA) and non-empty SSIDs, as tshark reads them."""
    macs: set[bytes] = set()
    ssids: set[bytes] = set()
    for pcap in sorted((demo_run.out / "sim" / "capture").rglob("*.pcap")):
        fields = ("wlan.sa", "btle.advertising_address", "wlan.ssid")
        cmd = ["tshark", "-r", str(pcap), "-T", "fields", "-E", "separator=/t"]
        cmd += [x for f in fields for x in ("-e", f)]
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=True).stdout
        for line in out.splitlines():
            sa, adv, ssid = [*line.split("\t"), "", ""][:3]
            for mac in (sa, adv):
                if mac:
                    macs.add(bytes.fromhex(mac.replace(":", "")))
            if ssid and ssid != "<MISSING>":
                ssids.add(bytes.fromhex(ssid))
    return macs, ssids


HEX_RUN = re.compile(rb"[0-9a-f]{12,}")
SEPARATED = re.compile(rb"(?=((?:[0-9a-f]{2}[:.\-]){5}[0-9a-f]{2}))")


def _text_hits(low: bytes, hexes: set[bytes]) -> set[bytes]:
    """The canaries in ``low`` (lower-case) as aabbccddeeff (inside any hex run) or
    aa:bb:cc:dd:ee:ff / aa-bb-… / aa.bb.…"""
    found: set[bytes] = set()
    for m in HEX_RUN.finditer(low):
        run = m.group()
        found |= {run[i : i + 12] for i in range(len(run) - 11)} & hexes
    for m in SEPARATED.finditer(low):
        plain = re.sub(rb"[:.\-]", b"", m.group(1))
        if plain in hexes:
            found.add(plain)
    return found


def _binary_hits(blob: bytes, words: np.ndarray) -> int:
    """How many 6-byte windows of ``blob`` are a canary (``words``: 48-bit integers)."""
    a = np.frombuffer(blob, np.uint8)
    hits = 0
    step = 4 << 20
    for lo in range(0, max(len(a) - 5, 0), step):
        c = a[lo : lo + step + 5].astype(np.uint64)
        n = len(c) - 5
        v = np.zeros(n, np.uint64)
        for k in range(6):
            v |= c[k : k + n] << np.uint64(8 * k)
        hits += int(np.isin(v, words).sum())
    return hits


COMPRESSED = (".png", ".npz")


def test_no_address_or_ssid_anywhere_downstream(demo_run: DemoRun) -> None:
    macs, ssids = _canaries(demo_run)
    assert len(macs) > 300 and ssids, "the simulated air must hold canaries"
    assert any(m[0] & 0xC0 == 0xC0 for m in macs), "BLE static random addresses among them"
    hexes = {m.hex().encode() for m in macs}
    ssid_low = {x.lower() for x in ssids}
    # display and air (little-endian) byte order, as 48-bit little-endian words
    words = np.unique([int.from_bytes(b, "little") for m in macs for b in (m, m[::-1])]).astype(
        np.uint64
    )
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
    hits: list[tuple[str, object]] = []
    for name, blob in haystacks:
        low = blob.lower()
        hits += [(name, n) for n in _text_hits(low, hexes)]
        hits += [(name, x) for x in ssid_low if x in low]
        # a random 6-byte string can occur by chance inside compressed data
        if not name.endswith(COMPRESSED) and (n := _binary_hits(blob, words)):
            hits.append((name, f"{n} raw 6-byte addresses"))
    assert hits == []


def test_the_search_finds_a_canary_in_every_spelling() -> None:
    """The token-wise search itself: each spelling of a canary is found, in text and in
    bytes (either byte order), and a near miss is not."""
    mac = bytes.fromhex("c3a1b2c3d4e5")
    hexes = {mac.hex().encode()}
    for form in (b"c3a1b2c3d4e5", b"c3:a1:b2:c3:d4:e5", b"c3-a1-b2-c3-d4-e5", b"c3.a1.b2.c3.d4.e5"):
        assert _text_hits(b'{"x": "00' + form + b'99"}', hexes) == hexes, form
    assert _text_hits(b"c3a1b2c3d4e6 c3:a1:b2:c3:d4", hexes) == set()
    words = np.array([int.from_bytes(b, "little") for b in (mac, mac[::-1])], np.uint64)
    for blob in (b"\x00" * 9 + mac + b"\x01", mac[::-1] + b"\x00", b"\x07" * (5 << 20) + mac):
        assert _binary_hits(blob, words) == 1
    assert _binary_hits(mac[:5] + b"\x00", words) == 0
