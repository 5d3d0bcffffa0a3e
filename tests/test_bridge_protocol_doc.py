"""hardware/protocol.md's golden examples against firmware_bridge.protocol, both ways."""

from __future__ import annotations

import pytest

from firmware_bridge.decoder import StreamDecoder
from firmware_bridge.protocol import (
    DoorCrossing,
    Heartbeat,
    Hello,
    Message,
    TileChange,
    crc16_ccitt,
    decode_body,
    encode,
)

from conftest_hw import golden_examples

EXAMPLES = golden_examples()


def test_doc_has_every_message_type() -> None:
    assert {type(m) for m, *_ in EXAMPLES} == {Hello, Heartbeat, DoorCrossing, TileChange}
    assert len(EXAMPLES) >= 7


@pytest.mark.parametrize(("msg", "board", "seq", "wire"), EXAMPLES)
def test_encode_gives_the_documented_bytes(msg: Message, board: int, seq: int, wire: bytes) -> None:
    assert encode(msg, board, seq) == wire


@pytest.mark.parametrize(("msg", "board", "seq", "wire"), EXAMPLES)
def test_documented_bytes_decode_to_the_message(
    msg: Message, board: int, seq: int, wire: bytes
) -> None:
    frame = decode_body(wire[:-1])
    assert (frame.board, frame.seq, frame.msg) == (board, seq, msg)


def test_documented_sizes_per_event() -> None:
    sizes = {type(m).__name__: len(w) for m, _, _, w in EXAMPLES}
    assert sizes == {"Hello": 14, "Heartbeat": 13, "DoorCrossing": 14, "TileChange": 15}


def test_crc_check_value() -> None:
    assert crc16_ccitt(b"123456789") == 0x29B1


def test_whole_example_stream_decodes() -> None:
    d = StreamDecoder()
    frames = d.feed(b"".join(w for *_, w in EXAMPLES))
    # board 2's frames seq 0, 3, 4: two gaps; board 1's 0, 7, 8, 9: six
    assert [f.msg for f in frames] == [m for m, *_ in EXAMPLES]
    assert d.stats.seq_gaps == 2 + 6
    assert not d.stats.rejects
