"""What the boards tell the node, normalized: door crossings and tile changes
stamped in node time.

Both the serial path (:mod:`firmware_bridge.serial_link`) and the GPIO path
(:mod:`firmware_bridge.gpio_beams`) produce these; the node daemon batches them
(:class:`sensing.node.batcher.Batcher`, key ``"ev"``) into the v1 door and floor
payloads, one row per event from :func:`payload_items`.

>>> payload_items(DoorEvent(1_700_000_000_000, -1)), payload_items(TileEvent(0, 35, 1))
([-1], [35, 1])
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class DoorEvent:
    """One direction-resolved crossing of a beam pair."""

    t_ms: int
    """node time of the crossing, Unix epoch ms"""
    direction: int
    """+1 in (beam A then B), -1 out"""
    board: int = 0
    """board id of the serial board, 0 for beams on the node's GPIO"""
    tick_ms: int | None = None
    """the board's own tick for the event (ms since its reset), if it has one"""


@dataclass(frozen=True, slots=True)
class TileEvent:
    """One debounced state change of a floor tile."""

    t_ms: int
    """node time of the change, Unix epoch ms"""
    tile: int
    """tile index in the array, row-major, 0..255"""
    state: int
    """1 pressed, 0 released"""
    board: int = 0
    tick_ms: int | None = None
    """the board's own tick for the event (ms since its reset)"""


BoardEvent = DoorEvent | TileEvent


def payload_items(e: BoardEvent) -> list[int]:
    """The fields after ``dt_ms`` in the event's row of a v1 payload: ``[direction]``
    for a door crossing, ``[tile, state]`` for a tile change (contract:
    ``sensing/wire/schemas/door_events.schema.json`` and ``floor_events.schema.json``)."""
    return [e.direction] if isinstance(e, DoorEvent) else [e.tile, e.state]
