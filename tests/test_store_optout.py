"""The store-wide opt-out list: held by the aggregator, sent retained to every node
over the store's TLS broker, applied in place from the next frame; refused and counted
by reason when it cannot be trusted; never readable by BI."""

from __future__ import annotations

import heapq
import json
import shutil
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest

from heatmap.aggregator import config as aggregator_config
from heatmap.aggregator.daemon import AggregatorDaemon
from sensing.capture.capture_file import CaptureReader
from sensing.cli.main import main
from sensing.node import config as node_config
from sensing.node.ack_watch import Subscriptions
from sensing.node.clock_sync import FixedClock
from sensing.node.daemon import NodeDaemon
from sensing.node.pipeline import NodeFilters, NodePipeline
from sensing.privacy.key_file import KeyFile
from sensing.privacy.optout import LIST_KEY_FILE, ListKey, OptOutList, format_address
from sensing.privacy.pseudonym import Pseudonymizer
from sensing.privacy.store_optout import (
    STORE_OPTOUT_FILE,
    StoreOptOutWatch,
    edit_store_list,
    store_list_paths,
)
from sensing.runtime.mqtt_link import BrokerAddress, connect, make_client
from sensing.wire import optout_list, payloads, topics

from broker_fixtures import (
    STORE,
    T0_MS,
    Broker,
    StorePki,
    make_pki,
    node_toml,
    store_key,
    tls_broker,
    wait_for,
    write_capture,
)

pytestmark = pytest.mark.timeout(120)


def _records(capture: Path) -> list:  # type: ignore[type-arg]
    readers = [iter(CaptureReader(p)) for p in sorted(capture.glob("*.pcap"))]
    return list(heapq.merge(*readers, key=lambda r: r.t_ns))


def _message(payload: bytes) -> mqtt.MQTTMessage:
    m = mqtt.MQTTMessage(topic=topics.optout_topic(STORE).encode())
    m.payload = payload
    return m


# ------------------------------------------------------------------ verification


def test_a_list_that_cannot_be_trusted_is_refused_and_counted_by_reason(tmp_path: Path) -> None:
    key = ListKey.ephemeral()
    other = ListKey.ephemeral()
    lst = OptOutList(key)
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    w = StoreOptOutWatch(
        client, STORE, lst, tmp_path / "copy.json", Subscriptions(client).subscribe
    )
    tag = key.tag(bytes.fromhex("001b638445e6"))

    def signed(store: str = STORE, k: ListKey = key, issued: int = 2000) -> dict:  # type: ignore[type-arg]
        return optout_list.build(store, k.key_id, k.signing_key(), [tag], issued)

    good = signed()
    unsigned = {k: v for k, v in good.items() if k != "sig"}
    forged = {**good, "tags": []}  # the signature of another content
    cases = {
        "malformed": b'{"v":1,"store":"s1"',
        "unsigned": json.dumps(unsigned).encode(),
        "foreign_store": payloads.encode(signed(store="s2")),
        "other_key": payloads.encode(signed(k=other)),
        "bad_signature": json.dumps(forged).encode(),
    }
    for raw in cases.values():
        w._on_message(client, None, _message(raw))
    assert not w.apply() and not lst.tags
    assert dict(w.rejected) == dict.fromkeys(cases, 1)
    w._on_message(client, None, _message(payloads.encode(good)))
    assert w.apply() and lst.tags == {tag} and w.issued_ms == 2000
    w._on_message(client, None, _message(payloads.encode(signed(issued=1000))))
    assert not w.apply() and w.rejected["stale"] == 1 and lst.tags == {tag}
    w._on_message(client, None, _message(b""))  # an emptied retained message: nothing said
    assert not w.apply() and lst.tags == {tag}
    # the copy is the signed list itself, 0600, and a fresh watch applies it at start
    assert (tmp_path / "copy.json").stat().st_mode & 0o077 == 0
    lst2 = OptOutList(key)
    w2 = StoreOptOutWatch(client, STORE, lst2, tmp_path / "copy.json", w._subscribe)
    assert w2.load_copy() and lst2.tags == {tag}
    lst3 = OptOutList(other)  # a node with another list key refuses the copy as well
    w3 = StoreOptOutWatch(client, STORE, lst3, tmp_path / "copy.json", w._subscribe)
    assert not w3.load_copy() and w3.rejected["other_key"] == 1 and not lst3.tags


def test_the_store_list_updates_the_pipeline_in_place_from_the_next_frame(tmp_path: Path) -> None:
    """The pipeline holds the list's tag set: replacing the store-wide part in place drops
    the address from the next frame on, and the node's own entries stay."""
    cap = write_capture(tmp_path / "cap", frames_per_s=40, seconds=10)
    recs = _records(cap.dir)
    ring, sched = KeyFile(store_key(tmp_path / "store.key")).load()
    key = ListKey.ephemeral()
    lst = OptOutList(key)
    mine, store_wide = sorted(cap.macs)[:2]
    lst.add(mine)
    pipe = NodePipeline(Pseudonymizer(ring, sched), NodeFilters(), optout=lst)
    half = len(recs) // 2
    for r in recs[:half]:
        pipe.process(r)
    before = pipe.rejects().get("opted_out", 0)
    assert lst.apply_store(frozenset({key.tag(store_wide)})) == (1, 0)
    for r in recs[half:]:
        pipe.process(r)
    both = OptOutList(key)
    both.add(mine)
    both.add(store_wide)
    count = NodePipeline(
        Pseudonymizer(*KeyFile(tmp_path / "store.key").load()), NodeFilters(), optout=both
    )
    for r in recs[half:]:
        count.process(r)
    assert before > 0  # the node's own entry, from the start
    assert pipe.rejects()["opted_out"] - before == count.rejects()["opted_out"]
    # the store-wide list emptied: the node's own entry stays, the other goes
    assert lst.apply_store(frozenset()) == (0, 1) and lst.tags == {key.tag(mine)}
    assert len(lst.entries()) == 1


# ------------------------------------------------------------------ through the broker


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[StorePki, Broker]]:
    d = tmp_path_factory.mktemp("optout")
    p = make_pki(d / "pki")
    b = tls_broker(d / "broker", p).start()
    yield p, b
    b.stop()


def _store_toml(path: Path, p: StorePki, b: Broker) -> Path:
    tls = p.client("aggregator-s1")
    path.write_text(
        f'[aggregator]\nstore = "{STORE}"\ndb = "agg/store.db"\nstatus_interval_s = 0.5\n\n'
        f'[broker]\nhost = "127.0.0.1"\nport = {b.port}\n'
        f'ca = "{tls.ca}"\ncert = "{tls.cert}"\nkey = "{tls.key}"\n'
    )
    (path.parent / "agg").mkdir(mode=0o700, exist_ok=True)
    return path


@pytest.mark.slow
def test_the_list_reaches_two_nodes_through_the_tls_broker_and_both_drop_the_address(
    store: tuple[StorePki, Broker], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    p, b = store
    toml = _store_toml(tmp_path / "store.toml", p, b)
    cap = write_capture(tmp_path / "cap", frames_per_s=40, seconds=20, devices=12)
    warm = write_capture(tmp_path / "warm", frames_per_s=10, seconds=5, devices=5, seed=7)
    x = sorted(cap.macs)[0]

    # the privacy officer opts x out on the aggregator: keyed hashes only
    assert main(["privacy", "optout", "add", format_address(x), "--config", str(toml)]) == 0
    out = capsys.readouterr().out
    assert "opted out store-wide; 1 on the list" in out and "created the store's list key" in out
    cfg = aggregator_config.load(toml)
    key_path, list_path = store_list_paths(Path(cfg.db))
    assert list_path.stat().st_mode & 0o077 == 0 and key_path.stat().st_mode & 0o077 == 0
    assert format_address(x) not in list_path.read_text() and x.hex() not in list_path.read_text()
    assert main(["privacy", "optout", "list", "--config", str(toml)]) == 0
    assert "1 addresses opted out store-wide" in capsys.readouterr().out

    t_start = time.monotonic()  # the aggregator's clock: the capture's day (rows not expired)
    agg = AggregatorDaemon(cfg, clock=lambda: T0_MS / 1000 + 600 + time.monotonic() - t_start)
    agg.start()
    stop = threading.Event()
    t = threading.Thread(target=agg.run, args=(stop,), daemon=True)
    t.start()
    bi_got: list[str] = []
    bi_addr = BrokerAddress("127.0.0.1", b.port, p.client("bi-dash"))
    bi = make_client(bi_addr, f"bi-{time.monotonic_ns()}", v5=True)
    bi.on_message = lambda _c, _u, m: bi_got.append(m.topic)
    connect(bi, bi_addr)
    try:
        wait_for(lambda: agg.optout.published == 1, 10, "the list published")
        bi.subscribe(topics.optout_topic(STORE), qos=1)
        bi.subscribe(f"footfall/v1/{STORE}/#", qos=1)
        keyfile = store_key(tmp_path / "store.key")
        summaries = {}
        for node in ("n1", "n2"):
            state = tmp_path / f"state-{node}"
            state.mkdir(mode=0o700)
            shutil.copy2(key_path, state / LIST_KEY_FILE)  # the store's list key
            addr = BrokerAddress("127.0.0.1", b.port, p.client(f"node-{node}"))

            def run(capture: Path, name: str, state: Path, node: str = node,
                    addr: BrokerAddress = addr) -> object:  # fmt: skip
                conf = node_toml(
                    tmp_path / f"{node}-{name}.toml", addr, state, keyfile, node={"id": node},
                    wifi={"pcap": str(capture / "wifi.pcap")},
                    ble={"pcap": str(capture / "ble.pcap")},
                )  # fmt: skip
                d = NodeDaemon(node_config.load(conf), clock=FixedClock(True))
                return d.run(install_signals=False)

            # a first run hears the retained list from the broker and keeps a copy
            first = run(warm.dir, "warm", state)
            assert first.store_optout is not None  # type: ignore[attr-defined]
            assert first.store_optout["tags"] == 1, first.store_optout  # type: ignore[attr-defined]
            assert (state / STORE_OPTOUT_FILE).stat().st_mode & 0o077 == 0
            # the next run (a fresh spool, the kept list) applies it before its first
            # frame: every frame of x is dropped
            again = tmp_path / f"state-{node}-again"
            again.mkdir(mode=0o700)
            for f in (LIST_KEY_FILE, STORE_OPTOUT_FILE):
                shutil.copy2(state / f, again / f)
            summaries[node] = run(cap.dir, "cap", again)

        ring, sched = KeyFile(keyfile).load()
        lst = OptOutList(ListKey.load(key_path))
        lst.add(x)
        expected = NodePipeline(Pseudonymizer(ring, sched), NodeFilters(), optout=lst)
        for r in _records(cap.dir):
            expected.process(r)
        x_frames = expected.rejects()["opted_out"]
        assert x_frames > 50
        for node, s in summaries.items():
            assert s.state == "done"  # type: ignore[attr-defined]
            assert s.rejects["opted_out"] == x_frames, node  # type: ignore[attr-defined]
            assert s.store_optout["rejected"] == {}  # type: ignore[attr-defined]
        # what reached the store: both nodes' rows, none of x's pseudonym
        x_pid = ring.pid(x)
        wait_for(lambda: _rows(Path(cfg.db), "n2") > 0, 10, "n2's rows stored")
        with sqlite3.connect(cfg.db) as c:
            assert c.execute("SELECT COUNT(*) FROM obs WHERE pid = ?", (x_pid,)).fetchone()[0] == 0
        assert _rows(Path(cfg.db), "n1") > 0

        # remove: the aggregator publishes the new list at once (it watches the file)
        assert main(["privacy", "optout", "remove", format_address(x), "--config", str(toml)]) == 0
        wait_for(lambda: agg.optout.published == 2 and agg.optout.tags == 0, 10, "republished")
        time.sleep(0.5)
        # BI asked for the topic and for everything: it got the aggregator's status, no list
        assert bi_got and topics.optout_topic(STORE) not in bi_got
    finally:
        bi.loop_stop()
        bi.disconnect()
        stop.set()
        t.join(10)
        agg.stop()


def _rows(db: Path, node: str) -> int:
    with sqlite3.connect(db) as c:
        return int(c.execute("SELECT COUNT(*) FROM obs WHERE node = ?", (node,)).fetchone()[0])


def test_edit_store_list_refuses_a_list_of_another_key(tmp_path: Path) -> None:
    db = tmp_path / "store.db"
    lst, changed, created = edit_store_list(db, STORE, add=[bytes(6)], now_ms=5)
    assert (changed, created, lst.issued_ms) == (1, True, 5)
    lst, changed, _ = edit_store_list(db, STORE, add=[bytes(6)], now_ms=6)
    assert changed == 0 and lst.issued_ms == 5  # nothing changed: not signed again
    (tmp_path / LIST_KEY_FILE).unlink()
    ListKey.create(tmp_path / LIST_KEY_FILE)
    from firmware_bridge.errors import ConfigError

    with pytest.raises(ConfigError, match="other_key"):
        edit_store_list(db, STORE, remove=[bytes(6)])
