"""Store metrics from the database: door footfall and occupancy, RF tracks,
visitors vs passersby, dwell, zone person-seconds.

Fusion rules (DESIGN.md): door beams give the true footfall; RF gives where
people went. RF person-seconds are scaled so the in-store total equals the
door-derived occupancy integral (devices → people).
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

import numpy as np
import shapely
from numpy.typing import NDArray

from heatmap.floorplan import FloorPlan
from heatmap.localize import Located, Windows
from heatmap.walkable_grid import WalkableGrid

VISITOR_MIN_INSIDE_S = 30
"""a device is a visitor once it spent this long (posterior-weighted) inside"""


@dataclass(frozen=True)
class DoorFlow:
    t0_ms: int
    ins: int
    outs: int
    occupancy: NDArray[np.int64]
    """people inside at each second after ``t0_ms`` (door in - out, floored at 0)"""

    @property
    def person_seconds(self) -> float:
        return float(self.occupancy.sum())

    @property
    def mean_dwell_s(self) -> float:
        """Little's law: mean time in store = occupancy integral / arrivals."""
        return self.person_seconds / self.ins if self.ins else 0.0


def door_flow(db: sqlite3.Connection, t0_ms: int, t1_ms: int) -> DoorFlow:
    rows = np.array(
        db.execute(
            "SELECT t_ms, dir FROM door_events WHERE t_ms >= ? AND t_ms < ? ORDER BY t_ms",
            (t0_ms, t1_ms),
        ).fetchall(),
        dtype=np.int64,
    )
    n = max((t1_ms - t0_ms) // 1000, 1)
    delta = np.zeros(n, np.int64)
    if len(rows):
        np.add.at(delta, (rows[:, 0] - t0_ms) // 1000, rows[:, 1])
    occ = np.maximum(np.cumsum(delta), 0)
    ins = int((rows[:, 1] > 0).sum()) if len(rows) else 0
    return DoorFlow(t0_ms, ins, len(rows) - ins, occ)


@dataclass(frozen=True)
class DeviceTracks:
    visitors: int
    """devices (pseudonyms) classified as visitors"""
    passersby: int
    """devices only ever seen outside"""
    entered: int
    """visitor devices whose track starts outside and then goes in (seen entering)"""
    dwell_s: NDArray[np.float64]
    """in-store time of visitor devices seen both entering and leaving"""


def device_tracks(win: Windows, loc: Located) -> DeviceTracks:
    """Classify BLE pseudonyms from their windows' inside probabilities."""
    ble = np.flatnonzero(win.band == "ble")
    if not len(ble):
        return DeviceTracks(0, 0, 0, np.zeros(0))
    pid = win.pid[ble]
    order = np.lexsort((win.t_ms[ble], pid))
    pid, t, p_in = pid[order], win.t_ms[ble][order], loc.p_inside[ble][order]
    starts = np.flatnonzero(np.r_[True, pid[1:] != pid[:-1]])
    ends = np.r_[starts[1:], len(pid)]
    w_s = win.window_ms / 1000
    visitors = passersby = entered = 0
    dwell = []
    for s, e in zip(starts, ends, strict=True):
        pi = p_in[s:e]
        if pi.sum() * w_s >= VISITOR_MIN_INSIDE_S:
            visitors += 1
            inside = pi > 0.5
            if not inside[0] and inside.any():
                entered += 1
                if not inside[-1]:
                    first = int(np.argmax(inside))
                    last = len(inside) - 1 - int(np.argmax(inside[::-1]))
                    dwell.append((t[s + last] - t[s + first]) / 1000 + w_s)
        elif pi.max() < 0.5:
            passersby += 1
    return DeviceTracks(visitors, passersby, entered, np.asarray(dwell, float))


def zone_person_seconds(
    plan: FloorPlan, grid: WalkableGrid, person_seconds: NDArray[np.float64]
) -> dict[str, float]:
    pts = shapely.points(grid.centers)
    return {z.id: float(person_seconds[shapely.contains(z.polygon, pts)].sum()) for z in plan.zones}


def fuse_scale(grid: WalkableGrid, rf_person_seconds: NDArray[np.float64], door: DoorFlow) -> float:
    """Factor turning RF device-seconds inside into people-seconds (door counts).

    Staff phones are inside all day but never cross the door, so they inflate the
    RF side and the factor comes out low by their share (not yet excluded).
    """
    rf_inside = float(rf_person_seconds[grid.inside].sum())
    if rf_inside <= 0 or door.person_seconds <= 0:
        return 1.0
    return door.person_seconds / rf_inside


def cell_sum(
    grid: WalkableGrid, per_cell: NDArray[np.float64], cell_m: float
) -> NDArray[np.float64]:
    """Re-bin a per-cell grid to coarser square cells of ``cell_m`` (sums), (rows, cols)."""
    f = max(round(cell_m / grid.cell_m), 1)
    a = per_cell.reshape(grid.ny, grid.nx)
    ny, nx = grid.ny // f * f, grid.nx // f * f
    return a[:ny, :nx].reshape(ny // f, f, nx // f, f).sum(axis=(1, 3))


def zone_devices(plan: FloorPlan, win: Windows, loc: Located) -> dict[str, int]:
    """Distinct BLE pseudonyms with a window located in each zone (for k-anonymity)."""
    ble = win.band == "ble"
    from heatmap.flows import zone_index

    zi = zone_index(plan, loc.mean_xy[ble])
    pids = win.pid[ble]
    inside = zi >= 0
    _, codes = np.unique(pids[inside], return_inverse=True)
    pairs = np.unique(zi[inside] * (int(codes.max(initial=0)) + 1) + codes.ravel())
    per_zone = np.bincount(pairs // (int(codes.max(initial=0)) + 1), minlength=len(plan.zones))
    return {z.id: int(per_zone[i]) for i, z in enumerate(plan.zones)}
