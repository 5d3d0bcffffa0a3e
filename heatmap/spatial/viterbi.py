"""Most likely track of each device on the grid (Viterbi 1967), for flows.

A beam search over each window's most probable cells under the motion model of
:mod:`heatmap.spatial.motion`, batched over devices as the smoother is.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from heatmap.spatial.motion import FA, MotionModel
from heatmap.spatial.motion_smoothing import lockstep


def viterbi_tracks(
    mm: MotionModel,
    post: FA,
    lik: FA,
    device: NDArray[np.int64],
    t_ms: NDArray[np.int64],
    beam: int = 16,
) -> NDArray[np.int64]:
    """Most likely cell per window of each device's track (Viterbi, Viterbi 1967).

    Max-product over the ``beam`` most probable cells of each window's smoothed
    posterior ``post`` (W, C), with the emissions ``lik`` (W, C) and the two
    motion modes mixed at their stationary shares: walking by the heat kernel
    (exact on the grid, walls included), dwelling by a Gaussian of the dwell
    diffusion (it moves less than a cell in a window). Returns indices into the
    model's cells; batched over devices like
    :func:`~heatmap.spatial.motion_smoothing.smooth_batch`.
    """
    w = len(post)
    if w == 0:
        return np.zeros(0, np.int64)
    k = min(beam, post.shape[1])
    cand = np.argpartition(-post, k - 1, axis=1)[:, :k]  # (W, K)
    log_e = np.log(np.maximum(np.take_along_axis(lik, cand, axis=1), 1e-300))
    starts, _, s_sorted, l_sorted, n_active = lockstep(device)
    t_max = len(n_active) - 1
    xy = mm.grid.centers[mm.cells]
    p = mm.params
    pd0 = mm.prior_dwell
    back = np.zeros((w, k), np.int64)
    score = np.zeros((len(starts), k))
    score[:] = log_e[s_sorted]
    vec = mm.vec.astype(np.float64)
    for t in range(1, t_max):
        na = int(n_active[t])
        rows = s_sorted[:na] + t
        prev = rows - 1
        gap = (t_ms[rows] - t_ms[prev]) / 1000.0
        cp, cn = cand[prev], cand[rows]  # (B, K)
        decay = np.exp(-p.walk_diffusion_m2_s * gap[:, None] * mm.lam[None, :])
        kw = np.einsum("bim,bm,bjm->bij", vec[cp], decay, vec[cn], optimize=True)
        d2 = ((xy[cp][:, :, None, :] - xy[cn][:, None, :, :]) ** 2).sum(axis=-1)
        var = 2 * max(p.dwell_diffusion_m2_s, 1e-6) * gap[:, None, None]
        h2 = mm.grid.cell_m**2
        kd = np.exp(-d2 / (2 * var)) * h2 / (2 * np.pi * var)
        trans = np.log(np.maximum(pd0 * np.minimum(kd, 1.0) + (1 - pd0) * kw, 1e-300))
        tot = score[:na, :, None] + trans  # (B, K_prev, K_now)
        best = np.argmax(tot, axis=1)
        back[rows] = best
        score[:na] = np.take_along_axis(tot, best[:, None, :], axis=1)[:, 0] + log_e[rows]
    out = np.zeros(w, np.int64)
    for i, (s, n) in enumerate(zip(s_sorted, l_sorted, strict=True)):
        j = int(np.argmax(score[i]))
        for t in range(int(n) - 1, -1, -1):
            out[s + t] = cand[s + t, j]
            j = int(back[s + t, j])
    return out
