"""Forward–backward over the motion model, batched over devices (Rabiner 1989).

The hidden Markov model on (cell, mode) of :mod:`heatmap.spatial.motion`, smoothed
exactly on the grid: :func:`smooth_batch` gives every window's posterior over the
cells and its probability of dwelling, :func:`log_evidence` each device's
marginal likelihood (the forward pass alone). Many devices step in lockstep
(:func:`lockstep`), so each time step is a matrix product over the devices
still running.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from heatmap.spatial.motion import FA, TINY, F, MotionModel


def smooth(mm: MotionModel, lik: FA, t_ms: NDArray[np.int64]) -> FA:
    """Posterior (T, C) of one device from its likelihoods (T, C) at times ``t_ms``
    (under the motion model ``mm``)."""
    post, _ = smooth_batch(mm, lik, np.zeros(len(lik), np.int64), t_ms)
    return post


def _predict_update(mm: MotionModel, ad: FA, aw: FA, lk: FA, gap: F) -> tuple[FA, FA]:
    """One forward step: the dwell- and walk-mode messages (B, C) moved by ``gap``
    (B,) seconds, switched between the modes, and weighed by the likelihoods ``lk``."""
    kd = mm.dwell(ad, gap)
    kw = mm.walk(aw, gap)
    sd, sw = (v.astype(np.float32)[:, None] for v in mm.stay(gap))
    nd = sd * kd
    nd += (1 - sw) * kw
    nd *= lk
    kw *= sw
    kw += (1 - sd) * kd
    kw *= lk
    return nd, kw


def log_evidence(
    mm: MotionModel,
    lik: FA,
    log_scale: F,
    device: NDArray[np.int64],
    t_ms: NDArray[np.int64],
) -> F:
    """log p(all windows of each device) under the motion model ``mm``: the forward pass.

    ``lik``: (W, C) likelihoods each scaled by exp(-``log_scale``) (W,) (rows
    as :func:`smooth_batch` takes them, with the scale given back); returns
    one log-likelihood per device (labels 0, 1, 2 …, windows contiguous and in
    time order). Only the current step's messages are kept: memory is two
    (devices, C) arrays besides ``lik``. This is the marginal likelihood of a
    hypothesis that changes the likelihoods (a phone's transmit offset), with
    every position and mode sequence summed out.
    """
    w = len(device)
    if w == 0:
        return np.zeros(0)
    starts, order, s_sorted, _, n_active = lockstep(device)
    pd0 = np.float32(mm.prior_dwell)
    total = np.zeros(len(starts))
    ad = aw = np.zeros((0, lik.shape[1]), np.float32)
    for t in range(len(n_active) - 1):
        na = int(n_active[t])
        rows = s_sorted[:na] + t
        lk = lik[rows].astype(np.float32, copy=False)
        if t == 0:
            ad, aw = pd0 * lk, (1 - pd0) * lk
        else:
            gap = (t_ms[rows] - t_ms[rows - 1]) / 1000.0
            ad, aw = _predict_update(mm, ad[:na], aw[:na], lk, gap)
        z = ad.sum(axis=1, dtype=np.float64) + aw.sum(axis=1, dtype=np.float64)
        z = np.maximum(z, 1e-300)  # nothing in reach: the window costs its worst
        total[:na] += np.log(z) + log_scale[rows]
        zi = (1.0 / z)[:, None].astype(np.float32)
        ad *= zi
        aw *= zi
        np.maximum(ad, TINY, out=ad)
        np.maximum(aw, TINY, out=aw)
    out = np.empty(len(starts))
    out[order] = total
    return out


def smooth_batch(
    mm: MotionModel,
    lik: FA,
    device: NDArray[np.int64],
    t_ms: NDArray[np.int64],
    rows: NDArray[np.int64] | None = None,
) -> tuple[FA, F]:
    """Forward–backward for many devices at once, under the motion model ``mm``.

    ``lik``: (W, C) likelihoods (any positive scale per row); ``device``: (W,)
    labels, each device's windows contiguous and in time order; ``t_ms``: (W,)
    window times. Returns the posterior over cells (W, C) and the probability
    of the dwell mode (W,). ``rows``: smooth these rows of ``lik`` instead
    (``device`` and ``t_ms`` then hold one entry per row listed, and so do the
    results; a row may be listed more than once): they are gathered straight
    into the smoother's own layout, not copied out first.

    All devices step in lockstep, longest first, so the devices still running
    at step t are a prefix of that order; the rows are laid out time-major
    (step 0 of every device, then step 1 …) so that each step reads and
    writes contiguous slices rather than gathering rows. Memory: the
    time-major likelihoods and the two modes' forward messages, 3 (W, C)
    float32 arrays; the posterior is written over the dwell mode's messages.
    """
    w = len(device)
    if w == 0:
        return np.zeros((0, lik.shape[1]), lik.dtype), np.zeros(0)
    starts, _, s_sorted, _, n_active = lockstep(device)
    t_max = len(n_active) - 1
    offs = np.r_[0, np.cumsum(n_active[:t_max])]
    perm = np.concatenate([s_sorted[: n_active[t]] + t for t in range(t_max)])
    lk_all = lik[perm if rows is None else rows[perm]].astype(np.float32, copy=False)
    tm = t_ms[perm]
    pd0 = np.float32(mm.prior_dwell)
    alpha_d = np.empty_like(lk_all)
    alpha_w = np.empty_like(lk_all)
    for t in range(t_max):
        cur = slice(offs[t], offs[t + 1])
        lk = lk_all[cur]
        if t == 0:
            ad, aw = pd0 * lk, (1 - pd0) * lk
        else:
            na = int(n_active[t])
            prev = slice(offs[t - 1], offs[t - 1] + na)
            gap = (tm[cur] - tm[prev]) / 1000.0
            ad, aw = _predict_update(mm, alpha_d[prev], alpha_w[prev], lk, gap)
        z = ad.sum(axis=1) + aw.sum(axis=1)
        bad = ~(z > 0)
        if bad.any():  # nothing in reach explains this window: restart the track
            ad[bad], aw[bad] = pd0 * lk[bad], (1 - pd0) * lk[bad]
            z[bad] = lk[bad].sum(axis=1)
        zi = (1.0 / z)[:, None].astype(np.float32)
        np.maximum(ad * zi, TINY, out=alpha_d[cur])
        np.maximum(aw * zi, TINY, out=alpha_w[cur])
    # step t's forward messages are read for the last time at step t of the
    # backward pass: its posterior goes in their place (alpha_d becomes post)
    post = alpha_d
    p_dwell = np.empty(w)
    n_dev = len(starts)
    c = lik.shape[1]
    beta_d = np.ones((n_dev, c), np.float32)
    beta_w = np.ones((n_dev, c), np.float32)
    for t in range(t_max - 1, -1, -1):
        na = int(n_active[t])
        na1 = int(n_active[t + 1]) if t + 1 < t_max else 0
        cur = slice(offs[t], offs[t + 1])
        beta_d[na1:na] = 1.0
        beta_w[na1:na] = 1.0
        if na1:
            nxt = slice(offs[t + 1], offs[t + 1] + na1)
            gap = (tm[nxt] - tm[offs[t] : offs[t] + na1]) / 1000.0
            yd = lk_all[nxt] * beta_d[:na1]
            yw = lk_all[nxt] * beta_w[:na1]
            sd, sw = (v.astype(np.float32)[:, None] for v in mm.stay(gap))
            mix_d = sd * yd
            mix_d += (1 - sd) * yw
            yw *= sw
            yw += (1 - sw) * yd
            bd = mm.dwell(mix_d, gap)
            bw = mm.walk(yw, gap)
            z = np.maximum(bd.max(axis=1), bw.max(axis=1))
            z[~(z > 0)] = 1.0
            zi = (1.0 / z)[:, None].astype(np.float32)
            np.maximum(bd * zi, TINY, out=beta_d[:na1])
            np.maximum(bw * zi, TINY, out=beta_w[:na1])
        gd = alpha_d[cur] * beta_d[:na]
        gw = alpha_w[cur] * beta_w[:na]
        sd_ = gd.sum(axis=1)
        z = sd_ + gw.sum(axis=1)
        bad = ~(z > 0)
        if bad.any():  # numerically empty: fall back on the forward filter
            gd[bad], gw[bad] = alpha_d[cur][bad], alpha_w[cur][bad]
            sd_[bad] = gd[bad].sum(axis=1)
            z[bad] = sd_[bad] + gw[bad].sum(axis=1)
        gd += gw
        gd *= (1.0 / z)[:, None].astype(np.float32)
        post[cur] = gd
        p_dwell[offs[t] : offs[t + 1]] = sd_ / z
    del lk_all, alpha_w, gd, gw  # before the un-permuted copy is made
    out = np.empty_like(post)
    out[perm] = post
    pdw = np.empty(w)
    pdw[perm] = p_dwell
    return out.astype(lik.dtype, copy=False), pdw


def lockstep(
    device: NDArray[np.int64],
) -> tuple[
    NDArray[np.int64], NDArray[np.int64], NDArray[np.int64], NDArray[np.int64], NDArray[np.int64]
]:
    """How the batched passes step many devices at once, longest first.

    ``device``: labels, each device's windows contiguous (not empty). Returns the
    first row of each device, the order of the devices by decreasing length, their
    first rows and lengths in that order, and n_active (t_max + 1,): the devices
    with more than t windows at step t — a prefix of that order.
    """
    starts = np.flatnonzero(np.r_[True, device[1:] != device[:-1]])
    lengths = np.diff(np.r_[starts, len(device)])
    order = np.argsort(-lengths, kind="stable")
    s_sorted, l_sorted = starts[order], lengths[order]
    n_active = np.searchsorted(-l_sorted, -np.arange(int(l_sorted[0]) + 1), side="left")
    return starts, order, s_sorted, l_sorted, n_active
