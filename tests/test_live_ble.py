"""Live BLE through bleak: only the adapter edge is faked (a bleak scanner backend
that reports what BlueZ would for the real captures' adverts); bleak's real
``BleakScanner``, ``BLEDevice`` and ``AdvertisementData`` carry them in, and the
adverts must match what the capture decoder makes of the same frames."""

from __future__ import annotations

import asyncio
import logging
import os
from collections import Counter
from datetime import date
from itertools import islice
from pathlib import Path
from typing import Any

import pytest
from bleak.backends.device import BLEDevice
from bleak.backends.scanner import AdvertisementData, BaseBleakScanner
from bleak.exc import BleakError

from firmware_bridge.errors import CaptureError
from sensing.capture.ble_decode import BleDecoder
from sensing.capture.capture_file import read_records
from sensing.capture.decoded import BleAddrType, BleAdvert
from sensing.capture.live_ble import BleScanSource, advert_from_bleak, replay_backend
from sensing.node.pipeline import NodePipeline
from sensing.privacy.pseudonym import EpochSchedule, KeyRing, Pseudonymizer

DATA = Path(
    os.environ.get("FOOTFALL_DATA", Path(__file__).resolve().parents[2] / "shared" / "data")
)
NRF = DATA / "ble-adv-nrf52-mitll-pact"
CAPTURES = [
    NRF / "iPhone_11-1_btle_sniffer_05-07-2020-125358.pcapng",
    NRF / "Samsung_Galaxy_S10-2_btle_sniffer_05-12-2020-144322.pcapng",
    DATA / "ble-adv-hackrf-ice9-boston-ch38.pcap",
]
FRAMES = 2500
BASE_UUID = "0000{:04x}-0000-1000-8000-00805f9b34fb"

Report = tuple[str, dict[str, Any], AdvertisementData]


def _bluez_fields(ad: bytes) -> dict[str, Any]:
    """What BlueZ makes of AD structures (by hand, as BlueZ parses them)."""
    out: dict[str, Any] = {"mfr": {}, "svc": {}, "uuids": [], "name": None, "tx": None}
    pos = 0
    while pos + 1 < len(ad) and ad[pos]:
        end = pos + 1 + ad[pos]
        t, body = ad[pos + 1], ad[pos + 2 : end]
        if t == 0xFF and len(body) >= 2:
            out["mfr"].setdefault(int.from_bytes(body[:2], "little"), bytes(body[2:]))
        elif t == 0x16 and len(body) >= 2:
            out["svc"][BASE_UUID.format(int.from_bytes(body[:2], "little"))] = bytes(body[2:])
        elif t in (0x02, 0x03):
            out["uuids"] += [
                BASE_UUID.format(int.from_bytes(body[i : i + 2], "little"))
                for i in range(0, len(body) - 1, 2)
            ]
        elif t in (0x08, 0x09):
            out["name"] = body.decode("utf-8", "replace")
        elif t == 0x0A and body:
            out["tx"] = body[0] - 256 if body[0] > 127 else body[0]
        pos = end
    return out


def bluez_reports(path: Path) -> tuple[list[Report], list[BleAdvert]]:
    """(reports BlueZ would give for the adverts our decoder accepts, their decoded form).

    Address, address type, RSSI and AD bytes come from scapy's dissection; scan
    requests are left out (the OS never reports them)."""
    from scapy.contrib.nrf_sniffer import NRF2_Packet_Event
    from scapy.layers.bluetooth4LE import BTLE_ADV, BTLE_SCAN_REQ
    from scapy.utils import PcapReader

    logging.getLogger("scapy").setLevel(logging.ERROR)
    dec = BleDecoder()
    reports: list[Report] = []
    decoded: list[BleAdvert] = []
    with PcapReader(str(path)) as rd:
        for rec, pkt in zip(islice(read_records(path), FRAMES), rd, strict=False):
            t_ms = rec.t_ns // 1_000_000
            adv = dec.decode(rec.linktype, rec.data, t_ms)
            if adv is None or not pkt.haslayer(BTLE_ADV) or pkt.haslayer(BTLE_SCAN_REQ):
                continue
            pdu = pkt[BTLE_ADV].payload
            if not hasattr(pdu, "AdvA"):
                continue
            ad = b"".join(bytes(e) for e in getattr(pdu, "data", []))
            rssi = -pkt[NRF2_Packet_Event].rssi if pkt.haslayer(NRF2_Packet_Event) else -127
            f = _bluez_fields(ad)
            address = str(pdu.AdvA).upper()
            props = {
                "Address": address,
                "AddressType": "random" if pkt[BTLE_ADV].TxAdd else "public",
                "RSSI": rssi,
                "Name": f["name"],
            }
            data = AdvertisementData(
                local_name=f["name"],
                manufacturer_data=f["mfr"],
                service_data=f["svc"],
                service_uuids=f["uuids"],
                tx_power=f["tx"],
                rssi=rssi,
                platform_data=(f"/org/bluez/hci0/dev_{address.replace(':', '_')}", props),
            )
            reports.append((f"/org/bluez/hci0/dev_{address.replace(':', '_')}", props, data))
            decoded.append(adv)
    return reports, decoded


def scan(reports: list[Report], clock: list[int]) -> tuple[BleScanSource, list[BleAdvert]]:
    times = iter(clock)
    src = BleScanSource(backend=replay_backend(reports), clock_ms=lambda: next(times))
    got: list[BleAdvert] = []

    async def main() -> None:
        stop = asyncio.Event()

        def sink(a: BleAdvert) -> None:
            got.append(a)
            if len(got) == len(reports):
                stop.set()

        if not reports:
            stop.set()
        await asyncio.wait_for(src.run(sink, stop), timeout=60)

    asyncio.run(main())
    return src, got


@pytest.mark.parametrize("path", CAPTURES, ids=lambda p: p.name[:28])
def test_bleak_adverts_match_the_decoder_on_real_frames(path: Path) -> None:
    reports, decoded = bluez_reports(path)
    assert len(reports) > 500
    src, live = scan(reports, [a.t_ms for a in decoded])
    assert src.reports == src.adverts == len(reports)
    assert len(live) == len(decoded)
    kinds: Counter[str] = Counter()
    for a, d in zip(live, decoded, strict=True):
        assert (a.t_ms, a.addr, a.addr_type, a.rssi, a.kind) == (
            d.t_ms,
            d.addr,
            d.addr_type,
            d.rssi,
            d.kind,
        )
        assert a.channel == -1 and a.pdu_type == -1
        kinds[a.kind.name] += 1
    if "ice9" in path.name:
        assert src.rejects["rssi_missing"] == len(reports)  # the SDR reports no RSSI
    else:
        assert not src.rejects


def test_live_adverts_give_the_same_pseudonyms_as_the_capture() -> None:
    reports, decoded = bluez_reports(CAPTURES[0])
    _, live = scan(reports, [a.t_ms for a in decoded])
    sched = EpochSchedule(date(2020, 5, 1), 4, "UTC")
    a = NodePipeline(Pseudonymizer(KeyRing(bytearray(range(32)), 0), sched))
    b = NodePipeline(Pseudonymizer(KeyRing(bytearray(range(32)), 0), sched))
    via_live = [a.process_advert(x) for x in live]
    via_file = [b.process_advert(x) for x in decoded]
    # the OS does not say connectable or not: that flag alone differs
    strip = [o and (o.pid, o.rssi, o.flags & ~0x08) for o in via_file]
    assert [o and (o.pid, o.rssi, o.flags) for o in via_live] == strip
    assert sum(o is not None for o in via_live) == len(live)


def test_odd_reports_are_normalized_or_counted() -> None:
    rej: Counter[str] = Counter()
    mk = AdvertisementData(None, {}, {}, [], None, -60, ())
    mac_os = BLEDevice("3B1A8F6C-9D3E-4A57-B1D2-6E2F0A9C4B11", None, None)
    assert advert_from_bleak(mac_os, mk, 0, rej) is None and rej["not_a_mac"] == 1
    dev = BLEDevice("5A:1B:2C:3D:4E:5F", None, {"path": "/x", "props": {"AddressType": "random"}})
    a = advert_from_bleak(dev, mk._replace(rssi=-127), 0, rej)
    assert a is not None and a.rssi is None and a.addr_type is BleAddrType.RESOLVABLE
    a = advert_from_bleak(dev, mk._replace(rssi=15), 0, rej)
    assert a is not None and a.rssi is None and rej["rssi_implausible"] == 1
    bare = BLEDevice("00:1B:63:84:45:E6", None, None)
    a = advert_from_bleak(bare, mk, 0, rej)
    assert a is not None and a.addr_type is BleAddrType.PUBLIC and rej["addr_type_unknown"] == 1


def test_scanner_errors_are_wrapped_and_bleak_cache_is_cleared() -> None:
    class Broken(BaseBleakScanner):
        def __init__(self, callback: Any, uuids: Any, *a: Any, **kw: Any) -> None:
            super().__init__(callback, uuids)

        async def start(self) -> None:
            raise BleakError("No Bluetooth adapters found.")

        async def stop(self) -> None:
            pass

    src = BleScanSource(backend=Broken)
    with pytest.raises(CaptureError, match="failed to start"):
        asyncio.run(src.run(lambda a: None, asyncio.Event()))

    reports, decoded = bluez_reports(CAPTURES[1])
    backend = replay_backend(reports[:50])
    seen: list[int] = []

    class Spy(backend):  # type: ignore[misc, valid-type]
        async def stop(self) -> None:
            seen.append(len(self.seen_devices))
            await super().stop()

    src = BleScanSource(backend=Spy, clock_ms=lambda: decoded[0].t_ms, forget_s=0.01)

    async def main() -> None:
        stop = asyncio.Event()
        task = asyncio.create_task(src.run(lambda a: None, stop))
        await asyncio.sleep(0.1)
        stop.set()
        await task

    asyncio.run(main())
    assert src.adverts == 50 and seen == [0]  # raw addresses not kept by bleak
