"""What a node hears, decoded at the capture boundary.

:class:`WifiProbe` and :class:`BleAdvert` hold a raw address and exist only in node
memory between decode and pseudonymization; what leaves the node is a
:class:`sensing.wire.observation.Observation`.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

from sensing.wire.observation import DeviceKind


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
