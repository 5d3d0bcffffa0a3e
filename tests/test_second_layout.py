"""The benches' second, unseen layout is a valid store the simulator really runs.

``bench/second_layout.py`` measures every accuracy figure on it; these check
that what it measures is a sensible store day: the plan validates, people walk
only where people can walk, buyers are served at *its* tills (the simulator's
checkout comes from the scenario, no longer from the bundled store's constants)
and its cashiers stand behind its counter.
"""

from __future__ import annotations

import dataclasses
import importlib.util
from pathlib import Path
from types import ModuleType

import numpy as np
import shapely

from heatmap.simulate.people import populate
from heatmap.spatial.floorplan import load
from heatmap.spatial.walkable_grid import WalkableGrid

ROOT = Path(__file__).resolve().parents[1]


def _bench() -> ModuleType:
    path = ROOT / "bench" / "second_layout.py"
    spec = importlib.util.spec_from_file_location("bench_second_layout", path)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_second_layout_day_uses_its_own_tills_and_floor() -> None:
    bench = _bench()
    plan = load(bench.PLAN)
    assert len(plan.nodes) == 20 and plan.store_id == "grocer"
    sc = dataclasses.replace(bench.SCENARIO, hours=1.0, seed=3)
    grid = WalkableGrid.build(plan, cell_m=0.5)
    people = populate(plan, grid, sc, np.random.default_rng(3))
    co = bench.CHECKOUT
    keys = np.array([k for p in people for k in p.keys])
    pts = shapely.points(keys[:, 1:])
    floor = plan.outline_polygon.union(plan.street_polygon)
    assert shapely.covers(floor.buffer(0.05), pts).all(), "someone left the floor"
    for shelf in plan.shelf_polygons():
        assert not shapely.contains(shelf.buffer(-0.05), pts).any(), "someone in a shelf"
    # passers-by walk along this street (north-south), never through the store
    walkers = [np.array([k[1:] for k in p.keys]) for p in people if p.role == "passerby"]
    assert len(walkers) > 100
    assert all(abs(w[-1, 1] - w[0, 1]) > 20 > abs(w[-1, 0] - w[0, 0]) for w in walkers)
    assert not any(shapely.contains(plan.outline_polygon, shapely.points(w)).any() for w in walkers)
    tills = np.array(co.tills)
    served = [
        p
        for p in people
        if p.role == "shopper" and any(np.hypot(*(tills - k[1:]).T).min() < 0.8 for k in p.keys)
    ]
    assert len(served) >= 10, "buyers are served at the layout's own tills"
    cashiers = [p for p in people if p.role == "staff"][: len(co.cashiers)]
    for p, spot in zip(cashiers, co.cashiers, strict=True):
        xy = np.array([k[1:] for k in p.keys])
        assert np.hypot(*(xy - spot).T).max() < 2.0, "a cashier stays at the till"
