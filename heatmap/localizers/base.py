"""What every localization strategy takes and returns.

A strategy is a module in :mod:`heatmap.localizers` with a function

    locate(win: Windows, model: RadioModel, grid: WalkableGrid, **options) -> Posterior

that does not mutate its inputs. ``Windows`` are the observations of each
pseudonym grouped per time window; ``Posterior`` holds, per window, a point
estimate and the probability of being inside the store, and the summed
person-seconds per grid cell. Baselines that give a point per window put all of
its weight in that point's cell, so benchmarks and reports swap strategies freely.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import numpy as np
from numpy.typing import NDArray

F = NDArray[np.float64]


@dataclass(frozen=True)
class Windows:
    """Observations grouped per (pid, window), sorted by pid then time."""

    pid: NDArray[np.str_]
    t_ms: NDArray[np.int64]
    """window start, Unix epoch ms"""
    band: NDArray[np.str_]
    rssi: F
    """(W, N) mean RSSI per node in the window, dBm, NaN where not heard"""
    counts: F
    """(W, N) frames each node heard in the window"""
    frames: NDArray[np.int64]
    """(W,) most frames any node heard in the window (≈ frames sent)"""
    window_ms: int

    def __len__(self) -> int:
        return len(self.pid)

    def take(self, idx: NDArray[np.int64]) -> Windows:
        """The windows at ``idx`` (keep pid/time order for smoothing)."""
        return Windows(
            self.pid[idx],
            self.t_ms[idx],
            self.band[idx],
            self.rssi[idx],
            self.counts[idx],
            self.frames[idx],
            self.window_ms,
        )


def make_windows(
    t_ms: NDArray[np.int64],
    node_idx: NDArray[np.int64],
    pid: NDArray[np.str_],
    rssi: F,
    band: NDArray[np.str_],
    n_nodes: int,
    window_ms: int = 5000,
) -> Windows:
    """Group observation rows (arrays of equal length) into windows."""
    if len(t_ms) == 0:
        z = np.zeros(0)
        return Windows(
            z.astype(str),
            z.astype(np.int64),
            z.astype(str),
            np.zeros((0, n_nodes)),
            np.zeros((0, n_nodes)),
            z.astype(np.int64),
            window_ms,
        )
    w = np.asarray(t_ms, np.int64) // window_ms
    key_pid, pid_code = np.unique(pid, return_inverse=True)
    order = np.lexsort((node_idx, w, pid_code))
    pc, ww, nj, rs = pid_code[order], w[order], node_idx[order], rssi[order]
    new_win = np.ones(len(order), bool)
    new_win[1:] = (pc[1:] != pc[:-1]) | (ww[1:] != ww[:-1])
    win_id = np.cumsum(new_win) - 1
    n_win = int(win_id[-1]) + 1
    sums = np.zeros((n_win, n_nodes))
    counts = np.zeros((n_win, n_nodes))
    np.add.at(sums, (win_id, nj), rs)
    np.add.at(counts, (win_id, nj), 1)
    with np.errstate(invalid="ignore"):
        mean = np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)
    first = np.flatnonzero(new_win)
    return Windows(
        key_pid[pc[first]],
        ww[first] * window_ms,
        band[order][first],
        mean,
        counts,
        counts.max(axis=1).astype(np.int64),
        window_ms,
    )


@dataclass(frozen=True)
class Posterior:
    """What a strategy says about every window (W of them) and every grid cell."""

    mean_xy: F
    """(W, 2) point estimate per window, m (the posterior mean for grid strategies)"""
    p_inside: F
    """(W,) probability the device is inside the store outline"""
    person_seconds: F
    """(cells,) window duration × posterior, summed over all windows, s"""
    by_group: F
    """(groups, cells) the same per group of windows (e.g. per hour)"""
    p_dwell: F | None = None
    """(W,) probability the device is standing still (motion models with a dwell mode)"""
    map_xy: F | None = None
    """(W, 2) centre of the most probable cell per window, m"""
    offset_db: F | None = None
    """(W,) estimated transmit offset of the window's device, dB (strategies that model it)"""
    track_xy: F | None = None
    """(W, 2) the pseudonym's most likely track (Viterbi), m, when asked for"""

    @property
    def xy(self) -> F:
        return self.mean_xy


Located = Posterior
"""former name, kept for callers of :mod:`heatmap.localize`"""


class Strategy(Protocol):
    """The signature every module in :mod:`heatmap.localizers` exposes as ``locate``."""

    def __call__(
        self,
        win: Windows,
        model: object,
        grid: object,
        *,
        duration_s: F | None = None,
        group: NDArray[np.int64] | None = None,
        n_groups: int = 1,
        progress: Callable[[float], None] | None = None,
    ) -> Posterior: ...


def point_posterior(
    xy: F,
    win: Windows,
    grid: object,
    duration_s: F | None,
    group: NDArray[np.int64] | None,
    n_groups: int,
) -> Posterior:
    """A Posterior from one point per window (baselines): each window's weight in its cell."""
    from heatmap.walkable_grid import WalkableGrid

    assert isinstance(grid, WalkableGrid)
    n = grid.nx * grid.ny
    dur = duration_s if duration_s is not None else np.full(len(win), win.window_ms / 1000)
    grp = group if group is not None else np.zeros(len(win), np.int64)
    ok = np.asarray(np.isfinite(xy).all(axis=1), dtype=bool)
    cells = grid.cells_of(np.where(ok[:, None], xy, 0.0))
    by_group = np.zeros((n_groups, n))
    np.add.at(by_group, (grp[ok], cells[ok]), dur[ok])
    inside = grid.inside[cells].astype(float)
    inside[~ok] = 0.0
    return Posterior(xy, inside, by_group.sum(axis=0), by_group, None, xy)
