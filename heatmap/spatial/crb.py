"""Cramér–Rao bound of RSSI localization for a node layout.

The physical limit of any unbiased position estimate from one window of RSSI
(σ_d ≥ (ln 10 / 10)(σ/n) d per range; Patwari et al., "Relative
location estimation in wireless sensor networks", IEEE Trans. Signal Process.
51(8), 2003). Here per window of ``frames`` frames, for the model of
:mod:`heatmap.spatial.radio_model`:

* parameters θ = (x, y, b): position and the phone's transmit offset b, a
  nuisance with prior N(0, σ_b²) (a Bayesian information term);
* node j's frames are censored Gaussians: heard with N(μ_j, σ²) when above the
  sensitivity s, else a miss. The per-frame Fisher information on μ_j of a
  left-censored normal (the Tobit model; Amemiya, "Regression analysis when the
  dependent variable is truncated normal", Econometrica 41, 1973) is

      I_j = (1 - ε)/σ² · [φ(a)²/Φ(a) + 1 - Φ(a) + a φ(a)],   a = (s - μ_j)/σ,

  so far nodes that rarely hear the phone still inform through their silence;
* J(θ) = Σ_j frames · I_j · g_j g_jᵀ with g_j = ∂μ_j/∂θ = (∂μ_j/∂x, ∂μ_j/∂y, 1).

The position bound is the upper-left 2 × 2 block of J⁻¹ (the offset's
uncertainty is paid for by the Schur complement); its trace is the MSE bound and
its square root the "CRB-derived RMSE". Walls lower μ (and so the information)
but add no gradient.

>>> from heatmap.spatial.floorplan import load_default
>>> from heatmap.spatial.radio_model import RadioModel
>>> m = RadioModel.from_plan(load_default())
>>> b = position_bound(m, np.array([[15.0, 10.0]]), frames=2.5)
>>> bool(1.0 < rmse(b)[0] < 4.0)
True
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray
from scipy.special import log_ndtr, ndtr

from heatmap.spatial.radio_model import RadioModel

F = NDArray[np.float64]
MEDIAN_OVER_RMSE_ISOTROPIC = float(np.sqrt(np.log(2.0)))
"""median/RMSE of the error radius of an isotropic 2-D Gaussian (Rayleigh): 0.833"""


def tobit_information(mu: F, sigma: float, sensitivity: float, frame_loss: float = 0.0) -> F:
    """Fisher information (1/dB²) per frame on the mean ``mu`` (dBm) of a censored normal."""
    a = (sensitivity - mu) / sigma
    phi = np.exp(-0.5 * a * a) / np.sqrt(2 * np.pi)
    big_phi = ndtr(a)
    ratio = np.exp(2 * np.log(np.maximum(phi, 1e-300)) - log_ndtr(a))
    info = (ratio + (1.0 - big_phi) + a * phi) / sigma**2
    return (1.0 - frame_loss) * np.maximum(info, 0.0)


def fisher(model: RadioModel, xy: F, frames: float | F = 2.5, band: str = "ble") -> F:
    """(P, 3, 3) Fisher information of (x, y, offset) at positions ``xy`` (P, 2).

    ``frames``: frames the phone sends per window (scalar or (P,)); the offset
    prior N(0, σ_b²) is included.
    """
    mu = model.mean_rssi(xy, band)
    info = tobit_information(mu, model.sigma_db, model.detection_floor_dbm, model.frame_loss)
    g = model.gradient(xy)  # (P, N, 2)
    jac = np.concatenate([g, np.ones((*g.shape[:2], 1))], axis=2)  # (P, N, 3)
    w = info * np.broadcast_to(np.asarray(frames, float).reshape(-1, 1), info.shape)
    fim = np.einsum("pn,pni,pnj->pij", w, jac, jac)
    fim[:, 2, 2] += 1.0 / model.offset_sigma_db**2
    return fim


def position_bound(model: RadioModel, xy: F, frames: float | F = 2.5, band: str = "ble") -> F:
    """(P, 2, 2) CRB covariance of the position (m²), offset marginalized."""
    fim = fisher(model, xy, frames, band)
    fim[:, :2, :2] += np.eye(2) * 1e-9  # keep it invertible where nobody hears
    return np.asarray(np.linalg.inv(fim)[:, :2, :2], dtype=np.float64)


def rmse(cov: F) -> F:
    """(P,) root of the trace of (P, 2, 2) covariances: the RMSE bound, m."""
    return np.sqrt(np.maximum(np.trace(cov, axis1=1, axis2=2), 0.0))


def median_error(cov: F, n_angles: int = 64) -> F:
    """(P,) median radius (m) of a zero-mean Gaussian error with covariance ``cov``.

    P(|e| ≤ r) = (1/2π√det Σ) ∫ (1 - exp(-r² q(θ)/2)) / q(θ) dθ with
    q(θ) = uᵀ Σ⁻¹ u, u = (cos θ, sin θ); solved for 1/2 by bisection.
    """
    inv = np.linalg.inv(cov + np.eye(2) * 1e-12)
    det = np.maximum(np.linalg.det(cov), 1e-24)
    th = (np.arange(n_angles) + 0.5) * 2 * np.pi / n_angles
    u = np.stack([np.cos(th), np.sin(th)], axis=1)
    q = np.einsum("ai,pij,aj->pa", u, inv, u)  # (P, A)
    norm = 1.0 / (2 * np.pi * np.sqrt(det))
    lo = np.zeros(len(cov))
    hi = 4.0 * np.sqrt(np.trace(cov, axis1=1, axis2=2)) + 1e-9
    for _ in range(50):
        mid = (lo + hi) / 2
        cdf = norm * ((1 - np.exp(-0.5 * mid[:, None] ** 2 * q)) / q).mean(axis=1) * 2 * np.pi
        below = cdf < 0.5
        lo = np.where(below, mid, lo)
        hi = np.where(below, hi, mid)
    return (lo + hi) / 2
