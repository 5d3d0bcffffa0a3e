"""The motion model fitted to a store's own people: how still they stand.

The dwelling mode of :mod:`heatmap.spatial.motion` is a slow random walk; its diffusion
coefficient says how far a person browsing a shelf, queueing or serving at a
till drifts. Too large, and the smoother lets a standing person wander off
between windows and spreads their person-seconds over the cells around them;
too small, and it pins browsers who do move. Stores differ (a café's seated
guests, a DIY store's aisles), so it is fitted per period, like the radio
model: on a sample of long tracks, the coefficient with the largest marginal
likelihood of the tracks (every position and mode sequence summed out,
:func:`heatmap.localizers.motion_evidence.motion_log_evidence`) — found on a
half-decade grid, then refined by a parabola in log D.

Only the dwelling coefficient is fitted. Walking is ballistic (about 1 m/s in a
line), which a random walk matches at one time step only: on 10 s blocks the
evidence asks for twice the default walking coefficient, which then
over-spreads the 1 s steps that place walkers (busy store-day peak hour: p90
error 1.80 → 1.96 m). Standing still looks the same at every time step.
"""

from __future__ import annotations

import dataclasses

import numpy as np
from numpy.typing import NDArray

from heatmap.localizers.base import Windows
from heatmap.spatial.motion import MotionParams
from heatmap.spatial.radio_model import RadioModel
from heatmap.spatial.walkable_grid import WalkableGrid

F = NDArray[np.float64]
DWELL_D_GRID = tuple(float(x) for x in 10.0 ** np.arange(-4.0, -1.4, 0.5))
"""candidate dwelling coefficients, m²/s: 1e-4 … 3e-2 in half-decades"""


def calibrate_motion(
    model: RadioModel,
    win: Windows,
    grid: WalkableGrid,
    rng: np.random.Generator | None = None,
    base: MotionParams | None = None,
    max_steps: int = 4000,
    min_steps: int = 12,
    band: str = "ble",
) -> tuple[MotionParams, dict[str, float]]:
    """``base`` with its dwelling diffusion fitted to a sample of the period's long tracks.

    Devices of ``band`` with at least ``min_steps`` smoothing steps (10 s blocks
    for windows shorter than 5 s, else windows: a couple of minutes) are sampled
    with ``rng`` until ``max_steps`` steps. With none, ``base`` comes back
    unchanged. The summary gives the fitted coefficient, the sample, and the
    log-likelihood gained over ``base``'s coefficient.
    """
    from heatmap.localizers.motion_evidence import motion_log_evidence
    from heatmap.localizers.two_scale import BLOCK_MS, TWO_SCALE_BELOW_MS

    base = base or MotionParams()
    rows = np.flatnonzero(win.band == band)
    summary: dict[str, float] = {"tracks": 0.0}
    if not len(rows):
        return base, summary
    short = win.window_ms < TWO_SCALE_BELOW_MS
    step_ms = BLOCK_MS if short else win.window_ms
    pid = win.pid[rows]
    new_dev = np.r_[True, pid[1:] != pid[:-1]]
    dev = np.cumsum(new_dev) - 1
    slot = win.t_ms[rows] // step_ms
    new_step = new_dev | np.r_[True, slot[1:] != slot[:-1]]
    n_steps = np.bincount(dev, weights=new_step).astype(np.int64)
    starts = np.flatnonzero(new_dev)
    ends = np.r_[starts[1:], len(rows)]
    long_ = np.flatnonzero(n_steps >= min_steps)
    if not len(long_):
        return base, summary
    gen = rng or np.random.default_rng(0)
    gen.shuffle(long_)
    take = long_[: max(int(np.searchsorted(np.cumsum(n_steps[long_]), max_steps)) + 1, 1)]
    idx = np.sort(np.concatenate([rows[starts[k] : ends[k]] for k in take]))
    cand = [dataclasses.replace(base, dwell_diffusion_m2_s=d) for d in DWELL_D_GRID]
    ev = motion_log_evidence(win.take(idx), model, grid, [*cand, base], base)
    ev_base, ev = ev[-1], ev[:-1]
    d = _parabola_peak(np.log10(DWELL_D_GRID), ev)
    fitted = dataclasses.replace(base, dwell_diffusion_m2_s=float(10.0**d))
    summary = {
        "tracks": float(len(take)),
        "steps": float(n_steps[take].sum()),
        "dwell_diffusion_m2_s": fitted.dwell_diffusion_m2_s,
        "log_likelihood_gain": float(ev.max() - ev_base),
    }
    return fitted, summary


def _parabola_peak(x: F, y: F) -> float:
    """The x where the parabola through the best point and its neighbours peaks
    (an end point of the grid as it is)."""
    i = int(np.argmax(y))
    if i == 0 or i == len(x) - 1:
        return float(x[i])
    ym, y0, yp = y[i - 1], y[i], y[i + 1]
    curv = ym - 2 * y0 + yp
    h = float(x[i + 1] - x[i])
    if curv >= 0:
        return float(x[i])
    return float(x[i] + np.clip(0.5 * (ym - yp) / curv, -0.5, 0.5) * h)
