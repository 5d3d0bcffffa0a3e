"""The spectrum of the grid's move graph, for the walk kernel of the motion model.

The walking mode of :class:`heatmap.spatial.motion.MotionModel` moves probability
by the heat kernel exp(-gap · D · L) of the graph Laplacian L, from its
eigendecomposition L = V Λ Vᵀ; only the eigenmodes that still weigh something
after the shortest gap are kept (:func:`walk_eigenpairs`), cached per grid.
"""

from __future__ import annotations

import hashlib

import numpy as np
import scipy.linalg
from numpy.typing import NDArray
from scipy import sparse
from scipy.sparse.linalg import eigsh

from heatmap.spatial.walkable_grid import WalkableGrid

F = NDArray[np.float64]
DENSE_EIGH_MAX_CELLS = 4000
"""grids up to this many walkable cells use a dense eigendecomposition"""

_EIGEN_CACHE: dict[str, tuple[F, F]] = {}


def _grid_key(grid: WalkableGrid, cells: NDArray[np.int64]) -> str:
    h = hashlib.sha1()
    h.update(np.asarray([grid.x0, grid.y0, grid.cell_m, grid.nx, grid.ny], float).tobytes())
    h.update(cells.tobytes())
    h.update(grid.graph.indices.tobytes())
    return h.hexdigest()


def walk_eigenpairs(
    grid: WalkableGrid, cells: NDArray[np.int64], lap: sparse.csr_matrix, dt: float, trunc: float
) -> tuple[F, F]:
    """Eigenpairs (λ ascending, V) of ``lap`` with exp(-dt·λ) ≥ ``trunc``.

    Dense below :data:`DENSE_EIGH_MAX_CELLS` walkable cells, else shift-invert
    Lanczos grown until the cut is passed; cached per grid and cut.
    """
    c = len(cells)
    if c == 0:
        return np.zeros(0), np.zeros((0, 0))
    lam_cut = np.log(1.0 / trunc) / max(dt, 1e-9)
    key = f"{_grid_key(grid, cells)}:{lam_cut:.6g}"
    cached = _EIGEN_CACHE.get(key)
    if cached is not None:
        lam, vec = cached
    elif c <= DENSE_EIGH_MAX_CELLS:
        lam, vec = scipy.linalg.eigh(
            lap.toarray(), subset_by_value=(-np.inf, lam_cut), driver="evr"
        )
    else:
        # Weyl's law gives about area·Λ/(4π) modes below Λ (D = 1); the grid's
        # boundaries and discreteness about double that: grow k until Λ is passed
        area = c * grid.cell_m**2
        k = int(min(c - 2, 2.5 * area * lam_cut / (4 * np.pi) + 40))
        while True:
            lam, vec = eigsh(lap.tocsc(), k=k, sigma=-1e-3, which="LM")
            order = np.argsort(lam)
            lam, vec = lam[order], vec[:, order]
            if lam[-1] >= lam_cut or k >= c - 2:
                break
            k = min(c - 2, 2 * k)
    if cached is None:
        if len(_EIGEN_CACHE) > 8:
            _EIGEN_CACHE.clear()
        _EIGEN_CACHE[key] = (lam, vec)
    lam = np.maximum(lam, 0.0)
    keep = lam <= lam_cut
    return lam[keep], vec[:, keep]
