"""Chaining rotating addresses on the node: the link rules, the epoch erasure, the
memory bound, arbitrary frame orders, and two real labelled phones (Baccichet et al.)."""

from __future__ import annotations

import os
import sys
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from heatmap.simulate import frames
from sensing.capture.address_chain import AddressChainer, ChainParams
from sensing.capture.capture_file import Record
from sensing.capture.chain_capture import chain_capture
from sensing.node.pipeline import NodeFilters, NodePipeline
from sensing.privacy.pseudonym import EpochSchedule, KeyRing, Pseudonymizer

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
from chain_baccichet import SUBDIR, score
from chain_score import pair_scores

DATA = Path(
    os.environ.get("FOOTFALL_DATA", Path(__file__).resolve().parents[2] / "shared" / "data")
)
SIG = b"\x01\x00\x01\x04\x02\x04\x0b\x16"
OTHER_SIG = b"\x01\x00\x01\x04\x82\x84\x8b\x96"
K0 = bytes(range(32))


def mac(i: int) -> bytes:
    return bytes((0x02, 0, 0, 0)) + i.to_bytes(2, "big")


# ------------------------------------------------------------------ the rules


def test_sequence_continuity_links_an_address_change() -> None:
    c = AddressChainer(ChainParams(rejoin_window_ms=0))
    assert c.wifi(0, mac(1), 100, -60, SIG, True) == mac(1)
    assert c.wifi(20, mac(1), 101, -61, SIG, True) == mac(1)
    # 40 s later, a new address whose counter goes on from 101: the same phone
    assert c.wifi(40_000, mac(2), 127, -58, SIG, True) == mac(1)
    assert c.wifi(40_020, mac(2), 128, -58, SIG, True) == mac(1)
    assert (c.chains, c.links) == (1, 1)


def test_same_layout_phones_with_jumping_counters_stay_apart() -> None:
    c = AddressChainer(ChainParams(rejoin_window_ms=0))  # sequence numbers only
    # two phones of one model scanning side by side, each with its own counter
    for k in range(10):
        t = k * 30_000
        a, b = mac(10 + k), mac(100 + k)
        assert c.wifi(t, a, 100 + 26 * k, -60, SIG, True) == mac(10)
        assert c.wifi(t + 5_000, b, 3000 + 26 * k, -62, SIG, True) == mac(100)
    # a third phone of the same model: its counter continues neither
    assert c.wifi(300_000, mac(999), 1500, -61, SIG, True) == mac(999)
    # a fourth whose counter would continue, but with another IE content
    assert c.wifi(300_100, mac(998), 100 + 26 * 10, -60, OTHER_SIG, True) == mac(998)
    assert c.links == 18


def test_burst_link_needs_one_candidate_and_global_addresses_are_never_linked() -> None:
    c = AddressChainer(ChainParams(rejoin_window_ms=0))
    c.wifi(0, mac(1), 5, -50, SIG, True)
    assert c.wifi(30, mac(2), 3000, -52, SIG, True) == mac(1)  # same burst, new counter
    c.wifi(10_000, mac(3), 10, -50, SIG, True)
    c.wifi(10_005, mac(4), 2000, -51, SIG, True)  # linked into mac(3)'s burst
    c.wifi(10_010, mac(5), 500, -50, OTHER_SIG, True)
    # two bursts of the same content at once: ambiguous, left apart
    c.wifi(20_000, mac(6), 1, -50, SIG, True)
    assert c.wifi(20_001, mac(7), 3333, -65, SIG, True) == mac(7)  # 15 dB apart: another
    assert c.wifi(20_010, mac(8), 999, -57, SIG, True) == mac(8)  # either's burst
    glob = bytes.fromhex("5c0a5b000001")
    assert c.wifi(20_020, glob, 1000, -60, SIG, False) == glob


def test_rejoin_only_when_the_content_is_alone() -> None:
    c = AddressChainer(ChainParams(rejoin_window_ms=120_000))
    c.wifi(0, mac(1), 5, -50, SIG, True)
    assert c.wifi(30_000, mac(2), 3000, -52, SIG, True) == mac(1)  # alone: rejoined
    c.wifi(40_000, mac(3), 50, -50, OTHER_SIG, True)
    assert c.wifi(43_000, mac(4), 2000, -50, OTHER_SIG, True) == mac(3)  # rejoined
    assert c.wifi(43_100, mac(5), 10, -70, OTHER_SIG, True) == mac(5)  # 20 dB off: another
    c.wifi(43_200, mac(4), 2001, -50, OTHER_SIG, True)
    # mac(5)'s chain overlaps mac(3)'s in time: two devices of that content, no rejoin
    assert c.wifi(60_000, mac(7), 1234, -50, OTHER_SIG, True) == mac(7)


def test_ble_rotation_is_linked_once_the_old_address_stayed_silent() -> None:
    c = AddressChainer()
    kind = b"\x01\x02\x00"
    for t in range(0, 60_000, 1000):  # a neighbour of the same kind, advertising throughout
        assert c.ble(t + 500, mac(10), -70, kind, True) == mac(10)
        if t < 10_000:
            assert c.ble(t, mac(1), -60, kind, True) == mac(1)
        else:  # mac(1) rotated to mac(2) at 10 s: mac(2) is its own until 15 s have shown
            # that mac(1) stopped while the neighbour did not
            want = mac(2) if t < 25_000 else mac(1)
            assert c.ble(t, mac(2), -61, kind, True) == want
    assert c.links == 1
    # two devices fall silent together, one new address: which one? left apart
    for t in range(60_000, 70_000, 1000):
        c.ble(t, mac(3), -65, kind, True)
        c.ble(t + 100, mac(4), -66, kind, True)
    for t in range(70_000, 100_000, 1000):
        assert c.ble(t, mac(5), -65, kind, True) == mac(5)
    # a public address is never linked
    for t in range(100_000, 130_000, 1000):
        assert c.ble(t, mac(6), -65, kind, False) == mac(6)
    assert c.links == 1


# ------------------------------------------------------------------ bounds and epochs


def test_memory_is_bounded_and_idle_chains_expire() -> None:
    p = ChainParams(max_chains=50, max_addrs=4, idle_ms=60_000)
    c = AddressChainer(p)
    for i in range(2000):
        c.wifi(i * 10, mac(i), (i * 7) & 0xFFF, -60, bytes((i % 7,)), True)
        assert c.open_chains <= 50
        assert len(c._by_addr) <= 50 * 4
    assert c.evicted > 0
    c.wifi(10_000_000, mac(60_000), 0, -60, SIG, True)
    assert c.open_chains == 1 and c.expired > 0
    assert len(c._by_addr) == 1


def _pipe(first_ms: int, chain: bool = True) -> NodePipeline:
    day = datetime.fromtimestamp(first_ms / 1000, UTC).date()
    sched = EpochSchedule(date.fromordinal(day.toordinal() - 1), 4, "UTC")
    return NodePipeline(
        Pseudonymizer(KeyRing(bytearray(K0), 0), sched),
        NodeFilters(learn_infrastructure=False, chain_addresses=chain),
    )


def _probe(addr: bytes, seq: int, t_ms: int, rssi: int = -60) -> Record:
    body = frames.probe_request_body(addr, seq, b"", [(1, b"\x02\x04\x0b\x16")], 6)
    data = frames.wifi_frame(body, 6, rssi)
    return Record(127, t_ms * 1_000_000, data, len(data))


def test_the_node_publishes_a_chain_beside_each_pid_and_forgets_it_at_the_roll() -> None:
    """Every row keeps its frame's own pseudonym (what localization needs); a rotated
    address's rows carry its chain head's pseudonym as ``chain``, the head's none."""
    t0 = int(datetime(2026, 12, 7, 3, 59, 0, tzinfo=UTC).timestamp() * 1000)
    pipe = _pipe(t0)
    ring = pipe.pseudo.ring
    a = pipe.process(_probe(mac(1), 100, t0))
    b = pipe.process(_probe(mac(2), 110, t0 + 20_000))
    b2 = pipe.process(_probe(mac(2), 111, t0 + 21_000))
    assert a is not None and b is not None and b2 is not None
    assert (a.pid, a.chain) == (ring.pid(mac(1)), None)
    assert (b.pid, b.chain) == (b2.pid, b2.chain) == (ring.pid(mac(2)), ring.pid(mac(1)))
    assert b.row()[-1] == a.pid and len(b.row()) == 6 and len(a.row()) == 5
    assert pipe.chain_stats()["chain_links"] == 1
    assert pipe.chainer is not None and set(pipe.chainer._by_addr) == {a.pid, b.pid}
    # the chainer holds pseudonyms of the epoch, never a raw address
    # 04:00 rolls the key: the next address continues the counter but is not linked
    c = pipe.process(_probe(mac(3), 120, t0 + 70_000))
    assert c is not None and pipe.pseudo.ring.epoch == 1
    assert (c.pid, c.chain) == (pipe.pseudo.ring.pid(mac(3)), None)
    assert pipe.chain_stats()["chains_open"] == 1
    # a roll by the wall clock alone erases the chains too
    pipe.tick(t0 + 70_000 + 86_400_000)
    assert pipe.pseudo.ring.epoch == 2 and pipe.chainer is not None
    assert pipe.chainer.open_chains == 0 and not pipe.chainer._by_addr


def test_chaining_off_publishes_every_address_on_its_own() -> None:
    t0 = int(datetime(2026, 12, 7, 12, 0, tzinfo=UTC).timestamp() * 1000)
    pipe = _pipe(t0, chain=False)
    a = pipe.process(_probe(mac(1), 100, t0))
    b = pipe.process(_probe(mac(2), 101, t0 + 1000))
    assert a is not None and b is not None and a.pid != b.pid
    assert a.chain is None and b.chain is None
    assert pipe.chain_stats() == {}


frame = st.tuples(
    st.integers(0, 10_000_000),  # t_ms
    st.integers(0, 40),  # address
    st.integers(-10, 5000),  # seq, out of range too
    st.one_of(st.none(), st.integers(-130, 30)),
    st.sampled_from([SIG, OTHER_SIG, b""]),
    st.booleans(),
    st.booleans(),  # BLE instead of Wi-Fi
)


@settings(max_examples=200, deadline=None)
@given(st.lists(frame, max_size=200), st.integers(1, 8), st.integers(1, 4))
def test_any_frame_order_is_chained_without_error(
    rows: list[tuple[int, int, int, int | None, bytes, bool, bool]], cap: int, addrs: int
) -> None:
    c = AddressChainer(ChainParams(max_chains=cap, max_addrs=addrs, idle_ms=100_000))
    seen: set[bytes] = set()
    for t, i, seq, rssi, content, rnd, ble in rows:
        a = mac(i)
        seen.add(a)
        head = c.ble(t, a, rssi, content, rnd) if ble else c.wifi(t, a, seq, rssi, content, rnd)
        assert head in seen
        assert c.open_chains <= cap and len(c._by_addr) + len(c._by_ble) <= cap * addrs
        index = c._by_ble if ble else c._by_addr
        assert index[a].head == head  # the address is in the chain it was answered with
    c.reset()
    assert c.open_chains == 0 and not c._by_addr and not c._by_ble
    assert not c._wifi_groups and not c._ble_groups


# ------------------------------------------------------------------ scoring and real data


def test_pair_scores_match_textbook_values() -> None:
    s = pair_scores([0, 0, 1, 1], [0, 0, 1, 2])  # sklearn's doc example: ARI 0.5714...
    assert s.ari == pytest.approx(4 / 7) and s.precision == 1.0 and s.recall == 0.5
    assert pair_scores([0, 0, 1, 1], [1, 1, 0, 0]).ari == pytest.approx(1.0)
    assert pair_scores([0, 1, 2, 3], [0, 0, 0, 0]).ari == pytest.approx(0.0)
    s = pair_scores([0, 0, 0, 1, 1, 1], [0, 0, 1, 1, 2, 2])
    assert (s.precision, s.recall) == (pytest.approx(2 / 3), pytest.approx(1 / 3))


def test_two_real_phones_chained_apart_and_together() -> None:
    files = [
        DATA / SUBDIR / "iPhone7-F_anonymized.pcap",
        DATA / SUBDIR / "OppoFindX3Neo-A_anonymized.pcap",
    ]
    res = score(files)
    chains, addrs = res["chains"], res["address = device"]
    assert chains.precision >= 0.99  # the two phones are never mixed
    assert chains.recall > 3 * addrs.recall and chains.ari > 0.5
    assert chains.clusters < addrs.clusters / 2


def test_chain_capture_labels_every_record() -> None:
    recs = [_probe(mac(1), 1, 1000), _probe(mac(2), 2, 1050), Record(127, 0, b"\x00", 1)]
    assert chain_capture(recs) == [0, 0, -1]
