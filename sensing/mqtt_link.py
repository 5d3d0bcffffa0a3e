"""The MQTT edge: a paho-mqtt 2.x client connected, with QoS 1 publishing that
can be drained, and TLS with a client certificate when configured.

Nothing from paho crosses inward: callers get bytes and topics.
"""

from __future__ import annotations

import ssl
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import paho.mqtt.client as mqtt

from sensing.errors import BrokerError


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

    def __str__(self) -> str:
        return f"{'mqtts' if self.tls else 'mqtt'}://{self.host}:{self.port}"


def make_client(
    addr: BrokerAddress, client_id: str, clean: bool = True, will: tuple[str, bytes] | None = None
) -> mqtt.Client:
    """A configured (not yet connected) paho client, MQTT 3.1.1."""
    c = mqtt.Client(
        mqtt.CallbackAPIVersion.VERSION2,
        client_id=client_id,
        clean_session=clean,
        protocol=mqtt.MQTTv311,
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
    return c


def connect(client: mqtt.Client, addr: BrokerAddress, timeout_s: float = 10.0) -> None:
    """Connect and start the network loop; BrokerError if not accepted in time."""
    done = threading.Event()
    result: list[object] = []

    def on_connect(_c: mqtt.Client, _u: object, _f: object, rc: object, _p: object) -> None:
        result.append(rc)
        done.set()

    client.on_connect = on_connect
    try:
        client.connect(addr.host, addr.port, keepalive=30)
    except (OSError, ssl.SSLError) as e:
        raise BrokerError(f"cannot reach broker {addr}: {e}") from e
    client.loop_start()
    if not done.wait(timeout_s):
        client.loop_stop()
        raise BrokerError(f"broker {addr} did not answer CONNECT within {timeout_s:.0f} s")
    rc = result[0]
    if getattr(rc, "is_failure", False):
        client.loop_stop()
        raise BrokerError(f"broker {addr} refused the connection: {rc}")


class Publisher:
    """QoS 1 publishing with a bound on unacknowledged messages and a drain."""

    def __init__(self, client: mqtt.Client, max_pending: int = 2000) -> None:
        self.client = client
        self.max_pending = max_pending
        self._pending: list[mqtt.MQTTMessageInfo] = []
        self.published = 0

    def publish(self, topic: str, payload: bytes, retain: bool = False) -> None:
        info = self.client.publish(topic, payload, qos=1, retain=retain)
        if info.rc not in (mqtt.MQTT_ERR_SUCCESS, mqtt.MQTT_ERR_NO_CONN):
            raise BrokerError(f"publish to {topic} failed: {mqtt.error_string(info.rc)}")
        self._pending.append(info)
        self.published += 1
        if len(self._pending) >= self.max_pending:
            self._reap(block_until=self.max_pending // 2)

    def _reap(self, block_until: int, timeout_s: float = 60.0) -> None:
        deadline = time.monotonic() + timeout_s
        while True:
            self._pending = [i for i in self._pending if not i.is_published()]
            if len(self._pending) <= block_until:
                return
            if time.monotonic() > deadline:
                raise BrokerError(
                    f"{len(self._pending)} messages unacknowledged after {timeout_s:.0f} s"
                )
            self._pending[0].wait_for_publish(timeout=0.5)

    def drain(self, timeout_s: float = 60.0) -> None:
        """Wait until the broker acknowledged everything published."""
        self._reap(0, timeout_s)
