"""The store → centre bridge and the central broker (issue 18), with two real Mosquitto
processes on loopback, TLS and generated ACLs on both (tests/bridge_fixtures.py).

* the generated files start Mosquitto (and a broken one is seen not to);
* only the aggregates cross: not obs (pseudonyms), node status, door/floor events, Home
  Assistant discovery; retained flags arrive as published; MQTT 5 shared subscriptions
  of chain consumers get each aggregate once, and only what the ACL lets them read;
* the central ACL refuses a bridge certificate another store's topics (PUBACK 0x87),
  and everything a hand-edited bridge might forward beyond the aggregates;
* the centre away, the store broker restarted (cleanly, or killed after an autosave)
  meanwhile: every aggregate published arrives once the centre is back;
* bad CLI input ends in one error line.
"""

from __future__ import annotations

import json
import re
import shutil
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from firmware_bridge.errors import BrokerError
from heatmap.aggregator.broker import free_port
from sensing.cli.main import main
from sensing.provision.bridge_config import forwarded_topics, notification_topic
from sensing.provision.central_broker import AGGREGATE_READ_FILTERS

from bridge_fixtures import (
    AUDIT,
    PID,
    Collector,
    Msg,
    aggregates,
    build_rig,
    closed_hours,
    debian_main_conf,
    publish,
    start_rig,
    store_only,
    wait_saved,
)
from broker_fixtures import Broker, make_pki, tls_broker, wait_for

NOT_AUTHORIZED = 0x87
NO_SUBSCRIBERS = 0x10
"""PUBACK reason codes: below 0x80 the broker took the message"""


def accepted(codes: list[int]) -> bool:
    return all(c < 0x80 for c in codes)


HEX16 = re.compile(r"(?<![0-9a-f])[0-9a-f]{16}(?![0-9a-f])")


def _aggregate_topic(topic: str, store: str = "s1") -> bool:
    from paho.mqtt.client import topic_matches_sub

    return any(topic_matches_sub(f, topic) for f in forwarded_topics(store))


# ------------------------------------------------------------------ generated files start


def test_generated_files_start_mosquitto_and_the_bridge_connects(tmp_path: Path) -> None:
    out = tmp_path / "central"
    port = free_port()
    rc = main(
        [
            "provision", "central", "--stores", "s1,s2", "--out", str(out),
            "--host", "localhost", "--host", "127.0.0.1", "--bi", "hq",
            "--port", str(port), "--bind", "127.0.0.1", "--etc", str(out),
        ]
    )  # fmt: skip
    assert rc == 0
    for name in ("ca", "broker", "bridge-s1", "bridge-s2", "chain-main", "bi-hq"):
        assert (out / f"{name}.crt").exists() and (out / f"{name}.key").stat().st_mode & 0o077 == 0
    # installed as Debian would have it: the generated file in conf.d, unchanged
    work = tmp_path / "centre"
    (work / "conf.d").mkdir(parents=True)
    (work / "conf.d" / "footfall-central.conf").write_text((out / "mosquitto.conf").read_text())
    central = Broker(work, debian_main_conf(work, work / "conf.d"), port).start()

    bridge_conf = tmp_path / "footfall-bridge.conf"
    rc = main(
        [
            "provision", "bridge", "--store", "s1", "--central", f"127.0.0.1:{port}",
            "--ca", str(out / "ca.crt"), "--cert", str(out / "bridge-s1.crt"),
            "--key", str(out / "bridge-s1.key"), "--out", str(bridge_conf),
        ]
    )  # fmt: skip
    assert rc == 0
    store = tls_broker(tmp_path / "store", make_pki(tmp_path / "store-pki"))
    (tmp_path / "store" / "conf.d").mkdir()
    (tmp_path / "store" / "conf.d" / "footfall-bridge.conf").write_text(bridge_conf.read_text())
    store.conf.write_text(store.conf.read_text() + f"include_dir {tmp_path / 'store' / 'conf.d'}\n")
    store.start()
    try:
        # the shipped restart_timeout (5 60): the first attempt is immediate
        wait_for(lambda: "as bridge-s1 " in central.log(), 20, "bridge-s1 connected")
        assert "refused" not in store.log().lower(), store.log()
    finally:
        store.stop()
        central.stop()

    # the check can fail: one wrong line and Mosquitto refuses to start
    broken = tmp_path / "broken"
    (broken / "conf.d").mkdir(parents=True)
    bad = (out / "mosquitto.conf").read_text() + "bridge_protocol_version mqttv6\n"
    (broken / "conf.d" / "x.conf").write_text(bad)
    (broken / "main.conf").write_text(debian_main_conf(broken, broken / "conf.d"))
    run = subprocess.run(
        [shutil.which("mosquitto") or "/usr/sbin/mosquitto", "-c", str(broken / "main.conf")],
        capture_output=True,
        text=True,
        timeout=20,
    )
    assert run.returncode != 0 and "x.conf:" in run.stderr, run.stderr  # "Error found at ..."


# ------------------------------------------------------------------ what crosses


def test_only_the_aggregates_cross_with_their_retained_flags(tmp_path: Path) -> None:
    rig = start_rig(build_rig(tmp_path))
    try:
        audit = Collector(rig.central_addr(AUDIT), "audit", ["#"])
        shared = [
            Collector(rig.central_addr("chain-main"), f"chain-main-{i}",
                      [f"$share/chain/{f}" for f in AGGREGATE_READ_FILTERS])
            for i in range(2)
        ]  # fmt: skip
        # a consumer asking for everything gets what its ACL lets it read, no more
        greedy = Collector(rig.central_addr("chain-main"), "chain-main-greedy", ["$share/g/#"])
        wait_for(lambda: any(m.topic == notification_topic("s1") for m in audit.messages()))

        for cn, msgs in store_only("s1").items():
            codes = publish(rig.store_addr(cn), cn, msgs)
            assert cn.startswith("bi-") or accepted(codes), cn
        sent: list[Msg] = [m for i in range(3) for m in aggregates("s1", i)]
        cleared = sent[2].topic  # a closed hour: cleared from the retained store later
        sent.append(Msg(cleared, b"", True))
        assert accepted(publish(rig.store_addr("aggregator-s1"), "aggregator-s1", sent))
        # things at the centre a consumer must not read, shared subscription or not
        assert publish(
            rig.central_addr(AUDIT), AUDIT,
            [Msg("footfall/v1/s1/node/n1/obs", b"x", False), Msg("elsewhere/x", b"y", False)],
        ) == [0, 0]  # fmt: skip

        def arrived() -> bool:
            got = [m for m in audit.messages() if _aggregate_topic(m.topic)]
            return len(got) >= len(sent)

        wait_for(arrived, 20, "every aggregate at the centre")
        wait_for(lambda: sum(len(c.messages()) for c in shared) >= len(sent), 20, "consumers")
        at_centre = audit.messages()

        # exactly the aggregates, each once, retained as published
        crossed = [m for m in at_centre if m.topic.startswith("footfall/v1/")]
        assert Counter(crossed) == Counter([*sent, Msg("footfall/v1/s1/node/n1/obs", b"x", False)])
        others = {m.topic for m in at_centre if not m.topic.startswith("footfall/v1/")}
        assert others == {notification_topic("s1"), "elsewhere/x"}
        assert not any(PID in m.payload.decode() for m in at_centre)
        assert not any(HEX16.search(m.payload.decode()) for m in at_centre)

        # the shared group: each aggregate to one of the two, both busy; ACL-filtered
        both = [m for c in shared for m in c.messages() if m.topic != notification_topic("s1")]
        assert Counter(both) == Counter(sent)
        assert all(len(c.messages()) > 0 for c in shared)
        greedy_topics = {m.topic for m in greedy.messages()}
        assert "footfall/v1/s1/node/n1/obs" not in greedy_topics
        assert "elsewhere/x" not in greedy_topics
        assert {m.topic for m in sent} <= greedy_topics

        # a BI client subscribing now: the latest of every topic, retained; the cleared one gone
        late = Collector(rig.central_addr("bi-hq"), "bi-hq", list(AGGREGATE_READ_FILTERS))
        latest = {m.topic: m for m in sent}
        latest.pop(cleared)
        wait_for(lambda: len(late.messages()) >= len(latest), 10, "the retained aggregates")
        assert {m.topic: m for m in late.messages()} == latest
        assert all(m.retain for m in late.messages())
        for c in (audit, greedy, late, *shared):
            c.close()
    finally:
        rig.stop()


def test_mqtt5_bridge_forwards_the_same(tmp_path: Path) -> None:
    rig = start_rig(build_rig(tmp_path, protocol="mqttv50"))
    try:
        assert "as bridge-s1 (p5," in rig.central.log()
        audit = Collector(rig.central_addr(AUDIT), "audit", ["footfall/v1/#"])
        sent = aggregates("s1", 7)
        publish(rig.store_addr("aggregator-s1"), "aggregator-s1", sent)
        publish(rig.store_addr("node-n1"), "node-n1", store_only("s1")["node-n1"])
        wait_for(lambda: len(audit.messages()) >= len(sent), 20, "the aggregates over MQTT 5")
        assert Counter(audit.messages()) == Counter(sent)
        audit.close()
    finally:
        rig.stop()


@pytest.mark.slow
def test_the_chain_consumer_reads_through_the_central_tls_and_acl(tmp_path: Path) -> None:
    """`footfall chain run` on a chain-main certificate, two MQTT 5 clients in a shared
    subscription: every aggregate that crossed the bridge is written, nothing rejected."""
    pytest.importorskip("chdb")
    rig = start_rig(build_rig(tmp_path))
    d, stats = rig.central_dir, tmp_path / "stats.json"
    proc = subprocess.Popen(
        [
            sys.executable, "-m", "sensing.cli.main", "chain", "run",
            "--broker", f"127.0.0.1:{rig.central.port}", "--ca", str(d / "ca.crt"),
            "--cert", str(d / "chain-main.crt"), "--key", str(d / "chain-main.key"),
            "--db", str(tmp_path / "chdb"), "--stats", str(stats), "--log-every", "1",
        ],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        wait_for(lambda: rig.central.log().count("u'chain-main'") >= 2, 30, "2 consumers")
        sent = [m for i in range(3) for m in aggregates("s1", i)]
        assert accepted(publish(rig.store_addr("aggregator-s1"), "aggregator-s1", sent))
        for cn, msgs in store_only("s1").items():
            publish(rig.store_addr(cn), cn, msgs)

        def counts() -> dict[str, Any]:
            c: dict[str, Any] = json.loads(stats.read_text()) if stats.exists() else {}
            return c

        wait_for(lambda: counts().get("accepted_total", 0) > len(sent), 30, "rows written")
        c = counts()
        assert c["rejected_total"] == 0, c
        assert c["accepted"]["footfall"] == 12 and c["accepted"]["bridge_state"] >= 1, c
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=60)
        rig.stop()
    assert proc.returncode == 0, out


# ------------------------------------------------------------------ the central ACL


def test_central_acl_refuses_a_bridge_other_stores_and_everything_but_aggregates(
    tmp_path: Path,
) -> None:
    # the stanza hand-edited to forward the whole store tree and discovery: the centre
    # still takes only the aggregates
    rig = build_rig(tmp_path)
    generated = (rig.store_broker.workdir / "conf.d" / "footfall-bridge.conf").read_text()
    edited = generated + "topic footfall/v1/s1/# out 1\ntopic homeassistant/# out 1\n"
    (rig.store_broker.workdir / "conf.d" / "footfall-bridge.conf").write_text(edited)
    start_rig(rig)
    try:
        audit = Collector(rig.central_addr(AUDIT), "audit", ["#"])
        bridge = rig.central_addr("bridge-s1")
        # the bridge's certificate (its own client id, so the bridge keeps running)
        codes = publish(
            bridge, "probe-bridge-s1",
            [
                Msg("footfall/v1/s1/occupancy", aggregates("s1", 0)[5].payload, True),
                Msg("footfall/v1/s2/occupancy", aggregates("s2", 0)[5].payload, True),
                Msg("footfall/v1/s2/footfall/hour", aggregates("s2", 0)[0].payload, True),
                Msg("footfall/v1/s1/node/n1/obs", b"{}", False),
                Msg("footfall/bridge/s2/state", b"0", True),
                Msg("homeassistant/device/s1/config", b"{}", True),
            ],
        )  # fmt: skip
        assert codes == [0] + [NOT_AUTHORIZED] * 5
        for cn in ("chain-main", "bi-hq"):  # readers write nothing
            assert publish(rig.central_addr(cn), f"probe-{cn}", [aggregates("s1", 1)[5]]) == [
                NOT_AUTHORIZED
            ]
        # a certificate of the store CA does not get in at all
        from sensing.runtime.mqtt_link import BrokerAddress

        foreign = BrokerAddress(
            "127.0.0.1", rig.central.port, rig.store_pki.client("aggregator-s1")
        )
        with pytest.raises(BrokerError):
            publish(foreign, "aggregator-s1", [])

        # what the edited bridge forwards beyond the aggregates is dropped at the centre
        for cn, msgs in store_only("s1").items():
            publish(rig.store_addr(cn), cn, msgs)
        sent = aggregates("s1", 2)
        publish(rig.store_addr("aggregator-s1"), "aggregator-s1", sent)
        # (a message matching two of its topic lines crosses twice: not counted here)
        wait_for(lambda: not Counter(sent) - Counter(audit.messages()), 20, "the aggregates")
        topics = {m.topic for m in audit.messages()}
        assert not any("/node/" in t or "/door/" in t or "/floor/" in t for t in topics)
        assert not any(t.startswith("homeassistant/") for t in topics)
        assert not any(PID in m.payload.decode() for m in audit.messages())
        audit.close()
    finally:
        rig.stop()


# ------------------------------------------------------------------ the centre away


@pytest.mark.slow
@pytest.mark.parametrize("store_restart", ["clean", "kill-9"])
def test_centre_away_and_store_restarted_nothing_lost(tmp_path: Path, store_restart: str) -> None:
    rig = start_rig(build_rig(tmp_path))
    try:
        consumer = Collector(
            rig.central_addr("chain-main"), "chain-main-0", list(AGGREGATE_READ_FILTERS),
            persistent=True,
        )  # fmt: skip
        wait_saved(rig.central)  # the consumer's session is on disk
        rig.central.kill9()

        agg = rig.store_addr("aggregator-s1")
        before = closed_hours("s1", 60) + [m for i in range(10) for m in aggregates("s1", i)]
        assert accepted(publish(agg, "aggregator-s1", before))
        if store_restart == "clean":
            rig.store_broker.stop()  # SIGTERM: Mosquitto saves its database
        else:
            wait_saved(rig.store_broker)  # a crash after the last autosave
            rig.store_broker.kill9()
        rig.store_broker.start()
        after = closed_hours("s1", 60, start=60) + [
            m for i in range(10, 20) for m in aggregates("s1", i)
        ]
        assert accepted(publish(agg, "aggregator-s1", after))

        rig.central.start()
        sent = before + after
        want = Counter(sent)

        def all_arrived() -> bool:
            return not (want - Counter(consumer.messages()))

        try:
            wait_for(all_arrived, 30, "every aggregate after the outage")
        except AssertionError:
            miss = want - Counter(consumer.messages())
            some = sorted({m.topic for m in miss})[:5]
            raise AssertionError(
                f"{sum(miss.values())} of {len(sent)} missing, e.g. {some}; "
                f"{len(consumer.messages())} arrived"
            ) from None
        got = consumer.messages()
        # the queue, not the retained re-sends, brought the earlier values of a topic
        assert len({m for m in got if m.topic.endswith("/occupancy")}) == 20
        # extra copies: Mosquitto queues the retained message of every forwarded topic
        # to the bridge at each connection attempt (also the failed ones while the centre
        # is away) and again once connected. Each is an earlier publication of its topic,
        # and every topic ends with its latest: a re-published aggregate replaces itself.
        assert set(got) <= set(sent) | {m for m in got if m.topic == notification_topic("s1")}
        last = {m.topic: m for m in got}
        assert all(last[m.topic] == m for m in {m.topic: m for m in sent}.values())
        print(f"{store_restart}: {len(sent)} published, {len(got)} arrived")
        consumer.close()
    finally:
        rig.stop()


# ------------------------------------------------------------------ bad input


def test_bad_input_ends_in_one_error_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "c"
    assert (
        main(["provision", "central", "--stores", "s1,s2", "--out", str(out), "--host", "h"]) == 0
    )
    capsys.readouterr()
    ca, k1, k2 = str(out / "ca.crt"), str(out / "bridge-s1.key"), str(out / "bridge-s2.key")
    c1 = str(out / "bridge-s1.crt")

    def argv(
        store: str = "s1", central: str = "h:8883", *, ca: str = ca, cert: str = c1, key: str = k1
    ) -> list[str]:
        return ["--store", store, "--central", central, "--ca", ca, "--cert", cert, "--key", key]

    cases = {
        "issued to 'bridge-s1', not 'bridge-s2'": argv("s2"),
        "is not the key of": argv(key=k2),
        "the port must be a number": argv(central="h:99999"),
        "expected HOST:PORT": argv(central="a b:1"),
        "not a readable PEM": argv(cert=str(out / "nope.crt")),
        "not a CA certificate": argv(ca=c1),
        "must match": argv("s/1"),
    }  # fmt: skip
    for expect, args in cases.items():
        assert main(["provision", "bridge", *args]) == 1, expect
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("footfall: error: ") and expect in err[0], err
    central_cases = {
        "given twice": "s1,s1",
        "must match": "s1,bad/id",
        "at least one": " , ",
    }
    (out / "ca.key").write_bytes((out / "bridge-s2.key").read_bytes())
    central_cases["is not the key of"] = "s1"
    for expect, stores in central_cases.items():
        assert (
            main(["provision", "central", "--stores", stores, "--out", str(out), "--host", "h"])
            == 1
        )
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("footfall: error: ") and expect in err[0], err


def test_adding_a_store_keeps_the_ca_and_the_certificates(tmp_path: Path) -> None:
    out = tmp_path / "c"
    assert main(["provision", "central", "--stores", "s1", "--out", str(out), "--host", "h"]) == 0
    before = {p.name: p.read_bytes() for p in out.glob("*.crt")}
    assert (
        main(["provision", "central", "--stores", "s1,s2", "--out", str(out), "--host", "h"]) == 0
    )
    after = {p.name: p.read_bytes() for p in out.glob("*.crt")}
    assert set(after) - set(before) == {"bridge-s2.crt"}
    assert all(after[n] == b for n, b in before.items())
    assert "user bridge-s2" in (out / "acl").read_text()
    assert (
        main(
            ["provision", "central", "--stores", "s1", "--out", str(out), "--host", "h", "--force"]
        )
        == 0
    )
    assert (out / "ca.crt").read_bytes() != before["ca.crt"]


def test_the_example_bridge_conf_is_what_the_generator_writes() -> None:
    from sensing.provision.bridge_config import BridgeSettings, bridge_conf_text

    d = Path("/etc/mosquitto/footfall/bridge")
    s = BridgeSettings(
        "demo",
        "mqtt.chain.example",
        8883,
        d / "ca.crt",
        d / "bridge-demo.crt",
        d / "bridge-demo.key",
    )
    example = Path(__file__).resolve().parents[1] / "deploy/mosquitto/footfall-bridge.example.conf"
    assert example.read_text() == bridge_conf_text(s)


@pytest.mark.slow
def test_without_a_persistent_bridge_session_the_outage_loses_the_queue(tmp_path: Path) -> None:
    """The control of the test above: the same outage with ``cleansession true`` (and
    ``local_cleansession true``) queues nothing for the bridge, so only what is retained
    (each topic's latest) reaches the centre."""
    rig = build_rig(tmp_path)
    text = (rig.store_broker.workdir / "conf.d" / "footfall-bridge.conf").read_text()
    assert "cleansession false\nlocal_cleansession false\n" in text
    text = text.replace("cleansession false\nlocal_cleansession false\n",
                        "cleansession true\nlocal_cleansession true\n")  # fmt: skip
    (rig.store_broker.workdir / "conf.d" / "footfall-bridge.conf").write_text(text)
    start_rig(rig)
    try:
        consumer = Collector(
            rig.central_addr("chain-main"), "chain-main-0", list(AGGREGATE_READ_FILTERS),
            persistent=True,
        )  # fmt: skip
        rig.central.stop()
        sent = [m for i in range(10) for m in aggregates("s1", i)]
        assert accepted(publish(rig.store_addr("aggregator-s1"), "aggregator-s1", sent))
        rig.central.start()
        latest = {m.topic: m for m in sent}
        wait_for(lambda: set(latest.values()) <= set(consumer.messages()), 30, "the latest")
        occupancy = {m for m in consumer.messages() if m.topic.endswith("/occupancy")}
        assert occupancy == {latest["footfall/v1/s1/occupancy"]}  # 9 of 10 lost
        consumer.close()
    finally:
        rig.stop()


def test_central_address_forms() -> None:
    from firmware_bridge.errors import ConfigError
    from sensing.provision.bridge_config import parse_host_port

    assert parse_host_port("mqtt.chain.example", "--central") == ("mqtt.chain.example", 8883)
    assert parse_host_port("10.0.0.5:1884", "--central") == ("10.0.0.5", 1884)
    assert parse_host_port("[fd00::5]:8883", "--central") == ("fd00::5", 8883)
    for bad in ("fd00::5", "[fd00::5", "h:", "h:0", ":8883", "h/x:1"):
        with pytest.raises(ConfigError):
            parse_host_port(bad, "--central")
