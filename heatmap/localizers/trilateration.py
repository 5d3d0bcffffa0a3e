"""Baseline: trilateration on ranged RSSI, Nelder–Mead least squares.

What the open-source BLE presence tools do (ESPresense-companion's
Nelder–Mead multilateralizer, room-assistant, FIND3's trilateration): range each
heard node from its mean RSSI with the log-distance law (p0 and n from the
radio model, walls ignored), then find the point whose 3-D distances to the
nodes best match the ranges in least squares,

    argmin_p Σ_j (‖p - x_j‖ - d_j)²,

by Nelder–Mead (Nelder & Mead, Comput. J. 7, 1965) from the weighted centroid.
Windows heard by fewer than three nodes keep the weighted centroid. The
simplex search is batched over all windows (same iterations as scipy's, run
in lock step) so the baseline runs as fast as ours on a store-day.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from numpy.typing import NDArray

from heatmap.localizers.base import Posterior, Windows, point_posterior
from heatmap.localizers.weighted_centroid import centroid, ranged_distance
from heatmap.spatial.radio_model import RadioModel
from heatmap.spatial.walkable_grid import WalkableGrid

NAME = "trilateration (Nelder–Mead)"
F = NDArray[np.float64]


def nelder_mead_batch(
    fun: Callable[[F, NDArray[np.int64]], F], x0: F, step: float = 1.0, iters: int = 150
) -> F:
    """Minimize B independent 2-D problems at once.

    ``fun(points, rows)`` maps (k, 2) points of problems ``rows`` to (k,) values;
    ``x0``: (B, 2) starts. Standard coefficients (reflection 1, expansion 2,
    contraction ½, shrink ½).
    """
    b = len(x0)
    rows = np.arange(b)
    simplex = np.stack([x0, x0 + np.array([step, 0.0]), x0 + np.array([0.0, step])], axis=1)
    fs = np.stack([fun(simplex[:, i], rows) for i in range(3)], axis=1)
    for _ in range(iters):
        order = np.argsort(fs, axis=1)
        simplex = simplex[rows[:, None], order]
        fs = fs[rows[:, None], order]
        best, worst = simplex[:, 0], simplex[:, 2]
        c = (simplex[:, 0] + simplex[:, 1]) / 2
        xr = c + (c - worst)
        fr = fun(xr, rows)
        xe = c + 2.0 * (xr - c)
        fe = fun(xe, rows)
        xoc = c + 0.5 * (xr - c)
        foc = fun(xoc, rows)
        xic = c + 0.5 * (worst - c)
        fic = fun(xic, rows)
        new = worst.copy()
        fnew = fs[:, 2].copy()
        shrink = np.zeros(b, bool)
        expand = fr < fs[:, 0]
        take_e = expand & (fe < fr)
        reflect = (~expand & (fr < fs[:, 1])) | (expand & ~take_e)
        outside = ~expand & ~reflect & (fr < fs[:, 2])
        inside = ~expand & ~reflect & ~outside
        new[take_e], fnew[take_e] = xe[take_e], fe[take_e]
        new[reflect], fnew[reflect] = xr[reflect], fr[reflect]
        oc_ok = outside & (foc <= fr)
        new[oc_ok], fnew[oc_ok] = xoc[oc_ok], foc[oc_ok]
        ic_ok = inside & (fic < fs[:, 2])
        new[ic_ok], fnew[ic_ok] = xic[ic_ok], fic[ic_ok]
        shrink = (outside & ~oc_ok) | (inside & ~ic_ok)
        simplex[:, 2] = new
        fs[:, 2] = fnew
        if shrink.any():
            s = np.flatnonzero(shrink)
            for i in (1, 2):
                simplex[s, i] = best[s] + 0.5 * (simplex[s, i] - best[s])
                fs[s, i] = fun(simplex[s, i], s)
    return simplex[rows, np.argmin(fs, axis=1)]


def trilaterate(win: Windows, model: RadioModel, iters: int = 150) -> F:
    """(W, 2) least-squares position per window, m."""
    d = ranged_distance(win, model)
    heard = ~np.isnan(d)
    dd = np.where(heard, d, 0.0)
    start = centroid(win, model)
    ok = heard.sum(axis=1) >= 3
    out = start.copy()
    if not ok.any():
        return out
    node = model.node_xyz
    dz2 = (node[:, 2] - model.phone_height_m) ** 2
    hk, dk = heard[ok], dd[ok]

    def cost(p: F, rows: NDArray[np.int64]) -> F:
        dist = np.sqrt(
            (p[:, 0, None] - node[None, :, 0]) ** 2
            + (p[:, 1, None] - node[None, :, 1]) ** 2
            + dz2[None, :]
        )
        return (((dist - dk[rows]) ** 2) * hk[rows]).sum(axis=1)

    out[ok] = nelder_mead_batch(cost, start[ok], 1.0, iters)
    return out


def locate(
    win: Windows,
    model: RadioModel,
    grid: WalkableGrid,
    *,
    duration_s: F | None = None,
    group: NDArray[np.int64] | None = None,
    n_groups: int = 1,
    progress: Callable[[float], None] | None = None,
    iters: int = 150,
) -> Posterior:
    xy = trilaterate(win, model, iters)
    x0, y0 = grid.x0, grid.y0
    xy = np.column_stack(
        [
            np.clip(xy[:, 0], x0, x0 + grid.nx * grid.cell_m),
            np.clip(xy[:, 1], y0, y0 + grid.ny * grid.cell_m),
        ]
    )
    if progress is not None:
        progress(len(win))
    return point_posterior(xy, win, grid, duration_s, group, n_groups)
