"""Replay a node's capture files through the real node pipeline to a broker.

This is exactly what a node does live, with files in place of radios and serial
ports: decode → pseudonymize → batch → publish (QoS 1), boards' UART bytes →
frames → door/floor events, then a retained ``done`` status with the last seq of
every publisher so the aggregator knows when it has everything.
"""

from __future__ import annotations

import heapq
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from firmware_bridge.board_clock import BoardClock
from firmware_bridge.decoder import StreamDecoder
from firmware_bridge.protocol import DoorCrossing, Hello, TileChange
from sensing import __version__, payloads, topics
from sensing.batcher import Batcher
from sensing.capture_file import CaptureReader, Record
from sensing.mqtt_link import BrokerAddress, Publisher, connect, make_client
from sensing.node_pipeline import NodeFilters, NodePipeline
from sensing.pseudonym import KeyFile, Pseudonymizer

UART_CHUNK = 4096


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


def _records(paths: list[Path]) -> Iterator[Record]:
    readers = [iter(CaptureReader(p)) for p in paths]
    return heapq.merge(*readers, key=lambda r: r.t_ns)


def board_events(path: Path) -> tuple[list[tuple[int, str, list[int]]], dict[str, int]]:
    """Decode a board's UART byte stream: [(t_ms, kind, items)], link stats."""
    meta = json.loads(path.with_suffix(path.suffix + ".json").read_text())
    clock = BoardClock()
    clock.set_offset(int(meta["tick0_epoch_ms"]))
    dec = StreamDecoder()
    out: list[tuple[int, str, list[int]]] = []
    with path.open("rb") as f:
        while chunk := f.read(UART_CHUNK):
            for fr in dec.feed(chunk):
                m = fr.msg
                if isinstance(m, Hello):
                    continue
                if isinstance(m, DoorCrossing):
                    out.append((clock.to_epoch_ms(m.tick_ms), "door", [m.direction]))
                elif isinstance(m, TileChange):
                    out.append((clock.to_epoch_ms(m.tick_ms), "floor", [m.tile, m.state]))
    return out, dec.stats.as_dict()


def replay_node(
    store: str,
    node: str,
    capture_dir: Path,
    keyfile: Path,
    broker: BrokerAddress,
    filters: NodeFilters | None = None,
    boards: dict[str, Path] | None = None,
) -> ReplayResult:
    """Replay one node. ``boards`` maps "door/{id}" or "floor/{id}" to UART files."""
    started = time.monotonic()
    ring, sched = KeyFile(keyfile).load()
    pipe = NodePipeline(Pseudonymizer(ring, sched), filters)
    status_topic = topics.node_status_topic(store, node)
    offline = payloads.encode({"v": 1, "state": "offline"})
    client = make_client(broker, f"footfall-node-{store}-{node}", will=(status_topic, offline))
    connect(client, broker)
    pub = Publisher(client)
    try:
        pub.publish(
            status_topic, payloads.encode(_status("online", started, pipe, None, {})), retain=True
        )
        batcher = Batcher("obs", header={"node": node})
        obs_topic = topics.obs_topic(store, node)
        sources = [p for p in (capture_dir / "wifi.pcap", capture_dir / "ble.pcap") if p.exists()]
        for rec in _records(sources):
            o = pipe.process(rec)
            if o is None:
                continue
            row = [o.pid, o.rssi, o.band, o.flags] + ([o.sig] if o.sig else [])
            done = batcher.add(o.t_ms, row)
            if done is not None:
                done["epoch"] = ring.epoch
                pub.publish(obs_topic, payloads.encode(done))
        last = batcher.flush()
        if last is not None:
            last["epoch"] = ring.epoch
            pub.publish(obs_topic, payloads.encode(last))
        board_status = {
            name: _replay_board(store, name, path, pub) for name, path in (boards or {}).items()
        }
        last_seq = batcher.seq - 1 if batcher.seq else None
        pub.publish(
            status_topic,
            payloads.encode(_status("done", started, pipe, last_seq, board_status)),
            retain=True,
        )
        pub.drain()
    finally:
        ring.erase()
        client.loop_stop()
        client.disconnect()
    return ReplayResult(
        node,
        pipe.frames,
        pipe.emitted,
        batcher.seq,
        last_seq,
        pipe.rejects(),
        board_status,
        time.monotonic() - started,
    )


def _replay_board(store: str, name: str, path: Path, pub: Publisher) -> dict[str, int]:
    kind, ident = name.split("/", 1)
    topic = topics.door_topic(store, ident) if kind == "door" else topics.floor_topic(store, ident)
    events, link = board_events(path)
    b = Batcher("ev", max_items=200, max_age_ms=10_000, extra=lambda: {"board": link})
    for t_ms, _, items in events:
        done = b.add(t_ms, items)
        if done is not None:
            pub.publish(topic, payloads.encode(done))
    last = b.flush()
    if last is not None:
        pub.publish(topic, payloads.encode(last))
    return {"last_seq": b.seq - 1, "events": len(events), **link}


def _status(
    state: str,
    started: float,
    pipe: NodePipeline,
    last_seq: int | None,
    boards: dict[str, dict[str, int]],
) -> dict[str, Any]:
    st: dict[str, Any] = {
        "v": 1,
        "state": state,
        "version": __version__,
        "uptime_s": round(time.monotonic() - started, 3),
        "spool_depth": 0,
        "last_seq": last_seq,
        "key_epoch": pipe.pseudo.ring.epoch,
        "frames": pipe.frames,
        "dropped": pipe.rejects(),
    }
    if boards:
        st["boards"] = boards
    return st
