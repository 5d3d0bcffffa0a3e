"""Store metrics from the database: door footfall and occupancy, RF tracks,
visitors vs passersby, dwell, zone person-seconds.

Fusion rules (docs/architecture.md): door beams give the true footfall; RF gives where
people went. RF person-seconds are scaled by the people each device inside
stands for, fitted against the door-derived occupancy over time (:func:`fuse`),
with the devices that are inside whatever the door says (staff) held apart.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.optimize
from numpy.typing import NDArray

from heatmap.localizers.localize import Located, Windows
from heatmap.report.flows import zone_index
from heatmap.spatial.floorplan import FloorPlan
from heatmap.spatial.walkable_grid import WalkableGrid

VISITOR_MIN_INSIDE_S = 30
"""a device is a visitor once it spent this long (posterior-weighted) inside"""


@dataclass(frozen=True)
class DoorFlow:
    t0_ms: int
    ins: int
    """people in through the doors: counted, plus those the exits imply (``implied_ins``)"""
    outs: int
    occupancy: NDArray[np.floating[Any]]
    """people inside at each second after ``t0_ms``, never below 0 (:func:`door_flow`)"""
    implied_ins: int = 0
    """ins the beams missed (two people crossing as one), implied by more exits than
    entries: part of ``ins``"""

    @property
    def person_seconds(self) -> float:
        return float(self.occupancy.sum())

    @property
    def mean_dwell_s(self) -> float:
        """Little's law: mean time in store = occupancy integral / arrivals."""
        return self.person_seconds / self.ins if self.ins else 0.0


def door_flow(
    db: sqlite3.Connection, t0_ms: int, t1_ms: int, empty_ms: int | None = None
) -> DoorFlow:
    """Footfall and occupancy over [t0, t1) from the door events, counted from
    ``empty_ms`` (≤ t0; default t0), a time the store was empty (the local midnight
    before the period: door events are kept, they name nobody).

    Beams count two people crossing together as one. A lost exit only leaves the
    occupancy high until the store empties; a lost entry makes it run low for the
    rest of the day (on the benches' second layout 6 of 204 ins were lost, the
    occupancy fell 5–6 behind and Little's law came out −32 %). Occupancy cannot be
    negative, so every exit the count cannot explain is an entry the beams lost: by
    time t at least ``R(t)`` = the most exits ever in excess of entries were. Those
    are added, spread like the counted entries up to the lowest point of the count
    (more arrivals, more people crossing together), never fewer than ``R(t)``.
    """
    start = t0_ms if empty_ms is None else min(empty_ms, t0_ms)
    rows = np.array(
        db.execute(
            "SELECT t_ms, dir FROM door_events WHERE t_ms >= ? AND t_ms < ? ORDER BY t_ms",
            (start, t1_ms),
        ).fetchall(),
        dtype=np.int64,
    ).reshape(-1, 2)
    n = max((t1_ms - start) // 1000, 1)
    sec = np.minimum((rows[:, 0] - start) // 1000, n - 1)
    delta = np.bincount(sec, rows[:, 1], minlength=n)
    arrivals = np.cumsum(np.bincount(sec[rows[:, 1] > 0], minlength=n))
    count = np.cumsum(delta)
    must = np.maximum.accumulate(np.maximum(-count, 0.0))  # R(t): ins lost by t, at least
    lost = float(must[-1])
    if lost > 0:
        low = int(np.argmax(must))  # where the count first reaches its lowest
        spread = lost * np.minimum(arrivals / max(int(arrivals[low]), 1), 1.0)
        implied = np.maximum(spread, must)
    else:
        implied = np.zeros(n)
    occ = count + implied
    k = int((t0_ms - start) // 1000)
    in_period = rows[:, 0] >= t0_ms
    counted_in = int((rows[in_period, 1] > 0).sum())
    counted_out = int((rows[in_period, 1] < 0).sum())
    before = float(implied[k - 1]) if k > 0 else 0.0
    extra = round(float(implied[-1]) - before)
    return DoorFlow(t0_ms, counted_in + extra, counted_out, occ[k:], extra)


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
FUSION_MIN_BINS = 6


@dataclass(frozen=True)
class Fusion:
    """How RF device-seconds inside turn into people-seconds (see :func:`fuse`)."""

    scale: float
    """people-seconds per RF device-second inside"""
    devices_per_visitor: float
    """RF devices inside per person the door says is inside (slope of the fit)"""
    resident_devices: float
    """devices inside regardless of door occupancy (intercept): staff, who are in
    all period and never counted by the door"""
    bins: int
    """time bins fitted (0: too few or no occupancy change, plain ratio used)"""


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
    plain = door.person_seconds / rf_total if rf_total > 0 and door.person_seconds > 0 else 1.0
    n_bins = n_sec // bin_s
    if n_bins < FUSION_MIN_BINS or door.person_seconds <= 0 or rf_total <= 0:
        return Fusion(plain, 1 / plain, 0.0, 0)
    b = t[ok] // bin_s
    keep = b < n_bins
    rf = np.bincount(b[keep], loc.p_inside[ok][keep] * w_s, minlength=n_bins) / bin_s
    occ = door.occupancy[: n_bins * bin_s].reshape(n_bins, bin_s).mean(axis=1)
    if occ.std() < 1e-9:
        return Fusion(plain, 1 / plain, 0.0, 0)
    fit = scipy.optimize.lsq_linear(
        np.column_stack([occ, np.ones(n_bins)]), rf, bounds=([1e-6, 0.0], [np.inf, np.inf])
    )
    slope, resident = (float(v) for v in fit.x)
    return Fusion(1.0 / slope, slope, resident, n_bins)


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
