"""The node's configuration file (``node.toml``), loaded and validated.

Every error names the field, e.g. ``node.toml: broker.port: must be an integer
in 1..65535``. Relative paths are resolved against the file's directory. See
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

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from firmware_bridge.errors import ConfigError, TopicError
from sensing.capture.channel_plan import ChannelPlan
from sensing.node.pipeline import NodeFilters
from sensing.runtime.mqtt_link import BrokerAddress, TlsFiles
from sensing.wire.topics import check_id

DEFAULT_STATE_DIR = Path("/var/lib/footfall")
DEFAULT_CHANNELS = (1, 6, 11, 36, 40, 44, 48, 149, 153, 157, 161)


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

    def address(self) -> BrokerAddress:
        tls = TlsFiles(self.ca, self.cert, self.key) if self.ca else None
        return BrokerAddress(self.host, self.port, tls)


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
        return bool(
            self.wifi.interface
            or self.ble.adapter
            or any(b.port for b in self.boards)
            or self.beams
        )


# ------------------------------------------------------------------------- loading


class _Table:
    """Typed access to one TOML table, with errors that name the field."""

    def __init__(self, d: Any, where: str, src: str, base: Path) -> None:
        if not isinstance(d, dict):
            raise ConfigError(f"{src}: {where}: must be a table")
        self.d, self.where, self.src, self.base = d, where, src, base
        self._used: set[str] = set()

    def _err(self, key: str, what: str) -> ConfigError:
        return ConfigError(f"{self.src}: {self.where}.{key}: {what}")

    def get(self, key: str, kind: type | tuple[type, ...], default: Any = None) -> Any:
        self._used.add(key)
        if key not in self.d:
            return default
        v = self.d[key]
        if kind in (int, float) and isinstance(v, bool):
            raise self._err(key, f"must be a {getattr(kind, '__name__', kind)}")
        if kind is float and isinstance(v, int):
            v = float(v)
        if not isinstance(v, kind):
            name = (
                kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
            )
            raise self._err(key, f"must be a {name}, not {type(v).__name__}")
        return v

    def num(self, key: str, default: float, lo: float, hi: float, kind: type = int) -> Any:
        v = self.get(key, kind, default)
        if not lo <= v <= hi:
            raise self._err(key, f"must be within {lo:g}..{hi:g}")
        return v

    def ident(self, key: str, required: bool = True) -> str | None:
        v = self.get(key, str)
        if v is None:
            if required:
                raise self._err(key, "is required")
            return None
        try:
            return check_id(v, key)
        except TopicError as e:
            raise self._err(key, str(e)) from None

    def path(self, key: str, required: bool = False) -> Path | None:
        v = self.get(key, str)
        if v is None:
            if required:
                raise self._err(key, "is required")
            return None
        p = Path(v).expanduser()
        return p if p.is_absolute() else (self.base / p)

    def table(self, key: str) -> _Table:
        self._used.add(key)
        return _Table(
            self.d.get(key, {}), f"{self.where}.{key}" if self.where else key, self.src, self.base
        )

    def check_unknown(self) -> None:
        unknown = sorted(set(self.d) - self._used)
        if unknown:
            where = f"{self.where}: " if self.where else ""
            raise ConfigError(f"{self.src}: {where}unknown key(s) {', '.join(unknown)}")


def _filters(fl: _Table, src: str) -> NodeFilters:
    infra = fl.get("infrastructure", list, [])
    if not all(isinstance(x, str) for x in infra):
        raise ConfigError(f"{src}: filters.infrastructure: must be a list of strings")
    d = NodeFilters()
    return NodeFilters(
        min_rssi_dbm=fl.num("min_rssi_dbm", d.min_rssi_dbm, -127, 20),
        infrastructure=tuple(infra),
        learn_infrastructure=fl.get("learn_infrastructure", bool, d.learn_infrastructure),
        learn_hours=fl.num("learn_hours", d.learn_hours, 1, 24 * 30),
        learn_fraction=fl.num("learn_fraction", d.learn_fraction, 0.0, 1.0, float),
    )


def load(path: str | Path) -> NodeConfig:
    """Read and validate ``node.toml``."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text())
    except FileNotFoundError as e:
        raise ConfigError(f"{path}: no such config file") from e
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"{path}: cannot read: {e}") from e
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: not valid TOML: {e}") from e
    return parse(data, str(path), path.resolve().parent)


def parse(data: dict[str, Any], src: str = "<memory>", base: Path | None = None) -> NodeConfig:
    """Build a NodeConfig from parsed TOML (see :func:`load`)."""
    top = _Table(data, "", src, base or Path.cwd())
    n = top.table("node")
    b = top.table("broker")
    bt = top.table("batch")
    sp = top.table("spool")
    ck = top.table("clock")
    st = top.table("status")
    fl = top.table("filters")
    w = top.table("wifi")
    bl = top.table("ble")
    rp = top.table("replay")

    broker = BrokerConfig(
        host=b.get("host", str, "127.0.0.1"),
        port=b.num("port", 8883, 1, 65535),
        ca=b.path("ca"),
        cert=b.path("cert"),
        key=b.path("key"),
        keepalive_s=b.num("keepalive_s", 30, 5, 3600),
        reconnect_max_s=b.num("reconnect_max_s", 30.0, 0.5, 3600, float),
    )
    if (broker.cert is None) != (broker.key is None):
        raise ConfigError(f"{src}: broker: give both cert and key, or neither")
    if broker.cert is not None and broker.ca is None:
        raise ConfigError(f"{src}: broker.ca: is required with a client certificate")

    interface = w.get("interface", str)
    pcap = w.path("pcap")
    if interface and pcap:
        raise ConfigError(f"{src}: wifi: give interface or pcap, not both")
    dwell_by = w.get("dwell_by_channel", dict, {})
    try:
        dwell_by_ch = {int(k): int(v) for k, v in dwell_by.items()}
    except (TypeError, ValueError):
        raise ConfigError(f"{src}: wifi.dwell_by_channel: keys are channels, values ms") from None
    channels = w.get("channels", list, list(DEFAULT_CHANNELS))
    if not all(isinstance(c, int) and not isinstance(c, bool) for c in channels):
        raise ConfigError(f"{src}: wifi.channels: must be a list of channel numbers")
    try:
        plan = ChannelPlan.build(channels, w.num("dwell_ms", 250, 1, 60_000), dwell_by_ch)
    except ConfigError as e:
        raise ConfigError(f"{src}: {e}") from None
    wifi = WifiConfig(interface, pcap, plan)

    ble = BleConfig(bl.get("adapter", str), bl.path("pcap"))
    if ble.adapter and ble.pcap:
        raise ConfigError(f"{src}: ble: give adapter or pcap, not both")

    boards = []
    for i, raw in enumerate(top.get("boards", list, [])):
        t = _Table(raw, f"boards[{i}]", src, top.base)
        bc = BoardConfig(
            port=t.get("port", str),
            replay=t.path("replay"),
            door=t.ident("door", required=False),
            floor=t.ident("floor", required=False),
            baudrate=t.num("baudrate", 115200, 300, 4_000_000),
        )
        if (bc.port is None) == (bc.replay is None):
            raise ConfigError(f"{src}: boards[{i}]: give port or replay (one of them)")
        if (bc.door is None) == (bc.floor is None):
            raise ConfigError(f"{src}: boards[{i}]: give door or floor (one of them)")
        t.check_unknown()
        boards.append(bc)
    beams = []
    for i, raw in enumerate(top.get("beams", list, [])):
        t = _Table(raw, f"beams[{i}]", src, top.base)
        factory = t.get("pin_factory", str, "default")
        if factory not in ("default", "mock"):
            raise ConfigError(f"{src}: beams[{i}].pin_factory: must be default or mock")
        beams.append(
            BeamConfig(
                door=str(t.ident("door")),
                pin_a=t.get("pin_a", (int, str)),
                pin_b=t.get("pin_b", (int, str)),
                pull_up=t.get("pull_up", bool, True),
                pin_factory=factory,
            )
        )
        if beams[-1].pin_a is None or beams[-1].pin_b is None:
            raise ConfigError(f"{src}: beams[{i}]: pin_a and pin_b are required")
        t.check_unknown()
    names = [b.name for b in boards] + [f"door/{b.door}" for b in beams]
    dup = {x for x in names if names.count(x) > 1}
    if dup:
        raise ConfigError(f"{src}: {sorted(dup)[0]} is fed by more than one board or beam pair")

    level = top.get("log_level", str, "info")
    if level not in ("debug", "info", "warning", "error"):
        raise ConfigError(f"{src}: log_level: must be debug, info, warning or error")
    cfg = NodeConfig(
        store=str(n.ident("store")),
        node=str(n.ident("id")),
        keyfile=n.path("keyfile", required=True),  # type: ignore[arg-type]
        state_dir=n.path("state_dir") or DEFAULT_STATE_DIR,
        broker=broker,
        max_items=bt.num("max_items", 500, 1, 20_000),
        max_age_ms=bt.num("max_age_ms", 5000, 10, 3_600_000),
        spool_max_batches=sp.num("max_batches", 50_000, 1, 10_000_000),
        spool_max_bytes=int(sp.num("max_mb", 200.0, 0.001, 1_000_000, float) * (1 << 20)),
        require_sync=ck.get("require_sync", bool, True),
        clock_check_s=ck.num("check_every_s", 10.0, 0.1, 3600, float),
        status_interval_s=st.num("interval_s", 30.0, 0.1, 3600, float),
        filters=_filters(fl, src),
        wifi=wifi,
        ble=ble,
        boards=tuple(boards),
        beams=tuple(beams),
        realtime=rp.get("realtime", bool, False),
        speed=rp.num("speed", 1.0, 0.001, 1e6, float),
        exit_when_done=rp.get("exit_when_done", bool, True),
        drain_timeout_s=rp.num("drain_timeout_s", 120.0, 0, 1e6, float),
        shutdown_grace_s=top.num("shutdown_grace_s", 5.0, 0, 600, float),
        log_level=level,
    )
    for t in (n, b, bt, sp, ck, st, fl, w, bl, rp, top):
        t.check_unknown()
    if not (cfg.live or cfg.file_sources or cfg.boards):
        raise ConfigError(f"{src}: no source: configure [wifi], [ble], [[boards]] or [[beams]]")
    if cfg.live and (cfg.file_sources or any(b.replay for b in cfg.boards)):
        raise ConfigError(f"{src}: mixes live sources with capture files; use one or the other")
    return cfg
