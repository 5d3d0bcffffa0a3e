"""The single-scale pass: a chunk's posterior at its windows' own scale.

Each phone's offset pooled over its device's windows (a first pass of evidence
on a coarse set of cells), the likelihood per cell under that offset,
forward–backward smoothing with the motion model, then EM refinement of the
offsets from the smoothed posterior for tracks of at least
:data:`EM_MIN_WINDOWS` windows and the marginal offset search
(:func:`~heatmap.localizers.phone_offsets.marginal_offsets`). Windows of 5 s and
more go through it once; shorter ones through the two-scale pass
(:mod:`heatmap.localizers.two_scale`), which runs it on blocks.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from heatmap.localizers.base import Windows
from heatmap.localizers.chunk_models import (
    COARSE_M,
    ChunkOptions,
    likelihood_models,
    likelihood_rows,
    motion_model,
)
from heatmap.localizers.phone_offsets import marginal_offsets
from heatmap.localizers.track_segments import device_labels, smooth_tracks
from heatmap.spatial.radio_model import RadioModel
from heatmap.spatial.walkable_grid import WalkableGrid

F = NDArray[np.float64]

EM_MIN_WINDOWS = 12
"""EM refinement of the offset only for tracks at least this long (shorter ones move little)"""


@dataclass
class ScalePass:
    """What a pass leaves: posterior and dwell probability per window, offsets
    (estimate, prior mean and variance), the likelihood rows and device labels."""

    post: NDArray[np.floating[Any]]
    p_dwell: F | None
    offset: F
    b_mean: F | None
    b_var: F | None
    lik: NDArray[np.float32]
    dev: NDArray[np.int64]


def single_scale(
    model: RadioModel,
    grid: WalkableGrid,
    o: ChunkOptions,
    band: str,
    win: Windows,
    min_gap_s: float,
    resmooth_last: bool = True,
    coarse_m: float = COARSE_M,
) -> ScalePass:
    """Offsets pooled per device, likelihood, smoothing and EM at the windows' own scale.

    ``resmooth_last=False``: the last EM update of the offsets is not followed by
    another likelihood and smoothing pass (the caller smooths again anyway);
    ``post``/``p_dwell`` are then those before that update. ``coarse_m``: the cell
    pitch of the offset evidence's first pass
    (:data:`~heatmap.localizers.chunk_models.COARSE_M`,
    :data:`~heatmap.localizers.two_scale.BLOCK_COARSE_M`).
    """
    lik_model, lik_coarse = likelihood_models(model, grid, band, o.evidence_weight, coarse_m)
    mm = motion_model(grid, o.motion, min_gap_s) if o.motion is not None else None
    dev = device_labels(win.pid)
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
    lik = likelihood_rows(lik_model, win, every, b_mean, b_var)
    post, p_dwell = smooth_tracks(mm, lik, dev, win.t_ms)
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
            lik[sub] = likelihood_rows(lik_model, win, sub, b_mean[sub], b_var[sub])
            post_s, pdw_s = smooth_tracks(mm, lik[sub], dev[sub], win.t_ms[sub])
            post[sub] = post_s
            if p_dwell is not None and pdw_s is not None:
                p_dwell[sub] = pdw_s
    return ScalePass(post, p_dwell, offset, b_mean, b_var, lik, dev)
