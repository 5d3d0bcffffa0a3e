"""Resident devices: the sessions that stay put, taken out of the visitors' heatmap.

A session (one pseudonym's windows without a long gap, :mod:`.sessions`) located
within ``STATIC_SPREAD_M`` of one spot (root-mean-square distance of its windows
from their mean) for at least ``STATIC_MIN_S`` is not a visitor browsing the floor:
a cashier behind the counter, a till's tablet, a phone left on a shelf. Its
device-seconds are taken out of the period's heatmap where it was located, before
RF turns into people.

The thresholds: a visitor standing at a till is served and gone in a few minutes,
and a browsing visitor's session of 10 to 15 minutes spreads over 4 to 9 m on the
bundled store, while a phone lying still is located within 0.5 to 2.5 m of its
spot; ``STATIC_MIN_S`` stays under the ~15-minute lifetime of a rotating address,
so a resident is seen as one each time its address changes, and the address that
takes over where and when a static session's went quiet is static from its first
window (:func:`_continued`). A visitor who stands within 3 m of one spot for 10
minutes (a long wait, a table) is taken out too. What cannot be known live: the first
10 minutes of a resident's first address of the day are drawn as a visitor's (the
period is computed before anyone knows the phone will stay).

This replaces the per-cell fit of RF devices against the door occupancy (its
intercept as "where the residents are"): with an hour's 12 intervals the intercepts
of every cell were noise clipped at zero, which put a third of the residents'
time at the counter where they spent half of it, and the rest over the whole floor,
apparel and fitting rooms included (the demo's checkout came out 4 to 16 points over its share of
visitor time, apparel 5 under). The fusion's resident count still sets how many
people an RF device stands for (:mod:`heatmap.aggregator.fusion`); residents who
walk about are not told apart here and stay in the map, spread like visitors.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from heatmap.aggregator.live.tracks_table import TrackRows

STATIC_MIN_S = 600.0
"""a session located for at least this long ..."""
STATIC_SPREAD_M = 3.0
"""... within this of one spot (RMS distance from its mean position) is a resident's"""
RESIDENT_LOOKBACK_MS = int(STATIC_MIN_S * 1000)
"""a session younger than ``STATIC_MIN_S`` at a period's end can only be static by
taking over from an address that went quiet this long before it: the pseudonyms
located that far before a period are read with it"""

F = NDArray[np.float64]


@dataclass(frozen=True)
class Residents:
    cells: F
    """(cells,) the static sessions' device-seconds per grid cell in the period"""
    sessions: int
    """static sessions with a window in the period"""

    def __add__(self, other: Residents) -> Residents:
        return Residents(self.cells + other.cells, self.sessions + other.sessions)


def static_sessions(
    tr: TrackRows, n_cells: int, window_ms: int, session_gap_ms: int, t0_ms: int, t1_ms: int
) -> Residents:
    """The static sessions among ``tr``'s (sorted by pid then time), as located before
    ``t1_ms``, and their device-seconds per cell in [t0, t1).

    >>> from heatmap.aggregator.live.tracks_table import TrackRows
    >>> t = np.arange(0, 700_000, 5_000)
    >>> n = len(t)
    >>> still = np.tile([[4.0, 1.0], [4.4, 1.2]], (n // 2, 1))
    >>> walk = np.column_stack([np.linspace(2, 20, n), np.full(n, 10.0)])
    >>> tr = TrackRows(
    ...     np.array(["a"] * n + ["b"] * n), np.r_[t, t], np.vstack([still, walk]),
    ...     np.ones(2 * n), np.zeros(2 * n, np.int64), np.r_[np.full(n, 3), np.full(n, 7)])
    >>> r = static_sessions(tr, 10, 5_000, 120_000, 0, 3_600_000)
    >>> r.sessions, float(r.cells[3]), float(r.cells[7])
    (1, 700.0, 0.0)
    """
    cells = np.zeros(n_cells)
    # only what was located before the period's end: the same figures whenever the
    # period is computed (late rows after it, or a catch-up after a restart)
    upto = tr.t_ms < t1_ms
    t, pid, xy, cell = tr.t_ms[upto], tr.pid[upto], tr.xy[upto], tr.cell[upto]
    if len(t) == 0:
        return Residents(cells, 0)
    new = np.r_[True, (pid[1:] != pid[:-1]) | (np.diff(t) > session_gap_ms)]
    sid = np.cumsum(new) - 1
    starts = np.flatnonzero(new)
    count = np.bincount(sid).astype(float)
    mean = np.column_stack([np.bincount(sid, xy[:, i]) / count for i in (0, 1)])
    spread = np.sqrt(np.bincount(sid, ((xy - mean[sid]) ** 2).sum(axis=1)) / count)
    span_s = (np.maximum.reduceat(t, starts) - t[starts] + window_ms) / 1000
    static = (span_s >= STATIC_MIN_S) & (spread <= STATIC_SPREAD_M)
    static |= _continued(
        static, t[starts], np.maximum.reduceat(t, starts), mean, spread, session_gap_ms
    )
    here = static[sid] & (t >= t0_ms)
    np.add.at(cells, cell[here], window_ms / 1000)
    return Residents(cells, len(np.unique(sid[here])))


def _continued(
    static: NDArray[np.bool_],
    start: F | NDArray[np.int64],
    end: F | NDArray[np.int64],
    mean: F,
    spread: F,
    gap_ms: int,
) -> NDArray[np.bool_]:
    """The sessions that take over from a static one: a resident's phone rotates its
    address every 10 to 20 minutes, and its next address starts where and when the last
    one went quiet (within ``gap_ms`` and ``STATIC_SPREAD_M``), located as tightly.
    Without this the first 10 minutes of every address of a cashier's phone were drawn
    as a visitor's heat. Followed along the chain in order of start."""
    out = static.copy()
    found = np.flatnonzero(static).tolist()
    for i in np.argsort(start, kind="stable"):
        if out[i] or spread[i] > STATIC_SPREAD_M or not found:
            continue
        prev = np.asarray(found)
        near = (np.abs(end[prev] - start[i]) <= gap_ms) & (
            np.hypot(*(mean[prev] - mean[i]).T) <= STATIC_SPREAD_M
        )
        if near.any():
            out[i] = True
            found.append(int(i))
    return out
