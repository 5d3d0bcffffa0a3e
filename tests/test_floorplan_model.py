"""The floor plan file's typed model: typos, types and geometry are one-line errors that
name the key and the element; any document ends in a plan or one ConfigError; the JSON
Schema and docs/floorplan.md are what the model generates."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
import tomllib
from dataclasses import asdict
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator

from firmware_bridge.errors import ConfigError
from heatmap.spatial.floorplan import (
    Door,
    FloorPlan,
    Node,
    RadioDefaults,
    TileArray,
    Wall,
    Zone,
    load,
    parse,
)
from heatmap.spatial.floorplan_doc import EXAMPLE
from heatmap.spatial.floorplan_model import FloorPlanFile, RadioSpec
from sensing.cli import schema
from sensing.cli.main import main

ROOT = Path(__file__).resolve().parents[1]
DEFAULT = Path(str(resources.files("heatmap.spatial.data").joinpath("default_store.toml")))
GROCER = ROOT / "bench" / "layouts" / "corner_grocer.toml"
SCHEMA_FILE = ROOT / "docs" / "schemas" / "floorplan.schema.json"
DOC_FILE = ROOT / "docs" / "floorplan.md"


def default_doc() -> dict[str, Any]:
    return tomllib.loads(DEFAULT.read_text(encoding="utf-8"))


def error_of(edit: Any) -> str:
    d = default_doc()
    edit(d)
    with pytest.raises(ConfigError) as e:
        parse(d)
    return str(e.value)


# ---------------------------------------------------------------- the file as written


def _pt(p: list[float]) -> tuple[float, float]:
    return (float(p[0]), float(p[1]))


def _plain_plan(doc: dict[str, Any], source: str) -> FloorPlan:
    """The plan a file means, read without any validation: what load() must give."""
    first = doc["nodes"][0]["id"]
    shelves = []
    for s in doc.get("shelves", []):
        if "rect" in s:
            x0, y0, x1, y1 = (float(c) for c in s["rect"])
            shelves.append((s["id"], ((x0, y0), (x1, y0), (x1, y1), (x0, y1))))
        else:
            shelves.append((s["id"], tuple(_pt(p) for p in s["points"])))
    return FloorPlan(
        doc["store"]["id"],
        doc["store"].get("name", doc["store"]["id"]),
        doc["store"].get("timezone", "UTC"),
        tuple(_pt(p) for p in doc["outline"]["points"]),
        tuple(_pt(p) for p in doc["street"]["points"]) if "street" in doc else None,
        tuple(
            Wall(w["id"], _pt(w["points"][0]), _pt(w["points"][1]), float(w["attenuation_db"]))
            for w in doc.get("walls", [])
        ),
        tuple(shelves),
        tuple(
            Zone(z["id"], z.get("name", z["id"]), tuple(_pt(p) for p in z["points"]))
            for z in doc.get("zones", [])
        ),
        tuple(
            Node(
                n["id"],
                float(n["x"]),
                float(n["y"]),
                float(n.get("z", 3.0)),
                n.get("wifi_channel", 6),
            )
            for n in doc["nodes"]
        ),
        tuple(
            Door(
                d["id"],
                _pt(d["points"][0]),
                _pt(d["points"][1]),
                d.get("node", first),
                float(d.get("beam_gap_m", 0.1)),
            )
            for d in doc.get("doors", [])
        ),
        tuple(
            TileArray(
                t["id"],
                _pt(t["origin"]),
                float(t.get("tile_m", 0.5)),
                t["cols"],
                t["rows"],
                t.get("node", first),
            )
            for t in doc.get("tiles", [])
        ),
        RadioDefaults(**{k: float(v) for k, v in doc.get("radio", {}).items()}),
        source,
    )


@pytest.mark.parametrize("path", [DEFAULT, GROCER], ids=["default_store", "corner_grocer"])
def test_the_real_plans_load_as_written(path: Path) -> None:
    doc = tomllib.loads(path.read_text(encoding="utf-8"))
    assert load(path) == _plain_plan(doc, str(path))


def test_the_docs_example_is_a_valid_plan() -> None:
    doc = tomllib.loads(EXAMPLE)
    plan = parse(doc)
    assert plan == _plain_plan(doc, "<memory>")
    assert plan.nodes[1].z == 3.0 and plan.nodes[1].wifi_channel == 6  # the defaults
    assert plan.shelves[1][1] == ((2.0, 4.0), (8.0, 4.0), (8.0, 4.8), (2.0, 4.8))


def test_radio_defaults_agree() -> None:
    assert RadioSpec().model_dump() == asdict(RadioDefaults())


# ---------------------------------------------------------------- what a user gets wrong


def test_a_typo_in_a_key_names_the_valid_one() -> None:
    msg = error_of(lambda d: d["doors"][0].update(beam_gap=0.12))
    assert msg == "doors[0].beam_gap: unknown key (did you mean 'beam_gap_m'?)"


def test_a_renamed_required_key_is_reported_as_the_typo() -> None:
    msg = error_of(lambda d: d["nodes"][3].update(wifi_chanel=d["nodes"][3].pop("wifi_channel")))
    assert msg == "nodes[3].wifi_chanel: unknown key (did you mean 'wifi_channel'?)"
    msg = error_of(lambda d: d["nodes"][0].update(xx=d["nodes"][0].pop("x")))
    assert msg == "nodes[0].xx: unknown key (did you mean 'x'?)"


def test_an_unknown_table_names_the_nearest_or_the_valid_ones() -> None:
    msg = error_of(lambda d: d.update(streets=d.pop("street")))
    assert msg == "[streets]: unknown table (did you mean 'street'?)"
    msg = error_of(lambda d: d.update(pavement={"points": [[0, -1], [1, -1], [1, -2]]}))
    valid = "valid keys: doors, drawing, nodes, outline, radio"
    assert msg.startswith(f"[pavement]: unknown table ({valid}")
    msg = error_of(lambda d: d.update(node=d.pop("nodes")))
    assert msg == "[[node]]: unknown array of tables (did you mean 'nodes'?)"


def test_a_zone_and_a_shelf_sharing_an_id_names_both() -> None:
    def edit(d: dict[str, Any]) -> None:
        d["shelves"][1]["id"] = "counter"
        d["zones"][4]["id"] = "counter"

    assert error_of(edit) == "zones[4].id: duplicate id 'counter', also used by shelves[1]"


def test_wrong_types_say_what_was_found() -> None:
    msg = error_of(lambda d: d["nodes"][0].update(x="ten"))
    assert msg == "nodes[0].x: must be a number, not str 'ten'"
    msg = error_of(lambda d: d["tiles"][0].update(cols=8.0))
    assert msg == "tiles[0].cols: must be an integer, not float 8.0"
    msg = error_of(lambda d: d["nodes"][2].update(z=True))
    assert msg == "nodes[2].z: must be a number, not bool True"
    msg = error_of(lambda d: d["zones"][0].update(points=[[11, 0], [19, 0], [19, "3.5"]]))
    assert msg == "zones[0].points[2]: expected [x, y] in metres, got list [19, '3.5']"
    assert error_of(lambda d: d.update(walls={"id": "w"})) == "walls: must be an array, not dict"


def test_a_missing_required_key() -> None:
    assert error_of(lambda d: d["walls"][2].pop("attenuation_db")) == (
        "walls[2].attenuation_db: is required"
    )
    assert error_of(lambda d: d.pop("outline")) == "[outline]: missing table (required)"
    assert error_of(lambda d: d.pop("nodes")) == "[[nodes]]: missing array of tables (required)"


def test_a_self_intersecting_outline_or_zone() -> None:
    msg = error_of(lambda d: d["outline"].update(points=[[0, 0], [30, 20], [30, 0], [0, 20]]))
    assert msg.startswith("outline.points: polygon self-intersects (Self-intersection")
    msg = error_of(
        lambda d: d["zones"][2].update(points=[[11.5, 4], [18.5, 8], [18.5, 4], [11.5, 8]])
    )
    assert msg.startswith("zones[2] 'promo'.points: polygon self-intersects")


def test_a_node_outside_the_outline() -> None:
    msg = error_of(lambda d: d["nodes"][5].update(x=31.0))
    assert msg == "nodes[5] 'n6': node at (31.0, 16.5) is outside the store outline"


def test_ranges_name_the_element() -> None:
    assert error_of(lambda d: d["walls"][3].update(attenuation_db=70)) == (
        "walls[3] 'north'.attenuation_db: must be within 0..60 dB"
    )
    assert error_of(lambda d: d["doors"][1].update(beam_gap_m=0)) == (
        "doors[1].beam_gap_m: must be more than 0, not 0"
    )
    assert error_of(lambda d: d["radio"].update(path_loss_exponent=0.5)) == (
        "radio.path_loss_exponent: must be within 1..6, not 0.5"
    )
    assert error_of(lambda d: d["nodes"][1].update(wifi_channel=15)) == (
        "nodes[1] 'n2'.wifi_channel: 15 is not a Wi-Fi channel"
    )
    assert error_of(lambda d: d["nodes"][0].update(z=float("nan"))) == (
        "nodes[0].z: must be a finite number, not float nan"
    )


def test_a_shelf_is_a_rect_or_a_polygon() -> None:
    msg = error_of(lambda d: d["shelves"][2].update(points=[[1, 1], [2, 1], [2, 2]]))
    assert msg == "shelves[2] 'promo_table': give rect or points, not both"
    msg = error_of(lambda d: d["shelves"][2].pop("rect"))
    assert msg.startswith("shelves[2] 'promo_table': give rect = [x0, y0, x1, y1] or points")
    msg = error_of(lambda d: d["shelves"][1].update(rect=[7.0, 2.0, 2.0, 2.8]))
    assert msg == "shelves[1] 'checkout_counter'.rect: expected [x0, y0, x1, y1] with x1>x0, y1>y0"


# ---------------------------------------------------------------- any document


SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(-(10**20), 10**20)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=12)
)
KEYS = sorted(
    {"store", "outline", "street", "radio", "walls", "shelves", "zones", "nodes", "doors"}
    | {"tiles", "id", "name", "timezone", "points", "rect", "x", "y", "z", "wifi_channel"}
    | {"node", "beam_gap_m", "attenuation_db", "origin", "tile_m", "cols", "rows"}
)
KEY = st.sampled_from(KEYS) | st.text(min_size=1, max_size=10)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(KEY, inner, max_size=5),
    max_leaves=20,
)


def _paths(v: Any, at: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [at] if at else []
    if isinstance(v, dict):
        for k, x in v.items():
            out += _paths(x, (*at, k))
    elif isinstance(v, list):
        for i, x in enumerate(v):
            out += _paths(x, (*at, i))
    return out


def _parent(doc: Any, path: tuple[Any, ...]) -> Any:
    for p in path[:-1]:
        doc = doc[p]
    return doc


def ends_in_a_plan_or_one_config_error(doc: Any) -> None:
    try:
        plan = parse(doc)
    except ConfigError as e:
        msg = str(e)
        assert msg and "\n" not in msg and "Traceback" not in msg
    else:
        assert isinstance(plan, FloorPlan) and plan.nodes


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_any_edit_of_the_default_plan_ends_in_a_plan_or_one_config_error(data: Any) -> None:
    doc = default_doc()
    for _ in range(data.draw(st.integers(1, 3))):
        paths = _paths(doc)
        if not paths:
            break
        path = data.draw(st.sampled_from(paths))
        parent, key = _parent(doc, path), path[-1]
        op = data.draw(st.sampled_from(["delete", "rename", "replace"]))
        if op == "delete":
            del parent[key]
        elif op == "rename" and isinstance(parent, dict):
            parent[data.draw(KEY)] = parent.pop(key)
        else:
            parent[key] = data.draw(VALUES)
    ends_in_a_plan_or_one_config_error(doc)


@settings(max_examples=150, deadline=None)
@given(st.dictionaries(KEY, VALUES, max_size=8))
def test_any_document_ends_in_a_plan_or_one_config_error(doc: dict[str, Any]) -> None:
    ends_in_a_plan_or_one_config_error(doc)


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_any_table_of_the_right_keys_ends_in_a_plan_or_one_config_error(data: Any) -> None:
    doc = default_doc()
    kind = data.draw(st.sampled_from(["walls", "shelves", "zones", "nodes", "doors", "tiles"]))
    item = copy.deepcopy(data.draw(st.sampled_from(doc[kind])))
    for key in list(item):
        if data.draw(st.booleans()):
            item[key] = data.draw(VALUES)
    doc[kind].append(item)
    ends_in_a_plan_or_one_config_error(doc)


# ---------------------------------------------------------------- schema, docs, command line


def test_the_json_schema_validates_the_real_plans_and_rejects_a_typo() -> None:
    s = json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))
    Draft202012Validator.check_schema(s)
    v = Draft202012Validator(s)
    for doc in (default_doc(), tomllib.loads(GROCER.read_text()), tomllib.loads(EXAMPLE)):
        assert not list(v.iter_errors(doc))
    typo = default_doc()
    typo["doors"][0]["beam_gap"] = typo["doors"][0].pop("beam_gap_m")
    assert [e.message for e in v.iter_errors(typo)] == [
        "Additional properties are not allowed ('beam_gap' was unexpected)"
    ]
    streets = default_doc()
    streets["streets"] = streets.pop("street")
    assert not v.is_valid(streets)


def test_committed_schema_and_reference_are_the_generated_ones() -> None:
    assert SCHEMA_FILE.read_text(encoding="utf-8") == schema.render("floorplan"), (
        "docs/schemas/floorplan.schema.json is stale: "
        "footfall schema floorplan > docs/schemas/floorplan.schema.json"
    )
    assert DOC_FILE.read_text(encoding="utf-8") == schema.render("floorplan", markdown=True), (
        "docs/floorplan.md is stale: footfall schema floorplan --markdown > docs/floorplan.md"
    )


def test_the_reference_documents_every_key() -> None:
    doc = schema.render("floorplan", markdown=True)
    for heading in ("`[store]`", "`[radio]`", "`[[zones]]`", "`[[doors]]`", "`[[tiles]]`"):
        assert f"## {heading}" in doc
    assert "| `beam_gap_m` | float (> 0) | m | `0.1` | no |" in doc
    assert "| `attenuation_db` | float (0 … 60) | dB | — | yes |" in doc
    assert "#:schema" in doc and "footfall floorplan my_store.toml" in doc
    for name, field in FloorPlanFile.model_fields.items():
        assert field.description, name


def test_schema_command_prints_json_and_markdown(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["schema", "floorplan"]) == 0
    assert json.loads(capsys.readouterr().out)["title"] == "Floor plan file"
    assert main(["schema", "floorplan", "--markdown"]) == 0
    assert capsys.readouterr().out.startswith("# Floor plan file\n")


def test_schema_of_a_kind_not_written_yet_is_one_line(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(schema.KINDS, "node", "sensing.node.no_such_model:NodeFile")
    assert main(["schema", "node"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("footfall: error: no schema for 'node' files yet")
    assert err.count("\n") == 1
    monkeypatch.setitem(schema.KINDS, "store", "heatmap.spatial.floorplan_model:NoSuchFile")
    assert main(["schema", "store", "--markdown"]) == 1
    assert capsys.readouterr().err.startswith("footfall: error: no schema for 'store' files yet")


def test_floorplan_command_on_a_bad_file_is_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text(EXAMPLE.replace("beam_gap_m = 0.10", "beam_gap = 0.10"), encoding="utf-8")
    r = subprocess.run(
        [sys.executable, "-m", "sensing.cli.main", "floorplan", str(bad)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 1
    assert (
        r.stderr == "footfall: error: doors[0].beam_gap: unknown key (did you mean 'beam_gap_m'?)\n"
    )


def test_docstring_examples() -> None:
    import doctest

    from heatmap.spatial import floorplan_model

    result = doctest.testmod(floorplan_model)
    assert result.attempted > 0 and result.failed == 0
