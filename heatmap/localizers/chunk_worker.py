"""The work on one chunk of whole tracks, in this process or a worker process.

:func:`chunk_posterior` picks the pass (two-scale for windows shorter than
:data:`~heatmap.localizers.two_scale.TWO_SCALE_BELOW_MS`, else single-scale) and
adds the most likely tracks; :func:`chunk_summary` reduces its posterior to what
:func:`heatmap.localizers.grid_posterior.locate` keeps (:class:`ChunkSummary`;
the per-window posteriors stay in the worker); :func:`run_chunks` runs the
chunks here or in a pool of spawned processes. What crosses to a worker is
pickled: these are top-level names of this importable module.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from heatmap.localizers.base import Windows
from heatmap.localizers.chunk_models import ChunkOptions, ChunkResult, motion_model
from heatmap.localizers.single_scale import single_scale
from heatmap.localizers.two_scale import TWO_SCALE_BELOW_MS, two_scale
from heatmap.spatial.radio_model import RadioModel
from heatmap.spatial.viterbi import viterbi_tracks
from heatmap.spatial.walkable_grid import WalkableGrid
from sensing.runtime.process_memory import peak_rss_mib

F = NDArray[np.float64]

_BLAS_THREAD_VARS = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


@dataclass(frozen=True)
class ChunkSummary:
    """What the caller keeps of a chunk (the per-window posteriors stay in the worker)."""

    person_seconds: F
    """(groups, cells) duration × posterior summed per group"""
    p_inside: F
    mean_xy: F
    map_xy: F
    offset: F
    p_dwell: F | None
    track_xy: F | None
    peak_rss_mib: float | None


def chunk_posterior(
    model: RadioModel, grid: WalkableGrid, o: ChunkOptions, band: str, win: Windows
) -> ChunkResult:
    """Posterior of whole tracks: offsets pooled, likelihood, smoothing, EM, tracks.

    Windows shorter than ``TWO_SCALE_BELOW_MS`` take two passes (see
    :func:`~heatmap.localizers.two_scale.two_scale`).
    """
    if o.motion is not None and win.window_ms < TWO_SCALE_BELOW_MS and len(win):
        return two_scale(model, grid, o, band, win)
    r = single_scale(model, grid, o, band, win, o.min_gap_s)
    mm = motion_model(grid, o.motion, o.min_gap_s) if o.motion is not None else None
    track = (
        viterbi_tracks(mm, r.post, r.lik, r.dev, win.t_ms) if o.tracks and mm is not None else None
    )
    return ChunkResult(r.post, r.offset, r.p_dwell, track)


def chunk_summary(
    model: RadioModel,
    grid: WalkableGrid,
    o: ChunkOptions,
    band: str,
    win: Windows,
    dur: F,
    grp: NDArray[np.int64],
    n_groups: int,
) -> ChunkSummary:
    """:func:`chunk_posterior`, reduced to what
    :func:`~heatmap.localizers.grid_posterior.locate` returns (runs in the worker)."""
    r = chunk_posterior(model, grid, o, band, win)
    cells = np.flatnonzero(grid.walkable)
    xy = grid.centers[cells]
    ps = np.zeros((n_groups, len(cells)))
    # reduce at the posterior's own rows (a standing block's windows share one)
    rows = r.row_of if r.row_of is not None else np.arange(len(win))
    for g in np.unique(grp):
        m = grp == g
        w = np.bincount(rows[m], dur[m], minlength=len(r.post)).astype(np.float32)
        ps[g] = w @ r.post
    return ChunkSummary(
        ps,
        (r.post @ grid.inside[cells].astype(np.float32))[rows],
        (r.post @ xy.astype(np.float32))[rows],
        xy[np.argmax(r.post, axis=1)][rows],
        r.offset,
        r.p_dwell,
        None if r.track is None else xy[r.track],
        peak_rss_mib(),
    )


def run_chunks(
    jobs: list[tuple[str, NDArray[np.int64]]],
    args: Callable[[str, NDArray[np.int64]], tuple[Any, ...]],
    absorb: Callable[[NDArray[np.int64], ChunkSummary], None],
    workers: int,
) -> None:
    """:func:`chunk_summary` of every (band, rows) job, each handed to ``absorb``.

    ``args(band, rows)``: the job's arguments of :func:`chunk_summary`. With
    ``workers`` > 1 and more than one job, in that many spawned processes with one
    BLAS thread each, a few chunks in flight (in the order they finish); else here,
    in order.
    """
    if workers > 1 and len(jobs) > 1:
        import concurrent.futures as cf
        import multiprocessing

        ctx = multiprocessing.get_context("spawn")
        # the processes are the parallelism: one BLAS thread each (set before they start)
        saved = {k: os.environ.get(k) for k in _BLAS_THREAD_VARS}
        os.environ.update(dict.fromkeys(_BLAS_THREAD_VARS, "1"))
        try:
            with cf.ProcessPoolExecutor(workers, mp_context=ctx) as pool:
                # a few chunks in flight: each is a copy of its windows
                todo = list(jobs)
                futs: dict[cf.Future[ChunkSummary], NDArray[np.int64]] = {}
                while todo or futs:
                    while todo and len(futs) < 2 * workers:
                        band, idx = todo.pop(0)
                        futs[pool.submit(chunk_summary, *args(band, idx))] = idx
                    done, _ = cf.wait(futs, return_when=cf.FIRST_COMPLETED)
                    for f in done:
                        absorb(futs.pop(f), f.result())
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
    else:
        for band, idx in jobs:
            absorb(idx, chunk_summary(*args(band, idx)))
