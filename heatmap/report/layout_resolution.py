"""What a node layout resolves, and a heatmap drawn at that resolution.

The resolution is the one `footfall plan` draws: the Cramér–Rao bound of one 5 s
window of a phone (:mod:`heatmap.spatial.crb`, the plan's own radio model), here the
median over the walkable in-store cells of the bound's median error radius. Half of
one window's positions can land that far from the truth, so the heat of two spots
closer than that is not told apart; the planner's map is smoothed to it: a Gaussian
whose median radius is that figure (per-axis σ = R / √(2 ln 2)), averaged over the
walkable floor only (no heat leaks into shelves or the street), with the period's
total kept.

>>> from heatmap.spatial.floorplan import load_default
>>> from heatmap.spatial.walkable_grid import WalkableGrid, samples_for
>>> plan = load_default()
>>> grid = WalkableGrid.build(plan, cell_m=1.0, samples=samples_for(1.0))
>>> r = resolution(plan, grid)
>>> 3.0 < r.median_error_m < 6.0, r.stated_m == round(r.median_error_m * 2) / 2
(True, True)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage

from heatmap.spatial import crb, node_placement
from heatmap.spatial.floorplan import FloorPlan
from heatmap.spatial.radio_model import RadioModel
from heatmap.spatial.walkable_grid import WalkableGrid

F = NDArray[np.float64]
MEDIAN_TO_SIGMA = float(np.sqrt(2 * np.log(2)))
"""median radius / per-axis σ of an isotropic 2-D Gaussian (1.177)"""


@dataclass(frozen=True)
class Resolution:
    median_error_m: float
    """median over the walkable floor of the one-window CRB median error radius, m"""
    stated_m: float
    """the same rounded to 0.5 m: what the report says the layout resolves"""
    p10_m: float
    p90_m: float
    """where the layout is best and worst (10th and 90th percentile over the floor), m"""

    @property
    def sigma_m(self) -> float:
        """per-axis σ of the smoothing (median radius = the stated resolution), m"""
        return self.stated_m / MEDIAN_TO_SIGMA


def resolution(plan: FloorPlan, grid: WalkableGrid, frames: float = 2.5) -> Resolution:
    """What the plan's nodes resolve on ``grid``'s walkable in-store cells."""
    lay = node_placement.Layout.build(plan, RadioModel.from_plan(plan), grid, frames=frames)
    med = crb.median_error(lay.bound(lay.fim))
    m = float(np.median(med))
    return Resolution(
        m,
        max(round(m * 2) / 2, grid.cell_m),
        float(np.percentile(med, 10)),
        float(np.percentile(med, 90)),
    )


def floor_mask(grid: WalkableGrid) -> NDArray[np.bool_]:
    """(nx·ny,) the cells a heatmap covers: walkable and inside the store."""
    return np.asarray(grid.walkable & grid.inside)


def smooth(grid: WalkableGrid, per_cell: F, sigma_m: float) -> F:
    """``per_cell`` (nx·ny) smoothed by a Gaussian of ``sigma_m`` over the floor only:
    each floor cell the kernel-weighted mean of the floor cells around it, scaled so the
    floor's total is kept; 0 off the floor.

    >>> from heatmap.spatial.floorplan import load_default
    >>> g = WalkableGrid.build(load_default(), cell_m=1.0)
    >>> x = np.zeros(g.nx * g.ny); x[g.cell_of(15.0, 10.0)] = 100.0
    >>> s = smooth(g, x, 2.0)
    >>> round(float(s.sum()), 6), bool(s.max() < 10), float(s[~floor_mask(g)].sum())
    (100.0, True, 0.0)
    """
    mask = floor_mask(grid)
    w = mask.reshape(grid.ny, grid.nx).astype(float)
    x = np.where(mask, per_cell, 0.0).reshape(grid.ny, grid.nx)
    s = sigma_m / grid.cell_m
    num = ndimage.gaussian_filter(x, s, mode="constant")
    den = ndimage.gaussian_filter(w, s, mode="constant")
    out = np.where(w > 0, num / np.maximum(den, 1e-12), 0.0).ravel()
    total, got = float(x.sum()), float(out.sum())
    return out * (total / got) if got > 0 else out


def pearson_at(grid: WalkableGrid, est: F, truth: F, sigma_m: float) -> float:
    """Pearson r of two per-cell maps over the floor, both smoothed to ``sigma_m``."""
    mask = floor_mask(grid)
    a, b = smooth(grid, est, sigma_m)[mask], smooth(grid, truth, sigma_m)[mask]
    if a.size < 2 or a.std() == 0 or b.std() == 0:
        return float("nan")
    return float(np.corrcoef(a, b)[0, 1])
