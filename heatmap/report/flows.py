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
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import shapely
from numpy.typing import NDArray

from heatmap.localizers.base import Windows
from heatmap.spatial.floorplan import FloorPlan

if TYPE_CHECKING:
    from matplotlib.figure import Figure

MIN_DWELL_S = 10.0
"""a zone counts as a stay only after this long in it, s"""

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


@dataclass(frozen=True)
class FlowCell:
    """One (from, to) cell of a flow matrix as published; None where suppressed."""

    from_zone: str
    to_zone: str
    transitions: int | None
    devices: int | None

    @property
    def suppressed(self) -> bool:
        return self.devices is None


@dataclass(frozen=True)
class FlowMatrix:
    """Transitions between zones: ``transitions[i, j]`` counts moves zone i → zone j."""

    zones: tuple[str, ...]
    transitions: Ix
    """(Z, Z) transitions from row zone to column zone (diagonal always 0)"""
    devices: Ix
    """(Z, Z) distinct pseudonyms (or people) with at least one such transition"""
    entities: int
    """pseudonyms (or people) with at least one stay"""

    @property
    def total(self) -> int:
        return int(self.transitions.sum())

    def distribution(self) -> F:
        """Transitions as shares of all transitions (all zeros if there are none)."""
        tot = self.transitions.sum()
        return self.transitions / tot if tot else np.zeros(self.transitions.shape)

    def table(self, k: int) -> list[FlowCell]:
        """Non-empty cells, most transitions first; cells of fewer than ``k`` devices
        come last, suppressed (counts None), so that a small group is never shown;
        they are in zone order, as their order must not tell their counts either."""
        i, j = np.nonzero(self.transitions)
        shown = self.devices[i, j] >= k
        order = np.lexsort((j, i, np.where(shown, -self.transitions[i, j], 0), ~shown))
        return [
            FlowCell(
                self.zones[i[o]],
                self.zones[j[o]],
                int(self.transitions[i[o], j[o]]) if shown[o] else None,
                int(self.devices[i[o], j[o]]) if shown[o] else None,
            )
            for o in order
        ]


_POINT_BATCH = 100_000


def zone_index(plan: FloorPlan, xy: F) -> Ix:
    """Index into ``plan.zones`` of the zone holding each point, -1 outside every zone
    (and for NaN points). Zones do not overlap (the floor plan checks)."""
    xy = np.asarray(xy, float).reshape(-1, 2)
    out = np.full(len(xy), -1, np.int64)
    for z in plan.zones:
        shapely.prepare(z.polygon)
    # coordinates straight into the prepared polygons (no shapely point per window),
    # in batches: a busy day is ~1M windows, and whole-day temporaries were the
    # report's peak memory. NaN coordinates are in no zone.
    for lo in range(0, len(xy), _POINT_BATCH):
        x, y = xy[lo : lo + _POINT_BATCH, 0], xy[lo : lo + _POINT_BATCH, 1]
        o = out[lo : lo + _POINT_BATCH]
        for zi, z in enumerate(plan.zones):
            o[shapely.contains_xy(z.polygon, x, y)] = zi
    return out


def flows_from_stays(
    entity: Ix,
    zone: Ix,
    duration_s: F,
    zones: tuple[str, ...] | list[str],
    min_dwell_s: float = MIN_DWELL_S,
) -> FlowMatrix:
    """Flow matrix from contiguous zone runs, sorted by entity then time.

    ``entity``: integer id per run (pseudonym or person); ``zone``: index into
    ``zones`` (-1: outside every zone, ignored); ``duration_s``: how long the run
    lasted. Runs shorter than ``min_dwell_s`` are dropped, then consecutive runs
    of one entity in the same zone merge, and each remaining change is a transition.
    """
    entity = np.asarray(entity, np.int64)
    zone = np.asarray(zone, np.int64)
    n_z = len(zones)
    keep = (zone >= 0) & (np.asarray(duration_s, float) >= min_dwell_s)
    e, z = entity[keep], zone[keep]
    if len(e) > 1 and (np.diff(e) < 0).any():
        raise ValueError("runs must be sorted by entity then time")
    # merge consecutive stays of one entity in one zone: only changes remain
    new = np.r_[True, (e[1:] != e[:-1]) | (z[1:] != z[:-1])] if len(e) else np.zeros(0, bool)
    e, z = e[new], z[new]
    step = np.flatnonzero(e[1:] == e[:-1])
    src, dst, who = z[step], z[step + 1], e[step]
    trans = np.zeros((n_z, n_z), np.int64)
    np.add.at(trans, (src, dst), 1)
    devices = np.zeros((n_z, n_z), np.int64)
    if len(step):
        uniq = np.unique(np.stack([who, src, dst], axis=1), axis=0)
        np.add.at(devices, (uniq[:, 1], uniq[:, 2]), 1)
    return FlowMatrix(tuple(zones), trans, devices, len(np.unique(e)))


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
