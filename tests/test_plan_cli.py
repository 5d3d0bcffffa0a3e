"""``footfall plan`` and ``footfall calibrate`` from the command line."""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path

import numpy as np
import pytest
import tomli_w
from test_calibration import PHONE, beacon_rows

from heatmap.aggregator.store_db import StoreDB
from heatmap.simulate.scenario import Scenario
from heatmap.spatial.radio_model import RadioModel
from sensing.cli.main import main

DEFAULT_PLAN = (
    Path(__file__).resolve().parents[1] / "heatmap" / "spatial" / "data" / "default_store.toml"
)


def test_plan_prints_zones_and_draws(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "plan.png"
    assert main(["plan", "--add", "2", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "expected median error" in text and "checkout" in text and "with 2 more nodes" in text
    assert out.stat().st_size > 10_000 and f"drawn: {out.resolve()}" in text
    monkeypatch.chdir(tmp_path)  # the bundled plan's picture goes to the current folder
    assert main(["plan", "--layout", "4"]) == 0
    text = capsys.readouterr().out
    assert "a layout of 4 nodes" in text and (tmp_path / "demo-plan.png").stat().st_size > 10_000
    assert len(_suggested(text)) == 4


def _suggested(text: str) -> list[tuple[float, float]]:
    """The suggested node positions ``plan`` printed."""
    return [
        (float(m[1]), float(m[2]))
        for m in re.finditer(r"^ +\d+: \((-?[\d.]+), (-?[\d.]+)\)$", text, flags=re.M)
    ]


def staff_room_plan(path: Path) -> Path:
    """The bundled store with a 6 m deep room behind its north wall, which runs the
    store's full width: no door opens into it, no zone is in it (a stock room)."""
    doc = tomllib.loads(DEFAULT_PLAN.read_text())
    doc["outline"]["points"] = [[0, 0], [30, 0], [30, 26], [0, 26]]
    doc["walls"] += [
        {"id": "stock_east", "points": [[30, 20], [30, 26]], "attenuation_db": 14.0},
        {"id": "stock_north", "points": [[30, 26], [0, 26]], "attenuation_db": 14.0},
        {"id": "stock_west", "points": [[0, 26], [0, 20]], "attenuation_db": 14.0},
    ]
    path.write_text(tomli_w.dumps(doc))
    return path


@pytest.mark.parametrize("how", [["--add", "3"], ["--layout", "5"]])
def test_plan_puts_no_node_in_a_staff_room(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], how: list[str]
) -> None:
    """Before: two of three suggested nodes went into the stock room, the emptiest
    part of the map (23.5, 23.5) and (6.5, 23.5)."""
    floor = staff_room_plan(tmp_path / "shop.toml")
    assert main(["plan", "--floor", str(floor), *how]) == 0
    text = capsys.readouterr().out
    spots = _suggested(text)
    assert len(spots) == int(how[1])
    assert all(0 < x < 30 and 0 < y < 20 for x, y in spots), spots
    assert "no node in the room at x 0–30, y 20–26 m" in text
    assert "mean over the floor shoppers reach" in text
    assert (tmp_path / "shop-plan.png").stat().st_size > 10_000  # beside the plan


def _store_db(path: Path) -> None:
    sc = Scenario(hours=0.5, seed=4)
    rows = beacon_rows(sc)
    nodes = ["n1", "n2", "n3", "n4", "n5", "n6"]
    # a walk: one phone standing 60 s at each of three marked spots, heard by n1 and n2
    walk = [
        (sc.t0_ms + t0 + 2000 * i, nodes[j], lvl - 4 * j)
        for t0, lvl in ((0, -62), (60_000, -70), (120_000, -66))
        for i in range(30)
        for j in (0, 1)
    ]
    db = StoreDB(path)
    with db.conn:
        db.conn.executemany(
            "INSERT INTO obs (t_ms, node, pid, rssi, band, flags, sig) VALUES (?,?,?,?,?,?,?)",
            [
                (int(t), nodes[int(n)], str(p), round(float(r)), "ble", int(f), None)
                for t, n, p, r, f in zip(
                    rows["t_ms"],
                    rows["node"],
                    rows["pid"],
                    rows["rssi"],
                    rows["flags"],
                    strict=True,
                )
            ]
            + [(t, n, "0123456789abcdef", r, "ble", PHONE, None) for t, n, r in walk],
        )
    db.close()


def test_calibrate_from_a_database(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "store.db"
    _store_db(db)
    t0 = Scenario().t0_ms
    walk = tmp_path / "walk.csv"
    walk.write_text(
        "t_start,t_end,x,y\n"
        + "".join(
            f"{t0 + s},{t0 + s + 59_000},{x},{y}\n"
            for s, x, y in ((0, 5.0, 6.0), (60_000, 12.0, 4.0), (120_000, 8.0, 5.0))
        )
    )
    out, rep = tmp_path / "radio.json", tmp_path / "cal.json"
    args = ["calibrate", "--db", str(db), "--walk", str(walk), "--out", str(out)]
    assert main([*args, "--report", str(rep)]) == 0
    text = capsys.readouterr().out
    assert "node beacons found: 6 of 6" in text and "beacon walk: 3 points" in text
    model = RadioModel.load(out)
    assert np.isfinite(model.exponent).all() and "node links" in model.source
    assert json.loads(rep.read_text())["walk"]["points"] == 3
    assert main(["calibrate", "--db", str(tmp_path / "nope.db")]) == 1
