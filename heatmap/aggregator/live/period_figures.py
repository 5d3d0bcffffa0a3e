"""A period's aggregates (15-minute slot, local hour, local day) from the working state.

Time-based figures come from the period itself: door counts and occupancy (the
beams' events, counted from the local midnight), RF device-seconds per grid cell
(the processed intervals), floor tiles. Session figures (visitors and
passers-by as devices, visits and their dwell, zone stays, moves) come from the
sessions whose last window falls in the period (:mod:`.sessions`), so they add up
over periods. RF turns into people with the fusion of the day so far
(:mod:`heatmap.aggregator.fusion`): people per device inside, and the resident
devices (staff), who are counted apart; the sessions that stay put (a cashier's
phone, :mod:`.resident_devices`) are taken out of the visitors' heatmap.

Every figure goes through :mod:`.k_guard`; the heatmap keeps a cell only where
at least k distinct sessions were located in or next to it (its 3 × 3
neighbourhood) during the period. Nothing pseudonymous is in a payload.

Four aggregates per period (``kind``, ``entity``): ``footfall``/``store``,
``zone``/each zone id, ``flows``/``store``, ``heatmap``/``store``.
"""

from __future__ import annotations

import itertools
import sqlite3
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from heatmap.aggregator import rf_live
from heatmap.aggregator.door_counts import DoorFlow, door_flow
from heatmap.aggregator.fusion import Fusion, fit_occupancy
from heatmap.aggregator.hour_aggregates import period as period_iso
from heatmap.aggregator.live import k_guard, periods
from heatmap.aggregator.live.floor_presence import tile_presence
from heatmap.aggregator.live.resident_devices import (
    RESIDENT_LOOKBACK_MS,
    Residents,
    static_sessions,
)
from heatmap.aggregator.live.sessions import Sessions, cut
from heatmap.aggregator.live.settings import LiveSettings
from heatmap.aggregator.live.tracks_table import read_cells, read_tracks
from heatmap.spatial.floorplan import FloorPlan
from heatmap.spatial.walkable_grid import WalkableGrid
from heatmap.spatial.zones import zone_index

F = NDArray[np.float64]
SESSION_REACH_MS = 4 * 3_600_000
"""a session's windows are read back this far before the period (longer ones are staff)"""
DWELL_BUCKETS_MIN = (0, 2, 5, 10, 20, 30, 60)
"""visit dwell buckets, lower edges in minutes (the last is open)"""
PERCENTILES = (25, 50, 75, 90)


@dataclass(frozen=True)
class Aggregate:
    kind: str
    entity: str
    t0_ms: int
    t1_ms: int
    payload: dict[str, Any]


def bucket_labels() -> list[str]:
    e = DWELL_BUCKETS_MIN
    return [f"{a}-{b} min" for a, b in itertools.pairwise(e)] + [f"{e[-1]}+ min"]


def dwell_buckets(dwell_s: F, k: int) -> dict[str, int | None]:
    edges = np.asarray(DWELL_BUCKETS_MIN, float) * 60
    idx = np.searchsorted(edges, dwell_s, side="right") - 1
    n = np.bincount(np.clip(idx, 0, len(edges) - 1), minlength=len(edges))
    return {lab: k_guard.count(int(c), k) for lab, c in zip(bucket_labels(), n, strict=True)}


def _percentiles(x: F, k: int) -> dict[str, float | None]:
    if len(x) < k:
        return {f"p{p}": None for p in PERCENTILES}
    v = np.percentile(x, PERCENTILES)
    return {f"p{p}": round(float(q), 1) for p, q in zip(PERCENTILES, v, strict=True)}


@dataclass(frozen=True)
class DayFusion:
    fusion: Fusion
    door: DoorFlow | None
    """door counts from the local midnight to the period's end"""


def day_fusion(
    conn: sqlite3.Connection,
    plan: FloorPlan,
    grid: WalkableGrid,
    s: LiveSettings,
    tz: str,
    t1_ms: int,
) -> DayFusion:
    """People per RF device and the residents, fitted on the day's intervals up to t1."""
    day0 = periods.floor_local(t1_ms - 1, "day", tz)
    rows = conn.execute(
        "SELECT t0_ms, t1_ms, rf_inside_s FROM live_intervals WHERE t0_ms >= ? "
        "AND t1_ms <= ? ORDER BY t0_ms",
        (day0, t1_ms),
    ).fetchall()
    if not plan.doors:
        return DayFusion(fit_occupancy(np.zeros(0), np.zeros(0), 0.0, 0.0), None)
    door = door_flow(conn, day0, t1_ms, empty_ms=day0)
    if not rows:
        return DayFusion(fit_occupancy(np.zeros(0), np.zeros(0), 0.0, 0.0), door)
    occ, rf = [], []
    for a, b, rf_s in rows:
        lo, hi = (a - day0) // 1000, (b - day0) // 1000
        occ.append(float(door.occupancy[lo:hi].mean()) if hi > lo else 0.0)
        rf.append(rf_s / ((b - a) / 1000))
    rf_total = float(sum(r * ((b - a) / 1000) for r, (a, b, _) in zip(rf, rows, strict=True)))
    lo = (rows[0][0] - day0) // 1000
    hi = (rows[-1][1] - day0) // 1000
    fusion = fit_occupancy(
        np.asarray(occ), np.asarray(rf), float(door.occupancy[lo:hi].sum()), rf_total
    )
    return DayFusion(fusion, door)


def compute(
    conn: sqlite3.Connection,
    plan: FloorPlan,
    grid: WalkableGrid,
    s: LiveSettings,
    tz: str,
    unit: periods.Unit,
    t0_ms: int,
    t1_ms: int,
    before: tuple[int, int] = (0, 0),
) -> list[Aggregate]:
    """The period's four kinds of aggregate (read from ``conn``; nothing written).

    ``before``: (sessions seen entering, door ins) of the day before ``t0_ms``: with
    the period's own they say how many devices are seen walking in per visitor, which
    turns passer-by devices into people (as the batch report does over its period).
    """
    k = s.k
    label = period_iso(t0_ms, t1_ms, tz)
    span_s = (t1_ms - t0_ms) / 1000
    n_cells = grid.nx * grid.ny
    day0 = periods.floor_local(t0_ms, "day", tz)
    df = day_fusion(conn, plan, grid, s, tz, t1_ms)
    fus = df.fusion
    people_per_device = fus.scale if df.door is not None else 1.0
    door = door_flow(conn, t0_ms, t1_ms, empty_ms=day0) if plan.doors else None
    cells = read_cells(conn, t0_ms, t1_ms, n_cells)
    rf_inside_s = float(cells.rf_inside_s.sum())
    # sessions that ended in the period, whole; who was located where in it; the
    # sessions that stayed put (residents)
    ses, pairs, residents = period_sessions(conn, s, tz, t0_ms, t1_ms, n_cells)
    ending = np.ones(len(ses), bool)
    # heatmap: RF device-seconds → people, residents out, tiles in, k-guarded
    rf_cells = np.maximum(cells.cells - residents.cells, 0.0)
    staff_removed = residents.sessions > 0
    heat = rf_cells * people_per_device
    tiles = tile_presence(conn, plan, grid, t0_ms, t1_ms, day0) if plan.tiles else None
    if tiles is not None:
        heat = np.where(tiles.covered, tiles.person_seconds, heat)
    contributors = _cell_devices(grid, pairs)
    if tiles is not None:
        contributors = np.where(tiles.covered, tiles.presses, contributors)
    kept = (contributors >= k) & (heat > 0)
    # devices located inside the store in the period (the group of its RF figures)
    inside_devices = len(np.unique(pairs[grid.inside[pairs[:, 1]], 0])) if len(pairs) else 0
    entered = int((ses.entered & ending).sum()) + before[0]
    ins = (door.ins if door is not None else 0) + before[1]
    per_visitor = entered / ins if ins and entered else None
    store = _store_payload(
        label,
        unit,
        k,
        span_s,
        door,
        ses,
        ending,
        rf_inside_s,
        people_per_device,
        fus,
        staff_removed,
        per_visitor,
        inside_devices,
    )
    if door is None:  # no beams: the RF-only count (issue 20), logic in rf_live
        rf_live.apply(conn, store, unit, t0_ms, t1_ms, k)
    heat_payload = {
        "v": 1,
        "period": label,
        "unit": unit,
        "k": k,
        "grid": {
            "cell_m": grid.cell_m,
            "nx": grid.nx,
            "ny": grid.ny,
            "x0": float(grid.centers[0, 0] - grid.cell_m / 2),
            "y0": float(grid.centers[0, 1] - grid.cell_m / 2),
        },
        "unit_of_cells": "person-seconds",
        "cells": {str(int(i)): round(float(heat[i]), 1) for i in np.flatnonzero(kept)},
        "cells_suppressed": int(((heat > 0) & ~kept).sum()),
        "staff_removed": staff_removed,
        "tiles": tiles is not None,
    }
    # the period's own (seen entering, door ins), for the processor's day tally
    store["_tally"] = [entered - before[0], ins - before[1]]
    out = [Aggregate("footfall", "store", t0_ms, t1_ms, store)]
    out += _zones(plan, grid, label, unit, k, span_s, heat, kept, ses, ending, t0_ms, t1_ms)
    out.append(_flows(plan, label, unit, k, ses, ending, t0_ms, t1_ms))
    out.append(Aggregate("heatmap", "store", t0_ms, t1_ms, heat_payload))
    return out


def period_sessions(
    conn: sqlite3.Connection, s: LiveSettings, tz: str, t0_ms: int, t1_ms: int, n_cells: int
) -> tuple[Sessions, NDArray[np.int64], Residents]:
    """The sessions whose last window lies in [t0, t1), whole; the distinct
    (pseudonym code, cell) pairs located in the period; the static sessions'
    device-seconds per cell in it (:mod:`.resident_devices`).

    Read an hour at a time (a day's located windows at once would be the largest
    thing the aggregator ever holds): each hour's sessions are read with their
    windows up to ``SESSION_REACH_MS`` before it."""
    parts: list[Sessions] = []
    pair_parts: list[NDArray[np.int64]] = []
    codes: dict[str, int] = {}
    residents = Residents(np.zeros(n_cells), 0)
    for a, b in periods.spans(t0_ms, t1_ms, "hour", tz):
        a, b = max(a, t0_ms), min(b, t1_ms)
        # and the devices that went quiet in the 10 minutes before: a resident's previous
        # address, which makes a younger one static (resident_devices._continued)
        tr = read_tracks(conn, a, b, SESSION_REACH_MS, RESIDENT_LOOKBACK_MS + s.settle_ms)
        ses = cut(tr, s.window_ms, s.session_gap_ms)
        residents += static_sessions(tr, n_cells, s.window_ms, s.session_gap_ms, a, b)
        last = ses.end_ms - s.window_ms
        parts.append(ses.select((last >= a) & (last < b)))
        here = (tr.t_ms >= a) & (tr.t_ms < b)
        if here.any():
            pid_code = np.fromiter(
                (codes.setdefault(p, len(codes)) for p in tr.pid[here].tolist()), np.int64
            )
            pair_parts.append(np.unique(np.column_stack([pid_code, tr.cell[here]]), axis=0))
    pairs = np.unique(np.vstack(pair_parts), axis=0) if pair_parts else np.zeros((0, 2), np.int64)
    return Sessions.concat(parts), pairs, residents


def _cell_devices(grid: WalkableGrid, pairs: NDArray[np.int64]) -> F:
    """Distinct pseudonyms located in each cell's 3 × 3 neighbourhood, from distinct
    (pseudonym code, cell) pairs."""
    n = grid.nx * grid.ny
    if not len(pairs):
        return np.zeros(n)
    who, c = pairs[:, 0], pairs[:, 1]
    r, q = np.divmod(c, grid.nx)
    owners = []
    for dr in (-1, 0, 1):
        for dq in (-1, 0, 1):
            rr, qq = r + dr, q + dq
            ok = (rr >= 0) & (rr < grid.ny) & (qq >= 0) & (qq < grid.nx)
            owners.append(who[ok] * n + rr[ok] * grid.nx + qq[ok])
    # a pseudonym in two cells of one neighbourhood counts once there
    uniq = np.unique(np.concatenate(owners))
    return np.bincount(uniq % n, minlength=n).astype(float)


def _store_payload(
    label: str,
    unit: str,
    k: int,
    span_s: float,
    door: DoorFlow | None,
    ses: Sessions,
    ending: NDArray[np.bool_],
    rf_inside_s: float,
    ppd: float,
    fus: Fusion,
    staff_removed: bool,
    entered_per_visitor: float | None,
    inside_devices: int,
) -> dict[str, Any]:
    vis = int((ses.visitor & ending).sum())
    pas = int((ses.passerby & ending).sum())
    entered = int((ses.entered & ending).sum())
    dwell = ses.dwell_s[ending & np.isfinite(ses.dwell_s)]
    # devices seen walking in per door visitor turn passer-by devices into people
    passersby = round(pas / entered_per_visitor) if entered_per_visitor else round(pas * ppd)
    if door is not None:
        visitors = door.ins
        occ_mean = float(door.occupancy.mean()) if len(door.occupancy) else 0.0
        occ_max = float(door.occupancy.max()) if len(door.occupancy) else 0.0
        person_s = door.person_seconds
        source = "door"
    else:
        visitors = vis
        occ_mean = rf_inside_s / span_s
        occ_max = None
        person_s = rf_inside_s
        source = "rf"
    capture = visitors / (visitors + passersby) if visitors + passersby else None
    crowd = int(np.ceil(occ_max if occ_max is not None else occ_mean))
    n_people = visitors + passersby
    return {
        "v": 1,
        "period": label,
        "unit": unit,
        "k": k,
        "door_in": k_guard.count(door.ins, k) if door else None,
        "door_out": k_guard.count(door.outs, k) if door else None,
        "door_in_implied": k_guard.count(door.implied_ins, k) if door else None,
        "visitors": k_guard.count(visitors, k),
        "passersby": k_guard.count(passersby, k),
        "capture_rate": k_guard.figure(
            None if capture is None else round(capture, 4), min(visitors, n_people), k
        ),
        # people inside: a figure of as many people as were inside at the most
        "occupancy_mean": k_guard.figure(round(occ_mean, 2), crowd, k),
        "occupancy_max": k_guard.figure(None if occ_max is None else round(occ_max, 1), crowd, k),
        "occupancy_source": source,
        "person_seconds_inside": k_guard.figure(round(person_s, 1), max(visitors, crowd), k),
        "mean_dwell_s": k_guard.figure(
            round(door.mean_dwell_s, 1) if door and door.ins else None, visitors, k
        ),
        "rf": {
            "visitor_devices": k_guard.count(vis, k),
            "passerby_devices": k_guard.count(pas, k),
            "seen_entering": k_guard.count(entered, k),
            "device_seconds_inside": k_guard.figure(round(rf_inside_s, 1), inside_devices, k),
            "people_per_device": round(ppd, 4),
        },
        "visits_ended": k_guard.count(len(dwell), k),
        "dwell_s": _percentiles(dwell, k),
        "dwell_buckets": dwell_buckets(dwell, k),
        "staff_devices": k_guard.count(round(fus.resident_devices), k),
        "staff_removed_from_heatmap": staff_removed,
    }


def _zones(
    plan: FloorPlan,
    grid: WalkableGrid,
    label: str,
    unit: str,
    k: int,
    span_s: float,
    heat: F,
    kept: NDArray[np.bool_],
    ses: Sessions,
    ending: NDArray[np.bool_],
    t0_ms: int,
    t1_ms: int,
) -> list[Aggregate]:
    zi = zone_index(plan, grid.centers)
    end_idx = np.flatnonzero(ending)
    stay_ok = np.isin(ses.stay_session, end_idx)
    visitors = int((ses.visitor & ending).sum())
    out = []
    for i, z in enumerate(plan.zones):
        sel = stay_ok & (ses.stay_zone == i)
        devices = len(np.unique(ses.stay_session[sel]))
        reached = len(np.unique(ses.stay_session[sel & ses.visitor[ses.stay_session]]))
        in_zone = zi == i
        ps = float(heat[in_zone & kept].sum())
        suppressed = int((in_zone & ~kept & (heat > 0)).sum())
        dur = ses.stay_s[sel]
        p = {
            "v": 1,
            "period": label,
            "unit": unit,
            "k": k,
            "zone": z.id,
            "visits": k_guard.figure(int(sel.sum()), devices, k),
            "devices": k_guard.count(devices, k),
            "dwell_p50_s": k_guard.figure(
                round(float(np.median(dur)), 1) if len(dur) else None, devices, k
            ),
            "dwell_p90_s": k_guard.figure(
                round(float(np.percentile(dur, 90)), 1) if len(dur) else None, devices, k
            ),
            "person_seconds": round(ps, 1),
            "occupancy_mean": round(ps / span_s, 3),
            "cells_suppressed": suppressed,
            "reach_share": k_guard.figure(
                round(reached / visitors, 4) if visitors else None, min(reached, visitors), k
            ),
        }
        out.append(Aggregate("zone", z.id, t0_ms, t1_ms, p))
    return out


def _flows(
    plan: FloorPlan,
    label: str,
    unit: str,
    k: int,
    ses: Sessions,
    ending: NDArray[np.bool_],
    t0_ms: int,
    t1_ms: int,
) -> Aggregate:
    end_idx = np.flatnonzero(ending)
    sel = np.isin(ses.stay_session, end_idx)
    e, z = ses.stay_session[sel], ses.stay_zone[sel]
    step = np.flatnonzero(e[1:] == e[:-1])
    n_z = len(plan.zones)
    trans = np.zeros((n_z, n_z), np.int64)
    devices = np.zeros((n_z, n_z), np.int64)
    if len(step):
        src, dst = z[step], z[step + 1]
        np.add.at(trans, (src, dst), 1)
        uniq = np.unique(np.stack([e[step], src, dst], axis=1), axis=0)
        np.add.at(devices, (uniq[:, 1], uniq[:, 2]), 1)
    ids = [z.id for z in plan.zones]
    cells = []
    suppressed = 0
    for i, j in zip(*np.nonzero(trans), strict=True):
        if devices[i, j] >= k:
            cells.append([ids[i], ids[j], int(trans[i, j]), int(devices[i, j])])
        else:
            suppressed += 1
    cells.sort(key=lambda c: (-c[2], c[0], c[1]))
    return Aggregate(
        "flows",
        "store",
        t0_ms,
        t1_ms,
        {
            "v": 1,
            "period": label,
            "unit": unit,
            "k": k,
            "moves": cells,
            "pairs_suppressed": suppressed,
            "sessions_with_stays": k_guard.count(len(np.unique(e)), k),
        },
    )
