"""Pictures for layout planners: the floor plan drawn to scale, heatmaps over it.

Everything is drawn in metres with the street at the bottom, zones labelled,
nodes and doors marked, so an installer can read a heatmap without a legend hunt (the
layout planner's pictures are :mod:`heatmap.report.planner_figures`).
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.axes import Axes
from matplotlib.colors import ListedColormap
from matplotlib.figure import Figure
from matplotlib.patches import Polygon as MplPolygon
from matplotlib.patches import Rectangle
from numpy.typing import NDArray

from heatmap.spatial.floorplan import FloorPlan, Zone
from heatmap.spatial.walkable_grid import WalkableGrid

CMAP = ListedColormap(
    matplotlib.colormaps["inferno_r"](np.linspace(0.0, 0.7, 256)), name="inferno_r_light"
)
"""perceptually uniform (matplotlib's inferno, reversed: pale yellow little, dark purple
much), readable in grey and by the colour-blind; its darkest 30 % cut off, so the most
heat is not mistaken for the plan's black walls and shelves"""


def draw_plan(ax: Axes, plan: FloorPlan, labels: bool = True, nodes: bool = True) -> None:
    """Outline, street, shelves, walls, zones, doors, nodes and tiles, in metres.

    ``labels``: zone, door and node names; ``nodes``: the node markers (the installer's
    pictures; a planner's leave them off)."""
    if plan.street:
        ax.add_patch(MplPolygon(plan.street, closed=True, fc="#e9e9e9", ec="none", zorder=0))
        sx = np.mean([p[0] for p in plan.street])
        sy = min(p[1] for p in plan.street) + 0.6
        ax.text(
            sx,
            sy,
            "street",
            ha="center",
            va="bottom",
            color="#777",
            fontsize=8,
            style="italic",
            zorder=1,
        )
    ax.add_patch(MplPolygon(plan.outline, closed=True, fc="#fbfbf7", ec="none", zorder=0))
    for z in plan.zones:
        ax.add_patch(
            MplPolygon(
                z.points, closed=True, fill=False, ec="#3a6ea5", lw=0.8, ls=(0, (4, 3)), zorder=3
            )
        )
        if labels:
            cx, cy = z.polygon.representative_point().coords[0]
            if nodes:
                cx, cy = _clear_of_nodes(plan, z, cx, cy)
            ax.text(
                cx,
                cy,
                z.name,
                ha="center",
                va="center",
                fontsize=7.5,
                color="#12355b",
                zorder=6,
                bbox={"fc": "white", "ec": "none", "alpha": 0.65, "pad": 1.2},
            )
    for _, pts in plan.shelves:
        ax.add_patch(MplPolygon(pts, closed=True, fc="#8c8c8c", ec="#555", lw=0.6, zorder=4))
    ax.add_patch(MplPolygon(plan.outline, closed=True, fill=False, ec="#222", lw=2.2, zorder=5))
    for w in plan.walls:
        ax.plot(
            [w.a[0], w.b[0]],
            [w.a[1], w.b[1]],
            color="#222",
            lw=1.2 if w.attenuation_db < 8 else 2.2,
            solid_capstyle="butt",
            zorder=5,
        )
    placed: list[tuple[float, float]] = []  # label anchors of the doors drawn so far
    for d in plan.doors:
        ax.plot([d.a[0], d.b[0]], [d.a[1], d.b[1]], color="#fbfbf7", lw=3.5, zorder=5.5)
        ax.plot([d.a[0], d.b[0]], [d.a[1], d.b[1]], color="#2a9d4b", lw=1.5, ls=":", zorder=5.6)
        cx, cy = d.center
        nx, ny = d.inward(plan.outline_polygon)
        ax.annotate(
            "",
            xy=(cx + nx, cy + ny),
            xytext=(cx - nx, cy - ny),
            zorder=6,
            arrowprops={"arrowstyle": "->", "color": "#2a9d4b", "lw": 1.5},
        )
        if labels:
            # doors side by side (lanes) share an anchor and get their labels
            # stacked under it, whatever wall they are in, not overprinted
            near = [a for a in placed if abs(a[0] - cx) + abs(a[1] - cy) < 3.0]
            ax0, ay0 = near[0] if near else (cx, cy)
            ax.text(
                ax0 + 1.2,
                ay0 - 0.7 - 0.9 * len(near),
                f"door {d.id}",
                color="#2a9d4b",
                fontsize=7,
                zorder=6,
            )
            placed.append((cx, cy))
    for t in plan.tiles:
        x0, y0, x1, y1 = t.bounds
        ax.add_patch(
            Rectangle(
                (x0, y0),
                x1 - x0,
                y1 - y0,
                fill=False,
                ec="#6a3d9a",
                lw=0.8,
                hatch="////",
                zorder=4.5,
            )
        )
    for n in plan.nodes if nodes else ():
        ax.plot(n.x, n.y, marker="^", ms=7, mfc="#00b4d8", mec="black", mew=0.7, zorder=7)
        if labels:
            ax.text(
                n.x + 0.4,
                n.y - 0.55,
                n.id,
                fontsize=7,
                color="#005f73",
                zorder=7,
                bbox={"fc": "white", "ec": "none", "alpha": 0.7, "pad": 0.6},
            )
    x0, y0, x1, y1 = plan.bounds
    ax.set_xlim(x0, x1)
    ax.set_ylim(y0, y1)
    ax.set_aspect("equal")
    ax.set_xlabel("m")
    ax.set_ylabel("m")


def _clear_of_nodes(plan: FloorPlan, z: Zone, x: float, y: float) -> tuple[float, float]:
    """A zone label's point moved off a node's marker and name (1.4 m under the node, or
    1 m over it, whichever stays in the zone)."""
    from shapely.geometry import Point

    for n in plan.nodes:
        if abs(n.x - x) < 2.5 and abs(n.y - y) < 1.4:
            for cand in (n.y - 1.4, n.y + 1.0):
                if z.polygon.contains(Point(x, cand)):
                    return x, cand
    return x, y


def _heat(ax: Axes, grid: WalkableGrid, per_cell: NDArray[np.float64], vmax: float) -> object:
    """Density over the plan; cells under 5 % of the scale stay clear so the plan shows."""
    density = (per_cell / grid.cell_m**2).reshape(grid.ny, grid.nx)
    masked = np.ma.masked_where(
        ~grid.walkable.reshape(grid.ny, grid.nx) | (density < 0.05 * vmax), density
    )
    return ax.imshow(
        masked,
        origin="lower",
        cmap=CMAP,
        vmin=0,
        vmax=vmax,
        alpha=0.85,
        extent=(grid.x0, grid.x0 + grid.nx * grid.cell_m, grid.y0, grid.y0 + grid.ny * grid.cell_m),
        interpolation="nearest",  # crisp cells: bilinear bled them across walls
        zorder=2,
    )


def heatmap_figure(
    plan: FloorPlan,
    grid: WalkableGrid,
    per_cell: NDArray[np.float64],
    title: str,
    subtitle: str = "",
    vmax: float | None = None,
) -> Figure:
    """One heatmap of person-seconds per m² over the plan."""
    fig, ax = plt.subplots(figsize=(11, 6.6), dpi=110)
    draw_plan(ax, plan)
    density = per_cell / grid.cell_m**2
    vmax = vmax or float(np.percentile(density[density > 0], 99)) if (density > 0).any() else 1.0
    im = _heat(ax, grid, per_cell, vmax)
    cb = fig.colorbar(im, ax=ax, shrink=0.75, pad=0.02)
    cb.set_label("person-seconds per m²")
    ax.set_title(title + (f"\n{subtitle}" if subtitle else ""), fontsize=11, loc="left")
    fig.tight_layout()
    return fig


def suppressed_figure(plan: FloorPlan, title: str, note: str) -> Figure:
    """The plan with no heat at all and "suppressed" across it: what a report of fewer
    than k visitors draws (where two or three people walked would single them out)."""
    fig, ax = plt.subplots(figsize=(11, 6.6), dpi=110)
    draw_plan(ax, plan)
    x0, y0, x1, y1 = plan.bounds
    ax.text(
        (x0 + x1) / 2,
        (y0 + y1) / 2,
        "suppressed",
        ha="center",
        va="center",
        fontsize=40,
        color="#8a1c1c",
        weight="bold",
        zorder=8,
        bbox={"fc": "white", "ec": "#8a1c1c", "alpha": 0.9, "pad": 8},
    )
    ax.set_title(f"{title}\n{note}", fontsize=11, loc="left")
    fig.tight_layout()
    return fig


MAP_WIDTH_IN = 8.6
"""width of a map beside its colour bar in an 11-inch figure"""


def comparison_figure(
    plan: FloorPlan,
    grid: WalkableGrid,
    est: NDArray[np.float64],
    truth: NDArray[np.float64],
    title: str,
    note: str,
) -> Figure:
    """Estimated vs true person-seconds one above the other, on one colour scale; the
    figure as tall as two maps of the plan's shape need (a squat plan leaves no bands)."""
    x0, y0, x1, y1 = plan.bounds
    height = 2 * MAP_WIDTH_IN * (y1 - y0) / max(x1 - x0, 1e-9) + 1.8
    fig, axes = plt.subplots(2, 1, figsize=(11, min(max(height, 7.0), 18.0)), dpi=100)
    dens = np.concatenate([est, truth]) / grid.cell_m**2
    vmax = float(np.percentile(dens[dens > 0], 99)) if (dens > 0).any() else 1.0
    for ax, data, name in (
        (axes[0], est, "footfall estimate (RF, door-scaled)"),
        (axes[1], truth, "ground truth (simulator)"),
    ):
        draw_plan(ax, plan, labels=ax is axes[0])
        im = _heat(ax, grid, data, vmax)
        ax.set_title(name, fontsize=11)
    cb = fig.colorbar(im, ax=list(axes), shrink=0.6, pad=0.02)
    cb.set_label("person-seconds per m²")
    fig.suptitle(f"{title}\n{note}", fontsize=11, x=0.06, ha="left")
    return fig


def save(fig: Figure, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, metadata={"Software": "footfall"})
    plt.close(fig)
    return path
