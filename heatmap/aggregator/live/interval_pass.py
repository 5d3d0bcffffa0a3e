"""One interval's windows located, with the interval before it as the smoother's lead-in.

The smoother's state is carried across intervals the way a fixed-lag smoother
carries it, in block form: each interval [t0, t1) is smoothed together with the
``context`` before it (rows located and counted by the previous interval), so a
device walking through the boundary enters the interval with the position its
recent past says, not with a flat prior; the lead-in windows count for nothing
(duration 0) and are not written again. The interval's windows are then final:
the day is never re-localized from scratch, and each window is counted once.

What comes out (:class:`IntervalTracks`): per BLE window of the interval, its
pseudonym, time, posterior-mean position, probability of being inside, zone
and grid cell; and the interval's RF device-seconds per grid cell. Person-seconds
and every RF figure come from BLE, as in the batch report (phones advertise
continuously; Wi-Fi probe bursts come minutes apart).
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from heatmap.aggregator.live.calibration_state import LiveCalibration
from heatmap.aggregator.obs_reader import read_observations, read_windows
from heatmap.localizers.localize import locate
from heatmap.spatial.floorplan import FloorPlan
from heatmap.spatial.motion import MotionModel
from heatmap.spatial.walkable_grid import WalkableGrid
from heatmap.spatial.zones import zone_index

F = NDArray[np.float64]


@dataclass(frozen=True)
class IntervalTracks:
    t0_ms: int
    t1_ms: int
    pid: NDArray[np.str_]
    t_ms: NDArray[np.int64]
    xy: F
    p_in: F
    zone: NDArray[np.int64]
    """index into the plan's zones, -1 outside every zone (and when more likely outside)"""
    cell: NDArray[np.int64]
    cells: NDArray[np.float32]
    """(nx·ny,) device-seconds per grid cell in the interval"""
    rf_inside_s: float
    """device-seconds inside the store outline in the interval"""
    rows_read: int

    def __len__(self) -> int:
        return len(self.pid)


MotionKey = tuple[int, tuple[float, ...]]
_MOTION: dict[MotionKey, MotionModel] = {}
"""motion models by (grid, parameters): building one costs an eigendecomposition"""


def _motion(grid: WalkableGrid, cal: LiveCalibration, gap_s: float) -> MotionModel:
    p = cal.motion
    key = (
        id(grid),
        (
            p.walk_diffusion_m2_s,
            p.dwell_diffusion_m2_s,
            p.mean_dwell_s,
            p.mean_walk_s,
            p.truncate,
            gap_s,
        ),
    )
    mm = _MOTION.get(key)
    if mm is None:
        if len(_MOTION) > 8:
            _MOTION.clear()
        mm = _MOTION[key] = MotionModel(grid, p, min_gap_s=gap_s)
    return mm


def locate_interval(
    db: sqlite3.Connection,
    plan: FloorPlan,
    grid: WalkableGrid,
    cal: LiveCalibration,
    t0_ms: int,
    t1_ms: int,
    context_ms: int,
    window_ms: int,
) -> IntervalTracks:
    """Locate the BLE windows of [t0, t1) (read-only connection ``db``)."""
    model = cal.model
    node_index = {n: i for i, n in enumerate(model.node_ids)}
    codes = {p: i for i, p in enumerate(sorted(cal.beacons))}
    # and whatever can be a node beacon (beacon kind, public address: no phone is),
    # also before the first fit has found which they are
    read_observations(db, t0_ms - context_ms, t1_ms, node_index, beacons_only=True, pid_codes=codes)
    exclude = set(codes.values())
    win, n_rows = read_windows(
        db, t0_ms - context_ms, t1_ms, node_index, model.n_nodes, window_ms, codes, exclude
    )
    n_cells = grid.nx * grid.ny
    win = win.take(np.flatnonzero(win.band == "ble"))
    if len(win) == 0:
        e = np.zeros(0)
        return IntervalTracks(
            t0_ms,
            t1_ms,
            np.zeros(0, str),
            e.astype(np.int64),
            np.zeros((0, 2)),
            e,
            e.astype(np.int64),
            e.astype(np.int64),
            np.zeros(n_cells, np.float32),
            0.0,
            n_rows,
        )
    own = win.t_ms >= t0_ms
    dur = np.where(own, window_ms / 1000, 0.0)
    loc = locate(
        win,
        model,
        grid,
        duration_s=dur,
        motion=_motion(grid, cal, window_ms / 1000),
        workers=1,
    )
    names = np.array(list(codes), dtype=str)
    idx = np.flatnonzero(own)
    xy = loc.mean_xy[idx]
    return IntervalTracks(
        t0_ms,
        t1_ms,
        names[np.asarray(win.pid)[idx]],
        np.asarray(win.t_ms)[idx],
        xy,
        loc.p_inside[idx],
        # a zone is a part of the store: a window more likely outside is in none (the
        # mean of a walker on the street right by the door lies just inside it)
        np.where(loc.p_inside[idx] > 0.5, zone_index(plan, xy), -1),
        grid.cells_of(xy),
        loc.person_seconds.astype(np.float32),
        float(loc.person_seconds[grid.inside].sum()),
        n_rows,
    )
