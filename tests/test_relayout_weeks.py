"""The two simulated weeks around a re-layout (:mod:`heatmap.simulate.relayout_weeks`):
the promo table's shoppers go where the table stands, the rows are what a store
database holds (16-hex pseudonyms, no address; the nodes' beacons flagged as such),
and the batches are recorded as the ingest writer records them. The whole run through
the live aggregator and ``footfall compare`` is ``bench/compare_calibration.py``
(about 50 s of a loaded 2-core machine per simulated half hour)."""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path

import numpy as np

from heatmap.simulate.people import Crowd
from heatmap.simulate.relayout_weeks import (
    BACK_AISLE,
    BEACON_FLAGS,
    PHONE_FLAGS,
    Relayout,
    draw_day,
    store_day,
)
from heatmap.simulate.scenario import PROMO_RADIUS_M
from heatmap.spatial.floorplan import load_default
from heatmap.spatial.walkable_grid import WalkableGrid

PLAN = load_default()


def test_the_promo_table_moves_between_the_weeks_and_nothing_else_does() -> None:
    r = Relayout()
    before, after = r.scenario(6), r.scenario(7)
    assert before.promo_table is None and after.promo_table == BACK_AISLE
    same = ("hours", "shoppers_per_hour_peak", "passersby_per_hour_peak", "radio")
    assert all(getattr(before, k) == getattr(after, k) for k in same)
    assert r.periods() == ("2026-11-02..2026-11-08", "2026-11-09..2026-11-15")
    grid = WalkableGrid.build(PLAN, cell_m=0.5)
    promo = next(z for z in PLAN.zones if z.id == "promo").polygon
    back = next(z for z in PLAN.zones if z.id == "back_aisle").polygon
    from shapely.geometry import Point

    old = Crowd(PLAN, grid, before, np.random.default_rng(1)).zone_spots["promo"]
    assert all(promo.contains(Point(*p)) for p in old)
    new = Crowd(PLAN, grid, after, np.random.default_rng(1)).zone_spots["promo"]
    assert len(new) > 5
    assert np.hypot(*(new - np.array(BACK_AISLE)).T).max() <= PROMO_RADIUS_M
    assert all(back.contains(Point(*p)) for p in new)
    # the other zones' spots are drawn the same way (the same crowd otherwise)
    a = Crowd(PLAN, grid, before, np.random.default_rng(1)).zone_spots
    b = Crowd(PLAN, grid, after, np.random.default_rng(1)).zone_spots
    for z in a:
        if z != "promo":
            assert np.array_equal(a[z], b[z]), z


def test_a_day_is_stored_as_the_store_database_holds_it(tmp_path: Path) -> None:
    sc = Relayout(hours=0.3).scenario(0)
    rows = draw_day(PLAN, sc)
    assert rows.shoppers > 0 and rows.obs and rows.doors
    t0, t1 = sc.t0_ms, sc.t0_ms + sc.duration_s * 1000
    nodes = {n.id for n in PLAN.nodes}
    for t, node, pid, rssi, band, flags, sig in rows.obs:
        assert t0 <= t < t1 and node in nodes and band == "ble" and sig is None
        assert re.fullmatch(r"[0-9a-f]{16}", pid) and -110 <= rssi <= 10
        assert flags in (PHONE_FLAGS, BEACON_FLAGS)
    assert [r[0] for r in rows.obs] == sorted(r[0] for r in rows.obs)
    beacons = {r[2] for r in rows.obs if r[5] == BEACON_FLAGS}
    assert len(beacons) == len(PLAN.nodes)  # one public address per node, all heard
    assert {d for _, d, _ in rows.doors} <= {d.id for d in PLAN.doors}
    ins = sum(1 for *_, way in rows.doors if way > 0)
    assert 0 < ins <= rows.shoppers + 5  # shoppers (and a few staff) come in
    db = tmp_path / "store.db"
    store_day(db, rows)
    store_day(db, draw_day(PLAN, Relayout(hours=0.3).scenario(1)))
    conn = sqlite3.connect(db)
    try:
        n_obs = conn.execute("SELECT COUNT(*) FROM obs").fetchone()[0]
        per = conn.execute(
            "SELECT publisher, MIN(seq), MAX(seq), COUNT(*), SUM(n) FROM batches "
            "WHERE kind = 'obs' GROUP BY publisher"
        ).fetchall()
    finally:
        conn.close()
    assert sum(p[4] for p in per) == n_obs > len(rows.obs)
    for _node, lo, hi, count, _ in per:  # consecutive seqs per node, across the days
        assert lo == 0 and hi == count - 1
