"""Walking-speed motion model on the walkable grid, which walls and shelves block.

A person is, at each window, in one cell of the walkable grid and in one of two
modes: *dwelling* (browsing a shelf, queueing, at a till) or *walking*. Between
two windows ``gap`` seconds apart, the person moves by a continuous-time random
walk on the grid's move graph — the graph that has no edge through a wall, a
shelf or the store front except at the doors — with a diffusion coefficient of
the current mode, then may switch mode (exponential mode durations). The hidden
Markov model on (cell, mode) is smoothed exactly on the grid by forward–backward
(Rabiner 1989), batched over devices so each step is a matrix product.

Transition kernels:

* walking: the heat kernel exp(gap · D_w · Q) of the graph generator Q, from its
  eigendecomposition Q = -V Λ Vᵀ; modes with exp(-gap_min D_w λ) below
  ``truncate`` are dropped (they carry less than that share of any transition).
* dwelling: a few explicit (Euler) steps of the same generator with the small
  D_d — a lazy random walk that stays within a cell or two.

The generator's rates, 2D/3h² to each side neighbour and D/6h² to each diagonal
one, make the 9-point stencil isotropic (Patra & Karttunen, "Stencils with
isotropic discretization error for differential operators", Numer. Methods PDE
22, 2006) with per-axis variance 2·D·t, so D is a physical m²/s.

>>> from heatmap.spatial.floorplan import load_default
>>> from heatmap.spatial.walkable_grid import WalkableGrid
>>> g = WalkableGrid.build(load_default(), cell_m=1.0)
>>> mm = MotionModel(g)
>>> p = np.zeros((1, mm.n_cells)); p[0, 100] = 1.0
>>> q = mm.walk(p, np.array([5.0]))
>>> round(float(q.sum()), 3), bool(q.max() < 0.5)
(1.0, True)
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.linalg
from numpy.typing import NDArray
from scipy import sparse
from scipy.sparse.linalg import eigsh

from heatmap.spatial.walkable_grid import WalkableGrid

F = NDArray[np.float64]
FA = NDArray[np.floating[Any]]
"""float32 or float64: the smoother runs in float32"""
DENSE_EIGH_MAX_CELLS = 4000
"""grids up to this many walkable cells use a dense eigendecomposition"""
TINY = np.float32(1e-15)
"""floor of every probability the smoother carries: float32 subnormals (< 1.2e-38)
make the matrix products ~8× slower, and mass this small changes nothing"""
DWELL_EULER_RATE = 0.1
"""the dwell kernel takes one Euler step while a gap moves at most this share of
the fastest rate (1 m cells at 0.01 m²/s: 0.03 in 1 s, 0.33 in 10 s)"""
DWELL_TAYLOR_RATE = 0.35
"""else second-order Taylor steps of at most this share each (10 s at 0.01 m²/s: one)"""


@dataclass(frozen=True)
class MotionParams:
    """Walking behaviour, physical units."""

    walk_diffusion_m2_s: float = 1.5
    """walking mode: per-axis displacement variance grows as 2·D·t, m²/s"""
    dwell_diffusion_m2_s: float = 0.01
    """dwelling mode (browsing, queueing), m²/s; the store report fits it to each
    period's tracks (:func:`heatmap.calibration.calibrate_motion`: 0.002–0.004 on
    the busy store-day)"""
    mean_dwell_s: float = 60.0
    """mean time in the dwelling mode before walking on, s"""
    mean_walk_s: float = 20.0
    """mean time in the walking mode before stopping, s"""
    truncate: float = 0.05
    """walk kernel: drop eigenmodes weighing less than this after the shortest gap

    (0.05 keeps 207 of the 751 modes of the bundled store's 1 m grid at 1 s
    windows; 1e-3 kept 680 for the same median error, 3.3 × the work)"""


_EIGEN_CACHE: dict[str, tuple[F, F]] = {}


def generator(grid: WalkableGrid, cells: NDArray[np.int64]) -> sparse.csr_matrix:
    """Graph Laplacian L (C, C) of the move graph for D = 1 m²/s: generator Q = -D·L.

    Rates 2/(3h²) to side neighbours and 1/(6h²) to diagonal ones (isotropic
    9-point stencil); edges through walls and shelves are absent from
    ``grid.graph``, so no probability crosses them.
    """
    h = grid.cell_m
    a = grid.graph[cells][:, cells].tocsr()
    rate = a.copy()
    diag = rate.data > h * 1.2
    rate.data = np.where(diag, 1.0 / (6.0 * h * h), 2.0 / (3.0 * h * h))
    deg = np.asarray(rate.sum(axis=1)).ravel()
    return (sparse.diags(deg) - rate).tocsr()


class MotionModel:
    """Two-mode (dwell/walk) random walk on the walkable grid; see the module doc.

    Parameters
    ----------
    grid
        The walkable grid; its move graph has no edge through walls or shelves.
    params
        Diffusion coefficients and mode durations.
    min_gap_s
        Shortest time between two windows this model will be asked about (the
        window length); sets how many eigenmodes the walk kernel keeps.
    speed_m_s, reset_s
        Accepted for compatibility with the first model; ``speed_m_s`` sets the
        walk diffusion to speed²·5 s / 2 when given.
    """

    def __init__(
        self,
        grid: WalkableGrid,
        params: MotionParams | None = None,
        min_gap_s: float = 5.0,
        speed_m_s: float | None = None,
        reset_s: float | None = None,
    ) -> None:
        p = params or MotionParams()
        if speed_m_s is not None:
            p = MotionParams(speed_m_s**2 * 5.0 / 2.0, *_rest(p))
        self.params = p
        self.grid = grid
        self.cells = np.flatnonzero(grid.walkable)
        self.lap = generator(grid, self.cells)
        self.lap_f32 = self.lap.astype(np.float32)
        self.min_gap_s = min_gap_s
        lam, vec = _eigen(grid, self.cells, self.lap, p.walk_diffusion_m2_s * min_gap_s, p.truncate)
        self.lam = lam
        self.vec = np.ascontiguousarray(vec, dtype=np.float32)
        self.vec_t = np.ascontiguousarray(vec.T, dtype=np.float32)
        rate_max = float(self.lap.diagonal().max()) if self.n_cells else 0.0
        self._dwell_rate = p.dwell_diffusion_m2_s * rate_max
        self._decay_tables: dict[float, NDArray[np.float32]] = {}

    @property
    def n_cells(self) -> int:
        return len(self.cells)

    @property
    def n_modes(self) -> int:
        """Eigenmodes kept for the walk kernel."""
        return len(self.lam)

    # ------------------------------------------------------------------ kernels

    def walk(self, x: FA, gap_s: F, diffusion: float | None = None) -> FA:
        """Rows of ``x`` (B, C) moved by ``gap_s`` (B,) seconds of walking (heat kernel).

        ``diffusion``: another coefficient (m²/s) than the walking one; exact while
        ``diffusion · gap`` is at least the walking one over the shortest gap.
        """
        dc = self.params.walk_diffusion_m2_s if diffusion is None else diffusion
        coef = x.astype(np.float32, copy=False) @ self.vec
        coef *= self._decay(dc, gap_s)
        out = (coef @ self.vec_t).astype(x.dtype, copy=False)
        np.maximum(out, TINY, out=out)
        # the truncated kernel rings a little around sharp rows and clipping its
        # negative lobes adds mass: give each row back the mass it came with
        out *= (x.sum(axis=1) / out.sum(axis=1))[:, None].astype(out.dtype)
        return out

    def _decay(self, dc: float, gap_s: F) -> NDArray[np.float32]:
        """(B, modes) exp(-dc·gap·λ).

        Windows sit on a time grid, so gaps are whole multiples of the shortest
        one: their factors come from a table (building each row afresh cost as
        much as the kernel's matrix products).
        """
        k = gap_s / self.min_gap_s
        ki = np.rint(k).astype(np.int64)
        if len(ki) and np.abs(k - ki).max() < 1e-6 and ki.min() >= 0 and ki.max() < 4096:
            table = self._decay_tables.get(dc)
            if table is None or len(table) <= ki.max():
                n = max(int(ki.max()) + 1, 2 * (0 if table is None else len(table)), 64)
                steps = np.arange(n)[:, None] * self.min_gap_s
                table = np.exp(-dc * steps * self.lam[None, :]).astype(np.float32)
                self._decay_tables[dc] = table
            return table[ki]
        return np.exp(-dc * gap_s[:, None] * self.lam[None, :]).astype(np.float32)

    def dwell(self, x: FA, gap_s: F) -> FA:
        """Rows of ``x`` (B, C) spread by ``gap_s`` (B,) seconds of dwelling.

        Short steps of the generator, each row as many as its own gap needs: one
        explicit (Euler) step while it moves at most ``DWELL_EULER_RATE`` of the
        fastest rate, else second-order Taylor steps I − A + A²/2 of at most
        ``DWELL_TAYLOR_RATE`` each (entrywise non-negative, mass-preserving; two
        products with the generator, where Euler needed four at that accuracy).
        Both are within 2 % of the exact kernel (tested). Gaps so long that the
        spread exceeds a walking step use the heat kernel instead (both are the
        same continuous-time random walk).

        Each product with the sparse generator costs ~2.5 µs per row (the walk
        kernel's two BLAS products ~9 µs on 207 modes, one thread): the fine pass
        of the busy store-day once gave every row of a step the Euler steps of
        its longest gap (a standing block's 10 s), four products where one was
        needed, and the dwell kernel cost more than the walk.
        """
        d = self.params.dwell_diffusion_m2_s
        if d <= 0 or not len(gap_s):
            return x.copy()
        long_ = d * gap_s >= self.params.walk_diffusion_m2_s * self.min_gap_s
        out = x.copy()
        rate = gap_s * self._dwell_rate  # share of the fastest rate moved over the gap
        # 0: one Euler step; n ≥ 1: n Taylor steps
        n_steps = np.where(
            rate <= DWELL_EULER_RATE, 0, np.ceil(rate / DWELL_TAYLOR_RATE).astype(np.int64)
        )
        n_steps[long_] = -1
        for n in np.unique(n_steps[n_steps >= 0]):
            sel = n_steps == n
            y = out if sel.all() else out[sel]
            if n == 0:
                self._euler_step(y, gap_s[sel])
            else:
                self._taylor_steps(y, gap_s[sel], int(n))
            if y is not out:
                out[sel] = y
        if long_.any():
            out[long_] = self.walk(x[long_], gap_s[long_], d)
        np.maximum(out, TINY, out=out)
        return out

    def _lap_rows(self, y: FA) -> FA:
        """(B, C) rows of ``y`` times the generator (L is symmetric)."""
        return (self.lap_f32 @ y.T).T

    def _euler_step(self, y: FA, gap_s: F) -> None:
        """y ← y (I − d·gap·L), in place."""
        h = (self.params.dwell_diffusion_m2_s * gap_s)[:, None].astype(y.dtype)
        y -= h * self._lap_rows(y)

    def _taylor_steps(self, y: FA, gap_s: F, n: int) -> None:
        """y ← y (I − A + A²/2)ⁿ with A = d·gap·L / n, in place."""
        h = (self.params.dwell_diffusion_m2_s * gap_s / n)[:, None].astype(y.dtype)
        for _ in range(n):
            p1 = h * self._lap_rows(y)
            y -= p1
            y += (np.float32(0.5) * h) * self._lap_rows(p1)

    def diffuse(self, p: F, gap_s: float) -> F:
        """One distribution (C,) after ``gap_s`` seconds in the walking mode."""
        return self.walk(p[None, :], np.array([gap_s]))[0]

    def stay(self, gap_s: F) -> tuple[F, F]:
        """Probability of keeping the dwell / walk mode over ``gap_s`` seconds."""
        p = self.params
        return np.exp(-gap_s / p.mean_dwell_s), np.exp(-gap_s / p.mean_walk_s)

    @property
    def prior_dwell(self) -> float:
        """Stationary share of time in the dwell mode."""
        p = self.params
        return p.mean_dwell_s / (p.mean_dwell_s + p.mean_walk_s)

    # ------------------------------------------------------------------ smoothing

    def smooth(self, lik: FA, t_ms: NDArray[np.int64]) -> FA:
        """Posterior (T, C) of one device from its likelihoods (T, C) at times ``t_ms``."""
        post, _ = self.smooth_batch(lik, np.zeros(len(lik), np.int64), t_ms)
        return post

    def _predict_update(self, ad: FA, aw: FA, lk: FA, gap: F) -> tuple[FA, FA]:
        """One forward step: the dwell- and walk-mode messages (B, C) moved by ``gap``
        (B,) seconds, switched between the modes, and weighed by the likelihoods ``lk``."""
        kd = self.dwell(ad, gap)
        kw = self.walk(aw, gap)
        sd, sw = (v.astype(np.float32)[:, None] for v in self.stay(gap))
        nd = sd * kd
        nd += (1 - sw) * kw
        nd *= lk
        kw *= sw
        kw += (1 - sd) * kd
        kw *= lk
        return nd, kw

    def log_evidence(
        self,
        lik: FA,
        log_scale: F,
        device: NDArray[np.int64],
        t_ms: NDArray[np.int64],
    ) -> F:
        """log p(all windows of each device) under this motion model: the forward pass.

        ``lik``: (W, C) likelihoods each scaled by exp(-``log_scale``) (W,) (rows
        as :meth:`smooth_batch` takes them, with the scale given back); returns
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
        pd0 = np.float32(self.prior_dwell)
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
                ad, aw = self._predict_update(ad[:na], aw[:na], lk, gap)
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
        self,
        lik: FA,
        device: NDArray[np.int64],
        t_ms: NDArray[np.int64],
        rows: NDArray[np.int64] | None = None,
    ) -> tuple[FA, F]:
        """Forward–backward for many devices at once.

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
        pd0 = np.float32(self.prior_dwell)
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
                ad, aw = self._predict_update(alpha_d[prev], alpha_w[prev], lk, gap)
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
                sd, sw = (v.astype(np.float32)[:, None] for v in self.stay(gap))
                mix_d = sd * yd
                mix_d += (1 - sd) * yw
                yw *= sw
                yw += (1 - sw) * yd
                bd = self.dwell(mix_d, gap)
                bw = self.walk(yw, gap)
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


def _rest(p: MotionParams) -> tuple[float, float, float, float]:
    return (p.dwell_diffusion_m2_s, p.mean_dwell_s, p.mean_walk_s, p.truncate)


def _grid_key(grid: WalkableGrid, cells: NDArray[np.int64]) -> str:
    h = hashlib.sha1()
    h.update(np.asarray([grid.x0, grid.y0, grid.cell_m, grid.nx, grid.ny], float).tobytes())
    h.update(cells.tobytes())
    h.update(grid.graph.indices.tobytes())
    return h.hexdigest()


def _eigen(
    grid: WalkableGrid, cells: NDArray[np.int64], lap: sparse.csr_matrix, dt: float, trunc: float
) -> tuple[F, F]:
    """Eigenpairs (λ ascending, V) of ``lap`` with exp(-dt·λ) ≥ ``trunc``."""
    c = len(cells)
    if c == 0:
        return np.zeros(0), np.zeros((0, 0))
    lam_cut = np.log(1.0 / trunc) / max(dt, 1e-9)
    key = f"{_grid_key(grid, cells)}:{lam_cut:.6g}"
    cached = _EIGEN_CACHE.get(key)
    if cached is not None:
        lam, vec = cached
    elif c <= DENSE_EIGH_MAX_CELLS:
        lam, vec = scipy.linalg.eigh(
            lap.toarray(), subset_by_value=(-np.inf, lam_cut), driver="evr"
        )
    else:
        # Weyl's law gives about area·Λ/(4π) modes below Λ (D = 1); the grid's
        # boundaries and discreteness about double that: grow k until Λ is passed
        area = c * grid.cell_m**2
        k = int(min(c - 2, 2.5 * area * lam_cut / (4 * np.pi) + 40))
        while True:
            lam, vec = eigsh(lap.tocsc(), k=k, sigma=-1e-3, which="LM")
            order = np.argsort(lam)
            lam, vec = lam[order], vec[:, order]
            if lam[-1] >= lam_cut or k >= c - 2:
                break
            k = min(c - 2, 2 * k)
    if cached is None:
        if len(_EIGEN_CACHE) > 8:
            _EIGEN_CACHE.clear()
        _EIGEN_CACHE[key] = (lam, vec)
    lam = np.maximum(lam, 0.0)
    keep = lam <= lam_cut
    return lam[keep], vec[:, keep]


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
    model's cells; batched over devices like :meth:`MotionModel.smooth_batch`.
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
