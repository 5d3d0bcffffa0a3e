"""``footfall report``: the store report of a real store's database, from the command line.

Run on the database the demo's real pipeline wrote (nodes → Mosquitto → aggregator),
so the report of the same period must be the demo's own, figure for figure.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

import heatmap.spatial.data
from heatmap.aggregator import retention
from sensing.cli.main import main
from sensing.cli.report import day_ms, parse_local_time_ms

from conftest import DemoRun

pytestmark = pytest.mark.slow


def _sha(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


def test_report_of_the_demo_database_is_the_demo_report(
    demo_run: DemoRun, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = demo_run.out / "aggregator" / "store.db"
    before = _sha(db)
    out = tmp_path / "report"
    args = ["report", "--db", str(db), "--truth", str(demo_run.out / "sim" / "truth")]
    assert main([*args, "--out", str(out), "-q"]) == 0
    text = capsys.readouterr().out
    assert "footfall report: Demo Store" in text and "heatmap r =" in text
    demo = json.loads((demo_run.out / "report" / "summary.json").read_text())
    ours = json.loads((out / "summary.json").read_text())
    # the period defaults to the whole minutes the database holds: the demo's half hour,
    # reported from the live aggregator's aggregates as the demo reported it
    assert ours["period"] == demo["period"] and sum(ours["pieces"].values()) > 0
    for key in ("store", "zones", "moves", "truth", "grid", "pieces"):
        assert ours[key] == demo[key], key
    for name in ("heatmap_total.png", "zones.csv", "flows.csv", "summary.txt"):
        assert (out / name).stat().st_size > 0, name
    with Image.open(out / "heatmap_total.png") as im:
        assert im.size[0] > 800
    assert _sha(db) == before, "the report opened the store database read-only"


def test_report_with_a_calibrated_model_on_a_finer_grid(
    demo_run: DemoRun, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = demo_run.out / "aggregator" / "store.db"
    radio = tmp_path / "radio.json"
    assert main(["calibrate", "--db", str(db), "--out", str(radio)]) == 0
    assert "footfall report --radio" in capsys.readouterr().out
    out = tmp_path / "fine"
    # local store time without an offset: the demo's first quarter hour
    args = ["report", "--db", str(db), "--radio", str(radio), "--cell", "0.5", "--out", str(out)]
    args += ["--from", "rows"]
    assert main([*args, "--since", "2026-11-20T10:00", "--until", "2026-11-20T10:15", "-q"]) == 0
    text = capsys.readouterr().out
    assert "0.5 m cells" in text and "(calibrated)" in text
    s = json.loads((out / "summary.json").read_text())
    assert s["cell_m"] == 0.5
    assert s["period"] == "2026-11-20T10:00:00+01:00/2026-11-20T10:15:00+01:00"
    assert s["windows"] > 0 and sum(s["zone_person_seconds"].values()) > 0
    # the given model was used as it is: no node-link fit of its own over it
    assert "links" not in json.loads((out / "radio_model.json").read_text())


def test_the_day_and_its_week_survive_the_deletion_of_every_pseudonymous_row(
    demo_run: DemoRun, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Issue 17: after retention deleted every pseudonymous row, the report of the day and
    of its week give the same figures as before the deletion (they come from aggregates)."""
    db = tmp_path / "store.db"
    src = sqlite3.connect(demo_run.out / "aggregator" / "store.db")
    dst = sqlite3.connect(db)
    src.backup(dst)
    src.close()
    dst.close()

    def report(name: str, *period: str) -> dict[str, Any]:
        assert main(["report", "--db", str(db), "--out", str(tmp_path / name), "-q", *period]) == 0
        assert "from the stored aggregates" in capsys.readouterr().out
        return json.loads((tmp_path / name / "summary.json").read_text())

    day = ("--day", "2026-11-20")
    week = ("--since", "2026-11-16T00:00", "--until", "2026-11-23T00:00")
    before_day, before_week = report("day0", *day), report("week0", *week)
    conn = sqlite3.connect(db)
    t1 = conn.execute("SELECT MAX(t_ms) FROM obs").fetchone()[0]
    rep = retention.run(conn, t1 + 30 * 3_600_000, retention.RetentionPolicy())
    assert rep.expired_obs > 0
    for table in ("obs", "track_windows", "pid_class"):
        assert conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0] == 0, table
    conn.close()
    after_day, after_week = report("day1", *day), report("week1", *week)
    for key in ("store", "zones", "moves", "pieces"):
        assert after_day[key] == before_day[key], key
        assert after_week[key] == before_week[key], key
    assert before_day["pieces"] == {"day": 1, "hour": 0, "slot": 0}
    # the week is its one day here: the same counts
    for key in ("visitors", "passersby", "door_out", "visits_ended"):
        assert after_week["store"][key] == after_day["store"][key] is not None, key
    assert before_day["store"]["visitors"] == demo_run.result.report.store["visitors"]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--day", "2026-11-21"], "no observations in 2026-11-21 00:00"),
        (["--since", "2026-11-20T10:10", "--until", "2026-11-20T10:00"], "the period is empty"),
        (["--since", "yesterday"], "not ISO 8601"),
        (["--day", "21/11/2026"], "expected YYYY-MM-DD"),
        (["--day", "2026-11-20", "--until", "2026-11-20T12:00"], "--until goes with --since"),
        (["--cell", "0"], "a grid cell is between 0 and 5 m"),
    ],
)
def test_report_refuses_what_it_cannot_report(
    demo_run: DemoRun,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    extra: list[str],
    message: str,
) -> None:
    db = demo_run.out / "aggregator" / "store.db"
    assert main(["report", "--db", str(db), "--out", str(tmp_path / "r"), "-q", *extra]) == 1
    assert message in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


def test_report_from_the_aggregator_config(
    demo_run: DemoRun, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """What a nightly timer runs: the aggregator's own store.toml names db and plan."""
    floor = Path(heatmap.spatial.data.__file__).parent / "default_store.toml"
    cfg = tmp_path / "store.toml"
    db = demo_run.out / "aggregator" / "store.db"
    cfg.write_text(f'[aggregator]\nstore = "demo"\ndb = "{db}"\nfloor_plan = "{floor}"\n')
    out = tmp_path / "r"
    args = ["report", "--config", str(cfg), "--out", str(out), "-q"]
    assert main([*args, "--since", "2026-11-20T10:00", "--until", "2026-11-20T10:10"]) == 0
    s = json.loads((out / "summary.json").read_text())
    assert s["period"] == "2026-11-20T10:00:00+01:00/2026-11-20T10:10:00+01:00"
    # a period reaching back before the database's first row says so
    assert main([*args, "--since", "2026-11-20T08:00", "--until", "2026-11-20T10:05"]) == 0
    assert "holds no observation before 2026-11-20 10:00" in capsys.readouterr().out
    assert main([*args, "--day", "today"]) == 1  # the demo's day is not today
    assert "no observations in" in capsys.readouterr().err


def test_report_without_a_database(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["report", "--db", str(tmp_path / "nope.db")]) == 1
    assert "no such store database" in capsys.readouterr().err
    assert main(["report"]) == 1
    assert "which store database?" in capsys.readouterr().err


def test_store_local_times_and_days() -> None:
    tz = "Europe/Amsterdam"
    assert parse_local_time_ms("2026-11-20T10:00", tz) == parse_local_time_ms(
        "2026-11-20T09:00:00+00:00", tz
    )
    assert parse_local_time_ms("1795000000000", tz) == 1795000000000
    t0, t1 = day_ms("2026-03-29", tz)  # clocks go forward: a 23-hour day
    assert (t1 - t0) == 23 * 3_600_000
    assert t0 == parse_local_time_ms("2026-03-29T00:00", tz)
