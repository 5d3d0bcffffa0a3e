"""Decode 802.11 probe requests (radiotap or bare 802.11) into :class:`WifiProbe`.

Written for a hot path: ``struct``-free byte indexing on ``bytes``, a cached
radiotap layout per present-word chain (:mod:`sensing.capture.radiotap`), one pass over the
Information Elements. Nothing is dissected beyond what a :class:`WifiProbe` holds.
Every frame that does not become a probe is counted in :attr:`WifiDecoder.rejects`
by reason; nothing raises.

What leaves the decoder
-----------------------
* transmitter address (addr2), its locally-administered bit, the sequence number;
* RSSI in dBm (see *RSSI policy*), channel frequency in MHz;
* ``directed``: the SSID element is non-empty. The SSID bytes never leave;
* ``ie_sig``: IE layout material for chaining one phone's rotating addresses
  (Vanhoef et al., "Why MAC Address Randomization is not Enough", AsiaCCS 2016).
  Format, version 1: the byte ``0x01``, then for each element in frame order its
  id; for a vendor element (221) also its OUI and OUI type (4 bytes); for an
  extension element (255) also its extension id; and, only for capability
  elements whose content is fixed per device and carries no name or identifier
  (Supported Rates 1, Extended Supported Rates 50, HT Capabilities 45, RM Enabled
  Capabilities 70, Extended Capabilities 127, VHT Capabilities 191, HE
  Capabilities 255/35, EHT Capabilities 255/108), a length byte and the content.
  SSID, SSID List, Mesh ID, DS Parameter Set, WPS (whose UUID-E identifies a
  device) and all other vendor content are represented by their id only.

Policies
--------
FCS (``fcs=``)
    ``"flag"`` (default): trust the radiotap Flags bad-FCS bit (reject
    ``bad_fcs``) and the RX-flags bad-PLCP bit (reject ``bad_plcp``); do not reject
    on a recomputed CRC, but recompute it when the frame carries an FCS and count
    mismatches in :attr:`WifiDecoder.notes` (``fcs_mismatch``). Drivers that pass
    failed frames up mark them; datasets whose addresses or SSIDs were anonymised
    after capture (Baccichet et al.) break every FCS without the frames being bad.
    ``"verify"``: also reject frames whose recomputed CRC-32 mismatches
    (``bad_fcs``). ``"ignore"``: neither.
RSSI
    The first radiotap namespace's dBm_AntSignal is the combined signal the
    driver computed; it is used when present. When only per-chain values exist
    (later namespaces), they are averaged in linear power (mW) and rounded to
    whole dBm. A value outside ``rssi_range`` (default -120..-1 dBm, e.g. the
    +15 dBm of one anonymised capture) is reported as ``None`` and counted
    (``rssi_implausible``); the frame is kept, its address was heard.
Channel
    Radiotap Channel, else XChannel frequency; for bare 802.11 (no radio header)
    the probe's DS Parameter Set channel, counted (``freq_from_ds``).
+HTC
    The Order bit of a management frame announces a 4-byte HT Control field,
    skipped before the elements.
Addresses
    A transmitter address with the group bit set is impossible on air, but is
    kept (counted ``ta_group_bit``): anonymised datasets produce them.
"""

from __future__ import annotations

import math
import zlib
from collections import Counter
from typing import Literal

from sensing.capture.decoded import WifiProbe, freq_of_channel
from sensing.capture.radiotap import (
    FLAG_BAD_FCS,
    FLAG_FCS,
    RX_FLAG_BAD_PLCP,
    Layout,
    RadiotapError,
    layout_of,
)

__all__ = ["IE_SIG_VERSION", "WifiDecoder", "ie_signature"]

LINKTYPE_IEEE802_11 = 105
LINKTYPE_IEEE802_11_RADIOTAP = 127

IE_SIG_VERSION = 1

_CONTENT_IES = frozenset({1, 45, 50, 70, 127, 191})
_CONTENT_EXT_IES = frozenset({35, 108})
_MAX_LAYOUTS = 256

FcsPolicy = Literal["flag", "verify", "ignore"]


def ie_signature(body: bytes, start: int = 0) -> tuple[bytes, bool, int, bool]:
    """Walk the Information Elements of a probe request body.

    Parameters
    ----------
    body
        frame bytes; elements start at ``start`` and run to the end.

    Returns
    -------
    (ie_sig, directed, ds_channel, truncated)
        ``ie_sig`` as documented in the module; ``directed`` whether the first
        SSID element is non-empty; ``ds_channel`` the DS Parameter Set channel or
        -1; ``truncated`` whether the last element ran past the end (it is
        ignored).
    """
    sig = bytearray(b"\x01")
    directed = False
    seen_ssid = False
    ds = -1
    n = len(body)
    pos = start
    truncated = False
    content_ies = _CONTENT_IES
    while pos < n:
        if pos + 2 > n:
            truncated = True
            break
        eid = body[pos]
        elen = body[pos + 1]
        end = pos + 2 + elen
        if end > n:
            truncated = True
            break
        sig.append(eid)
        if eid == 0:
            if not seen_ssid:
                seen_ssid = True
                directed = elen > 0
        elif eid in content_ies:
            sig.append(elen)
            sig += body[pos + 2 : end]
        elif eid == 221:
            if elen >= 4:
                sig += body[pos + 2 : pos + 6]
        elif eid == 3:
            if elen >= 1:
                ds = body[pos + 2]
        elif eid == 255 and elen >= 1:
            ext = body[pos + 2]
            sig.append(ext)
            if ext in _CONTENT_EXT_IES:
                sig.append(elen - 1)
                sig += body[pos + 3 : end]
        pos = end
    return bytes(sig), directed, ds, truncated


def _freq_from_ds(ch: int) -> int | None:
    if 1 <= ch <= 14 or 32 <= ch <= 177:
        return freq_of_channel(ch)
    return None


class WifiDecoder:
    """Stateful (counters, layout cache) probe-request decoder.

    Parameters
    ----------
    fcs
        FCS policy, see the module doc (``"flag"``, ``"verify"``, ``"ignore"``).
    rssi_range
        inclusive plausible range of RSSI in dBm; values outside become ``None``.

    Example
    -------
    >>> dec = WifiDecoder()
    >>> dec.decode(105, bytes(10), 0) is None, dict(dec.rejects)
    (True, {'not_mgmt': 1})
    """

    def __init__(self, *, fcs: FcsPolicy = "flag", rssi_range: tuple[int, int] = (-120, -1)):
        if fcs not in ("flag", "verify", "ignore"):
            raise ValueError(f"fcs policy must be flag, verify or ignore, not {fcs!r}")
        self.fcs: FcsPolicy = fcs
        self.rssi_min, self.rssi_max = rssi_range
        self.rejects: Counter[str] = Counter()
        """frames that gave no probe, by reason"""
        self.notes: Counter[str] = Counter()
        """accepted frames with a caveat, by reason (fcs_mismatch, rssi_implausible, ...)"""
        self.accepted = 0
        """frames that gave a probe"""
        self._layouts: dict[bytes, Layout] = {}

    def _reject(self, reason: str) -> None:
        self.rejects[reason] += 1

    def decode(self, linktype: int, data: bytes, t_ms: int) -> WifiProbe | None:
        """Decode one frame; ``None`` when it is not a usable probe request (counted).

        Parameters
        ----------
        linktype
            127 (radiotap + 802.11) or 105 (802.11, no radio header: no RSSI)
        data
            the captured bytes of the frame
        t_ms
            capture time, Unix epoch milliseconds
        """
        rssi: int | None = None
        freq: int | None = None
        fcs_present = False
        if linktype == LINKTYPE_IEEE802_11_RADIOTAP:
            n = len(data)
            if n < 8:
                self.rejects["truncated"] += 1
                return None
            if data[0] != 0:
                self.rejects["bad_radiotap"] += 1
                return None
            it_len = data[2] | data[3] << 8
            if it_len < 8 or it_len > n:
                self.rejects["bad_radiotap" if it_len < 8 else "truncated"] += 1
                return None
            pos = 8
            while data[pos - 1] & 0x80:
                pos += 4
                if pos > it_len:
                    self.rejects["bad_radiotap"] += 1
                    return None
            layout = self._layouts.get(data[4:pos])
            if layout is None:
                layout = self._layout(data, it_len)
                if layout is None:
                    return None
            if layout.end > it_len:
                self.rejects["bad_radiotap"] += 1
                return None
            if layout.unknown:
                self.notes["radiotap_unknown_field"] += 1
            off = layout.flags
            if off >= 0:
                fl = data[off]
                if fl & FLAG_BAD_FCS and self.fcs != "ignore":
                    self.rejects["bad_fcs"] += 1
                    return None
                fcs_present = bool(fl & FLAG_FCS)
            off = layout.rx_flags
            if off >= 0 and data[off] & RX_FLAG_BAD_PLCP and self.fcs != "ignore":
                self.rejects["bad_plcp"] += 1
                return None
            off = layout.signal
            if off >= 0:
                rssi = data[off] - 256 if data[off] > 127 else data[off]
            elif layout.chain_signals:
                rssi = _combine_chains(data, layout.chain_signals)
            off = layout.channel
            if off >= 0:
                freq = (data[off] | data[off + 1] << 8) or None
            if freq is None and layout.xchannel >= 0:
                off = layout.xchannel + 4
                freq = (data[off] | data[off + 1] << 8) or None
            frame = data[it_len:]
        elif linktype == LINKTYPE_IEEE802_11:
            frame = data
        else:
            self.rejects["unsupported_linktype"] += 1
            return None

        flen = len(frame)
        if flen < 2:
            self.rejects["truncated"] += 1
            return None
        fc0 = frame[0]
        if fc0 & 0x03:
            self.rejects["bad_version"] += 1
            return None
        if fc0 & 0x0C:
            self.rejects["not_mgmt"] += 1
            return None
        if fc0 != 0x40:
            self.rejects["not_probe_req"] += 1
            return None
        if fcs_present:
            if flen < 28:
                self.rejects["truncated"] += 1
                return None
            if self.fcs != "ignore":
                crc = zlib.crc32(frame[:-4]).to_bytes(4, "little")
                if crc != frame[-4:]:
                    if self.fcs == "verify":
                        self.rejects["bad_fcs"] += 1
                        return None
                    self.notes["fcs_mismatch"] += 1
            frame = frame[:-4]
            flen -= 4
        elif flen < 24:
            self.rejects["truncated"] += 1
            return None
        start = 24
        if frame[1] & 0x80:  # +HTC: 4-byte HT Control after the sequence control
            start = 28
            if flen < 28:
                self.rejects["truncated"] += 1
                return None
        addr = frame[10:16]
        a0 = frame[10]
        if a0 & 0x01:
            self.notes["ta_group_bit"] += 1
        seq = (frame[22] | frame[23] << 8) >> 4
        sig, directed, ds, truncated = ie_signature(frame, start)
        if truncated:
            self.notes["ie_truncated"] += 1
        if freq is None and ds >= 0:
            freq = _freq_from_ds(ds)
            if freq is not None:
                self.notes["freq_from_ds"] += 1
        if rssi is not None and not self.rssi_min <= rssi <= self.rssi_max:
            self.notes["rssi_implausible"] += 1
            rssi = None
        self.accepted += 1
        return WifiProbe(
            t_ms=t_ms,
            addr=addr,
            rssi=rssi,
            freq_mhz=freq,
            seq=seq,
            randomized=bool(a0 & 0x02),
            directed=directed,
            ie_sig=sig,
        )

    def _layout(self, data: bytes, it_len: int) -> Layout | None:
        try:
            layout, cacheable = layout_of(data, it_len)
        except RadiotapError:
            self.rejects["bad_radiotap"] += 1
            return None
        if cacheable:
            cache = self._layouts
            if len(cache) >= _MAX_LAYOUTS:
                cache.clear()
            cache[bytes(data[4:cacheable])] = layout
        return layout


def _combine_chains(data: bytes, offsets: tuple[int, ...]) -> int:
    """Mean received power over receive chains, dBm (linear-power average)."""
    total = 0.0
    for off in offsets:
        v = data[off] - 256 if data[off] > 127 else data[off]
        total += 10.0 ** (v / 10.0)
    return round(10.0 * math.log10(total / len(offsets)))
