"""The simulator writes real capture files: scapy and tshark read the fields we meant."""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from scapy.layers.bluetooth4LE import BTLE, BTLE_ADV, BTLE_RF
from scapy.layers.dot11 import Dot11, Dot11Elt, Dot11ProbeReq, RadioTap
from scapy.utils import RawPcapReader, rdpcap

from firmware_bridge.decoder import StreamDecoder
from firmware_bridge.protocol import DoorCrossing, Heartbeat, Hello
from heatmap.simulate.node_beacons import node_address
from heatmap.simulate.scenario import Scenario
from heatmap.simulate.store_day import SimResult, simulate
from heatmap.spatial.floorplan import load_default
from sensing.capture.ble_crc import ble_crc24


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> SimResult:
    return simulate(load_default(), Scenario(hours=0.25, seed=3), tmp_path_factory.mktemp("sim"))


def test_wifi_pcap_is_radiotap_probe_requests(sim: SimResult) -> None:
    pkts = rdpcap(str(sim.out / "capture" / "n1" / "wifi.pcap"))
    assert len(pkts) == sim.wifi_frames["n1"] > 0
    node_ch = load_default().node("n1").wifi_channel
    for p in pkts:
        assert p.haslayer(RadioTap) and p.haslayer(Dot11ProbeReq)
        rt = p[RadioTap]
        assert -95 <= rt.dBm_AntSignal <= -10
        assert rt.ChannelFrequency == 2407 + 5 * node_ch
        assert p[Dot11].addr1 == "ff:ff:ff:ff:ff:ff"
        assert p[Dot11Elt].ID == 0  # SSID element first


def test_ble_pcap_is_le_ll_with_phdr_and_valid_crc(sim: SimResult) -> None:
    pkts = rdpcap(str(sim.out / "capture" / "n1" / "ble.pcap"))
    assert len(pkts) == sim.ble_frames["n1"] > 0
    plan = load_default()
    nodes = {node_address(plan.store_id, n.id).hex(":") for n in plan.nodes}
    kinds = Counter()
    for p in pkts[:2000]:
        rf = p[BTLE_RF]
        assert rf.sig_power_valid and rf.crc_checked and rf.crc_valid
        assert rf.rf_channel in (0, 12, 39)
        assert p[BTLE].access_addr == 0x8E89BED6
        assert p.haslayer(BTLE_ADV)
        adv = p[BTLE_ADV]
        if adv.AdvA in nodes:  # another node's beacon: public, non-connectable
            assert (adv.TxAdd, adv.PDU_type) == (0, 2)
            kinds["node"] += 1
        else:  # a phone: resolvable private address, connectable
            assert (adv.TxAdd, adv.PDU_type) == (1, 0)
            assert int(adv.AdvA[:2], 16) >> 6 == 0b01
            kinds["phone"] += 1
        raw = bytes(p[BTLE])[4:]
        assert ble_crc24(raw[:-3]) == raw[-3:]
    assert kinds["phone"] > 100


def test_crc24_matches_the_real_boston_capture(shared_data: Path) -> None:
    """Our CRC-24 agrees with 6,950 CRC-valid adverts recorded by someone else."""
    ok = bad = 0
    for data, _ in RawPcapReader(str(shared_data / "ble-adv-hackrf-ice9-boston-ch38.pcap")):
        ll = data[10:]
        if ll[:4] != bytes.fromhex("d6be898e") or len(ll) < 9:
            continue
        n = ll[5]
        if ble_crc24(ll[4 : 6 + n]) == ll[6 + n : 9 + n]:
            ok += 1
        else:
            bad += 1
    assert (ok, bad) == (6950, 1032)  # the counts shared/data/README.md states


TSHARK = shutil.which("tshark")


@pytest.mark.skipif(TSHARK is None, reason="tshark not installed (CI installs it)")
def test_tshark_reads_the_fields_we_wrote(sim: SimResult) -> None:
    cap = sim.out / "capture" / "n2"
    ours = rdpcap(str(cap / "wifi.pcap"))
    out = subprocess.run(
        [
            TSHARK,
            "-r",
            str(cap / "wifi.pcap"),
            "-T",
            "fields",
            "-E",
            "separator=,",
            "-e",
            "wlan.fc.type_subtype",
            "-e",
            "wlan.ta",
            "-e",
            "radiotap.dbm_antsignal",
            "-e",
            "wlan_radio.frequency",
            "-e",
            "wlan.seq",
            "-e",
            "_ws.malformed",
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    ).stdout.splitlines()
    assert len(out) == len(ours)
    for line, p in zip(out, ours, strict=True):
        sub, ta, sig, freq, seq, malformed = line.split(",")
        assert int(sub, 16) == 4 and not malformed
        assert ta == p[Dot11].addr2 and int(sig) == p[RadioTap].dBm_AntSignal
        assert int(freq) == p[RadioTap].ChannelFrequency and int(seq) == p[Dot11].SC >> 4
    ble = subprocess.run(
        [
            TSHARK,
            "-r",
            str(cap / "ble.pcap"),
            "-T",
            "fields",
            "-E",
            "separator=,",
            "-e",
            "btle.advertising_header.pdu_type",
            "-e",
            "btle.advertising_address",
            "-e",
            "btle_rf.signal_dbm",
            "-e",
            "btle.crc.incorrect",
            "-e",
            "_ws.malformed",
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    ).stdout.splitlines()
    pk = rdpcap(str(cap / "ble.pcap"))
    assert len(ble) == len(pk)
    for line, p in zip(ble, pk, strict=True):
        pdu, adva, sig, crc_bad, malformed = line.split(",")
        assert int(pdu, 16) in (0, 2) and not crc_bad and not malformed
        assert adva == p[BTLE_ADV].AdvA and int(sig) == p[BTLE_RF].signal


def test_door_streams_decode_to_the_truth_within_beam_limits(sim: SimResult) -> None:
    crossings: list[int] = []
    for door in load_default().doors:
        path = sim.out / "capture" / door.node / f"door-{door.id}.uart"
        meta = json.loads(path.with_suffix(".uart.json").read_text())
        dec = StreamDecoder()
        frames = dec.feed(path.read_bytes())
        assert isinstance(frames[0].msg, Hello) and len(frames) == meta["frames"]
        assert dec.stats.as_dict()["frames"] == len(frames) and not dec.stats.rejects
        beats = [f for f in frames if isinstance(f.msg, Heartbeat)]
        assert len(beats) == int(0.25 * 3600)
        crossings += [f.msg.direction for f in frames if isinstance(f.msg, DoorCrossing)]
    with (sim.out / "truth" / "door_crossings.csv").open() as f:
        truth = [int(r["direction"]) for r in csv.DictReader(f)]
    assert truth and abs(crossings.count(1) - truth.count(1)) <= max(1, 0.02 * truth.count(1))
    assert abs(crossings.count(-1) - truth.count(-1)) <= max(1, 0.02 * truth.count(-1))


def test_truth_is_complete_and_holds_no_addresses(sim: SimResult) -> None:
    t = sim.out / "truth"
    z = np.load(t / "positions.npz")
    assert len(z["t"]) == len(z["person"]) == len(z["xy"]) > 0
    assert set(np.unique(z["role"])) == {"shopper", "passerby", "staff"}
    with (t / "zone_visits.csv").open() as f:
        zones = {r["zone"] for r in csv.DictReader(f)}
    assert {"entrance", "promo"} <= zones
    macs = {p[Dot11].addr2 for p in rdpcap(str(sim.out / "capture" / "n1" / "wifi.pcap"))}
    blob = b"".join(f.read_bytes() for f in t.rglob("*") if f.is_file() and f.suffix != ".npz")
    assert not any(m.encode() in blob for m in macs)


def test_the_store_clock_is_the_plans_time_zone(tmp_path: Path) -> None:
    """A plan in another time zone: the scenario's local start is that store's local time
    (the frames start at 12:00 in UTC-8, 20:00 UTC), not the scenario's default zone."""
    from dataclasses import replace
    from datetime import UTC, datetime

    from sensing.capture.capture_file import CaptureReader

    plan = replace(load_default(), timezone="Etc/GMT+8")
    simulate(plan, Scenario(hours=0.02, seed=1, start_local=datetime(2026, 11, 20, 12)), tmp_path)
    first = min(r.t_ns for r in CaptureReader(tmp_path / "capture" / "n1" / "ble.pcap"))
    start = datetime.fromtimestamp(first / 1e9, UTC)
    assert (start.hour, start.date().day) == (20, 20), start
