"""Read capture files: pcap, pcapng and btsnoop, into link-layer records.

One reader for every file format a node or the simulator writes, normalized into
:class:`Record` (link type, Unix epoch nanoseconds, captured bytes, original
length). What the decoders make of the bytes is their business
(:mod:`sensing.capture.wifi_decode`, :mod:`sensing.capture.ble_decode`).

Damage never raises once the file is recognised: a truncated last record, a
stray trailing byte, a corrupt pcapng block or a record that claims an absurd
length is *counted* in :class:`CaptureStats` (reason → count) and reading stops
or skips as the format allows. Only a file that is not a capture at all (unknown
magic) raises :class:`~firmware_bridge.errors.CaptureError`.

Formats
-------
* pcap: microsecond (``a1b2c3d4``) and nanosecond (``a1b23c4d``) magic, both
  byte orders, and the "modified" (Kuznetzov, ``a1b2cd34``) variant. The link
  type is the low 16 bits of the header's link-type field.
* pcapng: any number of sections (each with its own byte order); Interface
  Description Blocks with per-interface link type, ``if_tsresol`` (base 10 or
  base 2) and ``if_tsoffset``; Enhanced, Simple and (obsolete) Packet Blocks.
  Other blocks are skipped. A Simple Packet Block has no timestamp: it is given
  the time of the previous record of the file (0 if none) and counted
  (``spb_no_timestamp``).
* btsnoop (Android/BlueZ HCI logs): datalinks 1001 (H1), 1002 (H4) and 2001
  (Linux monitor) are mapped onto the pcap link types a decoder understands:
  H1 and H4 become ``LINKTYPE_BLUETOOTH_HCI_H4_WITH_PHDR`` (201: 4-byte
  big-endian direction, 0 = sent, 1 = received, then the H4 packet-type byte),
  monitor becomes ``LINKTYPE_BLUETOOTH_LINUX_MONITOR`` (254: big-endian adapter
  index and opcode, then the payload).

Example
-------
>>> reader = CaptureReader("capture.pcap")            # doctest: +SKIP
>>> for rec in reader:                                 # doctest: +SKIP
...     probe = wifi.decode(rec.linktype, rec.data, rec.t_ns // 1_000_000)
>>> reader.stats.issues                                # doctest: +SKIP
Counter({'truncated_record': 1})
"""

from __future__ import annotations

import struct
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from firmware_bridge.errors import CaptureError

__all__ = [
    "LINKTYPE_BLUETOOTH_HCI_H4",
    "LINKTYPE_BLUETOOTH_HCI_H4_WITH_PHDR",
    "LINKTYPE_BLUETOOTH_LE_LL",
    "LINKTYPE_BLUETOOTH_LE_LL_WITH_PHDR",
    "LINKTYPE_BLUETOOTH_LINUX_MONITOR",
    "LINKTYPE_IEEE802_11",
    "LINKTYPE_IEEE802_11_PRISM",
    "LINKTYPE_IEEE802_11_RADIOTAP",
    "LINKTYPE_NORDIC_BLE",
    "CaptureReader",
    "CaptureStats",
    "Record",
    "read_records",
]

LINKTYPE_IEEE802_11 = 105
LINKTYPE_IEEE802_11_PRISM = 119
LINKTYPE_IEEE802_11_RADIOTAP = 127
LINKTYPE_BLUETOOTH_HCI_H4 = 187
LINKTYPE_BLUETOOTH_HCI_H4_WITH_PHDR = 201
LINKTYPE_BLUETOOTH_LE_LL = 251
LINKTYPE_BLUETOOTH_LINUX_MONITOR = 254
LINKTYPE_BLUETOOTH_LE_LL_WITH_PHDR = 256
LINKTYPE_NORDIC_BLE = 272

MAX_RECORD_BYTES = 1 << 24
"""A record header claiming more captured bytes than this is corrupt (16 MiB)."""

_PCAP_MAGICS: dict[bytes, tuple[str, int, int]] = {
    # magic bytes as stored -> (byte order, ns per fraction unit, record header size)
    b"\xd4\xc3\xb2\xa1": ("<", 1000, 16),
    b"\xa1\xb2\xc3\xd4": (">", 1000, 16),
    b"\x4d\x3c\xb2\xa1": ("<", 1, 16),
    b"\xa1\xb2\x3c\x4d": (">", 1, 16),
    b"\x34\xcd\xb2\xa1": ("<", 1000, 24),
    b"\xa1\xb2\xcd\x34": (">", 1000, 24),
}
_PCAPNG_SHB = b"\x0a\x0d\x0d\x0a"
_BTSNOOP_MAGIC = b"btsnoop\x00"
_BTSNOOP_EPOCH_US = 0x00DCDDB30F2F8000
"""btsnoop timestamps count microseconds from 0 AD; this is 1970-01-01 in that scale
(the constant Wireshark uses)."""


@dataclass(frozen=True, slots=True)
class Record:
    """One captured frame as the file holds it."""

    linktype: int
    """pcap LINKTYPE_* of ``data`` (e.g. 127 radiotap, 256 BLE LL with PHDR)"""
    t_ns: int
    """capture time, Unix epoch nanoseconds"""
    data: bytes
    """captured bytes (may be shorter than ``orig_len`` when the snap length cut it)"""
    orig_len: int
    """length of the frame on the wire, bytes"""


@dataclass(slots=True)
class CaptureStats:
    """What a reader saw, beside the records it yielded.

    ``issues`` counts problems by reason:

    ``truncated_record``
        the file ends inside a record (header or data); the partial record is dropped.
    ``trailing_bytes``
        fewer bytes than a record header are left at the end of the file.
    ``bad_record``
        a pcap record header claims an impossible length; reading stops there.
    ``bad_block``
        a pcapng block has an invalid length, trailer or content; reading stops if
        its length cannot be trusted, else the block is skipped.
    ``unknown_interface``
        a pcapng packet refers to an interface no IDB described; skipped.
    ``unsupported_linktype``
        a record's link type is not in the ``linktypes`` filter; skipped.
    ``caplen_exceeds_origlen``
        captured length larger than the original length (kept, odd writer).
    ``spb_no_timestamp``
        a Simple Packet Block was given the previous record's time.
    ``unsupported_datalink``
        a btsnoop datalink that has no pcap mapping; nothing is read.
    """

    format: str = ""
    """``pcap``, ``pcap-ns``, ``pcap-modified``, ``pcapng`` or ``btsnoop``"""
    records: int = 0
    """records yielded"""
    snapped: int = 0
    """records whose captured length is below the original length (snaplen cut)"""
    linktypes: Counter[int] = field(default_factory=Counter)
    """records yielded per link type"""
    issues: Counter[str] = field(default_factory=Counter)
    """problems by reason (see class doc)"""


class CaptureReader:
    """Iterate over the records of a pcap, pcapng or btsnoop file.

    Parameters
    ----------
    source
        a path, or a binary file object positioned at the start of a capture
        (e.g. ``tcpdump -w -`` on a pipe); a file object is not closed.
    linktypes
        if given, records of other link types are skipped and counted as
        ``unsupported_linktype``.

    The format is detected from the first bytes. :attr:`stats` is filled while
    iterating and is complete once the iterator is exhausted. A reader can be
    iterated once.

    Raises
    ------
    CaptureError
        the file cannot be opened, or does not start like any supported format.
    """

    def __init__(self, source: str | Path | BinaryIO, linktypes: Iterable[int] | None = None):
        self.stats = CaptureStats()
        self._filter = frozenset(linktypes) if linktypes is not None else None
        self._owned = False
        if isinstance(source, (str, Path)):
            try:
                self._f: BinaryIO = open(source, "rb", buffering=1 << 20)  # noqa: SIM115
            except OSError as exc:
                raise CaptureError(f"cannot open capture {source}: {exc}") from exc
            self._owned = True
            self._name = str(source)
        else:
            self._f = source
            self._name = getattr(source, "name", "<stream>")
        self._used = False

    def close(self) -> None:
        """Close the file if this reader opened it."""
        if self._owned:
            self._f.close()

    def __enter__(self) -> CaptureReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __iter__(self) -> Iterator[Record]:
        if self._used:
            raise CaptureError(f"{self._name}: a CaptureReader can be iterated only once")
        self._used = True
        try:
            yield from self._records()
        finally:
            self.close()

    # -- format dispatch ---------------------------------------------------------------

    def _records(self) -> Iterator[Record]:
        f = self._f
        head = f.read(4)
        if len(head) < 4:
            raise CaptureError(f"{self._name}: too short to be a capture file")
        if head in _PCAP_MAGICS:
            inner = self._pcap(head)
        elif head == _PCAPNG_SHB:
            inner = self._pcapng()
        elif head == _BTSNOOP_MAGIC[:4]:
            inner = self._btsnoop()
        else:
            raise CaptureError(f"{self._name}: not a pcap, pcapng or btsnoop file")
        flt = self._filter
        stats = self.stats
        for rec in inner:
            if flt is not None and rec.linktype not in flt:
                stats.issues["unsupported_linktype"] += 1
                continue
            stats.records += 1
            stats.linktypes[rec.linktype] += 1
            if len(rec.data) < rec.orig_len:
                stats.snapped += 1
            elif len(rec.data) > rec.orig_len:
                stats.issues["caplen_exceeds_origlen"] += 1
            yield rec

    # -- pcap --------------------------------------------------------------------------

    def _pcap(self, magic: bytes) -> Iterator[Record]:
        f = self._f
        stats = self.stats
        endian, frac_ns, hdr_size = _PCAP_MAGICS[magic]
        stats.format = {1000: "pcap", 1: "pcap-ns"}[frac_ns] if hdr_size == 16 else "pcap-modified"
        rest = f.read(20)
        if len(rest) < 20:
            stats.issues["truncated_record"] += 1
            return
        network = struct.unpack(endian + "I", rest[16:20])[0]
        linktype = network & 0xFFFF
        rec_hdr = struct.Struct(endian + "IIII")
        read = f.read
        while True:
            hdr = read(hdr_size)
            if len(hdr) < hdr_size:
                if hdr:
                    stats.issues["trailing_bytes"] += 1
                return
            sec, frac, incl, orig = rec_hdr.unpack_from(hdr)
            if incl > MAX_RECORD_BYTES:
                stats.issues["bad_record"] += 1
                return
            data = read(incl)
            if len(data) < incl:
                stats.issues["truncated_record"] += 1
                return
            yield Record(linktype, sec * 1_000_000_000 + frac * frac_ns, data, orig)

    # -- pcapng ------------------------------------------------------------------------

    def _pcapng(self) -> Iterator[Record]:
        f = self._f
        stats = self.stats
        stats.format = "pcapng"
        read = f.read
        endian = "<"
        # per section: list of (linktype, ts_mul, ts_div, ts_shift, offset_ns)
        ifaces: list[tuple[int, int, int, int, int]] = []
        last_t = 0
        block_type_bytes = _PCAPNG_SHB  # first block already identified
        while True:
            if block_type_bytes is None:
                bt = read(4)
                if len(bt) < 4:
                    if bt:
                        stats.issues["trailing_bytes"] += 1
                    return
                block_type_bytes = bt
            lenb = read(4)
            if len(lenb) < 4:
                stats.issues["truncated_record"] += 1
                return
            if block_type_bytes == _PCAPNG_SHB:
                bom = read(4)
                if len(bom) < 4:
                    stats.issues["truncated_record"] += 1
                    return
                if bom == b"\x4d\x3c\x2b\x1a":
                    endian = "<"
                elif bom == b"\x1a\x2b\x3c\x4d":
                    endian = ">"
                else:
                    stats.issues["bad_block"] += 1
                    return
                total = struct.unpack(endian + "I", lenb)[0]
                if total < 28 or total % 4 or total > MAX_RECORD_BYTES:
                    stats.issues["bad_block"] += 1
                    return
                body = read(total - 12)
                if len(body) < total - 12:
                    stats.issues["truncated_record"] += 1
                    return
                if struct.unpack(endian + "I", body[-4:])[0] != total:
                    stats.issues["bad_block"] += 1
                    return
                ifaces = []
                block_type_bytes = None
                continue
            btype = struct.unpack(endian + "I", block_type_bytes)[0]
            block_type_bytes = None
            total = struct.unpack(endian + "I", lenb)[0]
            if total < 12 or total % 4 or total > MAX_RECORD_BYTES:
                stats.issues["bad_block"] += 1
                return
            body = read(total - 8)
            if len(body) < total - 8:
                stats.issues["truncated_record"] += 1
                return
            if struct.unpack(endian + "I", body[-4:])[0] != total:
                stats.issues["bad_block"] += 1
                return
            body = body[:-4]
            if btype == 6:  # Enhanced Packet Block
                if len(body) < 20:
                    stats.issues["bad_block"] += 1
                    continue
                iface, ts_hi, ts_lo, caplen, origlen = struct.unpack_from(endian + "IIIII", body)
                if caplen > len(body) - 20:
                    stats.issues["bad_block"] += 1
                    continue
                if iface >= len(ifaces):
                    stats.issues["unknown_interface"] += 1
                    continue
                lt, mul, div, shift, off_ns = ifaces[iface]
                last_t = _pcapng_time((ts_hi << 32) | ts_lo, mul, div, shift, off_ns)
                yield Record(lt, last_t, body[20 : 20 + caplen], origlen)
            elif btype == 1:  # Interface Description Block
                if len(body) < 8:
                    stats.issues["bad_block"] += 1
                    ifaces.append((-1, 1000, 1, 0, 0))
                    continue
                lt = struct.unpack_from(endian + "H", body)[0]
                ifaces.append((lt, *_idb_time_params(body, endian, stats)))
            elif btype == 3:  # Simple Packet Block
                if len(body) < 4:
                    stats.issues["bad_block"] += 1
                    continue
                if not ifaces:
                    stats.issues["unknown_interface"] += 1
                    continue
                origlen = struct.unpack_from(endian + "I", body)[0]
                data = body[4 : 4 + min(origlen, len(body) - 4)]
                stats.issues["spb_no_timestamp"] += 1
                yield Record(ifaces[0][0], last_t, data, origlen)
            elif btype == 2:  # Packet Block (obsolete)
                if len(body) < 20:
                    stats.issues["bad_block"] += 1
                    continue
                iface, _drops, ts_hi, ts_lo, caplen, origlen = struct.unpack_from(
                    endian + "HHIIII", body
                )
                if caplen > len(body) - 20:
                    stats.issues["bad_block"] += 1
                    continue
                if iface >= len(ifaces):
                    stats.issues["unknown_interface"] += 1
                    continue
                lt, mul, div, shift, off_ns = ifaces[iface]
                last_t = _pcapng_time((ts_hi << 32) | ts_lo, mul, div, shift, off_ns)
                yield Record(lt, last_t, body[20 : 20 + caplen], origlen)
            # other blocks (NRB, ISB, DSB, custom...) carry nothing we need

    # -- btsnoop -----------------------------------------------------------------------

    def _btsnoop(self) -> Iterator[Record]:
        f = self._f
        stats = self.stats
        stats.format = "btsnoop"
        rest = f.read(12)
        if len(rest) < 12 or rest[:4] != _BTSNOOP_MAGIC[4:]:
            raise CaptureError(f"{self._name}: not a btsnoop file")
        _version, datalink = struct.unpack(">II", rest[4:12])
        if datalink not in (1001, 1002, 2001):
            stats.issues["unsupported_datalink"] += 1
            return
        read = f.read
        rec_hdr = struct.Struct(">IIIIq")
        while True:
            hdr = read(24)
            if len(hdr) < 24:
                if hdr:
                    stats.issues["trailing_bytes"] += 1
                return
            orig, incl, flags, _drops, ts_us = rec_hdr.unpack(hdr)
            if incl > MAX_RECORD_BYTES:
                stats.issues["bad_record"] += 1
                return
            data = read(incl)
            if len(data) < incl:
                stats.issues["truncated_record"] += 1
                return
            t_ns = (ts_us - _BTSNOOP_EPOCH_US) * 1000
            if datalink == 2001:
                # flags = (adapter index << 16) | opcode
                phdr = struct.pack(">HH", (flags >> 16) & 0xFFFF, flags & 0xFFFF)
                yield Record(LINKTYPE_BLUETOOTH_LINUX_MONITOR, t_ns, phdr + data, orig + 4)
                continue
            direction = struct.pack(">I", flags & 1)
            if datalink == 1001:
                # H1: no packet-type byte; flags bit 1 = command/event, bit 0 = received
                ptype = (b"\x04" if flags & 1 else b"\x01") if flags & 2 else b"\x02"
                yield Record(
                    LINKTYPE_BLUETOOTH_HCI_H4_WITH_PHDR, t_ns, direction + ptype + data, orig + 5
                )
            else:
                yield Record(LINKTYPE_BLUETOOTH_HCI_H4_WITH_PHDR, t_ns, direction + data, orig + 4)


def _idb_time_params(body: bytes, endian: str, stats: CaptureStats) -> tuple[int, int, int, int]:
    """(mul, div, shift, offset_ns) turning an IDB's timestamp units into ns."""
    tsresol = 6
    offset_s = 0
    pos = 8
    n = len(body)
    while pos + 4 <= n:
        code, olen = struct.unpack_from(endian + "HH", body, pos)
        pos += 4
        if code == 0:
            break
        if pos + olen > n:
            stats.issues["bad_block"] += 1
            break
        if code == 9 and olen >= 1:
            tsresol = body[pos]
        elif code == 14 and olen >= 8:
            offset_s = struct.unpack_from(endian + "q", body, pos)[0]
        pos += (olen + 3) & ~3
    offset_ns = offset_s * 1_000_000_000
    if tsresol & 0x80:
        # units of 2^-e seconds: ns = ts * 1e9 >> e
        return 1_000_000_000, 1, tsresol & 0x7F, offset_ns
    if tsresol <= 9:
        return 10 ** (9 - tsresol), 1, 0, offset_ns
    return 1, 10 ** (tsresol - 9), 0, offset_ns


def _pcapng_time(ts: int, mul: int, div: int, shift: int, offset_ns: int) -> int:
    if shift:
        return ((ts * mul) >> shift) + offset_ns
    if div != 1:
        return ts // div + offset_ns
    return ts * mul + offset_ns


def read_records(
    path: str | Path | BinaryIO,
    stats: CaptureStats | None = None,
    linktypes: Iterable[int] | None = None,
) -> Iterator[Record]:
    """Yield the records of a capture file (see :class:`CaptureReader`).

    Parameters
    ----------
    path
        pcap, pcapng or btsnoop file (or binary file object).
    stats
        if given, filled in place with what :class:`CaptureReader` counted; it is
        complete once the iterator is exhausted.
    linktypes
        keep only these link types (others are counted ``unsupported_linktype``).
    """
    reader = CaptureReader(path, linktypes)
    if stats is not None:
        reader.stats = stats
    yield from reader
