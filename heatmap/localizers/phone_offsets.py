"""Each phone's transmit offset where its track's marginal likelihood peaks.

The search that follows the EM of the single-scale pass
(:func:`~heatmap.localizers.single_scale.single_scale`): for every device, the
likelihood of its whole track under the motion model (every position and mode
sequence summed out by the forward pass) at three offsets, and a step to the
parabola's vertex, :data:`MARGINAL_ROUNDS` times (:func:`marginal_offsets`).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from heatmap.localizers.base import Windows
from heatmap.localizers.chunk_models import exp_rows
from heatmap.localizers.likelihood import GridLikelihood
from heatmap.localizers.track_segments import CHUNK_ELEMENTS
from heatmap.spatial.motion import MotionModel
from heatmap.spatial.motion_smoothing import log_evidence

F = NDArray[np.float64]

MARGINAL_ROUNDS = 2
"""rounds of the marginal offset search on windows of 5 s and more (see
:func:`~heatmap.localizers.grid_posterior.locate`)"""
MARGINAL_STEP_DB = 0.5
"""first step of the offset's marginal-likelihood search (:func:`marginal_offsets`)"""


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
    (:func:`~heatmap.spatial.motion_smoothing.log_evidence`) with the likelihood at the
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
    budget = max(CHUNK_ELEMENTS // (3 * max(lik_model.n_cells, 1)), 1)
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
            scale[i * n + lo : i * n + lo + len(s)] = exp_rows(ll)
            lik[i * n + lo : i * n + lo + len(s)] = ll
    n_dev = int(run[-1]) + 1
    label = (np.arange(k)[:, None] * n_dev + run[None, :]).ravel()
    ev = log_evidence(mm, lik, scale, label, np.tile(win.t_ms[rows], k))
    return ev.reshape(k, n_dev)
