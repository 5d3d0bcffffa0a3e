"""Decode BLE captures into :class:`BleAdvert`: the link-layer packets of sniffers
here, HCI advertising reports in :mod:`sensing.capture.ble_hci`.

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
  Extended Advertising Report (0x0D): address, address type, RSSI, AD data
  (:mod:`sensing.capture.ble_hci`).

Policies
--------
CRC
    Link-layer packets on the advertising access address (0x8E89BED6) are checked:
    a sniffer's own verdict is trusted when it gives one (Nordic flag, PHDR "CRC
    checked"); otherwise the CRC-24 (init 0x555555, :mod:`sensing.capture.ble_crc`)
    is recomputed. A failure is rejected as ``bad_crc``. Packets on other access
    addresses (data channels, misdetections) are rejected as ``not_advertising``.
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
    identity types (resolved by the controller) map to public / random static
    (:func:`~sensing.capture.ble_link_layer.address_type`).
Channel
    ``BleAdvert.channel`` is the BLE *channel index*: 37, 38, 39 for the
    advertising channels, 0-36 for the others (a PHDR's RF channel is converted),
    and :data:`~sensing.capture.ble_link_layer.CHANNEL_UNKNOWN` (-1) when the
    source does not say (251, HCI).
RSSI
    ``None`` when the source does not report it (PHDR signal not valid, 251, HCI
    value 127) or when it falls outside ``rssi_range`` (counted ``rssi_implausible``).
Device kind
    From the AD structures only (manufacturer company id, 16-bit service UUIDs,
    appearance), see :func:`~sensing.capture.ble_device_kind.device_kind`; the AD
    payload itself is not kept.
"""

from __future__ import annotations

from collections import Counter

from sensing.capture.ble_crc import ble_crc24
from sensing.capture.ble_device_kind import device_kind
from sensing.capture.ble_hci import HCI_LINKTYPES, HciReports
from sensing.capture.ble_link_layer import (
    ADV_ACCESS_ADDRESS,
    ADV_DIRECT_IND,
    ADV_EXT_IND,
    ADV_IND,
    ADV_NONCONN_IND,
    ADV_SCAN_IND,
    AUX_CONNECT_RSP,
    CHANNEL_UNKNOWN,
    CONNECT_IND,
    SCAN_REQ,
    SCAN_RSP,
    address_type,
    rf_to_channel_index,
)
from sensing.capture.decoded import BleAddrType, BleAdvert
from sensing.wire.observation import DeviceKind

__all__ = ["BleDecoder"]

LINKTYPE_BLUETOOTH_LE_LL = 251
LINKTYPE_BLUETOOTH_LE_LL_WITH_PHDR = 256
LINKTYPE_NORDIC_BLE = 272

_ADV_AA_BYTES = ADV_ACCESS_ADDRESS.to_bytes(4, "little")


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
        self._hci = HciReports(self.rejects, self.notes, self._accept)

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
        if linktype in HCI_LINKTYPES:
            out = self._hci.adverts(linktype, data, t_ms, first_only=True)
            return out[0] if out else None
        self.rejects["unsupported_linktype"] += 1
        return None

    def decode_all(self, linktype: int, data: bytes, t_ms: int) -> list[BleAdvert]:
        """Every advert of one record (several for a multi-report HCI event)."""
        if linktype in HCI_LINKTYPES:
            return self._hci.adverts(linktype, data, t_ms, first_only=False)
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
        atype, reserved = address_type(tx_random, addr)
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
