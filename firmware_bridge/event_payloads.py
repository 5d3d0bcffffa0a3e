"""Board events → v1 MQTT payloads (publisher-agnostic).

Door: ``{"v":1,"seq":N,"t0":ms,"ev":[[dt_ms,+1|-1],...]}`` on
``footfall/v1/{store}/door/{door}/events``; floor:
``{"v":1,"seq":N,"t0":ms,"ev":[[dt_ms,tile,state],...]}`` on
``footfall/v1/{store}/floor/{array}/events``; both may carry ``"board"``, the
link's health counters. Contract: ``sensing/schemas/door_events.schema.json``
and ``floor_events.schema.json``. ``(door, seq)`` is unique: the batcher numbers
payloads, the publisher keeps the number across restarts if it needs to.

>>> from firmware_bridge.events import DoorEvent
>>> door_payload(7, [DoorEvent(1_700_000_000_000, 1), DoorEvent(1_700_000_000_850, -1)])
{'v': 1, 'seq': 7, 't0': 1700000000000, 'ev': [[0, 1], [850, -1]]}
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal, TypeVar

from firmware_bridge.events import DoorEvent, TileEvent
from sensing import payloads, topics

MAX_DT_MS = 3_600_000
"""largest dt_ms the schemas allow: a payload spans at most an hour"""
MAX_EVENTS = 20_000
"""most events the schemas allow in one payload"""

Kind = Literal["door_events", "floor_events"]
E = TypeVar("E", bound=DoorEvent | TileEvent)


def door_payload(
    seq: int,
    events: Sequence[DoorEvent],
    *,
    board: Mapping[str, int] | None = None,
    t0: int | None = None,
) -> dict[str, Any]:
    """One door payload; ``t0`` defaults to the earliest event (Unix epoch ms)."""
    t0 = _t0(events, t0)
    ev = [[e.t_ms - t0, e.direction] for e in sorted(events, key=_t)]
    return _payload(seq, t0, ev, board)


def floor_payload(
    seq: int,
    events: Sequence[TileEvent],
    *,
    board: Mapping[str, int] | None = None,
    t0: int | None = None,
) -> dict[str, Any]:
    """One floor payload; ``t0`` defaults to the earliest event (Unix epoch ms)."""
    t0 = _t0(events, t0)
    ev = [[e.t_ms - t0, e.tile, e.state] for e in sorted(events, key=_t)]
    return _payload(seq, t0, ev, board)


def message(kind: Kind, store: str, entity: str, payload: dict[str, Any]) -> tuple[str, bytes]:
    """The (topic, bytes) to publish for ``payload`` of door ``entity`` or floor array
    ``entity`` of ``store``."""
    return topics.build(kind, store, entity), payloads.encode(payload)


def batches(
    events: Sequence[E], *, max_events: int = MAX_EVENTS, max_span_ms: int = MAX_DT_MS
) -> list[list[E]]:
    """Split time-ordered-or-not ``events`` into runs a payload can hold: at most
    ``max_events`` each, spanning at most ``max_span_ms``."""
    if not 1 <= max_events <= MAX_EVENTS or not 0 <= max_span_ms <= MAX_DT_MS:
        raise ValueError("max_events or max_span_ms outside what the schema allows")
    out: list[list[E]] = []
    for e in sorted(events, key=_t):
        if out and len(out[-1]) < max_events and e.t_ms - out[-1][0].t_ms <= max_span_ms:
            out[-1].append(e)
        else:
            out.append([e])
    return out


class EventBatcher:
    """Collects the events of one door (or floor array) and cuts payloads.

    Parameters
    ----------
    kind
        ``"door_events"`` or ``"floor_events"``.
    first_seq
        seq of the first payload; each payload takes the next.
    max_events, max_age_ms
        a batch is due when it holds ``max_events`` or its oldest event is
        ``max_age_ms`` old.
    """

    def __init__(
        self, kind: Kind, *, first_seq: int = 0, max_events: int = 500, max_age_ms: int = 1000
    ) -> None:
        if kind not in ("door_events", "floor_events"):
            raise ValueError(f"kind must be door_events or floor_events, not {kind!r}")
        if not 1 <= max_events <= MAX_EVENTS:
            raise ValueError(f"max_events must be in 1..{MAX_EVENTS}, not {max_events}")
        self.kind = kind
        self.seq = first_seq
        self.max_events = max_events
        self.max_age_ms = max_age_ms
        self._events: list[DoorEvent | TileEvent] = []

    def add(self, event: DoorEvent | TileEvent) -> None:
        want = DoorEvent if self.kind == "door_events" else TileEvent
        if not isinstance(event, want):
            raise TypeError(f"{self.kind} batcher got a {type(event).__name__}")
        self._events.append(event)

    def __len__(self) -> int:
        return len(self._events)

    def due(self, now_ms: int) -> bool:
        """Whether a payload should go out at node time ``now_ms``."""
        if not self._events:
            return False
        oldest = min(e.t_ms for e in self._events)
        return len(self._events) >= self.max_events or now_ms - oldest >= self.max_age_ms

    def flush(self, board: Mapping[str, int] | None = None) -> list[dict[str, Any]]:
        """Payloads for everything collected (none if nothing was), seq numbered."""
        out: list[dict[str, Any]] = []
        events, self._events = self._events, []
        for run in batches(events, max_events=self.max_events):
            if self.kind == "door_events":
                doors = [e for e in run if isinstance(e, DoorEvent)]
                out.append(door_payload(self.seq, doors, board=board))
            else:
                tiles = [e for e in run if isinstance(e, TileEvent)]
                out.append(floor_payload(self.seq, tiles, board=board))
            self.seq += 1
        return out


def _t(e: DoorEvent | TileEvent) -> int:
    return e.t_ms


def _t0(events: Sequence[DoorEvent] | Sequence[TileEvent], t0: int | None) -> int:
    if t0 is None:
        if not events:
            raise ValueError("t0 is needed for a payload without events")
        t0 = min(e.t_ms for e in events)
    span = max((e.t_ms for e in events), default=t0) - t0
    if any(e.t_ms < t0 for e in events) or span > MAX_DT_MS:
        raise ValueError(f"events must lie within [t0, t0 + {MAX_DT_MS}] ms; split with batches()")
    if len(events) > MAX_EVENTS:
        raise ValueError(f"{len(events)} events exceed {MAX_EVENTS}; split with batches()")
    return t0


def _payload(
    seq: int, t0: int, ev: list[list[int]], board: Mapping[str, int] | None
) -> dict[str, Any]:
    p: dict[str, Any] = {"v": 1, "seq": seq, "t0": t0, "ev": ev}
    if board is not None:
        p["board"] = dict(board)
    return p
