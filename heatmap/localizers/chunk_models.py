"""What the posterior of a chunk of tracks is computed with, once per process.

The options :func:`heatmap.localizers.grid_posterior.locate` hands each chunk
(:class:`ChunkOptions`) and what the passes give back (:class:`ChunkResult`);
the motion model and the grid likelihoods (over every walkable cell, and over
about one cell per :data:`COARSE_M` square for the offset evidence), cached per
process (a worker builds each once); and the likelihood rows of windows from
them (:func:`likelihood_rows`, each row scaled to max 1).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from heatmap.localizers.base import Windows
from heatmap.localizers.likelihood import GridLikelihood
from heatmap.spatial.motion import TINY, MotionModel, MotionParams
from heatmap.spatial.radio_model import RadioModel
from heatmap.spatial.walkable_grid import WalkableGrid

F = NDArray[np.float64]

COARSE_M = 1.0
"""cell pitch (m) at which each window's evidence about the phone offset is computed

(1 m: every cell of the report's grid. A 2 m set was 3.7x cheaper but its best cell
per offset is up to 1.4 m off, which biased the offsets of people standing at a
wall: heatmap r over seeds 1-3 of 1 h, 5 s windows, 0.610/0.675/0.685 -> 0.679/
0.703/0.707 with 20 nodes, 0.487/0.622/0.603 -> 0.483/0.634/0.603 with 6)"""


@dataclass(frozen=True)
class ChunkOptions:
    """What :func:`~heatmap.localizers.grid_posterior.locate` asks of every chunk: its
    keyword arguments, the motion model's parameters and the shortest gap, s."""

    evidence_weight: float
    pool_offsets: bool
    offset_iterations: int
    marginal_rounds: int
    tracks: bool
    motion: MotionParams | None
    min_gap_s: float


@dataclass(frozen=True)
class ChunkResult:
    """A chunk's posterior over the walkable cells, offsets (dB), dwell probability
    and most likely cells per window."""

    post: NDArray[np.floating[Any]]
    offset: F
    p_dwell: F | None
    track: NDArray[np.int64] | None
    row_of: NDArray[np.int64] | None = None
    """row of ``post`` for each window (None: one row per window)"""


_MOTION_CACHE: dict[tuple[object, ...], MotionModel] = {}
_LIK_CACHE: dict[tuple[object, ...], GridLikelihood] = {}


def _motion_key(grid: WalkableGrid, p: MotionParams, min_gap: float) -> tuple[object, ...]:
    return (id(grid), grid.nx, grid.ny, grid.cell_m, p, min_gap)


def remember_motion(grid: WalkableGrid, motion: MotionModel) -> None:
    """Use ``motion`` for its grid, parameters and shortest gap in this process
    (:func:`motion_model` then returns it rather than building another)."""
    _MOTION_CACHE[_motion_key(grid, motion.params, motion.min_gap_s)] = motion


def motion_model(grid: WalkableGrid, p: MotionParams, min_gap: float) -> MotionModel:
    """The motion model of ``grid`` with ``p`` and shortest gap ``min_gap`` (s), built
    once per process."""
    key = _motion_key(grid, p, min_gap)
    mm = _MOTION_CACHE.get(key)
    if mm is None or mm.grid is not grid:
        if len(_MOTION_CACHE) > 4:
            _MOTION_CACHE.clear()
        mm = _MOTION_CACHE[key] = MotionModel(grid, p, min_gap)
    return mm


def likelihood_models(
    model: RadioModel, grid: WalkableGrid, band: str, weight: float, coarse_m: float = COARSE_M
) -> tuple[GridLikelihood, GridLikelihood]:
    """The likelihood over every walkable cell, and over about one per ``coarse_m``
    square (the offset evidence's first pass) — the same object when that is every
    cell. Cached per process (each holds ~10 MB of tables on the bundled store's
    1 m grid, so the full one is built once and shared)."""
    cells = np.flatnonzero(grid.walkable)
    coarse = _coarse_cells(grid, cells, coarse_m)
    full = _cached_likelihood(model, grid, band, weight, cells, "all")
    if len(coarse) == len(cells):
        return full, full
    return full, _cached_likelihood(model, grid, band, weight, cells[coarse], coarse_m)


def _cached_likelihood(
    model: RadioModel,
    grid: WalkableGrid,
    band: str,
    weight: float,
    cells: NDArray[np.int64],
    label: object,
) -> GridLikelihood:
    key = (id(model), id(grid), band, weight, label)
    got = _LIK_CACHE.get(key)
    if got is None or got.model is not model:
        # a new model (a refit) retires the tables of the old ones: each is ~10 MB, and
        # the live aggregator refits through the day
        for k in [k for k, v in _LIK_CACHE.items() if v.model is not model]:
            del _LIK_CACHE[k]
        if len(_LIK_CACHE) > 8:
            _LIK_CACHE.clear()
        got = _LIK_CACHE[key] = GridLikelihood(model, grid.centers[cells], band, weight)
    return got


def likelihood_rows(
    lik_model: GridLikelihood,
    win: Windows,
    idx: NDArray[np.int64],
    b_mean: F | None,
    b_var: F | None,
) -> NDArray[np.float32]:
    """(len(idx), C) likelihood of windows ``idx``, each row scaled to max 1.

    ``b_mean``/``b_var``: the offset prior of each of those windows (len(idx),).
    """
    step = lik_model.call_rows()
    lik = np.empty((len(idx), lik_model.n_cells), np.float32)
    for lo in range(0, len(idx), step):
        s = idx[lo : lo + step]
        ll = lik_model(
            win.rssi[s],
            win.counts[s],
            win.frames[s],
            None if b_mean is None else b_mean[lo : lo + step],
            None if b_var is None else b_var[lo : lo + step],
        )
        exp_rows(ll)
        lik[lo : lo + step] = ll
    return lik


def exp_rows(ll: NDArray[np.float32]) -> NDArray[np.float32]:
    """Each row of log-likelihoods ``ll`` (B, C) made likelihoods scaled to max 1, in
    place, floored at TINY (no float32 subnormals); returns each row's log scale."""
    top = ll.max(axis=1)
    ll -= top[:, None]
    np.exp(ll, out=ll)
    np.maximum(ll, TINY, out=ll)
    return top


def _coarse_cells(grid: WalkableGrid, cells: NDArray[np.int64], step_m: float) -> NDArray[np.int64]:
    """Indices into ``cells`` of about one cell per ``step_m`` × ``step_m`` block."""
    f = max(round(step_m / grid.cell_m), 1)
    r, c = np.divmod(cells, grid.nx)
    keep = (r % f == f // 2) & (c % f == f // 2)
    out = np.flatnonzero(keep)
    return out if len(out) >= 4 else np.arange(len(cells))
