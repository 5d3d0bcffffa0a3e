"""Bytes from one serial link → door and floor events in node time (pure core).

:class:`BoardStream` owns the link's :class:`~firmware_bridge.decoder.StreamDecoder`,
one :class:`~firmware_bridge.board_clock.BoardClock` per board id, and what each
board said in its HELLO. It does no I/O: :mod:`firmware_bridge.serial_link` feeds
it from a port, a replay feeds it from a file.

>>> from firmware_bridge.protocol import DoorCrossing, encode
>>> s = BoardStream()
>>> s.feed(encode(DoorCrossing(tick_ms=5000, direction=1), board=3, seq=9),
...        node_ms=1_700_000_005_012)
[DoorEvent(t_ms=1700000005012, direction=1, board=3, tick_ms=5000)]
"""

from __future__ import annotations

from dataclasses import dataclass

from firmware_bridge.board_clock import BoardClock
from firmware_bridge.decoder import LinkStats, StreamDecoder
from firmware_bridge.events import BoardEvent, DoorEvent, TileEvent
from firmware_bridge.protocol import (
    BoardKind,
    DoorCrossing,
    Heartbeat,
    Hello,
    TileChange,
    values_ok,
)


@dataclass(frozen=True, slots=True)
class BoardInfo:
    """What a board said about itself, and when the node last heard from it."""

    board: int
    kind: BoardKind | None
    """None until a HELLO was seen (the link opened on a running board)"""
    fw_version: tuple[int, int] | None
    channels: int | None
    """beams (door) or tiles (floor)"""
    reset_cause: int | None
    """AVR MCUSR bits at its last reset: 1 power-on, 2 external, 4 brown-out, 8 watchdog"""
    last_seen_ms: int
    """node time of its last good frame, Unix epoch ms"""
    last_tick_ms: int | None
    """its tick in the last frame that carried one"""


class BoardStream:
    """Decode a link's bytes, map board ticks to node time, yield events.

    Parameters
    ----------
    clock_window
        observations per board for its :class:`BoardClock` (see there).
    """

    def __init__(self, clock_window: int | None = 60) -> None:
        self.decoder = StreamDecoder()
        self.boards: dict[int, BoardInfo] = {}
        self._clock_window = clock_window
        self._clocks: dict[int, BoardClock] = {}
        self._resets_seen = 0

    @property
    def stats(self) -> LinkStats:
        """Link health counters (cumulative); ``rejects['value']`` counts
        CRC-good frames whose direction or tile state is out of range."""
        return self.decoder.stats

    def clock(self, board: int) -> BoardClock:
        c = self._clocks.get(board)
        if c is None:
            c = self._clocks[board] = BoardClock(self._clock_window)
        return c

    def feed(self, data: bytes, node_ms: int) -> list[BoardEvent]:
        """Bytes that arrived at node time ``node_ms`` (Unix epoch ms) → events."""
        out: list[BoardEvent] = []
        for frame in self.decoder.frames(data):
            board, msg = frame.board, frame.msg
            clock = self.clock(board)
            if self.decoder.stats.resets != self._resets_seen:
                self._resets_seen = self.decoder.stats.resets
                clock.reset()  # rebooted (HELLO or seq/tick jump): ticks restarted
            if isinstance(msg, Hello):
                clock.reset()
                self.boards[board] = BoardInfo(
                    board,
                    msg.kind,
                    (msg.fw_major, msg.fw_minor),
                    msg.channels,
                    msg.reset_cause,
                    node_ms,
                    None,
                )
                continue
            clock.observe(msg.tick_ms, node_ms)
            self._seen(board, node_ms, msg.tick_ms)
            t_ms = clock.to_epoch_ms(msg.tick_ms)
            if isinstance(msg, Heartbeat):
                continue
            if not values_ok(msg):
                self.stats.rejects["value"] += 1
            elif isinstance(msg, DoorCrossing):
                out.append(DoorEvent(t_ms, msg.direction, board, msg.tick_ms))
            elif isinstance(msg, TileChange):
                out.append(TileEvent(t_ms, msg.tile, msg.state, board, msg.tick_ms))
        return out

    def _seen(self, board: int, node_ms: int, tick_ms: int) -> None:
        info = self.boards.get(board)
        if info is None:
            self.boards[board] = BoardInfo(board, None, None, None, None, node_ms, tick_ms)
        else:
            self.boards[board] = BoardInfo(
                info.board,
                info.kind,
                info.fw_version,
                info.channels,
                info.reset_cause,
                node_ms,
                tick_ms,
            )
