"""Real-data adapter: the Kolakowski BLE apartment recordings (shared/data).

Six fixed BLE anchors hear a tag on a robot (Kolakowski, "Automated Calibration
of RSS Fingerprinting Based Systems Using a Mobile Robot and Machine Learning",
Sensors 21, 6270, 2021; CC BY 4.0). The anchors play our ceiling nodes, the tag
a phone. Here: the apartment as a :class:`FloorPlan` (its wall polyline as the
outline, every segment also a radio wall), the calibration walk and the robot
test as arrays, and the test as :class:`Windows` (one window per RSSI row); and
the benchmark protocol (:func:`evaluate`): fit on the calibration walk only,
choose hyper-parameters on the walk's last 20 %, run once on the robot test.
"""

from __future__ import annotations

import csv
import dataclasses
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from heatmap import calibration
from heatmap.localizers.base import Windows
from heatmap.spatial.floorplan import FloorPlan, parse
from heatmap.spatial.motion import MotionParams
from heatmap.spatial.radio_model import RadioModel
from heatmap.spatial.walkable_grid import WalkableGrid

F = NDArray[np.float64]
TAG_HEIGHT_M = 1.3
"""the tag rode the robot at 1.3 m (dataset README)"""
WALL_PRIOR_DB = 3.0
"""prior attenuation of each wall-polyline segment before the calibration fit, dB"""


@dataclass(frozen=True)
class Recording:
    """Rows of a recording: time, true position, RSSI per anchor."""

    t_ms: NDArray[np.int64]
    """Unix epoch ms"""
    xy: F
    """(M, 2) true tag position, m"""
    rssi: F
    """(M, 6) RSSI at anchors 1–6, dBm, NaN where the anchor did not hear"""

    def head(self, n: int) -> Recording:
        return Recording(self.t_ms[:n], self.xy[:n], self.rssi[:n])

    def tail(self, n: int) -> Recording:
        return Recording(self.t_ms[n:], self.xy[n:], self.rssi[n:])

    def windows(self, pid: str = "tag") -> Windows:
        """One window per row (one averaged frame per anchor that heard it)."""
        heard = ~np.isnan(self.rssi)
        gaps = np.diff(self.t_ms)
        step = int(np.median(gaps)) if len(gaps) else 1000
        return Windows(
            np.full(len(self.t_ms), pid),
            self.t_ms.copy(),
            np.full(len(self.t_ms), "ble"),
            self.rssi.copy(),
            heard.astype(float),
            np.ones(len(self.t_ms), np.int64),
            max(step, 1),
        )


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def load_recording(path: Path) -> Recording:
    rows = _rows(path)
    t = np.array([float(r["ts"]) / 1e6 for r in rows]).round().astype(np.int64)
    xy = np.array([[float(r["x"]), float(r["y"])] for r in rows])
    rssi = np.array(
        [[float(r[f"rssi_{i}"]) if r[f"rssi_{i}"] else np.nan for i in range(1, 7)] for r in rows]
    )
    order = np.argsort(t, kind="stable")
    return Recording(t[order], xy[order], rssi[order])


def load_plan(data_dir: Path) -> FloorPlan:
    """The apartment: outline = wall polyline, each segment a radio wall, anchors as nodes."""
    pts = [[float(r["x"]), float(r["y"])] for r in _rows(data_dir / "layout.csv")]
    if pts[0] == pts[-1]:
        pts = pts[:-1]
    anchors = _rows(data_dir / "anchors.csv")
    walls = [
        {
            "id": f"w{i}",
            "points": [pts[i], pts[(i + 1) % len(pts)]],
            "attenuation_db": WALL_PRIOR_DB,
        }
        for i in range(len(pts))
    ]
    data = {
        "store": {"id": "kolakowski", "name": "Kolakowski apartment", "timezone": "UTC"},
        "radio": {"p0_ble_dbm": -60.0, "path_loss_exponent": 2.0, "shadowing_db": 5.0},
        "outline": {"points": pts},
        "walls": walls,
        "nodes": [
            {"id": f"a{r['id']}", "x": float(r["x"]), "y": float(r["y"]), "z": float(r["z"])}
            for r in anchors
        ],
    }
    return parse(data, source=str(data_dir))


def load(data_dir: Path) -> tuple[FloorPlan, Recording, Recording]:
    """(plan, calibration walk, robot test) of the dataset directory."""
    return (
        load_plan(data_dir),
        load_recording(data_dir / "calibration_df.csv"),
        load_recording(data_dir / "test_robot_df.csv"),
    )


# ------------------------------------------------------------------ the benchmark protocol


@dataclass(frozen=True)
class Hyper:
    """What the walk's hold-out chooses: correction-map smoothing and motion diffusion."""

    bandwidth_m: float = 0.3
    prior_frames: float = 8.0
    motion_factor: float = 1.0


def fit_ours(model: RadioModel, plan: FloorPlan, walk: Recording, h: Hyper) -> RadioModel:
    """Log-distance + walls fitted to the walk, plus its per-anchor correction map."""
    fitted, _ = calibration.fit_walk(model, walk.xy, walk.rssi, keep_level=False)
    rm = calibration.residual_map(
        fitted,
        walk.xy,
        walk.rssi,
        bandwidth_m=h.bandwidth_m,
        prior_frames=h.prior_frames,
        bounds=plan.bounds,
    )
    fitted = fitted.replace(correction=rm)
    res = walk.rssi - fitted.mean_rssi(walk.xy, "ble")
    # the test's tag is the walk's tag: its offset is known to about a dB
    return fitted.replace(sigma_db=float(np.sqrt(np.nanmean(res**2))), offset_sigma_db=1.5)


def ranging_model(model: RadioModel, walk: Recording) -> RadioModel:
    """Per-anchor log-distance fit without walls: what ranging baselines calibrate."""
    fitted, _ = calibration.fit_walk(
        model.replace(walls=(), correction=None), walk.xy, walk.rssi, keep_level=False
    )
    return fitted


def robot_motion(walk: Recording, factor: float) -> MotionParams:
    """Motion from the walk's own trajectory: D = factor · v75² · Δt / 4."""
    dt = np.diff(walk.t_ms) / 1000.0
    ok = (dt > 0) & (dt < 2.0)
    v = np.hypot(*np.diff(walk.xy, axis=0)[ok].T) / dt[ok]
    d_walk = factor * float(np.percentile(v, 75)) ** 2 * float(np.median(dt[ok])) / 4
    return MotionParams(
        walk_diffusion_m2_s=max(d_walk, 1e-3), dwell_diffusion_m2_s=max(d_walk / 10, 1e-4)
    )


def select(plan: FloorPlan, walk: Recording, grid: WalkableGrid) -> Hyper:
    """Hyper-parameters with the least median error on the walk's last 20 % (held out)."""
    from heatmap.localizers import grid_posterior

    base = RadioModel.from_plan(plan).replace(phone_height_m=TAG_HEIGHT_M)
    n_fit = int(0.8 * len(walk.t_ms))
    fit_part, val = walk.head(n_fit), walk.tail(n_fit)
    best: tuple[float, Hyper] | None = None
    for bw in (0.3, 0.5, 0.8):
        for prior in (2.0, 8.0):
            m = fit_ours(base, plan, fit_part, Hyper(bw, prior))
            for factor in (1.0, 4.0, 16.0):
                post = grid_posterior.locate(
                    val.windows(),
                    m,
                    grid,
                    pool_offsets=False,
                    motion=robot_motion(fit_part, factor),
                )
                err = float(np.median(np.hypot(*(post.mean_xy - val.xy).T)))
                if best is None or err < best[0]:
                    best = (err, Hyper(bw, prior, factor))
    assert best is not None
    return best[1]


def grid_for(plan: FloorPlan) -> WalkableGrid:
    """0.25 m cells over the apartment (no furniture in the plan: no clearance)."""
    return WalkableGrid.build(plan, cell_m=0.25, clearance_m=0.0)


def evaluate(data_dir: Path, h: Hyper | None = None) -> dict[str, object]:
    """Median and p90 error (m) of ours and the baselines on the robot test.

    Everything is fitted on the calibration walk; ``h`` None chooses the
    hyper-parameters on the walk's hold-out (:func:`select`).
    """
    from heatmap.localizers import get

    plan, walk, test = load(data_dir)
    grid = grid_for(plan)
    h = h or select(plan, walk, grid)
    base = RadioModel.from_plan(plan).replace(phone_height_m=TAG_HEIGHT_M)
    ours = fit_ours(base, plan, walk, h)
    ranging = ranging_model(base, walk)
    win = test.windows()
    posts = {
        "grid": get("grid")(
            win, ours, grid, pool_offsets=False, motion=robot_motion(walk, h.motion_factor)
        ),
        "grid_no_motion": get("grid")(win, ours, grid, pool_offsets=False, motion=False),
        "weighted_centroid": get("weighted_centroid")(win, ranging, grid),
        "trilateration": get("trilateration")(win, ranging, grid),
    }
    methods = {}
    for name, post in posts.items():
        e = np.hypot(*(post.mean_xy - test.xy).T)
        methods[name] = {
            "median_m": float(np.median(e)),
            "p90_m": float(np.percentile(e, 90)),
            "n": len(e),
        }
    return {
        "test_rows": len(test.t_ms),
        "walk_rows": len(walk.t_ms),
        "chosen_on_walk_holdout": dataclasses.asdict(h),
        "methods": methods,
    }
