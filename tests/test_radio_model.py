"""Radio model: defaults from the plan, walls, the correction map, persistence."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from firmware_bridge.errors import ConfigError
from heatmap.spatial.floorplan import load_default
from heatmap.spatial.radio_model import RadioModel, ResidualMap


def test_levels_follow_distance_and_walls() -> None:
    plan = load_default()
    m = RadioModel.from_plan(plan)
    n6 = m.node_ids.index("n6")  # inside the fitting rooms (5 dB walls)
    inside_fit = m.mean_rssi(np.array([[26.0, 18.0]]), "ble")[0, n6]
    outside_fit = m.mean_rssi(np.array([[24.5, 12.5]]), "ble")[0, n6]
    d_in = np.sqrt(1.5**2 + 1.8**2)
    d_out = np.sqrt(1.5**2 + 4.0**2 + 1.8**2)  # through fitting_south_w
    free = 10 * 2.0 * np.log10(d_out / d_in)
    assert inside_fit - outside_fit == pytest.approx(free + 5.0, abs=1e-6)
    assert m.mean_rssi(np.zeros((0, 2)), "ble").shape == (0, 6)
    with pytest.raises(ConfigError):
        m.mean_rssi(np.zeros((1, 2)), "lora")


def test_residual_map_is_bilinear_and_zero_outside() -> None:
    vals = np.zeros((3, 3, 1))
    vals[1, 1, 0] = 4.0
    rm = ResidualMap(0.0, 0.0, 1.0, vals)
    got = rm.at(np.array([[1.0, 1.0], [0.5, 1.0], [0.5, 0.5], [5.0, 5.0]]))[:, 0]
    np.testing.assert_allclose(got, [4.0, 2.0, 1.0, 0.0])


def test_save_load_round_trip(tmp_path: Path) -> None:
    plan = load_default()
    m = RadioModel.from_plan(plan).replace(
        sigma_db=4.5, correction=ResidualMap(0.0, 0.0, 1.0, np.ones((2, 2, 6)))
    )
    m = m.with_walls(m.wall_attenuation + 1.0)
    back = RadioModel.load(m.save(tmp_path / "radio.json"), plan)
    xy = np.array([[3.0, 4.0], [20.0, 15.0]])
    np.testing.assert_allclose(back.mean_rssi(xy, "ble"), m.mean_rssi(xy, "ble"))
    assert back.sigma_db == 4.5
    other = m.replace(node_ids=("a", "b", "c", "d", "e", "f"))
    other.save(tmp_path / "other.json")
    with pytest.raises(ConfigError, match="footfall calibrate"):
        RadioModel.load(tmp_path / "other.json", plan)
    with pytest.raises(ConfigError, match="no such"):
        RadioModel.load(tmp_path / "missing.json")
