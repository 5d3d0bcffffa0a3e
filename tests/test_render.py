"""What the heatmap pictures show: cells where they are, doors pointing in."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from heatmap.report import render
from heatmap.spatial.floorplan import load, load_default
from heatmap.spatial.walkable_grid import WalkableGrid

SECOND = Path(__file__).resolve().parents[1] / "bench" / "layouts" / "corner_grocer.toml"


def _pixel(fig: Figure, xy: tuple[float, float]) -> np.ndarray:
    fig.canvas.draw()
    rgba = np.asarray(fig.canvas.buffer_rgba())  # type: ignore[attr-defined]
    px, py = fig.axes[0].transData.transform(xy)
    return rgba[round(float(rgba.shape[0] - py)), round(float(px)), :3].astype(int)


def test_a_busy_cell_is_drawn_in_its_cell_and_nowhere_else() -> None:
    plan = load_default()
    grid = WalkableGrid.build(plan, cell_m=1.0, samples=2)
    per_cell = np.zeros(grid.nx * grid.ny)
    hot = grid.cell_of(12.5, 14.8)  # an aisle cell, its neighbours walkable and empty
    assert grid.walkable[hot] and grid.walkable[grid.cell_of(13.5, 14.8)]
    per_cell[hot] = 1000.0
    fig = render.heatmap_figure(plan, grid, per_cell, "one hot cell")
    cx, cy = grid.centers[hot]
    inside = _pixel(fig, (cx + 0.3, cy))
    beside = _pixel(fig, (cx + 0.8, cy))  # 0.3 m into the empty neighbour
    floor = _pixel(fig, (cx + 3.0, cy))
    assert inside[0] > 100 and inside[1] < 100, f"the hot cell is dark red: {inside}"
    # interpolation smeared cells across their edges and through walls; not any more
    assert np.abs(beside - floor).max() <= 8, f"{beside} next to the cell vs floor {floor}"


def test_door_arrows_point_into_the_store() -> None:
    south = load_default()  # doors in the south front: in is north
    for d in south.doors:
        assert np.allclose(d.inward(south.outline_polygon), (0.0, 1.0))
    west = load(SECOND)  # doors in the west front: in is east
    for d in west.doors:
        assert np.allclose(d.inward(west.outline_polygon), (1.0, 0.0))
