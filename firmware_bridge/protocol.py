"""UART frame format of the sensor boards (v1), declared once.

A frame on the wire is ``COBS(body) 0x00`` where body is::

    ver:u8  board:u8  seq:u16le  type:u8  payload[...]  crc:u16le

``crc`` is CRC-16/CCITT-FALSE (poly 0x1021, init 0xFFFF, no reflection, no xorout)
over ``ver..payload``. Multi-byte fields are little-endian. See
``hardware/protocol.md`` for the byte-exact description with examples.

>>> encode(Heartbeat(tick_ms=1000), board=1, seq=7).hex()
'040101070402e80301033cb100'
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import IntEnum

from cobs import cobs

PROTOCOL_VERSION = 1
HEADER = struct.Struct("<BBHB")  # ver, board, seq, type
MAX_BODY = 64


class MsgType(IntEnum):
    HELLO = 0x01
    HEARTBEAT = 0x02
    DOOR_CROSSING = 0x10
    TILE_CHANGE = 0x20


class BoardKind(IntEnum):
    DOOR = 1
    FLOOR = 2


@dataclass(frozen=True, slots=True)
class Hello:
    """Sent once after reset. ``reset_cause`` is the MCUSR bits of an AVR."""

    fw_major: int
    fw_minor: int
    kind: BoardKind
    channels: int
    """beams (door) or tiles (floor)"""
    reset_cause: int = 0
    TYPE = MsgType.HELLO
    FMT = struct.Struct("<BBBBB")

    def pack(self) -> bytes:
        return self.FMT.pack(
            self.fw_major, self.fw_minor, int(self.kind), self.channels, self.reset_cause
        )


@dataclass(frozen=True, slots=True)
class Heartbeat:
    """Periodic (1 s) proof of life; ``tick_ms`` is the board's millisecond counter."""

    tick_ms: int
    TYPE = MsgType.HEARTBEAT
    FMT = struct.Struct("<I")

    def pack(self) -> bytes:
        return self.FMT.pack(self.tick_ms & 0xFFFFFFFF)


@dataclass(frozen=True, slots=True)
class DoorCrossing:
    """A direction-resolved crossing of the beam pair: +1 in (A then B), -1 out."""

    tick_ms: int
    direction: int
    TYPE = MsgType.DOOR_CROSSING
    FMT = struct.Struct("<Ib")

    def pack(self) -> bytes:
        return self.FMT.pack(self.tick_ms & 0xFFFFFFFF, self.direction)


@dataclass(frozen=True, slots=True)
class TileChange:
    """A debounced state change of one floor tile (1 pressed, 0 released)."""

    tick_ms: int
    tile: int
    state: int
    TYPE = MsgType.TILE_CHANGE
    FMT = struct.Struct("<IBB")

    def pack(self) -> bytes:
        return self.FMT.pack(self.tick_ms & 0xFFFFFFFF, self.tile, self.state)


Message = Hello | Heartbeat | DoorCrossing | TileChange
_BY_TYPE: dict[int, type[Hello] | type[Heartbeat] | type[DoorCrossing] | type[TileChange]] = {
    MsgType.HELLO: Hello,
    MsgType.HEARTBEAT: Heartbeat,
    MsgType.DOOR_CROSSING: DoorCrossing,
    MsgType.TILE_CHANGE: TileChange,
}


@dataclass(frozen=True, slots=True)
class Frame:
    """A decoded, CRC-checked frame."""

    board: int
    seq: int
    msg: Message


class FrameError(ValueError):
    """A frame failed to decode; ``reason`` is a reject-counter key."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason


def values_ok(msg: Message) -> bool:
    """The fields a CRC cannot vouch for are in range: a crossing's direction is +1
    or -1, a tile's state 0 or 1. A frame that fails this is counted
    (``rejects['value']``) and dropped by every reader, so it never reaches a batch
    (whose schema would refuse the whole batch).

    >>> values_ok(DoorCrossing(5, 1)), values_ok(DoorCrossing(5, 0)), values_ok(TileChange(5, 3, 2))
    (True, False, False)
    """
    if isinstance(msg, DoorCrossing):
        return msg.direction in (1, -1)
    if isinstance(msg, TileChange):
        return msg.state in (0, 1)
    return True


def crc16_ccitt(data: bytes, crc: int = 0xFFFF) -> int:
    """CRC-16/CCITT-FALSE (check value for b"123456789" is 0x29B1)."""
    for byte in data:
        crc ^= byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) & 0xFFFF if crc & 0x8000 else (crc << 1) & 0xFFFF
    return crc


def encode(msg: Message, board: int, seq: int) -> bytes:
    """The bytes a board sends for ``msg``: COBS-encoded body plus the 0x00 delimiter."""
    body = HEADER.pack(PROTOCOL_VERSION, board, seq & 0xFFFF, int(msg.TYPE)) + msg.pack()
    body += struct.pack("<H", crc16_ccitt(body))
    return cobs.encode(body) + b"\x00"


def decode_body(encoded: bytes) -> Frame:
    """Decode one COBS-encoded frame (without its 0x00 delimiter).

    Raises FrameError with reason ``cobs``, ``short``, ``crc``, ``version``,
    ``type``, ``kind`` or ``length``.
    """
    try:
        body = cobs.decode(encoded)
    except cobs.DecodeError as e:
        raise FrameError("cobs", str(e)) from e
    if len(body) < HEADER.size + 2:
        raise FrameError("short", f"{len(body)} bytes")
    if len(body) > MAX_BODY:
        raise FrameError("length", f"{len(body)} bytes")
    (crc,) = struct.unpack_from("<H", body, len(body) - 2)
    if crc16_ccitt(body[:-2]) != crc:
        raise FrameError("crc")
    ver, board, seq, mtype = HEADER.unpack_from(body)
    if ver != PROTOCOL_VERSION:
        raise FrameError("version", str(ver))
    cls = _BY_TYPE.get(mtype)
    if cls is None:
        raise FrameError("type", f"0x{mtype:02x}")
    payload = body[HEADER.size : -2]
    if len(payload) != cls.FMT.size:
        raise FrameError("length", f"type 0x{mtype:02x} with {len(payload)} payload bytes")
    fields = cls.FMT.unpack(payload)
    msg: Message
    if cls is Hello:
        if fields[2] not in (BoardKind.DOOR, BoardKind.FLOOR):
            raise FrameError("kind", f"unknown board kind {fields[2]}")
        msg = Hello(fields[0], fields[1], BoardKind(fields[2]), fields[3], fields[4])
    else:
        msg = cls(*fields)
    return Frame(board, seq, msg)
