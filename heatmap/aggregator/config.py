"""The aggregator's configuration file (``store.toml``), loaded and validated.

The file's schema (keys, units, defaults, ranges) is
:class:`heatmap.aggregator.config_model.StoreFile`. Every error names the file
and the key, e.g. ``store.toml: broker.port: must be within 1..65535, not
70000``; unknown keys are errors too (a typo must not silently fall back to a
default). Relative paths are resolved against the file's directory. A
complete file::

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

    [live]
    enabled = true                       # live aggregates (needs floor_plan)
    interval_s = 300                     # rows located every …, s
    lag_s = 30                           # … this long after the interval ended
    cell_m = 1.0                         # heatmap grid cell, m
    window_s = 5                         # localization window, s
    occupancy_interval_s = 10            # live occupancy published every …, s

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

from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from firmware_bridge.errors import ConfigError
from heatmap.aggregator.config_model import StoreFile
from heatmap.aggregator.live.settings import LiveSettings
from heatmap.aggregator.pid_class import ClassRule
from heatmap.aggregator.retention import RetentionPolicy
from sensing.runtime.mqtt_link import BrokerAddress, TlsFiles
from sensing.runtime.typed_config import config_path, read_toml, validate


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
    live: LiveSettings | None = None
    """the live aggregator's settings; None: off (``[live] enabled = false``, or no plan)"""


def load(path: str | Path) -> AggregatorConfig:
    """Load and validate ``path``; ConfigError naming the field on any problem."""
    p = Path(path)
    return parse(read_toml(p, "config file"), source=str(p), base=p.resolve().parent)


def parse(
    data: dict[str, Any], source: str = "<memory>", base: Path | None = None
) -> AggregatorConfig:
    """Validate a parsed ``store.toml``; relative paths against ``base``.

    The schema's rules are :class:`StoreFile`'s; here are the ones about other
    files: the floor plan loads and is this store's, the TLS files exist.
    """
    f = validate(data, StoreFile, source)
    base = base or Path.cwd()

    path = partial(config_path, base=base)

    def error(key: str, what: str) -> ConfigError:
        return ConfigError(f"{source}: {key}: {what}")

    a, r, b = f.aggregator, f.retention, f.broker
    plan_path = path(a.floor_plan)
    plan_nodes: tuple[str, ...] = ()
    tz = "UTC"
    if plan_path is not None:
        from heatmap.spatial import floorplan

        try:
            plan = floorplan.load(plan_path)
        except ConfigError as e:
            raise error("aggregator.floor_plan", str(e)) from None
        if plan.store_id != a.store:
            raise error(
                "aggregator.floor_plan",
                f"{plan_path} is the plan of store {plan.store_id!r}, not {a.store!r}",
            )
        plan_nodes = tuple(n.id for n in plan.nodes)
        tz = plan.timezone

    tls_files = {"ca": path(b.ca), "cert": path(b.cert), "key": path(b.key)}
    for name, file in tls_files.items():
        if file is not None and not file.is_file():
            raise error(f"broker.{name}", f"{file}: no such file")
    ca, cert, key = tls_files.values()
    tls = TlsFiles(ca, cert, key) if ca is not None else None
    port = b.port if b.port is not None else (8883 if tls else 1883)

    rule = ClassRule(
        ble_min_rssi_dbm=r.ble_min_rssi_dbm,
        wifi_min_rssi_dbm=r.wifi_min_rssi_dbm,
        min_span_s=r.visitor_min_span_s,
    )
    policy = RetentionPolicy(
        retention_hours=r.retention_hours,
        aggregate_after_s=r.aggregate_after_s,
        rule=rule,
        k=a.k,
        tz=tz,
    )
    lv = f.live
    live = (
        LiveSettings(
            interval_s=lv.interval_s,
            lag_s=lv.lag_s,
            cell_m=lv.cell_m,
            k=a.k,
            occupancy_interval_s=lv.occupancy_interval_s,
            window_ms=lv.window_s * 1000,
        )
        if lv.enabled and plan_path is not None
        else None
    )
    return AggregatorConfig(
        store=a.store,
        db=path(a.db),  # type: ignore[arg-type]
        broker=BrokerAddress(b.host, port, tls, b.username, b.password),
        client_id=a.client_id or f"footfall-aggregator-{a.store}",
        retention=policy,
        k=a.k,
        floor_plan=plan_path,
        plan_nodes=plan_nodes,
        status_interval_s=a.status_interval_s,
        offline_after_s=a.offline_after_s,
        source=source,
        live=live,
    )
