"""The door and floor boards of the simulated store, as byte streams.

Door: each crossing occludes beam A (street side) and beam B (inside) in turn;
occlusions of people close together merge (two people abreast are one count, as
with real beams). The merged beam edges go through the same direction state
machine as the firmware (:class:`firmware_bridge.door_direction.DoorDirection`).
Floor: a tile is pressed while someone stands on it (sampled at 4 Hz).

Each stream is written as the raw bytes of the board's UART plus a sidecar JSON
saying at which node time the board's tick 0 was (what a serial logger records).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from shapely.geometry import Polygon

from firmware_bridge.door_direction import DoorDirection
from firmware_bridge.protocol import (
    BoardKind,
    DoorCrossing,
    Heartbeat,
    Hello,
    Message,
    TileChange,
    encode,
)
from heatmap.simulate.people import Person
from heatmap.spatial.floorplan import Door, TileArray

BODY_DEPTH_M = 0.30
"""front-to-back size of a walking person, for beam occlusion"""
FIRMWARE = (1, 0)


@dataclass(frozen=True, slots=True)
class Crossing:
    t: float
    """seconds after the scenario start (moment the person passes the door line)"""
    person: int
    direction: int
    speed: float


def door_crossings(people: list[Person], door: Door, outline: Polygon) -> list[Crossing]:
    """Every time someone's path crosses the door segment (truth); +1 = into ``outline``."""
    (ax, ay), (bx, by) = door.a, door.b
    nx_, ny_ = door.inward(outline)  # the inside is the positive side
    out = []
    for p in people:
        k = np.asarray(p.keys)
        if len(k) < 2:
            continue
        side = (k[:, 1] - ax) * nx_ + (k[:, 2] - ay) * ny_
        sgn = np.sign(side)
        for i in np.flatnonzero(sgn[:-1] * sgn[1:] < 0):
            f = side[i] / (side[i] - side[i + 1])
            t = k[i, 0] + f * (k[i + 1, 0] - k[i, 0])
            x = k[i, 1] + f * (k[i + 1, 1] - k[i, 1])
            y = k[i, 2] + f * (k[i + 1, 2] - k[i, 2])
            along = ((x - ax) * (bx - ax) + (y - ay) * (by - ay)) / (
                (bx - ax) ** 2 + (by - ay) ** 2
            )
            if not 0 <= along <= 1:
                continue
            dt = k[i + 1, 0] - k[i, 0]
            speed = (
                float(np.hypot(k[i + 1, 1] - k[i, 1], k[i + 1, 2] - k[i, 2]) / dt) if dt else 1.0
            )
            direction = 1 if sgn[i] < 0 else -1  # from the outside in: +1
            out.append(Crossing(float(t), p.id, direction, max(speed, 0.3)))
    return sorted(out, key=lambda c: c.t)


def beam_edges(crossings: list[Crossing], gap_m: float) -> list[tuple[float, str, bool]]:
    """Merged occlusion edges (t, beam, blocked) of beams A (outside) and B (inside)."""
    intervals: dict[str, list[tuple[float, float]]] = {"A": [], "B": []}
    for c in crossings:
        half = BODY_DEPTH_M / 2 / c.speed
        shift = gap_m / 2 / c.speed
        # moving in: A is reached first
        ta = c.t - shift * c.direction
        tb = c.t + shift * c.direction
        intervals["A"].append((ta - half, ta + half))
        intervals["B"].append((tb - half, tb + half))
    edges = []
    for beam, iv in intervals.items():
        iv.sort()
        merged: list[list[float]] = []
        for s, e in iv:
            if merged and s <= merged[-1][1]:
                merged[-1][1] = max(merged[-1][1], e)
            else:
                merged.append([s, e])
        for s, e in merged:
            edges += [(s, beam, True), (e, beam, False)]
    return sorted(edges)


def door_messages(
    crossings: list[Crossing], door: Door, duration_s: float
) -> tuple[list[tuple[float, Message]], dict[str, int]]:
    """What the door board says: hello, heartbeats and the crossings it resolves."""
    fsm = DoorDirection()
    msgs: list[tuple[float, Message]] = [(0.0, Hello(*FIRMWARE, BoardKind.DOOR, 2))]
    for t, beam, blocked in beam_edges(crossings, door.beam_gap_m):
        d = fsm.edge(int(t * 1000), beam, blocked)
        if d is not None:
            msgs.append((t, DoorCrossing(_tick(t), d)))
    msgs += [(float(t), Heartbeat(_tick(t))) for t in range(1, int(duration_s) + 1)]
    msgs.sort(key=lambda m: m[0])
    return msgs, dict(fsm.stats)


def tile_messages(
    people: list[Person], arr: TileArray, duration_s: float
) -> list[tuple[float, Message]]:
    """Floor board: per-tile press/release from everyone's position at 4 Hz."""
    x0, y0, x1, y1 = arr.bounds
    msgs: list[tuple[float, Message]] = [
        (0.0, Hello(*FIRMWARE, BoardKind.FLOOR, arr.cols * arr.rows))
    ]
    n_tiles = arr.cols * arr.rows
    steps = np.arange(0, duration_s, 0.25)
    occupied = np.zeros((len(steps), n_tiles), bool)
    for p in people:
        lo = np.searchsorted(steps, max(p.t_start, 0))
        hi = np.searchsorted(steps, min(p.t_end, duration_s))
        if hi <= lo:
            continue
        pos = p.position(steps[lo:hi])
        on = (pos[:, 0] >= x0) & (pos[:, 0] < x1) & (pos[:, 1] >= y0) & (pos[:, 1] < y1)
        if not on.any():
            continue
        c = ((pos[on, 0] - x0) / arr.tile_m).astype(int)
        r = ((pos[on, 1] - y0) / arr.tile_m).astype(int)
        occupied[np.arange(lo, hi)[on], r * arr.cols + c] = True
    change = np.diff(occupied.astype(np.int8), axis=0, prepend=0)
    for i, tile in zip(*np.nonzero(change), strict=True):
        t = float(steps[i])
        msgs.append((t, TileChange(_tick(t), int(tile), int(occupied[i, tile]))))
    msgs += [(float(t), Heartbeat(_tick(t))) for t in range(1, int(duration_s) + 1)]
    msgs.sort(key=lambda m: m[0])
    return msgs


def write_stream(
    path: Path, msgs: list[tuple[float, Message]], board: int, tick0_epoch_ms: int
) -> int:
    """Write the board's UART bytes and the logger's sidecar; returns bytes written."""
    data = bytearray()
    for seq, (_, msg) in enumerate(msgs):
        data += encode(msg, board, seq)
    path.write_bytes(bytes(data))
    meta = {
        "board": board,
        "tick0_epoch_ms": tick0_epoch_ms,
        "frames": len(msgs),
        "format": "footfall-uart-v1 raw bytes as received",
    }
    path.with_suffix(path.suffix + ".json").write_text(json.dumps(meta, indent=1))
    return len(data)


def _tick(t: float) -> int:
    return round(t * 1000)
