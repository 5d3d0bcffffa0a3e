"""Pictures for a layout planner: heat in units a planner acts on, hours on one scale,
flows as a few readable arrows.

Unlike the installer's pictures (:mod:`heatmap.report.render`, node markers on), these
leave the nodes off, use colour-blind-safe perceptual colour maps, keep the title and
subtitle in their own band above the map (no colour bar beside them to clip them),
place every label where it overprints no other (a label with no free spot becomes a
number in the legend) and draw a scale bar instead of metre axes.

Where the floor plan names the store's own drawing (``[drawing]``, PNG or SVG with its
scale and origin: :mod:`heatmap.report.store_drawing`), it is drawn faded under the
heat and the plan's outline, zones and doors; otherwise the background is the plan
drawn from its geometry.
"""

from __future__ import annotations

import textwrap
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.patches import FancyArrowPatch
from mpl_toolkits.axes_grid1.anchored_artists import AnchoredSizeBar
from numpy.typing import NDArray

from heatmap.report import render, store_drawing
from heatmap.report.map_labels import (  # re-exported: the planner's label tools
    ZONE_TEXT,
    Label,
    place_labels,
    text_boxes,
    zone_labels,
)
from heatmap.spatial.floorplan import FloorPlan
from heatmap.spatial.walkable_grid import WalkableGrid

F = NDArray[np.float64]
__all__ = [
    "Label",
    "Move",
    "arrow_artists",
    "difference_figure",
    "drawing",
    "flows_figure",
    "heat_figure",
    "hours_figure",
    "pair_figure",
    "place_labels",
    "scale_bar_m",
    "text_boxes",
    "view_bounds",
    "zone_labels",
]

SEQUENTIAL_CMAP = "viridis"
"""perceptually uniform, readable in grey and by the colour-blind: dark little, yellow much"""
DIVERGING_CMAP = "RdBu_r"
"""for difference maps (a compare page): blue less, red more; ColorBrewer's colour-blind safe"""
CLEAR_BELOW = 0.03
"""heat under this share of the colour scale is left clear so the plan shows through"""
WIDTH_IN = 7.4
"""figure width: an A4 page's text width (188 mm), so its fonts print at their size"""
DPI = 150
"""pixels per inch of the pictures (1,110 px wide)"""
SUB_PT = 8.5
"""subtitle size, points"""
BAR_IN = 0.75
"""band under a map for its colour bar and its label"""
FLOW_COLOUR = "#b2182b"
ARC_RAD = -0.18
"""bend of the flow arrows (matplotlib arc3): the two directions of a zone pair part"""


def scale_bar_m(width_m: float) -> float:
    """A round length near a sixth of the map's width, m.

    >>> scale_bar_m(50.0), scale_bar_m(12.0), scale_bar_m(300.0)
    (10.0, 2.0, 50.0)
    """
    target = width_m / 6
    for step in (1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0):
        if step * 1.6 >= target:
            return step
    return 1000.0


STREET_SHOWN_M = 3.0
"""how much of the street (and of the outside) a planner's map shows around the store, m"""


def view_bounds(plan: FloorPlan) -> tuple[float, float, float, float]:
    """The store's outline and up to STREET_SHOWN_M around it (a long street is cut).

    >>> from heatmap.spatial.floorplan import load_default
    >>> view_bounds(load_default())
    (-1.0, -3.0, 31.0, 20.0)
    """
    x0, y0, x1, y1 = plan.outline_polygon.bounds
    b0, b1, b2, b3 = plan.bounds
    m = STREET_SHOWN_M
    return (
        max(b0, x0 - 1.0),
        max(b1, y0 - m),
        min(b2, x1 + 1.0),
        min(b3, y1 + m),
    )


def _map_height(plan: FloorPlan, width_in: float) -> float:
    x0, y0, x1, y1 = view_bounds(plan)
    return width_in * (y1 - y0) / max(x1 - x0, 1e-9)


def _wrap(text: str, width_in: float, size_pt: float) -> str:
    """``text`` broken into lines that fit ``width_in`` at ``size_pt`` (DejaVu Sans
    averages about 0.55 em a character)."""
    return "\n".join(textwrap.wrap(text, max(20, int(width_in * 72 / (0.55 * size_pt)))))


@lru_cache(maxsize=4)
def _drawing_of(source: str, mtime: float) -> tuple[store_drawing.Drawing | None, str | None]:
    del mtime  # part of the key: an edited plan file is read again
    return store_drawing.load(_SourceOnly(source))  # type: ignore[arg-type]


@dataclass(frozen=True)
class _SourceOnly:
    source: str


def drawing(plan: FloorPlan) -> tuple[store_drawing.Drawing | None, str | None]:
    """The plan's own drawing (read once per plan file and change), or None and why."""
    p = Path(plan.source)
    if not p.is_file():
        return None, None
    return _drawing_of(str(p.resolve()), p.stat().st_mtime)


def _decorate(ax: Axes, plan: FloorPlan, bar: bool = True) -> None:
    """The plan without node markers or names over the store's own drawing where it
    names one, a scale bar, no metre axes."""
    render.draw_plan(ax, plan, labels=False, nodes=False)
    art, _why = drawing(plan)
    if art is not None:  # over the plan's blank floor (zorder 0), under the heat (2)
        ax.imshow(art.image, extent=art.extent, origin="upper", zorder=0.5,
                  interpolation="antialiased")  # fmt: skip
    x0, y0, x1, y1 = view_bounds(plan)
    for t in ax.texts:  # the street's name where the view cuts the street off
        tx, ty = t.get_position()
        t.set_visible(x0 <= tx <= x1 and y0 <= ty <= y1)
    ax.set_xlim(x0, x1)
    ax.set_ylim(y0, y1)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_xlabel("")
    ax.set_ylabel("")
    for s in ax.spines.values():
        s.set_visible(False)
    if bar:
        m = scale_bar_m(x1 - x0)
        ax.add_artist(
            AnchoredSizeBar(
                ax.transData,
                m,
                f"{m:g} m",
                loc="lower left",
                pad=0.4,
                borderpad=0.3,
                sep=3,
                frameon=True,
                size_vertical=m / 60,
                fontproperties={"size": 8},
            )
        )


def _heat(
    ax: Axes,
    grid: WalkableGrid,
    values: F,
    vmax: float,
    cmap: str,
    vmin: float = 0.0,
    clear_below: bool = True,
) -> object:
    """``values`` per cell (nx·ny) over the plan on [vmin, vmax]; off the floor (and,
    with ``clear_below``, under CLEAR_BELOW of the scale) left clear."""
    a = values.reshape(grid.ny, grid.nx)
    mask = ~(grid.walkable & grid.inside).reshape(grid.ny, grid.nx)
    if clear_below:
        mask |= a < CLEAR_BELOW * vmax
    return ax.imshow(
        np.ma.masked_where(mask, a),
        origin="lower",
        cmap=cmap,
        vmin=vmin,
        vmax=vmax,
        alpha=0.88,
        extent=(grid.x0, grid.x0 + grid.nx * grid.cell_m, grid.y0, grid.y0 + grid.ny * grid.cell_m),
        interpolation="nearest",
        zorder=2,
    )


def _bottom_bar(
    fig: Figure, im: object, left: float, width: float, bottom: float, label: str
) -> None:
    cax = fig.add_axes((left, bottom, width, 0.14 / fig.get_figheight()))
    cb = fig.colorbar(im, cax=cax, orientation="horizontal")  # type: ignore[arg-type]
    cb.set_label(label, fontsize=9)
    cb.ax.tick_params(labelsize=8)


def _band(subtitle: str) -> float:
    """Height of the band above the maps for the title and the wrapped subtitle, inches."""
    lines = _wrap(subtitle, WIDTH_IN * 0.96, SUB_PT).count("\n") + 1 if subtitle else 0
    return 0.42 + lines * SUB_PT * 1.3 / 72 + 0.08


def _title(fig: Figure, title: str, subtitle: str) -> None:
    """Title and subtitle in the band above the maps, wrapped to the figure's width."""
    h, w = fig.get_figheight(), fig.get_figwidth() * 0.96
    fig.text(
        0.02, 1 - 0.1 / h, _wrap(title, w, 12), ha="left", va="top", fontsize=12, weight="bold"
    )
    if subtitle:
        sub = _wrap(subtitle, w, SUB_PT)
        fig.text(0.02, 1 - 0.4 / h, sub, ha="left", va="top", fontsize=SUB_PT, color="#333")


def _legend_note(fig: Figure, legend: list[str], y_in: float) -> None:
    if legend:
        fig.text(0.02, y_in / fig.get_figheight(), "   ".join(legend), fontsize=8, color=ZONE_TEXT)


def _one_map(
    plan: FloorPlan, title: str, subtitle: str, unit: str, draw: Callable[[Axes], object]
) -> Figure:
    """One map over the plan, the figure's whole width: the title band above, ``draw``'s
    image on the decorated plan, zone labels that never overprint, its colour bar below."""
    map_w = WIDTH_IN * 0.96
    map_h = _map_height(plan, map_w)
    h = _band(subtitle) + map_h + BAR_IN + 0.2
    fig = plt.figure(figsize=(WIDTH_IN, h), dpi=DPI)
    ax = fig.add_axes((0.02, (BAR_IN + 0.2) / h, 0.96, map_h / h))
    _decorate(ax, plan)
    im = draw(ax)
    legend = place_labels(ax, zone_labels(plan))
    _bottom_bar(fig, im, 0.25, 0.5, 0.45 / h, unit)
    _legend_note(fig, legend, 0.08)
    _title(fig, title, subtitle)
    return fig


def _top(values: F) -> float:
    """The colour scale's top: the 99th percentile of the cells with heat."""
    return float(np.percentile(values[values > 0], 99)) if (values > 0).any() else 1.0


def heat_figure(
    plan: FloorPlan,
    grid: WalkableGrid,
    values: F,
    title: str,
    subtitle: str,
    unit: str,
    vmax: float | None = None,
    cmap: str = SEQUENTIAL_CMAP,
) -> Figure:
    """One map of ``values`` per cell over the plan: title band above, colour bar below."""
    top = vmax or _top(values)
    return _one_map(plan, title, subtitle, unit, lambda ax: _heat(ax, grid, values, top, cmap))


def pair_figure(
    plan: FloorPlan,
    grid: WalkableGrid,
    maps: tuple[tuple[str, F], tuple[str, F]],
    title: str,
    subtitle: str,
    unit: str,
) -> Figure:
    """Two periods side by side on one colour scale (the 99th percentile of both), each
    map named above it, one colour bar below, zone labels on each (numbered in the
    legend where they do not fit the half-width map)."""
    gap_in, head_in = 0.15, 0.3
    cell_w = (WIDTH_IN * 0.96 - gap_in) / 2
    cell_h = _map_height(plan, cell_w)
    band = _band(subtitle)
    h = band + head_in + cell_h + BAR_IN + 0.15
    fig = plt.figure(figsize=(WIDTH_IN, h), dpi=DPI)
    vmax = _top(np.concatenate([v for _, v in maps]))
    im = None
    legends: list[list[str]] = []
    for i, (name, values) in enumerate(maps):
        left = (0.02 * WIDTH_IN + i * (cell_w + gap_in)) / WIDTH_IN
        ax = fig.add_axes((left, (BAR_IN + 0.15) / h, cell_w / WIDTH_IN, cell_h / h))
        _decorate(ax, plan, bar=i == 0)
        im = _heat(ax, grid, values, vmax, SEQUENTIAL_CMAP)
        ax.set_title(name, fontsize=9.5, loc="left", pad=4, weight="bold")
        legends.append(place_labels(ax, [replace_size(lab, 6.5) for lab in zone_labels(plan)]))
    _bottom_bar(fig, im, 0.25, 0.5, 0.42 / h, unit)
    legend = max(legends, key=len)
    _legend_note(fig, legend, 0.08)
    _title(fig, title, subtitle)
    return fig


def replace_size(lab: Label, size: float) -> Label:
    return Label(lab.x, lab.y, lab.text, lab.colour, size)


def hours_figure(
    plan: FloorPlan,
    grid: WalkableGrid,
    maps: Sequence[tuple[str, F]],
    title: str,
    subtitle: str,
    unit: str,
    cols: int = 3,
) -> Figure:
    """Small maps of the open hours, all on one colour scale (the 99th percentile of
    every hour's cells), in rows of ``cols``."""
    cols = min(cols, max(len(maps), 2))
    rows = max(1, -(-len(maps) // cols))
    gap_in, head_in = 0.1, 0.28
    cell_w = (WIDTH_IN * 0.96 - gap_in * (cols - 1)) / cols
    cell_h = _map_height(plan, cell_w)
    band = _band(subtitle)
    h = band + rows * (cell_h + head_in) + BAR_IN + 0.1
    fig = plt.figure(figsize=(WIDTH_IN, h), dpi=DPI)
    every = np.concatenate([v for _, v in maps]) if maps else np.zeros(1)
    vmax = float(np.percentile(every[every > 0], 99)) if (every > 0).any() else 1.0
    im = None
    for i, (name, values) in enumerate(maps):
        r, c = divmod(i, cols)
        left = (0.02 * WIDTH_IN + c * (cell_w + gap_in)) / WIDTH_IN
        bottom = (h - band - (r + 1) * (cell_h + head_in)) / h
        ax = fig.add_axes((left, bottom, cell_w / WIDTH_IN, cell_h / h))
        _decorate(ax, plan, bar=i == 0)
        im = _heat(ax, grid, values, vmax, SEQUENTIAL_CMAP)
        ax.set_title(name, fontsize=9, loc="left", pad=3)
    if im is not None:
        _bottom_bar(fig, im, 0.25, 0.5, 0.42 / h, unit)
    _title(fig, title, subtitle)
    return fig


@dataclass(frozen=True)
class Move:
    """One ranked zone-to-zone move drawn as an arrow."""

    rank: int
    a: tuple[float, float]
    b: tuple[float, float]
    count: int


def flows_figure(
    plan: FloorPlan, moves: Sequence[Move], anchors: Sequence[Label], title: str, subtitle: str
) -> Figure:
    """The top moves as arrows between zone anchors, width by count, each with its rank
    (the table beside it has the figures); zone names placed first, ranks around them."""
    map_w = WIDTH_IN * 0.96
    map_h = _map_height(plan, map_w)
    h = _band(subtitle) + map_h + 0.45
    fig = plt.figure(figsize=(WIDTH_IN, h), dpi=DPI)
    ax = fig.add_axes((0.02, 0.4 / h, 0.96, map_h / h))
    _decorate(ax, plan)
    top = max((m.count for m in moves), default=1)
    mids: list[Label] = []
    for m in moves:
        ax.add_patch(
            FancyArrowPatch(
                m.a,
                m.b,
                connectionstyle=f"arc3,rad={ARC_RAD}",
                arrowstyle="-|>",
                mutation_scale=10 + 8 * m.count / top,
                lw=0.8 + 4.5 * m.count / top,
                color=FLOW_COLOUR,
                alpha=0.85,
                shrinkA=12,
                shrinkB=12,
                zorder=8,
            )
        )
        # the arc's middle (arc3: a quadratic Bézier whose control point is the chord's
        # middle moved by rad × (dy, -dx)): the chord's middle moved by half that
        (x0, y0), (x1, y1) = m.a, m.b
        mx, my = (x0 + x1) / 2, (y0 + y1) / 2
        dx, dy = x1 - x0, y1 - y0
        h = ARC_RAD / 2
        mids.append(Label(mx + h * dy, my - h * dx, f"#{m.rank}: {m.count}", FLOW_COLOUR, 7.5))
    legend = place_labels(ax, [*anchors, *mids])
    _legend_note(fig, legend, 0.1)
    _title(fig, title, subtitle)
    return fig


def arrow_artists(fig: Figure) -> list[FancyArrowPatch]:
    """The flow arrows of a figure (for tests and checks)."""
    return [p for ax in fig.axes for p in ax.patches if isinstance(p, FancyArrowPatch)]


def difference_figure(
    plan: FloorPlan,
    grid: WalkableGrid,
    values: F,
    title: str,
    subtitle: str,
    unit: str,
) -> Figure:
    """A before/after difference per cell on one symmetric diverging scale (blue less,
    red more, white no change), zone labels placed as on every planner map."""
    floor = (grid.walkable & grid.inside).ravel()
    top = float(np.percentile(np.abs(values[floor]), 99)) if floor.any() else 0.0
    top = top if top > 0 else 1.0
    return _one_map(
        plan,
        title,
        subtitle,
        unit,
        lambda ax: _heat(ax, grid, values, top, DIVERGING_CMAP, vmin=-top, clear_below=False),
    )
