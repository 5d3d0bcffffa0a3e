"""Walking-speed motion model on the walkable grid, which walls and shelves block.

A person is, at each window, in one cell of the walkable grid and in one of two
modes: *dwelling* (browsing a shelf, queueing, at a till) or *walking*. Between
two windows ``gap`` seconds apart, the person moves by a continuous-time random
walk on the grid's move graph — the graph that has no edge through a wall, a
shelf or the store front except at the doors — with a diffusion coefficient of
the current mode, then may switch mode (exponential mode durations). The hidden
Markov model on (cell, mode) is smoothed exactly on the grid by forward–backward
(Rabiner 1989), batched over devices so each step is a matrix product
(:mod:`heatmap.spatial.motion_smoothing`); its most likely tracks come from
:mod:`heatmap.spatial.viterbi`. This module holds the model itself: its
parameters, the move graph's generator and the two modes' transition kernels.

Transition kernels:

* walking: the heat kernel exp(gap · D_w · Q) of the graph generator Q, from its
  eigendecomposition Q = -V Λ Vᵀ (:mod:`heatmap.spatial.walk_spectrum`); modes
  with exp(-gap_min D_w λ) below ``truncate`` are dropped (they carry less than
  that share of any transition).
* dwelling: a few explicit (Euler) steps of the same generator with the small
  D_d — a lazy random walk that stays within a cell or two.

The generator's rates, 2D/3h² to each side neighbour and D/6h² to each diagonal
one, make the 9-point stencil isotropic (Patra & Karttunen, "Stencils with
isotropic discretization error for differential operators", Numer. Methods PDE
22, 2006) with per-axis variance 2·D·t, so D is a physical m²/s.

>>> from heatmap.spatial.floorplan import load_default
>>> from heatmap.spatial.walkable_grid import WalkableGrid
>>> g = WalkableGrid.build(load_default(), cell_m=1.0)
>>> mm = MotionModel(g)
>>> p = np.zeros((1, mm.n_cells)); p[0, 100] = 1.0
>>> q = mm.walk(p, np.array([5.0]))
>>> round(float(q.sum()), 3), bool(q.max() < 0.5)
(1.0, True)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy import sparse

from heatmap.spatial.walk_spectrum import walk_eigenpairs
from heatmap.spatial.walkable_grid import WalkableGrid

F = NDArray[np.float64]
FA = NDArray[np.floating[Any]]
"""float32 or float64: the smoother runs in float32"""
TINY = np.float32(1e-15)
"""floor of every probability the smoother carries: float32 subnormals (< 1.2e-38)
make the matrix products ~8× slower, and mass this small changes nothing"""
DWELL_EULER_RATE = 0.1
"""the dwell kernel takes one Euler step while a gap moves at most this share of
the fastest rate (1 m cells at 0.01 m²/s: 0.03 in 1 s, 0.33 in 10 s)"""
DWELL_TAYLOR_RATE = 0.35
"""else second-order Taylor steps of at most this share each (10 s at 0.01 m²/s: one)"""


@dataclass(frozen=True)
class MotionParams:
    """Walking behaviour, physical units."""

    walk_diffusion_m2_s: float = 1.5
    """walking mode: per-axis displacement variance grows as 2·D·t, m²/s"""
    dwell_diffusion_m2_s: float = 0.01
    """dwelling mode (browsing, queueing), m²/s; the store report fits it to each
    period's tracks (:func:`heatmap.calibration.calibrate_motion`: 0.002–0.004 on
    the busy store-day)"""
    mean_dwell_s: float = 60.0
    """mean time in the dwelling mode before walking on, s"""
    mean_walk_s: float = 20.0
    """mean time in the walking mode before stopping, s"""
    truncate: float = 0.05
    """walk kernel: drop eigenmodes weighing less than this after the shortest gap

    (0.05 keeps 207 of the 751 modes of the bundled store's 1 m grid at 1 s
    windows; 1e-3 kept 680 for the same median error, 3.3 × the work)"""


def generator(grid: WalkableGrid, cells: NDArray[np.int64]) -> sparse.csr_matrix:
    """Graph Laplacian L (C, C) of the move graph for D = 1 m²/s: generator Q = -D·L.

    Rates 2/(3h²) to side neighbours and 1/(6h²) to diagonal ones (isotropic
    9-point stencil); edges through walls and shelves are absent from
    ``grid.graph``, so no probability crosses them.
    """
    h = grid.cell_m
    a = grid.graph[cells][:, cells].tocsr()
    rate = a.copy()
    diag = rate.data > h * 1.2
    rate.data = np.where(diag, 1.0 / (6.0 * h * h), 2.0 / (3.0 * h * h))
    deg = np.asarray(rate.sum(axis=1)).ravel()
    return (sparse.diags(deg) - rate).tocsr()


class MotionModel:
    """Two-mode (dwell/walk) random walk on the walkable grid; see the module doc.

    Parameters
    ----------
    grid
        The walkable grid; its move graph has no edge through walls or shelves.
    params
        Diffusion coefficients and mode durations.
    min_gap_s
        Shortest time between two windows this model will be asked about (the
        window length); sets how many eigenmodes the walk kernel keeps.
    speed_m_s, reset_s
        Accepted for compatibility with the first model; ``speed_m_s`` sets the
        walk diffusion to speed²·5 s / 2 when given.
    """

    def __init__(
        self,
        grid: WalkableGrid,
        params: MotionParams | None = None,
        min_gap_s: float = 5.0,
        speed_m_s: float | None = None,
        reset_s: float | None = None,
    ) -> None:
        p = params or MotionParams()
        if speed_m_s is not None:
            p = MotionParams(speed_m_s**2 * 5.0 / 2.0, *_rest(p))
        self.params = p
        self.grid = grid
        self.cells = np.flatnonzero(grid.walkable)
        self.lap = generator(grid, self.cells)
        self.lap_f32 = self.lap.astype(np.float32)
        self.min_gap_s = min_gap_s
        lam, vec = walk_eigenpairs(
            grid, self.cells, self.lap, p.walk_diffusion_m2_s * min_gap_s, p.truncate
        )
        self.lam = lam
        self.vec = np.ascontiguousarray(vec, dtype=np.float32)
        self.vec_t = np.ascontiguousarray(vec.T, dtype=np.float32)
        rate_max = float(self.lap.diagonal().max()) if self.n_cells else 0.0
        self._dwell_rate = p.dwell_diffusion_m2_s * rate_max
        self._decay_tables: dict[float, NDArray[np.float32]] = {}

    @property
    def n_cells(self) -> int:
        return len(self.cells)

    @property
    def n_modes(self) -> int:
        """Eigenmodes kept for the walk kernel."""
        return len(self.lam)

    # ------------------------------------------------------------------ kernels

    def walk(self, x: FA, gap_s: F, diffusion: float | None = None) -> FA:
        """Rows of ``x`` (B, C) moved by ``gap_s`` (B,) seconds of walking (heat kernel).

        ``diffusion``: another coefficient (m²/s) than the walking one; exact while
        ``diffusion · gap`` is at least the walking one over the shortest gap.
        """
        dc = self.params.walk_diffusion_m2_s if diffusion is None else diffusion
        coef = x.astype(np.float32, copy=False) @ self.vec
        coef *= self._decay(dc, gap_s)
        out = (coef @ self.vec_t).astype(x.dtype, copy=False)
        np.maximum(out, TINY, out=out)
        # the truncated kernel rings a little around sharp rows and clipping its
        # negative lobes adds mass: give each row back the mass it came with
        out *= (x.sum(axis=1) / out.sum(axis=1))[:, None].astype(out.dtype)
        return out

    def _decay(self, dc: float, gap_s: F) -> NDArray[np.float32]:
        """(B, modes) exp(-dc·gap·λ).

        Windows sit on a time grid, so gaps are whole multiples of the shortest
        one: their factors come from a table (building each row afresh cost as
        much as the kernel's matrix products).
        """
        k = gap_s / self.min_gap_s
        ki = np.rint(k).astype(np.int64)
        if len(ki) and np.abs(k - ki).max() < 1e-6 and ki.min() >= 0 and ki.max() < 4096:
            table = self._decay_tables.get(dc)
            if table is None or len(table) <= ki.max():
                n = max(int(ki.max()) + 1, 2 * (0 if table is None else len(table)), 64)
                steps = np.arange(n)[:, None] * self.min_gap_s
                table = np.exp(-dc * steps * self.lam[None, :]).astype(np.float32)
                self._decay_tables[dc] = table
            return table[ki]
        return np.exp(-dc * gap_s[:, None] * self.lam[None, :]).astype(np.float32)

    def dwell(self, x: FA, gap_s: F) -> FA:
        """Rows of ``x`` (B, C) spread by ``gap_s`` (B,) seconds of dwelling.

        Short steps of the generator, each row as many as its own gap needs: one
        explicit (Euler) step while it moves at most ``DWELL_EULER_RATE`` of the
        fastest rate, else second-order Taylor steps I − A + A²/2 of at most
        ``DWELL_TAYLOR_RATE`` each (entrywise non-negative, mass-preserving; two
        products with the generator, where Euler needed four at that accuracy).
        Both are within 2 % of the exact kernel (tested). Gaps so long that the
        spread exceeds a walking step use the heat kernel instead (both are the
        same continuous-time random walk).

        Each product with the sparse generator costs ~2.5 µs per row (the walk
        kernel's two BLAS products ~9 µs on 207 modes, one thread): the fine pass
        of the busy store-day once gave every row of a step the Euler steps of
        its longest gap (a standing block's 10 s), four products where one was
        needed, and the dwell kernel cost more than the walk.
        """
        d = self.params.dwell_diffusion_m2_s
        if d <= 0 or not len(gap_s):
            return x.copy()
        long_ = d * gap_s >= self.params.walk_diffusion_m2_s * self.min_gap_s
        out = x.copy()
        rate = gap_s * self._dwell_rate  # share of the fastest rate moved over the gap
        # 0: one Euler step; n ≥ 1: n Taylor steps
        n_steps = np.where(
            rate <= DWELL_EULER_RATE, 0, np.ceil(rate / DWELL_TAYLOR_RATE).astype(np.int64)
        )
        n_steps[long_] = -1
        for n in np.unique(n_steps[n_steps >= 0]):
            sel = n_steps == n
            y = out if sel.all() else out[sel]
            if n == 0:
                self._euler_step(y, gap_s[sel])
            else:
                self._taylor_steps(y, gap_s[sel], int(n))
            if y is not out:
                out[sel] = y
        if long_.any():
            out[long_] = self.walk(x[long_], gap_s[long_], d)
        np.maximum(out, TINY, out=out)
        return out

    def _lap_rows(self, y: FA) -> FA:
        """(B, C) rows of ``y`` times the generator (L is symmetric)."""
        return (self.lap_f32 @ y.T).T

    def _euler_step(self, y: FA, gap_s: F) -> None:
        """y ← y (I − d·gap·L), in place."""
        h = (self.params.dwell_diffusion_m2_s * gap_s)[:, None].astype(y.dtype)
        y -= h * self._lap_rows(y)

    def _taylor_steps(self, y: FA, gap_s: F, n: int) -> None:
        """y ← y (I − A + A²/2)ⁿ with A = d·gap·L / n, in place."""
        h = (self.params.dwell_diffusion_m2_s * gap_s / n)[:, None].astype(y.dtype)
        for _ in range(n):
            p1 = h * self._lap_rows(y)
            y -= p1
            y += (np.float32(0.5) * h) * self._lap_rows(p1)

    def diffuse(self, p: F, gap_s: float) -> F:
        """One distribution (C,) after ``gap_s`` seconds in the walking mode."""
        return self.walk(p[None, :], np.array([gap_s]))[0]

    def stay(self, gap_s: F) -> tuple[F, F]:
        """Probability of keeping the dwell / walk mode over ``gap_s`` seconds."""
        p = self.params
        return np.exp(-gap_s / p.mean_dwell_s), np.exp(-gap_s / p.mean_walk_s)

    @property
    def prior_dwell(self) -> float:
        """Stationary share of time in the dwell mode."""
        p = self.params
        return p.mean_dwell_s / (p.mean_dwell_s + p.mean_walk_s)


def _rest(p: MotionParams) -> tuple[float, float, float, float]:
    return (p.dwell_diffusion_m2_s, p.mean_dwell_s, p.mean_walk_s, p.truncate)
