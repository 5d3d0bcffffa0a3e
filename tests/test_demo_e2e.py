"""`footfall demo` end to end against a real Mosquitto, and the user-facing CLI."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from sensing.wire import payloads, topics

from conftest import DemoRun

pytestmark = pytest.mark.slow


def test_demo_writes_heatmaps_report_and_database(demo_run: DemoRun) -> None:
    rep = demo_run.out / "report"
    for name in (
        "heatmap_total.png",
        "heatmap_vs_truth.png",
        "heatmap_1000.png",
        "summary.txt",
        "summary.json",
        "zones.csv",
    ):
        assert (rep / name).stat().st_size > 0, name
    with Image.open(rep / "heatmap_total.png") as im:
        assert im.size[0] >= 1000 and im.size[1] >= 600
    db = sqlite3.connect(demo_run.out / "aggregator" / "store.db")
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    res = demo_run.result
    # nothing lost, no dupes: what the nodes sent is what was stored (before the live
    # aggregator's hours let retention delete the passers-by's rows)
    assert res.observations == sum(r.observations for r in res.replays) > 0
    n_obs = db.execute("SELECT COUNT(*) FROM obs").fetchone()[0]
    assert 0 < n_obs < res.observations
    assert db.execute("SELECT COUNT(*) FROM aggregates WHERE kind = 'footfall'").fetchone()[0] > 0
    assert db.execute("SELECT COUNT(*) FROM rejects").fetchone()[0] == 0


def test_summary_against_ground_truth(demo_run: DemoRun) -> None:
    s = json.loads((demo_run.out / "report" / "summary.json").read_text())
    t, st = s["truth"], s["store"]
    assert t is not None and t["door_in"] > 20
    assert abs(st["visitors"] - t["door_in"]) <= max(3, 0.08 * t["door_in"])
    assert 0 < st["capture_rate"] < 1
    assert st["mean_dwell_s"] > 60
    # half an hour of 27 visitors: the heatmap's goal (r >= 0.9 at the resolution the
    # page states) is asserted over 90 busy minutes in test_live_aggregator; here the map
    # only has to point the right way (0.22 at 1 m, docs/report.md says why it is low)
    assert t["heatmap_pearson_r_1m"] > 0.1
    page = json.loads((demo_run.out / "report" / "report.json").read_text())
    assert page["truth"]["of"] == "shoppers"  # the staff who stay put are out of the map
    text = (demo_run.out / "report" / "summary.txt").read_text()
    assert "visitors (door beams, in)" in text and "heatmap Pearson r" in text


def test_every_mqtt_payload_follows_the_contract(demo_run: DemoRun) -> None:
    kinds: dict[str, int] = {}
    for topic, raw, _ in demo_run.mqtt.messages:
        if topic.startswith("homeassistant/"):
            kinds["discovery"] = kinds.get("discovery", 0) + 1
            continue
        t = topics.parse(topic)
        payloads.decode(t.kind, raw)  # raises if invalid
        kinds[t.kind] = kinds.get(t.kind, 0) + 1
    assert {
        "obs", "node_status", "door_events", "floor_events", "footfall", "zone_stats",
        "occupancy", "discovery",
    } <= set(kinds)  # fmt: skip


def test_published_aggregates_are_k_anonymous(demo_run: DemoRun) -> None:
    """What BI got at closing time: the day so far per zone (null below k devices, as the
    report of the same period from the same aggregates says), closed hours and the day."""
    s = json.loads((demo_run.out / "report" / "summary.json").read_text())
    msgs = [
        (topics.parse(t), json.loads(raw))
        for t, raw, _ in demo_run.mqtt.messages
        if raw and t.startswith("footfall/v1/demo/")  # the session's broker serves other tests
    ]
    zone_msgs = [(t.entity, p) for t, p in msgs if t.kind == "zone_stats"]
    assert {z for z, _ in zone_msgs} == set(s["zones"])
    for zone, p in zone_msgs:
        devices = s["zones"][zone].get("devices") or 0
        assert p["k"] == 5 and p["unit"] == "day" and not p["final"]
        assert (p["visits"] is None) == (devices < 5), (zone, p, devices)
        assert p["visits"] == s["zones"][zone].get("visits")
        assert p["occupancy"] is None or p["occupancy"] >= 0
    footfall = {t.entity: p for t, p in msgs if t.kind == "footfall"}
    assert "today" in footfall and "hour" in footfall
    closed = [e for e in footfall if e not in ("today", "hour")]  # none in half an hour
    assert all(footfall[e]["final"] and footfall[e]["unit"] == "hour" for e in closed)
    for p in footfall.values():
        for key in ("in", "out", "visitors", "passersby", "visits"):
            assert p.get(key) is None or p[key] >= 5 or p[key] == 0, (key, p)
    today = footfall["today"]
    assert today["visitors"] == s["store"]["door_in"] or today["visitors"] is None
    assert today["passersby"] == s["store"]["passersby"]


def test_cli_demo_on_a_fresh_output_dir(tmp_path: Path) -> None:
    """The README's main command, as a user runs it (private broker, progress off)."""
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "sensing.cli.main",
            "demo",
            "--hours",
            "0.2",
            "--out",
            str(tmp_path / "out"),
            "--quiet",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert r.returncode == 0, r.stderr
    assert "broker: mosquitto" in r.stdout
    assert str(tmp_path / "out" / "report" / "heatmap_total.png") in r.stdout
    assert (tmp_path / "out" / "report" / "heatmap_total.png").exists()


def test_demo_with_embedded_amqtt_broker(tmp_path: Path) -> None:
    """What a machine without mosquitto gets: the embedded pure-Python broker."""
    from heatmap.simulate.demo import default_scenario, run_demo

    res = run_demo(tmp_path / "out", default_scenario(0.1, seed=2), broker="amqtt")
    assert res.broker_kind == "amqtt"
    assert res.observations == sum(r.observations for r in res.replays) > 0
