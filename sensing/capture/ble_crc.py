"""The CRC-24 of a BLE link-layer packet (Core spec Vol 6 Part B 3.1.1).

Reflected and table driven; the advertising channels' init 0x555555 is the
default. The decoder checks it (:mod:`sensing.capture.ble_decode`), the
simulator computes it for the packets it writes.

An ADV_IND an nRF sniffer captured from an iPhone, with the CRC it received:

>>> ble_crc24(bytes.fromhex("4017889bcc97877202011a020a080aff4c0010053118bf0f0a")).hex()
'1955ab'
"""

from __future__ import annotations

__all__ = ["ble_crc24"]


def _crc_table() -> tuple[int, ...]:
    table = []
    for i in range(256):
        s = i
        for _ in range(8):
            s = (s >> 1) ^ (0xDA6000 if s & 1 else 0)
        table.append(s)
    return tuple(table)


_CRC_TABLE = _crc_table()
_ADV_CRC_INIT_REFLECTED = 0xAAAAAA  # 0x555555 bit-reversed over 24 bits


def ble_crc24(pdu: bytes | memoryview, init_reflected: int = _ADV_CRC_INIT_REFLECTED) -> bytes:
    """CRC-24 of a link-layer PDU (header + payload), as the 3 bytes sent on air.

    ``init_reflected`` is the CRC init bit-reversed (the advertising-channel
    0x555555 by default). Polynomial x^24+x^10+x^9+x^6+x^4+x^3+x+1.
    """
    s = init_reflected
    t = _CRC_TABLE
    for b in pdu:
        s = (s >> 8) ^ t[(s ^ b) & 0xFF]
    return s.to_bytes(3, "little")
