"""The guards behind ``footfall``'s bad-input table (issue 23, cases 6 and 9), one by one.

Fast: each names the piece that used to raise a foreign error, hang or run out of
memory, and checks it now raises a FootfallError naming the problem. The whole
command line against every bad input is ``tests/test_cli_bad_inputs.py``.
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import numpy as np
import pytest

from firmware_bridge.errors import ConfigError, FootfallError
from heatmap.aggregator import db_migrations, store_db
from heatmap.aggregator.db_migrations import DatabaseError
from heatmap.report.flows import flows_from_stays
from heatmap.report.store_report import check_plan_matches
from heatmap.spatial.floorplan import load_default, parse
from heatmap.spatial.walkable_grid import MAX_CELLS, WalkableGrid, grid_shape
from sensing.cli.main import main

T0_MS = 1_795_161_600_000


def _plan(outline: list[list[float]], store: str = "s", nodes: tuple[str, ...] = ("n1",)) -> dict:
    return {
        "store": {"id": store},
        "outline": {"points": outline},
        "nodes": [{"id": n, "x": 1.0 + i, "y": 1.0} for i, n in enumerate(nodes)],
    }


def test_a_floor_plan_a_billion_metres_wide_is_refused() -> None:
    big = 1e9
    with pytest.raises(ConfigError, match="from the origin"):
        parse(_plan([[0, 0], [big, 0], [big, big], [0, big]]))
    with pytest.raises(ConfigError, match="more than 2000 m across"):
        parse(_plan([[0, 0], [5000, 0], [5000, 10], [0, 10]]))
    assert parse(_plan([[0, 0], [1500, 0], [1500, 800], [0, 800]])).store_id == "s"


def test_a_grid_of_too_many_cells_is_refused_before_any_array_is_made() -> None:
    plan = load_default()  # 50 m × 25 m
    assert grid_shape(plan.bounds, 1.0) == (50, 25)
    started = time.monotonic()
    for cell in (0.01, 0.0, -1.0, float("nan"), float("inf")):
        with pytest.raises(ConfigError, match="cell"):
            WalkableGrid.build(plan, cell_m=cell)
    assert time.monotonic() - started < 1.0
    assert grid_shape(plan.bounds, 0.05) == (1000, 500)  # 500,000 cells: allowed
    with pytest.raises(ConfigError, match=f"more than {MAX_CELLS:,}"):
        grid_shape(plan.bounds, 0.03)


def _store(path: Path) -> None:
    db = store_db.StoreDB(path)
    rows = [[dt, f"{dt:016x}", -60, "ble", 0] for dt in range(0, 60_000, 1_000)]
    db.add_obs("n1", {"v": 1, "node": "n1", "seq": 1, "t0": T0_MS, "obs": rows})
    db.commit()
    db.close()


def test_opening_a_file_that_is_no_store_database_names_the_file(tmp_path: Path) -> None:
    good = tmp_path / "good.db"
    _store(good)
    (tmp_path / "empty.db").write_bytes(b"")
    (tmp_path / "text.db").write_text("not a database\n" * 100)
    (tmp_path / "adir").mkdir()
    newer = tmp_path / "newer.db"
    newer.write_bytes(good.read_bytes())
    with sqlite3.connect(newer) as c:
        c.execute(f"PRAGMA user_version = {db_migrations.LATEST + 1}")
    c.close()
    with sqlite3.connect(tmp_path / "foreign.db") as c:
        c.execute("CREATE TABLE t (x)")
    c.close()
    for name, words in (
        ("missing.db", "no such database"),
        ("empty.db", "empty file"),
        ("text.db", "not a usable SQLite database"),
        ("adir", "is a directory"),
        ("newer.db", "newer than this footfall"),
        ("foreign.db", "not a store database"),
    ):
        with pytest.raises(DatabaseError, match=words) as e:
            store_db.connect(tmp_path / name, readonly=True)
        assert str(tmp_path / name) in str(e.value)
    with pytest.raises(DatabaseError, match="is a directory"):
        store_db.connect(tmp_path / "adir")  # the aggregator's own open
    with pytest.raises(DatabaseError, match="newer than this footfall") as e:
        store_db.connect(newer)
    assert str(newer) in str(e.value)
    store_db.connect(good, readonly=True).close()


def test_flows_of_a_period_where_no_stay_is_long_enough_are_empty() -> None:
    # every run shorter than the minimum dwell: nothing left, no IndexError
    fm = flows_from_stays(np.array([3]), np.array([0]), np.array([1.0]), ("a", "b"))
    assert fm.transitions.sum() == 0 and fm.transitions.shape == (2, 2)


def test_another_stores_floor_plan_is_named_as_such(tmp_path: Path) -> None:
    _store(tmp_path / "s.db")
    other = parse(_plan([[0, 0], [8, 0], [8, 6], [0, 6]], "corner", ("k1", "k2")))
    conn = store_db.connect(tmp_path / "s.db", readonly=True)
    try:
        with pytest.raises(ConfigError, match="another store's floor plan"):
            check_plan_matches(other, conn, T0_MS, T0_MS + 60_000)
        check_plan_matches(load_default(), conn, T0_MS, T0_MS + 60_000)
        check_plan_matches(other, conn, 0, 1)  # nothing heard then: nothing to compare
    finally:
        conn.close()


@pytest.mark.parametrize(
    "argv",
    [
        ["keygen", "--out", "{d}/k", "--start-date", "someday"],
        ["keygen", "--out", "{d}/text.db/k"],
        ["report", "--db", "{d}/s.db", "--cell", "nan"],
        ["report", "--db", "{d}/s.db", "--since", "0", "--until", "9" * 25],
        ["report", "--db", "{d}/s.db", "--since", "0001-01-01T00:00"],
        ["report", "--db", "{d}/s.db", "--radio", "{d}/s.db"],
        ["report", "--db", "{d}/s.db", "--out", "{d}/text.db"],
        ["plan", "--frames", "0"],
        ["plan", "--add", "100000"],
        ["calibrate", "--db", "{d}/text.db"],
        ["calibrate", "--db", "{d}/s.db", "--since", "soon"],
        ["db", "vacuum", "--db", "{d}/empty.db"],
        ["db", "retention", "--db", "{d}/s.db", "--now", "0001-01-01"],
        ["db", "backup", "--db", "{d}/s.db", "--to", "{d}/text.db/b.db"],
        ["demo", "--hours", "nan"],
        ["simulate", "--out", "{d}/sim", "--start", "teatime"],
        ["provision", "certs", "--out", "{d}/pki", "--broker-host", ""],
        ["optout", "add", "--state-dir", "{d}/text.db", "02:00:00:00:00:01"],
    ],
    ids=lambda argv: " ".join(argv[:4])[:60],
)
def test_a_bad_argument_is_one_error_line(
    argv: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _store(tmp_path / "s.db")
    (tmp_path / "empty.db").write_bytes(b"")
    (tmp_path / "text.db").write_text("not a database\n" * 100)
    started = time.monotonic()
    assert main([a.format(d=tmp_path) for a in argv]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("footfall: error: "), err
    assert time.monotonic() - started < 5.0
    assert issubclass(DatabaseError, FootfallError)
