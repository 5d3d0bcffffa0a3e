"""Byte stream → frames, for one serial link.

Frames are delimited by 0x00 (COBS guarantees the body has none), so after any
garbage the decoder is back in sync at the next delimiter: at most one frame is
lost to a corruption. Every reject is counted by reason; nothing raises.

A board that reboots says so with a HELLO (seq 0). If that HELLO is lost, the
reboot still shows: the seq and the tick both jump back. Such a frame is counted
as a reset and accepted, not taken for a duplicate (which would drop every frame
until the new seq overtook the old one).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field

from firmware_bridge.protocol import MAX_BODY, Frame, FrameError, Hello, decode_body

# COBS adds one byte per 254 and the delimiter one more
MAX_ENCODED = MAX_BODY + MAX_BODY // 254 + 2
# a tick this far behind the board's previous one cannot be a late event frame
# (events are stamped at most debounce + queueing, well under a second, early)
RESET_TICK_SLACK_MS = 60_000
# a rebooted board restarts seq at 0 (its HELLO): the first frame we see after a
# lost HELLO has a small seq
SEQ_AFTER_REBOOT_MAX = 1024


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
    """board reboots: hello frames after the first, and seq + tick jumping back"""

    def as_dict(self) -> dict[str, int]:
        d = {
            "frames": self.frames,
            "bytes": self.bytes,
            "seq_gaps": self.seq_gaps,
            "duplicates": self.duplicates,
            "resets": self.resets,
        }
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
        self._last_tick: dict[int, int] = {}
        self._seen_hello: set[int] = set()

    def feed(self, data: bytes) -> list[Frame]:
        return list(self.frames(data))

    def frames(self, data: bytes) -> Iterator[Frame]:
        """Like :meth:`feed`, lazily: ``stats`` is up to date at each frame
        yielded (a reset counted there happened right before that frame).
        Consume it to the end, or the rest of ``data`` is not decoded."""
        self.stats.bytes += len(data)
        start = 0
        while True:
            end = data.find(b"\x00", start)
            if end < 0:
                self._append(data[start:])
                return
            self._append(data[start:end])
            chunk = bytes(self._buf)
            self._buf.clear()
            self._overflowing = False
            start = end + 1
            if chunk:
                frame = self._decode(chunk)
                if frame is not None:
                    yield frame

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
            recovered = self._recover_tail(chunk)
            if recovered is None:
                self.stats.rejects[e.reason] += 1
                return None
            self.stats.rejects["garbage"] += 1
            frame = recovered
        self.stats.frames += 1
        board = frame.board
        if isinstance(frame.msg, Hello):
            if board in self._seen_hello:
                self.stats.resets += 1
            self._seen_hello.add(board)
            self._last_seq[board] = frame.seq
            self._last_tick.pop(board, None)
            return frame
        tick = frame.msg.tick_ms
        last = self._last_seq.get(board)
        if last is not None:
            delta = (frame.seq - last) & 0xFFFF
            behind = delta == 0 or delta > 0x8000
            if self._rebooted(board, tick, behind and frame.seq < SEQ_AFTER_REBOOT_MAX):
                self.stats.resets += 1
                self.stats.seq_gaps += frame.seq  # its HELLO (seq 0) onwards never arrived
            elif behind:
                self.stats.duplicates += 1
                return None
            else:
                self.stats.seq_gaps += delta - 1
        self._last_seq[board] = frame.seq
        self._last_tick[board] = tick
        return frame

    def _rebooted(self, board: int, tick: int, seq_restarted: bool) -> bool:
        """The board restarted without us seeing its HELLO: its tick went back
        (not a 2^32 wrap) and its seq went back to a small number, or its tick
        went back a long way."""
        last_tick = self._last_tick.get(board)
        if last_tick is None:
            return False
        back = (last_tick - tick) & 0xFFFFFFFF
        if back == 0 or back >= 0x80000000:
            return False  # same tick or ahead (wrap-aware)
        return seq_restarted or back > RESET_TICK_SLACK_MS

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
