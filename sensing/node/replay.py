"""Replay a node's capture files through the node daemon to a broker.

A replay *is* the node daemon (:mod:`sensing.node.daemon`) with files in place of
radios and serial ports: decode → pseudonymize → batch → spool → publish (QoS 1),
boards' UART bytes → frames → door/floor events, then a retained ``done`` status
with the last seq of every publisher so the aggregator knows when it has
everything. It runs as fast as the files can be read (no real-time pacing).
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from firmware_bridge.errors import ConfigError
from sensing.node.clock_sync import FixedClock
from sensing.node.config import BleConfig, BoardConfig, BrokerConfig, NodeConfig, WifiConfig
from sensing.node.daemon import NodeDaemon
from sensing.node.pipeline import NodeFilters
from sensing.node.sources import board_events
from sensing.runtime.mqtt_link import BrokerAddress

__all__ = ["ReplayResult", "board_events", "replay_config", "replay_node"]


@dataclass
class ReplayResult:
    node: str
    frames: int
    observations: int
    batches: int
    last_seq: int | None
    rejects: dict[str, int]
    boards: dict[str, dict[str, int]] = field(default_factory=dict)
    seconds: float = 0.0


def replay_config(
    store: str,
    node: str,
    capture_dir: Path,
    keyfile: Path,
    broker: BrokerAddress,
    state_dir: Path,
    filters: NodeFilters | None = None,
    boards: dict[str, Path] | None = None,
) -> NodeConfig:
    """The node config of a replay: the node's ``wifi.pcap``/``ble.pcap`` in
    ``capture_dir`` and the boards' UART recordings, fast-forward, exit when done."""
    wifi = capture_dir / "wifi.pcap"
    ble = capture_dir / "ble.pcap"
    board_cfgs = []
    for name, path in (boards or {}).items():
        kind, _, ident = name.partition("/")
        if kind not in ("door", "floor") or not ident:
            raise ConfigError(f"board {name!r}: must be 'door/{{id}}' or 'floor/{{id}}'")
        board_cfgs.append(
            BoardConfig(
                replay=path,
                door=ident if kind == "door" else None,
                floor=ident if kind == "floor" else None,
            )
        )
    tls = broker.tls
    return NodeConfig(
        store=store,
        node=node,
        keyfile=keyfile,
        state_dir=state_dir,
        broker=BrokerConfig(
            broker.host,
            broker.port,
            tls.ca if tls else None,
            tls.cert if tls else None,
            tls.key if tls else None,
            reconnect_max_s=2.0,
            mqtt5=broker.mqtt5,
        ),
        filters=filters or NodeFilters(),
        wifi=WifiConfig(pcap=wifi if wifi.exists() else None),
        ble=BleConfig(pcap=ble if ble.exists() else None),
        boards=tuple(board_cfgs),
        require_sync=False,  # the files carry their own time
        status_interval_s=3600.0,
    )


def replay_node(
    store: str,
    node: str,
    capture_dir: Path,
    keyfile: Path,
    broker: BrokerAddress,
    filters: NodeFilters | None = None,
    boards: dict[str, Path] | None = None,
) -> ReplayResult:
    """Replay one node. ``boards`` maps "door/{id}" or "floor/{id}" to UART files.

    The spool lives in a private temporary directory for the replay's duration.
    """
    state = Path(tempfile.mkdtemp(prefix=f"footfall-replay-{node}-"))
    try:
        cfg = replay_config(store, node, capture_dir, keyfile, broker, state, filters, boards)
        s = NodeDaemon(cfg, clock=FixedClock(synced=True)).run(install_signals=False)
    finally:
        shutil.rmtree(state, ignore_errors=True)
    return ReplayResult(
        node,
        s.frames,
        s.observations,
        s.batches.get("obs", 0),
        s.last_seq.get("obs"),
        s.rejects,
        s.boards,
        s.seconds,
    )
