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

After a commit the writer also tells each publisher how far the store has its
batches (:mod:`heatmap.aggregator.ingest_ack`): at most every
:data:`~heatmap.aggregator.ingest_writer.ACK_EVERY_S` it checkpoints the database
and, if the whole ``-wal`` is in the main file, publishes (retained, QoS 1, on this
connection) the runs of stored seqs of each publisher that changed; at start and
after every reconnect those of every publisher the database holds. A node deletes a
spooled batch only then, so a broker that loses what it acknowledged (its autosave
window), a power cut or a lost ``-wal`` loses nothing the node still has.

This module is the MQTT side (subscriptions, reconnects, the queues and their
threads, acknowledgements); validating, storing and counting are
:class:`heatmap.aggregator.ingest_writer.IngestWriter`'s, the counters
:mod:`heatmap.aggregator.ingest_stats`'.
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import logging
import queue
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import paho.mqtt.client as mqtt

from firmware_bridge.errors import BrokerError
from heatmap.aggregator.ingest_writer import ACK_EVERY_S, IngestWriter
from sensing.runtime.mqtt_link import BrokerAddress, connect, make_client
from sensing.wire import topics

log = logging.getLogger(__name__)
SUBSCRIBE_TIMEOUT_S = 10.0
"""how long :meth:`Ingestor.start` waits for the broker to acknowledge its subscriptions"""

COMMIT_EVERY_S = 0.25
COMMIT_EVERY_MSGS = 200
QUEUE_MAX = 1000
"""bound of each of the two queues (network → validator → writer), messages: at most
about 2 × 1000 × 20 kB = 40 MB of 500-row batches in memory"""

T = TypeVar("T")


@dataclass
class _Job:
    fn: Callable[[sqlite3.Connection], Any]
    future: cf.Future[Any] = field(default_factory=cf.Future)


_STOP = object()


class Ingestor(IngestWriter):
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
    will
        (topic, payload) the broker publishes, retained, if this connection dies: the
        aggregator's status goes out on this one connection (the broker binds the
        client id to the certificate, so one certificate has one connection).
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
        will: tuple[str, bytes] | None = None,
    ) -> None:
        super().__init__(store, db_path, expire_before=expire_before, clock=clock)
        self.broker = broker
        self.error: BaseException | None = None
        """what stopped the pipeline, if anything did"""
        self._in: queue.Queue[Any] = queue.Queue(maxsize=queue_max)
        self._out: queue.Queue[Any] = queue.Queue(maxsize=queue_max)
        self._gen = 1
        """connection generation: a PUBACK goes only to the connection that delivered"""
        self._stopping = threading.Event()
        # MQTT 5: the SUBACK's reason codes say whether the ACL granted the subscriptions
        self._client = make_client(
            broker, client_id or f"footfall-aggregator-{store}", clean=False, will=will, v5=True
        )
        self._client.manual_ack_set(True)
        self._client.on_message = self._on_message
        self._client.on_subscribe = self._on_subscribe
        self._filters = topics.inbound_filters(store)
        self._subscribed = threading.Event()
        """the broker answered the last SUBSCRIBE"""
        self._side: dict[str, Callable[[bytes], None]] = {}
        """filters outside the inbound tree (QoS 0, not stored) → what handles them"""
        self.refused_subscriptions: list[str] = []
        """filters the broker's last SUBACK refused (reason code >= 0x80), with the reason"""
        self._validator = threading.Thread(
            target=self._validate_loop, name="ingest-validator", daemon=True
        )
        self._writer = threading.Thread(target=self._write_loop, name="ingest-writer", daemon=True)
        self._ack_all = threading.Event()
        """(re)connected: publish the acknowledgement of every publisher"""
        self._acks_out = threading.Event()
        """the acknowledgements of every publisher went out after the first connect"""
        self.acks_published = 0
        """acknowledgements handed to the connection since start"""
        self.publish_ack: Callable[[str, bytes], object] | None = None
        """how to publish an acknowledgement (topic, payload), retained QoS 1: the
        daemon's status publisher (paho has one PUBACK callback per connection, which
        that publisher owns and counts by); None: straight on the connection"""

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
        self._ack_all.set()
        self._subscribe()
        # the acknowledgements at start, before the caller checks for refusals
        self._acks_out.wait(min(subscribe_timeout_s, 2.0))
        if not self._subscribed.wait(subscribe_timeout_s):
            log.warning(
                "broker did not acknowledge the subscriptions within %.0f s", subscribe_timeout_s
            )
        elif self.refused_subscriptions:
            refused = ", ".join(self.refused_subscriptions)
            with contextlib.suppress(Exception):
                self.stop(timeout_s=5.0)
            raise BrokerError(
                f"the broker refused the subscriptions {refused}: is [broker] cert the "
                f"aggregator's certificate (aggregator-{self.store}), and the ACL current?"
            )

    @property
    def client(self) -> mqtt.Client:
        """The connection (for the aggregator's own publishing: status, aggregates)."""
        return self._client

    @property
    def subscribed(self) -> bool:
        """The broker has acknowledged every inbound subscription of this connection."""
        return self._subscribed.is_set() and not self.refused_subscriptions

    def _on_reconnect(
        self, _c: mqtt.Client, _u: object, _f: object, rc: object, _p: object
    ) -> None:
        # paho calls this before it reads the new connection's first PUBLISH
        with self._lock:
            self._gen += 1
        if not getattr(rc, "is_failure", False):
            self._ack_all.set()
            self._subscribe()

    def subscribe_side(self, topic_filter: str, handle: Callable[[bytes], None]) -> None:
        """Also receive ``topic_filter`` (QoS 0, never stored nor acknowledged as a batch)
        and hand each payload to ``handle`` on the network thread (it must be quick and
        must not raise); subscribed again after every reconnect. Call before :meth:`start`."""

        def on_message(_c: mqtt.Client, _u: object, msg: mqtt.MQTTMessage) -> None:
            try:
                handle(bytes(msg.payload))
            except Exception:  # a side channel never stops ingest
                log.exception("handling a message on %s failed", msg.topic)

        self._side[topic_filter] = handle
        self._client.message_callback_add(topic_filter, on_message)

    def _subscribe(self) -> None:
        with self._lock:
            self._subscribed.clear()
        # one SUBSCRIBE: its SUBACK carries a reason code per filter, in order (the
        # side filters last)
        self._client.subscribe([(f, 1) for f in self._filters] + [(f, 0) for f in self._side])

    def _on_subscribe(
        self, _c: mqtt.Client, _u: object, _mid: int, codes: object, _p: object
    ) -> None:
        rcs = codes if isinstance(codes, list) else [codes]
        side = [
            f"{f} ({rc})"
            for f, rc in zip(self._side, rcs[len(self._filters) :], strict=False)
            if getattr(rc, "is_failure", False)
        ]
        if side:  # logged; ingest does not depend on them
            log.error("the broker refused the side subscriptions %s", ", ".join(side))
        refused = [
            f"{f} ({rc})"
            for f, rc in zip(self._filters, rcs, strict=False)
            if getattr(rc, "is_failure", False)
        ]
        with self._lock:
            self.refused_subscriptions = refused
        if refused:
            log.error("the broker refused the subscriptions %s", ", ".join(refused))
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
                    self._acknowledge()
                    try:
                        item = self._out.get(timeout=ACK_EVERY_S / 2)
                    except queue.Empty:
                        continue
                    first = time.monotonic()
                if item is _STOP:
                    self._commit(acks)
                    self._acknowledge(final=True)
                    return
                if isinstance(item, _Job):
                    self._commit(acks)
                    self._run_job(item)
                    continue
                v, mid, qos, gen = item
                self.store_checked(v)
                acks.append((mid, qos, gen))
                if len(acks) >= COMMIT_EVERY_MSGS or time.monotonic() - first >= COMMIT_EVERY_S:
                    self._commit(acks)
        except BaseException as e:  # storage failure: crash-only, the broker redelivers
            self._fail(e)

    def _acknowledge(self, final: bool = False) -> None:
        """Publish the acknowledgements that are due (writer thread, between commits;
        ``final``: at stop, whatever the time since the last)."""
        everyone = self._ack_all.is_set() and self._client.is_connected()
        if everyone:
            self._ack_all.clear()
            self.acks.changed.update(self.acks.publishers())
        now = time.monotonic()
        if self.ack_due(now) or final:
            self.settle_acks(now)
        if not self.acks.changed or not self._client.is_connected():
            if everyone:
                self._acks_out.set()  # nothing to acknowledge yet
            return  # kept: published once connected (a reconnect publishes all anyway)
        for kind, ident in self.acks.take_changed():
            topic, payload = self.acks.message(self.store, kind, ident)
            # retained QoS 1 on the ingest connection; paho resends it after a reconnect
            if self.publish_ack is not None:
                self.publish_ack(topic, payload)
            else:
                self._client.publish(topic, payload, qos=1, retain=True)
            self.acks_published += 1
        if everyone:
            self._acks_out.set()

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
        """Commit, then acknowledge ``acks`` (mid, qos, connection generation) that
        came on the current connection."""
        self.commit()
        with self._lock:
            gen = self._gen
        for mid, qos, g in acks:
            if qos and g == gen:  # a mid of an older connection may name another message now
                self._client.ack(mid, qos)
        acks.clear()

    # ---------------------------------------------------------------- completeness

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
