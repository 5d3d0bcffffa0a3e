"""Bytes on the air, as a node's radio would hand them over.

Wi-Fi: radiotap (Flags with FCS, Channel, dBm_AntSignal, Antenna) + 802.11 probe
request + IEs + FCS. BLE: LINKTYPE_BLUETOOTH_LE_LL_WITH_PHDR (256) advertising PDUs
with a valid CRC-24. Golden-byte tests compare these with tshark's reading.
"""

from __future__ import annotations

import struct
import zlib

from sensing.capture.ble_crc import ble_crc24
from sensing.capture.decoded import freq_of_channel

# radiotap: present = Flags(1) | Channel(3) | dBm_AntSignal(5) | Antenna(11)
_RT_PRESENT = (1 << 1) | (1 << 3) | (1 << 5) | (1 << 11)
_RT = struct.Struct("<BBHIBxHHbB")  # ver, pad, len, present, flags, (pad), freq, chflags, sig, ant
RT_FLAG_FCS = 0x10
CH_2GHZ_CCK = 0x00A0
CH_5GHZ_OFDM = 0x0140
BROADCAST = b"\xff" * 6

ADV_ACCESS_ADDRESS = 0x8E89BED6
BLE_PHDR = struct.Struct("<BbbBIH")  # rf_channel, signal, noise, aa_offenses, ref_aa, flags
# dewhitened | signal valid | noise valid | ref AA valid | CRC checked | CRC valid
BLE_FLAGS = 0x0001 | 0x0002 | 0x0004 | 0x0010 | 0x0400 | 0x0800
ADV_IND, ADV_NONCONN_IND = 0x0, 0x2
RF_CHANNEL = {37: 0, 38: 12, 39: 39}


def radiotap(freq_mhz: int, rssi_dbm: int, antenna: int = 0) -> bytes:
    chflags = CH_2GHZ_CCK if freq_mhz < 3000 else CH_5GHZ_OFDM
    return _RT.pack(0, 0, _RT.size, _RT_PRESENT, RT_FLAG_FCS, freq_mhz, chflags, rssi_dbm, antenna)


def probe_request_body(
    src: bytes, seq: int, ssid: bytes, ies: list[tuple[int, bytes]], channel: int
) -> bytes:
    """802.11 probe request (management header + IEs), without FCS."""
    hdr = struct.pack("<HH6s6s6sH", 0x0040, 0, BROADCAST, src, BROADCAST, (seq & 0xFFF) << 4)
    body = bytearray(hdr)
    body += bytes((0, len(ssid))) + ssid
    for eid, data in ies[:2]:
        body += bytes((eid, len(data))) + data
    body += bytes((3, 1, channel))  # DS parameter set
    for eid, data in ies[2:]:
        body += bytes((eid, len(data))) + data
    return bytes(body)


def wifi_frame(body: bytes, channel: int, rssi_dbm: int) -> bytes:
    """Radiotap + body + FCS for one received copy."""
    fcs = struct.pack("<I", zlib.crc32(body) & 0xFFFFFFFF)
    return radiotap(freq_of_channel(channel), rssi_dbm) + body + fcs


# ----------------------------------------------------------------------- BLE


def adv_pdu(addr: bytes, adv_data: bytes, pdu_type: int = ADV_IND, tx_random: bool = True) -> bytes:
    """Advertising PDU (2-byte header + AdvA + AdvData) with its CRC appended."""
    payload = addr[::-1] + adv_data
    hdr = bytes((pdu_type | (0x40 if tx_random else 0), len(payload)))
    pdu = hdr + payload
    return pdu + ble_crc24(pdu)


def ble_frame(pdu_with_crc: bytes, adv_channel: int, rssi_dbm: int, noise_dbm: int = -100) -> bytes:
    phdr = BLE_PHDR.pack(
        RF_CHANNEL[adv_channel], rssi_dbm, noise_dbm, 0, ADV_ACCESS_ADDRESS, BLE_FLAGS
    )
    return phdr + struct.pack("<I", ADV_ACCESS_ADDRESS) + pdu_with_crc


def adv_data_for(os_: str, rnd: bytes) -> bytes:
    """AdvData of a phone: flags + Apple Nearby Info, or Google's service UUID."""
    flags = bytes.fromhex("02011a")
    if os_ == "ios":
        return flags + bytes.fromhex("0aff4c001005") + rnd[:5]
    return flags + bytes.fromhex("03039ffe") + bytes.fromhex("0716f3fe") + rnd[:4]
