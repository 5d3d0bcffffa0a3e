"""Floor plan loading and validation: every error names its field."""

from __future__ import annotations

import copy
import subprocess
import sys
import tomllib
from importlib import resources
from pathlib import Path
from typing import Any

import pytest

from firmware_bridge.errors import ConfigError
from heatmap.spatial.floorplan import load, load_default, parse


def default_data() -> dict[str, Any]:
    return tomllib.loads(
        resources.files("heatmap.spatial.data").joinpath("default_store.toml").read_text()
    )


def test_default_store_matches_the_brief() -> None:
    plan = load_default()
    x0, y0, x1, y1 = plan.outline_polygon.bounds
    assert (x1 - x0, y1 - y0) == (30, 20)
    assert len(plan.nodes) == 6
    assert len(plan.zones) >= 8
    assert {"entrance", "checkout", "promo", "fitting_room"} <= {z.id for z in plan.zones}
    assert len(plan.doors) == 2 and all(d.beam_gap_m > 0 for d in plan.doors)  # two lanes
    assert len(plan.tiles) == 1 and len(plan.shelves) >= 6
    assert plan.street_polygon is not None and not plan.street_polygon.intersects(
        plan.outline_polygon.buffer(-0.01)
    )


def _broken(edit: Any) -> dict[str, Any]:
    d = copy.deepcopy(default_data())
    edit(d)
    return d


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (
            lambda d: d["outline"].update(points=[[0, 0], [30, 20], [30, 0], [0, 20]]),
            r"outline\.points: polygon self-intersects",
        ),
        (
            lambda d: d["nodes"][2].update(x=45.0),
            r"nodes\[2\] 'n3': node at \(45.0, 4.0\) is outside",
        ),
        (
            lambda d: d["zones"][0].update(points=[[20, 12], [26, 12], [26, 16], [20, 16]]),
            r"zones\[0\] 'entrance'.points: zone overlaps (wall|zone)",
        ),
        (lambda d: d["zones"][1].update(id="entrance"), r"zones\[1\]\.id: duplicate id 'entrance'"),
        (lambda d: d["nodes"][0].pop("x"), r"nodes\[0\]\.x: is required"),
        (lambda d: d["nodes"][0].update(x="five"), r"nodes\[0\]\.x: must be a number, not str"),
        (
            lambda d: d["doors"][0].update(points=[[14, 5], [16, 5]]),
            r"doors\[0\] 'main_w'.points: a door is one segment on the outline",
        ),
        (
            lambda d: d["walls"][0].update(attenuation_db=-3),
            r"walls\[0\] 'front_glass_w'\.attenuation_db",
        ),
        (
            lambda d: d["store"].update(timezone="Mars/Olympus"),
            r"store\.timezone: unknown time zone",
        ),
        (
            lambda d: d["street"].update(points=[[-5, -5], [40, -5], [40, 2], [-5, 2]]),
            r"street\.points: the street overlaps the store outline",
        ),
        (lambda d: d["nodes"][0].update(id="n 1"), r"nodes\[0\]\.id: "),
        (
            lambda d: d["tiles"][0].update(node="n9"),
            r"tiles\[0\] 'promo_tiles'\.node: no node 'n9'",
        ),
    ],
)
def test_validation_names_the_bad_field(edit: Any, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse(_broken(edit))


def test_zone_crossing_an_interior_wall_is_rejected() -> None:
    def edit(d: dict[str, Any]) -> None:
        d["zones"].append({"id": "straddle", "points": [[22, 15], [25, 15], [25, 18], [22, 18]]})
        d["zones"] = [z for z in d["zones"] if z["id"] not in ("fitting_room", "back_aisle")]

    with pytest.raises(ConfigError, match=r"'straddle'\.points: zone overlaps wall 'fitting_west'"):
        parse(_broken(edit))


def test_bad_toml_file_is_a_config_error(tmp_path: Path) -> None:
    p = tmp_path / "plan.toml"
    p.write_text("[store\nid = 1")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load(p)
    with pytest.raises(ConfigError, match="no such floor plan"):
        load(tmp_path / "missing.toml")


def test_cli_reports_error_and_exit_code(tmp_path: Path) -> None:
    bad = _broken(lambda d: d["nodes"][0].update(x=-7.0))
    import tomli_w

    p = tmp_path / "plan.toml"
    p.write_bytes(tomli_w.dumps(bad).encode())
    r = subprocess.run(
        [sys.executable, "-m", "sensing.cli.main", "floorplan", str(p)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 1
    assert r.stderr.startswith("footfall: error: nodes[0] 'n1': node at (-7.0, 5.0) is outside")
    assert "Traceback" not in r.stderr
    ok = subprocess.run(
        [
            sys.executable,
            "-m",
            "sensing.cli.main",
            "floorplan",
            str(resources.files("heatmap.spatial.data").joinpath("default_store.toml")),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert ok.returncode == 0 and "ok — store 'demo', 6 nodes" in ok.stdout
