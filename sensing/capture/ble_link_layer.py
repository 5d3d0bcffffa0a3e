"""BLE link-layer terms that both decoders use (link-layer packets and HCI reports).

The advertising access address, the advertising PDU types (Core spec Vol 6 Part
B 2.3), the channel index of an RF channel, and the address type a TxAdd bit
and an address's two top bits say.

Address type
    TxAdd = 0 → public. TxAdd = 1 → the two top bits of the address: 11 random
    static, 01 resolvable private, 00 non-resolvable private, 10 (reserved)
    reported as non-resolvable (and flagged, so the decoder can count it).
Channel
    The BLE *channel index*: 37, 38, 39 for the advertising channels, 0-36 for
    the others, and :data:`CHANNEL_UNKNOWN` (-1) when the source does not say.

>>> rf_to_channel_index(0), rf_to_channel_index(12), rf_to_channel_index(13)
(37, 38, 11)
>>> address_type(True, bytes.fromhex("5a1b2c3d4e5f"))[0].name
'RESOLVABLE'
"""

from __future__ import annotations

from sensing.capture.decoded import BleAddrType

__all__ = [
    "ADV_ACCESS_ADDRESS",
    "ADV_DIRECT_IND",
    "ADV_EXT_IND",
    "ADV_IND",
    "ADV_NONCONN_IND",
    "ADV_SCAN_IND",
    "AUX_CONNECT_RSP",
    "CHANNEL_UNKNOWN",
    "CONNECT_IND",
    "SCAN_REQ",
    "SCAN_RSP",
    "address_type",
    "rf_to_channel_index",
]

ADV_ACCESS_ADDRESS = 0x8E89BED6
CHANNEL_UNKNOWN = -1
"""``BleAdvert.channel`` when the capture does not tell the channel."""

ADV_IND = 0
ADV_DIRECT_IND = 1
ADV_NONCONN_IND = 2
SCAN_REQ = 3
SCAN_RSP = 4
CONNECT_IND = 5
ADV_SCAN_IND = 6
ADV_EXT_IND = 7
AUX_CONNECT_RSP = 8


def rf_to_channel_index(rf: int) -> int:
    """BLE channel index (37/38/39 advertising, 0-36 data) of an RF channel 0-39."""
    if rf == 0:
        return 37
    if rf == 12:
        return 38
    if rf == 39:
        return 39
    if 1 <= rf <= 11:
        return rf - 1
    if 13 <= rf <= 38:
        return rf - 2
    return CHANNEL_UNKNOWN


def address_type(random: bool, display: bytes) -> tuple[BleAddrType, bool]:
    """(type, reserved) of a BLE address given TxAdd and the display-order bytes."""
    if not random:
        return BleAddrType.PUBLIC, False
    top = display[0] >> 6
    if top == 3:
        return BleAddrType.RANDOM_STATIC, False
    if top == 1:
        return BleAddrType.RESOLVABLE, False
    return BleAddrType.NON_RESOLVABLE, top == 2
