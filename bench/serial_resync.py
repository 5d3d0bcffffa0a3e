"""Resynchronisation of the board UART decoder on a long randomized stream.

Writes N frames (door crossings, tile changes, heartbeats of two boards) of which
a fraction is hit by a fault: bit flips (which may create a 0x00), a replaced
byte, truncation with or without the delimiter, a lost delimiter, or junk (with
or without 0x00) injected before an intact frame. Decodes the whole stream with
firmware_bridge.decoder.StreamDecoder (or, with --pty, through a real pty and
SerialLink) and prints:

- bytes per event on the wire;
- frames lost per fault, split into the faulted frames themselves and clean
  neighbours (collateral), false accepts (decoded frames never sent);
- "resync within one frame": the share of faults after which the next intact
  frame came out;
- reject counters by reason, and decode throughput.

    python bench/serial_resync.py --frames 100000 --fault-rate 0.01 --seed 1

(from the repository root, with the package installed: ``pip install -e .``, or
``PYTHONPATH=.``)
"""

from __future__ import annotations

import argparse
import threading
import time
from collections import Counter

import numpy as np

from firmware_bridge.decoder import StreamDecoder
from firmware_bridge.protocol import (
    BoardKind,
    DoorCrossing,
    Frame,
    Heartbeat,
    Hello,
    Message,
    TileChange,
    encode,
)

FAULTS = (
    "bitflip",
    "byte",
    "truncate_delim",
    "truncate_glued",
    "delimiter_lost",
    "junk_delim",
    "junk_glued",
)


def build(
    rng: np.random.Generator,
    n: int,
    rate: float,
) -> tuple[bytes, list[tuple[int, int, Message]], list[tuple[int, str]]]:
    """The stream, the frames sent (board, seq, msg) in order, and the faults as
    (index of the frame hit or preceded, kind)."""
    out = bytearray()
    sent: list[tuple[int, int, Message]] = []
    faults: list[tuple[int, str]] = []
    seq = {1: 0, 2: 0}
    tick = {1: 0, 2: 0}
    for board, kind, ch in ((1, BoardKind.DOOR, 2), (2, BoardKind.FLOOR, 36)):
        hello = Hello(1, 0, kind, ch, 1)
        out += encode(hello, board, 0)
        sent.append((board, 0, hello))
        seq[board] = 1
    for _ in range(n):
        board = int(rng.integers(1, 3))
        tick[board] += int(rng.integers(1, 500))
        u = rng.uniform()
        msg: Message
        if u < 0.2:
            msg = Heartbeat(tick[board])
        elif board == 1:
            msg = DoorCrossing(tick[board], 1 if u < 0.6 else -1)
        else:
            msg = TileChange(tick[board], int(rng.integers(0, 36)), int(u < 0.6))
        frame = encode(msg, board, seq[board])
        sent.append((board, seq[board], msg))
        seq[board] = (seq[board] + 1) & 0xFFFF
        if rng.uniform() >= rate:
            out += frame
            continue
        fault = FAULTS[int(rng.integers(0, len(FAULTS)))]
        faults.append((len(sent) - 1, fault))
        body = bytearray(frame[:-1])
        if fault == "bitflip":
            for _ in range(int(rng.integers(1, 4))):
                body[int(rng.integers(0, len(body)))] ^= 1 << int(rng.integers(0, 8))
            out += body + b"\x00"
        elif fault == "byte":
            i = int(rng.integers(0, len(body)))
            body[i] = (body[i] + int(rng.integers(1, 256))) % 256
            out += body + b"\x00"
        elif fault == "truncate_delim":
            out += body[: int(rng.integers(1, len(body)))] + b"\x00"
        elif fault == "truncate_glued":
            out += body[: int(rng.integers(1, len(body)))]
        elif fault == "delimiter_lost":
            out += body
        else:
            junk = bytes(
                rng.integers(
                    0 if fault == "junk_delim" else 1,
                    256,
                    int(rng.integers(1, 200)),
                    dtype=np.uint8,
                )
            )
            out += junk + (b"\x00" if fault == "junk_delim" else b"") + frame
    return bytes(out), sent, faults


def decode_memory(data: bytes, chunk: int = 4096) -> tuple[list[Frame], StreamDecoder, float]:
    d = StreamDecoder()
    frames: list[Frame] = []
    t = time.perf_counter()
    for i in range(0, len(data), chunk):
        frames += d.feed(data[i : i + chunk])
    return frames, d, time.perf_counter() - t


def decode_pty(data: bytes) -> tuple[list[Frame], StreamDecoder, float]:
    from firmware_bridge.pty_board import PtyBoard
    from firmware_bridge.serial_link import SerialLink

    frames: list[Frame] = []
    with PtyBoard() as board, SerialLink(board.port) as link:
        writer = threading.Thread(target=board.write, args=(data,), daemon=True)
        t = time.perf_counter()
        writer.start()
        decoder = link.stream.decoder
        port = link._port  # raw frames wanted here, not events
        deadline = time.monotonic() + 600
        while decoder.stats.bytes < len(data) and time.monotonic() < deadline:
            chunk = port.read(max(1, port.in_waiting))
            frames += decoder.feed(chunk)
        elapsed = time.perf_counter() - t
        writer.join(timeout=10)
    return frames, decoder, elapsed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--frames", type=int, default=100_000)
    ap.add_argument("--fault-rate", type=float, default=0.01)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--pty", action="store_true", help="decode through a real pty + SerialLink")
    args = ap.parse_args()

    print("bytes per event on the wire (frame + 0x00 delimiter):")
    for name, msg in (
        ("door crossing", DoorCrossing(123456, 1)),
        ("tile change", TileChange(4000, 17, 1)),
        ("heartbeat", Heartbeat(1000)),
        ("hello", Hello(1, 0, BoardKind.DOOR, 2, 1)),
    ):
        n = len(encode(msg, 1, 7))
        print(f"  {name:14s} {n:3d} B  ({n * 10 / 115.2:.2f} ms at 115200 8N1)")

    rng = np.random.default_rng(args.seed)
    data, sent, faults = build(rng, args.frames, args.fault_rate)
    frames, d, elapsed = (decode_pty if args.pty else decode_memory)(data)

    got = {(f.board, f.seq, f.msg) for f in frames}
    sent_set = set(sent)
    false_accepts = len(got - sent_set)
    faulted = {i for i, k in faults if k not in ("junk_delim", "junk_glued")}
    lost = [i for i, s in enumerate(sent) if s not in got]
    lost_faulted = sum(1 for i in lost if i in faulted)
    lost_clean = len(lost) - lost_faulted
    # resync: after each fault, did the next intact frame come out?
    resynced = 0
    for i, kind in faults:
        nxt = i if kind in ("junk_delim", "junk_glued") else i + 1
        while nxt in faulted:
            nxt += 1
        resynced += nxt >= len(sent) or sent[nxt] in got

    kinds = Counter(k for _, k in faults)
    via = "pty + SerialLink" if args.pty else "memory"
    print(
        f"\nstream: {len(sent):,} frames, {len(data):,} bytes, {len(faults):,} faults "
        f"({args.fault_rate:.1%}), seed {args.seed}, {via}"
    )
    print("  faults: " + ", ".join(f"{k} {v}" for k, v in sorted(kinds.items())))
    print(
        f"frames decoded: {len(frames):,}   lost: {len(lost):,} "
        f"(faulted frames {lost_faulted:,}, clean neighbours {lost_clean:,})   "
        f"false accepts: {false_accepts}"
    )
    n_frame_faults = len(faulted)
    print(
        f"frames lost per fault: {len(lost) / max(1, len(faults)):.3f} "
        f"(per frame-destroying fault: {len(lost) / max(1, n_frame_faults):.3f})"
    )
    print(
        f"resync within one frame: {resynced}/{len(faults)} faults "
        f"({resynced / max(1, len(faults)):.2%}) had the next intact frame decoded"
    )
    s = d.stats
    print(
        f"link stats: seq_gaps {s.seq_gaps:,}  duplicates {s.duplicates}  resets {s.resets}  "
        f"rejects {dict(sorted(s.rejects.items()))}"
    )
    print(
        f"decode: {elapsed:.2f} s, {len(sent) / elapsed:,.0f} frames/s, "
        f"{len(data) / elapsed / 1e6:.2f} MB/s (one core; a board sends at most 11.5 kB/s)"
    )


if __name__ == "__main__":
    main()
