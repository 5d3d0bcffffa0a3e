"""The node's published streams: what the sources produce becomes batches in the spool.

One stream per topic: ``obs``, which every radio of the node feeds, and one per
sensor board or beam door (``door/{id}``, ``floor/{id}``). A stream holds its
batcher, the source whose resume cursor it counts, and the key epoch of the batch
it is filling. Only the daemon's main loop calls :class:`Streams` (no locks).

Key epochs: an ``obs`` batch never spans two key epochs. When the pipeline rolls
the key, the open batch is closed first, and every batch says the epoch of its
pseudonyms.

Closing a batch: it is written to the spool (fsync'd) with the cursor of its
source, so a killed replay resumes after its last spooled batch. A live node
drops a batch it cannot spool (disk full, read-only card) and counts its items
(``spool_write_failed``); a replay stops instead, and resumes later.

Refused frames: while the clock gate refuses (:mod:`sensing.node.clock_gate`), no
frame is even pseudonymized, and frames and events are counted ``clock_unsynced``.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

from firmware_bridge.errors import FootfallError
from firmware_bridge.events import DoorEvent, TileEvent, payload_items
from sensing.capture.capture_file import Record
from sensing.capture.decoded import BleAdvert
from sensing.node import log as node_log
from sensing.node.batcher import Batcher
from sensing.node.clock_gate import ClockGate
from sensing.node.config import NodeConfig
from sensing.node.delivery import Delivery
from sensing.node.pipeline import NodePipeline
from sensing.node.sources import Source
from sensing.node.spool import Spool, SpoolError
from sensing.privacy.pseudonym import KeyRing
from sensing.wire import topics

__all__ = ["EV_MAX_AGE_MS", "EV_MAX_ITEMS", "Stream", "Streams"]

EV_MAX_ITEMS, EV_MAX_AGE_MS = 200, 10_000
"""door/floor batches: events and age at most"""


@dataclass
class Stream:
    """One published stream: its topic, its batcher and where it stands."""

    name: str
    topic: str
    batcher: Batcher
    source: Source | None = None
    consumed: int = 0
    """items taken from the source, including those skipped on resume"""
    opened_at: float | None = None
    """monotonic time the open batch of a realtime source began, s"""
    epoch: int | None = None
    """key epoch of the open ``obs`` batch"""
    events: int = 0
    """board events taken"""


class Streams:
    """The node's streams by name, fed by the main loop, closing batches into the spool.

    Parameters
    ----------
    cfg
        the node's configuration (store, node, batch bounds).
    pipe, ring
        the node's pipeline and its key ring (the epoch of the pseudonyms).
    spool
        where closed batches go.
    clock_gate
        refuses frames while the clock is not synchronized.
    log
        the daemon's structured log.
    spooled
        batches spooled per stream, counted into in place (the run summary's).
    """

    def __init__(
        self,
        cfg: NodeConfig,
        pipe: NodePipeline,
        ring: KeyRing,
        spool: Spool,
        clock_gate: ClockGate,
        log: logging.Logger,
        spooled: dict[str, int],
    ) -> None:
        self.cfg = cfg
        self.pipe = pipe
        self.ring = ring
        self.spool = spool
        self.clock_gate = clock_gate
        self.log = log
        self.spooled = spooled
        self.by_name: dict[str, Stream] = {}
        self.dropped: Counter[str] = Counter()
        """frames and events refused (``clock_unsynced``) or lost (``spool_write_failed``)"""
        self.taken = 0
        """radio records and board events offered to the streams, refused ones included"""
        self.kept = 0
        """observations made and board events batched (:mod:`sensing.node.total_loss`)"""
        self.delivery: Delivery | None = None
        """set once the link exists: a full spool must not drop what is in flight"""

    # ------------------------------------------------------------------ setup

    def add(self, src: Source) -> None:
        """Give ``src`` its stream (radios share the ``obs`` stream)."""
        if src.stream in self.by_name:
            if src.stream == "obs":
                return  # several radios feed one obs stream
            raise FootfallError(f"{src.stream} is fed by two sources")
        self.by_name[src.stream] = self._make(src)

    def _make(self, src: Source) -> Stream:
        cfg = self.cfg
        if src.stream == "obs":
            b = Batcher(
                "obs", header={"node": cfg.node}, max_items=cfg.max_items, max_age_ms=cfg.max_age_ms
            )
            obs_topic = topics.obs_topic(cfg.store, cfg.node)
            return Stream("obs", obs_topic, b, src if src.resumable else None)
        kind, ident = src.stream.split("/", 1)
        topic = (
            topics.door_topic(cfg.store, ident)
            if kind == "door"
            else topics.floor_topic(cfg.store, ident)
        )
        b = Batcher(
            "ev",
            max_items=EV_MAX_ITEMS,
            max_age_ms=min(cfg.max_age_ms, EV_MAX_AGE_MS),
            extra=lambda: {"board": src.link_stats()},
        )
        return Stream(src.stream, topic, b, src)

    def resume(self, src: Source, skip: int) -> None:
        """``src`` restarts after ``skip`` items (its spooled cursor)."""
        if src.stream in self.by_name and self.by_name[src.stream].source is src:
            self.by_name[src.stream].consumed = skip

    # ------------------------------------------------------------------ feeding

    def take(self, src: Source, payload: Any) -> None:
        """What ``src`` produced: radio records, or board events."""
        st = self.by_name[src.stream]
        if src.stream == "obs":
            self._radio_records(st, src, payload)
        else:
            self._board_events(st, payload)

    def _radio_records(self, st: Stream, src: Source, records: list[Record | BleAdvert]) -> None:
        pipe, batcher, ring = self.pipe, st.batcher, self.ring
        counted = st.source is src
        realtime = src.realtime
        for rec in records:
            before = st.consumed
            self.taken += 1
            if counted:
                st.consumed += 1
            if self.clock_gate.refuse:  # not even pseudonymized: a wrong clock could roll the key
                self.dropped["clock_unsynced"] += 1
                continue
            o = pipe.process(rec) if isinstance(rec, Record) else pipe.process_advert(rec)
            if o is None:
                continue
            self.kept += 1
            if st.epoch != ring.epoch:
                if len(batcher):
                    self._close(st, batcher.flush(), before)
                st.epoch = ring.epoch
            done = batcher.add(o.t_ms, o.row())
            if done is not None:
                self._close(st, done, before)
            if realtime and (done is not None or len(batcher) == 1):
                st.opened_at = time.monotonic()

    def _board_events(self, st: Stream, events: list[DoorEvent | TileEvent]) -> None:
        for e in events:
            before = st.consumed
            st.consumed += 1
            st.events += 1
            self.taken += 1
            if self.clock_gate.refuse:
                self.dropped["clock_unsynced"] += 1
                continue
            self.kept += 1
            done = st.batcher.add(e.t_ms, payload_items(e))
            if done is not None:
                self._close(st, done, before)
            if (
                st.source is not None
                and st.source.realtime
                and (done is not None or len(st.batcher) == 1)
            ):
                st.opened_at = time.monotonic()

    # ------------------------------------------------------------------ closing

    def _close(self, st: Stream, payload: dict[str, Any] | None, cursor: int) -> None:
        """Number and spool a closed batch (the batcher's own seq is not used)."""
        if payload is None:
            return
        if st.name == "obs":
            payload["epoch"] = st.epoch if st.epoch is not None else self.ring.epoch
            n = len(payload["obs"])
        else:
            n = len(payload["ev"])
        src = st.source
        resumable = src is not None and src.resumable
        before = self.spool.stats().dropped_batches
        try:
            self.spool.put(
                st.name,
                st.topic,
                payload,
                n,
                cursor=(src.name, cursor) if src is not None and resumable else None,
                inflight=self.delivery.inflight_ids() if self.delivery is not None else (),
            )
        except SpoolError as e:
            if resumable:
                raise  # a replay must not skip a batch: stop, and resume later
            # live: losing this batch beats a restart loop (disk full, read-only card)
            self.dropped["spool_write_failed"] += n
            if self.dropped["spool_write_failed"] == n:
                node_log.event(self.log, 40, "spool_write_failed", error=str(e))
            return
        self.spooled[st.name] = self.spooled.get(st.name, 0) + 1
        dropped = self.spool.stats().dropped_batches - before
        if dropped:
            node_log.event(
                self.log, 30, "spool_full_dropped_oldest", batches=dropped, depth=self.spool.depth
            )

    def age_flush(self, now: float) -> None:
        """Close the batches of realtime sources that are ``max_age_ms`` old (monotonic s)."""
        for st in self.by_name.values():
            if st.opened_at is None or not len(st.batcher):
                continue
            limit = st.batcher.max_age_ms / 1000
            if now - st.opened_at >= limit:
                self._close(st, st.batcher.flush(), st.consumed)
                st.opened_at = None

    def flush_all(self) -> None:
        """Close every open batch."""
        for st in self.by_name.values():
            self._close(st, st.batcher.flush(), st.consumed)
            st.opened_at = None

    # ------------------------------------------------------------------ status

    def boards(self) -> dict[str, dict[str, int]]:
        """Per board stream: its last spooled seq, events taken and link counters."""
        boards = {}
        for st in self.by_name.values():
            if st.name != "obs":
                last = self.spool.last_seq(st.name)
                link = st.source.link_stats() if st.source is not None else {}
                boards[st.name] = {
                    "last_seq": -1 if last is None else last,
                    "events": st.events,
                    **link,
                }
        return boards
