"""Ours: a posterior over the walkable grid per window, smoothed with a motion model.

For each pseudonym and window, the likelihood of its RSSI vector at every
walkable cell (:class:`~heatmap.localizers.likelihood.GridLikelihood`: phone
offset profiled out, non-detection as evidence); then forward–backward over the
pseudonym's windows with the two-mode random walk of :mod:`heatmap.spatial.motion`,
which walls and shelves block. Output: the posterior per window (its mean, its
most probable cell, the probability of being inside and of dwelling) and the
posterior summed into person-seconds per cell.

Memory stays bounded: pseudonyms are processed in chunks of whole tracks.

The strategy's entry (:func:`locate`); the work is spread over
:mod:`~heatmap.localizers.chunk_worker` (one chunk, here or in a worker process),
:mod:`~heatmap.localizers.two_scale` and :mod:`~heatmap.localizers.single_scale`
(the passes), :mod:`~heatmap.localizers.phone_offsets` (the marginal offset
search), :mod:`~heatmap.localizers.track_segments` (segments and chunks) and
:mod:`~heatmap.localizers.chunk_models` (options, cached models, likelihood rows).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from numpy.typing import NDArray

from heatmap.localizers.base import Posterior, Windows
from heatmap.localizers.chunk_models import ChunkOptions, remember_motion
from heatmap.localizers.chunk_worker import ChunkSummary, run_chunks
from heatmap.localizers.phone_offsets import MARGINAL_ROUNDS
from heatmap.localizers.track_segments import CHUNK_ELEMENTS, length_chunks
from heatmap.spatial.motion import MotionModel, MotionParams
from heatmap.spatial.radio_model import RadioModel
from heatmap.spatial.walkable_grid import WalkableGrid

NAME = "grid posterior + motion (ours)"
F = NDArray[np.float64]


def locate(
    win: Windows,
    model: RadioModel,
    grid: WalkableGrid,
    *,
    duration_s: F | None = None,
    group: NDArray[np.int64] | None = None,
    n_groups: int = 1,
    progress: Callable[[float], None] | None = None,
    motion: MotionModel | MotionParams | bool | None = True,
    evidence_weight: float = 1.0,
    pool_offsets: bool = True,
    offset_iterations: int = 1,
    marginal_rounds: int = MARGINAL_ROUNDS,
    tracks: bool = False,
    workers: int = 1,
) -> Posterior:
    """Posterior per window over the walkable cells, summed into person-seconds.

    Parameters
    ----------
    win
        Windows sorted by pid then time (as :func:`~heatmap.localizers.base.make_windows`
        returns them).
    model, grid
        Radio model and walkable grid.
    duration_s
        Seconds each window stands for (default: the window length; 0 leaves a
        window out of the person-seconds).
    group, n_groups
        Label 0..n_groups-1 per window, for person-seconds per group (e.g. hour).
    progress
        Called with the number of windows done.
    motion
        A :class:`MotionModel`, its parameters, True for the default model, or
        False/None for independent windows.
    evidence_weight
        Tempering of the likelihood (see :class:`GridLikelihood`).
    pool_offsets
        Estimate each phone's transmit offset from all windows of its pseudonym
        (True), or integrate it over its prior in every window separately.
    offset_iterations
        EM refinements of each device's offset from its smoothed posterior (each
        costs one more likelihood and smoothing pass over tracks of at least
        :data:`~heatmap.localizers.single_scale.EM_MIN_WINDOWS` windows).
    marginal_rounds
        After the EM, rounds of search for the offset that maximizes each such
        track's marginal likelihood
        (:func:`~heatmap.localizers.phone_offsets.marginal_offsets`; each costs
        three likelihood and forward passes); 0 keeps the EM's.
    tracks
        Also the most likely track of each pseudonym (beam Viterbi,
        :func:`heatmap.spatial.viterbi.viterbi_tracks`), for flows: ``Posterior.track_xy``.
    workers
        Processes to spread the pseudonyms over (whole tracks per chunk); 1 runs
        here. Each worker builds its own motion model once.
    """
    cells = np.flatnonzero(grid.walkable)
    dur = duration_s if duration_s is not None else np.full(len(win), win.window_ms / 1000)
    grp = group if group is not None else np.zeros(len(win), np.int64)
    params: MotionParams | None
    if isinstance(motion, MotionModel):
        params = motion.params
        remember_motion(grid, motion)
        min_gap = motion.min_gap_s
    elif isinstance(motion, MotionParams) or motion is True:
        params = motion if isinstance(motion, MotionParams) else MotionParams()
        min_gap = win.window_ms / 1000
    else:
        params, min_gap = None, win.window_ms / 1000
    opts = ChunkOptions(
        evidence_weight, pool_offsets, offset_iterations, marginal_rounds, tracks, params, min_gap
    )
    jobs = []
    for band in np.unique(win.band):
        rows = np.flatnonzero(win.band == band)
        for idx in length_chunks(win.pid, rows, max(CHUNK_ELEMENTS // max(len(cells), 1), 64)):
            jobs.append((str(band), idx))
    ps = np.zeros((n_groups, len(cells)))
    p_in = np.zeros(len(win))
    p_dwell = np.full(len(win), np.nan)
    mean_xy = np.zeros((len(win), 2))
    map_xy = np.zeros((len(win), 2))
    offset = np.zeros(len(win))
    track_xy = np.full((len(win) if tracks else 0, 2), np.nan)
    peak_rss: list[float | None] = []

    def absorb(idx: NDArray[np.int64], r: ChunkSummary) -> None:
        ps[: len(r.person_seconds)] += r.person_seconds
        p_in[idx] = r.p_inside
        mean_xy[idx] = r.mean_xy
        map_xy[idx] = r.map_xy
        offset[idx] = r.offset
        if r.p_dwell is not None:
            p_dwell[idx] = r.p_dwell
        if r.track_xy is not None:
            track_xy[idx] = r.track_xy
        peak_rss.append(r.peak_rss_mib)
        if progress is not None:
            progress(len(idx))

    def args(band: str, idx: NDArray[np.int64]) -> tuple[Any, ...]:
        return (model, grid, opts, band, win.take(idx), dur[idx], grp[idx], n_groups)

    run_chunks(jobs, args, absorb, workers)
    full = np.zeros((n_groups, grid.nx * grid.ny))
    full[:, cells] = ps
    return Posterior(
        mean_xy,
        p_in,
        full.sum(axis=0),
        full,
        p_dwell if params is not None else None,
        map_xy,
        offset if pool_offsets else None,
        track_xy if tracks and params is not None else None,
        max((m for m in peak_rss if m is not None), default=None)
        if workers > 1 and len(jobs) > 1
        else None,
    )
