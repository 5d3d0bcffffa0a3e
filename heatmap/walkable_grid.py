"""The walkable grid: square cells over the store (and its street), with the
cells people can stand in and the moves between neighbours that no wall or
shelf blocks.

>>> from heatmap.floorplan import load_default
>>> g = WalkableGrid.build(load_default(), cell_m=0.5)
>>> bool(g.walkable[g.cell_of(15.0, 2.0)]), bool(g.walkable[g.cell_of(15.0, 5.8)])
(True, False)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import shapely
from numpy.typing import NDArray
from scipy import sparse

from heatmap.floorplan import FloorPlan
from heatmap.geometry import segments_cross

# 8-neighbourhood offsets (drow, dcol)
_NEIGHBOURS = ((0, 1), (1, 0), (1, 1), (1, -1))


@dataclass(frozen=True)
class WalkableGrid:
    x0: float
    y0: float
    cell_m: float
    nx: int
    ny: int
    walkable: NDArray[np.bool_]
    """flat (ny*nx,) mask of cells a person can stand in"""
    inside: NDArray[np.bool_]
    """flat mask: cell centre inside the store outline"""
    centers: NDArray[np.float64]
    """(ny*nx, 2) cell centres, m"""
    graph: sparse.csr_matrix
    """move graph between walkable neighbours, weights = distance (m)"""

    @classmethod
    def build(cls, plan: FloorPlan, cell_m: float = 0.5, clearance_m: float = 0.2) -> WalkableGrid:
        """Grid over the plan's bounds; a cell is walkable if its centre is in the store or
        street and at least ``clearance_m`` away from every shelf."""
        bx0, by0, bx1, by1 = plan.bounds
        nx = int(np.ceil((bx1 - bx0) / cell_m))
        ny = int(np.ceil((by1 - by0) / cell_m))
        xs = bx0 + (np.arange(nx) + 0.5) * cell_m
        ys = by0 + (np.arange(ny) + 0.5) * cell_m
        gx, gy = np.meshgrid(xs, ys)
        centers = np.column_stack([gx.ravel(), gy.ravel()])
        pts = shapely.points(centers)
        inside = shapely.contains(plan.outline_polygon, pts)
        area = inside.copy()
        if plan.street_polygon is not None:
            area |= shapely.contains(plan.street_polygon, pts)
        for shelf in plan.shelf_polygons():
            area &= ~shapely.contains(shelf.buffer(clearance_m), pts)
        graph = _move_graph(centers, area, nx, ny, plan.motion_barriers())
        return cls(bx0, by0, cell_m, nx, ny, area, inside, centers, graph)

    def cell_of(self, x: float, y: float) -> int:
        c = int((x - self.x0) / self.cell_m)
        r = int((y - self.y0) / self.cell_m)
        c = min(max(c, 0), self.nx - 1)
        r = min(max(r, 0), self.ny - 1)
        return r * self.nx + c

    def cells_of(self, xy: NDArray[np.float64]) -> NDArray[np.int64]:
        c = np.clip(((xy[:, 0] - self.x0) / self.cell_m).astype(np.int64), 0, self.nx - 1)
        r = np.clip(((xy[:, 1] - self.y0) / self.cell_m).astype(np.int64), 0, self.ny - 1)
        return r * self.nx + c

    def nearest_walkable(self, x: float, y: float) -> int:
        idx = np.flatnonzero(self.walkable)
        d = np.hypot(self.centers[idx, 0] - x, self.centers[idx, 1] - y)
        return int(idx[np.argmin(d)])


def _move_graph(
    centers: NDArray[np.float64],
    walk: NDArray[np.bool_],
    nx: int,
    ny: int,
    barriers: list[tuple[tuple[float, float], tuple[float, float]]],
) -> sparse.csr_matrix:
    idx = np.arange(nx * ny).reshape(ny, nx)
    rows, cols, w = [], [], []
    for dr, dc in _NEIGHBOURS:
        r0 = slice(0, ny - dr)
        if dc >= 0:
            a = idx[r0, 0 : nx - dc]
            b = idx[dr:ny, dc:nx]
        else:
            a = idx[r0, -dc:nx]
            b = idx[dr:ny, 0 : nx + dc]
        a, b = a.ravel(), b.ravel()
        ok = walk[a] & walk[b]
        a, b = a[ok], b[ok]
        p, q = centers[a], centers[b]
        blocked = np.zeros(len(a), bool)
        for s0, s1 in barriers:
            blocked |= segments_cross(p, q, np.asarray(s0, float), np.asarray(s1, float))
        a, b = a[~blocked], b[~blocked]
        d = np.hypot(*(centers[b] - centers[a]).T)
        rows += [a, b]
        cols += [b, a]
        w += [d, d]
    n = nx * ny
    return sparse.csr_matrix(
        (np.concatenate(w), (np.concatenate(rows), np.concatenate(cols))), shape=(n, n)
    )
