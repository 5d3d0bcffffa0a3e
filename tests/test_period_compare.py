"""Before / after from stored aggregates (issue 19, `footfall compare`): a zone whose visits
moved is called changed with an interval excluding 0; over 20 seeds of an unchanged store the
share of zone figures wrongly called changed stays near the nominal 5 %.

The stored day pieces are drawn here the way a store's days vary: visitors per day vary,
each zone's visit rate varies from day to day (log-normal, 10 %), visits are Poisson.
"""

from __future__ import annotations

import subprocess
import sys
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import pytest

from heatmap.aggregator import hour_aggregates, store_db
from heatmap.report import period_compare
from heatmap.spatial.floorplan import load_default
from heatmap.spatial.walkable_grid import WalkableGrid, samples_for
from heatmap.spatial.zones import zone_index

PLAN = load_default()
TZ = PLAN.timezone
DAY_MS = 86_400_000
RATES = np.linspace(0.15, 0.6, len(PLAN.zones))
"""visits per visitor of each zone"""


def _day0(d: int) -> int:
    return int(datetime(2026, 11, 2 + d, tzinfo=ZoneInfo(TZ)).timestamp() * 1000)


def _store_days(
    db: Path, seed: int, days: int = 14, lift: dict[str, float] | None = None, heat: bool = False
) -> None:
    """``days`` stored days; from day ``days // 2`` on, a zone's visit rate × ``lift``
    (and, with ``heat``, its cells' person-seconds in the day's heatmap)."""
    rng = np.random.default_rng(seed)
    conn = store_db.connect(db)
    grid = WalkableGrid.build(PLAN, cell_m=1.0, samples=samples_for(1.0))
    zone_of = zone_index(PLAN, grid.centers)
    floor = np.flatnonzero(grid.walkable & grid.inside)
    for d in range(days):
        a = _day0(d)
        b = a + DAY_MS
        visitors = int(rng.poisson(300))
        rf = int(visitors * 0.8)
        period = hour_aggregates.period(a, b, TZ)
        hour_aggregates.put_aggregate(
            conn, "footfall", period, "store", a, b,
            {"v": 1, "unit": "day", "k": 5, "visitors": visitors, "rf": {"visitor_devices": rf}},
        )  # fmt: skip
        for z, rate in zip(PLAN.zones, RATES, strict=True):
            r = rate * (lift or {}).get(z.id, 1.0) if d >= days // 2 else rate
            visits = int(rng.poisson(visitors * r * rng.lognormal(0, 0.1)))
            hour_aggregates.put_aggregate(
                conn, "zone", period, z.id, a, b,
                {
                    "v": 1, "unit": "day", "k": 5, "zone": z.id,
                    "visits": visits if visits >= 5 else None,
                    "devices": visits if visits >= 5 else None,
                    "person_seconds": round(visits * float(rng.gamma(4, 20)), 1),
                    "reach_share": round(min(visits * 0.7 / rf, 1.0), 4),
                    "dwell_p50_s": round(float(rng.normal(70, 6)), 1),
                },
            )  # fmt: skip
        if heat:
            gain = np.ones(len(PLAN.zones))
            if d >= days // 2:
                for i, z in enumerate(PLAN.zones):
                    gain[i] = (lift or {}).get(z.id, 1.0)
            w = np.where(zone_of[floor] >= 0, gain[np.maximum(zone_of[floor], 0)], 1.0)
            cells = {
                int(c): round(float(v), 1) for c, v in zip(floor, rng.gamma(20, 5 * w), strict=True)
            }
            hour_aggregates.put_aggregate(
                conn, "heatmap", period, "store", a, b,
                {"v": 1, "unit": "day", "k": 5,
                 "grid": {"cell_m": 1.0, "nx": grid.nx, "ny": grid.ny}, "cells": cells},
            )  # fmt: skip
    conn.commit()
    conn.close()


BEFORE = (_day0(0), _day0(7))
AFTER = (_day0(7), _day0(14))


def test_a_moved_zone_is_changed_and_the_rest_is_not(tmp_path: Path) -> None:
    db = tmp_path / "store.db"
    _store_days(db, seed=1, lift={"promo": 1.4})
    conn = store_db.connect(db, readonly=True)
    cmp = period_compare.compare(conn, PLAN, BEFORE, AFTER, resamples=1000)
    conn.close()
    assert cmp.unit == "day" and cmp.pieces == (7, 7)
    promo = next(c for c in cmp.changes if c.zone == "promo" and c.figure == "visits_per_100")
    assert promo.changed and promo.diff_ci[0] > 0
    assert 0.2 < promo.rel < 0.6 and promo.rel_ci[0] < promo.rel < promo.rel_ci[1]
    line = period_compare.sentence(promo)
    assert line.startswith("Promo table: visits per 100 visitors ") and "95 % CI" in line
    others = [c for c in cmp.changes if c.zone != "promo" and c.figure == "visits_per_100"]
    assert sum(c.changed for c in others) <= 1, [period_compare.sentence(c) for c in others]
    top = period_compare.summary(cmp)
    assert line in top and top[0].startswith("Promo table: "), top


@pytest.mark.slow
def test_an_unchanged_store_is_rarely_called_changed(tmp_path: Path) -> None:
    """The intervals are calibrated: over 20 seeds, every zone and figure of an unchanged
    store, the share called changed is at most about the nominal 5 %."""
    calls = []
    for seed in range(20):
        db = tmp_path / f"s{seed}.db"
        _store_days(db, seed=100 + seed)
        conn = store_db.connect(db, readonly=True)
        cmp = period_compare.compare(conn, PLAN, BEFORE, AFTER, seed=seed, resamples=1000)
        conn.close()
        calls += [c.changed for c in cmp.changes]
    share = sum(calls) / len(calls)
    print(f"wrongly called changed: {sum(calls)} of {len(calls)} ({100 * share:.1f} %)")
    assert share <= 0.05, share


def test_too_few_pieces_is_one_clear_error(tmp_path: Path) -> None:
    db = tmp_path / "store.db"
    _store_days(db, seed=2, days=2)
    r = subprocess.run(
        [
            sys.executable, "-m", "sensing.cli.main", "compare", "--db", str(db),
            "--before", "2026-11-02..2026-11-02", "--after", "2026-11-20..2026-11-21",
            "--out", str(tmp_path / "cmp"),
        ],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert r.returncode == 1 and r.stderr.startswith("footfall: error: ")
    assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr


def test_compare_writes_the_table_the_summary_and_the_difference_map(tmp_path: Path) -> None:
    db = tmp_path / "store.db"
    _store_days(db, seed=3, lift={"checkout": 0.6}, heat=True)
    out = tmp_path / "cmp"
    r = subprocess.run(
        [
            sys.executable, "-m", "sensing.cli.main", "compare", "--db", str(db),
            "--before", "2026-11-02..2026-11-08", "--after", "2026-11-09..2026-11-15",
            "--out", str(out),
        ],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert "Checkout: visits per 100 visitors" in r.stdout
    rows = (out / "compare_zones.csv").read_text().splitlines()
    assert rows[0].startswith("zone,name,figure,before,after")
    assert any(
        x.startswith("checkout,Checkout,visits_per_100,") and x.endswith(",changed") for x in rows
    )
    assert (out / "compare_summary.txt").read_text().startswith("Checkout:")
    assert (out / "compare_difference.png").stat().st_size > 10_000
