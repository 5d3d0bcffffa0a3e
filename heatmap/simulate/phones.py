"""Phones and what they transmit: BLE advertising events with rotating resolvable
private addresses, and Wi-Fi probe-request bursts with per-OS MAC habits.

Per-OS habits (from the probe-request literature and what the real captures in
shared/data show): iOS draws a new locally-administered MAC for nearly every scan;
modern Android keeps one for a few scans; old Android probes with its global MAC
and names saved networks (directed probes). BLE addresses rotate about every 15 min.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from heatmap.simulate.people import Person
from heatmap.simulate.scenario import Scenario

WIFI_CHANNELS = tuple(range(1, 14))
CHANNEL_DWELL_S = 0.025
"""time a scanning phone spends on each channel of a burst"""
PROBES_PER_CHANNEL = 2

# IE layouts per OS habit: (id, body) after the SSID element; bodies are model constants
IE_LAYOUTS: dict[str, list[tuple[int, bytes]]] = {
    "ios": [
        (1, bytes.fromhex("02040b16")),
        (50, bytes.fromhex("0c1218243048606c")),
        (45, bytes.fromhex("2d4017ffff0000000000000000000000000000000000000000000000")[:26]),
        (127, bytes.fromhex("0400080000000040")),
        (221, bytes.fromhex("0017f20a000103040000")),
    ],
    "android": [
        (1, bytes.fromhex("82848b96")),
        (50, bytes.fromhex("0c1218243048606c")),
        (45, bytes.fromhex("ef0117ffff00000000000000000000000000000000000000000000")[:26]),
        (127, bytes.fromhex("0000080000000040")),
        (255, bytes.fromhex("23" + "00" * 17 + "fafffaff")),  # HE capabilities
    ],
    "legacy": [
        (1, bytes.fromhex("82848b96")),
        (50, bytes.fromhex("0c1218243048606c")),
        (45, bytes.fromhex("2c0103ffff00000000000000000000000000000000000000000000")[:26]),
        (221, bytes.fromhex("0050f204104a0001101049000600372a000120")),
    ],
}
LEGACY_OUIS = (bytes.fromhex("5c0a5b"), bytes.fromhex("a0cbfd"), bytes.fromhex("3c5a37"))


@dataclass
class Phone:
    person: int
    os: str
    """ios | android | legacy"""
    offset_db: float
    """transmit power offset vs a typical phone, dB"""
    ssid: str | None
    """a saved network a legacy phone names in directed probes (a canary)"""


@dataclass
class Emissions:
    """Everything one kind of radio sent, one row per frame (or advertising event)."""

    t: NDArray[np.float64]
    """seconds after the scenario start"""
    phone: NDArray[np.int64]
    """index into the phone list"""
    addr: list[bytes]
    """per-row transmitter address (6 bytes, display order)"""
    seq: NDArray[np.int64]
    """Wi-Fi sequence number (unused for BLE)"""
    channel: NDArray[np.int64]
    """Wi-Fi channel the frame was sent on (BLE: 0, scanner decides)"""
    directed: NDArray[np.bool_]


def random_la_mac(rng: np.random.Generator) -> bytes:
    b = bytearray(rng.integers(0, 256, 6, dtype=np.uint8).tobytes())
    b[0] = (b[0] & 0xFC) | 0x02  # locally administered, unicast
    return bytes(b)


def random_rpa(rng: np.random.Generator) -> bytes:
    b = bytearray(rng.integers(0, 256, 6, dtype=np.uint8).tobytes())
    b[0] = (b[0] & 0x3F) | 0x40  # resolvable private address: top bits 01
    return bytes(b)


def make_phones(people: list[Person], sc: Scenario, rng: np.random.Generator) -> list[Phone]:
    phones = []
    for p in people:
        share = 1.0 if p.role == "staff" else sc.phone_share
        if rng.random() >= share:
            continue
        if rng.random() < sc.ios_share:
            os_ = "ios"
        else:
            os_ = "legacy" if rng.random() < sc.legacy_android_share else "android"
        ssid = f"HomeNet-{rng.integers(0, 1 << 16):04X}" if os_ == "legacy" else None
        phones.append(Phone(p.id, os_, float(rng.normal(0, sc.radio.phone_offset_db)), ssid))
    return phones


def ble_events(
    phones: list[Phone], people: list[Person], sc: Scenario, rng: np.random.Generator
) -> Emissions:
    ts, idx, addrs = [], [], []
    for i, ph in enumerate(phones):
        person = people[ph.person]
        t0, t1 = max(person.t_start, 0.0), min(person.t_end, sc.duration_s)
        if t1 <= t0:
            continue
        interval = float(rng.uniform(*sc.ble_interval_s))
        t = np.arange(t0 + rng.uniform(0, interval), t1, interval)
        t = t + rng.uniform(0, 0.01, len(t))  # advDelay
        # rotation boundaries at a random phase
        first = t0 - rng.uniform(0, sc.ble_rotation_s)
        bounds = first + np.cumsum(
            rng.uniform(0.9, 1.1, 2 + int((t1 - first) / (0.9 * sc.ble_rotation_s)))
            * sc.ble_rotation_s
        )
        which = np.searchsorted(bounds, t)
        pool = [random_rpa(rng) for _ in range(int(which.max(initial=0)) + 1)]
        ts.append(t)
        idx.append(np.full(len(t), i))
        addrs.extend(pool[w] for w in which)
    t = np.concatenate(ts) if ts else np.zeros(0)
    n = len(t)
    return Emissions(
        t,
        np.concatenate(idx) if idx else np.zeros(0, np.int64),
        addrs,
        np.zeros(n, np.int64),
        np.zeros(n, np.int64),
        np.zeros(n, bool),
    )


def wifi_frames(
    phones: list[Phone],
    people: list[Person],
    sc: Scenario,
    rng: np.random.Generator,
    channels: set[int],
) -> Emissions:
    """Probe requests on the given channels (only those a node listens on are kept)."""
    ts, idx, addrs, seqs, chans, dirs = [], [], [], [], [], []
    keep = [c for c in WIFI_CHANNELS if c in channels]
    for i, ph in enumerate(phones):
        person = people[ph.person]
        t0, t1 = max(person.t_start, 0.0), min(person.t_end, sc.duration_s)
        mean = sc.wifi_burst_interval_s[ph.os]
        t = t0 + rng.uniform(0, mean)
        seq = int(rng.integers(0, 4096))
        legacy_mac = rng.choice(LEGACY_OUIS) + rng.integers(0, 256, 3, dtype=np.uint8).tobytes()
        mac = legacy_mac if ph.os == "legacy" else random_la_mac(rng)
        while t < t1:
            if ph.os == "ios" or (ph.os == "android" and rng.random() < 0.35):
                mac = random_la_mac(rng)
                if ph.os == "ios":
                    seq = int(rng.integers(0, 4096))
            probes = [False] + ([True] if ph.ssid else [])
            for c in WIFI_CHANNELS:
                for directed in probes:
                    for k in range(PROBES_PER_CHANNEL):
                        if c in keep:
                            ts.append(t + (c - 1) * CHANNEL_DWELL_S + k * 0.002 + directed * 0.004)
                            idx.append(i)
                            addrs.append(mac)
                            seqs.append(seq)
                            chans.append(c)
                            dirs.append(directed)
                        seq = (seq + 1) & 0xFFF
            t += float(rng.exponential(mean))
    return Emissions(
        np.asarray(ts, float),
        np.asarray(idx, np.int64),
        addrs,
        np.asarray(seqs, np.int64),
        np.asarray(chans, np.int64),
        np.asarray(dirs, bool),
    )
