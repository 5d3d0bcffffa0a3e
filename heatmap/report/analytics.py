"""Store metrics from the database: door footfall and occupancy, RF tracks,
visitors vs passersby, dwell, zone person-seconds.

Fusion rules (docs/architecture.md): door beams give the true footfall; RF gives where
people went. RF person-seconds are scaled by the people each device inside
stands for, fitted against the door-derived occupancy over time (:func:`fuse`),
with the devices that are inside whatever the door says (staff) held apart.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from heatmap.aggregator.door_counts import DoorFlow
from heatmap.aggregator.door_counts import door_flow as door_flow  # the report reads it here
from heatmap.aggregator.fusion import FUSION_MIN_BINS as FUSION_MIN_BINS
from heatmap.aggregator.fusion import Fusion, fit_occupancy
from heatmap.localizers.localize import Located, Windows
from heatmap.spatial.floorplan import FloorPlan
from heatmap.spatial.walkable_grid import WalkableGrid
from heatmap.spatial.zones import zone_index

VISITOR_MIN_INSIDE_S = 30
"""a device is a visitor once it spent this long (posterior-weighted) inside"""


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
    zi = zone_index(plan, grid.centers)
    inz = zi >= 0
    per_zone = np.bincount(zi[inz], person_seconds[inz], minlength=len(plan.zones))
    return {z.id: float(per_zone[i]) for i, z in enumerate(plan.zones)}


FUSION_BIN_S = 300
"""time bins of the occupancy fit, s"""


def fuse(win: Windows, loc: Located, door: DoorFlow, bin_s: int = FUSION_BIN_S) -> Fusion:
    """Fit RF devices inside per time bin as ``devices_per_visitor × door occupancy +
    resident_devices`` (least squares, both ≥ 0) and scale by ``1 / devices_per_visitor``.

    A plain ratio of totals (door person-seconds / RF device-seconds) counts the
    staff's phones as visitors' and comes out low by their share (a quarter of
    the demo's inside time), shrinking every zone's person-seconds by as much.
    With fewer than ``FUSION_MIN_BINS`` bins, or a door occupancy that does not
    change, the fit cannot separate the two and the plain ratio is used.
    """
    n_sec = len(door.occupancy)
    t = (np.asarray(win.t_ms, np.int64) - door.t0_ms) // 1000
    ok = (t >= 0) & (t < n_sec)
    w_s = win.window_ms / 1000
    rf_total = float((loc.p_inside[ok] * w_s).sum())
    n_bins = n_sec // bin_s
    b = t[ok] // bin_s
    keep = b < n_bins
    rf = np.bincount(b[keep], loc.p_inside[ok][keep] * w_s, minlength=n_bins) / bin_s
    occ = door.occupancy[: n_bins * bin_s].reshape(n_bins, bin_s).mean(axis=1)
    return fit_occupancy(occ, rf, door.person_seconds, rf_total)


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
    zi = zone_index(plan, loc.mean_xy[ble])
    inside = zi >= 0
    _, codes = np.unique(win.pid[ble][inside], return_inverse=True)
    n_codes = int(codes.max(initial=0)) + 1
    pairs = np.unique(zi[inside] * n_codes + codes.ravel())  # distinct (zone, pseudonym)
    per_zone = np.bincount(pairs // n_codes, minlength=len(plan.zones))
    return {z.id: int(per_zone[i]) for i, z in enumerate(plan.zones)}
