"""StreamDecoder, BoardClock and BoardStream in memory: fuzzing, resync, seq and
reset bookkeeping, clock mapping with drift."""

from __future__ import annotations

import itertools

from hypothesis import given, settings
from hypothesis import strategies as st

from firmware_bridge.board_clock import BoardClock
from firmware_bridge.board_stream import BoardStream
from firmware_bridge.decoder import StreamDecoder
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

u32 = st.integers(0, 2**32 - 1)
messages = st.one_of(
    st.builds(Heartbeat, u32),
    st.builds(DoorCrossing, u32, st.sampled_from([1, -1])),
    st.builds(TileChange, u32, st.integers(0, 255), st.integers(0, 1)),
)
nonzero_junk = st.binary(max_size=150).map(lambda b: b.replace(b"\x00", b"\x01"))


@settings(max_examples=200, deadline=None)
@given(data=st.binary(max_size=2000), cuts=st.lists(st.integers(0, 2000), max_size=10))
def test_random_bytes_never_raise(data: bytes, cuts: list[int]) -> None:
    d = StreamDecoder()
    points = sorted({0, len(data), *(c % (len(data) + 1) for c in cuts)})
    for a, b in itertools.pairwise(points):
        d.feed(data[a:b])
    assert d.stats.bytes == len(data)


@settings(max_examples=300, deadline=None)
@given(
    msgs=st.lists(messages, min_size=1, max_size=30),
    junk=st.lists(st.tuples(nonzero_junk, st.booleans()), min_size=30, max_size=30),
)
def test_junk_between_frames_costs_no_good_frame(
    msgs: list[Message], junk: list[tuple[bytes, bool]]
) -> None:
    stream = bytearray()
    for i, msg in enumerate(msgs):
        j, delimited = junk[i]
        stream += j + (b"\x00" if delimited and j else b"")
        stream += encode(msg, 1, i)
    d = StreamDecoder()
    assert [f.msg for f in d.feed(bytes(stream))] == msgs
    assert d.stats.duplicates == 0


def test_frames_is_lazy_and_stats_are_current_at_each_frame() -> None:
    d = StreamDecoder()
    data = (
        encode(Hello(1, 0, BoardKind.DOOR, 2), 1, 0)
        + encode(Heartbeat(1000), 1, 1)
        + encode(Hello(1, 0, BoardKind.DOOR, 2, 8), 1, 0)
        + encode(Heartbeat(1000), 1, 1)
    )
    seen = [(type(f.msg).__name__, d.stats.resets) for f in d.frames(data)]
    assert seen == [("Hello", 0), ("Heartbeat", 0), ("Hello", 1), ("Heartbeat", 1)]


def test_duplicate_is_not_a_reset() -> None:
    d = StreamDecoder()
    f = encode(Heartbeat(5000), 1, 10)
    d.feed(encode(Heartbeat(4000), 1, 9) + f + f)
    assert (d.stats.duplicates, d.stats.resets, d.stats.frames) == (1, 0, 3)


def test_reboot_with_lost_hello_is_a_reset_not_duplicates() -> None:
    d = StreamDecoder()
    d.feed(encode(Hello(1, 0, BoardKind.DOOR, 2), 1, 0))
    d.feed(b"".join(encode(Heartbeat(t * 1000), 1, t) for t in range(1, 50)))
    # rebooted; seq 0 (HELLO) and 1 lost, seq 2.. arrive with small ticks
    frames = d.feed(b"".join(encode(Heartbeat(t * 1000), 1, t) for t in range(2, 6)))
    assert [f.seq for f in frames] == [2, 3, 4, 5]
    assert (d.stats.resets, d.stats.duplicates, d.stats.seq_gaps) == (1, 0, 2)


def test_reboot_seen_by_tick_alone_when_seq_looks_ahead() -> None:
    d = StreamDecoder()
    d.feed(encode(Heartbeat(3_000_000), 1, 65000))
    frames = d.feed(encode(Heartbeat(2000), 1, 3))  # seq 3 is 539 "ahead" of 65000
    assert len(frames) == 1
    assert (d.stats.resets, d.stats.seq_gaps) == (1, 3)


def test_tick_and_seq_wraps_are_not_resets() -> None:
    d = StreamDecoder()
    d.feed(encode(Heartbeat(2**32 - 500), 1, 0xFFFF))
    frames = d.feed(encode(Heartbeat(500), 1, 0))
    assert len(frames) == 1
    assert (d.stats.resets, d.stats.duplicates, d.stats.seq_gaps) == (0, 0, 0)


def test_event_stamped_before_the_last_heartbeat_is_not_a_reset() -> None:
    # a crossing whose edge began just before a heartbeat went out arrives after it
    d = StreamDecoder()
    frames = d.feed(encode(Heartbeat(1000), 1, 5) + encode(DoorCrossing(998, 1), 1, 6))
    assert len(frames) == 2 and d.stats.resets == 0


def test_long_garbage_is_counted_once_as_overflow() -> None:
    d = StreamDecoder()
    frames = d.feed(b"\x01" * 1000 + b"\x00" + encode(Heartbeat(7), 1, 0))
    assert [f.msg for f in frames] == [Heartbeat(7)]
    assert d.stats.rejects["overflow"] == 1
    assert sum(d.stats.rejects.values()) == 2  # overflow + the kept tail, rejected


def test_board_clock_follows_a_slow_board() -> None:
    # a board clock 0.5 % slow, frames delayed 2..40 ms; one heartbeat a second
    windowed, forever = BoardClock(window=60), BoardClock(window=None)
    base = 1_700_000_000_000
    worst_windowed = worst_forever = 0
    for k in range(1, 4 * 3600):
        tick = k * 1000
        true_node = base + round(tick / 0.995)
        arrival = true_node + 2 + (k * 7919) % 39
        for c in (windowed, forever):
            c.observe(tick, arrival)
        worst_windowed = max(worst_windowed, abs(windowed.to_epoch_ms(tick) - true_node))
        worst_forever = max(worst_forever, abs(forever.to_epoch_ms(tick) - true_node))
    assert worst_windowed < 400  # 60 s × 0.5 % = 300 ms, plus the transit floor
    assert worst_forever > 60_000  # the all-time minimum drifts a minute in 4 h


def test_board_clock_wrap_reset_and_set_offset() -> None:
    c = BoardClock()
    c.observe(2**32 - 1000, 5_000_000)
    c.observe(500, 5_001_500)
    assert c.to_epoch_ms(500) == 5_001_500
    c.reset()
    assert not c.synchronised
    c.set_offset(7_000_000)
    assert c.to_epoch_ms(10) == 7_000_010
    c.observe(100, 7_000_050)  # a less delayed frame lowers the offset
    assert c.to_epoch_ms(100) == 7_000_050


def test_board_stream_events_info_and_value_rejects() -> None:
    s = BoardStream()
    data = (
        encode(Hello(1, 2, BoardKind.FLOOR, 36, 4), 3, 0)
        + encode(Heartbeat(1000), 3, 1)
        + encode(TileChange(1500, 7, 1), 3, 2)
        + encode(TileChange(1600, 7, 9), 3, 3)
        + encode(DoorCrossing(1700, 0), 3, 4)
    )
    events = s.feed(data, node_ms=2_000_000)
    # all arrived together: each frame is mapped by the least delayed one so far,
    # itself
    assert events == [TileEvent(2_000_000, 7, 1, 3, 1500)]
    assert s.stats.rejects["value"] == 2
    info = s.boards[3]
    assert (info.kind, info.fw_version, info.channels, info.reset_cause) == (
        BoardKind.FLOOR,
        (1, 2),
        36,
        4,
    )
    assert (info.last_seen_ms, info.last_tick_ms) == (2_000_000, 1700)


def test_board_stream_restarts_the_clock_on_reset() -> None:
    s = BoardStream()
    s.feed(
        encode(Hello(1, 0, BoardKind.DOOR, 2), 1, 0) + encode(Heartbeat(50_000), 1, 1),
        node_ms=1_000_000,
    )
    events = s.feed(
        encode(Hello(1, 0, BoardKind.DOOR, 2, 2), 1, 0) + encode(DoorCrossing(300, 1), 1, 1),
        node_ms=1_100_000,
    )
    assert events == [DoorEvent(1_100_000, 1, 1, 300)]
    assert s.stats.resets == 1
