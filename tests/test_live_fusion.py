"""The live aggregator's fusion pieces on real SQLite files: floor tiles, the residents'
place, the live occupancy (issue 17)."""

from __future__ import annotations

import dataclasses
import sqlite3
from pathlib import Path

import numpy as np
import pytest

from heatmap.aggregator import store_db
from heatmap.aggregator.live.floor_presence import tile_presence
from heatmap.aggregator.live.occupancy_now import occupancy_payload
from heatmap.aggregator.live.period_figures import _resident_profile
from heatmap.spatial.floorplan import load_default
from heatmap.spatial.walkable_grid import WalkableGrid, samples_for
from sensing.wire import payloads

DAY0 = 1_795_129_200_000
"""2026-11-20 00:00 in Europe/Amsterdam (the bundled plan's time zone)"""
T = DAY0 + 10 * 3_600_000


@pytest.fixture
def db(tmp_path: Path) -> sqlite3.Connection:
    conn = store_db.connect(tmp_path / "store.db")
    yield conn
    conn.close()


def test_tiles_give_pressed_seconds_on_the_cells_they_cover(db: sqlite3.Connection) -> None:
    plan = load_default()
    grid = WalkableGrid.build(plan, cell_m=1.0, samples=samples_for(1.0))
    arr = plan.tiles[0]
    # tile 0 pressed before the period and released 30 s into it; tile 5 pressed 10 s
    # inside; tile 9 pressed at the end and still down
    ev = [
        (T - 60_000, arr.id, 0, 1),
        (T + 30_000, arr.id, 0, 0),
        (T + 100_000, arr.id, 5, 1),
        (T + 110_000, arr.id, 5, 0),
        (T + 290_000, arr.id, 9, 1),
    ]
    db.executemany("INSERT INTO floor_events VALUES (?,?,?,?)", ev)
    db.commit()
    tp = tile_presence(db, plan, grid, T, T + 300_000, DAY0)
    assert tp.person_seconds.sum() == pytest.approx(30 + 10 + 10)
    assert tp.presses.sum() == 2  # two presses began in the period
    x0, y0, x1, y1 = arr.bounds
    c = grid.centers
    on = (c[:, 0] >= x0) & (c[:, 0] < x1) & (c[:, 1] >= y0) & (c[:, 1] < y1)
    assert (tp.covered == on).all() and tp.covered.sum() > 0
    assert tp.person_seconds[~tp.covered].sum() == 0


def test_the_residents_place_is_the_cells_intercept_against_the_door() -> None:
    """Staff at one cell all day, visitors elsewhere in proportion to the door
    occupancy: the profile puts the residents at the staff's cell."""
    rng = np.random.default_rng(3)
    n_int, n_cells = 36, 50
    occ = rng.uniform(0, 20, n_int)
    visitors_where = rng.dirichlet(np.ones(n_cells))
    m = occ[:, None] * 0.7 * visitors_where[None, :] + rng.normal(0, 0.02, (n_int, n_cells))
    m[:, 7] += 2.0  # two staff phones at cell 7
    m = np.maximum(m, 0)
    prof = _resident_profile(occ, list(m), list(m))
    assert prof is not None and int(np.argmax(prof)) == 7 and prof[7] > 0.8
    assert _resident_profile(np.full(n_int, 3.0), list(m), list(m)) is None  # no variation


def test_live_occupancy_from_the_door_and_suppressed_under_k(db: sqlite3.Connection) -> None:
    plan = load_default()
    db.executemany(
        "INSERT INTO door_events VALUES (?,?,?)",
        [(T + i * 1000, "main_w", 1) for i in range(9)] + [(T + 20_000, "main_w", -1)],
    )
    db.commit()
    p = occupancy_payload(db, plan, T + 60_000, k=5)
    payloads.validate("occupancy", p)
    assert p["source"] == "door" and p["occupancy"] == 8 and not p["suppressed"]
    assert p["low"] <= 8 <= p["high"] and 0 < p["confidence"] <= 1
    db.executemany(
        "INSERT INTO door_events VALUES (?,?,?)", [(T + 30_000 + i, "main_w", -1) for i in range(5)]
    )
    db.commit()
    q = occupancy_payload(db, plan, T + 60_000, k=5)
    payloads.validate("occupancy", q)
    assert q["suppressed"] and q["occupancy"] is None and q["low"] is None


def test_live_occupancy_from_rf_without_door_beams(db: sqlite3.Connection) -> None:
    no_doors = dataclasses.replace(load_default(), doors=())
    db.execute(
        "INSERT INTO live_intervals VALUES (?,?,?,?,?,?)",
        (T, T + 300_000, T + 400_000, 100, 12.0 * 300, np.zeros(4, np.float32).tobytes()),
    )
    db.commit()
    p = occupancy_payload(db, no_doors, T + 400_000, k=5)
    payloads.validate("occupancy", p)
    assert p["source"] == "rf" and p["occupancy"] == 12 and p["as_of"] == T + 300_000
    assert p["low"] < 12 < p["high"]
