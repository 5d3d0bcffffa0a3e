"""Penalized maximum likelihood of RSSI with censoring (frames below the sensitivity
are missed, and the count of misses is evidence): the engine of every fit."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray
from scipy.optimize import minimize
from scipy.special import log_ndtr

F = NDArray[np.float64]


def _tobit_ll(
    mu: F, sigma: float, k: F, s1: F, s2: F, miss: F, sens: float, eps: float
) -> tuple[float, F, float]:
    """Censored-Gaussian log-likelihood of grouped frames, its gradient in μ and in log σ.

    Each group: k heard frames with Σr = s1, Σr² = s2 ~ N(μ, σ²) above ``sens``,
    and ``miss`` missed frames, each missed with ε + (1 - ε) Φ((s - μ)/σ).
    """
    s2_ = sigma * sigma
    quad = s2 - 2 * mu * s1 + k * mu * mu
    z = (sens - mu) / sigma
    log_phi_cdf = log_ndtr(z)
    log_m = np.logaddexp(np.log(max(eps, 1e-12)), np.log1p(-eps) + log_phi_cdf)
    ll = float((-k * np.log(sigma) - quad / (2 * s2_) + miss * log_m).sum())
    # d log M / dz = (1-ε) φ(z) / M
    dlm_dz = np.exp(np.log1p(-eps) - 0.5 * z * z - 0.5 * np.log(2 * np.pi) - log_m)
    g_mu = (s1 - k * mu) / s2_ + miss * dlm_dz * (-1.0 / sigma)
    g_logs = float((-k + quad / s2_ + miss * dlm_dz * (-z)).sum())
    return ll, g_mu, g_logs


@dataclass(frozen=True)
class FitReport:
    """What a calibration fit found, for the CLI and the bench."""

    source: str
    links: int
    """groups of frames fitted (node pairs, or walk points × nodes)"""
    frames: int
    rms_db: float
    """RMS of heard frames' mean residuals, dB"""
    exponent: float
    sigma_db: float
    walls_db: dict[int, float]
    notes: list[str] = field(default_factory=list)


def penalized_fit(
    design: F,
    theta0: F,
    prior_sd: F,
    k: F,
    s1: F,
    s2: F,
    miss: F,
    offset: F,
    sigma0: float,
    sens: float,
    eps: float,
) -> tuple[F, float]:
    """MAP of μ = design @ θ + offset under Gaussian priors N(θ0, prior_sd²) on θ."""
    p = len(theta0)

    def f(v: F) -> tuple[float, F]:
        th, logs = v[:p], v[p]
        mu = design @ th + offset
        ll, g_mu, g_logs = _tobit_ll(mu, float(np.exp(logs)), k, s1, s2, miss, sens, eps)
        r = (th - theta0) / prior_sd
        obj = -ll + 0.5 * float(r @ r)
        grad = np.concatenate([-(design.T @ g_mu) + r / prior_sd, [-g_logs]])
        return obj, grad

    res = minimize(
        f,
        np.concatenate([theta0, [np.log(sigma0)]]),
        jac=True,
        method="L-BFGS-B",
        bounds=[(None, None)] * p + [(np.log(1.0), np.log(20.0))],
        options={"maxiter": 500},
    )
    return res.x[:p], float(np.exp(res.x[p]))


def source_with(old: str, new: str) -> str:
    return new if old == "floor plan defaults" else f"{old} + {new}"
