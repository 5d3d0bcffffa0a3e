"""The MQTT edge: a paho-mqtt 2.x client connected, with QoS 1 publishing that
can be drained, and TLS with a client certificate when configured.

Two ways to use it:

* :func:`make_client` + :func:`connect` + :class:`Publisher`: connect once and
  publish, for short-lived publishers (the aggregator's BI publisher, tests).
* :class:`MqttLink`: a long-lived connection for the node daemon. It connects in
  the background, reconnects with backoff for as long as the broker is away,
  carries a retained last will, and reports what happened as :class:`LinkEvent`
  values (connected, disconnected, PUBACK of a message id) on a queue the
  daemon's main loop drains, so no paho callback ever touches the daemon's state.

Nothing from paho crosses inward: callers get bytes, topics and message ids.
"""

from __future__ import annotations

import logging
import queue
import ssl
import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from firmware_bridge.errors import BrokerError

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class TlsFiles:
    ca: Path
    cert: Path | None = None
    key: Path | None = None


@dataclass(frozen=True, slots=True)
class BrokerAddress:
    host: str = "127.0.0.1"
    port: int = 1883
    tls: TlsFiles | None = None
    username: str | None = None
    password: str | None = None
    mqtt5: bool = True
    """the broker speaks MQTT 5 (Mosquitto 2 does); False only for the demo's
    embedded amqtt, which speaks 3.1.1 and has no ACL to refuse anything"""

    def __str__(self) -> str:
        return f"{'mqtts' if self.tls else 'mqtt'}://{self.host}:{self.port}"


def make_client(
    addr: BrokerAddress,
    client_id: str,
    clean: bool = True,
    will: tuple[str, bytes] | None = None,
    v5: bool = False,
) -> mqtt.Client:
    """A configured (not yet connected) paho client, MQTT 3.1.1 (or 5 with ``v5``:
    then a denied publish comes back as a PUBACK reason code, see :func:`probe_publish`,
    and a denied subscription as a SUBACK reason code).

    ``clean=False``: a persistent session; on MQTT 5 :func:`connect` then resumes it
    (clean start off) and asks the broker to keep it for ever (session expiry
    0xFFFFFFFF), as MQTT 3.1.1's clean session off did."""
    v5 = v5 and addr.mqtt5
    c = mqtt.Client(
        mqtt.CallbackAPIVersion.VERSION2,
        client_id=client_id,
        clean_session=None if v5 else clean,
        protocol=mqtt.MQTTv5 if v5 else mqtt.MQTTv311,
    )
    c.max_inflight_messages_set(256)
    c.max_queued_messages_set(0)
    if addr.username:
        c.username_pw_set(addr.username, addr.password)
    if addr.tls:
        c.tls_set(
            ca_certs=str(addr.tls.ca),
            certfile=str(addr.tls.cert) if addr.tls.cert else None,
            keyfile=str(addr.tls.key) if addr.tls.key else None,
            cert_reqs=ssl.CERT_REQUIRED,
            tls_version=ssl.PROTOCOL_TLS_CLIENT,
        )
    if will:
        c.will_set(will[0], will[1], qos=1, retain=True)
    if v5 and not clean:
        _PERSISTENT_V5.add(c)
    return c


_PERSISTENT_V5: weakref.WeakSet[mqtt.Client] = weakref.WeakSet()
"""MQTT 5 clients made with ``clean=False`` (their session outlives a connection)"""
SESSION_NEVER_EXPIRES = 0xFFFFFFFF
"""MQTT 5 session expiry interval, s: the broker keeps the session for ever"""


def connect(client: mqtt.Client, addr: BrokerAddress, timeout_s: float = 10.0) -> None:
    """Connect and start the network loop; BrokerError if not accepted in time
    (TLS refused, connection closed before CONNACK, CONNACK with an error)."""
    done = threading.Event()
    result: list[object] = []

    def on_connect(_c: mqtt.Client, _u: object, _f: object, rc: object, _p: object) -> None:
        result.append(rc)
        done.set()

    def on_disconnect(_c: mqtt.Client, _u: object, _f: object, rc: object, _p: object) -> None:
        if not done.is_set():
            result.append(f"connection closed before CONNACK ({rc})")
            done.set()

    client.on_connect = on_connect
    client.on_disconnect = on_disconnect
    kw: dict[str, Any] = {}
    if client in _PERSISTENT_V5:  # kept for paho's reconnects as well
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = SESSION_NEVER_EXPIRES
        kw = {"clean_start": False, "properties": props}
    try:
        client.connect(addr.host, addr.port, keepalive=30, **kw)
    except (OSError, ssl.SSLError) as e:
        raise BrokerError(f"cannot reach broker {addr}: {e}") from e
    client.loop_start()
    if not done.wait(timeout_s):
        client.loop_stop()
        raise BrokerError(f"broker {addr} did not answer CONNECT within {timeout_s:.0f} s")
    client.on_disconnect = None
    rc = result[0]
    if isinstance(rc, str) or getattr(rc, "is_failure", False):
        client.loop_stop()
        raise BrokerError(f"broker {addr} refused the connection: {rc}")


class Publisher:
    """QoS 1 publishing with a bounded pending list and a drain; never raises on a
    broker that is away or refuses.

    A message handed to paho while the broker is away stays in paho's queue and goes
    out after the reconnect; its PUBACK (the ``on_publish`` callback this class owns)
    removes it from :attr:`pending`. At most ``max_pending`` messages wait for their
    PUBACK: when the list is full :meth:`publish` waits up to ``block_s`` for room (a
    reconnect), then drops the message and counts it in :attr:`dropped` (not handed
    to paho: a long outage cannot grow memory without bound). A daemon's loop passes
    a short ``block_s``; a bulk publisher keeps the long default. On an MQTT 5
    connection a PUBACK with a reason code >= 0x80 (e.g. ``Not authorized``: the ACL
    refused the topic) is counted in :attr:`refused`, not in :attr:`acked`.
    """

    def __init__(self, client: mqtt.Client, max_pending: int = 2000, block_s: float = 60.0) -> None:
        self.client = client
        self.max_pending = max_pending
        self.block_s = block_s
        self._cond = threading.Condition()
        self._pending: dict[int, str] = {}
        """message id → topic, handed to paho and not yet acknowledged"""
        self._early: dict[int, bool] = {}
        """message ids whose PUBACK came before :meth:`publish` recorded them → accepted"""
        self.handed = 0
        """messages handed to paho (sent, or queued for the reconnect)"""
        self.acked = 0
        """messages the broker accepted (PUBACK, reason code < 0x80)"""
        self.refused = 0
        """messages the broker refused (MQTT 5 PUBACK reason code >= 0x80)"""
        self.dropped = 0
        """messages never handed to paho: the pending list was full, or paho refused them"""
        self.last_refusal = ""
        """topic and reason of the last refused or dropped message (no payload data)"""
        self.on_done: Callable[[str, bool], None] | None = None
        """called with (topic, accepted) when the broker answers a message handed over by
        :meth:`publish` (on paho's network thread, holding its lock: bookkeeping only)"""
        client.on_publish = self._on_publish

    @property
    def pending(self) -> int:
        """messages handed over and not yet acknowledged"""
        with self._cond:
            return len(self._pending)

    def publish(self, topic: str, payload: bytes, retain: bool = False) -> bool:
        """Hand one QoS 1 message to paho; False (and counted in :attr:`dropped`) if
        it was not handed over. Never raises for the broker's state."""
        if not self._room():
            self._drop(topic, f"{self.max_pending} messages await their PUBACK")
            return False
        try:
            info = self.client.publish(topic, payload, qos=1, retain=retain)
        except ValueError as e:  # paho: payload too large, bad topic
            self._drop(topic, str(e))
            return False
        if info.rc not in (mqtt.MQTT_ERR_SUCCESS, mqtt.MQTT_ERR_NO_CONN):
            self._drop(topic, mqtt.error_string(info.rc))
            return False
        with self._cond:
            self.handed += 1
            early = self._early.pop(info.mid, None)
            if early is None:
                self._pending[info.mid] = topic
        if early is not None and self.on_done is not None:
            self.on_done(topic, early)
        return True

    def _room(self) -> bool:
        """Wait (at most ``block_s``) until fewer than ``max_pending``
        messages await their PUBACK."""
        deadline = time.monotonic() + self.block_s
        with self._cond:
            while len(self._pending) >= self.max_pending:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(min(left, 0.5))
        return True

    def _drop(self, topic: str, why: str) -> None:
        with self._cond:
            self.dropped += 1
            self.last_refusal = f"{topic}: {why}"
        log.warning("publish to %s dropped: %s", topic, why)

    def _on_publish(self, _c: mqtt.Client, _u: object, mid: int, rc: Any, _p: object) -> None:
        # paho's network thread, holding paho's message lock: only bookkeeping here
        with self._cond:
            topic = self._pending.pop(mid, None)
            failed = bool(getattr(rc, "is_failure", False))
            if topic is None:
                if len(self._early) > 4 * self.max_pending:
                    self._early.clear()  # PUBACKs of messages somebody else published
                self._early[mid] = not failed
            if failed:
                self.refused += 1
                self.last_refusal = f"{topic or 'message ' + str(mid)}: {rc}"
            else:
                self.acked += 1
            self._cond.notify_all()
        if topic is not None and self.on_done is not None:
            self.on_done(topic, not failed)

    def drain(self, timeout_s: float = 60.0) -> None:
        """Wait until the broker acknowledged everything handed over; BrokerError if
        ``timeout_s`` passes first (the messages stay queued in paho)."""
        deadline = time.monotonic() + timeout_s
        with self._cond:
            while self._pending:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise BrokerError(
                        f"{len(self._pending)} messages unacknowledged after {timeout_s:.0f} s"
                    )
                self._cond.wait(min(left, 0.5))


def probe_publish(
    client: mqtt.Client, topic: str, payload: bytes, timeout_s: float = 5.0
) -> str | None:
    """Publish QoS 1 on a connected MQTT 5 client; None if the broker accepted it,
    else the PUBACK reason (e.g. ``Not authorized``: the broker's ACL denied it)."""
    done = threading.Event()
    reasons: dict[int, str | None] = {}

    def on_publish(_c: mqtt.Client, _u: object, mid: int, rc: Any, _p: object) -> None:
        reasons[mid] = str(rc) if getattr(rc, "is_failure", False) else None
        done.set()

    client.on_publish = on_publish
    info = client.publish(topic, payload, qos=1)
    if not done.wait(timeout_s) or info.mid not in reasons:
        return f"no PUBACK within {timeout_s:.0f} s"
    return reasons[info.mid]


# ------------------------------------------------------------------ long-lived link


@dataclass(frozen=True, slots=True)
class LinkEvent:
    """What happened on the connection, for the daemon's main loop."""

    kind: Literal["connected", "disconnected", "acked", "refused", "connect_failed"]
    mid: int = 0
    """message id (``acked``, ``refused``)"""
    detail: str = ""
    """reason of a disconnect or refusal (never contains payload data)"""


class MqttLink:
    """A connection to the broker that survives broker restarts and outages.

    paho keeps every QoS 1 message it was handed until its PUBACK and resends the
    unacknowledged ones, in order, after a reconnect; the caller bounds how many
    it hands over (the node's spool holds the rest on disk).

    The link speaks MQTT 5, so the broker's PUBACK says whether it took a message: a
    reason code >= 0x80 (``Not authorized``: a topic the ACL does not grant) comes as
    a ``refused`` event, never as ``acked`` (MQTT 3.1.1 acknowledges a refused
    publish like an accepted one: the node counted it as published).

    Parameters
    ----------
    addr
        broker address (TLS files in it when the broker wants a client certificate).
    client_id
        MQTT client id (clean session: a node subscribes to nothing). A broker that
        binds client ids to certificates (``deploy/mosquitto/footfall.conf``) replaces
        it by the certificate's common name.
    will
        (topic, payload) the broker publishes, retained, if the link dies.
    reconnect_max_s
        longest wait between attempts; the wait starts at 0.5 s and doubles.
    """

    def __init__(
        self,
        addr: BrokerAddress,
        client_id: str,
        will: tuple[str, bytes] | None = None,
        keepalive_s: int = 30,
        reconnect_max_s: float = 30.0,
        max_inflight: int = 256,
    ) -> None:
        self.addr = addr
        self.keepalive_s = keepalive_s
        self.events: queue.SimpleQueue[LinkEvent] = queue.SimpleQueue()
        self.connects = 0
        self.failures = 0
        self.refused = 0
        """messages the broker refused (PUBACK reason code >= 0x80) since start"""
        self._connected = threading.Event()
        self.client = make_client(addr, client_id, will=will, v5=True)
        self.client.max_inflight_messages_set(max_inflight)
        self.client.reconnect_delay_set(min_delay=1, max_delay=max(1, round(reconnect_max_s)))
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_publish = self._on_publish
        self.client.on_connect_fail = self._on_connect_fail
        self._started = False

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    def wait_connected(self, timeout_s: float) -> bool:
        return self._connected.wait(timeout_s)

    def start(self) -> None:
        """Begin connecting in the background (retries until :meth:`stop`)."""
        self.client.connect_async(self.addr.host, self.addr.port, keepalive=self.keepalive_s)
        self.client.loop_start()
        self._started = True

    def publish(self, topic: str, payload: bytes, retain: bool = False) -> int:
        """Hand a QoS 1 message to the link (sent now, or after the reconnect);
        returns its message id, whose PUBACK arrives as an ``acked`` event."""
        info = self.client.publish(topic, payload, qos=1, retain=retain)
        if info.rc not in (mqtt.MQTT_ERR_SUCCESS, mqtt.MQTT_ERR_NO_CONN):
            raise BrokerError(f"publish to {topic} failed: {mqtt.error_string(info.rc)}")
        return int(info.mid)

    def stop(self, timeout_s: float = 2.0) -> None:
        """Disconnect cleanly (no last will) and stop the network thread."""
        if not self._started:
            return
        self._started = False
        if self._connected.is_set():
            self.client.disconnect()
            deadline = time.monotonic() + timeout_s
            while self._connected.is_set() and time.monotonic() < deadline:
                time.sleep(0.01)
        self.client.loop_stop()

    # paho's network thread: only enqueue
    def _on_connect(self, _c: mqtt.Client, _u: object, _f: object, rc: Any, _p: object) -> None:
        if getattr(rc, "is_failure", False):
            self.failures += 1
            self.events.put(LinkEvent("connect_failed", detail=str(rc)))
            return
        self.connects += 1
        # queued before the flag: whoever sees the link up finds the event waiting
        self.events.put(LinkEvent("connected"))
        self._connected.set()

    def _on_disconnect(self, _c: mqtt.Client, _u: object, _f: object, rc: Any, _p: object) -> None:
        was = self._connected.is_set()
        self._connected.clear()
        if was:
            self.events.put(LinkEvent("disconnected", detail=str(rc)))
        else:
            self.failures += 1
            self.events.put(LinkEvent("connect_failed", detail=f"closed before CONNACK: {rc}"))

    def _on_connect_fail(self, _c: mqtt.Client, _u: object) -> None:
        self.failures += 1
        self.events.put(LinkEvent("connect_failed", detail="cannot reach broker"))

    def _on_publish(self, _c: mqtt.Client, _u: object, mid: int, rc: Any, _p: object) -> None:
        if getattr(rc, "is_failure", False):  # MQTT 5 PUBACK reason code >= 0x80
            self.refused += 1
            self.events.put(LinkEvent("refused", mid, detail=str(rc)))
        else:
            self.events.put(LinkEvent("acked", mid))
