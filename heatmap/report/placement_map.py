"""The installer's placement map: the expected position error drawn over the floor plan.

Computed by :mod:`heatmap.spatial.node_placement` (the Cramér–Rao bound per cell and
the suggested spots) in the rooms shoppers reach (:mod:`heatmap.spatial.shopper_area`);
drawn here, on the drawing side, with the floor plan of
:func:`heatmap.report.render.draw_plan`. One panel per layout (now, and with the
suggested nodes), on one colour scale: the median error of one window of a phone's
frames at each cell, in metres. Each suggested node is a numbered star with its
coordinates written beside it, each node of the plan its id and coordinates; the rooms
only staff enter are hatched and say so.
"""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.patches import Polygon as MplPolygon
from numpy.typing import NDArray
from shapely.geometry import Polygon

from heatmap.report import render
from heatmap.spatial import crb
from heatmap.spatial.node_placement import Layout

F = NDArray[np.float64]
COLOUR_LABEL = "expected position error, m"
"""the colour bar's words: what an installer reads off the map"""
STAR = "#ff006e"


@dataclass(frozen=True)
class Panel:
    """One map: a layout's information and the suggested nodes drawn on it."""

    title: str
    lay: Layout
    fim: F
    """(C, 3, 3) information at ``lay``'s cells"""
    suggested: F | None = None
    """(S, 2) spots drawn as numbered stars, m"""
    plan_nodes: bool = True
    """draw the plan's nodes (not in a layout from scratch)"""


def median_error_grid(lay: Layout, fim: F) -> F:
    """(ny, nx) expected median position error per cell, m (NaN off the scored cells)."""
    g = lay.grid
    full = np.full(g.nx * g.ny, np.nan)
    full[lay.cells] = crb.median_error(lay.bound(fim))
    return full.reshape(g.ny, g.nx)


def figure(
    panels: Sequence[Panel], title: str, subtitle: str = "", staff_rooms: Sequence[Polygon] = ()
) -> Figure:
    """The panels side by side on one colour scale, titled, with the staff rooms hatched."""
    import matplotlib.pyplot as plt

    grids = [median_error_grid(p.lay, p.fim) for p in panels]
    finite = np.concatenate([g[np.isfinite(g)] for g in grids])
    vmax = float(np.percentile(finite, 98)) if finite.size else 1.0
    plan = panels[0].lay.plan
    x0, y0, x1, y1 = plan.bounds
    aspect = (y1 - y0) / max(x1 - x0, 1e-9)
    width = 8.5 * len(panels) + 1.5
    wrapped = textwrap.fill(subtitle, width=int(11 * width)) if subtitle else ""
    lines = 1 + (wrapped.count("\n") + 1 if wrapped else 0)
    fig, axes = plt.subplots(
        1,
        len(panels),
        figsize=(width, min(8.5 * aspect + 0.9 + 0.25 * lines, 14.0)),
        dpi=110,
        squeeze=False,
        layout="constrained",
    )
    im = None
    for ax, panel, grid in zip(axes[0], panels, grids, strict=True):
        render.draw_plan(ax, plan, labels=True, nodes=panel.plan_nodes)
        g = panel.lay.grid
        im = ax.imshow(
            np.ma.masked_invalid(grid),
            origin="lower",
            cmap="viridis_r",
            vmin=0,
            vmax=vmax,
            alpha=0.8,
            extent=(g.x0, g.x0 + g.nx * g.cell_m, g.y0, g.y0 + g.ny * g.cell_m),
            interpolation="nearest",
            zorder=2,
        )
        _staff_rooms(ax, staff_rooms)
        if panel.plan_nodes:
            for n in plan.nodes:
                _coordinates(ax, n.x, n.y, f"({n.x:.1f}, {n.y:.1f})", "#005f73", below=True)
        if panel.suggested is not None and len(panel.suggested):
            _stars(ax, panel.suggested)
        ax.set_title(panel.title, fontsize=10, loc="left")
    cb = fig.colorbar(im, ax=axes[0].tolist(), shrink=0.8, pad=0.01)
    cb.set_label(COLOUR_LABEL, fontsize=10)
    fig.suptitle(title + (f"\n{wrapped}" if wrapped else ""), fontsize=11, x=0.01, ha="left")
    return fig


def _stars(ax: Axes, spots: F) -> None:
    """Numbered stars with their coordinates, m."""
    ax.plot(
        spots[:, 0],
        spots[:, 1],
        "*",
        ms=17,
        mfc=STAR,
        mec="black",
        zorder=8,
        label="suggested node (x, y in m)",
        ls="none",
    )
    for i, (x, y) in enumerate(spots, start=1):
        _coordinates(ax, x, y, f"{i}: ({x:.1f}, {y:.1f})", STAR, below=False, bold=True)
    ax.legend(loc="lower right", fontsize=8)


def _coordinates(
    ax: Axes, x: float, y: float, text: str, colour: str, below: bool, bold: bool = False
) -> None:
    """``text`` beside the point (x, y): under it for the plan's nodes (their id is above
    the id's line), over it for a star, on a white box that keeps it readable."""
    ax.annotate(
        text,
        (x, y),
        xytext=(7, -17 if below else 8),
        textcoords="offset points",
        fontsize=7.5 if not bold else 8.5,
        fontweight="bold" if bold else "normal",
        color=colour if not bold else "black",
        zorder=9,
        bbox={"fc": "white", "ec": colour, "lw": 0.8 if bold else 0, "alpha": 0.85, "pad": 1.5},
    )


def _staff_rooms(ax: Axes, rooms: Sequence[Polygon]) -> None:
    """Hatched grey, with the words: no node is suggested there, no error scored."""
    for room in rooms:
        ax.add_patch(
            MplPolygon(
                list(room.exterior.coords),
                closed=True,
                fc="#d9d9d9",
                ec="#777",
                hatch="xx",
                lw=0.5,
                zorder=2.5,
            )
        )
        cx, cy = room.representative_point().coords[0]
        ax.text(
            cx,
            cy,
            "staff only (no door, no zone):\nno node suggested here",
            ha="center",
            va="center",
            fontsize=8,
            color="#333",
            zorder=6,
            bbox={"fc": "white", "ec": "#777", "alpha": 0.9, "pad": 2},
        )
