"""The firmware's C framing (src/frame.c, built for the host as frame_tool) agrees
with firmware_bridge.protocol byte for byte, both ways: C encodes what Python
encodes, C decodes what Python encodes, and rejects what Python rejects."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator

import pytest
from cobs import cobs
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from firmware_bridge.protocol import (
    BoardKind,
    DoorCrossing,
    FrameError,
    Heartbeat,
    Hello,
    Message,
    TileChange,
    crc16_ccitt,
    decode_body,
    encode,
)
from firmware_bridge.simavr_board import FirmwareBuild

from conftest_hw import firmware_build, golden_examples  # noqa: F401


class FrameTool:
    """A long-running host/frame_tool: one request line, one answer line."""

    def __init__(self, build: FirmwareBuild) -> None:
        self.proc = subprocess.Popen(
            [str(build.frame_tool)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )

    def ask(self, line: str) -> str:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()
        return self.proc.stdout.readline().strip()

    def encode(self, msg: Message, board: int, seq: int) -> bytes:
        payload = msg.pack().hex() or "-"
        return bytes.fromhex(self.ask(f"enc {board} {seq} {int(msg.TYPE)} {payload}"))

    def close(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        self.proc.wait(timeout=10)


@pytest.fixture(scope="module")
def tool(firmware_build: FirmwareBuild) -> Iterator[FrameTool]:  # noqa: F811
    t = FrameTool(firmware_build)
    yield t
    t.close()


u32 = st.integers(0, 2**32 - 1)
messages = st.one_of(
    st.builds(
        Hello,
        st.integers(0, 255),
        st.integers(0, 255),
        st.sampled_from(list(BoardKind)),
        st.integers(0, 255),
        st.integers(0, 255),
    ),
    st.builds(Heartbeat, u32),
    st.builds(DoorCrossing, u32, st.sampled_from([1, -1])),
    st.builds(TileChange, u32, st.integers(0, 255), st.integers(0, 1)),
)
EXAMPLES = golden_examples()
FAST = settings(
    max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@pytest.mark.parametrize(("msg", "board", "seq", "wire"), EXAMPLES)
def test_c_encodes_the_documented_bytes(
    tool: FrameTool, msg: Message, board: int, seq: int, wire: bytes
) -> None:
    assert tool.encode(msg, board, seq) == wire


@pytest.mark.parametrize(("msg", "board", "seq", "wire"), EXAMPLES)
def test_c_decodes_the_documented_bytes(
    tool: FrameTool, msg: Message, board: int, seq: int, wire: bytes
) -> None:
    assert tool.ask(f"dec {wire[:-1].hex()}") == (
        f"ok {board} {seq} {int(msg.TYPE)} {msg.pack().hex()}"
    )


@FAST
@given(msg=messages, board=st.integers(0, 255), seq=st.integers(0, 0xFFFF))
def test_c_and_python_encode_alike(tool: FrameTool, msg: Message, board: int, seq: int) -> None:
    wire = tool.encode(msg, board, seq)
    assert wire == encode(msg, board, seq)
    assert decode_body(wire[:-1]).msg == msg


@FAST
@given(msg=messages, board=st.integers(0, 255), seq=st.integers(0, 0xFFFF))
def test_c_decodes_python_frames(tool: FrameTool, msg: Message, board: int, seq: int) -> None:
    wire = encode(msg, board, seq)
    assert tool.ask(f"dec {wire[:-1].hex()}") == (
        f"ok {board} {seq} {int(msg.TYPE)} {msg.pack().hex()}"
    )


@FAST
@given(data=st.binary(max_size=200))
def test_crc_alike(tool: FrameTool, data: bytes) -> None:
    assert int(tool.ask(f"crc {data.hex() or '-'}"), 16) == crc16_ccitt(data)


@FAST
@given(data=st.binary(max_size=253))
def test_cobs_alike(tool: FrameTool, data: bytes) -> None:
    assert bytes.fromhex(tool.ask(f"cobs {data.hex() or '-'}")) == cobs.encode(data)


@FAST
@given(msg=messages, pos=st.integers(0, 200), value=st.integers(1, 255))
def test_c_rejects_what_python_rejects(tool: FrameTool, msg: Message, pos: int, value: int) -> None:
    chunk = bytearray(encode(msg, 1, 2)[:-1])
    i = pos % len(chunk)
    chunk[i] = value  # never 0x00: stays one chunk
    try:
        frame = decode_body(bytes(chunk))
    except FrameError as e:
        if e.reason in ("cobs", "short", "crc", "version"):
            assert tool.ask(f"dec {chunk.hex()}") == f"err {e.reason}"
    else:
        assert tool.ask(f"dec {chunk.hex()}") == (
            f"ok {frame.board} {frame.seq} {int(frame.msg.TYPE)} {frame.msg.pack().hex()}"
        )
