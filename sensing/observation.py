"""What a node hears, normalized at the capture boundary.

``WifiProbe`` and ``BleAdvert`` hold a raw address and exist only in node memory
between decode and pseudonymization. ``Observation`` is what leaves the node:
a pseudonym, never an address.
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


class BleAddrType(IntEnum):
    PUBLIC = 0
    RANDOM_STATIC = 1
    RESOLVABLE = 2
    NON_RESOLVABLE = 3


@dataclass(frozen=True, slots=True)
class WifiProbe:
    """A decoded 802.11 probe request. Lives only between decode and pseudonymize."""

    t_ms: int
    """capture time, Unix epoch milliseconds"""
    addr: bytes
    """transmitter address (6 bytes) — raw identifier, never stored"""
    rssi: int | None
    """antenna signal, dBm (None when the radio did not report it)"""
    freq_mhz: int | None
    """channel centre frequency, MHz"""
    seq: int
    """802.11 sequence number (0..4095)"""
    randomized: bool
    """locally-administered bit of the transmitter address"""
    directed: bool
    """the probe names an SSID (content dropped in the decoder)"""
    ie_sig: bytes
    """IE layout fingerprint material: IE ids in order + capability bytes, never SSIDs"""

    @property
    def band(self) -> str:
        return band_of(self.freq_mhz)


@dataclass(frozen=True, slots=True)
class BleAdvert:
    """A decoded BLE advertising PDU. Lives only between decode and pseudonymize."""

    t_ms: int
    """capture time, Unix epoch milliseconds"""
    addr: bytes
    """advertiser address (6 bytes, transmission order reversed to big-endian) — raw"""
    addr_type: BleAddrType
    rssi: int | None
    """dBm (None when the sniffer did not report it)"""
    channel: int
    """BLE channel index: 37, 38, 39 for advertising, 0–36 for data; -1 when the
    source does not say (LINKTYPE 251, HCI reports)"""
    pdu_type: int
    kind: DeviceKind


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


def band_of(freq_mhz: int | None) -> str:
    """Band label of a Wi-Fi channel frequency (MHz)."""
    if freq_mhz is None or freq_mhz < 3000:
        return "wifi24"
    if freq_mhz < 5925:
        return "wifi5"
    return "wifi6"


def freq_of_channel(channel: int) -> int:
    """Centre frequency (MHz) of a 2.4/5 GHz Wi-Fi channel number."""
    if channel == 14:
        return 2484
    if 1 <= channel <= 13:
        return 2407 + 5 * channel
    return 5000 + 5 * channel
