"""The node's configuration file (``node.toml``), loaded into the daemon's config.

The file's schema (keys, units, defaults, ranges, cross-key rules) is
:class:`sensing.node.config_model.NodeFile`; every error is one line that names
the key, e.g. ``node.toml: broker.port: must be within 1..65535, not 70000``.
Relative paths are resolved against the file's directory. See
``deploy/node.example.toml`` for a commented example; the smallest useful file::

    [node]
    store = "demo"
    id = "n1"
    keyfile = "/etc/footfall/store.key"

    [broker]
    host = "aggregator.local"
    ca = "/etc/footfall/tls/ca.crt"
    cert = "/etc/footfall/tls/node-n1.crt"
    key = "/etc/footfall/tls/node-n1.key"

    [wifi]
    interface = "wlan1"
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from sensing.capture.channel_plan import ChannelPlan
from sensing.node import config_model
from sensing.node.config_model import DEFAULT_CHANNELS, NodeFile, has_live_source
from sensing.node.pipeline import NodeFilters
from sensing.runtime.mqtt_link import BrokerAddress, TlsFiles
from sensing.runtime.typed_config import config_path, read_toml, validate

DEFAULT_STATE_DIR = Path(config_model.DEFAULT_STATE_DIR)


@dataclass(frozen=True)
class BrokerConfig:
    host: str = "127.0.0.1"
    port: int = 8883
    ca: Path | None = None
    cert: Path | None = None
    key: Path | None = None
    keepalive_s: int = 30
    reconnect_max_s: float = 30.0
    """longest wait between reconnection attempts, s (it starts at 0.5 s and doubles)"""
    mqtt5: bool = True
    """not in node.toml: False only for the demo's MQTT 3.1.1 embedded broker"""

    def address(self) -> BrokerAddress:
        tls = TlsFiles(self.ca, self.cert, self.key) if self.ca else None
        return BrokerAddress(self.host, self.port, tls, mqtt5=self.mqtt5)


@dataclass(frozen=True)
class WifiConfig:
    interface: str | None = None
    """monitor-mode interface (live capture), e.g. ``wlan1``"""
    pcap: Path | None = None
    """a capture file instead of a radio"""
    plan: ChannelPlan = field(default_factory=lambda: ChannelPlan.build(DEFAULT_CHANNELS))


@dataclass(frozen=True)
class BleConfig:
    adapter: str | None = None
    """HCI adapter (live), e.g. ``hci0``"""
    pcap: Path | None = None


@dataclass(frozen=True)
class BoardConfig:
    """One serial link to sensor boards (or a recorded byte stream of one)."""

    port: str | None = None
    """serial device, e.g. ``/dev/ttyUSB0``"""
    replay: Path | None = None
    """a recorded UART byte stream (``.uart`` with its ``.uart.json``) instead"""
    door: str | None = None
    """door id the link's crossings are published for"""
    floor: str | None = None
    """tile array id the link's tile changes are published for"""
    baudrate: int = 115200

    @property
    def name(self) -> str:
        """``door/{id}`` or ``floor/{id}``: the stream this link feeds."""
        return f"door/{self.door}" if self.door else f"floor/{self.floor}"


@dataclass(frozen=True)
class BeamConfig:
    """A beam pair wired to the node's GPIO."""

    door: str
    pin_a: int | str
    pin_b: int | str
    pull_up: bool = True
    pin_factory: str = "default"
    """gpiozero pin factory: ``default`` (lgpio on a Pi) or ``mock`` (tests)"""


@dataclass(frozen=True)
class NodeConfig:
    store: str
    node: str
    keyfile: Path
    state_dir: Path = DEFAULT_STATE_DIR
    broker: BrokerConfig = field(default_factory=BrokerConfig)
    max_items: int = 500
    """observations per batch at most"""
    max_age_ms: int = 5000
    """a batch closes when its oldest item is this old"""
    spool_max_batches: int = 50_000
    spool_max_bytes: int = 200 << 20
    require_sync: bool = True
    """refuse (drop and count) observations while the clock is not synchronized"""
    clock_check_s: float = 10.0
    status_interval_s: float = 30.0
    filters: NodeFilters = field(default_factory=NodeFilters)
    wifi: WifiConfig = field(default_factory=WifiConfig)
    ble: BleConfig = field(default_factory=BleConfig)
    boards: tuple[BoardConfig, ...] = ()
    beams: tuple[BeamConfig, ...] = ()
    realtime: bool = False
    """capture files: replay at their own pace (True) or as fast as possible"""
    speed: float = 1.0
    """with ``realtime``: pace factor (2.0 = twice as fast as recorded)"""
    exit_when_done: bool = True
    """capture files: publish ``done``, wait for every PUBACK, exit when they end"""
    drain_timeout_s: float = 120.0
    """how long a finished replay waits for the broker to acknowledge everything"""
    shutdown_grace_s: float = 5.0
    """on SIGTERM, how long to try to deliver what is spooled before exiting"""
    keep_until_stored: bool = True
    """keep a batch after its PUBACK until the aggregator acknowledges it"""
    ack_timeout_s: float = 30.0
    """an unacknowledged batch is sent again this long after it was last sent (doubling)"""
    log_level: str = "info"

    @property
    def spool_path(self) -> Path:
        return self.state_dir / "spool.db"

    @property
    def file_sources(self) -> list[Path]:
        return [p for p in (self.wifi.pcap, self.ble.pcap) if p is not None]

    @property
    def live(self) -> bool:
        """True if any source is a live radio, serial port or GPIO."""
        return has_live_source(
            self.wifi.interface, self.ble.adapter, (b.port for b in self.boards), self.beams
        )


# ------------------------------------------------------------------------- loading


def load(path: str | Path) -> NodeConfig:
    """Read and validate ``node.toml`` (relative paths against its directory)."""
    path = Path(path)
    data = read_toml(path, "config file")
    return parse(data, str(path), path.resolve().parent)


def parse(data: dict[str, Any], src: str = "<memory>", base: Path | None = None) -> NodeConfig:
    """Build a NodeConfig from parsed TOML (see :func:`load`); ConfigError names the key."""
    f = validate(data, NodeFile, src)
    base = base or Path.cwd()

    path = partial(config_path, base=base)

    b, w, fl, rp = f.broker, f.wifi, f.filters, f.replay
    dwell_by = {int(ch): ms for ch, ms in w.dwell_by_channel.items()}
    plan = ChannelPlan.build(w.channels, w.dwell_ms, dwell_by)  # the model checked its rules
    return NodeConfig(
        store=f.node.store,
        node=f.node.id,
        keyfile=path(f.node.keyfile),  # type: ignore[arg-type]
        state_dir=path(f.node.state_dir),  # type: ignore[arg-type]
        broker=BrokerConfig(
            host=b.host,
            port=b.port,
            ca=path(b.ca),
            cert=path(b.cert),
            key=path(b.key),
            keepalive_s=b.keepalive_s,
            reconnect_max_s=b.reconnect_max_s,
        ),
        max_items=f.batch.max_items,
        max_age_ms=f.batch.max_age_ms,
        spool_max_batches=f.spool.max_batches,
        spool_max_bytes=int(f.spool.max_mb * (1 << 20)),
        keep_until_stored=f.spool.keep_until_stored,
        ack_timeout_s=f.spool.ack_timeout_s,
        require_sync=f.clock.require_sync,
        clock_check_s=f.clock.check_every_s,
        status_interval_s=f.status.interval_s,
        filters=NodeFilters(
            min_rssi_dbm=fl.min_rssi_dbm,
            infrastructure=tuple(fl.infrastructure),
            learn_infrastructure=fl.learn_infrastructure,
            learn_hours=fl.learn_hours,
            learn_fraction=fl.learn_fraction,
            chain_addresses=f.capture.chain_addresses,
        ),
        wifi=WifiConfig(w.interface, path(w.pcap), plan),
        ble=BleConfig(f.ble.adapter, path(f.ble.pcap)),
        boards=tuple(
            BoardConfig(x.port, path(x.replay), x.door, x.floor, x.baudrate) for x in f.boards
        ),
        beams=tuple(
            BeamConfig(x.door, x.pin_a, x.pin_b, x.pull_up, x.pin_factory) for x in f.beams
        ),
        realtime=rp.realtime,
        speed=rp.speed,
        exit_when_done=rp.exit_when_done,
        drain_timeout_s=rp.drain_timeout_s,
        shutdown_grace_s=f.shutdown_grace_s,
        log_level=f.log_level,
    )
