"""The fields of one observation as the wire carries it (obs payload items).

An obs batch item is ``[dt_ms, pid, rssi, band, flags(, sig(, chain))]``:
:class:`Observation` is one item with its time resolved (:meth:`Observation.row` is
the item without ``dt_ms``); :class:`Flag` and :class:`DeviceKind` are the bits of
``flags``. ``chain`` is the ``pid`` of the head of the address chain the node put the
frame's address in (:mod:`sensing.capture.address_chain`), present only when it is
another pseudonym than ``pid``; with it, ``sig`` may be null. Pseudonyms of one key
epoch, never an address: this is what leaves a node.

>>> Observation(0, "0123456789abcdef", -60, "ble", 0x15).row()
['0123456789abcdef', -60, 'ble', 21]
>>> Observation(0, "0123456789abcdef", -60, "ble", 0x15, None, "fedcba9876543210").row()
['0123456789abcdef', -60, 'ble', 21, None, 'fedcba9876543210']
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum, IntFlag
from typing import Any


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
    chain: str | None = None
    """16 hex chars: the pid of the head of the node's address chain holding this
    address, when that is another address than this one's (None: its own head, or
    chaining off)"""

    def row(self) -> list[Any]:
        """The obs batch item without its ``dt_ms``: ``[pid, rssi, band, flags]``,
        then ``sig`` if there is one, and ``chain`` (after ``sig`` or null) if there is
        one."""
        r: list[Any] = [self.pid, self.rssi, self.band, self.flags]
        if self.chain is not None:
            r += (self.sig, self.chain)
        elif self.sig is not None:
            r.append(self.sig)
        return r
