"""The Cramér–Rao bound and node placement: limits with known answers."""

from __future__ import annotations

import numpy as np
import pytest
import shapely

from heatmap.spatial import crb
from heatmap.spatial.floorplan import load_default
from heatmap.spatial.node_placement import Layout, suggest_layout
from heatmap.spatial.radio_model import RadioModel
from heatmap.spatial.walkable_grid import WalkableGrid


def test_tobit_information_limits() -> None:
    sigma = 6.0
    loud = crb.tobit_information(np.array([-40.0]), sigma, -92.0)
    assert loud[0] == pytest.approx(1 / sigma**2, rel=1e-6)  # never censored: a plain normal
    at = crb.tobit_information(np.array([-92.0]), sigma, -92.0)
    silent = crb.tobit_information(np.array([-140.0]), sigma, -92.0)
    assert silent[0] < at[0] < loud[0]
    assert silent[0] < 1e-6  # always missed: nothing to learn


def test_single_range_bound_matches_the_textbook() -> None:
    """One node, offset known, far above sensitivity: σ_d = (ln 10/10)(σ/n) d."""
    plan = load_default()
    m = RadioModel.from_plan(plan).replace(
        offset_sigma_db=1e-3, sensitivity_dbm=-300.0, frame_loss=0.0
    )
    m = m.replace(
        node_ids=m.node_ids[:1],
        node_xyz=np.array([[0.0, 0.0, 1.2]]),
        p0={"ble": m.p0["ble"][:1]},
        exponent=m.exponent[:1],
        walls=(),
    )
    d = 7.0
    fim = crb.fisher(m, np.array([[d, 0.0]]), frames=1.0)
    # information along the range direction only
    var_d = 1 / fim[0, 0, 0]
    expected = (np.log(10) / 10) * (m.sigma_db / m.exponent[0]) * d
    assert np.sqrt(var_d) == pytest.approx(expected, rel=1e-3)


def test_bound_falls_with_frames_and_nodes() -> None:
    plan = load_default()
    m = RadioModel.from_plan(plan)
    xy = np.array([[15.0, 10.0], [5.0, 3.0]])
    one = crb.rmse(crb.position_bound(m, xy, 1.0))
    four = crb.rmse(crb.position_bound(m, xy, 4.0))
    assert np.all(four < one) and np.all(four > one / 2.5)  # ~1/√frames, offset prior aside
    cov = np.array([[[1.0, 0.0], [0.0, 1.0]]])
    assert crb.median_error(cov)[0] == pytest.approx(np.sqrt(2 * np.log(2)), rel=1e-3)


def test_placement_lowers_the_bound_and_stays_inside() -> None:
    plan = load_default()
    grid = WalkableGrid.build(plan, cell_m=1.0)
    lay = Layout.build(plan, RadioModel.from_plan(plan), grid)
    before = lay.score(lay.fim)
    spots, after = lay.suggest(2)
    assert after < 0.9 * before
    assert all(plan.outline_polygon.contains(shapely.Point(*p)) for p in spots)
    zones = lay.zone_median_errors(lay.fim)
    assert set(zones) == {z.id for z in plan.zones} and all(0 < v < 20 for v in zones.values())
    spots6, score6 = suggest_layout(plan, RadioModel.from_plan(plan), grid, 6)
    assert len(spots6) == 6 and np.isfinite(score6)
