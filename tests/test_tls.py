"""TLS on the broker, with the shipped ``deploy/mosquitto/footfall.conf``: the
store's own client certificates get in; a missing, foreign or expired
certificate, and plain MQTT, are refused. A node with a wrong certificate
spools and keeps trying; it never publishes."""

from __future__ import annotations

import datetime as dt
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest

from firmware_bridge.errors import BrokerError
from sensing.node import config as node_config
from sensing.node.clock_sync import FixedClock
from sensing.node.daemon import NodeDaemon
from sensing.provision import pki
from sensing.runtime.mqtt_link import BrokerAddress, TlsFiles, connect, make_client

from broker_fixtures import (
    Broker,
    StorePki,
    make_pki,
    node_toml,
    store_key,
    tls_broker,
    write_capture,
)

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[StorePki, Broker]]:
    d = tmp_path_factory.mktemp("tls")
    p = make_pki(d / "pki")
    b = tls_broker(d / "broker", p).start()
    yield p, b
    b.stop()


def _try(addr: BrokerAddress, name: str = "t") -> None:
    c = make_client(addr, f"test-tls-{name}-{time.monotonic_ns()}")
    try:
        connect(c, addr, timeout_s=5)
    finally:
        c.disconnect()  # before loop_stop: the network loop then ends at once
        c.loop_stop()


def test_store_certificates_are_accepted(store: tuple[StorePki, Broker]) -> None:
    p, b = store
    for user in ("node-n1", "node-n2", "aggregator-s1", "bi-dash"):
        _try(BrokerAddress("127.0.0.1", b.port, p.client(user)), user)
    _try(BrokerAddress("localhost", b.port, p.client("node-n1")), "by-name")


def test_missing_foreign_and_expired_certificates_are_refused(
    store: tuple[StorePki, Broker], tmp_path: Path
) -> None:
    p, b = store
    ca = p.issued["ca"].cert
    no_cert = BrokerAddress("127.0.0.1", b.port, TlsFiles(ca))
    with pytest.raises(BrokerError):
        _try(no_cert, "anonymous")
    with pytest.raises(BrokerError):
        _try(BrokerAddress("127.0.0.1", b.port, p.rogue_client()), "rogue")
    old = pki.issue(
        p.issued["ca"], tmp_path, "node-n1", days=30,
        not_before=dt.datetime.now(dt.UTC) - dt.timedelta(days=60),
    )  # fmt: skip
    with pytest.raises(BrokerError):
        _try(BrokerAddress("127.0.0.1", b.port, TlsFiles(ca, old.cert, old.key)), "expired")
    # the node does not trust a broker certificate from another CA either
    rogue_ca = TlsFiles(p.dir / "rogue" / "ca.crt", p.issued["node-n1"].cert,
                        p.issued["node-n1"].key)  # fmt: skip
    with pytest.raises(BrokerError, match="certificate verify failed"):
        _try(BrokerAddress("127.0.0.1", b.port, rogue_ca), "untrusted-broker")
    assert "OpenSSL Error" in b.log() or "certificate" in b.log().lower()


def test_plain_mqtt_on_the_tls_port_is_refused(store: tuple[StorePki, Broker]) -> None:
    _p, b = store
    with pytest.raises(BrokerError):
        _try(BrokerAddress("127.0.0.1", b.port), "plain")
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="anon", protocol=mqtt.MQTTv311)
    with pytest.raises(BrokerError):
        connect(c, BrokerAddress("127.0.0.1", b.port), timeout_s=5)


def test_node_with_a_wrong_certificate_spools_and_never_publishes(
    store: tuple[StorePki, Broker], tmp_path: Path
) -> None:
    p, b = store
    cap = write_capture(tmp_path / "cap", frames_per_s=20, seconds=30)
    key = store_key(tmp_path / "store.key")
    wrong = BrokerAddress("127.0.0.1", b.port, p.rogue_client())
    toml = node_toml(
        tmp_path / "node.toml", wrong, tmp_path / "state", key,
        wifi={"pcap": str(cap.dir / "wifi.pcap")}, ble={"pcap": str(cap.dir / "ble.pcap")},
        replay={"drain_timeout_s": 3},
    )  # fmt: skip
    cfg = node_config.load(toml)
    d = NodeDaemon(cfg, clock=FixedClock(True))
    with pytest.raises(BrokerError, match="not acknowledged"):
        d.run(install_signals=False)
    assert d.link is not None and d.link.failures >= 1 and d.link.connects == 0
    with sqlite3.connect(cfg.spool_path) as c:
        assert c.execute("SELECT COUNT(*) FROM batches").fetchone()[0] == d.summary.batches["obs"]
    # with the right certificate the same spool goes out
    right = node_toml(
        tmp_path / "right.toml",
        BrokerAddress("127.0.0.1", b.port, p.client("node-n1")),
        tmp_path / "state",
        key,
        wifi={"pcap": str(cap.dir / "wifi.pcap")},
        ble={"pcap": str(cap.dir / "ble.pcap")},
    )
    s = NodeDaemon(node_config.load(right), clock=FixedClock(True)).run(install_signals=False)
    # the files were all read already (the cursor says so): only the spool is sent; the
    # broker took every batch, and they stay spooled until an aggregator says it stored
    # them (none runs here: end-to-end acknowledgement)
    assert s.state == "done" and s.frames == 0
    assert s.published == d.summary.batches["obs"] == s.spool_depth
