"""``footfall doctor``'s checks of the broker: the node's TLS files and certificate,
the connection, and the ACL (the node may publish its own topics, its boards'
events among them, and only those). The ACL probes use MQTT 5, whose PUBACK reason
code says whether the broker took a publish (3.1.1 acknowledges a refused one).
Last, whether the aggregator's acknowledgement of this node reaches it (retained on
``aggregator/ack/node-{id}``; without it the node keeps every batch)."""

from __future__ import annotations

import datetime as dt
import os
import stat
import threading
import time
from collections.abc import Generator, Iterator

import paho.mqtt.client as mqtt

from firmware_bridge.errors import BrokerError, FootfallError
from sensing.node.config import NodeConfig
from sensing.node.doctor.check import Check
from sensing.provision import broker_acl
from sensing.runtime.mqtt_link import connect, make_client, probe_publish
from sensing.wire import payloads, topics

__all__ = ["CERT_WARN_DAYS", "broker"]

CERT_WARN_DAYS = 30
"""warn when the node's certificate expires within this many days"""


def broker(cfg: NodeConfig, timeout_s: float) -> Iterator[Check]:
    """The broker: TLS files sound, reachable with the node's certificate, and its ACL
    lets the node publish its own topics and only those."""
    b = cfg.broker
    addr = b.address()
    if b.ca is None:
        yield Check(
            "broker tls",
            "warn",
            f"{addr} without TLS: observations cross the "
            "network in clear and any client may publish",
            "give [broker] ca, cert and key (deploy/README.md)",
        )
    else:
        files = yield from _tls_files(cfg)
        if not files:
            return
    client = make_client(addr, f"footfall-doctor-{cfg.node}-{os.getpid()}", v5=True)
    try:
        connect(client, addr, timeout_s=timeout_s)
    except BrokerError as e:
        yield Check("broker", "FAIL", str(e), _broker_fix(str(e)))
        return
    try:
        who = f"node-{cfg.node}'s certificate" if b.cert else "the connection"
        yield Check("broker", "ok", f"{addr} accepted {who}")
        own = broker_acl.doctor_topic(cfg.store, cfg.node)
        denied = probe_publish(client, own, b"footfall doctor", timeout_s)
        if denied:
            yield Check(
                "broker acl",
                "FAIL",
                f"publishing its own topics is refused ({denied})",
                "regenerate the ACL: footfall provision acl "
                "(deploy/README.md), and reload mosquitto",
            )
            return
        other = broker_acl.doctor_topic(cfg.store, f"{cfg.node}-doctor-other")
        if probe_publish(client, other, b"footfall doctor", timeout_s) is None:
            yield Check(
                "broker acl",
                "warn",
                "the broker lets this node publish other nodes' topics: no ACL is active",
                "install deploy/mosquitto/footfall.conf with its acl_file",
            )
            return
        refused = []
        for name in _streams(cfg):
            probe = broker_acl.board_doctor_topic(cfg.store, name)
            why = probe_publish(client, probe, b"footfall doctor", timeout_s)
            if why:
                refused.append(f"{name} ({why})")
        if refused:
            yield Check(
                "broker acl",
                "FAIL",
                f"the broker refuses this node's events of {', '.join(refused)}: "
                "they would be spooled and never published",
                f"give the door or tile array node = {cfg.node!r} in the floor plan, "
                "regenerate the ACL (footfall provision acl) and reload mosquitto",
            )
            return
        yield Check("broker acl", "ok", "may publish its own topics, not other nodes'")
        if cfg.keep_until_stored:
            yield _ack_check(client, cfg, min(timeout_s, ACK_WAIT_S))
    finally:
        client.loop_stop()
        client.disconnect()


ACK_WAIT_S = 2.0
"""how long the doctor waits for the aggregator's retained acknowledgement"""


def _ack_check(client: mqtt.Client, cfg: NodeConfig, wait_s: float) -> Check:
    """Subscribe to the node's own ack topic; a retained acknowledgement should come."""
    topic = topics.ack_topic(cfg.store, "obs", cfg.node)
    got: list[bytes] = []
    came = threading.Event()

    def on_message(_c: mqtt.Client, _u: object, msg: mqtt.MQTTMessage) -> None:
        got.append(bytes(msg.payload))
        came.set()

    client.message_callback_add(topic, on_message)
    client.subscribe(topic, qos=1)
    came.wait(wait_s)
    client.message_callback_remove(topic)
    try:
        ack = payloads.decode("aggregator_ack", got[-1]) if got and got[-1] else None
    except FootfallError as e:
        return Check("aggregator ack", "warn", f"{topic}: not an acknowledgement ({e})")
    if ack is None:
        return Check(
            "aggregator ack",
            "warn",
            f"no acknowledgement from the aggregator on {topic} within {wait_s:.0f} s: it has "
            "stored nothing of this node yet, is older than acknowledgements, or the ACL does "
            "not let this node read it; until one comes the node keeps every batch",
            "regenerate the ACL (footfall provision acl) and reload mosquitto; for an "
            "aggregator that publishes none, [spool] keep_until_stored = false",
        )
    age_s = max(0.0, time.time() - ack["t"] / 1000)
    return Check(
        "aggregator ack",
        "ok",
        f"the store database has this node's batches up to seq {ack['seq']} "
        f"(acknowledged {age_s:.0f} s ago)",
    )


def _streams(cfg: NodeConfig) -> list[str]:
    """``door/{id}`` and ``floor/{id}`` this node publishes events of (boards, beams)."""
    names = [b.name for b in cfg.boards] + [f"door/{b.door}" for b in cfg.beams]
    return sorted(set(names))


def _tls_files(cfg: NodeConfig) -> Generator[Check, None, bool]:
    b = cfg.broker
    for label, p in (("ca", b.ca), ("cert", b.cert), ("key", b.key)):
        if p is not None and not os.access(p, os.R_OK):
            yield Check(
                "broker tls",
                "FAIL",
                f"[broker] {label} {p} is missing or unreadable",
                "copy the node's files from `footfall provision certs`",
            )
            return False
    if b.key is not None and stat.S_IMODE(b.key.stat().st_mode) & 0o077:
        yield Check("broker tls", "FAIL", f"{b.key} is readable by others", f"chmod 600 {b.key}")
        return False
    if b.cert is not None:
        try:
            from sensing.provision.pki import cert_info

            info = cert_info(b.cert)
        except FootfallError as e:
            yield Check("broker tls", "warn", f"cannot inspect {b.cert}: {e}")
            return True
        want = broker_acl.node_user(cfg.node)
        now = dt.datetime.now(dt.UTC)
        if info.common_name != want:
            yield Check(
                "broker tls",
                "FAIL",
                f"{b.cert} is for {info.common_name!r}, this "
                f"node is {want!r}: the ACL would refuse its topics",
                f"install {want}.crt/.key from provisioning",
            )
            return False
        if info.not_after < now:
            yield Check(
                "broker tls",
                "FAIL",
                f"{b.cert} expired on {info.not_after:%Y-%m-%d}",
                "issue a new node certificate",
            )
            return False
        days = (info.not_after - now).days
        if days < CERT_WARN_DAYS:
            yield Check(
                "broker tls",
                "warn",
                f"{b.cert} expires in {days} days",
                "issue a new node certificate soon",
            )
            return True
        yield Check(
            "broker tls",
            "ok",
            f"certificate {info.common_name}, valid until {info.not_after:%Y-%m-%d}",
        )
    return True


def _broker_fix(err: str) -> str:
    e = err.lower()
    if "certificate verify failed" in e:
        return (
            "the broker's certificate is not signed by [broker] ca, or its name does not "
            "match [broker] host"
        )
    if "refused the connection" in e or "before connack" in e or "alert" in e:
        return "the broker refused this certificate: is it from the store's CA?"
    if "refused" in e:
        return "is mosquitto running on that host and port? (systemctl status mosquitto)"
    return "check [broker] host/port, the network and the firewall (port 8883)"
