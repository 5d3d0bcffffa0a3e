"""Radio model per node: log-distance path loss with wall attenuation.

    rssi = p0[band, node] - 10 n[node] log10(d) - Σ walls crossed + c[node](x, y)
           + phone offset + N(0, σ²)

``d`` is the 3-D distance from a phone held at ``phone_height_m`` to the node on
the ceiling; the walls are the floor plan's, each with its own attenuation (dB);
``c`` is an optional smooth per-node correction learnt from a beacon walk
(:class:`ResidualMap`). The phone's transmit offset is a nuisance parameter with
prior N(0, ``offset_sigma_db``²): phones differ by 10 dB and more.

The model starts from the floor plan's ``[radio]`` defaults
(:meth:`RadioModel.from_plan`) and is refined by :mod:`heatmap.calibration`:
node-to-node links fit exponents, receiver gains and wall losses; the phone
population fits the per-band level; a beacon walk at known points fits the rest.
Saved as JSON (:meth:`RadioModel.save`) by ``footfall calibrate``.

>>> from heatmap.spatial.floorplan import load_default
>>> m = RadioModel.from_plan(load_default())
>>> xy = np.array([[5.0, 5.0], [15.0, 10.0]])
>>> m.mean_rssi(xy, "ble").shape, bool(m.mean_rssi(xy, "ble")[0, 0] > -70)
((2, 6), True)
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from firmware_bridge.errors import ConfigError
from heatmap.spatial.floorplan import FloorPlan
from heatmap.spatial.geometry import wall_crossings

BANDS = ("wifi24", "wifi5", "wifi6", "ble")
WIFI_BAND_OFFSET_DB = {"wifi24": 0.0, "wifi5": -6.0, "wifi6": -8.0}
"""typical level of 5 and 6 GHz probes relative to 2.4 GHz at the same distance, dB"""
RSSI_STEP_DB = 1.0
"""nodes report RSSI in whole dBm"""
MIN_DISTANCE_M = 0.3
"""distances are floored here: the far-field law breaks down closer"""

Wall = tuple[tuple[float, float], tuple[float, float], float]
F = NDArray[np.float64]


@dataclass(frozen=True)
class ResidualMap:
    """A smooth per-node correction (dB) on a raster, bilinearly interpolated.

    Learnt from a beacon walk (:func:`heatmap.calibration.residual_map`): what
    the log-distance law gets wrong at a node (furniture, antenna pattern, multipath),
    shrunk to 0 where the walk did not go.
    """

    x0: float
    y0: float
    cell_m: float
    values: F
    """(ny, nx, N) correction at raster points x0 + i·cell_m, y0 + j·cell_m, dB"""

    def at(self, xy: F) -> F:
        """(len(xy), N) correction at positions ``xy`` (m), dB; 0 outside the raster."""
        ny, nx, _ = self.values.shape
        fx = (xy[:, 0] - self.x0) / self.cell_m
        fy = (xy[:, 1] - self.y0) / self.cell_m
        outside = (fx < 0) | (fy < 0) | (fx > nx - 1) | (fy > ny - 1)
        fx = np.clip(fx, 0, nx - 1 - 1e-9)
        fy = np.clip(fy, 0, ny - 1 - 1e-9)
        ix, iy = fx.astype(int), fy.astype(int)
        tx, ty = (fx - ix)[:, None], (fy - iy)[:, None]
        v = self.values
        out = (
            v[iy, ix] * (1 - tx) * (1 - ty)
            + v[iy, ix + 1] * tx * (1 - ty)
            + v[iy + 1, ix] * (1 - tx) * ty
            + v[iy + 1, ix + 1] * tx * ty
        )
        out[outside] = 0.0
        return out


@dataclass(frozen=True)
class RadioModel:
    """Per-node propagation model; all levels in dBm/dB, lengths in metres."""

    node_ids: tuple[str, ...]
    node_xyz: F
    """(N, 3) node positions, m"""
    p0: dict[str, F]
    """per band: (N,) RSSI at 1 m of a 0-offset phone, dBm"""
    exponent: F
    """(N,) path-loss exponent"""
    sigma_db: float
    """per-frame shadowing standard deviation, dB"""
    sensitivity_dbm: float
    """weakest frame a node hears, dBm (the lowest whole-dBm value it reports)"""
    walls: tuple[Wall, ...]
    """(a, b, attenuation dB) per floor-plan wall"""
    phone_height_m: float = 1.2
    offset_sigma_db: float = 5.0
    """prior spread of a phone's transmit offset (nuisance), dB"""
    frame_loss: float = 0.05
    """share of frames missed whatever the level (collisions, scanning gaps)"""
    correction: ResidualMap | None = None
    source: str = "floor plan defaults"
    """where the parameters come from (defaults, node links, population, walk)"""

    @classmethod
    def from_plan(cls, plan: FloorPlan) -> RadioModel:
        """The uncalibrated model: the floor plan's ``[radio]`` defaults for every node."""
        r = plan.radio
        n = len(plan.nodes)
        p0 = {b: np.full(n, r.p0_wifi_dbm + off) for b, off in WIFI_BAND_OFFSET_DB.items()}
        p0["ble"] = np.full(n, r.p0_ble_dbm)
        return cls(
            tuple(nd.id for nd in plan.nodes),
            np.array([[nd.x, nd.y, nd.z] for nd in plan.nodes], float),
            p0,
            np.full(n, r.path_loss_exponent),
            r.shadowing_db,
            r.sensitivity_dbm,
            tuple((w.a, w.b, w.attenuation_db) for w in plan.walls),
        )

    # ------------------------------------------------------------------ geometry

    @property
    def n_nodes(self) -> int:
        return len(self.node_ids)

    @property
    def detection_floor_dbm(self) -> float:
        """Received level below which a frame is missed, dBm: half a report step under
        :attr:`sensitivity_dbm`, since a frame reported at the sensitivity (a whole
        dBm) arrived anywhere from there up. Read against the sensitivity itself,
        the misses of the weakest links came out 0.5 dB too likely, which biased
        offsets and positions (see :mod:`heatmap.localizers.likelihood`)."""
        return self.sensitivity_dbm - RSSI_STEP_DB / 2

    @property
    def wall_attenuation(self) -> F:
        """(W,) attenuation of each wall, dB."""
        return np.array([w[2] for w in self.walls], float)

    def replace(self, **changes: Any) -> RadioModel:
        """A copy with some fields changed (the model is immutable)."""
        return dataclasses.replace(self, **changes)

    def with_walls(self, attenuation_db: F) -> RadioModel:
        return self.replace(
            walls=tuple(
                (a, b, float(v)) for (a, b, _), v in zip(self.walls, attenuation_db, strict=True)
            )
        )

    def distance(self, xy: F, height_m: float | None = None) -> F:
        """(len(xy), N) 3-D distance (m) from a transmitter at ``xy`` to each node."""
        h = self.phone_height_m if height_m is None else height_m
        dx = xy[:, 0, None] - self.node_xyz[None, :, 0]
        dy = xy[:, 1, None] - self.node_xyz[None, :, 1]
        dz = self.node_xyz[None, :, 2] - h
        return np.sqrt(dx * dx + dy * dy + dz * dz)

    def crossings(self, xy: F) -> F:
        """(len(xy), N, W) which walls the path from ``xy`` to each node crosses."""
        nodes = self.node_xyz[None, :, :2]
        return wall_crossings(xy[:, None, :], nodes, list(self.walls))

    def gradient(self, xy: F) -> F:
        """(len(xy), N, 2) ∂ mean RSSI / ∂(x, y) in dB/m (walls are piecewise constant)."""
        d = self.distance(xy)
        diff = xy[:, None, :] - self.node_xyz[None, :, :2]
        k = -10.0 * self.exponent[None, :] / np.log(10.0) / np.maximum(d, MIN_DISTANCE_M) ** 2
        return k[:, :, None] * diff

    # ------------------------------------------------------------------ levels

    def mean_rssi(self, xy: F, band: str, crossings: F | None = None) -> F:
        """(len(xy), N) expected RSSI (dBm) of a 0-offset phone at ``xy`` (m).

        ``crossings``: the (len(xy), N, W) matrix of :meth:`crossings`, when the
        caller already has it (calibration reuses it while walls change).
        """
        if band not in self.p0:
            raise ConfigError(f"radio model has no band {band!r} (bands: {sorted(self.p0)})")
        d = np.maximum(self.distance(xy), MIN_DISTANCE_M)
        x = self.crossings(xy) if crossings is None else crossings
        loss = x @ self.wall_attenuation if len(self.walls) else 0.0
        out = self.p0[band][None, :] - 10.0 * self.exponent[None, :] * np.log10(d) - loss
        if self.correction is not None:
            out = out + self.correction.at(xy)
        return out

    def link_geometry(self) -> tuple[F, F]:
        """Node-to-node links at ceiling height: (N, N) distance, m; (N, N, W) walls crossed."""
        xyz = self.node_xyz
        d = np.sqrt(((xyz[:, None, :] - xyz[None, :, :]) ** 2).sum(axis=2))
        x = wall_crossings(xyz[:, None, :2], xyz[None, :, :2], list(self.walls))
        return d, x

    # ------------------------------------------------------------------ persistence

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "v": 1,
            "source": self.source,
            "node_ids": list(self.node_ids),
            "node_xyz": self.node_xyz.tolist(),
            "p0_dbm": {b: v.tolist() for b, v in self.p0.items()},
            "exponent": self.exponent.tolist(),
            "sigma_db": self.sigma_db,
            "sensitivity_dbm": self.sensitivity_dbm,
            "walls": [[list(a), list(b), att] for a, b, att in self.walls],
            "phone_height_m": self.phone_height_m,
            "offset_sigma_db": self.offset_sigma_db,
            "frame_loss": self.frame_loss,
        }
        if self.correction is not None:
            c = self.correction
            d["correction"] = {
                "x0": c.x0,
                "y0": c.y0,
                "cell_m": c.cell_m,
                "values": np.round(c.values, 3).tolist(),
            }
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RadioModel:
        try:
            corr = d.get("correction")
            return cls(
                tuple(d["node_ids"]),
                np.asarray(d["node_xyz"], float),
                {b: np.asarray(v, float) for b, v in d["p0_dbm"].items()},
                np.asarray(d["exponent"], float),
                float(d["sigma_db"]),
                float(d["sensitivity_dbm"]),
                tuple((tuple(a), tuple(b), float(att)) for a, b, att in d["walls"]),  # type: ignore[misc]
                float(d["phone_height_m"]),
                float(d["offset_sigma_db"]),
                float(d["frame_loss"]),
                ResidualMap(
                    float(corr["x0"]),
                    float(corr["y0"]),
                    float(corr["cell_m"]),
                    np.asarray(corr["values"], float),
                )
                if corr
                else None,
                str(d.get("source", "file")),
            )
        except (KeyError, TypeError, ValueError) as e:
            raise ConfigError(f"radio model: malformed ({e!r})") from e

    def save(self, path: str | Path) -> Path:
        p = Path(path)
        p.write_text(json.dumps(self.to_dict(), indent=1) + "\n")
        return p

    @classmethod
    def load(cls, path: str | Path, plan: FloorPlan | None = None) -> RadioModel:
        """Read a saved model; with ``plan``, check it describes the plan's nodes."""
        p = Path(path)
        try:
            d = json.loads(p.read_text())
        except FileNotFoundError as e:
            raise ConfigError(f"{p}: no such radio model file") from e
        except json.JSONDecodeError as e:
            raise ConfigError(f"{p}: not valid JSON: {e}") from e
        m = cls.from_dict(d)
        if plan is not None and m.node_ids != tuple(n.id for n in plan.nodes):
            raise ConfigError(
                f"{p}: radio model is for nodes {list(m.node_ids)}, the floor plan has "
                f"{[n.id for n in plan.nodes]} (run `footfall calibrate` again)"
            )
        return m
