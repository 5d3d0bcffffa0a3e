"""How well each candidate motion model explains a store's tracks (for fitting it).

:func:`motion_log_evidence` runs the tracks through the passes
:func:`heatmap.localizers.grid_posterior.locate` gives them, then their
likelihoods through one forward pass per candidate; the calibration
(:func:`heatmap.calibration.calibrate_motion`) picks the best.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from heatmap.localizers.base import Windows
from heatmap.localizers.chunk_models import (
    COARSE_M,
    ChunkOptions,
    likelihood_models,
    likelihood_rows,
)
from heatmap.localizers.phone_offsets import MARGINAL_ROUNDS
from heatmap.localizers.single_scale import single_scale
from heatmap.localizers.track_segments import device_labels
from heatmap.localizers.two_scale import (
    BLOCK_COARSE_M,
    BLOCK_MARGINAL_ROUNDS,
    BLOCK_MS,
    TWO_SCALE_BELOW_MS,
    device_blocks,
    merge_blocks,
)
from heatmap.spatial.motion import MotionModel, MotionParams
from heatmap.spatial.motion_smoothing import log_evidence
from heatmap.spatial.radio_model import RadioModel
from heatmap.spatial.walkable_grid import WalkableGrid

F = NDArray[np.float64]


def motion_log_evidence(
    win: Windows,
    model: RadioModel,
    grid: WalkableGrid,
    candidates: list[MotionParams],
    base: MotionParams | None = None,
) -> F:
    """log p(every track in ``win`` | motion model) for each candidate, up to one constant.

    The tracks (one band) go through the passes
    :func:`~heatmap.localizers.grid_posterior.locate` gives them under
    ``base`` — windows shorter than ``TWO_SCALE_BELOW_MS`` merged into
    ``BLOCK_MS`` blocks, offsets pooled, an EM step, the marginal offset search
    — and their likelihoods, at those offsets, through one forward pass per
    candidate (:func:`~heatmap.spatial.motion_smoothing.log_evidence`: every position and mode
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
        blk_start, _ = device_blocks(device_labels(win.pid), win.t_ms, BLOCK_MS)
        steps = merge_blocks(win, blk_start, BLOCK_MS)
        min_gap, coarse_m, rounds = BLOCK_MS / 1000, BLOCK_COARSE_M, BLOCK_MARGINAL_ROUNDS
    o = ChunkOptions(
        evidence_weight=1.0,
        pool_offsets=True,
        offset_iterations=1,
        marginal_rounds=rounds,
        tracks=False,
        motion=base,
        min_gap_s=min_gap,
    )
    r = single_scale(model, grid, o, band, steps, min_gap, resmooth_last=False, coarse_m=coarse_m)
    lik_model, _ = likelihood_models(model, grid, band, 1.0)
    lik = likelihood_rows(lik_model, steps, np.arange(len(steps)), r.b_mean, r.b_var)
    zero = np.zeros(len(steps))
    return np.array(
        [
            float(log_evidence(MotionModel(grid, p, min_gap), lik, zero, r.dev, steps.t_ms).sum())
            for p in candidates
        ]
    )
