"""A period's figures from the stored aggregates: any period, long after the pseudonymous
rows are gone (reports, and the BI figures of the hour and the day in progress).

A period is covered by the largest stored pieces that fit in it: whole local days,
then hours, then 15-minute slots (``footfall/store`` aggregates written by the
live aggregator). Pieces combine as follows:

* counts (door, visitors, passers-by, visits, zone visits and devices, moves) and
  person-seconds add up: session figures are counted in the period a session
  ended, so they add over periods;
* a figure suppressed in a piece (fewer than k) stays out of the sum, and the
  composed figures say how many pieces had suppressed parts;
* dwell percentiles of one piece are its own; over several they come from the
  pieces' merged dwell buckets (interpolated within a bucket; said so);
* zone dwell medians over several pieces are the visit-weighted median of the
  pieces' medians (an approximation, said so);
* the heatmap is the sum of the pieces' kept cells (each kept cell had ≥ k devices).

What comes out is as k-anonymous as what went in: nothing is computed from rows.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
from numpy.typing import NDArray

from heatmap.aggregator.live import periods
from heatmap.aggregator.live.period_figures import DWELL_BUCKETS_MIN, bucket_labels
from heatmap.spatial.floorplan import FloorPlan
from heatmap.spatial.walkable_grid import WalkableGrid, samples_for

F = NDArray[np.float64]
SUMMED = (
    "door_in",
    "door_out",
    "door_in_implied",
    "visitors",
    "passersby",
    "visits_ended",
    "person_seconds_inside",
)


@dataclass
class Piece:
    unit: str
    t0_ms: int
    t1_ms: int
    payloads: dict[tuple[str, str], dict[str, Any]]


@dataclass
class PeriodFigures:
    period: str
    t0_ms: int
    t1_ms: int
    k: int
    pieces: dict[str, int]
    """days, hours, slots the period was built from"""
    missing_s: float
    """seconds of the period with no aggregate (before the store's first data, or not yet
    processed)"""
    store: dict[str, Any]
    zones: dict[str, dict[str, Any]]
    moves: list[list[Any]]
    cells: F
    """(nx·ny,) person-seconds per grid cell, kept cells of every piece summed"""
    grid: dict[str, Any]
    staff_removed: bool = False
    """every piece's heatmap had the staff's time taken out"""
    suppressed: dict[str, int] = field(default_factory=dict)
    """how many pieces had each figure suppressed"""
    notes: list[str] = field(default_factory=list)


def _pieces(conn: sqlite3.Connection, t0: int, t1: int, tz: str) -> tuple[list[Piece], float]:
    rows = conn.execute(
        "SELECT kind, entity, t0_ms, t1_ms, payload FROM aggregates WHERE t0_ms >= ? "
        "AND t1_ms <= ? AND kind IN ('footfall', 'zone', 'flows', 'heatmap')",
        (t0, t1),
    ).fetchall()
    by_span: dict[tuple[int, int], dict[tuple[str, str], dict[str, Any]]] = {}
    for kind, ent, a, b, pl in rows:
        by_span.setdefault((a, b), {})[(kind, ent)] = json.loads(pl)
    out: list[Piece] = []
    missing = 0.0
    t = t0
    while t < t1:
        for unit in ("day", "hour", "slot"):
            a = periods.floor_local(t, unit, tz)  # type: ignore[arg-type]
            b = periods.next_local(a, unit, tz)  # type: ignore[arg-type]
            if a == t and b <= t1 and ("footfall", "store") in by_span.get((a, b), {}):
                out.append(Piece(unit, a, b, by_span[(a, b)]))
                t = b
                break
        else:
            nxt = min(periods.floor_ms(t, periods.SLOT_MS) + periods.SLOT_MS, t1)
            missing += (nxt - t) / 1000
            t = nxt
    return out, missing


def _add(acc: dict[str, Any], key: str, v: Any, sup: dict[str, int]) -> None:
    if v is None:
        sup[key] = sup.get(key, 0) + 1
    else:
        acc[key] = acc.get(key, 0) + v


def _merged_percentiles(buckets: F, n: int) -> dict[str, float | None]:
    """Percentiles from merged dwell buckets, linear within a bucket (the open one: its
    lower edge)."""
    if n <= 0 or buckets.sum() <= 0:
        return {f"p{p}": None for p in (25, 50, 75, 90)}
    edges = np.asarray(DWELL_BUCKETS_MIN, float) * 60
    cum = np.cumsum(buckets)
    out: dict[str, float | None] = {}
    for p in (25, 50, 75, 90):
        target = p / 100 * cum[-1]
        i = int(np.searchsorted(cum, target))
        lo = edges[i]
        hi = edges[i + 1] if i + 1 < len(edges) else lo
        before = cum[i - 1] if i else 0.0
        frac = (target - before) / buckets[i] if buckets[i] else 0.0
        out[f"p{p}"] = round(float(lo + frac * (hi - lo)), 1)
    return out


def load_period(conn: sqlite3.Connection, plan: FloorPlan, t0: int, t1: int) -> PeriodFigures:
    """The period's figures from the stored aggregates (read-only connection)."""
    tz = plan.timezone
    pieces, missing = _pieces(conn, t0, t1, tz)
    label = f"{_iso(t0, tz)}/{_iso(t1, tz)}"
    sup: dict[str, int] = {}
    store: dict[str, Any] = {}
    labels = bucket_labels()
    buckets = np.zeros(len(labels))
    rf: dict[str, Any] = {}
    occ_max = 0.0
    zones: dict[str, dict[str, Any]] = {z.id: {} for z in plan.zones}
    zone_medians: dict[str, list[tuple[float, float, int]]] = {z.id: [] for z in plan.zones}
    moves: dict[tuple[str, str], list[int]] = {}
    cells: F | None = None
    grid: dict[str, Any] = {}
    k = 5
    for pc in pieces:
        f = pc.payloads[("footfall", "store")]
        k = int(f.get("k", k))
        for key in SUMMED:
            _add(store, key, f.get(key), sup)
        for key in ("visitor_devices", "passerby_devices", "seen_entering"):
            _add(rf, key, f["rf"].get(key), sup)
        if f.get("occupancy_max") is not None:
            occ_max = max(occ_max, float(f["occupancy_max"]))
        for lab in labels:
            v = f["dwell_buckets"].get(lab)
            if v is None:
                sup["dwell_buckets"] = sup.get("dwell_buckets", 0) + 1
            else:
                buckets[labels.index(lab)] += v
        for z in plan.zones:
            zp = pc.payloads.get(("zone", z.id))
            if zp is None:
                continue
            acc = zones[z.id]
            for key in ("visits", "devices", "person_seconds", "cells_suppressed"):
                _add(acc, key, zp.get(key), sup)
            if zp.get("dwell_p50_s") is not None:
                zone_medians[z.id].append(
                    (zp["dwell_p50_s"], zp.get("dwell_p90_s") or 0.0, zp.get("visits") or 0)
                )
        fl = pc.payloads.get(("flows", "store"))
        if fl is not None:
            for a, b, n, d in fl["moves"]:
                m = moves.setdefault((a, b), [0, 0])
                m[0] += n
                m[1] += d
            if fl.get("pairs_suppressed"):
                sup["flow_pairs"] = sup.get("flow_pairs", 0) + fl["pairs_suppressed"]
        hm = pc.payloads.get(("heatmap", "store"))
        if hm is not None:
            g = hm["grid"]
            if cells is None:
                cells, grid = np.zeros(g["nx"] * g["ny"]), g
            if g["nx"] * g["ny"] == len(cells):
                for i, v in hm["cells"].items():
                    cells[int(i)] += v
            if hm.get("cells_suppressed"):
                sup["heatmap_cells"] = sup.get("heatmap_cells", 0) + hm["cells_suppressed"]
    span_s = (t1 - t0) / 1000 - missing
    ps = store.get("person_seconds_inside")
    store["occupancy_mean"] = round(ps / span_s, 2) if ps is not None and span_s > 0 else None
    store["occupancy_max"] = occ_max if pieces else None
    vis, pas = store.get("visitors"), store.get("passersby")
    store["capture_rate"] = round(vis / (vis + pas), 4) if vis and pas is not None else None
    store["mean_dwell_s"] = round(ps / vis, 1) if ps and vis else None
    store["rf"] = rf
    notes: list[str] = []
    if len(pieces) == 1:
        only = pieces[0].payloads[("footfall", "store")]
        store["dwell_s"] = only["dwell_s"]
    else:
        store["dwell_s"] = _merged_percentiles(buckets, int(buckets.sum()))
        if pieces:
            notes.append("dwell percentiles interpolated from the pieces' dwell buckets")
    store["dwell_buckets"] = {lab: int(v) for lab, v in zip(labels, buckets, strict=True)}
    for zid, acc in zones.items():
        meds = zone_medians[zid]
        if meds:
            w = np.asarray([m[2] for m in meds], float)
            acc["dwell_p50_s"] = _weighted_median([m[0] for m in meds], w)
            acc["dwell_p90_s"] = _weighted_median([m[1] for m in meds], w)
        else:
            acc["dwell_p50_s"] = acc["dwell_p90_s"] = None
        reach = acc.get("devices")
        acc["reach_share"] = (
            round(reach / rf["visitor_devices"], 4) if reach and rf.get("visitor_devices") else None
        )
    if any(len(m) > 1 for m in zone_medians.values()):
        notes.append("zone dwell medians: visit-weighted median of the pieces' medians")
    if missing > 0:
        notes.append(f"{missing / 3600:.1f} h of the period have no aggregates")
    mv = sorted(([a, b, n, d] for (a, b), (n, d) in moves.items()), key=lambda m: (-m[2], m[0]))
    if cells is None:
        g = WalkableGrid.build(plan, cell_m=1.0, samples=samples_for(1.0))
        cells = np.zeros(g.nx * g.ny)
        grid = {"cell_m": 1.0, "nx": g.nx, "ny": g.ny}
    counts = {"day": 0, "hour": 0, "slot": 0}
    for pc in pieces:
        counts[pc.unit] += 1
    staff = bool(pieces) and all(
        pc.payloads[("footfall", "store")].get("staff_removed_from_heatmap") for pc in pieces
    )
    return PeriodFigures(
        label, t0, t1, k, counts, missing, store, zones, mv, cells, grid, staff, sup, notes
    )


def _weighted_median(v: list[float], w: NDArray[np.float64]) -> float | None:
    if not len(v):
        return None
    order = np.argsort(v)
    vs, ws = np.asarray(v)[order], w[order]
    if ws.sum() <= 0:
        return round(float(np.median(vs)), 1)
    c = np.cumsum(ws)
    return round(float(vs[int(np.searchsorted(c, c[-1] / 2))]), 1)


def _iso(t_ms: int, tz: str) -> str:
    return datetime.fromtimestamp(t_ms / 1000, ZoneInfo(tz)).isoformat()
