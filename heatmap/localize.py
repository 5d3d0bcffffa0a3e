"""Localization, first method: grid likelihood per time window.

For each (pseudonym, window) the RSSI vector across nodes is compared with the
radio model at every walkable cell. The phone's unknown transmit offset is
profiled out per cell (MAP under a Gaussian prior), and a node that did not hear
the phone in the window is evidence too: the probability that all the frames
sent in the window fell below its sensitivity. The posterior over cells is
summed into person-seconds. A device's windows are smoothed in time with a
walking-speed motion model (:mod:`heatmap.motion`, forward–backward).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from scipy.special import log_ndtr

from heatmap.motion import MotionModel
from heatmap.radio_model import RadioModel
from heatmap.walkable_grid import WalkableGrid

CHUNK = 192


@dataclass(frozen=True)
class Windows:
    """Observations grouped per (pid, window)."""

    pid: NDArray[np.str_]
    t_ms: NDArray[np.int64]
    """window start, Unix epoch ms"""
    band: NDArray[np.str_]
    rssi: NDArray[np.float64]
    """(W, N) mean RSSI per node in the window, NaN where not heard"""
    counts: NDArray[np.float64]
    """(W, N) frames each node heard in the window"""
    frames: NDArray[np.int64]
    """(W,) most frames any node heard in the window (≈ frames sent)"""
    window_ms: int

    def __len__(self) -> int:
        return len(self.pid)


def make_windows(
    t_ms: NDArray[np.int64],
    node_idx: NDArray[np.int64],
    pid: NDArray[np.str_],
    rssi: NDArray[np.float64],
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
    w = t_ms // window_ms
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
class Located:
    person_seconds: NDArray[np.float64]
    """(cells,) summed posterior × window duration, over all windows"""
    by_group: NDArray[np.float64]
    """(groups, cells) person-seconds per group of windows (e.g. per hour)"""
    p_inside: NDArray[np.float64]
    """(W,) posterior probability the device is inside the store outline"""
    mean_xy: NDArray[np.float64]
    """(W, 2) posterior mean position, m"""


def log_likelihood(
    rssi: NDArray[np.float64],
    counts: NDArray[np.float64],
    frames: NDArray[np.int64],
    mu: NDArray[np.float64],
    model: RadioModel,
) -> NDArray[np.float64]:
    """(B, C) log-likelihood of B windows at C cells of mean ``mu`` (C, N).

    A node's mean of k frames counts as k independent frames (shadowing drawn per
    frame); the phone offset b is the MAP estimate per cell under N(0, σ_b²).
    """
    s2 = model.sigma_db**2
    det = ~np.isnan(rssi)  # (B, N)
    r = np.where(det, rssi, 0.0)
    k = counts[:, None, :]  # (B, 1, N): 0 where not heard
    resid = r[:, None, :] - mu[None, :, :]  # (B, C, N)
    resid *= det[:, None, :]
    b = (k * resid).sum(axis=2) / (counts.sum(axis=1)[:, None] + s2 / model.offset_sigma_db**2)
    e = resid - b[:, :, None]
    ll = -0.5 * (k * e * e).sum(axis=2) / s2 - 0.5 * b * b / model.offset_sigma_db**2
    z = (model.sensitivity_dbm - mu[None, :, :] - b[:, :, None]) / model.sigma_db
    miss = np.logaddexp(np.log(model.frame_loss), np.log1p(-model.frame_loss) + log_ndtr(z))
    sent = np.maximum(frames, 1)[:, None, None]
    ll += (sent * miss * ~det[:, None, :]).sum(axis=2)
    return ll


def locate(
    win: Windows,
    model: RadioModel,
    grid: WalkableGrid,
    duration_s: NDArray[np.float64] | None = None,
    group: NDArray[np.int64] | None = None,
    n_groups: int = 1,
    progress: Callable[[float], None] | None = None,
    motion: MotionModel | None = None,
) -> Located:
    """Posterior per window over the walkable cells, summed into person-seconds.

    ``duration_s``: seconds each window stands for (default: the window length;
    0 leaves a window out of the person-seconds). ``group``: label 0..n_groups-1
    per window, to get person-seconds per group (e.g. per hour) in one pass.
    ``motion``: smooth each pseudonym's windows in time (windows must be sorted by
    pid then time, as :func:`make_windows` returns them); None = independent windows.
    """
    cells = np.flatnonzero(grid.walkable)
    xy = grid.centers[cells]
    inside = grid.inside[cells].astype(float)
    dur = duration_s if duration_s is not None else np.full(len(win), win.window_ms / 1000)
    grp = group if group is not None else np.zeros(len(win), np.int64)
    ps = np.zeros((n_groups, len(cells)))
    p_in = np.zeros(len(win))
    mean_xy = np.zeros((len(win), 2))
    for band in np.unique(win.band):
        mu = model.mean_rssi(xy, str(band))
        rows = np.flatnonzero(win.band == band)
        for idx in _pid_chunks(win.pid, rows):
            ll = log_likelihood(win.rssi[idx], win.counts[idx], win.frames[idx], mu, model)
            ll -= ll.max(axis=1, keepdims=True)
            post = np.exp(ll)
            post /= post.sum(axis=1, keepdims=True)
            if motion is not None:
                post = _smooth_chunk(post, win.pid[idx], win.t_ms[idx], motion)
            for g in np.unique(grp[idx]):
                m = grp[idx] == g
                ps[g] += dur[idx][m] @ post[m]
            p_in[idx] = post @ inside
            mean_xy[idx] = post @ xy
            if progress is not None:
                progress(len(idx))
    full = np.zeros((n_groups, grid.nx * grid.ny))
    full[:, cells] = ps
    return Located(full.sum(axis=0), full, p_in, mean_xy)


def _pid_chunks(pid: NDArray[np.str_], rows: NDArray[np.int64]) -> list[NDArray[np.int64]]:
    """Split ``rows`` into chunks of about CHUNK rows that never split a pid."""
    if not len(rows):
        return []
    p = pid[rows]
    starts = np.flatnonzero(np.r_[True, p[1:] != p[:-1]])
    chunks, lo = [], 0
    for s in starts[1:]:
        if s - lo >= CHUNK:
            chunks.append(rows[lo:s])
            lo = s
    chunks.append(rows[lo:])
    return chunks


def _smooth_chunk(
    post: NDArray[np.float64], pid: NDArray[np.str_], t_ms: NDArray[np.int64], motion: MotionModel
) -> NDArray[np.float64]:
    starts = np.flatnonzero(np.r_[True, pid[1:] != pid[:-1]])
    ends = np.r_[starts[1:], len(pid)]
    out = post.copy()
    for s, e in zip(starts, ends, strict=True):
        if e - s > 1:
            out[s:e] = motion.smooth(post[s:e], t_ms[s:e])
    return out
