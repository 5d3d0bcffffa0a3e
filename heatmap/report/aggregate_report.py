"""Reports from the stored aggregates: any period, long after the pseudonymous rows are gone.

The period's figures come from :func:`heatmap.aggregator.live.composed_period.load_period`
(the largest stored pieces that fit: days, hours, 15-minute slots; how pieces combine is
said there). This module draws and writes them: the heatmap, the summary, the zone and
flow tables, and the comparison with a simulator's truth.

What comes out is as k-anonymous as what went in: nothing is computed from rows.
"""

from __future__ import annotations

import csv
import json
from dataclasses import asdict
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
from numpy.typing import NDArray

from heatmap.aggregator.live.composed_period import PeriodFigures, load_period
from heatmap.spatial.floorplan import FloorPlan
from heatmap.spatial.walkable_grid import WalkableGrid, samples_for

F = NDArray[np.float64]

__all__ = [
    "PeriodFigures",
    "compare_truth",
    "grid_for",
    "load_period",
    "summary_text",
    "too_few_visitors",
    "write",
    "write_suppressed",
]

REPORT_FILES = ("heatmap_total.png", "summary.txt", "summary.json", "zones.csv", "flows.csv")
"""what a report from the aggregates writes (a suppressed one too, with nothing in it)"""


def _span(t0: int, t1: int, tz: str) -> str:
    z = ZoneInfo(tz)
    a, b = datetime.fromtimestamp(t0 / 1000, z), datetime.fromtimestamp(t1 / 1000, z)
    return f"{a:%Y-%m-%d %H:%M}–{b:%Y-%m-%d %H:%M} ({tz})"


def grid_for(plan: FloorPlan, fig: PeriodFigures) -> WalkableGrid:
    g = WalkableGrid.build(plan, cell_m=fig.grid["cell_m"], samples=samples_for(fig.grid["cell_m"]))
    if g.nx * g.ny != len(fig.cells):
        raise ValueError(
            f"the aggregates' grid ({fig.grid}) is not this floor plan's at {g.cell_m:g} m"
        )
    return g


def write(
    plan: FloorPlan, fig: PeriodFigures, out: Path, truth_dir: Path | None = None
) -> dict[str, Any]:
    """heatmap_total.png, summary.txt, summary.json, zones.csv, flows.csv (and, with a
    simulator truth, heatmap_vs_truth.png and truth beside every figure). Returns the
    comparison with truth (empty without one). A period of fewer than k visitors gets
    :func:`write_suppressed` instead (no truth either: its comparison would draw them)."""
    from heatmap.report import render

    out.mkdir(parents=True, exist_ok=True)
    if too_few_visitors(fig.store.get("visitors"), fig.k):
        write_suppressed(plan, out, fig.period, fig.k)
        return {}
    grid = grid_for(plan, fig)
    span = _span(fig.t0_ms, fig.t1_ms, plan.timezone)
    s = fig.store
    staff = "staff left out" if fig.staff_removed else "staff included"
    v = s.get("visitors")
    sub = (
        f"{'suppressed' if v is None else v} visitors (door beams); live aggregates, {staff}; "
        f"blank: cells of fewer than {fig.k} devices"
    )
    f = render.heatmap_figure(
        plan, grid, fig.cells, f"{plan.name}: where people spent time, {span}", sub
    )
    render.save(f, out / "heatmap_total.png")
    truth: dict[str, Any] = {}
    if truth_dir is not None:
        truth, truth_cells = compare_truth(plan, grid, fig, truth_dir)
        f = render.comparison_figure(
            plan,
            grid,
            fig.cells,
            truth_cells,
            f"{plan.name}, {span}",
            f"Pearson r of person-seconds per 1 m cell inside the store: "
            f"{truth['heatmap_pearson_r_1m']:.2f}",
        )
        render.save(f, out / "heatmap_vs_truth.png")
    zone_total = sum((z.get("person_seconds") or 0) for z in fig.zones.values()) or 1.0
    with (out / "zones.csv").open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(ZONE_COLUMNS)
        for zid, z in fig.zones.items():
            w.writerow(
                [
                    zid,
                    _cell(z.get("visits")),
                    _cell(z.get("devices")),
                    _cell(z.get("dwell_p50_s")),
                    _cell(z.get("dwell_p90_s")),
                    round(z.get("person_seconds") or 0),
                    round((z.get("person_seconds") or 0) / zone_total, 4),
                    _cell(z.get("reach_share")),
                ]
            )
    with (out / "flows.csv").open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(FLOW_COLUMNS)
        w.writerows(fig.moves)
    summary = {**asdict(fig), "cells": None, "truth": truth or None}
    (out / "summary.json").write_text(json.dumps(summary, indent=1, default=float))
    (out / "summary.txt").write_text(summary_text(plan, fig, truth))
    return truth


def too_few_visitors(visitors: int | None, k: int) -> bool:
    """Whether a period of ``visitors`` (None: suppressed where it was stored) is reported
    as suppressed: fewer than k, none included (the heat of nobody but staff and passers-by
    is still a few people's).

    >>> too_few_visitors(None, 5), too_few_visitors(4, 5), too_few_visitors(0, 5)
    (True, True, True)
    >>> too_few_visitors(5, 5)
    False
    """
    return visitors is None or visitors < k


def write_suppressed(plan: FloorPlan, out: Path, period: str, k: int) -> list[Path]:
    """The report of a period of fewer than k visitors: the same files, holding nothing but
    "suppressed" (the plan without heat, the zones named with every figure suppressed, no
    flows). Returns the files written."""
    from heatmap.report import render

    out.mkdir(parents=True, exist_ok=True)
    why = f"fewer than k = {k} visitors in the period: every figure is suppressed"
    f = render.suppressed_figure(plan, f"{plan.name}: {period}", why)
    written = [render.save(f, out / "heatmap_total.png")]
    zones = out / "zones.csv"
    with zones.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(ZONE_COLUMNS)
        for z in plan.zones:
            w.writerow([z.id] + ["suppressed"] * (len(ZONE_COLUMNS) - 1))
    flows = out / "flows.csv"
    with flows.open("w", newline="") as fh:
        csv.writer(fh).writerow(FLOW_COLUMNS)
    summary = out / "summary.json"
    summary.write_text(json.dumps({"period": period, "k": k, "suppressed": True}, indent=1))
    text = out / "summary.txt"
    text.write_text(f"footfall summary — {period}\nsuppressed: {why}\n")
    # an earlier report's, of another period (report.json: the planner page's figures,
    # which planner_report.write_suppressed_html leaves)
    for stale in ("heatmap_vs_truth.png", "flows.png", "radio_model.json", "report.json"):
        (out / stale).unlink(missing_ok=True)
    for old in out.glob("heatmap_[0-9][0-9]00.png"):
        old.unlink()
    return [*written, zones, flows, summary, text]


ZONE_COLUMNS = (
    "zone",
    "visits",
    "devices",
    "dwell_p50_s",
    "dwell_p90_s",
    "person_seconds",
    "share",
    "reach_share",
)
FLOW_COLUMNS = ("from_zone", "to_zone", "transitions", "devices")


def _cell(v: Any) -> Any:
    return "suppressed" if v is None else v


def compare_truth(
    plan: FloorPlan, grid: WalkableGrid, fig: PeriodFigures, truth_dir: Path
) -> tuple[dict[str, Any], F]:
    """The figures against the simulator's truth, and the truth's person-seconds per cell
    (shoppers only when the aggregates left the staff out)."""
    from heatmap.report import analytics, truth_compare

    tf = truth_compare.load(truth_dir, grid)
    per_cell = tf.per_cell
    if fig.staff_removed:  # the aggregates left the staff out: so does the truth compared
        tr = truth_compare.Truth.load(truth_dir)
        shop = tr.role == "shopper"
        per_cell = np.bincount(grid.cells_of(tr.xy[shop]), minlength=grid.nx * grid.ny)
        per_cell = per_cell.astype(float)
    est1 = analytics.cell_sum(grid, fig.cells * grid.inside, 1.0)
    tru1 = analytics.cell_sum(grid, per_cell * grid.inside, 1.0)
    inside1 = analytics.cell_sum(grid, grid.inside.astype(float), 1.0) > 0
    tz_ps = analytics.zone_person_seconds(plan, grid, per_cell * grid.inside)
    return {
        "door_in": tf.door_in,
        "passersby": tf.passersby,
        "median_dwell_s": tf.median_dwell_s,
        "heatmap_pearson_r_1m": truth_compare.pearson_r(est1[inside1], tru1[inside1]),
        "truth_of": "shoppers" if fig.staff_removed else "everyone inside",
        "zone_person_seconds": tz_ps,
    }, per_cell


def summary_text(plan: FloorPlan, fig: PeriodFigures, truth: dict[str, Any]) -> str:
    s = fig.store
    parts = ", ".join(f"{n} {u}{'s' if n != 1 else ''}" for u, n in fig.pieces.items() if n)
    lines = [
        f"footfall summary — {fig.period}",
        f"from the stored aggregates ({parts or 'none'}; k = {fig.k})",
        "",
    ]

    def line(name: str, v: Any, t: Any = None, fmt: str = "{:.0f}") -> None:
        shown = "suppressed" if v is None else fmt.format(v)
        row = f"{name:34}{shown:>12}"
        if t is not None:
            row += f"{fmt.format(t):>12}"
            if v is not None and t:
                row += f"{(v - t) / t * 100:+9.1f} %"
        lines.append(row)

    head = f"{'':34}{'measured':>12}" + (f"{'truth':>12}{'error':>11}" if truth else "")
    lines.append(head)
    line("visitors (door beams, in)", s.get("visitors"), truth.get("door_in"))
    line("passersby (RF, door-calibrated)", s.get("passersby"), truth.get("passersby"))
    line("capture rate", s.get("capture_rate"), None, "{:.3f}")
    line("mean dwell, s (Little's law)", s.get("mean_dwell_s"))
    d = s.get("dwell_s", {})
    line("median dwell, s (RF visits)", d.get("p50"), truth.get("median_dwell_s"))
    line("occupancy, mean", s.get("occupancy_mean"), None, "{:.1f}")
    line("occupancy, max", s.get("occupancy_max"), None, "{:.0f}")
    if truth:
        lines.append(f"{'heatmap Pearson r (1 m cells)':34}{truth['heatmap_pearson_r_1m']:>12.3f}")
    lines += ["", "zones" + ("  (share of person-seconds: measured / truth)" if truth else "")]
    total = sum((z.get("person_seconds") or 0) for z in fig.zones.values()) or 1.0
    ttot = sum(truth["zone_person_seconds"].values()) or 1.0 if truth else 1.0
    for zid, z in sorted(fig.zones.items(), key=lambda kv: -(kv[1].get("person_seconds") or 0)):
        row = (
            f"  {zid:16}{(z.get('person_seconds') or 0) / total * 100:6.1f} %"
            f"  visits {_cell(z.get('visits'))!s:>6}"
            f"  dwell p50 {_cell(z.get('dwell_p50_s'))!s:>8} s"
        )
        if truth:
            row += f"   truth {truth['zone_person_seconds'][zid] / ttot * 100:5.1f} %"
        lines.append(row)
    lines += ["", "zone-to-zone moves (pairs of fewer than k devices suppressed)"]
    for a, b, n, dv in fig.moves[:10]:
        lines.append(f"  {a:>14} → {b:14}{n:6} moves {dv:5} devices")
    if fig.suppressed:
        lines += [
            "",
            "suppressed (fewer than k) in some pieces: "
            + ", ".join(f"{k} {v}" for k, v in sorted(fig.suppressed.items())),
        ]
    lines += [f"note: {n}" for n in fig.notes]
    return "\n".join(lines) + "\n"
