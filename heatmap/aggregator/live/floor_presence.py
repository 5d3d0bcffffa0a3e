"""Floor tiles: exact presence where they lie, from their press / release events.

A tile is pressed while someone stands on it, so the seconds it was pressed in a
period are person-seconds on that tile (the simulator's boards and real pressure
tiles alike report one press per foot-print sized tile). The live aggregator puts
these in place of the RF estimate on the grid cells the tile arrays cover.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from heatmap.spatial.floorplan import FloorPlan
from heatmap.spatial.walkable_grid import WalkableGrid


@dataclass(frozen=True)
class TilePresence:
    covered: NDArray[np.bool_]
    """(cells,) grid cells whose centre lies on a tile array"""
    person_seconds: NDArray[np.float64]
    """(cells,) pressed tile-seconds landing in each grid cell"""
    presses: NDArray[np.int64]
    """(cells,) presses that began in each grid cell (people stepping on)"""


def tile_presence(
    conn: sqlite3.Connection,
    plan: FloorPlan,
    grid: WalkableGrid,
    t0_ms: int,
    t1_ms: int,
    since_ms: int,
) -> TilePresence:
    """Pressed seconds per grid cell in [t0, t1); a tile's state at t0 from its events
    since ``since_ms`` (the local midnight: the floor is empty then)."""
    n = grid.nx * grid.ny
    covered = np.zeros(n, bool)
    ps = np.zeros(n)
    presses = np.zeros(n, np.int64)
    for arr in plan.tiles:
        x0, y0, x1, y1 = arr.bounds
        cx, cy = grid.centers[:, 0], grid.centers[:, 1]
        on = (cx >= x0) & (cx < x1) & (cy >= y0) & (cy < y1)
        covered |= on
        rows = conn.execute(
            "SELECT t_ms, tile, state FROM floor_events WHERE array_id = ? AND t_ms >= ? "
            "AND t_ms < ? ORDER BY tile, t_ms",
            (arr.id, since_ms, t1_ms),
        ).fetchall()
        if not rows:
            continue
        ev = np.asarray(rows, np.int64)
        for tile in np.unique(ev[:, 1]):
            if not 0 <= tile < arr.cols * arr.rows:
                continue
            e = ev[ev[:, 1] == tile]
            pressed_s, n_press = _pressed(e[:, 0], e[:, 2], t0_ms, t1_ms)
            tx0, ty0, tx1, ty1 = arr.tile_rect(int(tile))
            cell = grid.cells_of(np.array([[(tx0 + tx1) / 2, (ty0 + ty1) / 2]]))[0]
            ps[cell] += pressed_s
            presses[cell] += n_press
    return TilePresence(covered, ps, presses)


def _pressed(t: NDArray[np.int64], state: NDArray[np.int64], t0: int, t1: int) -> tuple[float, int]:
    """Seconds pressed within [t0, t1) and presses starting in it, from one tile's
    time-ordered (t, state) changes (state carried from before t0)."""
    total = 0
    n_press = 0
    down: int | None = None
    for ti, s in zip(t.tolist(), state.tolist(), strict=True):
        if s and down is None:
            down = ti
            n_press += ti >= t0
        elif not s and down is not None:
            a, b = max(down, t0), min(ti, t1)
            total += max(b - a, 0)
            down = None
    if down is not None:
        total += max(t1 - max(down, t0), 0)
    return total / 1000.0, n_press
