"""The motion model's dwelling diffusion, fitted by the tracks' marginal likelihood,
recovers how far simulated people drift (a known answer), and the calibration
reports it."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from heatmap.calibration import calibrate_motion
from heatmap.calibration.motion_fit import DWELL_D_GRID, _parabola_peak
from heatmap.localizers.base import Windows
from heatmap.spatial.floorplan import parse
from heatmap.spatial.motion import MotionParams
from heatmap.spatial.radio_model import RadioModel
from heatmap.spatial.walkable_grid import WalkableGrid

ROOM = parse(
    {
        "store": {"id": "room"},
        "outline": {"points": [[0, 0], [12, 0], [12, 8], [0, 8]]},
        "nodes": [
            {"id": "a", "x": 1.5, "y": 1.5, "z": 3.0},
            {"id": "b", "x": 10.5, "y": 1.5, "z": 3.0},
            {"id": "c", "x": 1.5, "y": 6.5, "z": 3.0},
            {"id": "d", "x": 10.5, "y": 6.5, "z": 3.0},
            {"id": "e", "x": 6.0, "y": 4.0, "z": 3.0},
        ],
    }
)


def drifting_people(model: RadioModel, d_m2_s: float, seed: int) -> Windows:
    """40 phones, 60 windows of 5 s each, every person drifting by a random walk of
    diffusion ``d_m2_s`` (per-axis variance 2·D·t) inside the room; each node hears
    5 frames per window, each with the model's shadowing σ (the data the likelihood
    assumes)."""
    rng = np.random.default_rng(seed)
    n_dev, n_win, step_s, frames = 40, 60, 5.0, 5
    pids, ts, rssi = [], [], []
    for k in range(n_dev):
        xy = rng.uniform([2.0, 2.0], [10.0, 6.0])
        steps = rng.normal(0.0, np.sqrt(2 * d_m2_s * step_s), (n_win, 2))
        path = np.clip(xy + np.cumsum(steps, axis=0), [0.3, 0.3], [11.7, 7.7])
        noise = rng.normal(0.0, model.sigma_db / np.sqrt(frames), (n_win, model.n_nodes))
        mu = model.mean_rssi(path, "ble") + noise
        pids += [f"p{k:02d}"] * n_win
        ts.append(np.arange(n_win, dtype=np.int64) * int(step_s * 1000))
        rssi.append(mu.astype(np.float32))
    r = np.concatenate(rssi)
    n = len(r)
    return Windows(
        np.array(pids),
        np.concatenate(ts),
        np.full(n, "ble"),
        r,
        np.full(r.shape, frames, np.uint8),
        np.full(n, frames, np.int64),
        5000,
    )


@pytest.mark.parametrize("d_true", [0.0005, 0.02])
def test_the_fit_recovers_how_far_people_drift(d_true: float) -> None:
    model = RadioModel.from_plan(ROOM)
    grid = WalkableGrid.build(ROOM, cell_m=0.5)
    win = drifting_people(model, d_true, seed=3)
    base = MotionParams()
    fitted, summary = calibrate_motion(model, win, grid, np.random.default_rng(0), base)
    assert summary["tracks"] == 40 and summary["steps"] == 40 * 60
    assert d_true / 3 <= fitted.dwell_diffusion_m2_s <= d_true * 3
    # over base's 0.01 m²/s (0 where the best grid point is 0.01 itself)
    assert summary["log_likelihood_gain"] >= 0
    if d_true < 0.002:
        assert summary["log_likelihood_gain"] > 50
    # only the dwelling coefficient is fitted
    assert dataclasses.replace(fitted, dwell_diffusion_m2_s=base.dwell_diffusion_m2_s) == base


def test_without_long_tracks_the_motion_model_stays_as_it_was() -> None:
    model = RadioModel.from_plan(ROOM)
    grid = WalkableGrid.build(ROOM, cell_m=0.5)
    win = drifting_people(model, 0.001, seed=1)
    short = win.take(np.flatnonzero(win.t_ms < 30_000))  # 6 windows per phone
    fitted, summary = calibrate_motion(model, short, grid, base=MotionParams())
    assert fitted == MotionParams() and summary == {"tracks": 0.0}


def test_the_parabola_peak_lies_between_grid_points_and_stays_at_an_edge() -> None:
    x = np.log10(np.array(DWELL_D_GRID))
    y = -((x - (-2.7)) ** 2)
    assert _parabola_peak(x, y) == pytest.approx(-2.7, abs=1e-9)
    assert _parabola_peak(x, x) == x[-1]  # rising to the end: the end
