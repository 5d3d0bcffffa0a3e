"""The rooms shoppers reach (heatmap/spatial/shopper_area.py) and the installer's
placement map drawn from them (heatmap/report/placement_map.py)."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.patches import Polygon as MplPolygon
from matplotlib.text import Annotation
from test_plan_cli import DEFAULT_PLAN

from heatmap.report import placement_map
from heatmap.spatial.floorplan import FloorPlan, load_default, parse
from heatmap.spatial.node_placement import Layout
from heatmap.spatial.radio_model import RadioModel
from heatmap.spatial.shopper_area import ShopperArea, restrict
from heatmap.spatial.walkable_grid import WalkableGrid


def _plan(**change: Any) -> FloorPlan:
    """The bundled store with a back room 6 m deep behind its north wall; ``change``
    replaces top-level tables of the document."""
    doc = tomllib.loads(DEFAULT_PLAN.read_text())
    doc["outline"]["points"] = [[0, 0], [30, 0], [30, 26], [0, 26]]
    doc.update(change)
    return parse(doc)


def _wall(wid: str, a: list[float], b: list[float]) -> dict[str, Any]:
    return {"id": wid, "points": [a, b], "attenuation_db": 12.0}


def test_the_bundled_store_is_one_room_doorway_walls_and_all() -> None:
    """The fitting rooms' walls leave a 1.5 m doorway: not a room of their own."""
    area = ShopperArea.of(load_default())
    assert len(area.rooms) == 1 and not area.staff_rooms
    assert area.contains(np.array([[28.0, 18.0], [15.0, 10.0], [15.0, -2.0]])).tolist() == [
        True,
        True,
        False,
    ]


def test_a_room_behind_a_full_width_wall_with_no_door_nor_zone_is_staff_only() -> None:
    area = ShopperArea.of(_plan())
    assert len(area.rooms) == 2 and len(area.staff_rooms) == 1
    assert area.staff_rooms[0].bounds == (0.0, 20.0, 30.0, 26.0)
    assert area.contains(np.array([[10.0, 23.0], [10.0, 19.0]])).tolist() == [False, True]


def test_a_zone_in_the_back_room_makes_it_the_shoppers() -> None:
    doc = tomllib.loads(DEFAULT_PLAN.read_text())
    zones = [*doc["zones"], {"id": "outlet", "points": [[2, 21], [12, 21], [12, 25], [2, 25]]}]
    area = ShopperArea.of(_plan(zones=zones))
    assert len(area.rooms) == 2 and not area.staff_rooms


def test_a_wall_stopping_short_of_the_outline_still_closes_the_room() -> None:
    """20 cm is no doorway (a plan drawn by hand); 1 m is."""
    doc = tomllib.loads(DEFAULT_PLAN.read_text())
    walls = [w for w in doc["walls"] if w["id"] != "north"]
    short = ShopperArea.of(_plan(walls=[*walls, _wall("back", [0.2, 20], [30, 20])]))
    assert len(short.staff_rooms) == 1
    open_ = ShopperArea.of(_plan(walls=[*walls, _wall("back", [1.0, 20], [30, 20])]))
    assert len(open_.rooms) == 1 and not open_.staff_rooms


def test_a_plan_without_doors_or_zones_is_all_the_shoppers() -> None:
    area = ShopperArea.of(_plan(doors=[], zones=[], tiles=[]))
    assert len(area.rooms) == 2 and not area.staff_rooms


def test_restrict_drops_candidates_and_cells_in_the_staff_room() -> None:
    plan = _plan()
    model = RadioModel.from_plan(plan)
    lay = Layout.build(plan, model, WalkableGrid.build(plan, cell_m=1.0))
    area = ShopperArea.of(plan)
    kept = restrict(lay, area)
    assert (lay.candidates[:, 1] > 20).any() and not (kept.candidates[:, 1] > 19.75).any()
    ys = kept.grid.centers[kept.cells][:, 1]
    assert ys.max() < 20 and len(kept.cells) < len(lay.cells)
    assert kept.cand_fim.shape == (len(kept.candidates), len(kept.cells), 3, 3)
    # the information kept is the information of the spots and cells kept
    k = int(np.flatnonzero((lay.candidates == kept.candidates[0]).all(axis=1))[0])
    c = int(np.flatnonzero(lay.cells == kept.cells[-1])[0])
    assert np.array_equal(kept.cand_fim[0, -1], lay.cand_fim[k, c])
    spots, _ = kept.suggest(3)
    assert area.contains(spots).all()


def test_the_map_says_what_its_colours_mean_and_where_each_node_goes(tmp_path: Path) -> None:
    plan = _plan()
    model = RadioModel.from_plan(plan)
    area = ShopperArea.of(plan)
    lay = restrict(Layout.build(plan, model, WalkableGrid.build(plan, cell_m=1.0)), area)
    spots, _ = lay.suggest(2)
    fig = placement_map.figure(
        [
            placement_map.Panel("now", lay, lay.fim),
            placement_map.Panel("with 2 more", lay, lay.with_nodes(spots), spots),
        ],
        "title",
        "subtitle",
        area.staff_rooms,
    )
    colour_bar = fig.axes[-1]
    assert colour_bar.get_ylabel() == "expected position error, m"
    now, after = fig.axes[0], fig.axes[1]
    labels = [t.get_text() for t in after.texts if isinstance(t, Annotation)]
    for i, (x, y) in enumerate(spots, start=1):
        assert f"{i}: ({x:.1f}, {y:.1f})" in labels
    for n in plan.nodes:
        assert f"({n.x:.1f}, {n.y:.1f})" in labels
    assert not [t.get_text() for t in now.texts if re.match(r"\d+: \(", t.get_text())]
    hatched = [p for p in after.patches if isinstance(p, MplPolygon) and p.get_hatch() == "xx"]
    assert len(hatched) == 1
    assert hatched[0].get_path().get_extents().bounds == (0.0, 20.0, 30.0, 6.0)
    assert any("staff only" in t.get_text() for t in after.texts)
    # the staff room has no colour: the map is masked there
    grid = placement_map.median_error_grid(lay, lay.fim)
    g = lay.grid
    row = int((23.0 - g.y0) / g.cell_m)
    assert np.isnan(grid[row]).all()
    assert np.isfinite(grid[int((10.0 - g.y0) / g.cell_m)]).any()
