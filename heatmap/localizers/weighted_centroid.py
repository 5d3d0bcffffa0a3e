"""Baseline: weighted centroid of the nodes that heard the device.

Each window's position is Σ w_j x_j / Σ w_j over the nodes that heard it, with
w_j = 1 / d_j^g and d_j the distance ranged from the mean RSSI with the radio
model (Blumenthal et al., "Weighted centroid localization in ZigBee-based sensor
networks", IEEE WISP 2007; g = 1 as they recommend). No motion model, no
non-detection, no phone offset: what room-presence tools do.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from numpy.typing import NDArray

from heatmap.localizers.base import Posterior, Windows, point_posterior
from heatmap.spatial.radio_model import MIN_DISTANCE_M, RadioModel
from heatmap.spatial.walkable_grid import WalkableGrid

NAME = "weighted centroid"
F = NDArray[np.float64]


def ranged_distance(win: Windows, model: RadioModel) -> F:
    """(W, N) 3-D distance (m) ranged from each node's mean RSSI, NaN where not heard.

    Inverts rssi = p0 - 10 n log10(d) per node and band (walls ignored, as
    ranging tools do).
    """
    p0 = np.zeros(win.rssi.shape)
    for b in np.unique(win.band):
        p0[win.band == b] = model.p0[str(b)]
    return np.maximum(10 ** ((p0 - win.rssi) / (10 * model.exponent[None, :])), MIN_DISTANCE_M)


def centroid(win: Windows, model: RadioModel, g: float = 1.0) -> F:
    """(W, 2) weighted centroid per window, m."""
    d = ranged_distance(win, model)
    w = np.where(np.isnan(d), 0.0, 1.0 / np.where(np.isnan(d), 1.0, d) ** g)
    s = w.sum(axis=1, keepdims=True)
    s[s == 0] = 1.0
    return (w @ model.node_xyz[:, :2]) / s


def locate(
    win: Windows,
    model: RadioModel,
    grid: WalkableGrid,
    *,
    duration_s: F | None = None,
    group: NDArray[np.int64] | None = None,
    n_groups: int = 1,
    progress: Callable[[float], None] | None = None,
    g: float = 1.0,
) -> Posterior:
    xy = centroid(win, model, g)
    if progress is not None:
        progress(len(win))
    return point_posterior(xy, win, grid, duration_s, group, n_groups)
