"""Zone-to-zone flows: where people go next, from each pseudonym's path.

The path is a position per window: the report uses the posterior mean
(``Posterior.mean_xy``); the Viterbi track (``Posterior.track_xy``) works too
and measured less true on the simulator (see ``store_report.analyze``).

A *stay* is a contiguous run of a track inside one zone lasting at least
``MIN_DWELL_S`` (see :func:`track_flows` for how long a run of windows lasts);
shorter runs (a track clipping a zone's corner, walking through
the entrance) are dropped, and positions outside every zone are ignored rather
than being a zone of their own. What is left, per pseudonym (or simulated
person), is a sequence of zones; consecutive equal zones merge (a stay in A, a
moment outside, A again is one stay), and every change A → B is a transition.

The flow matrix counts transitions per (from, to) zone pair together with the
number of distinct pseudonyms that made each one. Only cells with at least k of
them are published (:meth:`FlowMatrix.table`); the rest are marked suppressed,
never shown as zero. :func:`tv_distance` compares two matrices as distributions.

Everything is vectorized over windows (a busy day is ~1M windows of ~8,000
pseudonyms); there is no Python loop per window or per pseudonym.
"""

from __future__ import annotations

import csv
import textwrap
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import NDArray

from heatmap.localizers.base import Windows
from heatmap.spatial.floorplan import FloorPlan
from heatmap.spatial.zone_flows import MIN_DWELL_S, FlowCell, FlowMatrix, flows_from_stays
from heatmap.spatial.zones import zone_index

if TYPE_CHECKING:
    from matplotlib.figure import Figure

ARC_RAD = -0.2
"""bend of the flow arrows (matplotlib arc3, negative: to the left of travel), so
the two directions of a zone pair part"""
SUPPRESSED = "suppressed"
"""what flows.csv says in a cell of fewer than k devices"""
FIGURE_TOP = 16
"""zone pairs drawn in the flows picture (the busiest; the table has them all)"""
LABEL_CLEAR_M = 1.6
"""counts on the arrows keep this far from each other and from zone names, m"""

F = NDArray[np.float64]
Ix = NDArray[np.int64]


def track_flows(
    plan: FloorPlan,
    win: Windows,
    track_xy: F,
    min_dwell_s: float = MIN_DWELL_S,
) -> FlowMatrix:
    """Flow matrix of pseudonyms from their per-window track positions.

    ``win``: the windows (sorted by pid then time, as
    :func:`~heatmap.localizers.base.make_windows` returns them; re-sorted
    otherwise); ``track_xy``: (W, 2) position per window on its pseudonym's path
    (``Posterior.mean_xy`` or ``.track_xy``; NaN rows are outside every zone).

    A window counts in a zone when the track is there for part of it, so the n
    windows of a run cover the stay plus up to one window: the run lasted from its
    first window's start to its last window's start, (n - 1) windows. (Counting
    n windows instead turns every 5 s walk through the entrance, which straddles
    two windows, into a 10 s stay.)
    """
    zones = tuple(z.id for z in plan.zones)
    if len(win) == 0:
        return flows_from_stays(np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0), zones)
    pid = np.asarray(win.pid)
    t = np.asarray(win.t_ms, np.int64)
    zi = zone_index(plan, track_xy)
    same = pid[1:] == pid[:-1]
    if (pid[1:] >= pid[:-1]).all() and (~same | (t[1:] >= t[:-1])).all():
        code = np.r_[0, np.cumsum(~same)]  # sorted already (the usual case): no string sort
    else:
        _, code = np.unique(pid, return_inverse=True)
        code = code.ravel().astype(np.int64)
        order = np.lexsort((t, code))
        code, t, zi = code[order], t[order], zi[order]
    start = np.flatnonzero(np.r_[True, (code[1:] != code[:-1]) | (zi[1:] != zi[:-1])])
    last = np.r_[start[1:], len(code)] - 1
    dur = (t[last] - t[start]) / 1000.0
    return flows_from_stays(code[start], zi[start], dur, zones, min_dwell_s)


def write_csv(path: Path, fm: FlowMatrix, k: int) -> list[FlowCell]:
    """``from_zone,to_zone,transitions,devices`` for every non-empty cell, cells of
    fewer than ``k`` devices written as ``suppressed`` (never as a number); returns
    the table written."""
    table = fm.table(k)
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["from_zone", "to_zone", "transitions", "devices"])
        for c in table:
            if c.suppressed:
                w.writerow([c.from_zone, c.to_zone, SUPPRESSED, SUPPRESSED])
            else:
                w.writerow([c.from_zone, c.to_zone, c.transitions, c.devices])
    return table


def tv_distance(a: FlowMatrix | F, b: FlowMatrix | F) -> float:
    """Total variation distance ``0.5 * Σ|p - q|`` between two flow matrices, each
    normalized to a distribution over (from, to) cells: 0 for the same shape of
    flows, 1 for flows with no cell in common. NaN if either has no transition."""
    pa = np.asarray(a.transitions if isinstance(a, FlowMatrix) else a, float)
    pb = np.asarray(b.transitions if isinstance(b, FlowMatrix) else b, float)
    if pa.shape != pb.shape:
        raise ValueError(f"flow matrices of different shapes {pa.shape} and {pb.shape}")
    sa, sb = pa.sum(), pb.sum()
    if sa <= 0 or sb <= 0:
        return float("nan")
    return float(0.5 * np.abs(pa / sa - pb / sb).sum())


def flows_figure(
    plan: FloorPlan, fm: FlowMatrix, k: int, title: str, subtitle: str = "", top: int = FIGURE_TOP
) -> Figure:
    """The floor plan with an arrow for each of the ``top`` busiest k-anonymous zone
    pairs, from zone centre to zone centre, width ∝ transitions, count on the arrow.

    Every arrow bows to the left of its direction of travel, so A → B and B → A are
    two separate arcs; counts slide along their arc until they clear each other and
    the zone names. Pairs of fewer than ``k`` devices are never drawn.
    """
    import matplotlib.pyplot as plt
    from matplotlib.patches import FancyArrowPatch

    from heatmap.report import render

    x0, _, x1, y1 = plan.outline_polygon.bounds
    _, sy0, _, _ = plan.bounds
    fig, ax = plt.subplots(figsize=(11, 11 * (y1 - sy0 + 1) / (x1 - x0 + 2) + 0.9), dpi=110)
    render.draw_plan(ax, plan)
    ax.set_xlim(x0 - 1, x1 + 1)  # the store, not the whole street: arrows need the room
    ax.set_ylim(sy0, y1 + 1)
    # draw_plan writes each zone's name at its representative point: arrows meet there
    anchor = {z.id: z.polygon.representative_point().coords[0] for z in plan.zones}
    cells = [c for c in fm.table(k) if not c.suppressed]
    drawn = cells[:top]
    most = max((c.transitions or 0 for c in drawn), default=1)
    # label spots already used: zone names, node markers (their ids sit below right)
    taken = [np.array(p) for p in anchor.values()]
    taken += [np.array((n.x + 0.4, n.y - 0.3)) for n in plan.nodes]
    for c in reversed(drawn):  # thin first, the busiest on top
        n = c.transitions or 0
        p0, p1 = np.array(anchor[c.from_zone]), np.array(anchor[c.to_zone])
        lw = 1.0 + 6.0 * n / most
        ax.add_patch(
            FancyArrowPatch(
                tuple(p0),
                tuple(p1),
                connectionstyle=f"arc3,rad={ARC_RAD}",
                arrowstyle=f"-|>,head_length={3 + lw * 0.6:.1f},head_width={1.5 + lw * 0.4:.1f}",
                lw=lw,
                color="#c2410c",
                alpha=0.45 + 0.45 * n / most,
                shrinkA=16,
                shrinkB=18,
                zorder=5.8,  # under the zone names, over shelves and walls
            )
        )
        # matplotlib's arc3 is a quadratic Bézier through this control point
        d = p1 - p0
        ctrl = (p0 + p1) / 2 + ARC_RAD * np.array([d[1], -d[0]])
        spot = (p0 + p1) / 2
        for u in (0.5, 0.42, 0.58, 0.34, 0.66, 0.26, 0.74):
            spot = (1 - u) ** 2 * p0 + 2 * u * (1 - u) * ctrl + u**2 * p1
            if min(float(np.hypot(*(spot - q))) for q in taken) > LABEL_CLEAR_M:
                break
        taken.append(spot)
        ax.text(
            spot[0],
            spot[1],
            str(n),
            ha="center",
            va="center",
            fontsize=7.5,
            color="#7c2d12",
            zorder=9,
            bbox={"fc": "white", "ec": "#c2410c", "lw": 0.6, "alpha": 0.9, "pad": 1.0},
        )
    note = (
        f"{len(drawn)} busiest of {len(cells)} zone pairs with at least {k} devices"
        if len(cells) > len(drawn)
        else f"all {len(cells)} zone pairs with at least {k} devices"
    )
    sub = "\n".join([*textwrap.wrap(subtitle, 105), note])
    ax.set_title(f"{title}\n{sub}", fontsize=11, loc="left")
    fig.tight_layout()
    return fig
