"""Per-node capture files of the simulated day: what each node's radios heard.

``capture/{node}/wifi.pcap`` (radiotap, LINKTYPE 127) and ``capture/{node}/ble.pcap``
(LINKTYPE_BLUETOOTH_LE_LL_WITH_PHDR, 256). These files stand for the air: they hold
raw addresses by nature and are the only place the simulator writes them.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from numpy.typing import NDArray
from scapy.utils import RawPcapWriter

from heatmap.simulate import frames
from heatmap.simulate.phones import IE_LAYOUTS, Emissions, Phone
from heatmap.spatial.floorplan import FloorPlan

LINKTYPE_RADIOTAP = 127
LINKTYPE_BLE_LL_PHDR = 256


def _write(path: Path, linktype: int, rows: list[tuple[float, bytes]]) -> None:
    rows.sort(key=lambda r: r[0])
    w = RawPcapWriter(str(path), linktype=linktype, sync=False)
    try:
        w.write_header(None)
        for t, data in rows:
            sec = int(t)
            w.write_packet(data, sec=sec, usec=round((t - sec) * 1e6) % 1_000_000)
    finally:
        w.close()


def write_wifi(
    out: Path,
    plan: FloorPlan,
    em: Emissions,
    rssi: NDArray[np.float64],
    phones: list[Phone],
    t0_epoch_s: float,
) -> dict[str, int]:
    """One radiotap pcap per node; returns frames written per node."""
    counts = {}
    for j, node in enumerate(plan.nodes):
        rows: list[tuple[float, bytes]] = []
        heard = np.flatnonzero(~np.isnan(rssi[:, j]) & (em.channel == node.wifi_channel))
        for i in heard:
            ph = phones[em.phone[i]]
            ssid = ph.ssid.encode() if em.directed[i] and ph.ssid else b""
            body = frames.probe_request_body(
                em.addr[i], int(em.seq[i]), ssid, IE_LAYOUTS[ph.os], int(em.channel[i])
            )
            rows.append(
                (t0_epoch_s + em.t[i], frames.wifi_frame(body, int(em.channel[i]), int(rssi[i, j])))
            )
        d = out / node.id
        d.mkdir(parents=True, exist_ok=True)
        _write(d / "wifi.pcap", LINKTYPE_RADIOTAP, rows)
        counts[node.id] = len(rows)
    return counts


def write_ble(
    out: Path,
    plan: FloorPlan,
    em: Emissions,
    rssi: NDArray[np.float64],
    phones: list[Phone],
    t0_epoch_s: float,
    rng: np.random.Generator,
) -> dict[str, int]:
    """One BLE link-layer pcap per node; a node's scanner cycles 37/38/39 every 100 ms."""
    pdus: dict[bytes, bytes] = {}
    counts = {}
    for j, node in enumerate(plan.nodes):
        rows: list[tuple[float, bytes]] = []
        heard = np.flatnonzero(~np.isnan(rssi[:, j]))
        for i in heard:
            addr = em.addr[i]
            pdu = pdus.get(addr)
            if pdu is None:
                ph = phones[em.phone[i]]
                adv = frames.adv_data_for(ph.os, rng.integers(0, 256, 5, dtype=np.uint8).tobytes())
                pdu = pdus[addr] = frames.adv_pdu(addr, adv)
            t = float(em.t[i])
            channel = 37 + (int(t * 10) + j) % 3
            rows.append((t0_epoch_s + t, frames.ble_frame(pdu, channel, int(rssi[i, j]))))
        d = out / node.id
        d.mkdir(parents=True, exist_ok=True)
        _write(d / "ble.pcap", LINKTYPE_BLE_LL_PHDR, rows)
        counts[node.id] = len(rows)
    return counts
