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
from typing import Any, Protocol

import numpy as np
from numpy.typing import NDArray

F = NDArray[np.float64]


@dataclass(frozen=True)
class Windows:
    """Observations grouped per (pid, window), sorted by pid then time."""

    pid: NDArray[Any]
    """pseudonym per window (or an integer code for it)"""
    t_ms: NDArray[np.int64]
    """window start, Unix epoch ms"""
    band: NDArray[np.str_]
    rssi: NDArray[np.floating[Any]]
    """(W, N) mean RSSI per node in the window, dBm, NaN where not heard"""
    counts: NDArray[np.integer[Any]] | NDArray[np.floating[Any]]
    """(W, N) frames each node heard in the window (the smallest unsigned integer type
    that holds them; arithmetic on them goes through float)"""
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
    node_idx: NDArray[np.integer[Any]],
    pid: NDArray[Any],
    rssi: NDArray[np.floating[Any]],
    band: NDArray[Any],
    n_nodes: int,
    window_ms: int = 5000,
    band_names: NDArray[np.str_] | None = None,
) -> Windows:
    """Group observation rows (arrays of equal length) into windows.

    ``pid`` may be pseudonyms or integer codes for them (the windows keep
    whichever it is); ``band`` band names, or codes into ``band_names``.
    RSSI means are float32 and frame counts the smallest unsigned integer type
    that holds them, uint8 at the usual rates (a busy store-day at 1 s windows
    is ~900k windows × nodes: 70 MB for the means, 18 MB for the counts).
    """
    if len(t_ms) == 0:
        z = np.zeros(0)
        return Windows(
            np.asarray(pid)[:0],
            z.astype(np.int64),
            z.astype(str),
            np.zeros((0, n_nodes), np.float32),
            np.zeros((0, n_nodes), np.uint8),
            z.astype(np.int64),
            window_ms,
        )
    w = np.asarray(t_ms, np.int64) // window_ms
    key_pid, pid_code = np.unique(pid, return_inverse=True)
    order = np.lexsort((w, pid_code))
    pc, ww = pid_code[order], w[order]
    new_win = np.ones(len(order), bool)
    new_win[1:] = (pc[1:] != pc[:-1]) | (ww[1:] != ww[:-1])
    win_id = np.cumsum(new_win) - 1
    n_win = int(win_id[-1]) + 1
    first = np.flatnonzero(new_win)
    del new_win
    flat = win_id * n_nodes + np.asarray(node_idx)[order]
    del win_id
    size = n_win * n_nodes
    counts = np.bincount(flat, minlength=size).reshape(n_win, n_nodes)
    counts = counts.astype(np.min_scalar_type(int(counts.max())))
    sums = np.bincount(flat, weights=np.asarray(rssi)[order], minlength=size).reshape(
        n_win, n_nodes
    )
    del flat
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(counts > 0, sums / np.maximum(counts, 1), np.nan).astype(np.float32)
    del sums
    b = np.asarray(band)[order[first]]
    return Windows(
        key_pid[pc[first]],
        ww[first] * window_ms,
        b if band_names is None else np.asarray(band_names)[b],
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
    peak_rss_mib: float | None = None
    """largest resident set of the worker processes that localized, MiB (when there were any)"""

    @property
    def xy(self) -> F:
        return self.mean_xy


Located = Posterior
"""former name, kept for callers of :mod:`heatmap.localizers.localize`"""


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
    from heatmap.spatial.walkable_grid import WalkableGrid

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
