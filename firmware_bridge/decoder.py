"""Byte stream → frames, for one serial link.

Frames are delimited by 0x00 (COBS guarantees the body has none), so after any
garbage the decoder is back in sync at the next delimiter: at most one frame is
lost to a corruption. Every reject is counted by reason; nothing raises.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from firmware_bridge.protocol import MAX_BODY, Frame, FrameError, Hello, decode_body

# COBS adds one byte per 254 and the delimiter one more
MAX_ENCODED = MAX_BODY + MAX_BODY // 254 + 2


@dataclass
class LinkStats:
    """Health counters of one serial link (cumulative)."""

    frames: int = 0
    bytes: int = 0
    rejects: Counter[str] = field(default_factory=Counter)
    """bad chunks by reason: cobs, short, crc, version, type, kind, length, overflow,
    garbage (bytes before a good frame, frame recovered)"""
    seq_gaps: int = 0
    """frames lost, from gaps in the board's seq"""
    duplicates: int = 0
    resets: int = 0
    """hello frames seen after the first: the board rebooted"""

    def as_dict(self) -> dict[str, int]:
        d = {"frames": self.frames, "bytes": self.bytes, "seq_gaps": self.seq_gaps,
             "duplicates": self.duplicates, "resets": self.resets}
        d.update({f"reject_{k}": v for k, v in sorted(self.rejects.items())})
        return d


class StreamDecoder:
    """Feed it bytes as they arrive; it returns the good frames, in order.

    >>> from firmware_bridge.protocol import Heartbeat, encode
    >>> d = StreamDecoder()
    >>> [f.msg for f in d.feed(b"\\x13\\x37garbage" + encode(Heartbeat(5), 1, 0))]
    [Heartbeat(tick_ms=5)]
    >>> dict(d.stats.rejects)
    {'garbage': 1}
    """

    def __init__(self) -> None:
        self.stats = LinkStats()
        self._buf = bytearray()
        self._overflowing = False
        self._last_seq: dict[int, int] = {}
        self._seen_hello: set[int] = set()

    def feed(self, data: bytes) -> list[Frame]:
        self.stats.bytes += len(data)
        out: list[Frame] = []
        start = 0
        while True:
            end = data.find(b"\x00", start)
            if end < 0:
                self._append(data[start:])
                return out
            self._append(data[start:end])
            chunk = bytes(self._buf)
            self._buf.clear()
            self._overflowing = False
            start = end + 1
            if chunk:
                frame = self._decode(chunk)
                if frame is not None:
                    out.append(frame)

    def _append(self, part: bytes) -> None:
        self._buf += part
        if len(self._buf) > MAX_ENCODED:
            # keep only the tail that could still hold a frame
            if not self._overflowing:
                self.stats.rejects["overflow"] += 1
            del self._buf[:-MAX_ENCODED]
            self._overflowing = True

    def _decode(self, chunk: bytes) -> Frame | None:
        try:
            frame = decode_body(chunk)
        except FrameError as e:
            frame = self._recover_tail(chunk)
            if frame is None:
                self.stats.rejects[e.reason] += 1
                return None
            self.stats.rejects["garbage"] += 1
        self.stats.frames += 1
        board = frame.board
        if isinstance(frame.msg, Hello):
            if board in self._seen_hello:
                self.stats.resets += 1
            self._seen_hello.add(board)
            self._last_seq[board] = frame.seq
            return frame
        last = self._last_seq.get(board)
        if last is not None:
            delta = (frame.seq - last) & 0xFFFF
            if delta == 0 or delta > 0x8000:
                self.stats.duplicates += 1
                return None
            self.stats.seq_gaps += delta - 1
        self._last_seq[board] = frame.seq
        return frame

    @staticmethod
    def _recover_tail(chunk: bytes) -> Frame | None:
        """Garbage glued in front of a good frame (no delimiter between them):
        find the frame in the chunk's tail. A false match must pass COBS, version,
        type, exact length and CRC-16 at once."""
        for i in range(1, len(chunk) - 3):
            try:
                return decode_body(chunk[i:])
            except FrameError:
                continue
        return None
