"""No raw identifier of the real captures leaves the node, on any output.

Canaries: every 802.11 address (all address fields, every frame) and SSID of the
real Wi-Fi captures, read with scapy's reader and a by-hand parse of the frame
header and elements; every BLE address (AdvA, ScanA, InitA) and local name of
the real BLE captures, from scapy's dissection (CRC-failed frames included, so
corrupted addresses count too). Never our decoders.

Outputs: all real captures through the node pipeline with every privacy
feature on (key file with rolls, opt-out list with real addresses, configured
and learned infrastructure with its state file), the Wi-Fi ones also through
the live monitor source and the BLE ones through bleak's scanner; every batch
encoded as published, status payloads with their reject counts, the
observations' reprs, every file written, every log record; and three nodes
replayed through a real Mosquitto, every MQTT message recorded.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import pytest
from scapy.utils import PcapReader, RawPcapReader

from sensing.capture.capture_file import Record, read_records
from sensing.capture.decoded import BleAdvert
from sensing.capture.live_ble import BleScanSource, replay_backend
from sensing.capture.live_wifi import MonitorSource, ReplaySocket
from sensing.cli.main import main
from sensing.node.batcher import Batcher
from sensing.node.pipeline import NodeFilters, NodePipeline
from sensing.privacy.key_file import KeyFile
from sensing.privacy.optout import format_address
from sensing.privacy.pseudonym import Pseudonymizer
from sensing.wire import payloads
from sensing.wire.observation import Observation

pytestmark = pytest.mark.slow

DATA = Path(
    os.environ.get("FOOTFALL_DATA", Path(__file__).resolve().parents[2] / "shared" / "data")
)
BLE_FILES = [
    DATA / "ble-adv-hackrf-ice9-boston-ch38.pcap",
    *sorted((DATA / "ble-adv-nrf52-mitll-pact").glob("*.pcapng")),
]
_IE_START = {0: 28, 1: 30, 2: 34, 3: 30, 4: 24, 5: 36, 8: 36}  # mgmt subtype -> elements


def wifi_files() -> list[Path]:
    return sorted(
        p
        for p in DATA.rglob("*")
        if p.suffix in (".pcap", ".cap") and p not in BLE_FILES and p.is_file()
    )


@dataclass
class Canaries:
    macs: set[bytes] = field(default_factory=set)
    ssids: set[bytes] = field(default_factory=set)
    names: set[bytes] = field(default_factory=set)


def _wifi_canaries(path: Path, c: Canaries) -> None:
    with RawPcapReader(str(path)) as rd:
        lt = rd.linktype
        for data, _ in rd:
            if lt == 127 and len(data) >= 4:
                f = data[int.from_bytes(data[2:4], "little") :]
            elif lt == 105:
                f = data
            else:
                continue
            if len(f) < 10:
                continue
            ftype, sub = (f[0] >> 2) & 3, f[0] >> 4
            addrs = [f[4:10]]
            if not (ftype == 1 and sub in (12, 13)) and len(f) >= 16:  # CTS/ACK: addr1 only
                addrs.append(f[10:16])
            if ftype in (0, 2) and len(f) >= 22:
                addrs.append(f[16:22])
            if ftype == 2 and f[1] & 3 == 3 and len(f) >= 30:
                addrs.append(f[24:30])
            c.macs.update(a for a in addrs if len(a) == 6 and a not in (b"\xff" * 6, bytes(6)))
            if ftype == 0 and sub in _IE_START:
                pos = _IE_START[sub] + (4 if f[1] & 0x80 else 0)
                while pos + 2 <= len(f) and pos + 2 + f[pos + 1] <= len(f):
                    if f[pos] == 0 and f[pos + 1]:
                        c.ssids.add(bytes(f[pos + 2 : pos + 2 + f[pos + 1]]))
                    pos += 2 + f[pos + 1]


def _ble_canaries(path: Path, c: Canaries) -> None:
    import scapy.contrib.nrf_sniffer
    import scapy.layers.bluetooth4LE  # noqa: F401

    with PcapReader(str(path)) as rd:
        for pkt in rd:
            for layer in pkt.iterpayloads():
                for fld in ("AdvA", "ScanA", "InitA"):
                    v = layer.fields.get(fld)
                    if isinstance(v, str):
                        c.macs.add(bytes.fromhex(v.replace(":", "")))
                data = layer.fields.get("data")
                for eir in data if isinstance(data, list) else []:
                    for sub in eir.iterpayloads():
                        name = sub.fields.get("local_name")
                        if isinstance(name, bytes) and name:
                            c.names.add(name)


@pytest.fixture(scope="module")
def canaries() -> Canaries:
    logging.getLogger("scapy").setLevel(logging.ERROR)
    c = Canaries()
    for p in wifi_files():
        _wifi_canaries(p, c)
    for p in BLE_FILES:
        _ble_canaries(p, c)
    return c


def _mac_forms(mac: bytes) -> set[bytes]:
    h = mac.hex()
    pairs = [h[i : i + 2] for i in range(0, 12, 2)]
    return (
        {h.encode()}
        | {sep.join(pairs).encode() for sep in (":", "-")}
        | {f"{h[:4]}.{h[4:8]}.{h[8:]}".encode()}
    )


def _text_needles(c: Canaries) -> set[bytes]:
    """Lower-case text forms. SSIDs and names shorter than 5 bytes, and hex-only ones
    shorter than 12, are left out: they occur by chance in JSON and hex pseudonyms."""

    def usable(s: bytes) -> bool:
        t = s.lower()
        hexish = all(ch in b"0123456789abcdef" for ch in t)
        return len(t) >= (12 if hexish else 5)

    out = {f for m in c.macs for f in _mac_forms(m)}
    out |= {s.lower() for s in c.ssids | c.names if usable(s)}
    return out


# -- running the node ------------------------------------------------------------------------


@dataclass
class Outputs:
    blobs: list[tuple[str, bytes]] = field(default_factory=list)

    def add(self, name: str, blob: bytes) -> None:
        self.blobs.append((name, blob))


def _emit(batcher: Batcher, obs: Observation | None, out: Outputs) -> None:
    if obs is None:
        return
    out.add("repr", repr(obs).encode())
    done = batcher.add(obs.t_ms, [obs.pid, obs.rssi, obs.band, obs.flags, *filter(None, [obs.sig])])
    if done is not None:
        out.add("batch", payloads.encode(done))


def _status(pipe: NodePipeline) -> bytes:
    return payloads.encode(
        {
            "v": 1,
            "state": "online",
            "key_epoch": max(pipe.pseudo.ring.epoch, 0),
            "frames": pipe.frames,
            "dropped": pipe.rejects(),
        }
    )


def _node(tmp: Path, first_ms: int, store_state: Path) -> NodePipeline:
    """A node whose key's epoch 0 began the day before ``first_ms``, with the store's
    list key and opt-out list copied in (as an installer would)."""
    (tmp / "state").mkdir(parents=True)
    for name in ("lists.key", "optout.json"):
        (tmp / "state" / name).write_bytes((store_state / name).read_bytes())
        (tmp / "state" / name).chmod(0o600)
    start = date.fromtimestamp(first_ms / 1000 - 86_400)
    kf = KeyFile.provision(tmp / "keys" / "store.key", start, 4, "Europe/Prague")
    filters = NodeFilters(
        infrastructure=("40:ec:99:*",), learn_infrastructure=True, learn_hours=2, learn_fraction=1.0
    )
    return NodePipeline.for_node(Pseudonymizer(*kf.load(), keyfile=kf), filters, tmp / "state")


def _replay_socket(recs: list[Record]) -> Callable[[str], ReplaySocket]:
    sock = ReplaySocket(recs)
    return lambda iface: sock


def run_everything(tmp: Path, c: Canaries) -> Outputs:
    out = Outputs()
    # opt out some real addresses through the CLI (they must not be stored either)
    for m in sorted(c.macs)[:20]:
        assert main(["optout", "add", format_address(m), "--state-dir", str(tmp / "state")]) == 0
    for path in [*BLE_FILES, *wifi_files()]:
        recs = list(read_records(path))
        if not recs:
            continue
        pipe = _node(tmp / path.stem, min(r.t_ns for r in recs) // 1_000_000, tmp / "state")
        assert pipe.optout is not None and len(pipe.optout) == 20
        batcher = Batcher("obs", header={"node": path.stem[:20]})
        if path in BLE_FILES:
            for r in recs:
                _emit(batcher, pipe.process(r), out)
        else:
            for r in MonitorSource("wlan1mon", open_socket=_replay_socket(recs)):
                _emit(batcher, pipe.process(r), out)
        last = batcher.flush()
        if last is not None:
            out.add("batch", payloads.encode(last))
        out.add("status", _status(pipe))
        out.add("notes", repr(dict(pipe.notes)).encode())
    _live_ble(tmp, out)
    for f in tmp.rglob("*"):
        if f.is_file():
            out.add(str(f.relative_to(tmp)), f.read_bytes())
    return out


def _live_ble(tmp: Path, out: Outputs) -> None:
    """The nRF captures' adverts through bleak's scanner into a node pipeline."""
    from test_live_ble import bluez_reports  # the adapter edge, as BlueZ reports it

    for path in BLE_FILES[1:]:
        reports, decoded = bluez_reports(path)
        src = BleScanSource(
            backend=replay_backend(reports), clock_ms=iter([a.t_ms for a in decoded]).__next__
        )
        pipe = _node(tmp / f"live-{path.stem}", decoded[0].t_ms, tmp / "state")
        batcher = Batcher("obs", header={"node": "live"})
        asyncio.run(_scan(src, pipe, batcher, out, len(reports)))
        last = batcher.flush()
        if last is not None:
            out.add("batch", payloads.encode(last))
        out.add("status", _status(pipe))
        out.add("live_ble_stats", repr((dict(src.rejects), src.reports, src.adverts)).encode())


async def _scan(
    src: BleScanSource, pipe: NodePipeline, batcher: Batcher, out: Outputs, n: int
) -> None:
    stop = asyncio.Event()

    def sink(a: BleAdvert) -> None:
        _emit(batcher, pipe.process_advert(a), out)
        if src.adverts == n:
            stop.set()

    await asyncio.wait_for(src.run(sink, stop), timeout=60)


# -- through a real broker ---------------------------------------------------------------------


def _replay_through_mosquitto(tmp: Path, mosquitto: object, recorder_factory: object) -> Outputs:
    from sensing.node.replay import replay_node

    out = Outputs()
    addr = mosquitto.address  # type: ignore[attr-defined]
    rec = recorder_factory(addr)  # type: ignore[operator]
    nodes = {
        "n1": (
            DATA / "wifi-probes-brno-esp32-occupancy/sc6-61_2024-03-14_position_2_1420-1720.pcap",
            BLE_FILES[2],
        ),
        "n2": (DATA / "wifi-probes-baccichet-labelled/iPhoneXR-L_anonymized.pcap", BLE_FILES[0]),
        "n3": (DATA / "wifi-misc-aircrack-ng/test1.pcap", BLE_FILES[1]),
    }
    key = tmp / "mqtt-keys" / "store.key"
    KeyFile.provision(key, date(2020, 1, 1), 4, "UTC")
    for node, (wifi, ble) in nodes.items():
        d = tmp / "mqtt" / node
        d.mkdir(parents=True)
        (d / "wifi.pcap").symlink_to(wifi)
        (d / "ble.pcap").symlink_to(ble)
        res = replay_node("realstore", node, d, key, addr)
        assert res.observations > 0
    deadline, n = time.monotonic() + 15, -1
    while time.monotonic() < deadline and n != len(rec.messages):
        n = len(rec.messages)
        time.sleep(0.5)
    for topic, raw, _ in rec.messages:
        out.add(f"mqtt:{topic}", topic.encode() + b" " + raw)
    assert sum(t.endswith("/obs") for t, _, _ in rec.messages) > 10
    return out


def _found(hay: bytes, c: Canaries) -> set[bytes]:
    """Canaries present in ``hay``, in one pass per kind: every 12-hex-digit window and
    every separated address spelling is looked up in the set of canary spellings,
    every 6-byte window in the set of raw addresses (both byte orders)."""
    low = hay.lower()
    forms = {f for m in c.macs for f in _mac_forms(m)}
    found: set[bytes] = set()
    for m in re.finditer(rb"[0-9a-f]{12,}", low):
        run = m.group()
        found.update(w for i in range(len(run) - 11) if (w := run[i : i + 12]) in forms)
    for pat in (rb"(?=([0-9a-f]{2}([:-])[0-9a-f]{2}(?:\2[0-9a-f]{2}){4}))",
                rb"(?=([0-9a-f]{4}\.[0-9a-f]{4}\.[0-9a-f]{4}))"):  # fmt: skip
        found.update(g for m in re.finditer(pat, low) if (g := m.group(1)) in forms)
    found.update(n for n in _text_needles(c) - forms if n in low)
    binary = c.macs | {m[::-1] for m in c.macs}
    found.update(w for i in range(len(hay) - 5) if (w := hay[i : i + 6]) in binary)
    return found


def _hits(out: Outputs, c: Canaries) -> list[tuple[str, bytes]]:
    """(output, canary) pairs: one scan of everything, then attribution of any hit."""
    sep = b"\n\x00\n"
    found = _found(sep.join(b for _, b in out.blobs), c)
    return sorted({(name, n) for n in found for name, b in out.blobs if n in b or n in b.lower()})


def test_no_real_address_ssid_or_name_on_any_output(
    tmp_path: Path,
    canaries: Canaries,
    mosquitto: object,
    recorder_factory: object,
    caplog: pytest.LogCaptureFixture,
) -> None:
    c = canaries
    assert len(c.macs) > 3000 and len(c.ssids) > 20 and len(c.names) > 5
    with caplog.at_level(logging.DEBUG):
        out = run_everything(tmp_path, c)
        mqtt = _replay_through_mosquitto(tmp_path, mosquitto, recorder_factory)
    out.blobs += mqtt.blobs
    out.add("log", caplog.text.encode())
    for r in caplog.records:
        out.add("log-record", repr((r.name, r.msg, r.args)).encode())
    names = {n.split(":")[0] for n, _ in out.blobs}
    assert {"batch", "status", "repr", "mqtt", "log"} <= names
    assert any("infrastructure.json" in n for n, _ in out.blobs)  # the learner wrote its state
    assert any("optout.json" in n for n, _ in out.blobs)
    scanned = sum(len(b) for _, b in out.blobs)
    print(
        f"\ncanaries: {len(c.macs)} addresses, {len(c.ssids)} SSIDs, {len(c.names)} BLE names "
        f"({len(_text_needles(c))} text needles); outputs: {len(out.blobs)} blobs, "
        f"{scanned:,} bytes ({len(mqtt.blobs)} MQTT messages)"
    )
    assert _hits(out, c) == []
    # the scan does see leaks: one address as text, one raw in air order, one SSID
    mac, ssid = sorted(c.macs)[100], b"Intertelecom_FREE"
    leak = Outputs()
    leak.add("x", b'{"a":"' + mac.hex(":").upper().encode() + b'"}' + mac[::-1] + ssid)
    assert {n for _, n in _hits(leak, c)} == {mac.hex(":").encode(), mac[::-1], ssid.lower()}
