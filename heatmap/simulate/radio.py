"""Simulated propagation: what RSSI each node measures for each transmitted frame.

rssi = p0 + phone offset - 10 n log10(d) - walls crossed + N(0, shadowing); frames
below the node's sensitivity, or lost to collisions, are not heard.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from heatmap.simulate.scenario import RadioTruth
from heatmap.spatial.floorplan import FloorPlan
from heatmap.spatial.geometry import wall_loss


def received(
    pos: NDArray[np.float64],
    offset_db: NDArray[np.float64],
    p0_dbm: float,
    plan: FloorPlan,
    radio: RadioTruth,
    rng: np.random.Generator,
) -> NDArray[np.float64]:
    """(n_frames, n_nodes) RSSI in dBm, NaN where the node did not hear the frame.

    ``pos``: (n, 2) transmitter positions (m); ``offset_db``: (n,) per-frame phone offset.
    """
    walls = [(w.a, w.b, w.attenuation_db) for w in plan.walls]
    out = np.full((len(pos), len(plan.nodes)), np.nan)
    for j, node in enumerate(plan.nodes):
        nxy = np.array([node.x, node.y])
        dz = node.z - radio.phone_height_m
        d = np.sqrt(((pos - nxy) ** 2).sum(axis=1) + dz * dz)
        loss = wall_loss(pos, nxy[None, :], walls)
        rssi = (
            p0_dbm
            + offset_db
            - 10 * radio.path_loss_exponent * np.log10(np.maximum(d, 0.3))
            - loss
            + rng.normal(0, radio.shadowing_db, len(pos))
        )
        rssi = np.round(np.clip(rssi, -110, 10))
        heard = (rssi >= radio.sensitivity_dbm) & (rng.random(len(pos)) >= radio.frame_loss)
        out[heard, j] = rssi[heard]
    return out
