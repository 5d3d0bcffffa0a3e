"""The live aggregator's fusion pieces on real SQLite files: floor tiles, the residents'
sessions, the live occupancy (issue 17)."""

from __future__ import annotations

import dataclasses
import sqlite3
from pathlib import Path

import numpy as np
import pytest

from heatmap.aggregator import store_db
from heatmap.aggregator.live.floor_presence import tile_presence
from heatmap.aggregator.live.occupancy_now import occupancy_payload
from heatmap.aggregator.live.period_figures import period_sessions
from heatmap.aggregator.live.settings import LiveSettings
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


def test_a_phone_that_stays_put_is_taken_out_and_a_browsing_one_kept(
    db: sqlite3.Connection,
) -> None:
    """A cashier's phone located behind the counter for 12 minutes is a resident: its
    device-seconds come out where it was; a visitor walking for as long, a visitor
    standing at the till for 3 minutes and a still phone of another cell outside the
    period are not taken out of the period."""
    plan = load_default()
    grid = WalkableGrid.build(plan, cell_m=1.0, samples=samples_for(1.0))
    n = grid.nx * grid.ny
    s = LiveSettings()
    rng = np.random.default_rng(5)
    t = np.arange(T, T + 720_000, s.window_ms)
    rows = []

    def add(pid: str, ts: np.ndarray, xy: np.ndarray) -> None:
        for ti, (x, y) in zip(ts.tolist(), xy.tolist(), strict=True):
            rows.append((ti, pid, x, y, 1.0, 1, grid.cell_of(x, y)))

    add("cashier", t, np.array([4.0, 1.2]) + rng.normal(0, 0.5, (len(t), 2)))
    add("browser", t, np.column_stack([np.linspace(4, 21, len(t)), np.full(len(t), 11.0)]))
    short = t[:36]  # 3 minutes at the till
    add("buyer", short, np.array([5.8, 3.3]) + rng.normal(0, 0.5, (len(short), 2)))
    later = t + 3_600_000  # still, but in the next hour
    add("shelf", later, np.array([26.0, 8.0]) + rng.normal(0, 0.3, (len(later), 2)))
    db.executemany("INSERT INTO track_windows VALUES (?,?,?,?,?,?,?)", rows)
    db.commit()
    ses, pairs, res = period_sessions(db, s, plan.timezone, T, T + 3_600_000, n)
    assert len(ses) == 3 and len(np.unique(pairs[:, 0])) == 3 and res.sessions == 1
    assert res.cells.sum() == pytest.approx(len(t) * s.window_ms / 1000)
    cashier = {r[6] for r in rows if r[1] == "cashier"}
    assert set(np.flatnonzero(res.cells).tolist()) <= cashier
    _, _, nxt = period_sessions(db, s, plan.timezone, T + 3_600_000, T + 7_200_000, n)
    assert nxt.sessions == 1 and nxt.cells[grid.cell_of(26.0, 8.0)] > 0


def test_a_residents_next_address_is_static_from_its_first_window(
    db: sqlite3.Connection,
) -> None:
    """A cashier's phone rotates its address after 12 minutes: the next address, 8
    minutes old at the period's end, starts where and when the last one went quiet and
    comes out too; a visitor who steps into the same spot 10 minutes after it went quiet,
    or at once but 6 m away, stays in (the period is computed at 20 minutes, as live)."""
    plan = load_default()
    grid = WalkableGrid.build(plan, cell_m=1.0, samples=samples_for(1.0))
    n = grid.nx * grid.ny
    s = LiveSettings()
    rng = np.random.default_rng(9)
    w = s.window_ms
    rows = []

    def add(pid: str, t0: int, t1: int, x: float, y: float) -> None:
        ts = np.arange(t0, t1, w)
        xy = np.array([x, y]) + rng.normal(0, 0.4, (len(ts), 2))
        for ti, (a, b) in zip(ts.tolist(), xy.tolist(), strict=True):
            rows.append((ti, pid, a, b, 1.0, 1, grid.cell_of(a, b)))

    add("old", T, T + 720_000, 4.0, 1.2)
    add("new", T + 725_000, T + 1_200_000, 4.2, 1.3)  # 8 min, till the period's end
    add("late", T + 1_320_000, T + 1_500_000, 4.1, 1.2)  # 10 min after: a visitor
    add("aside", T + 725_000, T + 1_200_000, 10.0, 2.0)  # at once, 6 m away
    db.executemany("INSERT INTO track_windows VALUES (?,?,?,?,?,?,?)", rows)
    db.commit()
    _, _, res = period_sessions(db, s, plan.timezone, T + 900_000, T + 1_200_000, n)
    assert res.sessions == 1  # new (old went quiet at 12 min)
    assert res.cells.sum() == pytest.approx(60 * w / 1000)  # new's windows from 15 min
    assert res.cells[grid.cell_of(10.0, 2.0)] == 0
    # the same with "old" alone too short to be static: nothing to continue
    db.execute("DELETE FROM track_windows WHERE pid = 'old' AND t_ms < ?", (T + 300_000,))
    db.commit()
    _, _, res2 = period_sessions(db, s, plan.timezone, T + 900_000, T + 1_200_000, n)
    assert res2.sessions == 0 and res2.cells.sum() == 0
    _, _, res3 = period_sessions(db, s, plan.timezone, T + 1_200_000, T + 1_800_000, n)
    assert res3.cells[grid.cell_of(4.1, 1.2)] == 0  # late: 3 min, not continued


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
