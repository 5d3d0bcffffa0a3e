"""The fields of one observation as the wire carries it (obs payload items).

An obs batch item is ``[dt_ms, pid, rssi, band, flags(, sig)]``: :class:`Observation`
is one item with its time resolved; :class:`Flag` and :class:`DeviceKind` are the
bits of ``flags``. A pseudonym, never an address: this is what leaves a node.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum, IntFlag


class Flag(IntFlag):
    """Bits of the ``flags`` field of an observation (obs payload, 5th item)."""

    RANDOMIZED = 0x01
    """address is randomized: Wi-Fi locally-administered bit, or BLE random private."""
    DIRECTED = 0x02
    """Wi-Fi probe request names an SSID (the SSID itself never leaves the decoder)."""
    BLE_RANDOM = 0x04
    """BLE TxAdd: random address (static, resolvable or non-resolvable)."""
    CONNECTABLE = 0x08
    """BLE advertisement is connectable (ADV_IND / ADV_DIRECT_IND)."""
    # bits 4..7 hold a DeviceKind


KIND_SHIFT = 4
KIND_MASK = 0xF0


class DeviceKind(IntEnum):
    """Coarse device kind from BLE manufacturer id / service UUIDs (no payload kept)."""

    UNKNOWN = 0
    APPLE = 1
    GOOGLE_ANDROID = 2
    MICROSOFT = 3
    SAMSUNG = 4
    WEARABLE = 5
    BEACON = 6
    OTHER = 7


@dataclass(frozen=True, slots=True)
class Observation:
    """One pseudonymous observation, as carried in an obs batch."""

    t_ms: int
    """Unix epoch milliseconds"""
    pid: str
    """16 hex chars: first 8 bytes of HMAC-SHA256(K_epoch, address)"""
    rssi: int
    """dBm"""
    band: str
    """wifi24 | wifi5 | wifi6 | ble"""
    flags: int
    sig: str | None = None
    """8 hex chars keyed IE-layout hash (Wi-Fi only) or None"""
