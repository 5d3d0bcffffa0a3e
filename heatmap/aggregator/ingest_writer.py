"""Ingest's database side: validate a message, store it, count what happened.

:class:`IngestWriter` checks each inbound message against its topic and schema
(:func:`sensing.wire.payloads.decode`) and rejects what does not validate,
counted by reason (:data:`~heatmap.aggregator.ingest_stats.REJECT_REASONS`,
never raised); stores the rest in the store database, deduplicated by
(publisher, seq); tracks what each publisher last sent
(:class:`~heatmap.aggregator.ingest_stats.PublisherTrack`); commits with the
rejects counted meanwhile; and says when every node's batches are all stored.
The MQTT side, which feeds it from the broker and acknowledges what it
committed, is :class:`heatmap.aggregator.ingest.Ingestor`.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from firmware_bridge.errors import PayloadError, TopicError
from heatmap.aggregator import store_db
from heatmap.aggregator.ingest_ack import AckRuns, checkpointed
from heatmap.aggregator.ingest_stats import (
    MAX_CLOCK_SKEW_MS,
    TIME_FLOOR_MS,
    IngestSnapshot,
    IngestStats,
    PublisherTrack,
)
from heatmap.aggregator.store_db import Claim, StoreDB
from sensing.wire import payloads, topics

log = logging.getLogger(__name__)
_INBOUND = frozenset({"obs", "door_events", "floor_events", "node_status"})
"""topic kinds the aggregator stores; the others (its own outbound kinds) are rejected
as ``unexpected_kind`` before their payload is decoded"""
ACK_EVERY_S = 0.5
"""acknowledgements (a checkpoint, then the runs that changed) at most this often"""
_LOG_UNDECODABLE = 10
"""how many ``undecodable`` rejects are logged with their traceback (a flood logs no more)"""


@dataclass(frozen=True, slots=True)
class ValidMessage:
    """A message that passed validation, ready to store."""

    kind: str
    entity: str
    payload: dict[str, Any]
    text: str
    received_ms: int


class IngestWriter:
    """Validates and stores one store's inbound messages in ``db_path``.

    Parameters
    ----------
    store
        store id (topic level).
    db_path
        SQLite file; created and migrated to the current schema.
    expire_before
        optional callable returning the retention horizon (Unix ms): batches whose
        newest row is older are counted as ``expired`` and not stored.
    clock
        wall clock in seconds (injected by tests).

    Counters, rejects, tracks and node statuses are guarded by one lock, so any
    thread may read them (:meth:`snapshot`); storing and committing are for one
    thread at a time.
    """

    def __init__(
        self,
        store: str,
        db_path: str,
        *,
        expire_before: Callable[[], int] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = topics.check_id(store, "store")
        self.db_path = db_path
        self.db = StoreDB(db_path)
        self.stats = IngestStats()
        self.rejects: Counter[str] = Counter()
        """rejected messages by reason since start (see
        :data:`~heatmap.aggregator.ingest_stats.REJECT_REASONS`)"""
        self.node_status: dict[str, dict[str, Any]] = {}
        """last status payload of each node"""
        self.publishers: dict[tuple[str, str], PublisherTrack] = {}
        """(kind, id) → track, kind one of obs, door, floor, status"""
        self._expire_before = expire_before
        self._clock = clock
        self._unflushed: Counter[str] = Counter()
        """rejects counted since the last commit (stored with it)"""
        self._done = 0
        """messages handled (stored or rejected), committed or not"""
        self._lock = threading.Lock()
        self._reader: sqlite3.Connection | None = None
        self._undecodable_logged = 0
        self.acks = AckRuns()
        """seqs stored durably per publisher (:mod:`heatmap.aggregator.ingest_ack`)"""
        self.acks.load(self.db.conn)
        self._claimed: list[tuple[str, str, int]] = []
        """(kind, publisher, seq) stored or found stored since the last commit"""
        self._ack_pending: list[tuple[str, str, int]] = []
        """committed, not yet known to be checkpointed"""
        self._last_checkpoint = 0.0

    # ---------------------------------------------------------------- one message

    def handle(self, topic: str, raw: bytes) -> None:
        """Validate and store one message (uncommitted); rejects are counted, never raised."""
        self.store_checked(self.validate(topic, raw))

    def validate(self, topic: str, raw: bytes) -> ValidMessage | str:
        """The message ready to store, or the reason it is rejected (counted): bad
        topic or payload (:func:`sensing.wire.payloads.decode`), a batch of another
        node, rows later than now plus
        :data:`~heatmap.aggregator.ingest_stats.MAX_CLOCK_SKEW_MS` (``time_future``) or
        before :data:`~heatmap.aggregator.ingest_stats.TIME_FLOOR_MS` (``time_past``)."""
        reason = self._check(topic, raw)
        if isinstance(reason, str):
            with self._lock:
                self.stats.messages += 1
                self.rejects[reason] += 1
        else:
            with self._lock:
                self.stats.messages += 1
        return reason

    def _check(self, topic: str, raw: bytes) -> ValidMessage | str:
        try:
            t = topics.parse(topic)
            if t.store != self.store:
                raise TopicError(f"topic of another store: {topic}")
            if t.kind not in _INBOUND:
                return "unexpected_kind"  # not decoded: an outbound kind is never stored
            p, text = payloads.decode_with_text(t.kind, raw)
        except TopicError:
            return "bad_topic"
        except PayloadError as e:
            return e.reason
        except Exception as e:  # a message must never stop ingest: counted, logged, acked
            if self._undecodable_logged < _LOG_UNDECODABLE:
                self._undecodable_logged += 1
                log.warning("undecodable message on %s rejected: %r", topic[:200], e, exc_info=e)
            return "undecodable"
        entity = t.entity or ""
        kind = t.kind
        if kind == "obs" and p["node"] != entity:
            return "node_mismatch"
        now = int(self._clock() * 1000)
        if kind != "node_status":
            rows = p["obs"] if kind == "obs" else p["ev"]
            if p["t0"] < TIME_FLOOR_MS:
                return "time_past"
            if p["t0"] + max((r[0] for r in rows), default=0) > now + MAX_CLOCK_SKEW_MS:
                return "time_future"
        return ValidMessage(kind, entity, p, text, now)

    def store_checked(self, v: ValidMessage | str) -> None:
        """Store what :meth:`validate` returned, or count its reject for the next
        commit (uncommitted either way)."""
        if isinstance(v, ValidMessage):
            self.store_valid(v)
        else:
            self._unflushed[v] += 1
        self._done += 1

    def store_valid(self, v: ValidMessage) -> None:
        """Store a validated message (uncommitted)."""
        kind, entity, p, now = v.kind, v.entity, v.payload, v.received_ms
        if kind == "node_status":
            self.db.set_status(entity, v.text, now)
            with self._lock:
                self.node_status[entity] = p
                self.publishers.setdefault(("status", entity), PublisherTrack()).last_seen_ms = now
            return
        rows = p["obs"] if kind == "obs" else p["ev"]
        t1 = p["t0"] + max((r[0] for r in rows), default=0)
        short = "obs" if kind == "obs" else "door" if kind == "door_events" else "floor"
        if self._expire_before is not None and t1 < self._expire_before():
            with self._lock:
                self.stats.expired += 1
            self._claimed.append((short, entity, p["seq"]))  # settled: never to be stored
            return
        if kind == "obs":
            claim = self.db.add_obs(entity, p, now, v.text)
        elif kind == "door_events":
            claim = self.db.add_door(entity, p, now)
        else:
            claim = self.db.add_floor(entity, p, now)
        # stored now or before (a reused seq: what is stored under it stays, counted)
        self._claimed.append((short, entity, p["seq"]))
        with self._lock:
            self._track(short, entity, p["seq"], t1 if rows else None, now, claim)
            if claim is Claim.NEW:
                self.stats.stored += 1
                if short == "obs":
                    self.stats.observations += len(rows)
            elif claim is Claim.DUPLICATE:
                self.stats.duplicates += 1
        if claim is Claim.CONFLICT:
            self._reject_stored("seq_reused")

    def _reject_stored(self, reason: str) -> None:
        with self._lock:
            self.rejects[reason] += 1
        self._unflushed[reason] += 1

    def _track(
        self, kind: str, ident: str, seq: int, newest: int | None, now: int, claim: Claim
    ) -> None:
        tr = self.publishers.get((kind, ident))
        if tr is None:
            tr = self.publishers[(kind, ident)] = PublisherTrack()
        tr.last_seen_ms = now
        if claim is not Claim.NEW:
            return
        tr.batches += 1
        if tr.last_seq is None or seq > tr.last_seq:
            tr.last_seq = seq
        if newest is not None:
            tr.lag_ms = now - newest
            if tr.data_ms is None or newest > tr.data_ms:
                tr.data_ms = newest

    def commit(self) -> None:
        """Commit what was stored since the last commit, with the rejects counted
        meanwhile; the committed counters then say so."""
        if self._unflushed:
            self.db.add_rejects(dict(self._unflushed))
            self._unflushed.clear()
        self.db.commit()
        self._ack_pending.extend(self._claimed)
        self._claimed.clear()
        with self._lock:
            self.stats.committed_messages = self._done
            self.stats.committed_observations = self.stats.observations

    def ack_due(self, now: float) -> bool:
        """Committed seqs wait for a checkpoint, and :data:`ACK_EVERY_S` has passed."""
        return bool(self._ack_pending) and now - self._last_checkpoint >= ACK_EVERY_S

    def settle_acks(self, now: float) -> bool:
        """Checkpoint; if the whole ``-wal`` went into the main file, what was
        committed is durable and goes into :attr:`acks`. True if it did. (Between
        commits, on the writer thread.)"""
        self._last_checkpoint = now
        if not self._ack_pending or not checkpointed(self.db.conn):
            return False
        for kind, ident, seq in self._ack_pending:
            self.acks.add(kind, ident, seq)
        self._ack_pending.clear()
        return True

    def snapshot(self) -> IngestSnapshot:
        """A consistent copy of the counters, rejects, tracks and node statuses (any thread)."""
        with self._lock:
            return IngestSnapshot(
                IngestStats(**vars(self.stats)),
                dict(self.rejects),
                {k: PublisherTrack(**vars(v)) for k, v in self.publishers.items()},
                dict(self.node_status),
            )

    # ---------------------------------------------------------------- completeness

    def _read_conn(self) -> sqlite3.Connection:
        if self._reader is None:
            self._reader = store_db.connect(self.db_path, readonly=True)
        return self._reader

    def complete(self) -> bool:
        """True when every node reported ``done`` and all its batches are committed."""
        with self._lock:
            statuses = dict(self.node_status)
        if not statuses:
            return False
        conn = self._read_conn()
        for node, st in statuses.items():
            if st.get("state") != "done":
                return False
            want = [("obs", node, st.get("last_seq"))]
            for name, b in dict(st.get("boards") or {}).items():
                kind, ident = name.split("/", 1)
                want.append((kind, ident, b["last_seq"]))
            for kind, pub, last in want:
                n, _ = store_db.stored_seqs(conn, kind, pub)
                if last is not None and last >= 0 and n < last + 1:
                    return False
        return True
