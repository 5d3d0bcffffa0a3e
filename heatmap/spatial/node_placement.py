"""Where to put ceiling nodes: the Cramér–Rao bound over the floor plan, and
greedy placement that lowers it.

The bound of one window at every cell (:mod:`heatmap.spatial.crb`) is additive in
Fisher information over nodes, so the effect of adding a node at any of a few
hundred candidate ceiling spots on every cell is one batched 3 × 3 inversion.
Placement minimises the mean over walkable in-store cells of the RMSE bound:
greedily one node at a time (the objective is a sum of convex-ish per-cell
terms with diminishing returns), then a few rounds of moving each new node to
its best spot given the others (coordinate descent).

>>> from heatmap.spatial.floorplan import load_default
>>> from heatmap.spatial.walkable_grid import WalkableGrid
>>> plan = load_default()
>>> lay = Layout.build(plan, RadioModel.from_plan(plan), WalkableGrid.build(plan, cell_m=1.0))
>>> before = lay.score(lay.fim)
>>> new, after = lay.suggest(1)
>>> len(new), bool(after < before)
(1, True)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import shapely
from numpy.typing import NDArray

from heatmap.spatial import crb
from heatmap.spatial.floorplan import FloorPlan
from heatmap.spatial.geometry import wall_crossings
from heatmap.spatial.radio_model import MIN_DISTANCE_M, RadioModel
from heatmap.spatial.walkable_grid import WalkableGrid

F = NDArray[np.float64]
POSITION_PRIOR_M = 30.0
"""a weak prior (σ, m) on position keeps the bound finite where almost nobody hears"""


@dataclass
class Layout:
    """Fisher information of a layout at the walkable in-store cells, and candidate spots."""

    plan: FloorPlan
    model: RadioModel
    grid: WalkableGrid
    cells: NDArray[np.int64]
    """grid indices of the cells scored (walkable, inside the outline)"""
    fim: F
    """(C, 3, 3) information of (x, y, offset) at those cells from the current nodes"""
    candidates: F
    """(K, 2) ceiling spots a node could go, m"""
    cand_fim: F
    """(K, C, 3, 3) information one node at each candidate adds at each cell"""
    frames: float
    band: str

    @classmethod
    def build(
        cls,
        plan: FloorPlan,
        model: RadioModel,
        grid: WalkableGrid,
        frames: float = 2.5,
        band: str = "ble",
        candidate_step_m: float = 1.0,
        mount_height_m: float | None = None,
        candidate_model: RadioModel | None = None,
    ) -> Layout:
        """Score cells of ``grid``; candidates on a ``candidate_step_m`` lattice inside the outline.

        ``frames``: frames a phone sends per window (BLE at ~2 s in a 5 s window: 2.5).
        ``candidate_model``: radio parameters of a new node (default: the mean of
        ``model``'s nodes).
        """
        cells = np.flatnonzero(grid.walkable & grid.inside)
        xy = grid.centers[cells]
        fim = crb.fisher(model, xy, frames, band)
        fim[:, 0, 0] += 1.0 / POSITION_PRIOR_M**2
        fim[:, 1, 1] += 1.0 / POSITION_PRIOR_M**2
        x0, y0, x1, y1 = plan.outline_polygon.bounds
        gx = np.arange(x0 + candidate_step_m / 2, x1, candidate_step_m)
        gy = np.arange(y0 + candidate_step_m / 2, y1, candidate_step_m)
        cand = np.array([(x, y) for y in gy for x in gx])
        cand = cand[shapely.contains(plan.outline_polygon, shapely.points(cand))]
        cm = candidate_model or model
        z = mount_height_m if mount_height_m is not None else float(np.median(cm.node_xyz[:, 2]))
        cand_fim = _node_information(cm, cand, z, xy, frames, band)
        return cls(plan, model, grid, cells, fim, cand, cand_fim, frames, band)

    def bound(self, fim: F) -> F:
        """(C, 2, 2) position CRB covariance at the scored cells, m²."""
        return np.asarray(np.linalg.inv(fim)[..., :2, :2], dtype=np.float64)

    def score(self, fim: F) -> float:
        """Mean over the scored cells of the RMSE bound, m (what placement minimises)."""
        return float(crb.rmse(self.bound(fim)).mean())

    def _scores_with(self, fim: F) -> F:
        """(K,) score of the layout plus a node at each candidate."""
        return np.sqrt(_position_mse(fim[None] + self.cand_fim)).mean(axis=1)

    def suggest(self, n_new: int, rounds: int = 1) -> tuple[F, float]:
        """``n_new`` spots (m) that most lower the mean bound, and the score after, m."""
        chosen: list[int] = []
        fim = self.fim.copy()
        for _ in range(n_new):
            k = int(np.argmin(self._scores_with(fim)))
            chosen.append(k)
            fim = fim + self.cand_fim[k]
        for _ in range(rounds if n_new > 1 else 0):
            for i in range(len(chosen)):
                rest = self.fim + sum(
                    (self.cand_fim[c] for j, c in enumerate(chosen) if j != i),
                    np.zeros_like(self.fim),
                )
                chosen[i] = int(np.argmin(self._scores_with(rest)))
            fim = self.fim + sum((self.cand_fim[c] for c in chosen), np.zeros_like(self.fim))
        return self.candidates[chosen], self.score(fim)

    def with_nodes(self, xy: F) -> F:
        """The information with extra nodes at candidate spots nearest ``xy``."""
        fim = self.fim.copy()
        for p in xy:
            k = int(np.argmin(np.hypot(*(self.candidates - p).T)))
            fim = fim + self.cand_fim[k]
        return fim

    def zone_median_errors(self, fim: F) -> dict[str, float]:
        """Expected median position error (m) per zone: median over its cells of the
        median radius of the CRB error ellipse."""
        med = crb.median_error(self.bound(fim))
        pts = shapely.points(self.grid.centers[self.cells])
        out = {}
        for z in self.plan.zones:
            inz = shapely.contains(z.polygon, pts)
            out[z.id] = float(np.median(med[inz])) if inz.any() else float("nan")
        return out

    def per_cell_rmse(self, fim: F) -> F:
        """(nx·ny,) RMSE bound on the full grid (NaN off the scored cells), m."""
        full = np.full(self.grid.nx * self.grid.ny, np.nan)
        full[self.cells] = crb.rmse(self.bound(fim))
        return full


def _position_mse(j: F) -> F:
    """trace of the position block of J⁻¹ for (..., 3, 3) J, by the Schur complement."""
    c = j[..., 2, 2]
    s00 = j[..., 0, 0] - j[..., 0, 2] ** 2 / c
    s11 = j[..., 1, 1] - j[..., 1, 2] ** 2 / c
    s01 = j[..., 0, 1] - j[..., 0, 2] * j[..., 1, 2] / c
    det = s00 * s11 - s01 * s01
    return np.maximum((s00 + s11) / det, 0.0)


def _node_information(model: RadioModel, cand: F, z: float, xy: F, frames: float, band: str) -> F:
    """(K, C, 3, 3) Fisher information of one node at each candidate, at each cell."""
    p0 = float(np.mean(model.p0[band]))
    n = float(np.mean(model.exponent))
    dx = xy[None, :, 0] - cand[:, None, 0]
    dy = xy[None, :, 1] - cand[:, None, 1]
    dz = z - model.phone_height_m
    d = np.maximum(np.sqrt(dx * dx + dy * dy + dz * dz), MIN_DISTANCE_M)
    loss = (
        wall_crossings(xy[None, :, :], cand[:, None, :], list(model.walls)) @ model.wall_attenuation
        if model.walls
        else 0.0
    )
    mu = p0 - 10 * n * np.log10(d) - loss
    info = frames * crb.tobit_information(
        mu, model.sigma_db, model.detection_floor_dbm, model.frame_loss
    )
    k = -10 * n / np.log(10) / d**2
    jac = np.stack([k * dx, k * dy, np.ones_like(d)], axis=-1)  # (K, C, 3)
    return info[..., None, None] * jac[..., :, None] * jac[..., None, :]


def suggest_layout(
    plan: FloorPlan, model: RadioModel, grid: WalkableGrid, n_nodes: int, frames: float = 2.5
) -> tuple[F, float]:
    """A layout of ``n_nodes`` from scratch (the plan's nodes ignored): spots and score."""
    empty = model.replace(
        node_ids=(),
        node_xyz=np.zeros((0, 3)),
        p0={b: v[:0] for b, v in model.p0.items()},
        exponent=model.exponent[:0],
    )
    lay = Layout.build(plan, empty, grid, frames, candidate_model=model)
    return lay.suggest(n_nodes)
