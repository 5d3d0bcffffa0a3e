"""The installer's placement map: the Cramér–Rao bound drawn over the floor plan.

Computed by :mod:`heatmap.spatial.node_placement` (the bound per cell and the
suggested spots); drawn here, on the drawing side, with the floor plan of
:func:`heatmap.report.render.draw_plan`. Node markers are on: this is the
installer's picture.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from heatmap.report import render
from heatmap.spatial.node_placement import Layout

F = NDArray[np.float64]


def figure(lay: Layout, fim: F, suggested: F | None, title: str, subtitle: str = "") -> object:
    """The RMSE bound (m) drawn over the floor plan, suggested spots as stars."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(11, 6.6), dpi=110)
    render.draw_plan(ax, lay.plan)
    g = lay.grid
    rm = lay.per_cell_rmse(fim).reshape(g.ny, g.nx)
    vmax = float(np.nanpercentile(rm, 98)) if np.isfinite(rm).any() else 1.0
    im = ax.imshow(
        np.ma.masked_invalid(rm),
        origin="lower",
        cmap="viridis_r",
        vmin=0,
        vmax=vmax,
        alpha=0.8,
        extent=(g.x0, g.x0 + g.nx * g.cell_m, g.y0, g.y0 + g.ny * g.cell_m),
        interpolation="nearest",
        zorder=2,
    )
    if suggested is not None and len(suggested):
        ax.plot(
            suggested[:, 0],
            suggested[:, 1],
            "*",
            ms=16,
            mfc="#ff006e",
            mec="black",
            zorder=8,
            label="suggested node",
        )
        ax.legend(loc="upper right", fontsize=8)
    cb = fig.colorbar(im, ax=ax, shrink=0.75, pad=0.02)
    cb.set_label("Cramér–Rao bound, RMSE of one window (m)")
    ax.set_title(title + (f"\n{subtitle}" if subtitle else ""), fontsize=11, loc="left")
    fig.tight_layout()
    return fig
