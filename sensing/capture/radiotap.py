"""Radiotap header parsing for the fields a footfall node needs.

Radiotap (https://www.radiotap.org) prefixes every monitor-mode 802.11 frame with
a self-describing header: a chain of 32-bit *present* words, then the fields they
announce, each aligned to its natural size *relative to the start of the header*.
Layouts vary by chipset: extended present words (bit 31), several radiotap
namespaces (bit 29: Linux reports one per receive chain, each with its own
dBm_AntSignal + Antenna), vendor namespaces (bit 30: a 6-byte OUI / sub-namespace /
skip_length field whose ``skip_length`` bytes of vendor data are skipped whole),
TLVs (bit 28: nothing fixed after it).

The *layout* of a header (where each field lies) depends only on its present
words when there is no vendor namespace, so it is computed once per distinct
present-word chain and cached: a capture with a few layouts costs one dictionary
look-up per frame.

Parsing stops at the first field whose size the spec does not define (an unknown
bit): fields before it are still used, fields after it are not (counted by the
caller as ``radiotap_unknown_field``).
"""

from __future__ import annotations

from typing import NamedTuple

__all__ = [
    "FLAG_BAD_FCS",
    "FLAG_FCS",
    "RX_FLAG_BAD_PLCP",
    "Layout",
    "RadiotapError",
    "layout_of",
]

FLAG_FCS = 0x10
"""Flags field: the frame includes the 4-byte FCS at its end."""
FLAG_BAD_FCS = 0x40
"""Flags field: the frame failed the FCS check."""
RX_FLAG_BAD_PLCP = 0x0002
"""RX flags field: the PLCP CRC check failed."""

# (alignment, size) of the fields of the radiotap namespace, by bit number.
_FIELDS: dict[int, tuple[int, int]] = {
    0: (8, 8),  # TSFT
    1: (1, 1),  # Flags
    2: (1, 1),  # Rate
    3: (2, 4),  # Channel: freq u16, flags u16
    4: (2, 2),  # FHSS
    5: (1, 1),  # dBm antenna signal
    6: (1, 1),  # dBm antenna noise
    7: (2, 2),  # lock quality
    8: (2, 2),  # TX attenuation
    9: (2, 2),  # dB TX attenuation
    10: (1, 1),  # dBm TX power
    11: (1, 1),  # antenna index
    12: (1, 1),  # dB antenna signal
    13: (1, 1),  # dB antenna noise
    14: (2, 2),  # RX flags
    15: (2, 2),  # TX flags
    16: (1, 1),  # RTS retries
    17: (1, 1),  # data retries
    18: (4, 8),  # XChannel: flags u32, freq u16, channel u8, maxpower u8
    19: (1, 3),  # MCS
    20: (4, 8),  # A-MPDU status
    21: (2, 12),  # VHT
    22: (8, 12),  # timestamp
    23: (2, 12),  # HE
    24: (2, 12),  # HE-MU
    25: (2, 6),  # HE-MU-other-user
    26: (1, 1),  # 0-length PSDU
    27: (2, 4),  # L-SIG
}
_TLV_BIT = 28
_RADIOTAP_NS_NEXT = 1 << 29
_VENDOR_NS_NEXT = 1 << 30
_EXT = 1 << 31


class RadiotapError(ValueError):
    """The radiotap header is malformed (reason in ``args[0]``)."""


class Layout(NamedTuple):
    """Where the useful fields of one radiotap header lie (absolute offsets, -1 = absent)."""

    flags: int
    """offset of the Flags byte (first occurrence in any radiotap namespace, as the
    other single-valued fields below)"""
    channel: int
    """offset of the Channel field (freq u16 LE)"""
    xchannel: int
    """offset of the XChannel field (freq u16 LE at +4)"""
    rx_flags: int
    """offset of the RX flags field (u16 LE)"""
    signal: int
    """offset of the dBm_AntSignal of the first namespace (the combined signal)"""
    chain_signals: tuple[int, ...]
    """offsets of dBm_AntSignal in later radiotap namespaces (one per receive chain)"""
    end: int
    """first byte after the last field located; must be <= the header length"""
    unknown: bool
    """a field of unknown size stopped the walk (later fields not located)"""


def layout_of(data: bytes, it_len: int) -> tuple[Layout, int]:
    """Locate the fields of a radiotap header.

    Parameters
    ----------
    data
        the frame, starting with the radiotap header
    it_len
        the header length from the header itself (already checked <= len(data))

    Returns
    -------
    (layout, cacheable)
        ``cacheable`` is the end of the present-word chain when the layout depends
        only on ``data[4:cacheable]``, else 0 (a vendor namespace is present).

    Raises
    ------
    RadiotapError
        present words run past the header, both namespace bits set in one word,
        or a vendor namespace field does not fit.
    """
    words: list[int] = []
    pos = 4
    while True:
        if pos + 4 > it_len:
            raise RadiotapError("bad_radiotap")
        w = data[pos] | data[pos + 1] << 8 | data[pos + 2] << 16 | data[pos + 3] << 24
        words.append(w)
        pos += 4
        if not w & _EXT:
            break
    off = pos
    cacheable = pos
    flags = channel = xchannel = rx_flags = signal = -1
    chains: list[int] = []
    in_vendor = False
    ns_index = 0
    bit_base = 0
    unknown = False
    for w in words:
        if w & _RADIOTAP_NS_NEXT and w & _VENDOR_NS_NEXT:
            raise RadiotapError("bad_radiotap")
        if not in_vendor:
            bits = w & 0x1FFFFFFF
            b = 0
            while bits and not unknown:
                if bits & 1:
                    n = bit_base + b
                    if n == _TLV_BIT:
                        unknown = True  # TLVs: nothing fixed follows
                        break
                    spec = _FIELDS.get(n)
                    if spec is None:
                        unknown = True
                        break
                    align, size = spec
                    off = (off + align - 1) & -align
                    if n == 5:
                        if ns_index == 0:
                            if signal < 0:
                                signal = off
                        else:
                            chains.append(off)
                    elif n == 1:
                        if flags < 0:
                            flags = off
                    elif n == 3:
                        if channel < 0:
                            channel = off
                    elif n == 18:
                        if xchannel < 0:
                            xchannel = off
                    elif n == 14 and rx_flags < 0:
                        rx_flags = off
                    off += size
                bits >>= 1
                b += 1
            if unknown:
                break
        if w & _VENDOR_NS_NEXT:
            # vendor namespace field: OUI(3) sub_ns(1) skip_length(u16), aligned 2;
            # the vendor data (skip_length bytes) follows it directly.
            off = (off + 1) & -2
            if off + 6 > it_len:
                raise RadiotapError("bad_radiotap")
            skip = data[off + 4] | data[off + 5] << 8
            off += 6 + skip
            in_vendor = True
            cacheable = 0
            bit_base = 0
        elif w & _RADIOTAP_NS_NEXT:
            in_vendor = False
            ns_index += 1
            bit_base = 0
        elif not in_vendor:
            bit_base += 32
    return (
        Layout(flags, channel, xchannel, rx_flags, signal, tuple(chains), off, unknown),
        cacheable,
    )
