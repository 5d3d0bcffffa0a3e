"""Garbage, truncated and corrupted frames between good ones, written to a real pty
and read through pyserial by SerialLink: every good frame comes out, each fault is
counted exactly where it should be, nothing raises."""

from __future__ import annotations

import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

from firmware_bridge.decoder import MAX_ENCODED
from firmware_bridge.errors import CaptureError
from firmware_bridge.events import DoorEvent, TileEvent
from firmware_bridge.protocol import (
    BoardKind,
    DoorCrossing,
    Heartbeat,
    Hello,
    Message,
    TileChange,
    encode,
)
from firmware_bridge.pty_board import PtyBoard
from firmware_bridge.serial_link import SerialLink

FAULTS = (
    "garbage_delim",
    "garbage_glued",
    "truncated_delim",
    "truncated_glued",
    "corrupt_byte",
    "corrupt_zero",
    "delimiter_lost",
    "duplicate",
    "drop",
)


@dataclass
class Expected:
    """What the decoder must count for the stream built alongside."""

    good: list[tuple[int, Message]] = field(default_factory=list)
    """(board, message) of every frame that must come out, in order"""
    glued: int = 0
    """good frames preceded by junk in the same chunk (reject 'garbage')"""
    overflow: int = 0
    other_rejects: int = 0
    """chunks rejected outright, any reason"""
    seq_gaps: int = 0
    duplicates: int = 0
    faults: Counter[str] = field(default_factory=Counter)


def junk(rng: np.random.Generator, n: int) -> bytes:
    """n bytes, none of them 0x00."""
    return bytes(rng.integers(1, 256, n, dtype=np.uint8))


def build_stream(
    rng: np.random.Generator,
    n_slots: int,
    p_fault: float,
) -> tuple[bytes, Expected]:
    exp = Expected()
    out = bytearray()
    seq = {1: 0, 2: 0}
    tick = {1: 0, 2: 0}
    last_frame = b""
    pending_glue = b""  # junk to put right before the next good frame

    def next_frame(board: int) -> tuple[Message, bytes]:
        tick[board] += int(rng.integers(1, 400))
        u = rng.uniform()
        msg: Message
        if u < 0.3:
            msg = Heartbeat(tick[board])
        elif board == 1:
            msg = DoorCrossing(tick[board], 1 if u < 0.65 else -1)
        else:
            msg = TileChange(tick[board], int(rng.integers(0, 36)), int(u < 0.65))
        frame = encode(msg, board, seq[board])
        seq[board] = (seq[board] + 1) & 0xFFFF
        return msg, frame

    def put_good(board: int, msg: Message, frame: bytes) -> None:
        nonlocal pending_glue, last_frame
        if pending_glue:
            exp.glued += 1
            exp.overflow += len(pending_glue) + len(frame) - 1 > MAX_ENCODED
            out.extend(pending_glue)
            pending_glue = b""
        out.extend(frame)
        exp.good.append((board, msg))
        last_frame = frame

    for board, kind, channels in ((1, BoardKind.DOOR, 2), (2, BoardKind.FLOOR, 36)):
        hello = Hello(1, 0, kind, channels, 1)
        put_good(board, hello, encode(hello, board, 0))
        seq[board] = 1
    previous_was_fault = True
    for _ in range(n_slots):
        board = int(rng.integers(1, 3))
        msg, frame = next_frame(board)
        if previous_was_fault or rng.uniform() >= p_fault:
            put_good(board, msg, frame)
            previous_was_fault = False
            continue
        previous_was_fault = True
        fault = FAULTS[int(rng.integers(0, len(FAULTS)))]
        exp.faults[fault] += 1
        body = frame[:-1]
        if fault == "garbage_delim":
            n = int(rng.integers(1, 120))
            out.extend(junk(rng, n) + b"\x00")
            exp.other_rejects += 1
            exp.overflow += n > MAX_ENCODED
            put_good(board, msg, frame)  # this slot's frame itself is fine
            continue
        if fault == "garbage_glued":
            pending_glue = junk(rng, int(rng.integers(1, 120)))
            put_good(board, msg, frame)
            continue
        if fault == "duplicate":
            put_good(board, msg, frame)
            out.extend(frame)
            exp.duplicates += 1
            continue
        # the rest lose this slot's frame: its seq shows as a gap
        exp.seq_gaps += 1
        if fault == "truncated_delim":
            out.extend(body[: int(rng.integers(1, len(body) - 1))] + b"\x00")
            exp.other_rejects += 1
        elif fault == "truncated_glued":
            pending_glue = body[: int(rng.integers(1, len(body) - 1))]
        elif fault == "corrupt_byte":
            i = int(rng.integers(0, len(body)))
            bad = bytearray(body)
            bad[i] = (bad[i] + int(rng.integers(1, 255))) % 256 or 1
            if bytes(bad) == body:
                bad[i] = bad[i] % 255 + 1
            out.extend(bytes(bad) + b"\x00")
            exp.other_rejects += 1
        elif fault == "corrupt_zero":
            i = int(rng.integers(0, len(body)))
            out.extend(body[:i] + b"\x00" + body[i + 1 :] + b"\x00")
            exp.other_rejects += (i > 0) + (i < len(body) - 1)
        elif fault == "delimiter_lost":
            pending_glue = body + junk(rng, 1)
        # "drop": nothing on the wire
    for board in (1, 2):  # close with a good frame per board so every gap is seen
        msg, frame = next_frame(board)
        put_good(board, msg, frame)
    return bytes(out), exp


def pump(board: PtyBoard, data: bytes, rng: np.random.Generator) -> None:
    """Write in uneven pieces so that reads split frames anywhere."""
    i = 0
    while i < len(data):
        n = int(rng.integers(1, 300))
        board.write(data[i : i + n])
        i += n
        if rng.uniform() < 0.02:
            time.sleep(0.001)


@pytest.mark.parametrize(("seed", "p_fault"), [(1, 0.1), (2, 0.3), (3, 0.01)])
def test_faults_on_a_real_pty(seed: int, p_fault: float) -> None:
    rng = np.random.default_rng(seed)
    data, exp = build_stream(rng, 4000, p_fault)
    assert set(exp.faults) == set(FAULTS) or p_fault < 0.05

    got = []
    with PtyBoard() as board, SerialLink(board.port, clock=lambda: 1_800_000_000_000) as link:
        writer = threading.Thread(target=pump, args=(board, data, rng), daemon=True)
        writer.start()
        deadline = time.monotonic() + 60
        while link.stats.bytes < len(data):
            assert time.monotonic() < deadline, f"read {link.stats.bytes} of {len(data)} bytes"
            got += link.read(0.05)
        writer.join(timeout=10)

    expected_events = [
        (b, m.tick_ms, m.direction)
        if isinstance(m, DoorCrossing)
        else (b, m.tick_ms, m.tile, m.state)
        for b, m in exp.good
        if isinstance(m, DoorCrossing | TileChange)
    ]
    got_events = [
        (e.board, e.tick_ms, e.direction)
        if isinstance(e, DoorEvent)
        else (e.board, e.tick_ms, e.tile, e.state)
        for e in got
        if isinstance(e, DoorEvent | TileEvent)
    ]
    assert got_events == expected_events  # every good frame, in order, nothing invented

    s = link.stats
    rejects = Counter(s.rejects)
    assert s.frames == len(exp.good) + exp.duplicates
    assert rejects.pop("garbage", 0) == exp.glued
    assert rejects.pop("overflow", 0) == exp.overflow
    assert sum(rejects.values()) == exp.other_rejects
    assert s.seq_gaps == exp.seq_gaps
    assert s.duplicates == exp.duplicates
    assert s.resets == 0
    assert s.bytes == len(data)


def test_board_reboot_without_its_hello_on_a_pty() -> None:
    with PtyBoard(board=4) as board, SerialLink(board.port, clock=lambda: 10**12) as link:
        board.hello()
        for t in range(1, 200):
            board.send(Heartbeat(t * 1000))
        board.send(DoorCrossing(199_500, 1))
        # reboot: the HELLO (seq 0) is lost on the line, seq 1 arrives
        board.seq = 1
        board.send(DoorCrossing(800, -1))
        board.send(Heartbeat(1000))
        events: list[DoorEvent | TileEvent] = []
        deadline = time.monotonic() + 10
        while len(events) < 2 and time.monotonic() < deadline:
            events += link.read(0.05)
    assert [(e.tick_ms, e.direction) for e in events if isinstance(e, DoorEvent)] == [
        (199_500, 1),
        (800, -1),
    ]
    assert (link.stats.resets, link.stats.duplicates, link.stats.seq_gaps) == (1, 0, 1)
    # the clock restarted with the board: the new event is not 199 s in the past
    assert events[1].t_ms == 10**12


def test_serial_link_events_ends_when_the_line_goes_quiet() -> None:
    with PtyBoard(board=1) as board, SerialLink(board.port, clock=lambda: 10**12) as link:
        board.hello()
        board.send(DoorCrossing(100, 1))
        board.send(TileChange(150, 3, 1))
        started = time.monotonic()
        events = list(link.events(idle_s=0.3, duration_s=10))
    assert time.monotonic() - started < 5
    assert [type(e) for e in events] == [DoorEvent, TileEvent]
    assert link.boards[1].kind == BoardKind.DOOR and link.boards[1].last_tick_ms == 150


def test_unopenable_port_is_a_capture_error(tmp_path: Path) -> None:
    with pytest.raises(CaptureError, match="cannot open serial port"):
        SerialLink(str(tmp_path / "no-such-tty"))
