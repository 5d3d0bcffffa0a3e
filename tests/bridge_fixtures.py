"""A store broker bridged to a chain's central broker, both real Mosquitto on loopback,
for tests/test_bridge.py and bench/bridge_outage.py.

The store broker runs the shipped ``deploy/mosquitto/footfall.conf`` (through
:func:`broker_fixtures.tls_broker`: paths and port rewritten) with the bridge stanza of
``footfall provision bridge`` in an ``include_dir``; the central broker runs the
``mosquitto.conf`` of ``footfall provision central`` in the ``include_dir`` of a main
file that says what Debian's ``/etc/mosquitto/mosquitto.conf`` says (persistence, its
location, the log). Both use TLS with client certificates and their generated ACLs.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.subscribeoptions import SubscribeOptions

from heatmap.aggregator.broker import free_port
from sensing.provision import pki
from sensing.provision.bridge_config import BridgeSettings, bridge_conf_text
from sensing.provision.central_broker import (
    CentralLayout,
    CentralSettings,
    acl_text,
    conf_text,
    provision_central,
)
from sensing.runtime.mqtt_link import BrokerAddress, TlsFiles, connect, make_client
from sensing.wire import payloads

from broker_fixtures import Broker, StorePki, make_pki, tls_broker, wait_for

AUDIT = "audit-test"
"""a certificate of the chain CA that may read and write everything at the centre: the
test's eye on what crossed the bridge, and a publisher of what nobody else may read
(not in the generated ACL; appended by the rig)"""
PID = "3bcb50b3961d8dcf"
"""a pseudonym: it appears in the store's obs, and must never at the centre"""


def debian_main_conf(workdir: Path, include_dir: Path) -> str:
    """What Debian's /etc/mosquitto/mosquitto.conf says, for a broker in ``workdir``."""
    user = "user root\n" if os.geteuid() == 0 else ""  # else it drops to `mosquitto`
    return (
        f"{user}pid_file {workdir / 'mosquitto.pid'}\n"
        "persistence true\n"
        f"persistence_location {workdir}/\n"
        f"log_dest file {workdir / 'mosquitto.log'}\n"
        "log_type error\nlog_type warning\nlog_type notice\nlog_type information\n"
        f"include_dir {include_dir}\n"
    )


@dataclass(frozen=True)
class Msg:
    topic: str
    payload: bytes
    retain: bool


def _example(kind: str, n: int = 0) -> dict[str, Any]:
    ex: list[dict[str, Any]] = payloads.schema(kind)["examples"]
    return json.loads(json.dumps(ex[n % len(ex)]))


def _checked(kind: str, obj: dict[str, Any]) -> bytes:
    payloads.validate(kind, obj)
    return payloads.encode(obj)


def period(level: str) -> tuple[str, str]:
    """The ISO interval and unit a footfall period level stands for (November: +01:00)."""
    tz = dt.timezone(dt.timedelta(hours=1))
    if level == "hour":
        start, unit = dt.datetime(2026, 11, 20, 10, tzinfo=tz), "hour"
    elif level == "today":
        start, unit = dt.datetime(2026, 11, 20, tzinfo=tz), "day"
    elif "T" in level:
        start, unit = dt.datetime.strptime(level, "%Y-%m-%dT%H").replace(tzinfo=tz), "hour"
    else:
        start, unit = dt.datetime.strptime(level, "%Y-%m-%d").replace(tzinfo=tz), "day"
    end = start + (dt.timedelta(hours=1) if unit == "hour" else dt.timedelta(days=1))
    return f"{start.isoformat()}/{end.isoformat()}", unit


def footfall_msg(store: str, level: str, as_of: int, n: int = 0) -> Msg:
    """A footfall aggregate of period ``level`` (its payload's period and unit agree)."""
    p = _example("footfall", n)
    p["period"], p["unit"] = period(level)
    p.update(as_of=as_of, final=level not in ("hour", "today"))
    return Msg(f"footfall/v1/{store}/footfall/{level}", _checked("footfall", p), True)


def aggregates(store: str, i: int) -> list[Msg]:
    """One round of what the aggregator publishes (retained, valid v1 payloads), every
    payload unique to round ``i`` (its ``as_of``/``t``): the footfall of the hour and
    day in progress, of a closed hour (its own topic per round) and of a closed day,
    a zone's stats, occupancy and the aggregator's status."""
    base = f"footfall/v1/{store}"
    t = 1_795_683_600_000 + i * 1000
    out = [
        footfall_msg(store, level, t, n)
        for level, n in (
            ("hour", 0),
            ("today", 0),
            (f"2026-11-{1 + i // 24 % 28:02d}T{i % 24:02d}", 0),
            ("2026-11-19", 1),
        )
    ]
    z = _example("zone_stats")
    z["as_of"] = t
    out.append(Msg(f"{base}/zone/{z['zone']}/stats", _checked("zone_stats", z), True))
    o = _example("occupancy")
    o.update(t=t, as_of=t)
    out.append(Msg(f"{base}/occupancy", _checked("occupancy", o), True))
    s = _example("aggregator_status")
    s["t"] = t
    out.append(Msg(f"{base}/aggregator/status", _checked("aggregator_status", s), True))
    return out


def closed_hours(store: str, n: int, start: int = 0) -> list[Msg]:
    """``n`` closed hours, each on its own topic and with its own ``as_of``."""
    out = []
    for i in range(start, start + n):
        hour = dt.datetime(2026, 1, 1) + dt.timedelta(hours=i)
        out.append(footfall_msg(store, hour.strftime("%Y-%m-%dT%H"), 1_795_683_600_000 + i * 1000))
    return out


def store_only(store: str) -> dict[str, list[Msg]]:
    """What must stay in the store, by the certificate that publishes it."""
    obs = _example("obs")
    obs["obs"][0][1] = PID
    status = _example("node_status")
    door = _example("door_events")
    floor = _example("floor_events")
    agg_extra = [
        Msg("homeassistant/device/" + store + "/config", b'{"dev":{"ids":"x"}}', True),
        Msg("homeassistant/debug", json.dumps({"pid": PID}).encode(), False),
    ]
    return {
        "node-n1": [
            Msg(f"footfall/v1/{store}/node/n1/obs", _checked("obs", obs), False),
            Msg(f"footfall/v1/{store}/node/n1/status", _checked("node_status", status), True),
            Msg(f"footfall/v1/{store}/door/main/events", _checked("door_events", door), False),
        ],
        "node-n2": [
            Msg(f"footfall/v1/{store}/floor/tiles/events", _checked("floor_events", floor), False),
        ],
        f"aggregator-{store}": agg_extra,
        # Home Assistant's birth message, on a BI certificate (if the store ACL lets it)
        "bi-dash": [Msg("homeassistant/status", b"online", True)],
    }


class Collector:
    """An MQTT 5 client that records what it receives: (topic, payload, retain flag)."""

    def __init__(
        self,
        addr: BrokerAddress,
        client_id: str,
        filters: Sequence[str],
        persistent: bool = False,
        retain_as_published: bool = True,
    ) -> None:
        self.got: list[Msg] = []
        self._lock = threading.Lock()
        self.client = make_client(addr, client_id, clean=not persistent, v5=True)
        self.client.on_message = self._on_message
        self.client.reconnect_delay_set(1, 2)
        connect(self.client, addr)
        opts = SubscribeOptions(qos=1, retainAsPublished=retain_as_published)
        granted: list[Any] = []
        done = threading.Event()

        def on_subscribe(_c: object, _u: object, _mid: int, rcs: list[Any], _p: object) -> None:
            granted.extend(rcs)
            done.set()

        self.client.on_subscribe = on_subscribe
        self.client.subscribe([(f, opts) for f in filters])
        if not done.wait(10):
            raise AssertionError(f"{client_id}: no SUBACK")
        bad = [rc for rc in granted if rc.value >= 0x80]
        if bad:
            raise AssertionError(f"{client_id}: subscription refused: {bad}")

    def _on_message(self, _c: object, _u: object, m: mqtt.MQTTMessage) -> None:
        with self._lock:
            self.got.append(Msg(m.topic, bytes(m.payload), bool(m.retain)))

    def messages(self) -> list[Msg]:
        with self._lock:
            return list(self.got)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def publish(addr: BrokerAddress, client_id: str, msgs: Iterable[Msg]) -> list[int]:
    """Publish at QoS 1 over MQTT 5 and return each PUBACK's reason code."""
    codes: dict[int, int] = {}
    c = make_client(addr, client_id, v5=True)

    def on_publish(_c: object, _u: object, mid: int, rc: Any, _p: object) -> None:
        codes[mid] = int(rc.value)

    c.on_publish = on_publish
    connect(c, addr)  # starts the network loop
    try:
        mids = []
        for m in msgs:
            info = c.publish(m.topic, m.payload, qos=1, retain=m.retain)
            mids.append(info.mid)
        wait_for(lambda: all(mid in codes for mid in mids), 30, "PUBACKs")
        return [codes[mid] for mid in mids]
    finally:
        c.disconnect()  # wakes the network loop, which then ends at once
        c.loop_stop()


def mosquitto_log_lines(broker: Broker, needle: str) -> int:
    return sum(needle in line for line in broker.log().splitlines())


@dataclass
class ChainRig:
    """One store broker with its bridge, one central broker, their PKIs."""

    root: Path
    store: str
    store_pki: StorePki
    central_dir: Path
    """the central PKI, ACL and mosquitto.conf as `footfall provision central` writes them"""
    central: Broker
    store_broker: Broker
    stores: Sequence[str] = field(default_factory=tuple)

    def central_addr(self, cn: str) -> BrokerAddress:
        d = self.central_dir
        return BrokerAddress(
            "127.0.0.1", self.central.port, TlsFiles(d / "ca.crt", d / f"{cn}.crt", d / f"{cn}.key")
        )

    def store_addr(self, cn: str) -> BrokerAddress:
        return BrokerAddress("127.0.0.1", self.store_broker.port, self.store_pki.client(cn))

    def bridge_connected(self) -> int:
        """Times the bridge has connected to the centre (from the central log)."""
        return mosquitto_log_lines(self.central, f"as bridge-{self.store} ")

    def stop(self) -> None:
        self.store_broker.stop()
        self.central.stop()


def build_rig(
    root: Path,
    store: str = "s1",
    stores: Sequence[str] = ("s1", "s2"),
    restart: tuple[int, int] = (1, 2),
    protocol: str = "mqttv311",
    bridge_text: str | None = None,
) -> ChainRig:
    """Provision both sides and write their configs (nothing started). ``restart``:
    the bridge's restart_timeout (the shipped default is 5 60: shorter here so a test
    does not wait for a reconnect). ``bridge_text`` replaces the generated stanza."""
    cdir = root / "central-pki"
    layout = CentralLayout(tuple(stores), ("main",), ("hq",))
    provision_central(cdir, layout, ["localhost", "127.0.0.1"])
    ca = pki.Issued(cdir / "ca.crt", cdir / "ca.key")
    pki.issue(ca, cdir, AUDIT)
    port = free_port()
    (cdir / "acl").write_text(acl_text(layout) + f"\nuser {AUDIT}\ntopic readwrite #\n")
    (cdir / "mosquitto.conf").write_text(
        conf_text(CentralSettings(port=port, bind="127.0.0.1", etc=cdir))
    )
    cwork = root / "central"
    cinc = cwork / "conf.d"
    cinc.mkdir(parents=True)
    (cinc / "footfall-central.conf").write_text((cdir / "mosquitto.conf").read_text())
    central = Broker(cwork, debian_main_conf(cwork, cinc), port)

    spki = make_pki(root / "store-pki")
    sb = tls_broker(root / "store", spki)
    sinc = root / "store" / "conf.d"
    sinc.mkdir(parents=True)
    settings = BridgeSettings(
        store,
        "127.0.0.1",
        port,
        cdir / "ca.crt",
        cdir / f"bridge-{store}.crt",
        cdir / f"bridge-{store}.key",
        protocol=protocol,  # type: ignore[arg-type]
        restart_base_s=restart[0],
        restart_cap_s=restart[1],
    )
    (sinc / "footfall-bridge.conf").write_text(bridge_text or bridge_conf_text(settings))
    sb.conf.write_text(sb.conf.read_text() + f"\ninclude_dir {sinc}\n")
    return ChainRig(root, store, spki, cdir, central, sb, tuple(stores))


def start_rig(rig: ChainRig, timeout_s: float = 20.0) -> ChainRig:
    rig.central.start()
    rig.store_broker.start()
    wait_for(lambda: rig.bridge_connected() >= 1, timeout_s, "the bridge connected")
    return rig


def wait_saved(broker: Broker, timeout_s: float = 15.0) -> None:
    """Until the broker has written its persistence file once more from now, completely:
    Mosquitto writes ``mosquitto.db.new`` and renames it over ``mosquitto.db`` (logging
    "Saving in-memory database" when it starts), so wait for a new file there."""
    db = broker.workdir / "mosquitto.db"

    def inode() -> int | None:
        try:
            return db.stat().st_ino
        except FileNotFoundError:
            return None

    before = inode()
    wait_for(lambda: inode() not in (None, before), timeout_s, "an autosave")


def settle(seconds: float) -> None:
    time.sleep(seconds)
