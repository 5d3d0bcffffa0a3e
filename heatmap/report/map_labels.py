"""Labels on a planner's map that never overprint: each at its point or the first free
spot around it inside the map, or, with no free spot, a number there and a legend line.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.text import Annotation
from matplotlib.transforms import Bbox

from heatmap.spatial.floorplan import FloorPlan

ZONE_TEXT = "#12355b"
LABEL_STEPS = ((0, 0), (0, 1), (0, -1), (1, 0), (-1, 0), (0, 2), (0, -2), (1, 1), (-1, -1))
"""where a label may go around its anchor, in label heights (y) and half widths (x)"""
NUMBER_STEPS = tuple(
    (dx, dy)
    for r in range(6)
    for dx in range(-r, r + 1)
    for dy in range(-r, r + 1)
    if max(abs(dx), abs(dy)) == r
)
"""where a label's number may go when the label found no spot: rings around the anchor,
in number widths and heights (up to 5 away)"""


@dataclass(frozen=True)
class Label:
    """A text to place near a point of the plan."""

    x: float
    y: float
    text: str
    colour: str = ZONE_TEXT
    size: float = 8.0


def place_labels(ax: Axes, labels: Sequence[Label], taken: list[Bbox] | None = None) -> list[str]:
    """Put each label at its point or the first spot around it that overlaps no label
    placed before (nor ``taken``, display boxes) and stays inside the map; a label with
    no free spot becomes a number there. Returns the legend lines of those numbers."""
    fig = ax.figure
    renderer = fig.canvas.get_renderer()  # type: ignore[attr-defined]
    ax.apply_aspect()
    frame = ax.get_window_extent(renderer)
    boxes = list(taken or [])
    legend: list[str] = []

    def free(b: Bbox) -> bool:
        inside = b.x0 >= frame.x0 and b.x1 <= frame.x1 and b.y0 >= frame.y0 and b.y1 <= frame.y1
        return inside and not any(b.overlaps(o) for o in boxes)

    for lab in labels:
        t = ax.annotate(
            lab.text,
            (lab.x, lab.y),
            xytext=(0, 0),
            textcoords="offset points",
            ha="center",
            va="center",
            fontsize=lab.size,
            color=lab.colour,
            zorder=9,
            bbox={"fc": "white", "ec": "none", "alpha": 0.92, "pad": 1.0},
        )
        b0 = t.get_window_extent(renderer).expanded(1.04, 1.1)
        w_pt = b0.width * 72 / fig.dpi / 2
        h_pt = b0.height * 72 / fig.dpi
        for sx, sy in LABEL_STEPS:
            t.set_position((sx * w_pt, sy * h_pt))
            b = t.get_window_extent(renderer).expanded(1.04, 1.1)
            if free(b):
                boxes.append(b)
                break
        else:
            n = len(legend) + 1
            legend.append(f"{n}: {lab.text}")
            t.set_text(str(n))
            b0 = t.get_window_extent(renderer).expanded(1.3, 1.1)
            w_pt, h_pt = b0.width * 72 / fig.dpi, b0.height * 72 / fig.dpi
            for sx, sy in NUMBER_STEPS:
                t.set_position((sx * w_pt, sy * h_pt))
                b = t.get_window_extent(renderer).expanded(1.3, 1.1)
                if free(b):
                    break
            boxes.append(b)
    return legend


def zone_labels(plan: FloorPlan) -> list[Label]:
    """The zones' names at a point inside each, largest zone last (small ones get the
    first pick of spots)."""
    zs = sorted(plan.zones, key=lambda z: z.polygon.area)
    out = []
    for z in zs:
        x, y = z.polygon.representative_point().coords[0]
        out.append(Label(x, y, z.name))
    return out


def text_boxes(fig: Figure) -> list[tuple[str, Bbox]]:
    """Every placed label's text and display box (for overlap checks)."""
    r = fig.canvas.get_renderer()  # type: ignore[attr-defined]
    return [
        (t.get_text(), t.get_window_extent(r))
        for ax in fig.axes
        for t in ax.texts
        if isinstance(t, Annotation) and t.get_text()
    ]
