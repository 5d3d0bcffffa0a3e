"""Wi-Fi probe-request decoding: golden frames, chipset radiotap layouts, real captures,
and field-by-field agreement with tshark on every real capture."""

from __future__ import annotations

import math
import os
import shutil
import struct
import subprocess
from collections import Counter
from decimal import Decimal
from pathlib import Path

import pytest

from sensing.capture.capture_file import read_records
from sensing.capture.decoded import WifiProbe
from sensing.capture.radiotap import layout_of
from sensing.capture.wifi_decode import WifiDecoder, ie_signature

DATA = Path(
    os.environ.get("FOOTFALL_DATA", Path(__file__).resolve().parents[2] / "shared" / "data")
)
TSHARK = shutil.which("tshark")

TA = bytes.fromhex("da a1 19 00 11 22".replace(" ", ""))
SSID = b"SecretHomeNet"


# --- frame builders -------------------------------------------------------------------


def probe_body(ssid: bytes = b"", extra: bytes = b"") -> bytes:
    ies = bytes([0, len(ssid)]) + ssid
    ies += bytes([1, 4, 0x02, 0x04, 0x0B, 0x16])  # supported rates
    ies += bytes([3, 1, 6])  # DS parameter set: channel 6
    ies += bytes([45, 2, 0x2D, 0x40])  # HT capabilities (shortened)
    ies += bytes([221, 8, 0x00, 0x50, 0xF2, 0x04, 0xDE, 0xAD, 0xBE, 0xEF])  # WPS with "UUID"
    ies += bytes([255, 3, 35, 0xAA, 0xBB])  # HE capabilities (shortened)
    return ies + extra


def dot11_probe(
    ta: bytes = TA, seq: int = 1234, ssid: bytes = b"", htc: bool = False, extra: bytes = b""
) -> bytes:
    fc = b"\x40" + (b"\x80" if htc else b"\x00")
    hdr = fc + b"\x00\x00" + b"\xff" * 6 + ta + b"\xff" * 6 + struct.pack("<H", seq << 4)
    if htc:
        hdr += b"\x00\x00\x00\x00"
    return hdr + probe_body(ssid, extra)


def radiotap(
    fields: list[tuple[int, bytes]], presence: list[int] | None = None, tail: bytes = b""
) -> bytes:
    """Build a radiotap header from (bit, value) pairs of the first namespace."""
    aligns = {0: 8, 1: 1, 2: 1, 3: 2, 5: 1, 11: 1, 14: 2, 18: 4}
    present = 0
    for bit, _ in fields:
        present |= 1 << bit
    words = presence or [present]
    body = bytearray()
    base = 4 + 4 * len(words)
    for bit, val in sorted(fields):
        a = aligns[bit]
        while (base + len(body)) % a:
            body.append(0)
        body += val
    body += tail
    hdr = struct.pack("<BBH", 0, 0, base + len(body)) + b"".join(
        struct.pack("<I", w) for w in words
    )
    return hdr + bytes(body)


def rt_probe(
    rssi: int = -60,
    freq: int = 2437,
    flags: int | None = None,
    frame: bytes | None = None,
    fcs: bool = False,
) -> bytes:
    fields = [(3, struct.pack("<HH", freq, 0x00A0)), (5, struct.pack("<b", rssi))]
    if flags is not None or fcs:
        fields.append((1, bytes([(flags or 0) | (0x10 if fcs else 0)])))
    frame = frame if frame is not None else dot11_probe()
    if fcs:
        import zlib

        frame += zlib.crc32(frame).to_bytes(4, "little")
    return radiotap(fields) + frame


# --- golden frames --------------------------------------------------------------------


def test_radiotap_probe_fields() -> None:
    dec = WifiDecoder()
    p = dec.decode(127, rt_probe(), 1_700_000_000_123)
    assert isinstance(p, WifiProbe)
    assert p.addr == TA
    assert p.rssi == -60
    assert p.freq_mhz == 2437 and p.band == "wifi24"
    assert p.seq == 1234
    assert p.randomized is True  # 0xda has the locally-administered bit
    assert p.directed is False
    assert p.t_ms == 1_700_000_000_123
    assert dec.accepted == 1 and not dec.rejects


def test_ssid_never_leaves_decoder_and_directed_flag() -> None:
    dec = WifiDecoder()
    p = dec.decode(127, rt_probe(frame=dot11_probe(ssid=SSID)), 0)
    assert p is not None and p.directed
    assert SSID not in p.ie_sig
    for field in WifiProbe.__slots__:
        v = getattr(p, field)
        assert not (isinstance(v, bytes) and SSID in v)


def test_ie_sig_layout() -> None:
    sig, directed, ds, truncated = ie_signature(probe_body(SSID))
    assert (directed, ds, truncated) == (True, 6, False)
    assert sig == bytes(
        [
            *[1],  # version
            *[0],  # SSID: id only
            *[1, 4, 0x02, 0x04, 0x0B, 0x16],  # rates with content
            *[3],  # DS: id only (the channel varies)
            *[45, 2, 0x2D, 0x40],  # HT caps with content
            *[221, 0x00, 0x50, 0xF2, 0x04],  # vendor: OUI + type only (no WPS UUID)
            *[255, 35, 2, 0xAA, 0xBB],  # HE caps: ext id + content
        ]
    )
    # the same phone with another SSID gives the same signature
    assert ie_signature(probe_body(b"other"))[0] == sig


def test_ie_truncated_is_accepted_and_noted() -> None:
    dec = WifiDecoder()
    p = dec.decode(127, rt_probe(frame=dot11_probe(extra=bytes([50, 8, 1, 2]))), 0)
    assert p is not None
    assert dec.notes["ie_truncated"] == 1


def test_htc_field_skipped() -> None:
    p = WifiDecoder().decode(127, rt_probe(frame=dot11_probe(htc=True, ssid=b"x")), 0)
    assert p is not None and p.directed and p.seq == 1234


def test_bare_80211_uses_ds_channel_and_no_rssi() -> None:
    dec = WifiDecoder()
    p = dec.decode(105, dot11_probe(), 5)
    assert p is not None and p.rssi is None and p.freq_mhz == 2437
    assert dec.notes["freq_from_ds"] == 1


def test_fcs_policies() -> None:
    good = rt_probe(fcs=True)
    bad = bytearray(good)
    bad[-1] ^= 0xFF  # break the FCS but leave the radiotap bad-FCS flag clear
    flagged = rt_probe(flags=0x40, fcs=True)

    dec = WifiDecoder()  # "flag": trust the radio's verdict
    assert dec.decode(127, good, 0) is not None
    assert dec.decode(127, bytes(bad), 0) is not None
    assert dec.decode(127, flagged, 0) is None
    assert dec.rejects == Counter(bad_fcs=1)
    assert dec.notes["fcs_mismatch"] == 1

    strict = WifiDecoder(fcs="verify")
    assert strict.decode(127, good, 0) is not None
    assert strict.decode(127, bytes(bad), 0) is None
    assert strict.rejects == Counter(bad_fcs=1)

    lax = WifiDecoder(fcs="ignore")
    assert lax.decode(127, flagged, 0) is not None


def test_fcs_stripped_from_elements() -> None:
    p = WifiDecoder().decode(127, rt_probe(fcs=True), 0)
    q = WifiDecoder().decode(127, rt_probe(), 0)
    assert p is not None and q is not None and p.ie_sig == q.ie_sig


def test_implausible_rssi_becomes_none() -> None:
    dec = WifiDecoder()
    p = dec.decode(127, rt_probe(rssi=15), 0)
    assert p is not None and p.rssi is None
    assert dec.notes["rssi_implausible"] == 1


def test_per_chain_rssi_linear_mean() -> None:
    # ns0: Flags + Channel, then two radiotap namespaces each with dBm_AntSignal + Antenna
    w0 = (1 << 1) | (1 << 3) | (1 << 29) | (1 << 31)
    w1 = (1 << 5) | (1 << 11) | (1 << 29) | (1 << 31)
    w2 = (1 << 5) | (1 << 11)
    words = [w0, w1, w2]
    body = bytes([0x00, 0x00]) + struct.pack("<HH", 5180, 0x0140)  # flags, pad, channel
    body += struct.pack("<bB", -50, 0) + struct.pack("<bB", -60, 1)
    hdr = struct.pack("<BBH", 0, 0, 4 + 12 + len(body)) + b"".join(
        struct.pack("<I", w) for w in words
    )
    p = WifiDecoder().decode(127, hdr + body + dot11_probe(), 0)
    expected = round(10 * math.log10((10 ** (-5.0) + 10 ** (-6.0)) / 2))
    assert p is not None and p.rssi == expected and p.freq_mhz == 5180 and p.band == "wifi5"


def test_combined_signal_preferred_over_chains() -> None:
    w0 = (1 << 5) | (1 << 3) | (1 << 29) | (1 << 31)
    w1 = (1 << 5) | (1 << 11)
    body = struct.pack("<HH", 2412, 0xA0) + struct.pack("<b", -41) + struct.pack("<bB", -70, 0)
    hdr = struct.pack("<BBH", 0, 0, 12 + len(body)) + struct.pack("<II", w0, w1)
    p = WifiDecoder().decode(127, hdr + body + dot11_probe(), 0)
    assert p is not None and p.rssi == -41


def test_vendor_namespace_skipped() -> None:
    # ns0: TSFT, Flags, dBm_AntSignal, vendor NS next; vendor word: bits 0,1 (opaque);
    # then back to radiotap: Channel.
    w0 = (1 << 0) | (1 << 1) | (1 << 5) | (1 << 30) | (1 << 31)
    w1 = (1 << 0) | (1 << 1) | (1 << 29) | (1 << 31)
    w2 = 1 << 3
    pre = struct.pack("<BBH", 0, 0, 0) + struct.pack("<III", w0, w1, w2)  # 16 bytes
    body = bytearray(struct.pack("<Q", 123))  # TSFT @16 (aligned 8)
    body += bytes([0x00, (-55) & 0xFF])  # Flags @24, dBm_AntSignal @25
    body += bytes([0x00, 0x11, 0x22, 0x01]) + struct.pack("<H", 5)  # vendor ns @26
    body += b"\x99" * 5  # vendor data, 5 bytes @32..36
    body += b"\x00"  # pad to 2 for Channel @38
    body += struct.pack("<HH", 2462, 0xA0)
    hdr = bytearray(pre + body)
    struct.pack_into("<H", hdr, 2, len(hdr))
    layout, cacheable = layout_of(bytes(hdr), len(hdr))
    assert cacheable == 0 and layout.channel == 38 and layout.signal == 25
    p = WifiDecoder().decode(127, bytes(hdr) + dot11_probe(), 0)
    assert p is not None and p.rssi == -55 and p.freq_mhz == 2462


def test_unknown_field_stops_walk_but_keeps_earlier_fields() -> None:
    w0 = (1 << 5) | (1 << 31)
    w1 = 1 << 3  # bit 35 of the radiotap namespace: undefined size
    body = struct.pack("<b", -70) + b"\x00\x00\x00"
    hdr = struct.pack("<BBH", 0, 0, 12 + len(body)) + struct.pack("<II", w0, w1)
    dec = WifiDecoder()
    p = dec.decode(127, hdr + body + dot11_probe(), 0)
    assert p is not None and p.rssi == -70 and p.freq_mhz == 2437  # freq from DS element
    assert dec.notes["radiotap_unknown_field"] == 1


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "truncated"),
        (b"\x00\x00\x08", "truncated"),
        (b"\x01\x00\x08\x00\x00\x00\x00\x00" + dot11_probe(), "bad_radiotap"),
        (b"\x00\x00\x04\x00\x00\x00\x00\x00" + dot11_probe(), "bad_radiotap"),
        (b"\x00\x00\xff\x00\x00\x00\x00\x00" + dot11_probe(), "truncated"),
        (b"\x00\x00\x08\x00\x00\x00\x00\x80", "bad_radiotap"),  # ext bit, no next word
        (radiotap([(3, b"\x00\x00\x00\x00")]) + b"\x80\x00" + bytes(22), "not_probe_req"),
        (radiotap([(3, b"\x00\x00\x00\x00")]) + b"\x08\x00" + bytes(22), "not_mgmt"),
        (radiotap([(3, b"\x00\x00\x00\x00")]) + b"\x41\x00" + bytes(22), "bad_version"),
        (radiotap([(3, b"\x00\x00\x00\x00")]) + b"\x40\x00" + bytes(10), "truncated"),
        (radiotap([(1, b"\x10")]) + dot11_probe()[:20], "truncated"),
        (radiotap([(14, b"\x02\x00")]) + dot11_probe(), "bad_plcp"),
    ],
)
def test_rejects_by_reason(data: bytes, reason: str) -> None:
    dec = WifiDecoder()
    assert dec.decode(127, data, 0) is None
    assert dec.rejects == Counter({reason: 1})
    assert dec.accepted == 0


def test_unsupported_linktype() -> None:
    dec = WifiDecoder()
    assert dec.decode(119, b"\x00" * 64, 0) is None
    assert dec.rejects == Counter(unsupported_linktype=1)


def test_scapy_built_frame_agrees() -> None:
    """A frame laid out by scapy (another radiotap writer) decodes to its fields."""
    from scapy.layers.dot11 import Dot11, Dot11Elt, Dot11ProbeReq, RadioTap

    pkt = (
        RadioTap(present="Flags+Channel+dBm_AntSignal+Antenna", Flags=0,
                 ChannelFrequency=5745, ChannelFlags=0x140, dBm_AntSignal=-67, Antenna=1)
        / Dot11(type=0, subtype=4, addr1="ff:ff:ff:ff:ff:ff", addr2="02:11:22:33:44:55",
                addr3="ff:ff:ff:ff:ff:ff", SC=77 << 4)
        / Dot11ProbeReq()
        / Dot11Elt(ID=0, info=b"")
        / Dot11Elt(ID=1, info=b"\x0c\x12")
    )  # fmt: skip
    p = WifiDecoder().decode(127, bytes(pkt), 0)
    assert p is not None
    assert (p.addr.hex(), p.rssi, p.freq_mhz, p.seq, p.randomized, p.directed) == (
        "021122334455",
        -67,
        5745,
        77,
        True,
        False,
    )
    assert p.band == "wifi5"


# --- real captures --------------------------------------------------------------------

WIFI_FILES = sorted(
    [p for p in DATA.glob("wifi*/*") if p.suffix in (".pcap", ".cap")]
    + list(DATA.glob("wifi*.pcap"))
)
EXPECTED_PROBES = {
    "sc6-61_2024-03-14_position_1_1420-1720.pcap": 10192,
    "sc6-61_2024-03-14_position_2_1420-1720.pcap": 12229,
    "OppoFindX3Neo-A_anonymized.pcap": 1185,
    "S21Ultra-M_anonymized.pcap": 139,
    "iPhone11-B_anonymized.pcap": 782,
    "iPhone11-C_anonymized.pcap": 531,
    "iPhone11-F_anonymized.pcap": 106,
    "iPhone11-M_anonymized.pcap": 497,
    "iPhone12-M_anonymized.pcap": 612,
    "iPhone12Pro-C_anonymized.pcap": 154,
    "iPhone7-F_anonymized.pcap": 638,
    "iPhoneXR-A_anonymized.pcap": 136,
    "iPhoneXR-L_anonymized.pcap": 2223,
    "test1.pcap": 5,
    "wpa3-psk.pcap": 1,
    "pmkid-not-recognized.cap": 128,
    "zn2i.pcap": 0,
    "80211ad_beacon.pcap": 0,
    "3.pcap": 0,
    "wpaclean_crash.pcap": 0,
    "wifi-beacon-malformed-rsn-scapy.pcap": 0,
}

needs_data = pytest.mark.skipif(not WIFI_FILES, reason=f"real captures not found in {DATA}")


def decode_file(path: Path, dec: WifiDecoder | None = None) -> list[tuple[int, WifiProbe]]:
    dec = dec or WifiDecoder()
    out = []
    for i, rec in enumerate(read_records(path), start=1):
        p = dec.decode(rec.linktype, rec.data, rec.t_ns // 1_000_000)
        if p is not None:
            out.append((i, p))
    return out


@needs_data
@pytest.mark.parametrize("path", WIFI_FILES, ids=lambda p: p.name)
def test_real_capture_probe_counts(path: Path) -> None:
    dec = WifiDecoder()
    got = decode_file(path, dec)
    assert len(got) == EXPECTED_PROBES[path.name], dict(dec.rejects)
    if path.parent.name == "wifi-probes-baccichet-labelled":
        # anonymisation broke every FCS; the radio did not flag them: all kept, all noted
        assert dec.notes["fcs_mismatch"] == len(got)
        assert all(p.rssi is not None or dec.notes["rssi_implausible"] for _, p in got)
    if path.name == "wpaclean_crash.pcap":
        assert dec.rejects == Counter(unsupported_linktype=1)
    if path.name == "80211ad_beacon.pcap":
        assert dec.rejects == Counter(not_mgmt=1)


@needs_data
def test_brno_matches_ground_truth_csv() -> None:
    """The Brno CSV (one row per frame) agrees on src, rssi, channel and LA bit."""
    import csv

    for pos in (1, 2):
        pcap = next(DATA.glob(f"wifi-probes-brno-esp32-occupancy/*position_{pos}_*.pcap"))
        rows = list(csv.DictReader(pcap.with_suffix(".csv").open(), delimiter=";"))
        got = decode_file(pcap)
        assert len(rows) == len(got)
        for row, (_, p) in zip(rows, got, strict=True):
            assert p.addr.hex(":") == row["src"].lower()
            assert p.rssi == int(row["rssi"])
            assert p.freq_mhz == int(row["ch_freq"])
            assert p.seq == int(row["seq_num"])
            assert p.randomized == (row["randomized"] == "1")
            assert p.directed == bool(row["ssid"])
            assert sig_ids(p.ie_sig) == [int(x) for x in row["dot11elt"].strip("[]").split(",")]


# --- tshark exactness -----------------------------------------------------------------

TSHARK_FIELDS = [
    "frame.number",
    "frame.time_epoch",
    "wlan.fc.type_subtype",
    "wlan.ta",
    "wlan.sa",
    "radiotap.dbm_antsignal",
    "wlan.seq",
    "radiotap.channel.freq",
    "radiotap.xchannel.freq",
    "wlan.ds.current_channel",
    "wlan.tag.number",
    "wlan.tag.length",
]


def tshark_rows(path: Path) -> dict[int, dict[str, str]]:
    assert TSHARK is not None
    cmd = [TSHARK, "-n", "-r", str(path), "-T", "fields", "-E", "separator=/t",
           "-E", "occurrence=a", "-E", "aggregator=,"]  # fmt: skip
    for f in TSHARK_FIELDS:
        cmd += ["-e", f]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False).stdout
    rows = {}
    for line in out.splitlines():
        vals = line.split("\t")
        vals += [""] * (len(TSHARK_FIELDS) - len(vals))
        row = dict(zip(TSHARK_FIELDS, vals, strict=True))
        rows[int(row["frame.number"])] = row
    return rows


def sig_ids(sig: bytes) -> list[int]:
    """Element ids, in order, from an ie_sig (inverse of the module's layout)."""
    ids, i = [], 1
    while i < len(sig):
        eid = sig[i]
        ids.append(eid)
        i += 1
        if eid in (1, 45, 50, 70, 127, 191):
            i += 1 + sig[i]
        elif eid == 221:
            i += 4  # every vendor element in these captures has >= 4 bytes
        elif eid == 255:
            ext = sig[i]
            i += 1
            if ext in (35, 108):
                i += 1 + sig[i]
    return ids


def expected_rssi(field: str) -> int | None:
    if not field:
        return None
    v = int(field.split(",")[0])
    return v if -120 <= v <= -1 else None


def compare_with_tshark(path: Path) -> tuple[int, int, Counter[str]]:
    """(tshark probe frames, frames compared equal, disagreements by field)."""
    rows = tshark_rows(path)
    ours = dict(decode_file(path))
    probes = {n for n, r in rows.items() if r["wlan.fc.type_subtype"] in ("0x0004", "4")}
    diffs: Counter[str] = Counter()
    diffs["missing"] = len(probes - ours.keys())
    diffs["extra"] = len(ours.keys() - probes)
    diffs = +diffs
    equal = 0
    for n in sorted(probes & ours.keys()):
        r, p = rows[n], ours[n]
        ta = r["wlan.ta"] or r["wlan.sa"]
        freq = r["radiotap.channel.freq"] or r["radiotap.xchannel.freq"]
        tags = [int(x) for x in r["wlan.tag.number"].split(",") if x]
        lens = [int(x) for x in r["wlan.tag.length"].split(",") if x]
        ds = r["wlan.ds.current_channel"]
        exp = {
            "t_ms": int(Decimal(r["frame.time_epoch"]) * 1000),
            "addr": ta,
            "rssi": expected_rssi(r["radiotap.dbm_antsignal"]),
            "freq": int(freq.split(",")[0]) if freq else (2407 + 5 * int(ds) if ds else None),
            "seq": int(r["wlan.seq"]),
            "randomized": bool(int(ta.split(":")[0], 16) & 2),
            "directed": bool(tags and tags[0] == 0 and lens[0] > 0),
            "ie_ids": tags,
        }
        got = {
            "t_ms": p.t_ms,
            "addr": p.addr.hex(":"),
            "rssi": p.rssi,
            "freq": p.freq_mhz,
            "seq": p.seq,
            "randomized": p.randomized,
            "directed": p.directed,
            "ie_ids": sig_ids(p.ie_sig),
        }
        bad = [k for k in exp if exp[k] != got[k]]
        for k in bad:
            diffs[k] += 1
        equal += not bad
    return len(probes), equal, diffs


@needs_data
@pytest.mark.skipif(TSHARK is None, reason="tshark not installed (CI installs it)")
@pytest.mark.parametrize("path", WIFI_FILES, ids=lambda p: p.name)
def test_fields_equal_tshark(path: Path) -> None:
    n, equal, diffs = compare_with_tshark(path)
    print(f"\n{path.name}: tshark probes={n} equal={equal} diffs={dict(diffs)}")
    assert not diffs, diffs
    assert equal == n == EXPECTED_PROBES[path.name]
