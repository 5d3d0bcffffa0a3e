"""``footfall compare``: before / after a re-layout, per zone, with 95 % intervals
(:mod:`heatmap.report.period_compare`), from the stored aggregates only: one HTML page
with both periods on one colour scale, the difference map, the zone table and the
summary (:mod:`heatmap.report.compare_page`), its PNGs and a CSV.

Light at import time: the handler imports the heavy modules it needs.
"""

from __future__ import annotations

import argparse
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
    from heatmap.report import compare_page

    lines = period_compare.summary(cmp)
    page = compare_page.write(plan, cmp, a.before, a.after, out, cmp.k, lines)
    print(
        f"footfall compare: {a.before} ({cmp.pieces[0]} {cmp.unit}s, {cmp.visitors[0]:.0f} "
        f"visitors) against {a.after} ({cmp.pieces[1]} {cmp.unit}s, {cmp.visitors[1]:.0f} "
        "visitors); 95 % intervals by bootstrap over the " + cmp.unit + "s"
    )
    for line in lines:
        print(f"  {line}")
    print(f"  page: {out / compare_page.HTML}")
    print(f"  table: {out / compare_page.TABLE};  summary: {out / compare_page.SUMMARY}")
    for name in compare_page.PICTURES:
        if name in page.pictures:
            print(f"  picture: {out / name}")
    for note in page.notes:
        print(f"  note: {note}")
    return 0


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
