"""``footfall compare`` on simulated weeks through the live aggregator: does it find a
moved promo table, and are its intervals calibrated on a store where nothing changed?

The days are drawn by :mod:`heatmap.simulate.relayout_weeks` (the simulator's people,
phones, BLE adverts and node beacons written as rows into the store database, the true
door crossings as door events) and located and aggregated by the real
:class:`~heatmap.aggregator.live.processor.LiveProcessor` on the store's clock: that
module's docstring says what the path leaves out. Each day is a short window
(``--hours`` from ``--open``); the live calibration fitted on the first day is carried
to the others (``--refit-daily`` refits every day, as a store does every 6 h).

1. **The re-layout.** Two weeks: the promo table stands in the plan's promo zone the
   first week and in the back aisle the second. ``footfall compare`` (the command, in
   a fresh process, timed: GOALS ≤ 20 s) must call the zones around the old and new
   positions changed (intervals excluding 0) and no zone away from both unless its
   share of the shoppers' time truly moved: the simulator's truth of each zone's share
   before and after is printed beside the verdicts
   (:func:`heatmap.simulate.relayout_weeks.true_zone_shares`).
2. **Calibration.** A pool of ``--pool`` unchanged days (its first week is the
   re-layout's first week: same seeds); ``--splits`` times, 7 days drawn at random
   (without replacement) are "before" and 7 others "after", and the zones' verdicts
   compared (:func:`heatmap.report.period_compare.compare_pieces`, the command's own
   code). Each split is, day for day, an unchanged store's two weeks (the days are
   independent draws of one scenario); splits of one pool share days, so the share's
   own uncertainty is wider than that of as many separate stores. Printed: the share
   of zones wrongly called changed (goal ≤ 5 %), per zone, and the share of zone
   figures whose 95 % interval excludes 0.

    python bench/compare_calibration.py                    # about 20 min on 2 busy cores
    python bench/compare_calibration.py --keep DIR         # keep the databases and pages
    python bench/compare_calibration.py --reuse DIR        # compare again, no simulation
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from datetime import time as clock
from pathlib import Path

import numpy as np

from heatmap.aggregator import store_db
from heatmap.aggregator.live.settings import LiveSettings
from heatmap.report import period_compare
from heatmap.simulate.relayout_weeks import BACK_AISLE, Relayout, simulate_days, true_zone_shares
from heatmap.spatial.floorplan import FloorPlan, load_default
from sensing.runtime.progress import NoProgress

AROUND_M = 4.0
"""a zone within this of the promo table's old or new place is 'around' it: about what
the bundled layout resolves (the report's stated resolution)"""


def around(plan: FloorPlan, at: list[tuple[float, float]], m: float = AROUND_M) -> set[str]:
    """The zones within ``m`` of any of the points ``at`` (the table's old spot: the
    promo zone's centre)."""
    from shapely.geometry import Point

    return {z.id for z in plan.zones if any(z.polygon.distance(Point(p)) <= m for p in at)}


def backup(src: Path, dst: Path) -> None:
    """A consistent copy of a store database (WAL included)."""
    a, b = sqlite3.connect(src), sqlite3.connect(dst)
    try:
        a.backup(b)
    finally:
        a.close()
        b.close()


def relayout_check(plan: FloorPlan, r: Relayout, db: Path, out: Path) -> dict[str, object]:
    before, after = r.periods()
    cmd = [sys.executable, "-m", "sensing.cli.main", "compare", "--db", str(db),
           "--before", before, "--after", after, "--out", str(out)]  # fmt: skip
    t = time.perf_counter()
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    took = time.perf_counter() - t
    if p.returncode != 0:
        raise SystemExit(f"footfall compare failed: {p.stderr.strip()}")
    rows = (out / "compare_zones.csv").read_text().splitlines()[1:]
    verdict: dict[str, str] = {}
    for row in rows:
        cols = row.split(",")
        verdict[cols[0]] = cols[-1]
    old = plan.zones[[z.id for z in plan.zones].index("promo")].polygon.centroid
    near = around(plan, [(old.x, old.y), r.promo_after or BACK_AISLE])
    changed = {z for z, v in verdict.items() if v == "changed"}
    return {
        "seconds": took,
        "stdout": p.stdout,
        "changed": sorted(changed),
        "around": sorted(near),
        "far_changed": sorted(changed - near),
        "found": {"promo", "back_aisle"} <= changed,
    }


def calibration(
    plan: FloorPlan, db: Path, pool: Relayout, splits: int, each: int, resamples: int
) -> tuple[list[list[bool]], list[bool], list[str]]:
    """Per split the zones' verdicts; every zone figure's 95 % verdict; the zone ids."""
    days = pool.days()
    tz = plan.timezone
    t0, _ = period_compare.period_span(f"{days[0]}..{days[0]}", tz)
    _, t1 = period_compare.period_span(f"{days[-1]}..{days[-1]}", tz)
    conn = store_db.connect(db, readonly=True)
    try:
        pieces = period_compare.load_pieces(conn, plan, t0, t1, "day")
    finally:
        conn.close()
    n = len(pieces.t0_ms)
    if n < 2 * each:
        raise SystemExit(f"{db}: {n} stored days, need {2 * each}")
    rng = np.random.default_rng(12345)
    zone_calls: list[list[bool]] = []
    figure_calls: list[bool] = []
    ids = [z.id for z in plan.zones]
    for s in range(splits):
        pick = rng.permutation(n)[: 2 * each].tolist()
        pb = period_compare.subset(pieces, sorted(pick[:each]))
        pa = period_compare.subset(pieces, sorted(pick[each:]))
        cmp = period_compare.compare_pieces(plan, pb, pa, seed=s, resamples=resamples)
        v = period_compare.zone_verdicts(cmp)
        zone_calls.append([v.get(z, False) for z in ids])
        figure_calls += [c.changed for c in cmp.changes]
    return zone_calls, figure_calls, ids


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--hours", type=float, default=0.5, help="simulated per day (%(default)s)")
    ap.add_argument("--open", default="12:00", help="local time each day starts (%(default)s)")
    ap.add_argument("--pool", type=int, default=28, help="unchanged days (%(default)s)")
    ap.add_argument("--splits", type=int, default=20, help="calibration draws (%(default)s)")
    ap.add_argument("--resamples", type=int, default=2000)
    ap.add_argument("--cell-m", type=float, default=1.0, help="the live grid (%(default)s)")
    ap.add_argument("--refit-daily", action="store_true")
    ap.add_argument("--keep", help="keep the databases and the compare page here")
    ap.add_argument("--reuse", help="a --keep folder: compare again without simulating")
    a = ap.parse_args(argv)
    plan = load_default()
    r = Relayout(hours=a.hours, open_local=clock.fromisoformat(a.open))
    pool = replace(r, days_each=a.pool // 2, promo_after=None)
    settings = LiveSettings(cell_m=a.cell_m)
    work = Path(a.reuse or a.keep or tempfile.mkdtemp(prefix="compare-cal-"))
    work.mkdir(parents=True, exist_ok=True)
    pool_db, moved_db = work / "pool.db", work / "relayout.db"
    t = time.perf_counter()
    if not a.reuse:
        for p in (*work.glob("pool.db*"), *work.glob("relayout.db*")):
            p.unlink()
        kw = {"settings": settings, "progress": NoProgress(), "refit_daily": a.refit_daily}
        shop = simulate_days(plan, pool, pool_db, range(r.days_each), **kw)  # type: ignore[arg-type]
        backup(pool_db, moved_db)
        shop_moved = simulate_days(plan, r, moved_db, range(r.days_each, 2 * r.days_each), **kw)  # type: ignore[arg-type]
        shop += simulate_days(plan, pool, pool_db, range(r.days_each, a.pool), **kw)  # type: ignore[arg-type]
        (work / "days.json").write_text(json.dumps({"pool": shop, "moved": shop_moved}))
    sim_s = time.perf_counter() - t
    res = relayout_check(plan, r, moved_db, work / "relayout-compare")
    t = time.perf_counter()
    zone_calls, figure_calls, ids = calibration(plan, pool_db, pool, a.splits, r.days_each,
                                                a.resamples)  # fmt: skip
    cal_s = time.perf_counter() - t
    names = {z.id: z.name for z in plan.zones}
    print(
        f"simulated: {a.hours:g} h a day from {a.open}, the live grid {a.cell_m:g} m, "
        f"{'refitted daily' if a.refit_daily else 'first-day calibration carried'}; "
        f"{a.pool} unchanged days + 7 with the promo table moved, {sim_s:.0f} s "
        f"(load {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs)"
    )
    print(f"\nre-layout (promo table → back aisle {r.promo_after}): footfall compare "
          f"{res['seconds']:.1f} s (goal ≤ 20 s)")  # fmt: skip
    print(str(res["stdout"]).rstrip())
    print(f"  zones called changed: {', '.join(res['changed']) or 'none'}")  # type: ignore[arg-type]
    print(f"  zones within {AROUND_M:g} m of the old or new place: {', '.join(res['around'])}")  # type: ignore[arg-type]
    print(f"  found promo and back aisle: {res['found']};  changed away from both: "
          f"{', '.join(res['far_changed']) or 'none'}")  # type: ignore[arg-type]  # fmt: skip
    print("\n  the simulator's truth, share of the shoppers' time (mean of the 7 days each):")
    print(f"  {'zone':<16} {'before':>7} {'after':>7} {'change':>8}  called")
    days = [true_zone_shares(plan, r.scenario(i)) for i in range(2 * r.days_each)]
    for z in plan.zones:
        b = float(np.mean([d[z.id] for d in days[: r.days_each]]))
        f = float(np.mean([d[z.id] for d in days[r.days_each :]]))
        rel = f"{100 * (f - b) / b:+.0f} %" if b > 0 else "-"
        called = "changed" if z.id in res["changed"] else "-"  # type: ignore[operator]
        print(f"  {z.name:<16} {100 * b:6.1f}% {100 * f:6.1f}% {rel:>8}  {called}")
    calls = np.array(zone_calls)
    print(f"\ncalibration: {a.splits} random 7-vs-7 splits of {a.pool} unchanged days "
          f"({cal_s:.1f} s)")  # fmt: skip
    print(f"  {'zone':<16} wrongly called changed")
    for j, z in enumerate(ids):
        print(f"  {names[z]:<16} {int(calls[:, j].sum()):>2} of {len(calls)}")
    share = float(calls.mean())
    print(
        f"  all zones: {int(calls.sum())} of {calls.size} = {100 * share:.1f} % "
        f"(goal ≤ 5 %)  ·  zone figures with a 95 % interval excluding 0: "
        f"{sum(figure_calls)} of {len(figure_calls)} = "
        f"{100 * sum(figure_calls) / max(len(figure_calls), 1):.1f} %"
    )
    if not a.keep and not a.reuse:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
