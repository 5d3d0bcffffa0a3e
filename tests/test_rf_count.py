"""RF-only people counts (issue 20): chaining, static devices, the people-per-device
factor, the live hook's ``source: "rf"``, and a real Brno afternoon."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from heatmap.aggregator import rf_factor, rf_live, store_db
from heatmap.aggregator.publish.bi_payloads import footfall_payload
from heatmap.aggregator.rf_count import CountSettings, count_devices
from heatmap.aggregator.rf_devices import ChainSettings, Frames, chain_devices

T0 = 1_795_165_200_000  # an hour boundary
HOUR = 3_600_000
BENCH = Path(__file__).resolve().parents[1] / "bench"


def ble_rows(pid: str, t0_s: float, t1_s: float, rssi: float, step_s: float = 2.0) -> list:
    return [
        (T0 + int(t * 1000), "n1", pid, rssi, "ble", 1, None) for t in np.arange(t0_s, t1_s, step_s)
    ]


def test_rotation_is_linked_a_walk_out_of_range_is_not() -> None:
    rows = ble_rows("a1", 0, 600, -60) + ble_rows("a2", 602, 1200, -61)  # rotation
    rows += ble_rows("b1", 0, 300, -88) + ble_rows("b2", 302, 600, -88)  # fading at the edge
    d = chain_devices(Frames.from_rows(rows), ChainSettings())
    dev = d.device_of
    assert dev["a1"] == dev["a2"] and dev["b1"] != dev["b2"] and d.links == 1
    off = chain_devices(Frames.from_rows(rows), ChainSettings(link=False))
    assert off.n_devices == 4


def wifi_burst(pid: str, t_s: float, rssi: float) -> list:
    """One probe burst of an iPhone-like phone: one address, two frames at two nodes."""
    return [
        (T0 + int((t_s + k * 0.02) * 1000), n, pid, rssi + 2 * j, "wifi", 1, "ios-model-x")
        for j, n in enumerate(("n1", "n2"))
        for k in range(2)
    ]


def test_wifi_links_only_a_burst_with_no_rival_of_its_model() -> None:
    """Phones of one model send the same IE layout (``sig``) and scan minutes apart: a
    lone phone's bursts are linked; two such phones taking turns are not linked to
    each other, though each next burst is near in time and RSSI."""
    lone = wifi_burst("w1", 0, -60) + wifi_burst("w2", 60, -61)
    d = chain_devices(Frames.from_rows(lone), ChainSettings())
    assert d.device_of["w1"] == d.device_of["w2"] and d.links == 1
    pair = wifi_burst("x1", 0, -60) + wifi_burst("y1", 10, -62)
    pair += wifi_burst("x2", 70, -60) + wifi_burst("y2", 80, -62)
    d = chain_devices(Frames.from_rows(pair), ChainSettings())
    assert d.n_devices == 4 and d.links == 0, d.device_of
    greedy = chain_devices(Frames.from_rows(pair), ChainSettings(wifi_unique=False))
    assert greedy.device_of["x1"] == greedy.device_of["y1"]  # what the rule prevents


def test_static_devices_are_excluded_and_counted() -> None:
    rows = ble_rows("staff", 0, 4 * 3600, -60, 5.0)  # in all day
    rows += [(T0 + 3600_000, "n1", "fixed", -50, "ble", 0, None)]
    for i in range(20):  # 20 visitors of 5 min, spread over 4 h
        rows += ble_rows(f"v{i}", i * 700, i * 700 + 300, -65)
    c = count_devices(Frames.from_rows(rows), T0, T0 + 4 * HOUR, CountSettings(bin_ms=HOUR))
    assert c.static_devices == 1
    assert int(c.visitors.sum()) == 20 and int(c.passersby.sum()) == 1  # the lone fixed frame


def test_factor_fit_against_doors_and_headcount() -> None:
    f = rf_factor.fit_door(np.array([10.0, 20, 30]), np.array([12.0, 24, 36]))
    assert f.source == "door" and f.visitors == pytest.approx(1.2)
    with pytest.raises(rf_factor.ConfigError):
        rf_factor.fit_door(np.zeros(3), np.ones(3))
    rows = []
    for i in range(8):  # 8 phones inside for the whole 15 min
        rows += ble_rows(f"p{i}", -1200, 2400, -60)
    h = rf_factor.headcount(Frames.from_rows(rows), T0, 15, 10, CountSettings())
    assert h.source == "headcount" and h.occupancy == pytest.approx(10 / 8)
    with pytest.raises(rf_factor.ConfigError, match="arrived"):  # all inside before
        rf_factor.headcount(Frames.from_rows(rows), T0, 15, 10, CountSettings(), entered=3)
    for i in range(4):  # 4 more walk in during the count: 6 people did
        rows += ble_rows(f"n{i}", 120 + 60 * i, 2400, -60)
    e = rf_factor.headcount(Frames.from_rows(rows), T0, 15, 14, CountSettings(), entered=6)
    assert e.visitors == pytest.approx(6 / 4) and e.detail["visitor_devices"] == 4
    assert e.occupancy != e.visitors and e.passersby == e.occupancy
    with pytest.raises(rf_factor.ConfigError, match="busier"):
        rf_factor.headcount(Frames.from_rows(rows[:1]), T0 + 2 * HOUR, 15, 10, CountSettings())


def test_live_hook_applies_the_stored_factor_and_labels_rf(tmp_path: Path) -> None:
    db = store_db.connect(tmp_path / "store.db")
    rows = []
    for i in range(12):  # 12 visitors of 30 min from the hour on, and 30 passers-by
        rows += ble_rows(f"v{i:02d}", i * 240, i * 240 + 1800, -62)
    for i in range(30):
        rows += ble_rows(f"p{i:02d}", 60 + i * 100, 60 + i * 100 + 20, -88)
    db.executemany(
        "INSERT INTO obs (t_ms, node, pid, rssi, band, flags, sig) VALUES (?,?,?,?,?,?,?)", rows
    )
    rf_factor.store(db, rf_factor.Factor(1.5, 2.0, 1.5, "headcount"))
    db.commit()
    assert rf_factor.load(db).source == "headcount"
    store: dict = {"visitors": 99, "passersby": 99, "occupancy_source": "rf"}
    rf_live.apply(db, store, "hour", T0, T0 + HOUR, k=5)
    assert store["rf_count"]["visitor_devices"] == 12
    assert store["visitors"] == 18 and store["passersby"] == 60  # k applied
    assert store["rf_count"]["people_per_device"]["source"] == "headcount"
    p = footfall_payload(
        store, period="x", unit="hour", final=True, as_of=T0 + HOUR, k=5, doors=False
    )
    assert p["source"] == "rf" and p["visitors"] == 18 and "in" not in p
    occ = store["occupancy_mean"]
    assert store["person_seconds_inside"] == pytest.approx(occ * 3600, rel=0.01)
    # a day is the sum of its stored hours
    db.execute(
        "INSERT INTO aggregates VALUES ('footfall', 'h', 'store', ?, ?, ?, 0)",
        (T0, T0 + HOUR, json.dumps(store)),
    )
    day: dict = {}
    rf_live.apply(db, day, "day", T0 - 9 * HOUR, T0 + 15 * HOUR, k=5)
    assert (day["visitors"], day["passersby"]) == (18, 60)
    assert day["rf_count"]["visitor_devices"] == 12 and day["occupancy_source"] == "rf"
    few: dict = {}
    rf_live.apply(db, few, "hour", T0 + 2 * HOUR, T0 + 3 * HOUR, k=5)  # nobody: zeros
    assert few["visitors"] == 0 and few["passersby"] == 0
    db.close()


@pytest.mark.slow
def test_brno_afternoon_rf_count_beats_distinct_addresses() -> None:
    """Real data: 2024-03-07 afternoon (position 2), factor fitted on the three
    February days; RF head count per 10 min vs distinct addresses (bins with ≥ 3)."""
    sys.path.insert(0, str(BENCH))
    try:
        import rf_count_brno as brno  # type: ignore[import-not-found]
    finally:
        sys.path.remove(str(BENCH))
    if not (brno.DEFAULT_DATA / brno.BRNO).exists():
        pytest.skip("shared Brno data not present")
    days = [d for d in brno.load_days(brno.DEFAULT_DATA, chained=False)
            if d.day in (*brno.FIT_DAYS, "2024-03-07")]  # fmt: skip
    r = brno.evaluate(days, brno.FIT_DAYS, CountSettings())
    day = r["per_day"]["2024-03-07"]
    assert day["bins"] >= 20
    assert day["rf"] < 30 and day["rf"] < day["naive"] / 5 and day["rf"] < day["naive_k"] + 10


def test_calibrate_headcount_cli_stores_the_factor_in_the_db(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from sensing.cli.main import main

    cfg = tmp_path / "store.toml"
    cfg.write_text('[aggregator]\nstore = "demo"\ndb = "s.db"\n')
    db = store_db.connect(tmp_path / "s.db")
    rows = []
    for i in range(6):  # 6 phones inside through the count
        rows += ble_rows(f"p{i}", -600, 1500, -60)
    db.executemany(
        "INSERT INTO obs (t_ms, node, pid, rssi, band, flags, sig) VALUES (?,?,?,?,?,?,?)", rows
    )
    db.commit()
    db.close()
    at = "2026-11-20T09:00:00+00:00"  # T0
    assert main(["calibrate", "headcount", "--config", str(cfg), "--at", at, "--people", "9"]) == 0
    out = capsys.readouterr().out
    assert "people per device: visitors 1.500" in out
    assert "count who walks in during the same minutes too (--entered)" in out
    db = store_db.connect(tmp_path / "s.db", readonly=True)
    f = rf_factor.load(db)
    db.close()
    assert f.source == "headcount" and f.occupancy == pytest.approx(1.5)
    assert f.detail["people"] == 9 and f.detail["minutes"] == 15
    # bad inputs: one line each, exit 1, nothing stored over the good factor
    for argv, msg in [
        (["--people", "-3"], "--people -3"),
        (["--people", "9", "--minutes", "0"], "--minutes 0"),
        (["--people", "9", "--at", "2026-11-21T09:00:00+00:00"], "no observations"),
        (["--people", "9", "--at", "yesterday"], "not an ISO time"),
        (["--people", "9", "--entered", "-1"], "--entered -1"),
    ]:
        base = ["calibrate", "headcount", "--config", str(cfg), "--at", at]
        assert main(base + argv) == 1
        assert msg in capsys.readouterr().err
    cfg.write_text('[aggregator]\nstore = "demo"\ndb = "elsewhere.db"\n')
    assert main(["calibrate", "headcount", "--config", str(cfg), "--at", at, "--people", "9"]) == 1
    assert "no such database" in capsys.readouterr().err
    assert not (tmp_path / "elsewhere.db").exists()  # not created by asking
