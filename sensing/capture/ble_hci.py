"""HCI LE advertising reports: what a controller tells the host it heard.

Link types (see :mod:`sensing.capture.capture_file`): 187
``BLUETOOTH_HCI_H4``, 201 ``BLUETOOTH_HCI_H4_WITH_PHDR`` and 254
``BLUETOOTH_LINUX_MONITOR`` (btsnoop files map onto these). Of the HCI packets
only events are read, and of those the LE Meta events LE Advertising Report
(0x02), LE Directed Advertising Report (0x0B) and LE Extended Advertising Report
(0x0D): address, address type, RSSI, AD data; an event may carry several reports.

Address type
    HCI identity types (resolved by the controller) map to public / random
    static; a random address is typed by its two top bits
    (:func:`~sensing.capture.ble_link_layer.address_type`); anonymous adverts
    (0xFF) are rejected (``anonymous_addr``).
Channel, RSSI
    HCI does not say the channel (:data:`~sensing.capture.ble_link_layer.CHANNEL_UNKNOWN`);
    an RSSI of 127 means not available (``None``).
PDU type
    Legacy event types map to the advertising PDU types; an extended report is
    ``ADV_EXT_IND`` unless its event type says legacy.

:class:`HciReports` does the parsing for :class:`~sensing.capture.ble_decode.BleDecoder`,
counting into the decoder's own ``rejects`` and ``notes``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

from sensing.capture.ble_device_kind import device_kind
from sensing.capture.ble_link_layer import (
    ADV_DIRECT_IND,
    ADV_EXT_IND,
    ADV_IND,
    ADV_NONCONN_IND,
    ADV_SCAN_IND,
    CHANNEL_UNKNOWN,
    SCAN_RSP,
    address_type,
)
from sensing.capture.decoded import BleAddrType, BleAdvert
from sensing.wire.observation import DeviceKind

__all__ = [
    "HCI_LINKTYPES",
    "LINKTYPE_BLUETOOTH_HCI_H4",
    "LINKTYPE_BLUETOOTH_HCI_H4_WITH_PHDR",
    "LINKTYPE_BLUETOOTH_LINUX_MONITOR",
    "Accept",
    "HciReports",
]

LINKTYPE_BLUETOOTH_HCI_H4 = 187
LINKTYPE_BLUETOOTH_HCI_H4_WITH_PHDR = 201
LINKTYPE_BLUETOOTH_LINUX_MONITOR = 254
HCI_LINKTYPES = (
    LINKTYPE_BLUETOOTH_HCI_H4,
    LINKTYPE_BLUETOOTH_HCI_H4_WITH_PHDR,
    LINKTYPE_BLUETOOTH_LINUX_MONITOR,
)
"""the pcap link types whose records are HCI packets"""

Accept = Callable[[int, bytes, BleAddrType, int | None, int, int, DeviceKind], BleAdvert]
"""makes the advert (t_ms, addr, addr_type, rssi, channel, pdu_type, kind) and counts it"""

_HCI_LEGACY_TO_PDU = {
    0: ADV_IND,
    1: ADV_DIRECT_IND,
    2: ADV_SCAN_IND,
    3: ADV_NONCONN_IND,
    4: SCAN_RSP,
}
_EXT_LEGACY_TO_PDU = {
    0x13: ADV_IND,
    0x15: ADV_DIRECT_IND,
    0x12: ADV_SCAN_IND,
    0x10: ADV_NONCONN_IND,
    0x1B: SCAN_RSP,
    0x1A: SCAN_RSP,
}


class HciReports:
    """Parser of HCI advertising reports into adverts.

    Parameters
    ----------
    rejects, notes
        the decoder's counters (records that gave no advert, adverts with a
        caveat, by reason), counted into in place.
    accept
        makes each advert (the decoder's RSSI plausibility and count).
    """

    def __init__(self, rejects: Counter[str], notes: Counter[str], accept: Accept) -> None:
        self.rejects = rejects
        self.notes = notes
        self._accept = accept

    def adverts(self, linktype: int, data: bytes, t_ms: int, first_only: bool) -> list[BleAdvert]:
        """The adverts of one HCI record (at most one when ``first_only``); [] counted."""
        if linktype == LINKTYPE_BLUETOOTH_LINUX_MONITOR:
            if len(data) < 4:
                self.rejects["truncated"] += 1
                return []
            if (data[2] << 8 | data[3]) != 3:  # opcode 3: event packet
                self.rejects["not_hci_event"] += 1
                return []
            ev = 4
        else:
            off = 4 if linktype == LINKTYPE_BLUETOOTH_HCI_H4_WITH_PHDR else 0
            if len(data) < off + 1:
                self.rejects["truncated"] += 1
                return []
            if data[off] != 0x04:
                self.rejects["not_hci_event"] += 1
                return []
            ev = off + 1
        n = len(data)
        if n < ev + 3:
            self.rejects["truncated"] += 1
            return []
        if data[ev] != 0x3E:
            self.rejects["not_adv_report"] += 1
            return []
        end = ev + 2 + data[ev + 1]
        if end > n:
            self.rejects["truncated"] += 1
            return []
        sub = data[ev + 2]
        p = ev + 3
        if sub == 0x02:
            return self._legacy(data, p, end, t_ms, first_only)
        if sub == 0x0D:
            return self._ext(data, p, end, t_ms, first_only)
        if sub == 0x0B:
            return self._direct(data, p, end, t_ms, first_only)
        self.rejects["not_adv_report"] += 1
        return []

    def _addr(self, data: bytes, p: int, at: int) -> tuple[bytes, BleAddrType] | None:
        addr = data[p + 5 : p - 1 if p > 0 else None : -1]
        if at == 0 or at == 2:
            return addr, BleAddrType.PUBLIC
        if at == 3:
            return addr, BleAddrType.RANDOM_STATIC
        if at == 1:
            atype, reserved = address_type(True, addr)
            if reserved:
                self.notes["reserved_random_subtype"] += 1
            return addr, atype
        self.rejects["anonymous_addr" if at == 0xFF else "bad_addr_type"] += 1
        return None

    def _rssi(self, v: int) -> int | None:
        return None if v == 127 else (v - 256 if v > 127 else v)

    def _legacy(
        self, data: bytes, p: int, end: int, t_ms: int, first_only: bool
    ) -> list[BleAdvert]:
        out: list[BleAdvert] = []
        if p >= end:
            self.rejects["truncated"] += 1
            return out
        count = data[p]
        p += 1
        for _ in range(count):
            if p + 9 > end:
                self.rejects["truncated"] += 1
                break
            et = data[p]
            at = data[p + 1]
            dlen = data[p + 8]
            dend = p + 9 + dlen
            if dend + 1 > end:
                self.rejects["truncated"] += 1
                break
            rssi = self._rssi(data[dend])
            ptype = _HCI_LEGACY_TO_PDU.get(et)
            got = self._addr(data, p + 2, at)
            p = dend + 1
            if ptype is None:
                self.rejects["reserved_pdu_type"] += 1
                continue
            if got is None:
                continue
            kind = device_kind(data[p - 1 - dlen : p - 1])
            out.append(self._accept(t_ms, got[0], got[1], rssi, CHANNEL_UNKNOWN, ptype, kind))
            if first_only:
                break
        return out

    def _ext(self, data: bytes, p: int, end: int, t_ms: int, first_only: bool) -> list[BleAdvert]:
        out: list[BleAdvert] = []
        if p >= end:
            self.rejects["truncated"] += 1
            return out
        count = data[p]
        p += 1
        for _ in range(count):
            if p + 24 > end:
                self.rejects["truncated"] += 1
                break
            et = data[p] | data[p + 1] << 8
            at = data[p + 2]
            rssi = self._rssi(data[p + 13])
            dlen = data[p + 23]
            dstart = p + 24
            dend = dstart + dlen
            if dend > end:
                self.rejects["truncated"] += 1
                break
            got = self._addr(data, p + 3, at)
            p = dend
            if got is None:
                continue
            ptype = _EXT_LEGACY_TO_PDU.get(et & 0x1F, ADV_EXT_IND) if et & 0x10 else ADV_EXT_IND
            kind = device_kind(data[dstart:dend])
            out.append(self._accept(t_ms, got[0], got[1], rssi, CHANNEL_UNKNOWN, ptype, kind))
            if first_only:
                break
        return out

    def _direct(
        self, data: bytes, p: int, end: int, t_ms: int, first_only: bool
    ) -> list[BleAdvert]:
        out: list[BleAdvert] = []
        if p >= end:
            self.rejects["truncated"] += 1
            return out
        count = data[p]
        p += 1
        for _ in range(count):
            if p + 16 > end:
                self.rejects["truncated"] += 1
                break
            got = self._addr(data, p + 2, data[p + 1])
            rssi = self._rssi(data[p + 15])
            p += 16
            if got is None:
                continue
            out.append(
                self._accept(
                    t_ms, got[0], got[1], rssi, CHANNEL_UNKNOWN, ADV_DIRECT_IND, DeviceKind.UNKNOWN
                )
            )
            if first_only:
                break
        return out
