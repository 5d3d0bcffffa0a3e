"""Radio calibration: node beacons found without a key, links fitted, walks fitted,
the phone level re-centred, and the simulator's node beacons in the captures."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from heatmap import calibration
from heatmap.simulate import accuracy_harness as harness
from heatmap.simulate import node_beacons
from heatmap.simulate.scenario import Scenario
from heatmap.spatial.floorplan import load_default
from heatmap.spatial.radio_model import RadioModel
from heatmap.spatial.walkable_grid import WalkableGrid
from sensing.capture.ble_decode import BleDecoder
from sensing.capture.capture_file import CaptureReader
from sensing.capture.decoded import BleAddrType
from sensing.wire.observation import KIND_SHIFT, DeviceKind, Flag

BEACON_PUBLIC = int(DeviceKind.BEACON) << KIND_SHIFT
PHONE = (int(DeviceKind.APPLE) << KIND_SHIFT) | int(Flag.BLE_RANDOM) | int(Flag.RANDOMIZED)


def beacon_rows(sc: Scenario, distractor: bool = True) -> dict[str, np.ndarray]:
    """Observation rows of the nodes' beacons (pids unknown to the aggregator), plus a
    third-party public iBeacon stuck next to node n3 and a phone."""
    plan = load_default()
    rng = np.random.default_rng([sc.seed, node_beacons.RNG_STREAM])
    t, tx = node_beacons.beacon_times(plan, sc.duration_s, rng)
    rssi = node_beacons.received(plan, sc, tx, rng)
    e, j = np.nonzero(~np.isnan(rssi))
    pids = np.array([f"{h:016x}" for h in rng.integers(0, 2**63, len(plan.nodes))])
    rows = {
        "t_ms": sc.t0_ms + (t[e] * 1000).astype(np.int64),
        "node": j.astype(np.int64),
        "pid": pids[tx[e]],
        "rssi": rssi[e, j],
        "flags": np.full(len(e), BEACON_PUBLIC, np.int64),
        "truth": {str(p): i for i, p in enumerate(pids)},
    }
    if distractor:  # heard by every node, loudest at n3 (index 2)
        n = 400
        node = np.tile(np.arange(6), n)
        level = np.array([-80, -78, -50, -85, -83, -75.0])[node] + rng.normal(0, 3, node.size)
        for k, v in (
            ("t_ms", sc.t0_ms + np.repeat(np.arange(n), 6) * 3000),
            ("node", node),
            ("pid", np.full(node.size, "ffffffffffffffff")),
            ("rssi", level),
            ("flags", np.full(node.size, BEACON_PUBLIC, np.int64)),
        ):
            rows[k] = np.concatenate([rows[k], v])
    return rows


def test_node_beacons_are_found_without_the_key() -> None:
    sc = Scenario(hours=0.5, seed=4)
    rows = beacon_rows(sc)
    model = RadioModel.from_plan(load_default())
    found = calibration.find_node_beacons(
        rows["pid"], rows["node"], rows["flags"], rows["rssi"], model
    )
    assert found == rows["truth"]  # every node, and not the iBeacon beside n3
    # phones are never candidates, whatever they look like
    assert not calibration.is_node_beacon_flags(np.array([PHONE])).any()


def test_pseudonyms_as_integer_codes_give_the_same_links() -> None:
    """The report reads pseudonyms as integer codes (heatmap.aggregator.obs_reader): beacons must
    be found, their links counted and their rows kept out of the phones' windows
    exactly as with the strings (a str() of a code once silently lost every link)."""
    sc = Scenario(hours=0.5, seed=4)
    rows = beacon_rows(sc)
    plan = load_default()
    model = RadioModel.from_plan(plan)
    names, codes = np.unique(rows["pid"], return_inverse=True)
    grid = WalkableGrid.build(plan, cell_m=1.0)
    out = {}
    for kind, pid in (("str", rows["pid"]), ("code", codes.astype(np.int32))):
        cal = calibration.calibrate_store(
            model,
            grid,
            rows["t_ms"],
            rows["node"],
            pid,
            rows["rssi"],
            np.full(len(pid), "ble"),
            rows["flags"],
            population=False,
        )
        assert cal.links is not None and cal.links.links > 0
        beacons = {(names[p] if kind == "code" else p): i for p, i in cal.beacons.items()}
        out[kind] = (beacons, cal.links.exponent, len(cal.windows))
    assert out["str"] == out["code"]
    assert out["code"][0] == rows["truth"]
    assert out["code"][2] > 0  # the iBeacon's windows, and no node beacon's


@pytest.mark.parametrize("shadowing", [4.0, 8.0])
def test_links_recover_the_exponent_and_shadowing(shadowing: float) -> None:
    plan = load_default()
    sc = harness.with_shadowing(Scenario(hours=2, seed=2), shadowing)
    model, rep = calibration.fit_links(harness.simulate_links(plan, sc), RadioModel.from_plan(plan))
    assert rep.links == 30
    assert model.exponent[0] == pytest.approx(sc.radio.path_loss_exponent, abs=0.2)
    assert model.sigma_db == pytest.approx(shadowing, abs=0.6)
    # no per-node gain in the simulated world: the fitted gains stay near 0
    assert np.ptp(model.p0["ble"]) < 1.5
    # the plan's level is kept: the phone level is the population's business
    assert model.p0["ble"].mean() == pytest.approx(plan.radio.p0_ble_dbm, abs=1e-6)


def test_walk_fit_recovers_a_known_model() -> None:
    plan = load_default()
    truth = RadioModel.from_plan(plan)
    truth = truth.replace(
        p0={**truth.p0, "ble": np.array([-58.0, -61, -57, -60, -62, -59])},
        exponent=np.full(6, 2.6),
        sigma_db=5.0,
    )
    rng = np.random.default_rng(1)
    xy = np.column_stack([rng.uniform(1, 29, 3000), rng.uniform(1, 19, 3000)])
    rssi = truth.mean_rssi(xy, "ble") + rng.normal(0, 5.0, (3000, 6))
    missed = (rssi < truth.sensitivity_dbm) | (rng.random(rssi.shape) < truth.frame_loss)
    rssi[missed] = np.nan
    fitted, rep = calibration.fit_walk(RadioModel.from_plan(plan), xy, rssi, keep_level=False)
    np.testing.assert_allclose(fitted.p0["ble"], truth.p0["ble"], atol=1.5)
    np.testing.assert_allclose(fitted.exponent, 2.6, atol=0.12)
    assert fitted.sigma_db == pytest.approx(5.0, abs=0.3)
    assert rep.rms_db == pytest.approx(5.0, abs=0.5)


def test_population_recentres_the_phone_level() -> None:
    model = RadioModel.from_plan(load_default())
    offsets = np.random.default_rng(0).normal(3.0, 4.0, 200)
    new, info = calibration.fit_population(model, "ble", offsets)
    assert info["shift_db"] == pytest.approx(3.0, abs=0.7)
    assert new.p0["ble"] - model.p0["ble"] == pytest.approx(np.full(6, info["shift_db"]))
    assert new.offset_sigma_db == pytest.approx(4.0, abs=0.8)
    same, _ = calibration.fit_population(model, "ble", offsets[:5])
    assert same is model  # too few devices: nothing changes


def test_walk_file_and_walk_observations(tmp_path: Path) -> None:
    f = tmp_path / "walk.csv"
    f.write_text(
        "t_start,t_end,x,y\n"
        "2026-11-20T10:00:00+01:00,2026-11-20T10:00:30+01:00,3,4\n"
        "1795165230000,1795165260000,10,4\n"
    )
    pts = calibration.load_walk(f)
    assert [(p.x, p.y) for p in pts] == [(3.0, 4.0), (10.0, 4.0)]
    assert pts[0].t0_ms == 1795165200000
    t = np.array([1795165201000, 1795165202000, 1795165240000, 1795165240000, 1795165205000])
    pid = np.array(["w", "w", "w", "w", "x"])
    node = np.array([0, 1, 0, 0, 0])
    rssi = np.array([-60.0, -70.0, -72.0, -74.0, -50.0])
    assert calibration.find_walk_pid(pts, t, pid, exclude=set()) == "w"
    _xy, mean, k, s2, _sent = calibration.walk_observations(pts, t, node, pid, rssi, 2, "w")
    assert mean[0, 0] == -60 and mean[1, 0] == -73 and np.isnan(mean[1, 1])
    assert k[1, 0] == 2 and s2[1, 0] == 72.0**2 + 74.0**2
    bad = tmp_path / "bad.csv"
    bad.write_text("t_start,t_end,x,y\n2026-11-20T10:00:00,2026-11-20T10:00:30,3,4\n")
    with pytest.raises(ValueError, match="UTC offset"):
        calibration.load_walk(bad)


def test_simulated_captures_carry_node_beacons(tmp_path: Path) -> None:
    from heatmap.simulate.store_day import simulate

    plan = load_default()
    simulate(plan, Scenario(hours=0.05, seed=3), tmp_path)
    own = {node_beacons.node_address(plan.store_id, n.id): n.id for n in plan.nodes}
    for nd in plan.nodes:
        dec = BleDecoder()
        seen, last = set(), 0
        for rec in CaptureReader(tmp_path / "capture" / nd.id / "ble.pcap"):
            assert rec.t_ns >= last  # merged in time order
            last = rec.t_ns
            a = dec.decode(rec.linktype, rec.data, rec.t_ns // 1_000_000)
            assert a is not None
            if a.addr in own:
                assert a.kind == DeviceKind.BEACON and a.addr_type == BleAddrType.PUBLIC
                seen.add(own[a.addr])
        assert nd.id not in seen  # a node never hears itself
        assert len(seen) >= 4
