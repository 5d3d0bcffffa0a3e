"""Likelihood of a window's RSSI vector at every grid cell, vectorized.

For one window the data are, per node j, the number of frames heard k_j, their
mean RSSI r_j, and the frames the phone sent m (≈ the most any node heard). With
the radio model's mean μ_cj at cell c and the phone's transmit offset b:

    log L(c, b) = -Σ_j k_j (r_j - μ_cj - b)² / 2σ²  +  Σ_j (m - k_j) log P(miss | μ_cj + b)

with P(miss | μ) = ε + (1 - ε) Φ((s - μ) / σ) (frame loss ε, sensitivity s): a
node that heard fewer frames than were sent, or none, is evidence too.

The offset is a property of the *device*, constant over its pseudonym's windows,
so it is not re-estimated per window (which lets a loud phone pass for a near
one in every window): b takes values on a grid b_q (2 dB steps), the evidence
of each window for each b_q (the best cell's, :meth:`GridLikelihood.offset_evidence`)
is summed over the pseudonym's windows with the prior N(0, σ_b²), and each
window's likelihood is then read with the offset profiled under the pseudonym's
posterior N(b̄, v) — at b̄ itself once v is below half a dB² (a track of a few
minutes pins its phone's offset to a fraction of a dB; see
:meth:`GridLikelihood.__call__`).

The Gaussian part is matrix products with inner dimension N; the miss part one
product per band with a table of log P(miss) at every (b_q, node, cell) — no
(windows × cells × nodes) call to ``log_ndtr``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy.special import log_ndtr, logsumexp

from heatmap.spatial.radio_model import RadioModel

F = NDArray[np.float64]
B_LIM_DB = 20.0
"""offsets beyond ±this (dB) from the population level are clipped to it"""
B_STEP_DB = 2.0
MISS_STEP_DB = 0.25
"""offset step of the table the likelihood reads its miss term from (linear
interpolation between steps; see :class:`GridLikelihood`)"""
_GRID_PER_FINE = round(B_STEP_DB / MISS_STEP_DB)
assert _GRID_PER_FINE * MISS_STEP_DB == B_STEP_DB, "the offset grid is every few fine steps"
SHARP_OFFSET_VAR_DB2 = 4.0
"""offset priors at most this wide (dB²) read the miss term at the prior mean"""
KNOWN_OFFSET_VAR_DB2 = 0.5
"""offset priors at most this wide (dB², 0.7 dB sd) are the device's own offset,
pinned by its track: the whole likelihood is read at the prior mean (see
:meth:`GridLikelihood.__call__`). Long tracks are far below it (the busy
store-day's heatmap r is the same with 0.3, 1 or 16); with 4, short tracks of
passers-by whose offsets are known to ±2 dB lost the profile's slack, and the
demo's passer-by count moved from -3.2 % to -7.5 % of the truth."""
_ELEMENTS_PER_CHUNK = 1_500_000


class GridLikelihood:
    """Log-likelihood of windows over a fixed set of cells, for one band.

    Parameters
    ----------
    model
        The radio model.
    xy
        (C, 2) cell centres, m.
    band
        Band of the windows (``"ble"``, ``"wifi24"`` …).
    evidence_weight
        Multiplies the log-likelihood (1 = frames independent, as the simulator
        draws them; < 1 tempers correlated shadowing in real rooms).
    """

    def __init__(self, model: RadioModel, xy: F, band: str, evidence_weight: float = 1.0) -> None:
        self.model = model
        self.mu = model.mean_rssi(xy, band)  # (C, N)
        self.mu_t = np.ascontiguousarray(self.mu.T)
        # the Gaussian part in float32 about a reference level (cells' means and
        # each window's RSSI less it and less the window's offset), so that the
        # sums of squares it takes differences of stay small
        self.level_ref = float(np.round(np.mean(self.mu)))
        mu_c = (self.mu_t - self.level_ref).astype(np.float32)
        self._neg_mu_c = -mu_c
        self._e_table = np.ascontiguousarray(np.vstack([-2.0 * mu_c, mu_c * mu_c]))
        self.weight = evidence_weight
        self.b_grid = np.arange(-B_LIM_DB, B_LIM_DB + B_STEP_DB / 2, B_STEP_DB)
        # log P(miss) at every (offset, node, cell). The likelihood reads it at a
        # device's own offset, interpolated: log P(miss) bends by up to 1/σ² per
        # dB², so on the 2 dB grid linear interpolation was up to ~0.015 nats off
        # per missed frame, which summed over a long track's misses to hundreds
        # of nats that depend on where its offset falls between grid steps (a
        # uniform 0.7 dB shift of the radio model moved heatmap r by 0.1; a 2 dB
        # one by nothing) — hence a MISS_STEP_DB table, of which the 2 dB grid
        # is every few rows. Built a few offsets at a time: the float64
        # temporaries of the whole table at once were 4x its size, and stayed in
        # the process's heap.
        floor = model.detection_floor_dbm
        eps = model.frame_loss
        self.b_fine = np.arange(-B_LIM_DB, B_LIM_DB + MISS_STEP_DB / 2, MISS_STEP_DB)
        self._log_miss_fine = np.empty((len(self.b_fine), *self.mu_t.shape), np.float32)
        for lo in range(0, len(self.b_fine), 16):
            bf = self.b_fine[lo : lo + 16, None, None]
            zf = (floor - self.mu_t[None] - bf) / model.sigma_db
            self._log_miss_fine[lo : lo + 16] = np.logaddexp(
                np.log(max(eps, 1e-12)), np.log1p(-eps) + log_ndtr(zf)
            )  # (Q_fine, N, C)
        lm = self._log_miss_fine[::_GRID_PER_FINE]  # (Q, N, C) at the 2 dB grid
        self._log_miss32 = np.ascontiguousarray(
            lm.transpose(1, 0, 2).reshape(lm.shape[1], -1)
        )  # (N, Q·C)
        self.mu_t32 = self.mu_t.astype(np.float32)
        self.mu2_t32 = self.mu_t32 * self.mu_t32
        self._log_miss_cnq = np.ascontiguousarray(
            lm.transpose(2, 1, 0).reshape(lm.shape[2], -1), dtype=np.float32
        )  # (C, N·Q)
        self.log_prior_b = -0.5 * (self.b_grid / model.offset_sigma_db) ** 2
        self.log_prior_b -= logsumexp(self.log_prior_b)

    @property
    def n_cells(self) -> int:
        return self.mu.shape[0]

    @property
    def n_offsets(self) -> int:
        return len(self.b_grid)

    def call_rows(self) -> int:
        """Windows per :meth:`__call__` that keep its (B, C) temporaries near 12 MB each."""
        return max(4, _ELEMENTS_PER_CHUNK // max(self.n_cells, 1))

    def chunk_rows(self) -> int:
        """Windows per offset-evidence call (:meth:`offset_evidence`, whose (B, Q, C)
        float32 array this keeps near 12 MB, and :meth:`expected_offset_evidence`)."""
        return max(4, 2 * _ELEMENTS_PER_CHUNK // max(self.n_cells * self.n_offsets, 1))

    def offset_evidence(self, rssi: F, counts: F, frames: NDArray[np.int64]) -> F:
        """(B, Q) max over cells of log L(c, b_q): each window's evidence about the offset.

        The profile (max) rather than the mean over cells: a mean would credit the
        hypothesis with more cells that fit (the store has more cells than the
        street) once per window, and that bias compounds over a track.

        Hand-written hot path (the first pass over every window): with
        d_c = Σ k (r − μ_c) and e_c = Σ k (r − μ_c)², log L(c, b) = (b d_c − e_c / 2) / σ²
        − b² K / 2σ² + M_q(c), so the max over cells needs one (B, Q, C) float32
        array — the miss term's product, to which b_q d / σ² is added per offset
        and e / 2σ² subtracted in place — instead of the whole log-likelihood in
        float64 with its temporaries: 2.5× faster on the busy store-day's windows,
        within 2e-3 of it.
        """
        m = self.model
        s2 = m.sigma_db**2
        det = counts > 0
        k = np.where(det, counts, 0.0).astype(np.float32)
        r = np.where(det, rssi, 0.0).astype(np.float32)
        kr = k * r
        d = kr.sum(axis=1)[:, None] - k @ self.mu_t32  # Σ k (r − μ), (B, C)
        e = (kr * r).sum(axis=1)[:, None] - 2.0 * (kr @ self.mu_t32) + k @ self.mu2_t32
        miss = np.maximum(frames[:, None] - k, 0.0).astype(np.float32)
        n, q, c = len(k), self.n_offsets, self.n_cells
        a = (miss @ self._log_miss32).reshape(n, q, c)  # M_q(c)
        d *= np.float32(1.0 / s2)
        e *= np.float32(0.5 / s2)
        for j, b in enumerate(self.b_grid):
            a[:, j, :] += np.float32(b) * d
        a -= e[:, None, :]
        out = a.max(axis=2).astype(np.float64)
        out -= np.outer(k.sum(axis=1, dtype=np.float64), self.b_grid**2) / (2.0 * s2)
        if self.weight != 1.0:
            out *= self.weight
        return out

    def __call__(
        self,
        rssi: F,
        counts: F,
        frames: NDArray[np.int64],
        b_mean: F | None = None,
        b_var: F | None = None,
    ) -> NDArray[np.float32]:
        """(B, C) log-likelihood (float32) with the offset profiled under a prior N(b_mean, b_var).

        The prior defaults to the population's N(0, σ_b²), under which
        b̂_c = (Σ k_j (r_j - μ_cj) + ρ b̄) / (Σ k_j + ρ), ρ = σ²/v, profiles the
        Gaussian part; the miss term is read at one offset per window (see below).

        A prior at most ``KNOWN_OFFSET_VAR_DB2`` wide is a device's offset as its
        whole track determines it (:meth:`device_offsets`, the EM, the marginal
        search): the likelihood is read at b̄ itself. Profiling it again in each
        window counted the window's frames twice (they are in the track's
        estimate) and let every window trade distance for loudness, less so the
        more frames it has: a 10 s block of a standing phone came out up to 12
        nats flatter than its ten 1 s windows together, and the busy store-day's
        heatmap r was 0.899 where the fixed offset gives 0.930.
        """
        m = self.model
        s2 = m.sigma_db**2
        n = len(rssi)
        bm = np.zeros(n) if b_mean is None else np.asarray(b_mean, np.float64)
        bv = np.full(n, m.offset_sigma_db**2) if b_var is None else b_var
        rho = s2 / np.maximum(bv, 1e-6)
        # residuals about the prior mean: d_c = Σ k (r − μ_c − b̄), e_c = Σ k (r − μ_c − b̄)²
        k, d, e = self._residual_sums(rssi, counts, bm)
        big_k = k.sum(axis=1, dtype=np.float64)
        # the profiled b̂_c = b̄ + d_c / (K + ρ), and
        # Σ k (r − μ_c − b̂_c)² + ρ (b̂_c − b̄)² = e_c − d_c² / (K + ρ)
        fixed = bv <= KNOWN_OFFSET_VAR_DB2
        inv = np.where(fixed, 0.0, 1.0 / (big_k + rho)).astype(np.float32)[:, None]
        ll = d * d
        ll *= inv
        ll -= e
        ll *= np.float32(1.0 / (2.0 * s2))
        miss = np.maximum(frames[:, None] - k, 0.0)  # (B, N)
        # the miss term at one offset per window, read from the (node, offset,
        # cell) table interpolated between its two nearest offsets: one matrix
        # product instead of a lookup per (window, cell, node), 3× faster for
        # the whole likelihood. The offset: the device's own where its prior is
        # sharp (a few dB²; the per-cell profile moves b less than that), else
        # the profile's value at the cell that best explains the frames heard
        # (where the window's likelihood is; far cells are unlikely anyway)
        if miss.any():
            best = np.argmax(ll, axis=1)
            b_w = np.where(bv <= SHARP_OFFSET_VAR_DB2, bm, bm + d[np.arange(n), best] * inv[:, 0])
            self._add_miss(ll, miss, b_w)
        if self.weight != 1.0:
            ll *= self.weight
        return ll

    def _residual_sums(
        self, rssi: F, counts: F, b: F
    ) -> tuple[NDArray[np.float32], NDArray[np.float32], NDArray[np.float32]]:
        """Frames heard k (B, N), and per cell d_c = Σ k (r − μ_c − b) and e_c = Σ k (r −
        μ_c − b)² (B, C) for offsets ``b`` (B,): the products with the cells' means that
        every Gaussian part needs, in float32 (r and μ taken about ``level_ref`` first:
        within ~1e-3 nats of float64 on a 10 s block's sums)."""
        det = counts > 0
        k = np.where(det, counts, 0).astype(np.float32)
        r = np.where(det, rssi - (self.level_ref + b)[:, None], 0.0).astype(np.float32)
        kr = k * r
        d = k @ self._neg_mu_c  # -Σ k μ
        d += kr.sum(axis=1)[:, None]
        e = np.concatenate([kr, k], axis=1) @ self._e_table  # -2 Σ k r μ + Σ k μ²
        e += (kr * r).sum(axis=1)[:, None]
        return k, d, e

    def _add_miss(self, ll: NDArray[np.float32], miss: F, b_w: F) -> None:
        """Add Σ_j miss_j log P(miss at node j | cell, offset b_w) to ``ll`` (B, C) in place:
        the fine table interpolated at each window's offset, one product per table step."""
        table = self._log_miss_fine
        pos = np.clip((b_w - self.b_fine[0]) / MISS_STEP_DB, 0, len(table) - 1 - 1e-9)
        q0 = pos.astype(np.int64)
        f = (pos - q0)[:, None]
        for q in np.unique(q0):
            r = np.flatnonzero(q0 == q)
            mr = miss[r].astype(np.float32)
            fr = f[r].astype(np.float32)
            ll[r] += (mr * (1.0 - fr)) @ table[q] + (mr * fr) @ table[q + 1]

    def at_offsets(
        self, rssi: F, counts: F, frames: NDArray[np.int64], b: F, deltas: tuple[float, ...]
    ) -> list[NDArray[np.float32]]:
        """(B, C) log-likelihood (float32) at the fixed offset ``b`` + δ (B,) for each δ.

        What :meth:`__call__` gives under an infinitely sharp prior, for several
        offsets at once: with the residuals about ``b``, d_c = Σ k (r − μ_c − b) and
        e_c = Σ k (r − μ_c − b)², −Σ k (r − μ_c − b − δ)² = 2 δ d_c − e_c − δ² K, so
        the products with the cells' means are made once; only the miss term is
        read per offset.
        """
        s2 = self.model.sigma_db**2
        k, d, e = self._residual_sums(rssi, counts, b)
        big_k = k.sum(axis=1)[:, None]
        miss = np.maximum(frames[:, None] - k, 0.0)
        out = []
        for delta in deltas:
            ll = d * np.float32(2.0 * delta)
            ll -= e
            ll -= np.float32(delta * delta) * big_k
            ll *= np.float32(1.0 / (2.0 * s2))
            if miss.any():
                self._add_miss(ll, miss, b + delta)
            if self.weight != 1.0:
                ll *= self.weight
            out.append(ll)
        return out

    def expected_offset_evidence(
        self, post: NDArray[np.floating[Any]], rssi: F, counts: F, frames: NDArray[np.int64]
    ) -> F:
        """(B, Q) Σ_c γ_c log L(c, b_q) for posteriors ``post`` (B, C) over the cells.

        The E-step of an EM over the device offset (Dempster, Laird & Rubin, JRSS B
        39, 1977): the smoothed posterior, not a max or a flat mean over cells,
        weighs where the phone was. Up to a per-window constant. Cheap: the miss
        part is one product of ``post`` with the (cells × offsets·nodes) table.
        """
        m = self.model
        det = counts > 0
        k = np.where(det, counts, 0.0)
        r = np.where(det, rssi, 0.0)
        d = (k * r).sum(axis=1) - ((post @ self.mu) * k).sum(axis=1)
        big_k = k.sum(axis=1)
        bq = self.b_grid[None, :]
        ll = (2.0 * bq * d[:, None] - bq * bq * big_k[:, None]) / (2.0 * m.sigma_db**2)
        miss = np.maximum(frames[:, None] - k, 0.0)
        if miss.any():
            q, n = self.n_offsets, self.mu.shape[1]
            g = (post @ self._log_miss_cnq).reshape(len(post), n, q)  # Σ_c γ log P(miss)
            ll += np.einsum("bnq,bn->bq", g, miss)
        if self.weight != 1.0:
            ll *= self.weight
        return ll

    def offset_moments(self, log_w: F) -> tuple[F, F]:
        """Mean and variance (dB, dB²) of offsets with log posterior ``log_w`` (B, Q).

        A posterior spread over several grid offsets gives its moments; a sharp one
        (a long track) is refined between grid nodes by the parabola through the
        best three, whose curvature gives the variance.
        """
        w = np.exp(log_w)
        mean = w @ self.b_grid
        var = np.maximum(w @ self.b_grid**2 - mean**2, 0.0)
        q = len(self.b_grid)
        i = np.clip(np.argmax(log_w, axis=1), 1, q - 2)
        rows = np.arange(len(log_w))
        lm, l0, lp = log_w[rows, i - 1], log_w[rows, i], log_w[rows, i + 1]
        curv = lm - 2 * l0 + lp  # < 0 at a maximum
        sharp = (curv < -1e-9) & (var < B_STEP_DB**2)
        with np.errstate(divide="ignore", invalid="ignore"):
            delta = np.clip(0.5 * (lm - lp) / curv, -1.0, 1.0)
            pv = -(B_STEP_DB**2) / curv
        mean = np.where(sharp, self.b_grid[i] + delta * B_STEP_DB, mean)
        var = np.where(sharp, pv, var)
        return mean, np.maximum(var, 0.05)

    def device_offsets(self, evidence: F, device: NDArray[np.int64]) -> F:
        """(B, Q) log posterior of the offset per window, from all windows of its device.

        ``evidence``: (B, Q) from :meth:`offset_evidence`; ``device``: (B,) labels
        0, 1, 2 … with each device's windows contiguous.
        """
        if not len(device):
            return np.zeros((0, self.n_offsets))
        starts = np.flatnonzero(np.r_[True, device[1:] != device[:-1]])
        tot = np.add.reduceat(evidence, starts, axis=0) + self.log_prior_b[None, :]
        tot -= logsumexp(tot, axis=1, keepdims=True)
        return tot[np.cumsum(np.r_[True, device[1:] != device[:-1]]) - 1]
