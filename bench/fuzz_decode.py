"""Robustness: a seeded mutation fuzzer over real frames for the Wi-Fi and BLE decoders
and the capture-file reader.

Seeds are every record of the real captures (plus synthetic HCI advertising
reports and radiotap layouts with extensions / vendor namespaces, which the real
files lack). Each fuzzed frame is a seed mutated by 1-4 of: bit flips, byte
overwrites with boundary values, truncation, extension with random bytes,
insertion / deletion, splices of two seeds, radiotap present-word and length
rewrites, length-byte rewrites at random offsets. It is fed to both decoders under
its own link type and, one time in eight, under another supported link type.

A *crash* is any exception out of ``decode`` or any accepted result breaking the
output contract (6-byte address, sequence 0-4095, RSSI in range or None, channel,
PDU type, ``ie_sig`` version byte). The capture reader is fuzzed on whole files
(mutated real files): only :class:`~firmware_bridge.errors.CaptureError` may come out.

Usage::

    python bench/fuzz_decode.py [--frames 1000000] [--files 2000] [--seed 1] [--save DIR]

Exits 1 if anything crashed.
"""

from __future__ import annotations

import argparse
import io
import os
import random
import struct
import sys
import time
import traceback
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from firmware_bridge.errors import CaptureError
from sensing.capture.ble_decode import BleDecoder
from sensing.capture.capture_file import CaptureReader, read_records
from sensing.capture.decoded import BleAdvert, WifiProbe
from sensing.capture.wifi_decode import WifiDecoder

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
WIFI_LT = (127, 105)
BLE_LT = (256, 251, 272, 187, 201, 254)
ALL_LT = WIFI_LT + BLE_LT + (119,)
BOUNDARY = (0x00, 0x01, 0x7F, 0x80, 0xFE, 0xFF)


@dataclass
class FuzzReport:
    frames: int = 0
    accepted: Counter[str] = field(default_factory=Counter)
    rejects: Counter[str] = field(default_factory=Counter)
    notes: Counter[str] = field(default_factory=Counter)
    crashes: list[tuple[int, bytes, str]] = field(default_factory=list)
    files: int = 0
    file_issues: Counter[str] = field(default_factory=Counter)
    file_errors: int = 0
    file_crashes: list[tuple[bytes, str]] = field(default_factory=list)
    seconds: float = 0.0


# --- seeds ------------------------------------------------------------------------------------


def synthetic_seeds() -> list[tuple[int, bytes]]:
    """HCI reports and radiotap layouts the real captures do not contain."""
    addr = bytes.fromhex("5f4e3d2c1b5a")
    ad = bytes([2, 1, 6, 7, 0xFF, 0x4C, 0, 0x10, 5, 0x31, 0x18, 3, 3, 0xAA, 0xFE])
    legacy = bytes([1, 0, 1]) + addr + bytes([len(ad)]) + ad + b"\xc0"
    ext = struct.pack("<BHB", 1, 0x13, 1) + addr + bytes([1, 0, 0xFF, 0x7F, 0xC0, 0, 0, 0])
    ext += bytes(6) + bytes([len(ad)]) + ad
    direct = bytes([1, 1, 1]) + addr + bytes([1]) + addr + b"\xb0"
    seeds = []
    for sub, params in ((0x02, legacy), (0x0D, ext), (0x0B, direct)):
        ev = bytes([0x04, 0x3E, len(params) + 1, sub]) + params
        seeds += [(187, ev), (201, b"\x00\x00\x00\x01" + ev), (254, b"\x00\x00\x00\x03" + ev[1:])]
    probe = bytes.fromhex(
        "4000000000ffffffffffffda a1 19 00 11 22ffffffffffff1000".replace(" ", "")
    )
    probe += bytes([0, 0, 1, 4, 2, 4, 11, 22, 3, 1, 6, 221, 4, 0, 0x50, 0xF2, 4, 255, 2, 35, 0])
    # radiotap: 3 namespaces (Linux per-chain), then a vendor namespace
    w0 = (1 << 1) | (1 << 3) | (1 << 5) | (1 << 29) | (1 << 31)
    w1 = (1 << 5) | (1 << 11) | (1 << 30) | (1 << 31)
    w2 = (1 << 0) | (1 << 29) | (1 << 31)
    w3 = (1 << 18) | (1 << 14)
    body = bytes([0x10, 0]) + struct.pack("<HHb", 2437, 0xA0, -40) + struct.pack("<bB", -42, 0)
    body += b"\x00" + bytes([0, 0x11, 0x22, 1]) + struct.pack("<H", 3) + b"abc" + b"\x00" * 2
    body += struct.pack("<HxxIHBB", 0, 0, 2437, 6, 20)
    hdr = struct.pack("<BBH", 0, 0, 4 + 16 + len(body)) + struct.pack("<IIII", w0, w1, w2, w3)
    seeds.append((127, hdr + body + probe + b"\x00\x00\x00\x00"))
    return seeds


def load_seeds(data: Path) -> list[tuple[int, bytes]]:
    seeds: list[tuple[int, bytes]] = []
    for path in sorted(data.rglob("*")):
        if path.is_file() and path.suffix in (".pcap", ".pcapng", ".cap"):
            seeds += [(r.linktype, r.data) for r in read_records(path)]
    return seeds + synthetic_seeds() * 50


# --- mutations --------------------------------------------------------------------------------


def mutate(rng: random.Random, data: bytes, seeds: list[tuple[int, bytes]]) -> bytes:
    b = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        op = rng.randrange(10)
        n = len(b)
        if op == 0 and n:  # bit flips
            for _ in range(rng.randint(1, 8)):
                i = rng.randrange(n)
                b[i] ^= 1 << rng.randrange(8)
        elif op == 1 and n:  # boundary bytes
            b[rng.randrange(n)] = rng.choice(BOUNDARY)
        elif op == 2:  # truncate
            del b[rng.randrange(n + 1) :]
        elif op == 3:  # extend
            b += rng.randbytes(rng.randint(1, 64))
        elif op == 4:  # insert
            i = rng.randrange(n + 1)
            b[i:i] = rng.randbytes(rng.randint(1, 8))
        elif op == 5 and n:  # delete
            i = rng.randrange(n)
            del b[i : i + rng.randint(1, 8)]
        elif op == 6:  # splice with another seed
            other = rng.choice(seeds)[1]
            i, j = rng.randrange(n + 1), rng.randrange(len(other) + 1)
            b = b[:i] + bytearray(other[j:])
        elif op == 7 and n >= 8:  # radiotap present words
            k = 4 + 4 * rng.randrange(max(1, min(4, (n - 4) // 4)))
            if k + 4 <= n:
                struct.pack_into("<I", b, k, rng.getrandbits(32))
        elif op == 8 and n >= 4:  # radiotap / block length field
            v = rng.choice((0, 4, 8, n - 1, n, n + 1, rng.randrange(65536)))
            struct.pack_into("<H", b, 2, v & 0xFFFF)
        elif op == 9 and n:  # a length-ish byte somewhere
            b[rng.randrange(n)] = rng.choice((0, 1, 2, 3, 6, 12, 37, 255, rng.randrange(256)))
    return bytes(b)


# --- contract checks -------------------------------------------------------------------------


def check_probe(p: WifiProbe, dec: WifiDecoder) -> str | None:
    if len(p.addr) != 6 or not isinstance(p.addr, bytes):
        return "addr"
    if not 0 <= p.seq <= 4095:
        return "seq"
    if p.rssi is not None and not dec.rssi_min <= p.rssi <= dec.rssi_max:
        return "rssi"
    if p.freq_mhz is not None and not 0 < p.freq_mhz < 70000:
        return "freq"
    if not p.ie_sig or p.ie_sig[0] != 1:
        return "ie_sig"
    return None


def check_advert(a: BleAdvert, dec: BleDecoder) -> str | None:
    if len(a.addr) != 6 or not isinstance(a.addr, bytes):
        return "addr"
    if a.rssi is not None and not dec.rssi_min <= a.rssi <= dec.rssi_max:
        return "rssi"
    if not -1 <= a.channel <= 39:
        return "channel"
    if a.pdu_type not in (0, 1, 2, 3, 4, 6, 7):
        return "pdu_type"
    return None


# --- runners ---------------------------------------------------------------------------------


def fuzz_frames(
    n: int, seed: int, seeds: list[tuple[int, bytes]], report: FuzzReport, max_crashes: int = 20
) -> None:
    rng = random.Random(seed)
    wifi, ble = WifiDecoder(), BleDecoder()
    wifi_v = WifiDecoder(fcs="verify")
    for i in range(n):
        lt, data = rng.choice(seeds)
        frame = mutate(rng, data, seeds)
        if rng.random() < 0.125:
            lt = rng.choice(ALL_LT)
        t_ms = rng.randrange(1 << 42)
        try:
            if lt in WIFI_LT or lt == 119:
                dec = wifi_v if i & 1 else wifi
                p = dec.decode(lt, frame, t_ms)
                if p is not None:
                    bad = check_probe(p, dec)
                    if bad:
                        raise AssertionError(f"contract: {bad}: {p!r}")
                    report.accepted["wifi"] += 1
            else:
                for a in ble.decode_all(lt, frame, t_ms):
                    bad = check_advert(a, ble)
                    if bad:
                        raise AssertionError(f"contract: {bad}: {a!r}")
                    report.accepted["ble"] += 1
        except Exception:
            if len(report.crashes) < max_crashes:
                report.crashes.append((lt, frame, traceback.format_exc()))
            else:
                report.crashes.append((lt, b"", ""))
        report.frames += 1
    for name, dec in (("wifi", wifi), ("wifi", wifi_v), ("ble", ble)):
        report.rejects.update({f"{name}:{k}": v for k, v in dec.rejects.items()})
        report.notes.update({f"{name}:{k}": v for k, v in dec.notes.items()})


def fuzz_files(n: int, seed: int, data: Path, report: FuzzReport) -> None:
    rng = random.Random(seed + 1)
    blobs = [
        p.read_bytes()[:60_000]
        for p in sorted(data.rglob("*"))
        if p.is_file() and p.suffix in (".pcap", ".pcapng", ".cap")
    ]
    frame_seeds = [(0, blob) for blob in blobs]
    for _ in range(n):
        blob = mutate(rng, rng.choice(blobs), frame_seeds)
        if rng.random() < 0.5 and len(blob) > 32:  # mutate deeper inside the file too
            b = bytearray(blob)
            for _ in range(rng.randint(1, 16)):
                b[rng.randrange(len(b))] = rng.randrange(256)
            blob = bytes(b)
        reader = CaptureReader(io.BytesIO(blob))
        try:
            for _rec in reader:
                pass
        except CaptureError:
            report.file_errors += 1
        except Exception:
            report.file_crashes.append((blob, traceback.format_exc()))
        report.file_issues.update(reader.stats.issues)
        report.files += 1


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--data", type=Path, default=Path(os.environ.get("FOOTFALL_DATA", DEFAULT_DATA))
    )
    ap.add_argument("--frames", type=int, default=1_000_000)
    ap.add_argument("--files", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--save", type=Path, help="write crashing inputs here")
    args = ap.parse_args(argv)
    seeds = load_seeds(args.data)
    if not seeds:
        print(f"no captures under {args.data}", file=sys.stderr)
        return 1
    report = FuzzReport()
    t0 = time.perf_counter()
    fuzz_frames(args.frames, args.seed, seeds, report)
    fuzz_files(args.files, args.seed, args.data, report)
    report.seconds = time.perf_counter() - t0
    print(f"seeds: {len(seeds)} frames; seed {args.seed}; {report.seconds:.1f} s")
    print(f"frames fuzzed: {report.frames:,}  crashes: {len(report.crashes)}")
    print(f"accepted: {dict(report.accepted)}")
    print("rejects by reason:")
    for k, v in sorted(report.rejects.items(), key=lambda kv: -kv[1]):
        print(f"  {k:<36} {v:>10,}")
    print("accepted with notes:")
    for k, v in sorted(report.notes.items(), key=lambda kv: -kv[1]):
        print(f"  {k:<36} {v:>10,}")
    print(
        f"capture files fuzzed: {report.files:,}  CaptureError: {report.file_errors:,}  "
        f"crashes: {len(report.file_crashes)}  issues: {dict(report.file_issues)}"
    )
    for lt, frame, tb in report.crashes[:3]:
        print(f"--- crash, linktype {lt}, frame {frame.hex()}\n{tb}")
    for blob, tb in report.file_crashes[:3]:
        print(f"--- file crash ({len(blob)} bytes)\n{tb}")
    if args.save and (report.crashes or report.file_crashes):
        args.save.mkdir(parents=True, exist_ok=True)
        for i, (lt, frame, _) in enumerate(report.crashes):
            (args.save / f"frame-{i}-lt{lt}.bin").write_bytes(frame)
        for i, (blob, _) in enumerate(report.file_crashes):
            (args.save / f"file-{i}.bin").write_bytes(blob)
    return 1 if report.crashes or report.file_crashes else 0


if __name__ == "__main__":
    raise SystemExit(main())
