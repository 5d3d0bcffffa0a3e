"""The layout planner's before / after page: one self-contained HTML file, its pictures
and its table, from a :class:`~heatmap.report.period_compare.Comparison`.

What the page shows, top to bottom (``templates/compare_report.html.j2``, which extends
the period report's frame and prints on A4):

* the biggest changes in plain words, with their 95 % intervals, and how many days
  (or hours) and visitors each period had;
* both periods side by side on **one colour scale** (share of each period's visitor
  time per m², smoothed to what the node layout resolves);
* the **difference map**: where visitor time moved, per visitor (each period's heat
  over its own total, so a busier period is not a change), on a diverging colour map
  (blue less, red more; ColorBrewer's RdBu, safe for the colour-blind);
* the zone table: per zone its verdict (changed / no evidence of change, its figures
  looked at together: :func:`heatmap.report.period_compare.zone_verdicts`) and every
  figure before → after with the change and its 95 % interval, changed figures marked.

Files: ``compare.html``, ``compare_periods.png``, ``compare_difference.png``,
``compare_zones.csv`` (a row per zone and figure) and ``compare_summary.txt``.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from heatmap.report import layout_resolution, page_html, planner_figures, render
from heatmap.report.period_compare import (
    FIGURES,
    LABELS,
    Comparison,
    ZoneChange,
    moved,
    zone_verdicts,
)
from heatmap.spatial.floorplan import FloorPlan
from heatmap.spatial.walkable_grid import WalkableGrid, samples_for

F = NDArray[np.float64]
HTML = "compare.html"
PICTURES = ("compare_periods.png", "compare_difference.png")
TABLE = "compare_zones.csv"
SUMMARY = "compare_summary.txt"
HEADS = {
    "visits_per_100": "visits per 100 visitors",
    "time_share": "share of visitor time",
    "reach": "reach",
    "dwell_p50_s": "median stay",
}


@dataclass
class ZoneRow:
    """One zone of the page's table."""

    name: str
    changed: bool
    cells: dict[str, dict[str, Any]]
    """figure → {"text": before → after, "change": "+42 % (+28…+57 %)", "changed": bool},
    or {"text": SUPPRESSED} where a period's figure was suppressed or missing"""


@dataclass
class ComparePage:
    """Everything the page shows, as plain values."""

    title: str
    before: str
    after: str
    unit: str
    pieces: tuple[int, int]
    visitors: tuple[float, float]
    k: int
    resolution: layout_resolution.Resolution | None
    summary: list[str]
    zones: list[ZoneRow]
    figures: tuple[str, ...] = FIGURES
    heads: dict[str, str] = field(default_factory=lambda: dict(HEADS))
    notes: list[str] = field(default_factory=list)
    pictures: dict[str, str] = field(default_factory=dict)
    """picture name → data URI"""


def value_text(figure: str, v: float) -> str:
    """A figure as the table writes it.

    >>> value_text("visits_per_100", 31.2), value_text("time_share", 0.1234)
    ('31', '12.3 %')
    >>> value_text("dwell_p50_s", 65.0)
    '65 s'
    """
    if figure in ("time_share", "reach"):
        return f"{100 * v:.1f} %"
    if figure == "dwell_p50_s":
        return page_html.dwell(v)
    return f"{v:.0f}"


def change_text(c: ZoneChange) -> str:
    """``+42 % (+28…+57 %)``: the relative change and its 95 % interval."""
    if not math.isfinite(c.rel):
        return "n/a (0 before)"
    lo, hi = c.rel_ci
    return f"{100 * c.rel:+.0f} % ({100 * lo:+.0f}…{100 * hi:+.0f} %)"


def zone_rows(plan: FloorPlan, cmp: Comparison) -> list[ZoneRow]:
    """The table's rows: changed zones first (biggest relative change first), then the
    rest in the plan's order."""
    verdict = zone_verdicts(cmp)
    counts = moved(cmp)
    by = {(c.zone, c.figure): c for c in cmp.changes}
    rows = []
    for z in plan.zones:
        cells: dict[str, dict[str, Any]] = {}
        for f in FIGURES:
            c = by.get((z.id, f))
            if c is None:
                cells[f] = {"text": page_html.SUPPRESSED, "change": "", "changed": False}
                continue
            cells[f] = {
                "text": f"{value_text(f, c.before)} → {value_text(f, c.after)}",
                "change": change_text(c),
                "changed": (z.id, f) in counts,
            }
        rows.append(ZoneRow(z.name, verdict.get(z.id, False), cells))
    biggest = {
        z: max((abs(c.rel) for c in cmp.changes if (c.zone, c.figure) in counts), default=0.0)
        for z in verdict
    }
    ids = {z.name: z.id for z in plan.zones}
    order = {z.name: i for i, z in enumerate(plan.zones)}
    rows.sort(key=lambda r: (not r.changed, -biggest.get(ids[r.name], 0.0), order[r.name]))
    return rows


def write_table(cmp: Comparison, path: Path) -> Path:
    """A row per zone and figure: before, after, the difference's and the relative
    change's 95 % interval, the figure's verdict and the zone's."""
    verdict = zone_verdicts(cmp)
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(
            ["zone", "name", "figure", "before", "after", "diff_lo", "diff_hi", "rel", "rel_lo",
             "rel_hi", "verdict", "zone_verdict"]
        )  # fmt: skip
        for c in cmp.changes:
            w.writerow(
                [c.zone, c.name, c.figure, round(c.before, 4), round(c.after, 4),
                 round(c.diff_ci[0], 4), round(c.diff_ci[1], 4), round(c.rel, 4),
                 round(c.rel_ci[0], 4), round(c.rel_ci[1], 4), _verdict(c.changed),
                 _verdict(verdict[c.zone])]
            )  # fmt: skip
    return path


def _verdict(changed: bool) -> str:
    return "changed" if changed else "no evidence of change"


def draw(
    plan: FloorPlan, cmp: Comparison, before: str, after: str, out: Path
) -> tuple[list[Path], layout_resolution.Resolution | None]:
    """The two periods side by side and the difference map (None without heatmaps)."""
    if cmp.shares is None:
        return [], None
    cell = float(cmp.grid["cell_m"])
    grid = WalkableGrid.build(plan, cell_m=cell, samples=samples_for(cell))
    b, a = cmp.shares
    if grid.nx * grid.ny != len(b):
        return [], None
    res = layout_resolution.resolution(plan, grid)
    # each period smoothed on its own (smoothing keeps a total; a difference has none)
    sb, sa = (layout_resolution.smooth(grid, x, res.sigma_m) for x in (b, a))
    area = cell**2
    smoothed = f"smoothed to {res.stated_m:g} m, what this node layout resolves"
    pair = planner_figures.pair_figure(
        plan,
        grid,
        ((f"before: {before}", 100 * sb / area), (f"after: {after}", 100 * sa / area)),
        f"{plan.name}: where visitors spent their time, before and after",
        f"each period's share of its own visitor time per m², one colour scale  ·  {smoothed}",
        "share of the period's visitor time, % per m²",
    )
    diff = planner_figures.difference_figure(
        plan,
        grid,
        100 * (sa - sb) / area,
        f"{plan.name}: where visitor time moved",
        f"{after} against {before}, per visitor (a busier period is not a change)  ·  {smoothed}",
        "change in share of visitor time, % points per m²  (red: more, blue: less)",
    )
    return [render.save(pair, out / PICTURES[0]), render.save(diff, out / PICTURES[1])], res


def write(
    plan: FloorPlan, cmp: Comparison, before: str, after: str, out: Path, k: int, lines: list[str]
) -> ComparePage:
    """The page, its pictures, the table and the summary into ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    for stale in PICTURES:
        (out / stale).unlink(missing_ok=True)
    paths, res = draw(plan, cmp, before, after, out)
    write_table(cmp, out / TABLE)
    (out / SUMMARY).write_text("\n".join(lines) + "\n", encoding="utf-8")
    page = ComparePage(
        title=f"{plan.name}: before and after",
        before=before,
        after=after,
        unit=cmp.unit,
        pieces=cmp.pieces,
        visitors=cmp.visitors,
        k=k,
        resolution=res,
        summary=lines,
        zones=zone_rows(plan, cmp),
        notes=list(cmp.notes),
        pictures={p.name: page_html.data_uri(p) for p in paths},
    )
    missing = {z.name for z in plan.zones} - {c.name for c in cmp.changes}
    if missing:
        page.notes.append(
            "not compared (a figure suppressed or missing in too many "
            f"{cmp.unit}s of a period): {', '.join(sorted(missing))}"
        )
    html = page_html.env().get_template("compare_report.html.j2")
    text = html.render(r=page, suppressed=page_html.SUPPRESSED, labels=LABELS)
    (out / HTML).write_text(text, encoding="utf-8")
    return page
