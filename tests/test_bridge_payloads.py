"""Board events → v1 door/floor payloads that pass the schemas, cut to fit them."""

from __future__ import annotations

import pytest

from firmware_bridge.event_payloads import (
    MAX_DT_MS,
    EventBatcher,
    batches,
    door_payload,
    floor_payload,
    message,
)
from firmware_bridge.events import DoorEvent, TileEvent
from sensing import payloads, topics
from sensing.errors import PayloadError

T0 = 1_760_000_000_000


def test_door_payload_validates() -> None:
    events = [DoorEvent(T0 + 900, -1, 1, 5900), DoorEvent(T0, 1, 1, 5000)]
    p = door_payload(3, events, board={"frames": 10, "seq_gaps": 0})
    assert p == {
        "v": 1,
        "seq": 3,
        "t0": T0,
        "ev": [[0, 1], [900, -1]],
        "board": {"frames": 10, "seq_gaps": 0},
    }
    topic, raw = message("door_events", "s1", "main", p)
    assert topic == topics.door_topic("s1", "main")
    assert payloads.decode("door_events", raw) == p


def test_floor_payload_validates() -> None:
    events = [TileEvent(T0 + 40, 7, 1), TileEvent(T0 + 600, 7, 0), TileEvent(T0, 35, 1)]
    p = floor_payload(0, events)
    assert p["ev"] == [[0, 35, 1], [40, 7, 1], [600, 7, 0]]
    topic, raw = message("floor_events", "s1", "entrance", p)
    assert topic == topics.floor_topic("s1", "entrance")
    assert payloads.decode("floor_events", raw) == p


def test_schema_would_catch_a_bad_direction() -> None:
    p = door_payload(0, [DoorEvent(T0, 1)])
    p["ev"][0][1] = 0
    with pytest.raises(PayloadError):
        payloads.decode("door_events", payloads.encode(p))


def test_payload_limits() -> None:
    with pytest.raises(ValueError, match="t0 is needed"):
        door_payload(0, [])
    assert door_payload(0, [], t0=T0)["ev"] == []
    with pytest.raises(ValueError, match="split"):
        door_payload(0, [DoorEvent(T0, 1), DoorEvent(T0 + MAX_DT_MS + 1, 1)])
    with pytest.raises(ValueError, match="split"):
        door_payload(0, [DoorEvent(T0, 1)], t0=T0 + 1)


def test_batches_split_by_span_and_count() -> None:
    events = [DoorEvent(T0 + i * 600_000, 1) for i in range(20)]  # 10 min apart, 3 h 10 min
    runs = batches(events)
    assert [len(r) for r in runs] == [7, 7, 6]
    assert all(r[-1].t_ms - r[0].t_ms <= MAX_DT_MS for r in runs)
    assert [len(r) for r in batches(events, max_events=4)] == [4, 4, 4, 4, 4]


def test_batcher_due_flush_and_seq() -> None:
    b = EventBatcher("floor_events", first_seq=41, max_events=3, max_age_ms=1000)
    assert not b.due(T0) and b.flush() == []
    b.add(TileEvent(T0, 1, 1))
    assert not b.due(T0 + 999) and b.due(T0 + 1000)
    b.add(TileEvent(T0 + 10, 2, 1))
    b.add(TileEvent(T0 + 20, 1, 0))
    assert b.due(T0 + 20)
    b.add(TileEvent(T0 + 30, 2, 0))
    out = b.flush(board={"frames": 4})
    assert [p["seq"] for p in out] == [41, 42] and b.seq == 43 and len(b) == 0
    for p in out:
        payloads.decode("floor_events", payloads.encode(p))
    with pytest.raises(TypeError):
        b.add(DoorEvent(T0, 1))
    with pytest.raises(ValueError):
        EventBatcher("door_events", max_events=0)
