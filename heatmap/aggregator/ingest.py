"""Aggregator ingest: MQTT → validate → SQLite.

Three threads in a pipeline, joined by bounded queues:

* paho's network thread only enqueues (when the queue is full it waits, TCP
  pushes back and the broker queues for our persistent session);
* the validator parses each message and checks it against its schema
  (:func:`sensing.wire.payloads.decode`), rejects and counts by reason what does
  not validate (never raises);
* the writer deduplicates by (publisher, seq) and stores in batched
  transactions. SQLite reads an obs batch's rows from the validated text itself
  and releases the GIL while it does, so the validator works on the next
  message meanwhile.

Messages are acknowledged to the broker (QoS 1, manual PUBACK) only once the
transaction holding them is committed. If the process dies, everything not yet
committed is redelivered to the persistent session when it comes back, and
what was committed but not yet acknowledged is recognised by its (publisher,
seq): nothing is lost, nothing is stored twice.

A transaction is committed when the writer's queue runs empty, after
:data:`COMMIT_EVERY_MSGS` messages or after :data:`COMMIT_EVERY_S`, whichever
comes first: a quiet store commits every message at once, a busy one in large
batches.
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import logging
import queue
import sqlite3
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import paho.mqtt.client as mqtt

from firmware_bridge.errors import BrokerError, PayloadError, TopicError
from heatmap.aggregator import store_db
from heatmap.aggregator.store_db import Claim, StoreDB
from sensing.runtime.mqtt_link import BrokerAddress, connect, make_client
from sensing.wire import payloads, topics

log = logging.getLogger(__name__)
SUBSCRIBE_TIMEOUT_S = 10.0
"""how long :meth:`Ingestor.start` waits for the broker to acknowledge its subscriptions"""

COMMIT_EVERY_S = 0.25
COMMIT_EVERY_MSGS = 200
QUEUE_MAX = 1000
"""bound of each of the two queues (network → validator → writer), messages: at most
about 2 × 1000 × 20 kB = 40 MB of 500-row batches in memory"""

REJECT_REASONS = (
    "too_large",
    "not_utf8",
    "not_json",
    "schema",
    "bad_topic",
    "node_mismatch",
    "seq_reused",
    "unexpected_kind",
)
"""why a message is rejected: payload checks (:func:`sensing.wire.payloads.decode`), a topic
that is not one of this store's inbound topics, an obs batch whose ``node`` differs
from its topic's, a (publisher, seq) already stored with other content"""

T = TypeVar("T")


@dataclass
class IngestStats:
    """Counters since start (messages and observations, not bytes)."""

    messages: int = 0
    stored: int = 0
    """batches stored (obs, door and floor)"""
    duplicates: int = 0
    """redelivered batches recognised and not stored again"""
    observations: int = 0
    """observations stored"""
    expired: int = 0
    """batches older than the retention horizon, not stored"""
    committed_messages: int = 0
    committed_observations: int = 0


@dataclass
class PublisherTrack:
    """What the aggregator last heard from one publisher (node, door or floor array)."""

    last_seen_ms: int = 0
    """wall clock when its last message arrived, Unix ms"""
    last_seq: int | None = None
    """highest seq stored"""
    batches: int = 0
    lag_ms: int | None = None
    """arrival time minus the time of the newest row of the last batch, ms"""
    data_ms: int | None = None
    """time of the newest row stored, Unix ms"""


@dataclass(frozen=True)
class IngestSnapshot:
    stats: IngestStats
    rejects: dict[str, int]
    publishers: dict[tuple[str, str], PublisherTrack]
    node_status: dict[str, dict[str, Any]]


@dataclass
class _Job:
    fn: Callable[[sqlite3.Connection], Any]
    future: cf.Future[Any] = field(default_factory=cf.Future)


@dataclass(frozen=True, slots=True)
class _Valid:
    """A message that passed validation, ready to store."""

    kind: str
    entity: str
    payload: dict[str, Any]
    text: str
    received_ms: int


_STOP = object()


class Ingestor:
    """Subscribes to one store's inbound topics and writes them to ``db_path``.

    Parameters
    ----------
    store
        store id (topic level).
    db_path
        SQLite file; created and migrated to the current schema.
    broker
        where to subscribe.
    client_id
        MQTT client id of the persistent session (default ``footfall-aggregator-{store}``).
    expire_before
        optional callable returning the retention horizon (Unix ms): batches whose
        newest row is older are counted as ``expired`` and not stored.
    clock
        wall clock in seconds (injected by tests).
    queue_max
        bound of each of the two queues, messages.
    """

    def __init__(
        self,
        store: str,
        db_path: str,
        broker: BrokerAddress,
        client_id: str | None = None,
        *,
        expire_before: Callable[[], int] | None = None,
        clock: Callable[[], float] = time.time,
        queue_max: int = QUEUE_MAX,
    ) -> None:
        self.store = topics.check_id(store, "store")
        self.db_path = db_path
        self.db = StoreDB(db_path)
        self.broker = broker
        self.stats = IngestStats()
        self.rejects: Counter[str] = Counter()
        """rejected messages by reason since start (see :data:`REJECT_REASONS`)"""
        self.node_status: dict[str, dict[str, Any]] = {}
        """last status payload of each node"""
        self.publishers: dict[tuple[str, str], PublisherTrack] = {}
        """(kind, id) → track, kind one of obs, door, floor, status"""
        self.error: BaseException | None = None
        """what stopped the pipeline, if anything did"""
        self._expire_before = expire_before
        self._clock = clock
        self._unflushed: Counter[str] = Counter()
        self._done = 0
        self._in: queue.Queue[Any] = queue.Queue(maxsize=queue_max)
        self._out: queue.Queue[Any] = queue.Queue(maxsize=queue_max)
        self._lock = threading.Lock()
        self._gen = 1
        """connection generation: a PUBACK goes only to the connection that delivered"""
        self._stopping = threading.Event()
        self._client = make_client(broker, client_id or f"footfall-aggregator-{store}", clean=False)
        self._client.manual_ack_set(True)
        self._client.on_message = self._on_message
        self._client.on_subscribe = self._on_subscribe
        self._subs_pending = 0
        self._subscribed = threading.Event()
        self._validator = threading.Thread(
            target=self._validate_loop, name="ingest-validator", daemon=True
        )
        self._writer = threading.Thread(target=self._write_loop, name="ingest-writer", daemon=True)
        self._reader: sqlite3.Connection | None = None

    # ---------------------------------------------------------------- life cycle

    def start(self, subscribe_timeout_s: float = SUBSCRIBE_TIMEOUT_S) -> None:
        """Connect, subscribe, and return once the broker has acknowledged the
        subscriptions (or after ``subscribe_timeout_s``, with a warning): what is
        published after this returns reaches the store. (Without waiting, a message
        published right after start could reach the broker before the SUBSCRIBE
        and be dropped for a new session — a test on a loaded machine lost one.)"""
        self._writer.start()
        self._validator.start()
        connect(self._client, self.broker)
        self._client.on_connect = self._on_reconnect
        self._subscribe()
        if not self._subscribed.wait(subscribe_timeout_s):
            log.warning(
                "broker did not acknowledge the subscriptions within %.0f s", subscribe_timeout_s
            )

    @property
    def subscribed(self) -> bool:
        """The broker has acknowledged every inbound subscription of this connection."""
        return self._subscribed.is_set()

    def _on_reconnect(
        self, _c: mqtt.Client, _u: object, _f: object, rc: object, _p: object
    ) -> None:
        # paho calls this before it reads the new connection's first PUBLISH
        with self._lock:
            self._gen += 1
        if not getattr(rc, "is_failure", False):
            self._subscribe()

    def _subscribe(self) -> None:
        filters = topics.inbound_filters(self.store)
        with self._lock:
            self._subscribed.clear()
            self._subs_pending = len(filters)
        for f in filters:
            self._client.subscribe(f, qos=1)

    def _on_subscribe(
        self, _c: mqtt.Client, _u: object, _mid: int, _rc: object, _p: object
    ) -> None:
        with self._lock:
            self._subs_pending -= 1
            if self._subs_pending <= 0:
                self._subscribed.set()

    def stop(self, timeout_s: float = 60.0) -> None:
        """Stop receiving, store and acknowledge what is queued, close the database.

        After a storage failure (:attr:`error`) nothing more is stored: what was
        not committed was not acknowledged and comes again to the next session.
        """
        self._stopping.set()
        wait = 5.0 if self.error is not None else timeout_s
        self._put(self._in, _STOP)
        self._validator.join(timeout=wait)
        self._writer.join(timeout=wait)
        self._client.disconnect()  # after the last PUBACKs, which the network thread sends
        self._client.loop_stop()
        if self._reader is not None:
            self._reader.close()
        stuck = self._writer.is_alive() or self._validator.is_alive()
        if not stuck:
            self.db.close()
        if stuck and self.error is None:
            raise BrokerError(f"ingest did not finish within {timeout_s:.0f} s")

    def submit(self, fn: Callable[[sqlite3.Connection], T]) -> cf.Future[T]:
        """Run ``fn(conn)`` on the writer thread between messages, then commit.

        The way for other jobs (retention, aggregates) to write without competing
        with ingest for SQLite's lock.
        """
        job = _Job(fn)
        if self.error is not None:
            job.future.set_exception(self.error)
        else:
            self._put(self._in, job)
        return job.future

    @property
    def queue_depth(self) -> int:
        """Messages received and not yet stored."""
        return self._in.qsize() + self._out.qsize()

    def _put(self, q: queue.Queue[Any], item: Any) -> None:
        while True:
            try:
                q.put(item, timeout=1.0)
                return
            except queue.Full:
                if self.error is not None:
                    return

    # ---------------------------------------------------------------- network thread

    def _on_message(self, _c: mqtt.Client, _u: object, msg: mqtt.MQTTMessage) -> None:
        if self._stopping.is_set():
            return  # not acknowledged: redelivered to the next session
        self._put(self._in, (msg.topic, bytes(msg.payload), msg.mid, msg.qos, self._gen))

    # ---------------------------------------------------------------- validator thread

    def _validate_loop(self) -> None:
        try:
            while True:
                item = self._in.get()
                if item is _STOP or isinstance(item, _Job):
                    self._put(self._out, item)
                    if item is _STOP:
                        return
                    continue
                topic, raw, mid, qos, gen = item
                self._put(self._out, (self.validate(topic, raw), mid, qos, gen))
        except BaseException as e:
            self._fail(e)

    # ---------------------------------------------------------------- writer thread

    def _write_loop(self) -> None:
        acks: list[tuple[int, int, int]] = []
        first = 0.0
        try:
            while True:
                if acks:
                    try:
                        item = self._out.get_nowait()
                    except queue.Empty:
                        self._commit(acks)
                        continue
                else:
                    item = self._out.get()
                    first = time.monotonic()
                if item is _STOP:
                    self._commit(acks)
                    return
                if isinstance(item, _Job):
                    self._commit(acks)
                    self._run_job(item)
                    continue
                v, mid, qos, gen = item
                if isinstance(v, _Valid):
                    self.store_valid(v)
                else:
                    self._unflushed[v] += 1
                self._done += 1
                acks.append((mid, qos, gen))
                if len(acks) >= COMMIT_EVERY_MSGS or time.monotonic() - first >= COMMIT_EVERY_S:
                    self._commit(acks)
        except BaseException as e:  # storage failure: crash-only, the broker redelivers
            self._fail(e)

    def _fail(self, e: BaseException) -> None:
        log.error("ingest stopped: %s", e, exc_info=e)
        self.error = e
        for q in (self._in, self._out):
            while True:
                try:
                    item = q.get_nowait()
                except queue.Empty:
                    break
                if isinstance(item, _Job) and item.future.set_running_or_notify_cancel():
                    item.future.set_exception(e)
        with contextlib.suppress(queue.Full):
            self._out.put_nowait(_STOP)  # a writer waiting for the validator stops too

    def _run_job(self, job: _Job) -> None:
        if not job.future.set_running_or_notify_cancel():
            return
        try:
            result = job.fn(self.db.conn)
            self.db.commit()
        except Exception as e:
            self.db.conn.rollback()
            job.future.set_exception(e)
            return
        job.future.set_result(result)

    def _commit(self, acks: list[tuple[int, int, int]]) -> None:
        if self._unflushed:
            self.db.add_rejects(dict(self._unflushed))
            self._unflushed.clear()
        self.db.commit()
        with self._lock:
            gen = self._gen
            self.stats.committed_messages = self._done
            self.stats.committed_observations = self.stats.observations
        for mid, qos, g in acks:
            if qos and g == gen:  # a mid of an older connection may name another message now
                self._client.ack(mid, qos)
        acks.clear()

    # ---------------------------------------------------------------- one message

    def handle(self, topic: str, raw: bytes) -> None:
        """Validate and store one message (uncommitted); rejects are counted, never raised."""
        v = self.validate(topic, raw)
        if isinstance(v, _Valid):
            self.store_valid(v)
        else:
            self._unflushed[v] += 1
        self._done += 1

    def validate(self, topic: str, raw: bytes) -> _Valid | str:
        """The message ready to store, or the reason it is rejected (counted)."""
        reason = self._check(topic, raw)
        if isinstance(reason, str):
            with self._lock:
                self.stats.messages += 1
                self.rejects[reason] += 1
        else:
            with self._lock:
                self.stats.messages += 1
        return reason

    def _check(self, topic: str, raw: bytes) -> _Valid | str:
        try:
            t = topics.parse(topic)
            if t.store != self.store:
                raise TopicError(f"topic of another store: {topic}")
            p, text = payloads.decode_with_text(t.kind, raw)
        except TopicError:
            return "bad_topic"
        except PayloadError as e:
            return e.reason
        entity = t.entity or ""
        kind = t.kind
        if kind == "obs" and p["node"] != entity:
            return "node_mismatch"
        if kind not in ("obs", "door_events", "floor_events", "node_status"):
            return "unexpected_kind"
        return _Valid(kind, entity, p, text, int(self._clock() * 1000))

    def store_valid(self, v: _Valid) -> None:
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
        if self._expire_before is not None and t1 < self._expire_before():
            with self._lock:
                self.stats.expired += 1
            return
        if kind == "obs":
            claim = self.db.add_obs(entity, p, now, v.text)
            short = "obs"
        elif kind == "door_events":
            claim, short = self.db.add_door(entity, p, now), "door"
        else:
            claim, short = self.db.add_floor(entity, p, now), "floor"
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

    def wait_complete(self, nodes: set[str], timeout_s: float = 300.0) -> bool:
        """Wait (bounded) until :meth:`complete` with a status from each of ``nodes``."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.error is not None:
                return False
            with self._lock:
                have = set(self.node_status)
            if nodes <= have and self.complete():
                return True
            time.sleep(0.1)
        return False
