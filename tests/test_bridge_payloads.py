"""Board events → v1 door/floor payloads, built as the node daemon builds them
(``payload_items`` per event into the ``"ev"`` Batcher), that pass the schemas."""

from __future__ import annotations

import pytest

from firmware_bridge.errors import PayloadError
from firmware_bridge.events import BoardEvent, DoorEvent, TileEvent, payload_items
from sensing.node.batcher import Batcher
from sensing.node.streams import EV_MAX_AGE_MS, EV_MAX_ITEMS
from sensing.wire import payloads, topics

T0 = 1_760_000_000_000


def event_batches(events: list[BoardEvent], board: dict[str, int] | None = None) -> list[dict]:
    """The payloads the node daemon would publish for ``events`` (in arrival order)."""
    b = Batcher(
        "ev",
        max_items=EV_MAX_ITEMS,
        max_age_ms=EV_MAX_AGE_MS,
        extra=(lambda: {"board": board}) if board is not None else None,
    )
    out = [p for e in events if (p := b.add(e.t_ms, payload_items(e))) is not None]
    last = b.flush()
    return out + ([last] if last is not None else [])


def test_door_payload_validates() -> None:
    events: list[BoardEvent] = [DoorEvent(T0, 1, 1, 5000), DoorEvent(T0 + 900, -1, 1, 5900)]
    (p,) = event_batches(events, board={"frames": 10, "seq_gaps": 0})
    assert p == {
        "v": 1,
        "seq": 0,
        "t0": T0,
        "ev": [[0, 1], [900, -1]],
        "board": {"frames": 10, "seq_gaps": 0},
    }
    topic = topics.door_topic("s1", "main")
    assert topics.parse(topic) == topics.Topic("door_events", "s1", "main")
    assert payloads.decode("door_events", payloads.encode(p)) == p


def test_floor_payload_validates() -> None:
    events: list[BoardEvent] = [TileEvent(T0, 35, 1), TileEvent(T0 + 40, 7, 1)]
    events.append(TileEvent(T0 + 600, 7, 0))
    (p,) = event_batches(events)
    assert p["ev"] == [[0, 35, 1], [40, 7, 1], [600, 7, 0]]
    assert payloads.decode("floor_events", payloads.encode(p)) == p


def test_schema_would_catch_a_bad_direction() -> None:
    (p,) = event_batches([DoorEvent(T0, 1)])
    p["ev"][0][1] = 0
    with pytest.raises(PayloadError):
        payloads.decode("door_events", payloads.encode(p))


def test_batches_cut_by_count_and_age_stay_valid() -> None:
    # a busy door: one crossing every 20 ms for a minute, then one an hour later
    events: list[BoardEvent] = [DoorEvent(T0 + 20 * i, 1 if i % 3 else -1) for i in range(3000)]
    events.append(DoorEvent(T0 + 3_600_000, 1))
    out = event_batches(events)
    assert [p["seq"] for p in out] == list(range(len(out)))
    assert all(len(p["ev"]) <= EV_MAX_ITEMS for p in out)
    assert all(p["ev"][-1][0] < EV_MAX_AGE_MS for p in out)
    assert sum(len(p["ev"]) for p in out) == len(events)
    assert out[-1]["ev"] == [[0, 1]] and out[-1]["t0"] == T0 + 3_600_000
    for p in out:
        payloads.decode("door_events", payloads.encode(p))
