"""The accuracy harness against its committed baseline report (STYLE: seeded
scenarios through the real locators; ``bench/localize.py --write-baseline``
refreshes ``bench/baselines/localize.json`` when a change is meant)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from types import ModuleType

import pytest

from heatmap.simulate import kolakowski_harness as kolakowski
from heatmap.spatial.floorplan import load_default

ROOT = Path(__file__).resolve().parents[1]
BASELINE = json.loads((ROOT / "bench" / "baselines" / "localize.json").read_text())

pytestmark = pytest.mark.slow


def _bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_localize", ROOT / "bench" / "localize.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_quick_scenario_holds_its_baseline() -> None:
    got = _bench().quick(load_default())
    base = BASELINE["quick"]
    assert got["scenario"] == base["scenario"]
    med, ref = got["median_m"], base["median_m"]
    # ours: no regression (a little slack for BLAS rounding across machines)
    assert med["grid"] <= 1.1 * ref["grid"] + 0.05
    assert got["heatmap_r_1m"] >= base["heatmap_r_1m"] - 0.05
    # the goals on this scenario
    assert med["grid"] <= 0.7 * med["trilateration"]
    assert med["grid"] <= 1.3 * med["crb"]
    # deterministic baselines and bound: the same numbers
    for k in ("weighted_centroid", "trilateration", "crb"):
        assert med[k] == pytest.approx(ref[k], rel=0.05), k


def test_kolakowski_robot_test(shared_data: Path) -> None:
    """Real data: fitted on the calibration walk only, hyper-parameters as the bench
    chose them on the walk's hold-out; one run on the robot test."""
    base = BASELINE["kolakowski"]
    h = kolakowski.Hyper(**base["chosen_on_walk_holdout"])
    res = kolakowski.evaluate(shared_data / "ble-rss-kolakowski-apartment", h)
    m = res["methods"]
    assert isinstance(m, dict)
    assert m["grid"]["median_m"] <= 1.2  # the goal
    assert m["grid"]["median_m"] <= 0.7 * m["trilateration"]["median_m"]
    assert m["grid"]["median_m"] <= base["methods"]["grid"]["median_m"] + 0.1
