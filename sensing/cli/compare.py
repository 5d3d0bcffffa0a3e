"""``footfall compare``: before / after a re-layout, per zone, with 95 % intervals
(:mod:`heatmap.report.period_compare`), from the stored aggregates only.

Light at import time: the handler imports the heavy modules it needs.
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path
from typing import Any

from firmware_bridge.errors import ConfigError
from sensing.cli import checks


def cmd_compare(a: argparse.Namespace) -> int:
    from heatmap.aggregator import store_db
    from heatmap.report import period_compare
    from heatmap.spatial.floorplan import load, load_default

    floor, db_arg = a.floor, a.db
    if a.config:
        from heatmap.aggregator import config as aggregator_config

        cfg = aggregator_config.load(a.config)
        db_arg = db_arg or str(cfg.db)
        floor = floor or (str(cfg.floor_plan) if cfg.floor_plan else None)
    if not db_arg:
        raise ConfigError("which store database? --db store.db, or --config store.toml")
    db = Path(db_arg)
    if not db.is_file():
        raise ConfigError(f"{db}: no such store database")
    plan = load(floor) if floor else load_default()
    try:
        before = period_compare.period_span(a.before, plan.timezone)
        after = period_compare.period_span(a.after, plan.timezone)
    except ValueError as e:
        raise ConfigError(f"--before/--after: {e}") from None
    checks.within(a.resamples, 200, 20_000, "--resamples")
    out = checks.output_dir(a.out, "--out")
    conn = store_db.connect(db, readonly=True)
    try:
        cmp = period_compare.compare(conn, plan, before, after, a.seed, a.resamples)
    except ValueError as e:
        raise ConfigError(str(e)) from None
    finally:
        conn.close()
    out.mkdir(parents=True, exist_ok=True)
    _write_table(cmp, out / "compare_zones.csv")
    lines = period_compare.summary(cmp)
    (out / "compare_summary.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    picture = _difference_map(plan, cmp, a, out)
    print(
        f"footfall compare: {a.before} ({cmp.pieces[0]} {cmp.unit}s, {cmp.visitors[0]:.0f} "
        f"visitors) against {a.after} ({cmp.pieces[1]} {cmp.unit}s, {cmp.visitors[1]:.0f} "
        "visitors); 95 % intervals by bootstrap over the " + cmp.unit + "s"
    )
    for line in lines:
        print(f"  {line}")
    print(f"  table: {out / 'compare_zones.csv'};  summary: {out / 'compare_summary.txt'}")
    if picture is not None:
        print(f"  difference map: {picture}")
    for note in cmp.notes:
        print(f"  note: {note}")
    return 0


def _write_table(cmp: Any, path: Path) -> None:
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(
            ["zone", "name", "figure", "before", "after", "diff_lo", "diff_hi", "rel", "rel_lo",
             "rel_hi", "verdict"]
        )  # fmt: skip
        for c in cmp.changes:
            w.writerow(
                [c.zone, c.name, c.figure, round(c.before, 4), round(c.after, 4),
                 round(c.diff_ci[0], 4), round(c.diff_ci[1], 4), round(c.rel, 4),
                 round(c.rel_ci[0], 4), round(c.rel_ci[1], 4),
                 "changed" if c.changed else "no evidence of change"]
            )  # fmt: skip


def _difference_map(plan: Any, cmp: Any, a: argparse.Namespace, out: Path) -> Path | None:
    """Change in the share of visitor time per m², smoothed to what the layout resolves."""
    if cmp.shares is None:
        return None
    from heatmap.report import layout_resolution, planner_figures, render
    from heatmap.spatial.walkable_grid import WalkableGrid, samples_for

    cell = float(cmp.grid["cell_m"])
    grid = WalkableGrid.build(plan, cell_m=cell, samples=samples_for(cell))
    before, after = cmp.shares
    if grid.nx * grid.ny != len(before):
        return None
    res = layout_resolution.resolution(plan, grid)
    # each period smoothed on its own (smoothing keeps a total: a difference has none)
    smooth = [layout_resolution.smooth(grid, x, res.sigma_m) for x in (before, after)]
    per_m2 = 100 * (smooth[1] - smooth[0]) / cell**2
    fig = planner_figures.difference_figure(
        plan,
        grid,
        per_m2,
        f"{plan.name}: where visitor time moved",
        f"{a.after} against {a.before}, per visitor (a busier period is not a change)  ·  "
        f"smoothed to {res.stated_m:g} m, what this node layout resolves",
        "change in share of visitor time, % points per m² (red: more, blue: less)",
    )
    return render.save(fig, out / "compare_difference.png")


def register(sub: Any) -> None:
    p = sub.add_parser(
        "compare",
        help="before/after a re-layout: zone figures with 95 %% intervals, difference map",
    )
    p.add_argument("--db", help="the store database (or --config)")
    p.add_argument("--config", help="store.toml: its database, floor plan")
    p.add_argument("--floor", help="floor plan TOML (default: from --config, or the demo store)")
    p.add_argument(
        "--before", required=True, help="FIRST..LAST local dates, e.g. 2026-11-02..2026-11-08"
    )
    p.add_argument("--after", required=True, help="FIRST..LAST local dates")
    p.add_argument("--out", default="footfall-compare", help="output directory (%(default)s)")
    p.add_argument("--seed", type=int, default=0, help="bootstrap seed (%(default)s)")
    p.add_argument("--resamples", type=int, default=2000, help="bootstrap resamples (%(default)s)")
    p.set_defaults(func=cmd_compare)
