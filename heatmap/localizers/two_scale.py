"""The two-scale pass for short windows: blocks of 10 s first, then the windows.

Windows shorter than :data:`TWO_SCALE_BELOW_MS` carry too little each to learn a
phone's offset and its motion mode from: they are merged per device into
:data:`BLOCK_MS` blocks (:func:`device_blocks`, :func:`merge_blocks`), the blocks
go through the single-scale pass, and the windows are then smoothed finely with
the blocks' offsets, a standing block as one step (:func:`two_scale`).
"""

from __future__ import annotations

import dataclasses

import numpy as np
from numpy.typing import NDArray

from heatmap.localizers.base import Windows
from heatmap.localizers.chunk_models import (
    ChunkOptions,
    ChunkResult,
    likelihood_models,
    likelihood_rows,
    motion_model,
)
from heatmap.localizers.single_scale import single_scale
from heatmap.localizers.track_segments import device_labels, smooth_tracks
from heatmap.spatial.radio_model import RadioModel
from heatmap.spatial.viterbi import viterbi_tracks
from heatmap.spatial.walkable_grid import WalkableGrid

BLOCK_COARSE_M = 2.0
"""the same as :data:`~heatmap.localizers.chunk_models.COARSE_M` for the blocks of
short windows (:func:`two_scale`): when they were
5 s, every cell cost 30 % more CPU on the busy store-day's peak hour for heatmap
r 0.816 -> 0.829 on its day, more than its 60 s budget allows"""
TWO_SCALE_BELOW_MS = 5000
"""windows shorter than this are first localized in blocks (see :func:`two_scale`)"""
BLOCK_MS = 10000
"""length of those blocks (see :data:`BLOCK_MARGINAL_ROUNDS`)"""
DWELL_MERGE_P = 0.6
"""a block the coarse pass finds standing with at least this probability is one fine step

(once a known offset makes a block's likelihood its windows' together, merging
costs little: busy store-day, heatmap r 0.9293 at 0.6, 0.9298 at 0.8 for 10 %
more CPU; 0.9292 at 0.5. Before that fix 0.8 gave 0.899 and no merging 0.928)"""
BLOCK_MARGINAL_ROUNDS = 0
"""rounds of the marginal offset search (:func:`~heatmap.localizers.phone_offsets.marginal_offsets`)
on the blocks.

Busy store-day, localization in the two workers (CPU s / heatmap r), measured side
by side: with the cells walkable in any part (:func:`~heatmap.spatial.walkable_grid.samples_for`)
no round 100.0 / 0.929, one round 115.0 / 0.956 — more than the day's 60 s allow on
this machine (median 63.7 s); with the centre rule one round 104.6 / 0.930. (Last
session, before the known offset and the fitted dwelling diffusion: none 79.2 /
0.774, one 103.9 / 0.849 CPU s in one process.)"""


def two_scale(
    model: RadioModel, grid: WalkableGrid, o: ChunkOptions, band: str, win: Windows
) -> ChunkResult:
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
    dev = device_labels(win.pid)
    blk_start, blk_of = device_blocks(dev, win.t_ms, BLOCK_MS)
    blocks = merge_blocks(win, blk_start, BLOCK_MS)
    # one EM update of the offsets on the blocks is as good as two here (median
    # error and heatmap r on the busy store-day sample), and the fine pass smooths
    # with it, so the blocks are not smoothed again after it
    o1 = dataclasses.replace(
        o,
        offset_iterations=min(o.offset_iterations, 1),
        marginal_rounds=min(o.marginal_rounds, BLOCK_MARGINAL_ROUNDS),
    )
    coarse = single_scale(
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
    lik_model, _ = likelihood_models(model, grid, band, o.evidence_weight)
    mm = motion_model(grid, o.motion, o.min_gap_s) if o.motion is not None else None
    b_mean = None if coarse.b_mean is None else coarse.b_mean[src_block]
    b_var = None if coarse.b_var is None else coarse.b_var[src_block]
    lik = likelihood_rows(lik_model, steps, np.arange(len(steps)), b_mean, b_var)
    sdev = device_labels(steps.pid)
    post, p_dwell = smooth_tracks(mm, lik, sdev, steps.t_ms)
    track = (
        viterbi_tracks(mm, post, lik, sdev, steps.t_ms)[step_of]
        if o.tracks and mm is not None
        else None
    )
    return ChunkResult(
        post,
        coarse.offset[blk_of],
        None if p_dwell is None else p_dwell[step_of],
        track,
        step_of,
    )


def device_blocks(
    dev: NDArray[np.int64], t_ms: NDArray[np.int64], block_ms: int
) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """First row of each (device, block) run, and the block of every row."""
    b = t_ms // block_ms
    new = np.r_[True, (dev[1:] != dev[:-1]) | (b[1:] != b[:-1])]
    return np.flatnonzero(new), np.cumsum(new) - 1


def merge_blocks(win: Windows, start: NDArray[np.int64], block_ms: int) -> Windows:
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
