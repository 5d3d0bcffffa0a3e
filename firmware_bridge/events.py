"""What the boards tell the node, normalized: door crossings and tile changes
stamped in node time.

Both the serial path (:mod:`firmware_bridge.serial_link`) and the GPIO path
(:mod:`firmware_bridge.gpio_beams`) produce these; :mod:`firmware_bridge.event_payloads`
turns them into v1 MQTT payloads.
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
