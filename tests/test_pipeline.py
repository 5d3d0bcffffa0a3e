"""Node pipeline on the real captures: every frame accounted for, filters in order,
nodes agreeing without talking, the wall-clock roll and the future-frame guard."""

from __future__ import annotations

import os
from dataclasses import replace
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from sensing.capture.capture_file import Record, read_records
from sensing.capture.decoded import BleAddrType, BleAdvert
from sensing.node.pipeline import NodeFilters, NodePipeline
from sensing.privacy.key_file import KeyFile
from sensing.privacy.optout import ListKey, OptOutList
from sensing.privacy.pseudonym import EpochSchedule, KeyRing, Pseudonymizer
from sensing.wire.observation import DeviceKind, Observation

DATA = Path(
    os.environ.get("FOOTFALL_DATA", Path(__file__).resolve().parents[2] / "shared" / "data")
)
BRNO1 = DATA / "wifi-probes-brno-esp32-occupancy/sc6-61_2024-03-14_position_1_1420-1720.pcap"
IPHONE_BLE = DATA / "ble-adv-nrf52-mitll-pact/iPhone_11-1_btle_sniffer_05-07-2020-125358.pcapng"
K0 = bytes(range(32))


def captures() -> list[Path]:
    return sorted(
        p for p in DATA.rglob("*") if p.is_file() and p.suffix in (".pcap", ".pcapng", ".cap")
    )


def pipeline_for(recs: list[Record], **kw: object) -> NodePipeline:
    """A pipeline whose epoch 0 holds the first frame (schedule: daily at 04:00 UTC)."""
    first = min(r.t_ns for r in recs) // 1_000_000
    start = datetime.fromtimestamp(first / 1000, UTC).date()
    sched = EpochSchedule(date.fromordinal(start.toordinal() - 1), 4, "UTC")
    return NodePipeline(Pseudonymizer(KeyRing(bytearray(K0), 0), sched), **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize("path", captures(), ids=lambda p: p.name[:32])
def test_every_frame_is_published_or_counted(path: Path) -> None:
    recs = list(read_records(path))
    pipe = pipeline_for(recs)
    out = [pipe.process(r) for r in recs]
    emitted = sum(o is not None for o in out)
    assert pipe.frames == len(recs) and pipe.emitted == emitted
    assert emitted + sum(pipe.rejects().values()) == len(recs), pipe.rejects()
    for o in out:
        if o is not None:
            assert len(o.pid) == 16 and o.rssi >= pipe.filters.min_rssi_dbm


def test_filters_apply_in_order_and_count_by_reason() -> None:
    recs = list(read_records(BRNO1))
    base = pipeline_for(recs, filters=NodeFilters(min_rssi_dbm=-120))
    probes = [p for r in recs if (p := base.wifi.decode(r.linktype, r.data, 0)) is not None]
    lab = [p for p in probes if p.addr[:3] == bytes.fromhex("dcfb48")]
    thr = min(p.rssi for p in lab if p.rssi is not None) + 1
    weak_lab = [p for p in lab if p.rssi is not None and p.rssi < thr]
    assert lab and weak_lab
    key = ListKey.ephemeral()
    optout = OptOutList(key)
    optout.add(weak_lab[0].addr)  # opted out AND weak AND infrastructure: opted_out wins
    pipe = pipeline_for(
        recs,
        filters=NodeFilters(min_rssi_dbm=thr, infrastructure=("dc:fb:48:*",)),
        optout=optout,
        list_key=key,
    )
    for r in recs:
        pipe.process(r)
    rej = pipe.rejects()
    n_opt = sum(p.addr == weak_lab[0].addr for p in probes)
    assert rej["opted_out"] == n_opt
    assert rej["infrastructure_configured"] == len(lab) - n_opt
    others = [p for p in probes if p.addr[:3] != bytes.fromhex("dcfb48")]
    assert rej["weak"] == sum(p.rssi is not None and p.rssi < thr for p in others)
    assert pipe.emitted == sum(p.rssi is not None and p.rssi >= thr for p in others)


def test_live_entry_points_match_the_record_path() -> None:
    recs = list(read_records(IPHONE_BLE))[:500] + list(read_records(BRNO1))[:500]  # 2020, 2024
    a, b = pipeline_for(recs), pipeline_for(recs)
    via_records = [a.process(r) for r in recs]
    via_decoded: list[Observation | None] = []
    for r in recs:
        t = r.t_ns // 1_000_000
        if r.linktype == 127:
            p = b.wifi.decode(r.linktype, r.data, t)
            via_decoded.append(b.process_probe(p) if p else None)
        else:
            adv = b.ble.decode(r.linktype, r.data, t)
            via_decoded.append(b.process_advert(adv) if adv else None)
    assert via_records == via_decoded
    assert sum(o is not None for o in via_records) > 900


def test_nodes_of_a_store_agree_on_a_real_capture_across_a_roll(tmp_path: Path) -> None:
    """Two nodes, same K_0, one started before the roll and one after it: same pids."""
    recs = list(read_records(BRNO1))
    roll = datetime(2024, 3, 14, 15, tzinfo=UTC)  # inside the capture (13:20-16:20 UTC)
    sched = (date(2024, 3, 13), 15, "UTC")
    a = KeyFile.provision(tmp_path / "a.key", *sched, key=K0)
    b = KeyFile.provision(tmp_path / "b.key", *sched, key=K0)
    pa = NodePipeline(Pseudonymizer(*a.load(), keyfile=a))
    pb = NodePipeline(Pseudonymizer(*b.load(), keyfile=b))
    late = [r for r in recs if r.t_ns >= roll.timestamp() * 1e9]
    assert 0 < len(late) < len(recs)
    obs_a = [pa.process(r) for r in recs]
    obs_b = [pb.process(r) for r in late]
    assert obs_a[len(recs) - len(late) :] == obs_b
    assert pa.pseudo.ring.epoch == pb.pseudo.ring.epoch == 1
    pids_before = {o.pid for o in obs_a[: len(recs) - len(late)] if o}
    pids_after = {o.pid for o in obs_b if o}
    assert pids_before and pids_after and not pids_before & pids_after  # unlinkable


def test_tick_rolls_the_key_without_frames() -> None:
    sched = EpochSchedule(date(2026, 11, 20), 4, "UTC")
    ring = KeyRing(bytearray(K0), 0)
    old = ring._key
    pipe = NodePipeline(Pseudonymizer(ring, sched))
    _, hi = sched.bounds_ms(0)
    pipe.tick(hi - 1)
    assert ring.epoch == 0
    pipe.tick(hi + 1)
    assert ring.epoch == 1 and bytes(old) == bytes(32)


def test_frame_far_in_the_future_cannot_roll_the_key() -> None:
    sched = EpochSchedule(date(2026, 11, 20), 4, "UTC")
    now = sched.bounds_ms(0)[0] + 3_600_000
    pseudo = Pseudonymizer(KeyRing(bytearray(K0), 0), sched, clock_ms=lambda: now)
    pipe = NodePipeline(pseudo)
    adv = BleAdvert(now, bytes.fromhex("c0ffee000001"), BleAddrType.RANDOM_STATIC, -60, 37, 0,
                    DeviceKind.UNKNOWN)  # fmt: skip
    assert pipe.process_advert(adv) is not None
    assert pipe.process_advert(replace(adv, t_ms=now + 400 * 86_400_000)) is None
    assert pseudo.ring.epoch == 0 and pipe.rejects()["future_epoch"] == 1
    assert pipe.process_advert(replace(adv, t_ms=now + 60_000)) is not None  # small skew ok


@pytest.mark.parametrize(
    "module",
    [
        "sensing.privacy.pseudonym",
        "sensing.privacy.optout",
        "sensing.capture.infrastructure_filter",
        "sensing.capture.live_wifi",
        "sensing.capture.live_ble",
        "sensing.node.pipeline",
    ],
)
def test_doctests_of_the_privacy_modules(module: str) -> None:
    import doctest
    import importlib

    res = doctest.testmod(importlib.import_module(module), optionflags=doctest.ELLIPSIS)
    assert res.failed == 0
