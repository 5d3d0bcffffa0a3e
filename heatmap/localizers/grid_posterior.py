"""Ours: a posterior over the walkable grid per window, smoothed with a motion model.

For each pseudonym and window, the likelihood of its RSSI vector at every
walkable cell (:class:`~heatmap.localizers.likelihood.GridLikelihood`: phone
offset profiled out, non-detection as evidence); then forward–backward over the
pseudonym's windows with the two-mode random walk of :mod:`heatmap.spatial.motion`,
which walls and shelves block. Output: the posterior per window (its mean, its
most probable cell, the probability of being inside and of dwelling) and the
posterior summed into person-seconds per cell.

Memory stays bounded: pseudonyms are processed in chunks of whole tracks.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from heatmap.localizers.base import Posterior, Windows
from heatmap.localizers.likelihood import GridLikelihood
from heatmap.spatial.motion import TINY, MotionModel, MotionParams, viterbi_tracks
from heatmap.spatial.radio_model import RadioModel
from heatmap.spatial.walkable_grid import WalkableGrid
from sensing.runtime.process_memory import peak_rss_mib

NAME = "grid posterior + motion (ours)"
F = NDArray[np.float64]
_CHUNK_ELEMENTS = 6_000_000
"""windows × cells smoothed at once (three such float32 arrays live at a time)"""
COARSE_M = 1.0
"""cell pitch (m) at which each window's evidence about the phone offset is computed

(1 m: every cell of the report's grid. A 2 m set was 3.7x cheaper but its best cell
per offset is up to 1.4 m off, which biased the offsets of people standing at a
wall: heatmap r over seeds 1-3 of 1 h, 5 s windows, 0.610/0.675/0.685 -> 0.679/
0.703/0.707 with 20 nodes, 0.487/0.622/0.603 -> 0.483/0.634/0.603 with 6)"""
BLOCK_COARSE_M = 2.0
"""the same for the blocks of short windows (:func:`_two_scale`): when they were
5 s, every cell cost 30 % more CPU on the busy store-day's peak hour for heatmap
r 0.816 -> 0.829 on its day, more than its 60 s budget allows"""
_BLAS_THREAD_VARS = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")
SEGMENT_WINDOWS = 240
"""tracks longer than this (plus the overlap) are smoothed in overlapping segments"""
SEGMENT_OVERLAP = 60
"""windows of context either side of a segment (see :func:`track_segments`)"""
TWO_SCALE_BELOW_MS = 5000
"""windows shorter than this are first localized in blocks (see :func:`_two_scale`)"""
BLOCK_MS = 10000
"""length of those blocks (see :data:`BLOCK_MARGINAL_ROUNDS`)"""
DWELL_MERGE_P = 0.6
"""a block the coarse pass finds standing with at least this probability is one fine step

(once a known offset makes a block's likelihood its windows' together, merging
costs little: busy store-day, heatmap r 0.9293 at 0.6, 0.9298 at 0.8 for 10 %
more CPU; 0.9292 at 0.5. Before that fix 0.8 gave 0.899 and no merging 0.928)"""
EM_MIN_WINDOWS = 12
"""EM refinement of the offset only for tracks at least this long (shorter ones move little)"""
BLOCK_MARGINAL_ROUNDS = 0
"""rounds of the marginal offset search (:func:`marginal_offsets`) on the blocks.

Busy store-day, localization in the two workers (CPU s / heatmap r), measured side
by side: with the cells walkable in any part (:func:`~heatmap.spatial.walkable_grid.samples_for`)
no round 100.0 / 0.929, one round 115.0 / 0.956 — more than the day's 60 s allow on
this machine (median 63.7 s); with the centre rule one round 104.6 / 0.930. (Last
session, before the known offset and the fitted dwelling diffusion: none 79.2 /
0.774, one 103.9 / 0.849 CPU s in one process.)"""
MARGINAL_ROUNDS = 2
"""rounds of the marginal offset search on windows of 5 s and more (see :func:`locate`)"""
MARGINAL_STEP_DB = 0.5
"""first step of the offset's marginal-likelihood search (:func:`marginal_offsets`)"""


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
        ``EM_MIN_WINDOWS`` windows).
    marginal_rounds
        After the EM, rounds of search for the offset that maximizes each such
        track's marginal likelihood (:func:`marginal_offsets`; each costs three
        likelihood and forward passes); 0 keeps the EM's.
    tracks
        Also the most likely track of each pseudonym (beam Viterbi,
        :func:`heatmap.spatial.motion.viterbi_tracks`), for flows: ``Posterior.track_xy``.
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
        _MOTION_CACHE[_motion_key(grid, params, motion.min_gap_s)] = motion
        min_gap = motion.min_gap_s
    elif isinstance(motion, MotionParams) or motion is True:
        params = motion if isinstance(motion, MotionParams) else MotionParams()
        min_gap = win.window_ms / 1000
    else:
        params, min_gap = None, win.window_ms / 1000
    opts = _Options(
        evidence_weight, pool_offsets, offset_iterations, marginal_rounds, tracks, params, min_gap
    )
    jobs = []
    for band in np.unique(win.band):
        rows = np.flatnonzero(win.band == band)
        for idx in length_chunks(win.pid, rows, max(_CHUNK_ELEMENTS // max(len(cells), 1), 64)):
            jobs.append((str(band), idx))
    ps = np.zeros((n_groups, len(cells)))
    p_in = np.zeros(len(win))
    p_dwell = np.full(len(win), np.nan)
    mean_xy = np.zeros((len(win), 2))
    map_xy = np.zeros((len(win), 2))
    offset = np.zeros(len(win))
    track_xy = np.full((len(win) if tracks else 0, 2), np.nan)
    peak_rss: list[float | None] = []

    def absorb(idx: NDArray[np.int64], r: _Summary) -> None:
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
                futs: dict[cf.Future[_Summary], NDArray[np.int64]] = {}
                while todo or futs:
                    while todo and len(futs) < 2 * workers:
                        band, idx = todo.pop(0)
                        futs[pool.submit(_chunk_summary, *args(band, idx))] = idx
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
            absorb(idx, _chunk_summary(*args(band, idx)))
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


@dataclass(frozen=True)
class _Options:
    evidence_weight: float
    pool_offsets: bool
    offset_iterations: int
    marginal_rounds: int
    tracks: bool
    motion: MotionParams | None
    min_gap_s: float


@dataclass(frozen=True)
class _ChunkResult:
    post: NDArray[np.floating[Any]]
    offset: F
    p_dwell: F | None
    track: NDArray[np.int64] | None
    row_of: NDArray[np.int64] | None = None
    """row of ``post`` for each window (None: one row per window)"""


@dataclass(frozen=True)
class _Summary:
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


def _chunk_summary(
    model: RadioModel,
    grid: WalkableGrid,
    o: _Options,
    band: str,
    win: Windows,
    dur: F,
    grp: NDArray[np.int64],
    n_groups: int,
) -> _Summary:
    """:func:`_chunk`, reduced to what :func:`locate` returns (runs in the worker)."""
    r = _chunk(model, grid, o, band, win)
    cells = np.flatnonzero(grid.walkable)
    xy = grid.centers[cells]
    ps = np.zeros((n_groups, len(cells)))
    # reduce at the posterior's own rows (a standing block's windows share one)
    rows = r.row_of if r.row_of is not None else np.arange(len(win))
    for g in np.unique(grp):
        m = grp == g
        w = np.bincount(rows[m], dur[m], minlength=len(r.post)).astype(np.float32)
        ps[g] = w @ r.post
    return _Summary(
        ps,
        (r.post @ grid.inside[cells].astype(np.float32))[rows],
        (r.post @ xy.astype(np.float32))[rows],
        xy[np.argmax(r.post, axis=1)][rows],
        r.offset,
        r.p_dwell,
        None if r.track is None else xy[r.track],
        peak_rss_mib(),
    )


_MOTION_CACHE: dict[tuple[object, ...], MotionModel] = {}
_LIK_CACHE: dict[tuple[object, ...], GridLikelihood] = {}


def _motion_key(grid: WalkableGrid, p: MotionParams, min_gap: float) -> tuple[object, ...]:
    return (id(grid), grid.nx, grid.ny, grid.cell_m, p, min_gap)


def _motion(grid: WalkableGrid, p: MotionParams, min_gap: float) -> MotionModel:
    key = _motion_key(grid, p, min_gap)
    mm = _MOTION_CACHE.get(key)
    if mm is None or mm.grid is not grid:
        if len(_MOTION_CACHE) > 4:
            _MOTION_CACHE.clear()
        mm = _MOTION_CACHE[key] = MotionModel(grid, p, min_gap)
    return mm


def _likelihood_models(
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
        if len(_LIK_CACHE) > 8:
            _LIK_CACHE.clear()
        got = _LIK_CACHE[key] = GridLikelihood(model, grid.centers[cells], band, weight)
    return got


def _chunk(
    model: RadioModel, grid: WalkableGrid, o: _Options, band: str, win: Windows
) -> _ChunkResult:
    """Posterior of whole tracks: offsets pooled, likelihood, smoothing, EM, tracks.

    Windows shorter than ``TWO_SCALE_BELOW_MS`` take two passes (see :func:`_two_scale`).
    """
    if o.motion is not None and win.window_ms < TWO_SCALE_BELOW_MS and len(win):
        return _two_scale(model, grid, o, band, win)
    r = _single_scale(model, grid, o, band, win, o.min_gap_s)
    mm = _motion(grid, o.motion, o.min_gap_s) if o.motion is not None else None
    track = (
        viterbi_tracks(mm, r.post, r.lik, r.dev, win.t_ms) if o.tracks and mm is not None else None
    )
    return _ChunkResult(r.post, r.offset, r.p_dwell, track)


@dataclass
class _Pass:
    post: NDArray[np.floating[Any]]
    p_dwell: F | None
    offset: F
    b_mean: F | None
    b_var: F | None
    lik: NDArray[np.float32]
    dev: NDArray[np.int64]


def _two_scale(
    model: RadioModel, grid: WalkableGrid, o: _Options, band: str, win: Windows
) -> _ChunkResult:
    """Short windows (1 s): learn offsets and motion modes on blocks, then smooth finely.

    1. The windows of each device are merged into ``BLOCK_MS`` blocks (frames
       and RSSI sums per node) and run through the whole single-scale
       posterior — offset pooling, smoothing, EM, ``BLOCK_MARGINAL_ROUNDS`` of
       the marginal offset search — at a fraction of the rows and with a cheaper walk
       kernel (fewer eigenmodes matter over 10 s).
    2. The fine pass keeps the offsets and steps at each window where the
       blocks' posterior says the person walks, and at the block where it is
       at least ``DWELL_MERGE_P`` sure they stand (browsing, queueing): the
       dwell mode moves 0.45 m in 10 s at 0.01 m²/s (0.22 m at the busy day's
       fitted 0.0024), less than a cell, so a standing block is one position,
       and with the device's offset known its windows say nothing more split
       than merged.
    Each window gets the posterior of its step.
    """
    dev = _device_labels(win.pid)
    blk_start, blk_of = _blocks(dev, win.t_ms, BLOCK_MS)
    blocks = _merge(win, blk_start, BLOCK_MS)
    # one EM update of the offsets on the blocks is as good as two here (median
    # error and heatmap r on the busy store-day sample), and the fine pass smooths
    # with it, so the blocks are not smoothed again after it
    o1 = dataclasses.replace(
        o,
        offset_iterations=min(o.offset_iterations, 1),
        marginal_rounds=min(o.marginal_rounds, BLOCK_MARGINAL_ROUNDS),
    )
    coarse = _single_scale(
        model, grid, o1, band, blocks, BLOCK_MS / 1000, resmooth_last=False, coarse_m=BLOCK_COARSE_M
    )
    assert coarse.p_dwell is not None
    standing = coarse.p_dwell >= DWELL_MERGE_P
    # steps: a standing block as one step, else its windows one by one
    win_step = ~standing[blk_of]
    step_rows_w = np.flatnonzero(win_step)
    step_rows_b = np.flatnonzero(standing)
    n_w, n_b = len(step_rows_w), len(step_rows_b)
    t = np.r_[win.t_ms[step_rows_w], blocks.t_ms[step_rows_b]]
    d = np.r_[dev[step_rows_w], coarse.dev[step_rows_b]]
    order = np.lexsort((t, d))
    steps = Windows(
        np.r_[win.pid[step_rows_w], blocks.pid[step_rows_b]][order],
        t[order],
        np.r_[win.band[step_rows_w], blocks.band[step_rows_b]][order],
        np.r_[win.rssi[step_rows_w], blocks.rssi[step_rows_b]][order],
        np.r_[win.counts[step_rows_w], blocks.counts[step_rows_b]][order],
        np.r_[win.frames[step_rows_w], blocks.frames[step_rows_b]][order],
        win.window_ms,
    )
    src_block = np.r_[blk_of[step_rows_w], step_rows_b][order]
    # window -> its step
    rank = np.empty(len(order), np.int64)
    rank[order] = np.arange(len(order))
    step_of = np.empty(len(win), np.int64)
    step_of[step_rows_w] = rank[:n_w]
    block_step = np.full(len(blocks), -1, np.int64)
    block_step[step_rows_b] = rank[n_w : n_w + n_b]
    standing_w = ~win_step
    step_of[standing_w] = block_step[blk_of[standing_w]]
    lik_model, _ = _likelihood_models(model, grid, band, o.evidence_weight)
    mm = _motion(grid, o.motion, o.min_gap_s) if o.motion is not None else None
    b_mean = None if coarse.b_mean is None else coarse.b_mean[src_block]
    b_var = None if coarse.b_var is None else coarse.b_var[src_block]
    lik = _likelihoods(lik_model, steps, np.arange(len(steps)), b_mean, b_var)
    sdev = _device_labels(steps.pid)
    post, p_dwell = _smooth(mm, lik, sdev, steps.t_ms)
    track = (
        viterbi_tracks(mm, post, lik, sdev, steps.t_ms)[step_of]
        if o.tracks and mm is not None
        else None
    )
    return _ChunkResult(
        post,
        coarse.offset[blk_of],
        None if p_dwell is None else p_dwell[step_of],
        track,
        step_of,
    )


def motion_log_evidence(
    win: Windows,
    model: RadioModel,
    grid: WalkableGrid,
    candidates: list[MotionParams],
    base: MotionParams | None = None,
) -> F:
    """log p(every track in ``win`` | motion model) for each candidate, up to one constant.

    The tracks (one band) go through the passes :func:`locate` gives them under
    ``base`` — windows shorter than ``TWO_SCALE_BELOW_MS`` merged into
    ``BLOCK_MS`` blocks, offsets pooled, an EM step, the marginal offset search
    — and their likelihoods, at those offsets, through one forward pass per
    candidate (:meth:`MotionModel.log_evidence`: every position and mode
    sequence summed out). For fitting the motion model to a store's own people
    (:func:`heatmap.calibration.calibrate_motion`).
    """
    bands = np.unique(win.band)
    if len(bands) != 1:
        raise ValueError(f"one band at a time, got {list(bands)}")
    band = str(bands[0])
    base = base or MotionParams()
    steps, min_gap, coarse_m, rounds = win, win.window_ms / 1000, COARSE_M, MARGINAL_ROUNDS
    if win.window_ms < TWO_SCALE_BELOW_MS:
        blk_start, _ = _blocks(_device_labels(win.pid), win.t_ms, BLOCK_MS)
        steps = _merge(win, blk_start, BLOCK_MS)
        min_gap, coarse_m, rounds = BLOCK_MS / 1000, BLOCK_COARSE_M, BLOCK_MARGINAL_ROUNDS
    o = _Options(
        evidence_weight=1.0,
        pool_offsets=True,
        offset_iterations=1,
        marginal_rounds=rounds,
        tracks=False,
        motion=base,
        min_gap_s=min_gap,
    )
    r = _single_scale(model, grid, o, band, steps, min_gap, resmooth_last=False, coarse_m=coarse_m)
    lik_model, _ = _likelihood_models(model, grid, band, 1.0)
    lik = _likelihoods(lik_model, steps, np.arange(len(steps)), r.b_mean, r.b_var)
    zero = np.zeros(len(steps))
    return np.array(
        [
            float(MotionModel(grid, p, min_gap).log_evidence(lik, zero, r.dev, steps.t_ms).sum())
            for p in candidates
        ]
    )


def _blocks(
    dev: NDArray[np.int64], t_ms: NDArray[np.int64], block_ms: int
) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """First row of each (device, block) run, and the block of every row."""
    b = t_ms // block_ms
    new = np.r_[True, (dev[1:] != dev[:-1]) | (b[1:] != b[:-1])]
    return np.flatnonzero(new), np.cumsum(new) - 1


def _merge(win: Windows, start: NDArray[np.int64], block_ms: int) -> Windows:
    """One window per block: frames summed per node, RSSI their mean, frames sent summed."""
    # summed as float32: a block holds several windows' frames (no uint8 wrap-around)
    counts = np.add.reduceat(win.counts, start, axis=0, dtype=np.float32)
    sums = np.add.reduceat(
        np.where(win.counts > 0, win.rssi * win.counts.astype(np.float32), 0.0), start, axis=0
    )
    with np.errstate(invalid="ignore", divide="ignore"):
        rssi = np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)
    return Windows(
        win.pid[start],
        win.t_ms[start] // block_ms * block_ms,
        win.band[start],
        rssi,
        counts,
        np.add.reduceat(win.frames, start),
        block_ms,
    )


def _single_scale(
    model: RadioModel,
    grid: WalkableGrid,
    o: _Options,
    band: str,
    win: Windows,
    min_gap_s: float,
    resmooth_last: bool = True,
    coarse_m: float = COARSE_M,
) -> _Pass:
    """Offsets pooled per device, likelihood, smoothing and EM at the windows' own scale.

    ``resmooth_last=False``: the last EM update of the offsets is not followed by
    another likelihood and smoothing pass (the caller smooths again anyway);
    ``post``/``p_dwell`` are then those before that update. ``coarse_m``: the cell
    pitch of the offset evidence's first pass (:data:`COARSE_M`, :data:`BLOCK_COARSE_M`).
    """
    lik_model, lik_coarse = _likelihood_models(model, grid, band, o.evidence_weight, coarse_m)
    mm = _motion(grid, o.motion, min_gap_s) if o.motion is not None else None
    dev = _device_labels(win.pid)
    every = np.arange(len(win))
    b_mean = b_var = None
    offset = np.zeros(len(win))
    if o.pool_offsets:
        # pass 1: each window's evidence about its phone's offset (profile over a
        # coarse set of cells), pooled over the device's windows
        step1 = lik_coarse.chunk_rows()
        ev = np.concatenate(
            [
                lik_coarse.offset_evidence(win.rssi[s], win.counts[s], win.frames[s])
                for s in (every[lo : lo + step1] for lo in range(0, len(win), step1))
            ]
        )
        b_mean, b_var = lik_model.offset_moments(lik_model.device_offsets(ev, dev))
        offset = b_mean.copy()
    # pass 2: likelihood per cell, the offset profiled under the device's prior
    lik = _likelihoods(lik_model, win, every, b_mean, b_var)
    post, p_dwell = _smooth(mm, lik, dev, win.t_ms)
    if o.pool_offsets and o.offset_iterations > 0:
        # EM: the offset again from the smoothed posterior, for tracks long enough
        length = np.bincount(dev)[dev]
        sub = np.flatnonzero(length >= EM_MIN_WINDOWS)
        n_it = o.offset_iterations if len(sub) else 0
        for it in range(n_it):
            assert b_mean is not None and b_var is not None
            step = lik_model.chunk_rows()
            ev = np.concatenate(
                [
                    lik_model.expected_offset_evidence(
                        post[r], win.rssi[r], win.counts[r], win.frames[r]
                    )
                    for r in (sub[lo : lo + step] for lo in range(0, len(sub), step))
                ]
            )
            bm, bv = lik_model.offset_moments(lik_model.device_offsets(ev, dev[sub]))
            b_mean[sub], b_var[sub] = bm, bv
            offset[sub] = bm
            if it == n_it - 1 and mm is not None and o.marginal_rounds:
                bm, bv = marginal_offsets(
                    lik_model, mm, win, sub, dev[sub], b_mean[sub], o.marginal_rounds
                )
                b_mean[sub], b_var[sub] = bm, bv
                offset[sub] = bm
            if it == n_it - 1 and not resmooth_last:
                break
            lik[sub] = _likelihoods(lik_model, win, sub, b_mean[sub], b_var[sub])
            post_s, pdw_s = _smooth(mm, lik[sub], dev[sub], win.t_ms[sub])
            post[sub] = post_s
            if p_dwell is not None and pdw_s is not None:
                p_dwell[sub] = pdw_s
    return _Pass(post, p_dwell, offset, b_mean, b_var, lik, dev)


def marginal_offsets(
    lik_model: GridLikelihood,
    mm: MotionModel,
    win: Windows,
    rows: NDArray[np.int64],
    dev: NDArray[np.int64],
    b0: F,
    rounds: int = MARGINAL_ROUNDS,
    step_db: float = MARGINAL_STEP_DB,
) -> tuple[F, F]:
    """Each device's offset where its marginal likelihood under the motion model peaks.

    ``rows``: the devices' windows in ``win`` (``dev`` labels them, each device
    contiguous and in time order); ``b0``: a starting offset per row (the EM's).
    Each round evaluates log p(track | b) + log prior(b) — every position and
    mode sequence summed out by the forward pass
    (:meth:`~heatmap.spatial.motion.MotionModel.log_evidence`) with the likelihood at the
    fixed offset b — at b − h, b, b + h, and moves b to the parabola's vertex
    (at most h); h halves each round from ``step_db``. The variance is that of
    the last parabola. Returns (mean, variance) per row.

    The EM before it stops short of this maximum: on the 20-node store's cashiers
    (15 min tracks by a wall) its offsets stayed 0.2–0.6 dB high, with the
    phones placed 0.4 m too far out, where the marginal likelihood (oracle radio
    model) peaks within 0.25 dB of the truth for 8 of their 9 pseudonyms and
    0.5 dB for the ninth.
    """
    starts = np.flatnonzero(np.r_[True, dev[1:] != dev[:-1]])
    ends = np.r_[starts[1:], len(dev)]
    run = np.cumsum(np.r_[True, dev[1:] != dev[:-1]]) - 1
    b = b0[starts].astype(float)
    var = np.full(len(b), step_db**2)
    s_b2 = lik_model.model.offset_sigma_db**2
    # devices in groups whose three stacked likelihoods stay within a third of a chunk
    budget = max(_CHUNK_ELEMENTS // (3 * max(lik_model.n_cells, 1)), 1)
    groups = np.split(np.arange(len(starts)), np.flatnonzero(np.diff(ends // budget)) + 1)
    for r in range(rounds):
        h = step_db / 2**r
        ls = np.empty((3, len(starts)))
        for g in groups:
            if not len(g):
                continue
            lo, hi = int(starts[g[0]]), int(ends[g[-1]])
            ls[:, g] = _log_marginal_at(
                lik_model, mm, win, rows[lo:hi], run[lo:hi] - g[0], b[g], (-h, 0.0, h)
            )
        ls -= 0.5 * (b[None, :] + np.array([-h, 0.0, h])[:, None]) ** 2 / s_b2
        lm, l0, lp = ls
        curv = lm - 2 * l0 + lp
        concave = curv < 0
        with np.errstate(divide="ignore", invalid="ignore"):
            # the vertex where the three points bend down; else a step uphill
            move = np.where(concave, 0.5 * (lm - lp) / curv, np.sign(lp - lm))
            var = np.where(concave, -(h * h) / curv, var)
        b = b + np.clip(move, -1.0, 1.0) * h
    return b[run], np.maximum(var[run], 0.05)


def _log_marginal_at(
    lik_model: GridLikelihood,
    mm: MotionModel,
    win: Windows,
    rows: NDArray[np.int64],
    run: NDArray[np.int64],
    b: F,
    deltas: tuple[float, ...],
) -> F:
    """(len(deltas), devices) log p(track | offset b + δ): each device's rows
    ``rows`` (labelled 0.. by ``run``) at every δ, smoothed as one batch in which
    each (δ, device) is a track of its own."""
    n, k = len(rows), len(deltas)
    lik = np.empty((k * n, lik_model.n_cells), np.float32)
    scale = np.empty(k * n)
    step = lik_model.call_rows()
    for lo in range(0, n, step):
        s = rows[lo : lo + step]
        lls = lik_model.at_offsets(
            win.rssi[s], win.counts[s], win.frames[s], b[run[lo : lo + step]], deltas
        )
        for i, ll in enumerate(lls):
            scale[i * n + lo : i * n + lo + len(s)] = _exp_rows(ll)
            lik[i * n + lo : i * n + lo + len(s)] = ll
    n_dev = int(run[-1]) + 1
    label = (np.arange(k)[:, None] * n_dev + run[None, :]).ravel()
    ev = mm.log_evidence(lik, scale, label, np.tile(win.t_ms[rows], k))
    return ev.reshape(k, n_dev)


def _smooth(
    mm: MotionModel | None,
    lik: NDArray[np.float32],
    dev: NDArray[np.int64],
    t_ms: NDArray[np.int64],
) -> tuple[NDArray[np.floating[Any]], F | None]:
    if mm is None:
        return lik / lik.sum(axis=1, keepdims=True, dtype=np.float64), None
    rows, seg, keep = track_segments(dev, SEGMENT_WINDOWS, SEGMENT_OVERLAP)
    if len(rows) == len(dev):  # no track long enough to cut
        return mm.smooth_batch(lik, dev, t_ms)
    post_s, pdw_s = mm.smooth_batch(lik, seg, t_ms[rows], rows=rows)
    # the cores, segment after segment, are every row once and in order
    return post_s[keep], pdw_s[keep]


def track_segments(
    dev: NDArray[np.int64], length: int, overlap: int
) -> tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.bool_]]:
    """Cut long tracks into overlapping segments smoothed side by side.

    Each track (contiguous run of ``dev``) longer than ``length + overlap``
    windows is cut into cores of ``length`` windows, each smoothed with up to
    ``overlap`` windows of context on either side; only the core's posterior is
    kept. Returns the rows (into ``dev``; context rows repeat), a segment label
    per row, and which rows are cores (each original row exactly once).

    Exact forward–backward conditions each window on the whole track; cutting
    drops the evidence more than ``overlap`` windows away, which the random walk
    has long forgotten (in 60 s of walking it spreads over 13 m) — and it lets
    the lockstep smoother step dozens of segments at once where it would step
    one long staff track.
    """
    w = len(dev)
    starts = np.flatnonzero(np.r_[True, dev[1:] != dev[:-1]]) if w else np.zeros(0, np.int64)
    ends = np.r_[starts[1:], w]
    rows: list[NDArray[np.int64]] = []
    labels: list[NDArray[np.int64]] = []
    keep: list[NDArray[np.bool_]] = []
    label = 0
    for s, e in zip(starts.tolist(), ends.tolist(), strict=True):
        if e - s <= length + overlap:
            rows.append(np.arange(s, e))
            keep.append(np.ones(e - s, bool))
            labels.append(np.full(e - s, label))
            label += 1
            continue
        for c in range(s, e, length):
            lo, hi = max(c - overlap, s), min(c + length + overlap, e)
            r = np.arange(lo, hi)
            rows.append(r)
            keep.append((r >= c) & (r < min(c + length, e)))
            labels.append(np.full(hi - lo, label))
            label += 1
    if not rows:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, bool)
    return np.concatenate(rows), np.concatenate(labels), np.concatenate(keep)


def length_chunks(
    pid: NDArray[np.str_], rows: NDArray[np.int64], size: int
) -> list[NDArray[np.int64]]:
    """Split ``rows`` (pid-sorted) into chunks of about ``size`` rows of tracks of like length.

    The smoother steps all tracks of a chunk in lockstep, one matrix product per
    time step over the tracks still running: tracks of like length keep those
    products wide (a chunk of one 900-window staff phone and hundreds of short
    ones would take 900 steps, mostly one row wide). Each track stays whole and
    in time order; the chunks' rows together are ``rows``.
    """
    if not len(rows):
        return []
    p = pid[rows]
    starts = np.flatnonzero(np.r_[True, p[1:] != p[:-1]])
    lengths = np.diff(np.r_[starts, len(rows)])
    order = np.argsort(lengths, kind="stable")
    chunks: list[NDArray[np.int64]] = []
    cur: list[NDArray[np.int64]] = []
    n = 0
    for k in order:
        cur.append(rows[starts[k] : starts[k] + lengths[k]])
        n += int(lengths[k])
        if n >= size:
            chunks.append(np.concatenate(cur))
            cur, n = [], 0
    if cur:
        chunks.append(np.concatenate(cur))
    return chunks


def _likelihoods(
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
        _exp_rows(ll)
        lik[lo : lo + step] = ll
    return lik


def _exp_rows(ll: NDArray[np.float32]) -> NDArray[np.float32]:
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


def _device_labels(pid: NDArray[np.str_]) -> NDArray[np.int64]:
    new = np.r_[True, pid[1:] != pid[:-1]]
    return np.cumsum(new) - 1
