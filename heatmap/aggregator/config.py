"""The aggregator's configuration file (``store.toml``), loaded and validated.

Every error names the file and the field, e.g. ``store.toml: broker.port: must
be an integer in 1..65535``; unknown keys are errors too (a typo must not
silently fall back to a default). Relative paths are resolved against the
file's directory. A complete file::

    [aggregator]
    store = "demo"                       # store id, as in the topics
    db = "/var/lib/footfall/store.db"
    floor_plan = "floorplan.toml"        # optional: its nodes are expected online
    k = 5                                # k-anonymity of every aggregate
    status_interval_s = 10               # retained aggregator status, every …
    offline_after_s = 300                # a node silent this long is offline
    # client_id = "footfall-aggregator-demo"   # MQTT persistent session id

    [retention]
    retention_hours = 24                 # visitors' pseudonymous rows, h (≤ 48)
    aggregate_after_s = 300              # grace for late batches before an hour is aggregated
    ble_min_rssi_dbm = -80               # passerby/visitor rule (heatmap.aggregator.pid_class)
    wifi_min_rssi_dbm = -70
    visitor_min_span_s = 60

    [broker]
    host = "127.0.0.1"
    port = 8883                          # default 8883 with TLS, 1883 without
    ca = "/etc/footfall/tls/ca.crt"      # TLS (cert + key: client certificate)
    cert = "/etc/footfall/tls/aggregator.crt"
    key = "/etc/footfall/tls/aggregator.key"
    # username = "aggregator"; password = "…"

Only ``aggregator.store`` and ``aggregator.db`` are required.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from firmware_bridge.errors import ConfigError, TopicError
from heatmap.aggregator.pid_class import ClassRule
from heatmap.aggregator.retention import MAX_RETENTION_HOURS, RetentionPolicy
from sensing.runtime.mqtt_link import BrokerAddress, TlsFiles
from sensing.wire.topics import check_id

_KEYS = {
    "aggregator": {
        "store",
        "db",
        "floor_plan",
        "k",
        "status_interval_s",
        "offline_after_s",
        "client_id",
    },
    "retention": {
        "retention_hours",
        "aggregate_after_s",
        "ble_min_rssi_dbm",
        "wifi_min_rssi_dbm",
        "visitor_min_span_s",
    },
    "broker": {"host", "port", "ca", "cert", "key", "username", "password"},
}


@dataclass(frozen=True)
class AggregatorConfig:
    store: str
    db: Path
    broker: BrokerAddress
    client_id: str
    retention: RetentionPolicy
    k: int = 5
    floor_plan: Path | None = None
    plan_nodes: tuple[str, ...] = ()
    """node ids of the floor plan: expected online"""
    status_interval_s: float = 10.0
    offline_after_s: float = 300.0
    source: str = "<memory>"


class _Fields:
    """Typed getters that name the file and field in every error."""

    def __init__(self, source: str, section: str, data: dict[str, Any], base: Path) -> None:
        self.source, self.section, self.data, self.base = source, section, data, base
        unknown = sorted(set(data) - _KEYS[section])
        if unknown:
            known = ", ".join(sorted(_KEYS[section]))
            raise self.error(unknown[0], f"unknown key (known: {known})")

    def error(self, key: str, what: str) -> ConfigError:
        return ConfigError(f"{self.source}: {self.section}.{key}: {what}")

    def string(self, key: str, default: str | None = None) -> str | None:
        v = self.data.get(key, default)
        if v is not None and (not isinstance(v, str) or not v):
            raise self.error(key, "must be a non-empty string")
        return v

    def required(self, key: str) -> str:
        if key not in self.data:
            raise self.error(key, "missing (required)")
        v = self.string(key)
        assert v is not None
        return v

    def path(self, key: str) -> Path | None:
        v = self.string(key)
        if v is None:
            return None
        p = Path(v).expanduser()
        return p if p.is_absolute() else (self.base / p)

    def number(self, key: str, default: float, lo: float, hi: float, integer: bool = False) -> Any:
        v = self.data.get(key, default)
        kind = "an integer" if integer else "a number"
        ok_type = type(v) is int if integer else type(v) in (int, float)
        if not ok_type or not lo <= v <= hi:
            raise self.error(key, f"must be {kind} in {lo:g}..{hi:g}, got {v!r}")
        return v


def load(path: str | Path) -> AggregatorConfig:
    """Load and validate ``path``; ConfigError naming the field on any problem."""
    p = Path(path)
    try:
        data = tomllib.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError as e:
        raise ConfigError(f"{p}: no such configuration file") from e
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise ConfigError(f"{p}: not valid TOML: {e}") from e
    return parse(data, source=str(p), base=p.resolve().parent)


def parse(
    data: dict[str, Any], source: str = "<memory>", base: Path | None = None
) -> AggregatorConfig:
    """Validate a parsed ``store.toml``; relative paths against ``base``."""
    base = base or Path.cwd()
    for section in data:
        if section not in _KEYS:
            raise ConfigError(
                f"{source}: [{section}]: unknown section (known: aggregator, retention, broker)"
            )
        if not isinstance(data[section], dict):
            raise ConfigError(f"{source}: {section}: must be a table")
    if "aggregator" not in data:
        raise ConfigError(f"{source}: [aggregator]: missing (required)")
    a = _Fields(source, "aggregator", data["aggregator"], base)
    r = _Fields(source, "retention", data.get("retention", {}), base)
    b = _Fields(source, "broker", data.get("broker", {}), base)

    store = a.required("store")
    try:
        check_id(store, "store")
    except TopicError as e:
        raise a.error("store", str(e)) from None
    db = a.path("db") if "db" in a.data else None
    if db is None:
        raise a.error("db", "missing (required)")
    client_id = a.string("client_id", f"footfall-aggregator-{store}")
    assert client_id is not None

    plan_path = a.path("floor_plan")
    plan_nodes: tuple[str, ...] = ()
    tz = "UTC"
    if plan_path is not None:
        from heatmap.spatial import floorplan

        try:
            plan = floorplan.load(plan_path)
        except ConfigError as e:
            raise a.error("floor_plan", str(e)) from None
        if plan.store_id != store:
            raise a.error(
                "floor_plan", f"{plan_path} is the plan of store {plan.store_id!r}, not {store!r}"
            )
        plan_nodes = tuple(n.id for n in plan.nodes)
        tz = plan.timezone

    k = a.number("k", 5, 2, 1000, integer=True)
    rule = ClassRule(
        ble_min_rssi_dbm=r.number("ble_min_rssi_dbm", -80, -127, 20, integer=True),
        wifi_min_rssi_dbm=r.number("wifi_min_rssi_dbm", -70, -127, 20, integer=True),
        min_span_s=float(r.number("visitor_min_span_s", 60, 1, 3600)),
    )
    policy = RetentionPolicy(
        retention_hours=float(r.number("retention_hours", 24, 1, MAX_RETENTION_HOURS)),
        aggregate_after_s=float(r.number("aggregate_after_s", 300, 0, 3600)),
        rule=rule,
        k=k,
        tz=tz,
    )
    return AggregatorConfig(
        store=store,
        db=db,
        broker=_broker(b),
        client_id=client_id,
        retention=policy,
        k=k,
        floor_plan=plan_path,
        plan_nodes=plan_nodes,
        status_interval_s=float(a.number("status_interval_s", 10, 0.1, 3600)),
        offline_after_s=float(a.number("offline_after_s", 300, 1, 86400)),
        source=source,
    )


def _broker(b: _Fields) -> BrokerAddress:
    host = b.string("host", "127.0.0.1")
    assert host is not None
    ca, cert, key = b.path("ca"), b.path("cert"), b.path("key")
    if (cert is None) != (key is None):
        raise b.error("key" if key is None else "cert", "a client certificate needs cert and key")
    if cert is not None and ca is None:
        raise b.error("ca", "missing: TLS with a client certificate needs the CA too")
    for name, f in (("ca", ca), ("cert", cert), ("key", key)):
        if f is not None and not f.is_file():
            raise b.error(name, f"{f}: no such file")
    tls = TlsFiles(ca, cert, key) if ca is not None else None
    port = b.number("port", 8883 if tls else 1883, 1, 65535, integer=True)
    username = b.string("username")
    password = b.string("password")
    if password is not None and username is None:
        raise b.error("password", "given without username")
    return BrokerAddress(host, port, tls, username, password)
