"""Opt-out: keyed hashes only on disk, and opted-out frames of real captures really
dropped before anything else sees them (no pseudonym computed, nothing learned)."""

from __future__ import annotations

import io
import os
import stat
from collections import Counter
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from scapy.utils import RawPcapReader

from firmware_bridge.errors import ConfigError
from sensing.capture.capture_file import read_records
from sensing.cli.main import main
from sensing.node.pipeline import NodeFilters, NodePipeline
from sensing.privacy.optout import (
    LIST_KEY_FILE,
    OPTOUT_FILE,
    ListKey,
    OptOutList,
    format_address,
    node_lists,
    parse_address,
)
from sensing.privacy.pseudonym import EpochSchedule, KeyRing, Pseudonymizer

DATA = Path(
    os.environ.get("FOOTFALL_DATA", Path(__file__).resolve().parents[2] / "shared" / "data")
)
BRNO1 = DATA / "wifi-probes-brno-esp32-occupancy/sc6-61_2024-03-14_position_1_1420-1720.pcap"
ADDR = bytes.fromhex("001b638445e6")


def spellings(addr: bytes) -> set[bytes]:
    h = addr.hex()
    pairs = [h[i : i + 2] for i in range(0, 12, 2)]
    text = {h, *(sep.join(pairs) for sep in ":-."), f"{h[:4]}.{h[4:8]}.{h[8:]}"}
    return {t.encode() for t in text} | {t.upper().encode() for t in text} | {addr, addr[::-1]}


def test_parse_address_spellings_and_errors_never_echo_input() -> None:
    for text in ("00:1B:63:84:45:E6", "00-1b-63-84-45-e6", "001b.6384.45e6", "001B638445E6"):
        assert bytes(parse_address(text)) == ADDR
    for bad in ("00:1b:63:84:45", "00:1b-63:84:45:e6", "zz:1b:63:84:45:e6", ""):
        with pytest.raises(ConfigError) as ei:
            parse_address(bad)
        assert bad == "" or bad not in str(ei.value)


def test_list_file_holds_tags_only_mode_0600_and_round_trips(tmp_path: Path) -> None:
    key, lst = node_lists(tmp_path)
    assert lst.add(ADDR) and not lst.add(ADDR)
    lst.add(bytes.fromhex("5a1b2c3d4e5f"))
    lst.save()
    for name in (LIST_KEY_FILE, OPTOUT_FILE):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o600
    blob = (tmp_path / OPTOUT_FILE).read_bytes() + (tmp_path / LIST_KEY_FILE).read_bytes()
    assert not any(s in blob for s in spellings(ADDR))
    key2, again = node_lists(tmp_path)
    assert again.tags == lst.tags and again.matches(ADDR) and key2.key_id == key.key_id
    assert again.remove(ADDR) and not again.remove(ADDR) and len(again) == 1


def test_a_list_made_with_another_key_is_refused(tmp_path: Path) -> None:
    _, lst = node_lists(tmp_path)
    lst.add(ADDR)
    lst.save()
    with pytest.raises(ConfigError, match="another list key"):
        OptOutList.load(tmp_path / OPTOUT_FILE, ListKey.ephemeral())
    (tmp_path / LIST_KEY_FILE).unlink()
    with pytest.raises(ConfigError, match=LIST_KEY_FILE):
        node_lists(tmp_path)


def test_cli_add_list_remove_stores_no_address(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    d = str(tmp_path)
    assert main(["optout", "list", "--state-dir", d]) == 0
    assert main(["optout", "add", "00:1B:63:84:45:E6", "--state-dir", d]) == 0
    monkeypatch.setattr("sys.stdin", io.StringIO("02-11-22-33-44-55\n"))
    assert main(["optout", "add", "-", "--state-dir", d]) == 0
    assert main(["optout", "add", "001b638445e6", "--state-dir", d]) == 0  # same device
    assert main(["optout", "list", "--state-dir", d]) == 0
    out = capsys.readouterr().out
    assert "randomized" in out and "2 opted-out addresses" in out
    assert main(["optout", "remove", "00:1b:63:84:45:e6", "--state-dir", d]) == 0
    assert main(["optout", "remove", "00:1b:63:84:45:e6", "--state-dir", d]) == 1
    assert main(["optout", "add", "not-an-address", "--state-dir", d]) == 1
    out, err = capsys.readouterr()
    assert "not on the opt-out list" in err and "not-an-address" not in err
    files = b"".join(f.read_bytes() for f in tmp_path.iterdir())
    for a in (ADDR, bytes.fromhex("021122334455")):
        assert not any(s in files for s in spellings(a))
        assert not any(s.decode("latin-1") in out for s in spellings(a) if len(s) > 6)


def _pipeline(tmp_path: Path, filters: NodeFilters | None = None) -> NodePipeline:
    sched = EpochSchedule(date(2024, 3, 13), 4, "UTC")
    ring = KeyRing(bytearray(range(32)), 0)
    return NodePipeline.for_node(Pseudonymizer(ring, sched), filters or NodeFilters(), tmp_path)


def test_opted_out_frames_of_a_real_capture_really_drop(tmp_path: Path) -> None:
    senders: Counter[bytes] = Counter()
    with RawPcapReader(str(BRNO1)) as rd:  # scapy's reader and a by-hand parse, not ours
        for data, _ in rd:
            it_len = int.from_bytes(data[2:4], "little")  # radiotap length, then 802.11
            senders[data[it_len + 10 : it_len + 16]] += 1
    fixed = [a for a, _ in senders.most_common() if not a[0] & 2][:3]
    rnd = [a for a, _ in senders.most_common() if a[0] & 2][:2]
    chosen = fixed + rnd
    for a in chosen:
        assert main(["optout", "add", format_address(a), "--state-dir", str(tmp_path)]) == 0

    recs = list(read_records(BRNO1))
    # without address chaining, so that "everyone else unchanged" holds frame by frame: with
    # it, an opted-out device's addresses are also never chained with anyone else's, which
    # rightly changes the pseudonyms a chain of the reference node would have published
    unchained = NodeFilters(chain_addresses=False)
    plain = NodePipeline(
        Pseudonymizer(KeyRing(bytearray(range(32)), 0), EpochSchedule(date(2024, 3, 13), 4, "UTC")),
        unchained,
    )
    pipe = _pipeline(tmp_path, unchained)
    hashed: list[bytes] = []
    real_pid = pipe.pseudo.ring.pid

    def spy(addr: bytes) -> str:
        hashed.append(addr)
        return real_pid(addr)

    pipe.pseudo.ring.pid = spy  # type: ignore[method-assign]
    out = [pipe.process(r) for r in recs]
    ref = [plain.process(r) for r in recs]

    assert pipe.rejects()["opted_out"] == sum(senders[a] for a in chosen)
    assert not set(hashed) & set(chosen)  # no pseudonym was ever computed for them
    assert pipe.infra is not None
    tags = {pipe.optout.key.tag(a) for a in chosen}  # type: ignore[union-attr]
    assert not tags & set(pipe.infra._cand)  # nor were they seen by the learner
    pairs = list(zip(out, ref, strict=True))
    assert all(o == r for o, r in pairs if o is not None)  # everyone else unchanged
    dropped = {r.pid for o, r in pairs if r is not None and o is None}
    assert len(dropped) == len(chosen)
    assert not dropped & {o.pid for o, _ in pairs if o is not None}


def test_a_running_node_picks_up_changes_on_tick(tmp_path: Path) -> None:
    recs = list(read_records(BRNO1))[:2000]
    pipe = _pipeline(tmp_path)
    probe = next(p for r in recs if (p := pipe.wifi.decode(r.linktype, r.data, 0)))
    assert main(["optout", "add", format_address(probe.addr), "--state-dir", str(tmp_path)]) == 0
    now = int(datetime(2024, 3, 14, 16, tzinfo=UTC).timestamp() * 1000)
    for r in recs[:10]:
        pipe.process(r)
    assert "opted_out" not in pipe.rejects()  # not yet reloaded
    pipe.tick(now)
    for r in recs:
        pipe.process(r)
    assert pipe.rejects()["opted_out"] > 0
    (tmp_path / OPTOUT_FILE).write_text("{broken")
    pipe.tick(now)  # a broken edit keeps the previous list, counted
    assert pipe.notes["optout_reload_error"] == 1 and len(pipe.optout or []) == 1


def test_a_replay_can_honour_an_existing_list_without_creating_state(tmp_path: Path) -> None:
    from sensing.privacy.optout import existing_optout

    assert existing_optout(tmp_path) is None and not any(tmp_path.iterdir())
    assert main(["optout", "add", "00:1b:63:84:45:e6", "--state-dir", str(tmp_path)]) == 0
    lst = existing_optout(tmp_path)
    assert lst is not None and lst.matches(ADDR)


def test_opted_out_frames_drop_with_address_chaining_on_too(tmp_path: Path) -> None:
    recs = list(read_records(BRNO1))[:4000]
    decode = _pipeline(tmp_path).wifi.decode
    senders = Counter(p.addr for r in recs if (p := decode(r.linktype, r.data, 0)))
    chosen = [a for a, _ in senders.most_common() if a[0] & 2][:2]
    for a in chosen:
        assert main(["optout", "add", format_address(a), "--state-dir", str(tmp_path)]) == 0
    pipe = _pipeline(tmp_path, NodeFilters(chain_addresses=True))
    assert pipe.chainer is not None
    for r in recs:
        pipe.process(r)
    assert pipe.rejects()["opted_out"] == sum(senders[a] for a in chosen)
