"""The layout planner's report of a period: one self-contained HTML page, its pictures
and a CSV of every table, from the stored aggregates only.

What a planner acts on, in units they act on:

* the period's visitors, passers-by, capture rate and dwell;
* where visitors spent their time, as the **share of visitor time per m²**, smoothed
  to what the node layout resolves (:mod:`heatmap.report.layout_resolution`) and saying
  so; against a simulator's truth, the Pearson r at that resolution;
* the zones: visits per 100 visitors, median dwell, share of visitor time, reach, the
  people present on average; where people go from the entrance and how many reach
  the checkout;
* the hours the store was open, as **people present on average per 100 m²**, every
  hour on one colour scale; hours without aggregates or of fewer than k visitors are
  listed as skipped, not drawn empty;
* the busiest zone-to-zone moves, ranked in a table and the top ones drawn as arrows.

Figures the aggregates hold as suppressed (fewer than k devices) are written
"suppressed (fewer than k)", never as 0. The page is built from a base template that a
compare page (two periods) can extend: ``templates/report_base.html.j2``.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
from numpy.typing import NDArray

from heatmap.aggregator.live.composed_period import PeriodFigures, load_period
from heatmap.report import layout_resolution, page_html, planner_figures, render
from heatmap.report.page_html import SUPPRESSED, data_uri
from heatmap.report.page_html import dwell as _dwell
from heatmap.report.page_html import num as _num
from heatmap.report.page_html import pct as _pct
from heatmap.report.planner_tables import TABLES, write_tables

__all__ = ["HTML", "PICTURES", "SUPPRESSED", "TABLES", "PlannerReport", "write", "write_tables"]
from heatmap.spatial.floorplan import FloorPlan, Zone
from heatmap.spatial.walkable_grid import WalkableGrid

F = NDArray[np.float64]
HTML = "report.html"
TOP_ARROWS = 8
"""moves drawn as arrows (the table ranks them all)"""
CHECKOUT_WORDS = ("checkout", "till", "cashier", "cash desk", "kasse", "caisse")
"""a zone whose id or name holds one of these is the checkout"""
PICTURES = ("plan_heatmap.png", "plan_hours.png", "plan_flows.png")


@dataclass
class HourMap:
    label: str
    """local hour of day, e.g. ``10:00–11:00``"""
    days: int
    """days of the period this hour was open (had ≥ k visitors and a heatmap)"""
    visitors: int
    person_seconds: F
    """per cell, summed over those days"""
    inside_s: float = 0.0
    """person-seconds inside the store (door counts), summed over those days"""


@dataclass
class PlannerReport:
    """Everything the page shows, as plain values (the CSVs hold the same)."""

    title: str
    period: str
    k: int
    summary: list[tuple[str, str]]
    resolution: layout_resolution.Resolution
    truth: dict[str, Any]
    zones: list[dict[str, Any]]
    entrance: dict[str, Any]
    flows: list[dict[str, Any]]
    flows_suppressed: int
    hours_open: list[dict[str, Any]]
    hours_skipped: list[str]
    notes: list[str] = field(default_factory=list)
    pictures: dict[str, str] = field(default_factory=dict)
    """picture name → data URI"""


def _local(t_ms: int, tz: str) -> datetime:
    return datetime.fromtimestamp(t_ms / 1000, ZoneInfo(tz))


def period_label(t0: int, t1: int, tz: str) -> str:
    """``2026-11-20 10:00 – 12:00`` or across days ``2026-11-16 00:00 – 2026-11-23 00:00``."""
    a, b = _local(t0, tz), _local(t1, tz)
    end = f"{b:%H:%M}" if a.date() == b.date() else f"{b:%Y-%m-%d %H:%M}"
    return f"{a:%Y-%m-%d %H:%M} – {end} ({tz})"


def hour_maps(
    conn: sqlite3.Connection, plan: FloorPlan, t0: int, t1: int, k: int
) -> tuple[list[HourMap], list[str]]:
    """The stored hours of [t0, t1) grouped by local hour of day: those open (≥ k
    visitors and a kept heatmap) summed, the rest named as skipped."""
    tz = plan.timezone
    rows = conn.execute(
        "SELECT t0_ms, t1_ms, json_extract(payload, '$.visitors') FROM aggregates "
        "WHERE kind = 'footfall' AND entity = 'store' AND t0_ms >= ? AND t1_ms <= ? "
        "AND json_extract(payload, '$.unit') = 'hour' ORDER BY t0_ms",
        (t0, t1),
    ).fetchall()
    open_: dict[int, HourMap] = {}
    closed: set[int] = set(range(24))
    for a, b, visitors in rows:
        if visitors is None or visitors < k:  # closed, or suppressed: nothing to compose
            continue
        f = load_period(conn, plan, int(a), int(b))
        v = f.store.get("visitors")
        h = _local(int(a), tz).hour
        if v is None or v < k or not (f.cells > 0).any():
            continue
        closed.discard(h)
        m = open_.get(h)
        inside = float(f.store.get("person_seconds_inside") or 0.0)
        if m is None:
            label = f"{h:02d}:00–{(h + 1) % 24:02d}:00"
            open_[h] = HourMap(label, 1, int(v), f.cells.copy(), inside)
        else:
            m.days += 1
            m.visitors += int(v)
            m.person_seconds += f.cells
            m.inside_s += inside
    return [open_[h] for h in sorted(open_)], _ranges(sorted(closed))


def _ranges(hours: list[int]) -> list[str]:
    """Consecutive hours of day as ranges.

    >>> _ranges([0, 1, 2, 9, 20, 21, 22, 23])
    ['00:00–03:00', '09:00–10:00', '20:00–24:00']
    """
    out: list[str] = []
    for h in hours:
        if out and int(out[-1][-5:-3]) == h:
            out[-1] = f"{out[-1][:6]}{h + 1:02d}:00"
        else:
            out.append(f"{h:02d}:00–{h + 1:02d}:00")
    return out


def entrance_zone(plan: FloorPlan) -> Zone | None:
    """The zone named entrance, else the zone nearest the first door."""
    for z in plan.zones:
        if "entrance" in z.id.lower() or "entrance" in z.name.lower():
            return z
    if not plan.doors or not plan.zones:
        return None
    from shapely.geometry import Point

    c = Point(plan.doors[0].center)
    return min(plan.zones, key=lambda z: z.polygon.distance(c))


def checkout_zone(plan: FloorPlan) -> Zone | None:
    for z in plan.zones:
        if any(w in z.id.lower() or w in z.name.lower() for w in CHECKOUT_WORDS):
            return z
    return None


def build(
    plan: FloorPlan,
    fig: PeriodFigures,
    hours: list[HourMap],
    skipped: list[str],
    truth_dir: Path | None = None,
) -> tuple[PlannerReport, WalkableGrid, F]:
    """The report's tables and figures, the grid and the smoothed share of visitor time
    per cell (fraction of the period's total)."""
    from heatmap.report import aggregate_report

    grid = aggregate_report.grid_for(plan, fig)
    res = layout_resolution.resolution(plan, grid)
    s = fig.store
    visitors = s.get("visitors")
    rf_visitors = (s.get("rf") or {}).get("visitor_devices")
    open_s = sum(h.days for h in hours) * 3600.0 or (fig.t1_ms - fig.t0_ms) / 1000 - fig.missing_s
    dwell = s.get("dwell_s") or {}
    summary = [
        ("period", period_label(fig.t0_ms, fig.t1_ms, plan.timezone)),
        ("visitors (door counts)", _num(visitors)),
        ("passers-by (estimated)", _num(s.get("passersby"))),
        ("capture rate (visitors / people passing)", _pct(s.get("capture_rate"), 1)),
        ("mean time in store (door counts)", _dwell(s.get("mean_dwell_s"))),
        ("median visit (radio)", _dwell(dwell.get("p50"))),
        ("people in the store, on average while open", _num(_occupancy(s, hours), "{:.1f}")),
        ("people in the store, most at once", _num(s.get("occupancy_max"))),
        ("hours open (≥ k visitors)", str(sum(h.days for h in hours))),
        ("the layout resolves about", f"{res.stated_m:g} m"),
    ]
    zone_total = sum((z.get("person_seconds") or 0) for z in fig.zones.values())
    ent, chk = entrance_zone(plan), checkout_zone(plan)
    zones = []
    for z in plan.zones:
        a = fig.zones.get(z.id, {})
        ps, visits = a.get("person_seconds"), a.get("visits")
        zones.append(
            {
                "zone": z.name,
                "id": z.id,
                "visits_per_100": None
                if visits is None or not rf_visitors
                else round(100 * visits / rf_visitors, 1),
                "dwell_p50_s": a.get("dwell_p50_s"),
                "share": None if ps is None or not zone_total else ps / zone_total,
                "reach": a.get("reach_share"),
                "people": None if ps is None or open_s <= 0 else ps / open_s,
                "role": _role(z, ent, chk),
            }
        )
    zones.sort(key=lambda r: -(r["share"] or 0))
    names = {z.id: z.name for z in plan.zones}
    out_of: dict[str, int] = {}
    for a_, _, n, _ in fig.moves:
        out_of[a_] = out_of.get(a_, 0) + n
    flows = [
        {
            "rank": i + 1,
            "from": names.get(a_, a_),
            "to": names.get(b, b),
            "moves": n,
            "devices": d,
            "share_of_from": n / out_of[a_] if out_of.get(a_) else None,
        }
        for i, (a_, b, n, d) in enumerate(fig.moves)
    ]
    entrance = _entrance(fig, ent, chk, names)
    truth: dict[str, Any] = {}
    if truth_dir is not None:
        t, truth_cells = aggregate_report.compare_truth(plan, grid, fig, truth_dir)
        r = layout_resolution.pearson_at(grid, fig.cells, truth_cells, res.sigma_m)
        truth = {"r_1m": t["heatmap_pearson_r_1m"], "r_stated": r, "goal": 0.9, "of": t["truth_of"]}
    shared = layout_resolution.smooth(grid, fig.cells, res.sigma_m)
    total = float(shared.sum())
    shared = shared / total if total > 0 else shared
    notes = list(fig.notes)
    if fig.missing_s > 0:
        notes.append("parts of the period had no aggregates: the figures cover the rest")
    rep = PlannerReport(
        title=f"{plan.name}: layout report",
        period=period_label(fig.t0_ms, fig.t1_ms, plan.timezone),
        k=fig.k,
        summary=summary,
        resolution=res,
        truth=truth,
        zones=zones,
        entrance=entrance,
        flows=flows,
        flows_suppressed=int(fig.suppressed.get("flow_pairs", 0)),
        hours_open=[{"hour": h.label, "days": h.days, "visitors": h.visitors} for h in hours],
        hours_skipped=skipped,
        notes=notes,
    )
    return rep, grid, shared


def _role(z: Zone, ent: Zone | None, chk: Zone | None) -> str:
    """What the report takes ``z`` for, where its name does not say it already."""
    role = "entrance" if z is ent else "checkout" if z is chk else ""
    return "" if role in z.name.lower() else role


def _occupancy(s: dict[str, Any], hours: list[HourMap]) -> float | None:
    """People inside on average over the open hours (door counts); over the whole
    period where no whole hour was open (a people count left inside after closing
    would otherwise be spread over the open hours)."""
    if hours:
        return sum(h.inside_s for h in hours) / (3600.0 * sum(h.days for h in hours))
    return s.get("occupancy_mean")


def _entrance(
    fig: PeriodFigures, ent: Zone | None, chk: Zone | None, names: dict[str, str]
) -> dict[str, Any]:
    """Where people go from the entrance (share of the moves out of it), and how many
    visitors reach the checkout."""
    out: dict[str, Any] = {
        "zone": ent.name if ent else None,
        "next": [],
        "checkout": chk.name if chk else None,
        "checkout_reach": None,
    }
    if ent is not None:
        moves = [(b, n) for a, b, n, _ in fig.moves if a == ent.id]
        total = sum(n for _, n in moves)
        out["next"] = [
            {"to": names.get(b, b), "moves": n, "share": n / total} for b, n in moves if total
        ]
    if chk is not None:
        out["checkout_reach"] = fig.zones.get(chk.id, {}).get("reach_share")
    return out


def draw(
    plan: FloorPlan,
    grid: WalkableGrid,
    shared: F,
    rep: PlannerReport,
    hours: list[HourMap],
    out: Path,
) -> list[Path]:
    """The planner's pictures into ``out``; their data URIs into ``rep.pictures``."""
    area = grid.cell_m**2
    res = rep.resolution
    heat = planner_figures.heat_figure(
        plan,
        grid,
        shared * 100 / area,
        f"{plan.name}: where visitors spent their time",
        f"{rep.period}  ·  smoothed to {res.stated_m:g} m, what this node layout resolves  ·  "
        f"cells of fewer than {rep.k} devices left out before smoothing",
        "share of visitor time, % per m²",
    )
    paths = [render.save(heat, out / PICTURES[0])]
    mask = layout_resolution.floor_mask(grid)
    if hours:
        maps = []
        for h in hours:
            per = layout_resolution.smooth(grid, h.person_seconds, res.sigma_m)
            people = per / (3600.0 * h.days) / area * 100
            days = f", {h.days} days" if h.days > 1 else ""
            maps.append((f"{h.label}  ({h.visitors} visitors{days})", np.where(mask, people, 0)))
        skipped = ", ".join(rep.hours_skipped) or "none"
        f = planner_figures.hours_figure(
            plan,
            grid,
            maps,
            f"{plan.name}: the open hours, one colour scale",
            f"{rep.period}  ·  average over the days each hour was open  ·  "
            f"not drawn (no aggregates or fewer than {rep.k} visitors): {skipped}",
            "people present on average, per 100 m²",
        )
        paths.append(render.save(f, out / PICTURES[1]))
    else:
        (out / PICTURES[1]).unlink(missing_ok=True)
    top = rep.flows[:TOP_ARROWS]
    if top:
        anchors = planner_figures.zone_labels(plan)
        at = {lab.text: (lab.x, lab.y) for lab in anchors}
        moves = [
            planner_figures.Move(m["rank"], at[m["from"]], at[m["to"]], m["moves"])
            for m in top
            if m["from"] in at and m["to"] in at
        ]
        f = planner_figures.flows_figure(
            plan,
            moves,
            anchors,
            f"{plan.name}: the {len(moves)} busiest zone-to-zone moves",
            f"{rep.period}  ·  arrow width by moves, #rank as in the table  ·  "
            f"pairs of fewer than {rep.k} devices are not shown",
        )
        paths.append(render.save(f, out / PICTURES[2]))
    else:
        (out / PICTURES[2]).unlink(missing_ok=True)
    rep.pictures = {p.name: data_uri(p) for p in paths}
    return paths


def write_html(rep: PlannerReport, out: Path) -> Path:
    tpl = page_html.env().get_template("period_report.html.j2")
    page = tpl.render(r=rep, suppressed=SUPPRESSED)
    p = out / HTML
    p.write_text(page, encoding="utf-8")
    return p


def remove(out: Path) -> None:
    """Take an earlier planner page and its files out of ``out`` (a report located
    from rows writes none: a page of another period must not stay beside it)."""
    for name in (HTML, "report.json", *PICTURES, *(f"table_{t}.csv" for t in TABLES)):
        (out / name).unlink(missing_ok=True)


def write_suppressed_html(title: str, period: str, k: int, out: Path) -> Path:
    """The page of a period of fewer than k visitors: nothing but that it is suppressed."""
    tpl = page_html.env().get_template("suppressed_report.html.j2")
    page = tpl.render(title=title, period=period, k=k)
    p = out / HTML
    p.write_text(page, encoding="utf-8")
    for stale in (*PICTURES, *(f"table_{t}.csv" for t in TABLES)):
        (out / stale).unlink(missing_ok=True)
    return p


def write(
    conn: sqlite3.Connection,
    plan: FloorPlan,
    fig: PeriodFigures,
    out: Path,
    truth_dir: Path | None = None,
) -> PlannerReport:
    """The planner's page, pictures and tables of ``fig``'s period into ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    hours, skipped = hour_maps(conn, plan, fig.t0_ms, fig.t1_ms, fig.k)
    rep, grid, shared = build(plan, fig, hours, skipped, truth_dir)
    draw(plan, grid, shared, rep, hours, out)
    write_tables(rep, out)
    write_html(rep, out)
    (out / "report.json").write_text(
        json.dumps(
            {
                "period": rep.period,
                "k": rep.k,
                "resolution_m": rep.resolution.stated_m,
                "resolution_median_error_m": round(rep.resolution.median_error_m, 2),
                "truth": rep.truth or None,
                "hours_open": rep.hours_open,
                "hours_skipped": rep.hours_skipped,
            },
            indent=1,
        )
    )
    return rep
