"""Decode BLE advertising PDUs and HCI advertising reports into :class:`BleAdvert`.

Sources (pcap link types, see :mod:`sensing.capture.capture_file`):

* 256 ``BLUETOOTH_LE_LL_WITH_PHDR``: 10-byte pseudo-header (RF channel, signal
  dBm when flag 0x0002, CRC checked 0x0400 / valid 0x0800, PHY bits 14-15) then
  the link-layer packet (access address, header, payload, CRC).
* 251 ``BLUETOOTH_LE_LL``: the link-layer packet alone (no RSSI, no channel).
* 272 ``NORDIC_BLE``: nRF Sniffer header (legacy 0xBEEF and protocol versions
  1-3; flags bit 0 = CRC ok, channel index, RSSI as a negated byte) then the
  link-layer packet.
* 187 ``BLUETOOTH_HCI_H4``, 201 ``BLUETOOTH_HCI_H4_WITH_PHDR`` and 254
  ``BLUETOOTH_LINUX_MONITOR`` (btsnoop files map onto these): HCI LE Meta events
  LE Advertising Report (0x02), LE Directed Advertising Report (0x0B) and LE
  Extended Advertising Report (0x0D): address, address type, RSSI, AD data.

Policies
--------
CRC
    Link-layer packets on the advertising access address (0x8E89BED6) are checked:
    a sniffer's own verdict is trusted when it gives one (Nordic flag, PHDR "CRC
    checked"); otherwise the CRC-24 (init 0x555555) is recomputed. A failure is
    rejected as ``bad_crc``. Packets on other access addresses (data channels,
    misdetections) are rejected as ``not_advertising``.
Which address
    The address of the device that *transmitted* the packet, since that is the
    device whose RSSI was measured and which is present. For ADV_IND,
    ADV_DIRECT_IND, ADV_NONCONN_IND, ADV_SCAN_IND, SCAN_RSP and ADV_EXT_IND (when
    it carries one) that is AdvA; for **SCAN_REQ it is ScanA**, the scanning
    phone (TxAdd describes ScanA), not the advertiser it asks. CONNECT_IND,
    AUX_CONNECT_RSP, reserved PDU types and ADV_EXT_IND without AdvA are rejected
    (``connect_ind``, ``aux_connect_rsp``, ``reserved_pdu_type``, ``ext_no_adva``).
Address type
    TxAdd = 0 → public. TxAdd = 1 → the two top bits of the address: 11 random
    static, 01 resolvable private, 00 non-resolvable private, 10 (reserved)
    reported as non-resolvable and counted (``reserved_random_subtype``). HCI
    identity types (resolved by the controller) map to public / random static.
Channel
    ``BleAdvert.channel`` is the BLE *channel index*: 37, 38, 39 for the
    advertising channels, 0-36 for the others (a PHDR's RF channel is converted),
    and :data:`CHANNEL_UNKNOWN` (-1) when the source does not say (251, HCI).
RSSI
    ``None`` when the source does not report it (PHDR signal not valid, 251, HCI
    value 127) or when it falls outside ``rssi_range`` (counted ``rssi_implausible``).
Device kind
    From the AD structures only (manufacturer company id, 16-bit service UUIDs,
    appearance), see :func:`device_kind`; the AD payload itself is not kept.
"""

from __future__ import annotations

from collections import Counter

from sensing.capture.decoded import BleAddrType, BleAdvert
from sensing.wire.observation import DeviceKind

__all__ = [
    "ADV_ACCESS_ADDRESS",
    "CHANNEL_UNKNOWN",
    "BleDecoder",
    "ble_crc24",
    "device_kind",
    "rf_to_channel_index",
]

ADV_ACCESS_ADDRESS = 0x8E89BED6
CHANNEL_UNKNOWN = -1
"""``BleAdvert.channel`` when the capture does not tell the channel."""

LINKTYPE_BLUETOOTH_HCI_H4 = 187
LINKTYPE_BLUETOOTH_HCI_H4_WITH_PHDR = 201
LINKTYPE_BLUETOOTH_LE_LL = 251
LINKTYPE_BLUETOOTH_LINUX_MONITOR = 254
LINKTYPE_BLUETOOTH_LE_LL_WITH_PHDR = 256
LINKTYPE_NORDIC_BLE = 272

_ADV_AA_BYTES = ADV_ACCESS_ADDRESS.to_bytes(4, "little")

ADV_IND = 0
ADV_DIRECT_IND = 1
ADV_NONCONN_IND = 2
SCAN_REQ = 3
SCAN_RSP = 4
CONNECT_IND = 5
ADV_SCAN_IND = 6
ADV_EXT_IND = 7
AUX_CONNECT_RSP = 8

# --- CRC-24 (Core spec Vol 6 Part B 3.1.1), reflected, table driven --------------------


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


# --- device kind ----------------------------------------------------------------------

_COMPANY_KIND: dict[int, DeviceKind] = {
    0x004C: DeviceKind.APPLE,
    0x0006: DeviceKind.MICROSOFT,
    0x0075: DeviceKind.SAMSUNG,
    0x00E0: DeviceKind.GOOGLE_ANDROID,
    0x0087: DeviceKind.WEARABLE,  # Garmin
}
_UUID16_KIND: dict[int, DeviceKind] = {
    0xFEAA: DeviceKind.BEACON,  # Eddystone
    0xFEF3: DeviceKind.GOOGLE_ANDROID,
    0xFE9F: DeviceKind.GOOGLE_ANDROID,
    0xFD5A: DeviceKind.SAMSUNG,  # SmartThings Find
    0xFD69: DeviceKind.SAMSUNG,
    0x180D: DeviceKind.WEARABLE,  # Heart Rate service
    0x1814: DeviceKind.WEARABLE,  # Running Speed and Cadence
    0xFEE0: DeviceKind.WEARABLE,  # Anhui Huami (Mi Band / Amazfit)
}
_WEARABLE_APPEARANCE_CATEGORIES = frozenset({3, 13})  # watch, heart-rate sensor


def device_kind(ad: bytes | memoryview) -> DeviceKind:
    """Coarse device kind from advertising data (AD structures).

    Order: beacons first (iBeacon, AltBeacon, Eddystone), then the manufacturer
    company id, then 16-bit service UUIDs (lists and service data), then the
    appearance category (watch, heart-rate sensor → wearable); any other
    manufacturer or service → OTHER; nothing → UNKNOWN.
    """
    company = -1
    mprefix = b""
    uuid_kind = DeviceKind.UNKNOWN
    other = False
    wearable_appearance = False
    n = len(ad)
    pos = 0
    while pos + 1 < n:
        ln = ad[pos]
        if ln == 0:
            break
        end = pos + 1 + ln
        if end > n:
            break
        t = ad[pos + 1]
        if t == 0xFF:
            if ln >= 3 and company < 0:
                company = ad[pos + 2] | ad[pos + 3] << 8
                mprefix = bytes(ad[pos + 4 : min(end, pos + 6)])
        elif t in (0x02, 0x03, 0x14, 0x16):
            step = 4 if t == 0x16 else 2  # service data: one UUID then data
            q = pos + 2
            stop = min(end, q + 2) if t == 0x16 else end
            while q + 2 <= stop:
                u = ad[q] | ad[q + 1] << 8
                k = _UUID16_KIND.get(u)
                if k is not None:
                    if k == DeviceKind.BEACON or uuid_kind == DeviceKind.UNKNOWN:
                        uuid_kind = k
                else:
                    other = True
                q += step
        elif t in (0x04, 0x05, 0x06, 0x07, 0x15, 0x20, 0x21):
            other = True
        elif t == 0x19 and ln >= 3:
            appearance = ad[pos + 2] | ad[pos + 3] << 8
            wearable_appearance = (appearance >> 6) in _WEARABLE_APPEARANCE_CATEGORIES
        pos = end
    if company == 0x004C and mprefix == b"\x02\x15":
        return DeviceKind.BEACON
    if company >= 0 and mprefix == b"\xbe\xac":
        return DeviceKind.BEACON
    if uuid_kind == DeviceKind.BEACON:
        return DeviceKind.BEACON
    if company >= 0:
        return _COMPANY_KIND.get(company, DeviceKind.OTHER)
    if uuid_kind != DeviceKind.UNKNOWN:
        return uuid_kind
    if wearable_appearance:
        return DeviceKind.WEARABLE
    if other:
        return DeviceKind.OTHER
    return DeviceKind.UNKNOWN


def _addr_type(random: bool, display: bytes) -> tuple[BleAddrType, bool]:
    """(type, reserved) of a BLE address given TxAdd and the display-order bytes."""
    if not random:
        return BleAddrType.PUBLIC, False
    top = display[0] >> 6
    if top == 3:
        return BleAddrType.RANDOM_STATIC, False
    if top == 1:
        return BleAddrType.RESOLVABLE, False
    return BleAddrType.NON_RESOLVABLE, top == 2


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


class BleDecoder:
    """Stateful (counters) decoder of BLE captures into :class:`BleAdvert`.

    Parameters
    ----------
    rssi_range
        inclusive plausible RSSI range, dBm; values outside become ``None``.

    Example
    -------
    >>> dec = BleDecoder()
    >>> dec.decode(251, bytes(3), 0) is None, dict(dec.rejects)
    (True, {'truncated': 1})
    """

    def __init__(self, *, rssi_range: tuple[int, int] = (-120, -1)):
        self.rssi_min, self.rssi_max = rssi_range
        self.rejects: Counter[str] = Counter()
        """packets that gave no advert, by reason"""
        self.notes: Counter[str] = Counter()
        """accepted adverts with a caveat, by reason"""
        self.accepted = 0
        """adverts produced"""

    def decode(self, linktype: int, data: bytes, t_ms: int) -> BleAdvert | None:
        """Decode one record; ``None`` when it holds no usable advert (counted).

        An HCI event with several reports yields its first here; use
        :meth:`decode_all` to get every report.

        Parameters
        ----------
        linktype
            256, 251, 272 (link layer) or 187, 201, 254 (HCI)
        data
            the captured bytes
        t_ms
            capture time, Unix epoch milliseconds
        """
        if linktype == LINKTYPE_BLUETOOTH_LE_LL_WITH_PHDR:
            return self._phdr(data, t_ms)
        if linktype == LINKTYPE_NORDIC_BLE:
            return self._nordic(data, t_ms)
        if linktype == LINKTYPE_BLUETOOTH_LE_LL:
            return self._ll(data, 0, t_ms, None, CHANNEL_UNKNOWN, None, False)
        if linktype in (
            LINKTYPE_BLUETOOTH_HCI_H4,
            LINKTYPE_BLUETOOTH_HCI_H4_WITH_PHDR,
            LINKTYPE_BLUETOOTH_LINUX_MONITOR,
        ):
            out = self._hci(linktype, data, t_ms, first_only=True)
            return out[0] if out else None
        self.rejects["unsupported_linktype"] += 1
        return None

    def decode_all(self, linktype: int, data: bytes, t_ms: int) -> list[BleAdvert]:
        """Every advert of one record (several for a multi-report HCI event)."""
        if linktype in (
            LINKTYPE_BLUETOOTH_HCI_H4,
            LINKTYPE_BLUETOOTH_HCI_H4_WITH_PHDR,
            LINKTYPE_BLUETOOTH_LINUX_MONITOR,
        ):
            return self._hci(linktype, data, t_ms, first_only=False)
        adv = self.decode(linktype, data, t_ms)
        return [adv] if adv is not None else []

    # -- link layer ------------------------------------------------------------------------

    def _phdr(self, data: bytes, t_ms: int) -> BleAdvert | None:
        if len(data) < 10:
            self.rejects["truncated"] += 1
            return None
        flags = data[8] | data[9] << 8
        rssi: int | None = None
        if flags & 0x0002:
            rssi = data[1] - 256 if data[1] > 127 else data[1]
        crc_ok: bool | None = None
        if flags & 0x0400:
            crc_ok = bool(flags & 0x0800)
        coded = (flags >> 14) == 2
        return self._ll(data, 10, t_ms, rssi, rf_to_channel_index(data[0]), crc_ok, coded)

    def _nordic(self, data: bytes, t_ms: int) -> BleAdvert | None:
        n = len(data)
        if n < 17:
            self.rejects["truncated"] += 1
            return None
        if data[0] == 0xBE and data[1] == 0xEF:
            base = 8  # legacy: marker(2) id(1) counter(2) unused(2) payload length(1)
        else:
            protover = data[3]
            if protover < 1 or protover > 3:
                self.rejects["bad_nordic_header"] += 1
                return None
            # board(1) + 6-byte UART header (field layouts differ by version, not the
            # length) + the event packet's own length byte
            base = 8
        # base now points at the flags byte
        flags = data[base]
        channel = data[base + 1]
        rssi = -data[base + 2]
        ll = base + 9  # flags, channel, rssi, event counter(2), time(4)
        phy = (flags >> 4) & 7
        if channel > 39:
            self.rejects["bad_nordic_header"] += 1
            return None
        return self._ll(data, ll, t_ms, rssi, channel, bool(flags & 1), phy == 2)

    def _ll(
        self,
        data: bytes,
        off: int,
        t_ms: int,
        rssi: int | None,
        channel: int,
        crc_ok: bool | None,
        coded: bool,
    ) -> BleAdvert | None:
        n = len(data)
        if n < off + 4:
            self.rejects["truncated"] += 1
            return None
        if data[off : off + 4] != _ADV_AA_BYTES:
            self.rejects["not_advertising"] += 1
            return None
        h = off + 5 if coded else off + 4  # LE Coded: CI byte after the access address
        if n < h + 2:
            self.rejects["truncated"] += 1
            return None
        hdr0 = data[h]
        plen = data[h + 1]
        pay = h + 2
        pend = pay + plen
        if crc_ok is False:
            self.rejects["bad_crc"] += 1
            return None
        if pend > n:
            self.rejects["truncated"] += 1
            return None
        if crc_ok is None:
            if pend + 3 > n:
                self.rejects["no_crc"] += 1
                return None
            if ble_crc24(data[h:pend]) != data[pend : pend + 3]:
                self.rejects["bad_crc"] += 1
                return None
        ptype = hdr0 & 0x0F
        tx_random = bool(hdr0 & 0x40)
        ad_start = pay + 6
        if ptype in (ADV_IND, ADV_NONCONN_IND, ADV_SCAN_IND, SCAN_RSP):
            if plen < 6:
                self.rejects["bad_length"] += 1
                return None
            a = pay
        elif ptype in (ADV_DIRECT_IND, SCAN_REQ):
            if plen < 12:
                self.rejects["bad_length"] += 1
                return None
            a = pay  # AdvA for ADV_DIRECT_IND, ScanA (the transmitter) for SCAN_REQ
            ad_start = pend
        elif ptype == ADV_EXT_IND:
            if plen < 1:
                self.rejects["bad_length"] += 1
                return None
            ehl = data[pay] & 0x3F
            if ehl == 0 or plen < 1 + ehl or not data[pay + 1] & 0x01 or ehl < 7:
                self.rejects["ext_no_adva"] += 1
                return None
            a = pay + 2
            ad_start = pay + 1 + ehl
        elif ptype == CONNECT_IND:
            self.rejects["connect_ind"] += 1
            return None
        elif ptype == AUX_CONNECT_RSP:
            self.rejects["aux_connect_rsp"] += 1
            return None
        else:
            self.rejects["reserved_pdu_type"] += 1
            return None
        addr = data[a + 5 : a - 1 if a > 0 else None : -1]
        atype, reserved = _addr_type(tx_random, addr)
        if reserved:
            self.notes["reserved_random_subtype"] += 1
        kind = device_kind(data[ad_start:pend]) if ad_start < pend else DeviceKind.UNKNOWN
        return self._accept(t_ms, addr, atype, rssi, channel, ptype, kind)

    def _accept(
        self,
        t_ms: int,
        addr: bytes,
        atype: BleAddrType,
        rssi: int | None,
        channel: int,
        ptype: int,
        kind: DeviceKind,
    ) -> BleAdvert:
        if rssi is not None and not self.rssi_min <= rssi <= self.rssi_max:
            self.notes["rssi_implausible"] += 1
            rssi = None
        self.accepted += 1
        return BleAdvert(
            t_ms=t_ms,
            addr=addr,
            addr_type=atype,
            rssi=rssi,
            channel=channel,
            pdu_type=ptype,
            kind=kind,
        )

    # -- HCI -------------------------------------------------------------------------------

    def _hci(self, linktype: int, data: bytes, t_ms: int, first_only: bool) -> list[BleAdvert]:
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
            return self._hci_legacy(data, p, end, t_ms, first_only)
        if sub == 0x0D:
            return self._hci_ext(data, p, end, t_ms, first_only)
        if sub == 0x0B:
            return self._hci_direct(data, p, end, t_ms, first_only)
        self.rejects["not_adv_report"] += 1
        return []

    def _hci_addr(self, data: bytes, p: int, at: int) -> tuple[bytes, BleAddrType] | None:
        addr = data[p + 5 : p - 1 if p > 0 else None : -1]
        if at == 0 or at == 2:
            return addr, BleAddrType.PUBLIC
        if at == 3:
            return addr, BleAddrType.RANDOM_STATIC
        if at == 1:
            atype, reserved = _addr_type(True, addr)
            if reserved:
                self.notes["reserved_random_subtype"] += 1
            return addr, atype
        self.rejects["anonymous_addr" if at == 0xFF else "bad_addr_type"] += 1
        return None

    def _hci_rssi(self, v: int) -> int | None:
        return None if v == 127 else (v - 256 if v > 127 else v)

    def _hci_legacy(
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
            rssi = self._hci_rssi(data[dend])
            ptype = _HCI_LEGACY_TO_PDU.get(et)
            got = self._hci_addr(data, p + 2, at)
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

    def _hci_ext(
        self, data: bytes, p: int, end: int, t_ms: int, first_only: bool
    ) -> list[BleAdvert]:
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
            rssi = self._hci_rssi(data[p + 13])
            dlen = data[p + 23]
            dstart = p + 24
            dend = dstart + dlen
            if dend > end:
                self.rejects["truncated"] += 1
                break
            got = self._hci_addr(data, p + 3, at)
            p = dend
            if got is None:
                continue
            ptype = _EXT_LEGACY_TO_PDU.get(et & 0x1F, ADV_EXT_IND) if et & 0x10 else ADV_EXT_IND
            kind = device_kind(data[dstart:dend])
            out.append(self._accept(t_ms, got[0], got[1], rssi, CHANNEL_UNKNOWN, ptype, kind))
            if first_only:
                break
        return out

    def _hci_direct(
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
            got = self._hci_addr(data, p + 2, data[p + 1])
            rssi = self._hci_rssi(data[p + 15])
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
