"""``footfall plan`` and ``footfall calibrate`` from the command line."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from test_calibration import PHONE, beacon_rows

from heatmap.aggregator.store_db import StoreDB
from heatmap.simulate.scenario import Scenario
from heatmap.spatial.radio_model import RadioModel
from sensing.cli.main import main


def test_plan_prints_zones_and_draws(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "plan.png"
    assert main(["plan", "--add", "2", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "expected median error" in text and "checkout" in text and "with 2 more nodes" in text
    assert out.stat().st_size > 10_000
    assert main(["plan", "--layout", "4"]) == 0
    assert "a layout of 4 nodes" in capsys.readouterr().out


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
            "INSERT INTO obs VALUES (?,?,?,?,?,?,?)",
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
