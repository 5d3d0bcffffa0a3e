"""Walking-speed motion model: forward–backward smoothing of a device's
per-window likelihoods on the walkable grid.

Between two windows ``gap`` seconds apart a person moves at most a few metres;
the transition is a Gaussian diffusion of σ = ``speed_m_s`` · gap (floored at
one cell) restricted to walkable cells, so shelves take no mass. (Walls are not
yet a barrier to the diffusion: a known simplification, see issue 8.) Gaps
longer than ``reset_s`` forget the past.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray
from scipy.ndimage import gaussian_filter

from heatmap.walkable_grid import WalkableGrid


class MotionModel:
    def __init__(self, grid: WalkableGrid, speed_m_s: float = 0.5, reset_s: float = 120.0) -> None:
        self.grid = grid
        self.cells = np.flatnonzero(grid.walkable)
        self.speed = speed_m_s
        self.reset_s = reset_s
        self._buf = np.zeros(grid.ny * grid.nx)

    def diffuse(self, p: NDArray[np.float64], gap_s: float) -> NDArray[np.float64]:
        """Spread a distribution over walkable cells by ``gap_s`` seconds of walking."""
        if gap_s >= self.reset_s:
            return np.full_like(p, 1.0 / len(p))
        sigma = max(self.speed * gap_s, 0.5 * self.grid.cell_m) / self.grid.cell_m
        buf = self._buf
        buf[:] = 0.0
        buf[self.cells] = p
        out = gaussian_filter(
            buf.reshape(self.grid.ny, self.grid.nx), sigma, mode="constant", truncate=3.0
        ).ravel()[self.cells]
        s = out.sum()
        return out / s if s > 0 else np.full_like(p, 1.0 / len(p))

    def smooth(self, lik: NDArray[np.float64], t_ms: NDArray[np.int64]) -> NDArray[np.float64]:
        """Posterior (T, C) of one device from its likelihoods (T, C) at times ``t_ms``.

        ``lik`` rows need not be normalised (they are scaled per row).
        """
        T = len(lik)
        alpha = np.empty_like(lik)
        a = lik[0] / lik[0].sum()
        alpha[0] = a
        for i in range(1, T):
            a = self.diffuse(a, (t_ms[i] - t_ms[i - 1]) / 1000) * lik[i]
            s = a.sum()
            a = a / s if s > 0 else lik[i] / lik[i].sum()
            alpha[i] = a
        post = alpha.copy()
        beta = np.full(lik.shape[1], 1.0 / lik.shape[1])
        for i in range(T - 2, -1, -1):
            beta = self.diffuse(beta * lik[i + 1], (t_ms[i + 1] - t_ms[i]) / 1000)
            beta /= beta.sum()
            p = alpha[i] * beta
            s = p.sum()
            post[i] = p / s if s > 0 else alpha[i]
        return post
