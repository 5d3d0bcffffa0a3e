"""The Mosquitto bridge that carries one store's aggregates to the chain's central broker.

A chain bridges each store broker (``deploy/mosquitto/footfall.conf``) to a central
MQTT broker (Mosquitto, EMQX, HiveMQ: MQTT 3.1.1 or 5) with one ``connection``
stanza in the store broker's configuration (``/etc/mosquitto/conf.d/footfall-bridge.conf``).
It forwards exactly the aggregates of :func:`forwarded_topics` — occupancy, footfall
per period, zone stats and the aggregator's status — out, at QoS 1, with their retained
flag. Nothing else crosses: not the nodes' ``obs`` (pseudonyms), their status, door and
floor events, nor Home Assistant discovery. The central ACL
(:mod:`sensing.provision.central_broker`) refuses anything else a bridge certificate
might send, so a hand-edited stanza cannot leak either.

What the stanza settles, and why:

* **TLS with a client certificate** ``bridge-{store}`` from the chain CA
  (``bridge_cafile``/``bridge_certfile``/``bridge_keyfile``); the central broker's name
  is checked against its certificate (``bridge_insecure`` stays false).
* **Queued while the centre is away, and across a store broker restart**: with
  ``cleansession false`` (and ``local_cleansession false``) the bridge's local session
  is persistent, so the store broker queues the QoS 1 aggregates for it while it is
  disconnected (up to the broker's ``max_queued_messages``) and writes that queue to its
  persistence file with every autosave and at shutdown (Mosquitto saves every session
  that is not clean, the bridge's included, and gives it back to the bridge by its
  ``local_clientid`` after a restart). The store config has ``persistence true`` (Debian's
  mosquitto.conf) and ``autosave_interval 5``: a crash (``kill -9``, power cut) loses
  what was queued in the last 5 s; a restart loses nothing.
* **Re-sent on every reconnect**: Mosquitto queues the retained message of every
  forwarded topic to the bridge each time it connects, so the centre always ends with
  the latest of each topic; these are duplicates of what it already has, which the
  contract makes harmless (a re-published aggregate replaces the earlier one).
* **Fixed client ids**: ``remote_clientid`` is the certificate's common name
  (``bridge-{store}``) and ``local_clientid`` ``bridge-{store}-local`` names the local
  session whatever the host is called (Mosquitto's default contains the host name: a
  renamed box would start a new, empty session and orphan the old queue).
* **Any central broker**: ``try_private false`` (Mosquitto's bridge flag in the
  CONNECT protocol version is refused by brokers that are not Mosquitto, and only
  serves loop detection, which an out-only bridge does not need);
  ``bridge_attempt_unsubscribe false`` (an out-only bridge subscribes to nothing at
  the centre); MQTT 3.1.1 by default, ``mqttv50`` on request.
* **Notifications** go to :func:`notification_topic` (``footfall/bridge/{store}/state``,
  retained ``1`` when connected and ``0`` as the last will), on both brokers: the centre
  sees which stores' bridges are up. The payload is one character and the topic holds
  only the store id; the central ACL grants the bridge write on exactly this topic
  (Mosquitto's default ``$SYS/broker/connection/...`` topic would be refused there).
* **Reconnecting**: ``restart_timeout 5 300``, Mosquitto's "decorrelated jitter" backoff
  from 5 s up to 5 min: a blip is over in seconds, and a thousand stores do not
  reconnect in one second when the centre comes back. The cap is long on purpose:
  Mosquitto (2.0.11 to 2.0.20, built with ADNS as Debian's is) queues the retained
  message of every forwarded topic to the bridge at every connection *attempt*, failed
  ones included; a store keeps about 95 retained aggregates (48 closed hours, 35 closed
  days, the zones, the hour and day in progress, occupancy, status), so each attempt adds
  about 95 copies to the queue that ``max_queued_messages`` bounds (100,000 in
  footfall.conf). With a 60 s cap that is about 80 attempts and 8,000 copies an hour of
  outage, and with the store's own ~750 aggregates an hour the queue is full after about
  11 h (then new messages are dropped; what is still retained is re-sent on reconnect);
  with 300 s about 22 attempts and 2,100 copies an hour, full after about 35 h. The
  copies are harmless at the centre (each is an earlier publication of its topic, and
  the latest comes last).

>>> print(bridge_conf_text(BridgeSettings("s1", "central.example", 8883,
...     Path("/b/ca.crt"), Path("/b/bridge-s1.crt"), Path("/b/bridge-s1.key"))).count("out 1"))
4
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from firmware_bridge.errors import ConfigError
from sensing.wire import topics

CONNECTION_NAME = "footfall-central"
"""the ``connection`` name of the bridge in the store broker"""

Protocol = Literal["mqttv311", "mqttv50"]
PROTOCOLS: tuple[Protocol, ...] = ("mqttv311", "mqttv50")


def bridge_user(store: str) -> str:
    """Common name of a store's bridge certificate, its user name at the centre."""
    return f"bridge-{topics.check_id(store, 'store')}"


def local_clientid(store: str) -> str:
    """The bridge's session id in the store broker (where its queue is kept)."""
    return f"{bridge_user(store)}-local"


def notification_topic(store: str) -> str:
    """Where the bridge says whether it is connected: retained ``1`` / ``0``."""
    return f"footfall/bridge/{topics.check_id(store, 'store')}/state"


def forwarded_topics(store: str) -> list[str]:
    """Topic filters of ``store`` that go to the centre: the aggregates of the v1
    contract and nothing else (no obs, node status, door/floor events, discovery)."""
    base = f"{topics.ROOT}/{topics.check_id(store, 'store')}"
    return [
        f"{base}/occupancy",
        f"{base}/footfall/+",
        f"{base}/zone/+/stats",
        topics.aggregator_status_topic(store),
    ]


def parse_host_port(text: str, option: str, default_port: int = 8883) -> tuple[str, int]:
    """``HOST:PORT`` (or ``HOST``, or ``[v6]:PORT``) → (host, port); else ConfigError."""
    t = text.strip()
    host, sep, port_text = t, "", ""
    if t.startswith("["):
        host, bracket, rest = t[1:].partition("]")
        if not bracket or (rest and not rest.startswith(":")):
            raise ConfigError(f"{option} {text!r}: an IPv6 address goes in brackets: [::1]:8883")
        sep, port_text = rest[:1], rest[1:]
    elif t.count(":") == 1:
        host, sep, port_text = t.partition(":")
    elif t.count(":") > 1:
        raise ConfigError(f"{option} {text!r}: an IPv6 address goes in brackets: [::1]:8883")
    if not host or any(c.isspace() or c in "#/" for c in host):
        raise ConfigError(f"{option} {text!r}: expected HOST:PORT (a DNS name or an IP address)")
    if not sep:
        return host, default_port
    if not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
        raise ConfigError(f"{option} {text!r}: the port must be a number within 1..65535")
    return host, int(port_text)


@dataclass(frozen=True)
class BridgeSettings:
    """One store's bridge to the centre."""

    store: str
    host: str
    """the central broker's name, as in its certificate"""
    port: int
    ca: Path
    """the chain CA certificate (verifies the central broker)"""
    cert: Path
    """``bridge-{store}.crt`` issued by the chain CA"""
    key: Path
    protocol: Protocol = "mqttv311"
    restart_base_s: int = 5
    restart_cap_s: int = 300
    keepalive_s: int = 60

    def __post_init__(self) -> None:
        topics.check_id(self.store, "store")
        if self.protocol not in PROTOCOLS:
            raise ConfigError(f"bridge protocol {self.protocol!r}: one of {', '.join(PROTOCOLS)}")
        if not 1 <= self.restart_base_s <= self.restart_cap_s:
            raise ConfigError("restart_timeout: 1 <= base <= cap, seconds")
        if self.keepalive_s < 5:
            raise ConfigError("keepalive_interval: at least 5 s (Mosquitto's minimum)")
        for what, p in (("ca", self.ca), ("cert", self.cert), ("key", self.key)):
            if any(c.isspace() for c in str(p)):
                raise ConfigError(f"bridge {what} {p}: Mosquitto cannot read a path with spaces")


def bridge_conf_text(s: BridgeSettings) -> str:
    """The ``connection`` stanza for the store broker (a file in its ``conf.d``)."""
    user = bridge_user(s.store)
    lines = [
        f"# footfall: bridge of store {s.store!r} to the chain's central broker.",
        "# Generated by `footfall provision bridge`; see sensing/provision/bridge_config.py",
        "# for why each line is there. Needs the store broker's persistence (Debian's",
        "# mosquitto.conf: persistence true) for the queue to survive a restart.",
        "",
        f"connection {CONNECTION_NAME}",
        # Mosquitto splits at the last ':' (an IPv6 address goes without brackets)
        f"address {s.host}:{s.port}",
        f"bridge_protocol_version {s.protocol}",
        "# not Mosquitto's private bridge flag: other brokers refuse it",
        "try_private false",
        "# a persistent session on both sides: aggregates queue (and are saved to disk)",
        "# while the centre is away",
        "cleansession false",
        "local_cleansession false",
        f"remote_clientid {user}",
        f"local_clientid {local_clientid(s.store)}",
        "start_type automatic",
        f"restart_timeout {s.restart_base_s} {s.restart_cap_s}",
        f"keepalive_interval {s.keepalive_s}",
        "bridge_attempt_unsubscribe false",
        "bridge_outgoing_retain true",
        "notifications true",
        "notifications_local_only false",
        f"notification_topic {notification_topic(s.store)}",
        f"bridge_cafile {s.ca}",
        f"bridge_certfile {s.cert}",
        f"bridge_keyfile {s.key}",
        "bridge_insecure false",
        "# the aggregates of this store, and nothing else",
    ]
    lines += [f"topic {f} out 1" for f in forwarded_topics(s.store)]
    return "\n".join(lines) + "\n"


def check_bridge_files(store: str, ca: Path, cert: Path, key: Path) -> None:
    """The bridge's certificate files are readable, the certificate is ``bridge-{store}``
    issued by ``ca``, and ``key`` is its key: else ConfigError saying which."""
    from sensing.provision.pki import cert_info

    ca_info = cert_info(ca)
    if not ca_info.is_ca:
        raise ConfigError(f"--ca {ca}: not a CA certificate")
    info = cert_info(cert)
    if info.common_name != bridge_user(store):
        raise ConfigError(
            f"--cert {cert}: issued to {info.common_name!r}, not {bridge_user(store)!r}"
        )
    if info.issuer != ca_info.common_name:
        raise ConfigError(f"--cert {cert}: issued by {info.issuer!r}, not by --ca {ca}")
    _check_key_matches(cert, key)


def _check_key_matches(cert: Path, key: Path) -> None:
    if not key_matches(cert, key, "--key"):
        raise ConfigError(f"--key {key}: is not the key of --cert {cert}")


def key_matches(cert: Path, key: Path, what: str = "key") -> bool:
    """Whether ``key`` (PEM, unencrypted) is the private key of ``cert``; ConfigError
    (naming ``what``) if the key cannot be read."""
    try:
        from cryptography import x509
        from cryptography.hazmat.primitives import serialization
    except ImportError as e:  # pragma: no cover - depends on the install
        raise ConfigError("certificate checks need the 'cryptography' package") from e
    try:
        k = serialization.load_pem_private_key(key.read_bytes(), None)
    except (OSError, ValueError, TypeError) as e:
        raise ConfigError(f"{what} {key}: not a readable unencrypted PEM private key: {e}") from e
    try:
        c = x509.load_pem_x509_certificate(cert.read_bytes())
    except (OSError, ValueError) as e:
        raise ConfigError(f"{cert}: not a readable PEM certificate: {e}") from e
    pem = serialization.Encoding.PEM
    spki = serialization.PublicFormat.SubjectPublicKeyInfo
    return bool(k.public_key().public_bytes(pem, spki) == c.public_key().public_bytes(pem, spki))
