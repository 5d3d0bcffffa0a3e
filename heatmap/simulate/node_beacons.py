"""Node-to-node beacons: every ceiling node also advertises on BLE, and hears the others.

A node advertises a non-connectable Eddystone-UID frame (service 0xFEAA:
namespace = a hash of "footfall", instance = the node's index) every
``INTERVAL_S`` seconds from a fixed **public** address of its own. Those frames
reach the other nodes through the same propagation as phones' (log-distance,
walls, per-frame shadowing, sensitivity, frame loss) but between two ceiling
heights; a node never hears itself. They are written into each receiving
node's ``ble.pcap`` beside the phones' frames, so they go through the real
node pipeline (decoded as kind *beacon*, public address, then pseudonymized like
everything else) and reach the aggregator as pseudonyms.

How the aggregator tells which pseudonym is which node without a key:
:func:`heatmap.calibration.find_node_beacons` (beacon kind + public address +
never heard by one node + levels that fit that node's position). The addresses
themselves are never configured anywhere downstream, so they stay inside the
capture boundary like any phone's (the privacy canary test covers them too).
"""

from __future__ import annotations

import hashlib
import struct
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from heatmap.simulate import frames
from heatmap.simulate.scenario import Scenario
from heatmap.spatial.floorplan import FloorPlan
from heatmap.spatial.geometry import wall_loss

INTERVAL_S = 10.0
"""advertising interval of a node's beacon in the simulator, s (≈ 720 frames/h/link)"""
P0_DBM = -55.0
"""node beacon RSSI at 1 m (nodes advertise at about +4 dBm: louder than a phone), dBm"""
NAMESPACE = hashlib.sha1(b"footfall").digest()[:10]
"""Eddystone-UID namespace of footfall node beacons"""
RNG_STREAM = 0x6E6F6465
"""seed suffix: node beacons draw from their own stream, so phones' draws are unchanged"""

_PCAP_HDR = struct.Struct("<IHHiIII")
_REC_HDR = struct.Struct("<IIII")


def node_address(store_id: str, node_id: str) -> bytes:
    """The node's public BLE address in the simulator (6 bytes, display order)."""
    return hashlib.sha256(f"footfall-node/{store_id}/{node_id}".encode()).digest()[:6]


def adv_data(node_index: int) -> bytes:
    """Flags + 16-bit UUID list (0xFEAA) + Eddystone-UID service data (31 bytes)."""
    uid = bytes((0x00, 0xF8)) + NAMESPACE + node_index.to_bytes(6, "big") + b"\x00\x00"
    return (
        bytes.fromhex("020106")
        + bytes.fromhex("0303aafe")
        + bytes((len(uid) + 3, 0x16, 0xAA, 0xFE))
        + uid
    )


def beacon_times(
    plan: FloorPlan, duration_s: float, rng: np.random.Generator, interval_s: float = INTERVAL_S
) -> tuple[NDArray[np.float64], NDArray[np.int64]]:
    """(t, tx) of every beacon advert: seconds after the start, transmitting node index."""
    ts, tx = [], []
    for i in range(len(plan.nodes)):
        t = np.arange(rng.uniform(0, interval_s), duration_s, interval_s)
        t = t + rng.uniform(0, 0.01, len(t))  # advDelay
        ts.append(t)
        tx.append(np.full(len(t), i))
    t_all, tx_all = np.concatenate(ts), np.concatenate(tx)
    order = np.argsort(t_all, kind="stable")
    return t_all[order], tx_all[order]


def received(
    plan: FloorPlan, sc: Scenario, tx: NDArray[np.int64], rng: np.random.Generator
) -> NDArray[np.float64]:
    """(E, N) RSSI (dBm) at each node of each advert, NaN where not heard (or own node)."""
    r = sc.radio
    xyz = np.array([[n.x, n.y, n.z] for n in plan.nodes])
    walls = [(w.a, w.b, w.attenuation_db) for w in plan.walls]
    n = len(plan.nodes)
    out = np.full((len(tx), n), np.nan)
    for j in range(n):
        d = np.sqrt(((xyz[tx] - xyz[j]) ** 2).sum(axis=1))
        loss = wall_loss(xyz[tx, :2], xyz[j, :2][None, :], walls)
        rssi = (
            P0_DBM
            - 10 * r.path_loss_exponent * np.log10(np.maximum(d, 0.3))
            - loss
            + rng.normal(0, r.shadowing_db, len(tx))
        )
        rssi = np.round(np.clip(rssi, -110, 10))
        heard = (rssi >= r.sensitivity_dbm) & (rng.random(len(tx)) >= r.frame_loss) & (tx != j)
        out[heard, j] = rssi[heard]
    return out


def add_to_captures(
    capture: Path, plan: FloorPlan, sc: Scenario, t0_epoch_s: float
) -> dict[str, int]:
    """Merge every node's reception of the other nodes' beacons into its ``ble.pcap``.

    Returns the frames added per node. Draws from its own random stream
    (seed, ``RNG_STREAM``), so the rest of the simulated day is unchanged.
    """
    rng = np.random.default_rng([sc.seed, RNG_STREAM])
    t, tx = beacon_times(plan, sc.duration_s, rng)
    rssi = received(plan, sc, tx, rng)
    pdus = [
        frames.adv_pdu(
            node_address(plan.store_id, nd.id), adv_data(i), frames.ADV_NONCONN_IND, False
        )
        for i, nd in enumerate(plan.nodes)
    ]
    added = {}
    for j, nd in enumerate(plan.nodes):
        heard = np.flatnonzero(~np.isnan(rssi[:, j]))
        rows = [
            (
                t0_epoch_s + float(t[e]),
                frames.ble_frame(pdus[tx[e]], 37 + (int(t[e] * 10) + j) % 3, int(rssi[e, j])),
            )
            for e in heard
        ]
        path = capture / nd.id / "ble.pcap"
        path.parent.mkdir(parents=True, exist_ok=True)
        merge_into_pcap(path, rows)
        added[nd.id] = len(rows)
    return added


def merge_into_pcap(path: Path, rows: list[tuple[float, bytes]], linktype: int = 256) -> None:
    """Insert ``(epoch s, packet)`` rows into a little-endian µs pcap, keeping time order."""
    old: list[tuple[int, bytes]] = []
    header = _PCAP_HDR.pack(0xA1B2C3D4, 2, 4, 0, 0, 65535, linktype)
    if path.exists():
        data = path.read_bytes()
        if len(data) >= _PCAP_HDR.size:
            magic = _PCAP_HDR.unpack_from(data)[0]
            if magic != 0xA1B2C3D4:
                raise ValueError(f"{path}: not a little-endian microsecond pcap")
            header = data[: _PCAP_HDR.size]
            pos = _PCAP_HDR.size
            while pos + _REC_HDR.size <= len(data):
                sec, usec, incl, _ = _REC_HDR.unpack_from(data, pos)
                end = pos + _REC_HDR.size + incl
                old.append((sec * 1_000_000 + usec, data[pos:end]))
                pos = end
    new = []
    for t, pkt in rows:
        us = round(t * 1e6)
        sec, usec = divmod(us, 1_000_000)
        new.append((us, _REC_HDR.pack(sec, usec, len(pkt), len(pkt)) + pkt))
    merged = sorted(old + new, key=lambda r: r[0])
    with path.open("wb") as f:
        f.write(header)
        f.writelines(r[1] for r in merged)
