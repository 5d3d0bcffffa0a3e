"""Radio model per node: log-distance path loss with wall attenuation.

    rssi = p0[band, node] - 10 n[node] log10(d) - walls(d) + phone offset + N(0, σ²)

``d`` is the 3-D distance from a phone held at ``phone_height_m`` to the node on
the ceiling. Starts from the floor plan's defaults; calibration refines it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from heatmap.floorplan import FloorPlan
from heatmap.geometry import wall_loss

BANDS = ("wifi24", "wifi5", "wifi6", "ble")


@dataclass(frozen=True)
class RadioModel:
    node_ids: tuple[str, ...]
    node_xyz: NDArray[np.float64]
    """(N, 3) node positions, m"""
    p0: dict[str, NDArray[np.float64]]
    """per band: (N,) RSSI at 1 m, dBm"""
    exponent: NDArray[np.float64]
    """(N,) path-loss exponent"""
    sigma_db: float
    sensitivity_dbm: float
    walls: tuple[tuple[tuple[float, float], tuple[float, float], float], ...]
    phone_height_m: float = 1.2
    offset_sigma_db: float = 5.0
    """prior spread of a phone's transmit offset (nuisance), dB"""
    frame_loss: float = 0.05
    """share of frames missed whatever the level (collisions, scanning gaps)"""

    @classmethod
    def from_plan(cls, plan: FloorPlan) -> RadioModel:
        r = plan.radio
        n = len(plan.nodes)
        wifi = np.full(n, r.p0_wifi_dbm)
        return cls(
            tuple(nd.id for nd in plan.nodes),
            np.array([[nd.x, nd.y, nd.z] for nd in plan.nodes]),
            {
                "wifi24": wifi,
                "wifi5": wifi - 6.0,
                "wifi6": wifi - 8.0,
                "ble": np.full(n, r.p0_ble_dbm),
            },
            np.full(n, r.path_loss_exponent),
            r.shadowing_db,
            r.sensitivity_dbm,
            tuple((w.a, w.b, w.attenuation_db) for w in plan.walls),
        )

    def mean_rssi(self, xy: NDArray[np.float64], band: str) -> NDArray[np.float64]:
        """(len(xy), N) expected RSSI (dBm) of a 0-offset phone at ``xy``."""
        out = np.empty((len(xy), len(self.node_ids)))
        for j, (x, y, z) in enumerate(self.node_xyz):
            d = np.sqrt((xy[:, 0] - x) ** 2 + (xy[:, 1] - y) ** 2 + (z - self.phone_height_m) ** 2)
            loss = wall_loss(xy, np.array([x, y])[None, :], list(self.walls))
            out[:, j] = (
                self.p0[band][j] - 10 * self.exponent[j] * np.log10(np.maximum(d, 0.3)) - loss
            )
        return out
