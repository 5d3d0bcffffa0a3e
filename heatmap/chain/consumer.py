"""The chain's consumer: every store's aggregates from the central MQTT broker into ClickHouse.

``consumers`` MQTT 5 clients in one shared subscription group
(``$share/{group}/footfall/v1/{store}/#``, and the stores' bridge states
``footfall/bridge/{store}/state``): the broker hands each message to one
member, so several clients, and with a ClickHouse server several processes, share
the load. Each client resumes a persistent session (clean start off, a session
expiry), so what the broker queued while the consumer was away comes when it is back,
and acknowledges a message by hand (paho ``manual_ack``) only after its row was
INSERTed: a consumer killed between receiving and writing leaves the message
unacknowledged in its session, and the broker delivers it again.

Every message ends accepted (a row written) or rejected, counted by reason: a topic
outside the v1 tree (``bad_topic``), a kind that is not an aggregate
(``unexpected_kind``: observations never reach the centre), bad JSON or schema (the
reasons of :func:`sensing.wire.payloads.decode`), a period that disagrees with its
topic (``bad_period``, ``period_mismatch``) or a zone with its topic
(``zone_mismatch``), a bridge state other than ``1`` or ``0``
(``bad_bridge_state``). A zero-length message is a store clearing an old retained
period: counted (``cleared``), never a deletion here. Rejected and cleared messages
are acknowledged too (sending them again would not change them).

A client subscribes when the broker has no session for it (its first start, or after
the session expired); a resumed session keeps its subscription. MQTT 5 sends no
retained messages to a shared subscription (4.8.2), Mosquitto 2.0 sends them to each
new one anyway: with a broker that keeps to the standard, what stores published before
the group's first subscription is read with ``retained_sweep`` (``footfall chain run
--retained``), a plain subscription that takes the retained messages once. Rows are
idempotent, so reading an aggregate again replaces nothing but itself.
"""

from __future__ import annotations

import logging
import queue
import ssl
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from firmware_bridge.errors import BrokerError, PayloadError, TopicError
from heatmap.chain import aggregate_rows
from heatmap.chain.clickhouse_store import ChainStore, ChainStoreError
from sensing.runtime.mqtt_link import BrokerAddress
from sensing.wire import payloads, topics

log = logging.getLogger(__name__)

TABLE_OF_KIND = {
    "footfall": "footfall",
    "zone_stats": "zone_stats",
    "occupancy": "occupancy",
    "aggregator_status": "store_status",
}
"""topic kind → the table its rows go to (and ``footfall/bridge/{store}/state`` →
``bridge_state``)"""


def plain_filters(store_filter: str) -> list[str]:
    """What the chain reads of one store (or ``+``: every store): its v1 topics and its
    bridge's state (``footfall/bridge/{store}/state``, written by the central broker)."""
    return [f"{topics.ROOT}/{store_filter}/#", f"footfall/bridge/{store_filter}/state"]


@dataclass(frozen=True, slots=True)
class Rejected:
    """A message that ends here without a row, and why."""

    reason: str
    detail: str


def row_of(
    topic: str, payload: bytes, received_ns: int
) -> tuple[str, dict[str, Any]] | Rejected | None:
    """(table, row) of one message, a :class:`Rejected`, or None for a zero-length
    message (a retained period cleared by its store).

    >>> row_of("footfall/v1/s1/node/n1/obs", b"{}", 0).reason
    'unexpected_kind'
    >>> row_of("footfall/v1/s.1/occupancy", b"{}", 0).reason
    'bad_topic'
    >>> row_of("footfall/v1/s1/footfall/today", b"", 0) is None
    True
    """
    levels = topic.split("/")
    if len(levels) == 4 and levels[:2] == ["footfall", "bridge"] and levels[3] == "state":
        if not payload:
            return None
        try:
            store = topics.check_id(levels[2], "store")
            return "bridge_state", aggregate_rows.bridge_row(store, payload, received_ns)
        except TopicError as e:
            return Rejected("bad_topic", str(e)[:200])
        except PayloadError as e:
            return Rejected(e.reason, str(e)[:200])
    try:
        t = topics.parse(topic)
    except TopicError as e:
        return Rejected("bad_topic", str(e)[:200])
    table = TABLE_OF_KIND.get(t.kind)
    if table is None:
        return Rejected("unexpected_kind", f"{t.kind} is not an aggregate ({topic[:120]})")
    if not payload:
        return None
    try:
        p, text = payloads.decode_with_text(t.kind, payload)
        if t.kind == "footfall":
            assert t.entity is not None
            row = aggregate_rows.footfall_row(t.store, t.entity, p, text, received_ns)
        elif t.kind == "zone_stats":
            assert t.entity is not None
            row = aggregate_rows.zone_row(t.store, t.entity, p, text, received_ns)
        elif t.kind == "occupancy":
            row = aggregate_rows.occupancy_row(t.store, p, text, received_ns)
        else:
            row = aggregate_rows.status_row(t.store, p, text, received_ns)
    except PayloadError as e:
        return Rejected(e.reason, f"{topic[:120]}: {str(e)[:200]}")
    return table, row


@dataclass(frozen=True, slots=True)
class _Message:
    topic: str
    payload: bytes
    mid: int
    qos: int
    received_ns: int


@dataclass
class ConsumerStats:
    """What the consumer did since it started (counters only, no payload data)."""

    received: int = 0
    accepted: Counter[str] = field(default_factory=Counter)
    """messages written, by table"""
    rejected: Counter[str] = field(default_factory=Counter)
    """messages rejected, by reason"""
    cleared: int = 0
    """zero-length messages (a store clearing an old retained period)"""
    inserts: int = 0
    """INSERT statements that returned"""
    insert_s: float = 0.0
    """time spent in them"""
    insert_failures: int = 0
    acked: int = 0
    last_error: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {
            "received": self.received,
            "accepted": dict(self.accepted),
            "accepted_total": sum(self.accepted.values()),
            "rejected": dict(self.rejected),
            "rejected_total": sum(self.rejected.values()),
            "cleared": self.cleared,
            "inserts": self.inserts,
            "insert_s": round(self.insert_s, 3),
            "insert_failures": self.insert_failures,
            "acked": self.acked,
            "last_error": self.last_error,
        }


@dataclass(frozen=True, slots=True)
class ConsumerSettings:
    group: str = "footfall-chain"
    consumers: int = 2
    store_filter: str = "+"
    """one store id, or ``+`` for every store"""
    client_prefix: str = "footfall-chain"
    """client ids are ``{client_prefix}-{i}``: stable, so a restart resumes the sessions
    (two processes need two prefixes)"""
    session_expiry_s: int = 7 * 86400
    """how long the broker keeps a session (and queues for it) while it is away"""
    receive_maximum: int = 2000
    """unacknowledged messages the broker may send each client (MQTT 5 Receive Maximum)"""
    batch_max: int = 1000
    batch_wait_s: float = 0.2


class ChainConsumer:
    """``settings.consumers`` MQTT 5 clients writing into one :class:`ChainStore`.

    :meth:`start` connects them (BrokerError if the broker does not accept the first
    connection), :meth:`stop` writes and acknowledges what was taken and disconnects.
    """

    def __init__(
        self,
        addr: BrokerAddress,
        store: ChainStore,
        settings: ConsumerSettings | None = None,
        clock: Callable[[], int] = time.time_ns,
    ) -> None:
        self.addr = addr
        self.store = store
        self.settings = settings or ConsumerSettings()
        self.stats = ConsumerStats()
        self._clock = clock
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._clients: list[mqtt.Client] = []
        self._queues: list[queue.SimpleQueue[_Message]] = []
        self._writers: list[threading.Thread] = []
        self._logged_reasons: set[str] = set()
        topics.check_id(self.settings.group, "group")
        if self.settings.store_filter != "+":
            topics.check_id(self.settings.store_filter, "store filter")

    @property
    def topic_filters(self) -> list[str]:
        """The shared subscriptions: the stores' aggregates and their bridges' states."""
        s = self.settings
        return [f"$share/{s.group}/{f}" for f in plain_filters(s.store_filter)]

    @property
    def waiting(self) -> int:
        """messages received and not yet written"""
        return sum(q.qsize() for q in self._queues)

    def start(self, connect_timeout_s: float = 10.0) -> None:
        self.store.create_schema()
        for i in range(self.settings.consumers):
            q: queue.SimpleQueue[_Message] = queue.SimpleQueue()
            self._queues.append(q)
            client = self._client(f"{self.settings.client_prefix}-{i}", q)
            self._clients.append(client)
            w = threading.Thread(target=self._writer, args=(client, q), name=f"chain-writer-{i}")
            w.start()
            self._writers.append(w)
        for i, c in enumerate(self._clients):
            self._connect(c, f"{self.settings.client_prefix}-{i}", connect_timeout_s)

    def stop(self, timeout_s: float = 30.0) -> None:
        """Take no more messages, write and acknowledge those taken, then disconnect
        (what comes after stays unacknowledged in the sessions, for the next start)."""
        self._stopping.set()
        deadline = time.monotonic() + timeout_s
        for w in self._writers:
            w.join(max(0.1, deadline - time.monotonic()))
        for c in self._clients:
            c.disconnect()
            c.loop_stop()

    # -------------------------------------------------------------- MQTT

    def _client(self, client_id: str, q: queue.SimpleQueue[_Message]) -> mqtt.Client:
        c = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2,
            client_id=client_id,
            protocol=mqtt.MQTTv5,
            manual_ack=True,
        )
        c.reconnect_delay_set(0.5, 10)
        if self.addr.username:
            c.username_pw_set(self.addr.username, self.addr.password)
        if self.addr.tls:
            tls = self.addr.tls
            c.tls_set(
                ca_certs=str(tls.ca),
                certfile=str(tls.cert) if tls.cert else None,
                keyfile=str(tls.key) if tls.key else None,
                cert_reqs=ssl.CERT_REQUIRED,
                tls_version=ssl.PROTOCOL_TLS_CLIENT,
            )
        filters = [(f, 1) for f in self.topic_filters]

        def on_connect(cl: mqtt.Client, _u: object, flags: Any, rc: Any, _p: object) -> None:
            # a resumed session has the subscription: subscribing again would make
            # Mosquitto send every retained message to it again
            if not getattr(rc, "is_failure", False) and not flags.session_present:
                cl.subscribe(filters)

        def on_message(_cl: mqtt.Client, _u: object, msg: mqtt.MQTTMessage) -> None:
            # paho's network thread: hand over only. Once stopping, take nothing more: a
            # message left unacknowledged stays in the session for the next start
            if not self._stopping.is_set():
                q.put(_Message(msg.topic, bytes(msg.payload), msg.mid, msg.qos, self._clock()))

        c.on_connect = on_connect
        c.on_message = on_message
        return c

    def _connect(self, c: mqtt.Client, cid: str, timeout_s: float, persistent: bool = True) -> None:
        """Connect ``c`` (resuming its session if ``persistent``) and start its loop;
        BrokerError unless the broker accepts within ``timeout_s``."""
        done = threading.Event()
        result: list[Any] = []
        on_connect = c.on_connect

        def first_connect(cl: mqtt.Client, u: object, f: object, rc: Any, p: object) -> None:
            result.append(rc)
            done.set()
            cl.on_connect = on_connect
            if on_connect is not None:
                on_connect(cl, u, f, rc, p)

        c.on_connect = first_connect
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = self.settings.session_expiry_s if persistent else 0
        props.ReceiveMaximum = self.settings.receive_maximum
        try:
            c.connect(
                self.addr.host,
                self.addr.port,
                keepalive=30,
                clean_start=not persistent,
                properties=props,
            )
        except (OSError, ssl.SSLError) as e:
            raise BrokerError(f"cannot reach broker {self.addr}: {e}") from e
        c.loop_start()
        if not done.wait(timeout_s):
            c.loop_stop()
            raise BrokerError(f"broker {self.addr} did not answer {cid}'s CONNECT in {timeout_s} s")
        if getattr(result[0], "is_failure", False):
            c.loop_stop()
            raise BrokerError(f"broker {self.addr} refused {cid}: {result[0]}")

    # -------------------------------------------------------------- writing

    def _writer(self, client: mqtt.Client, q: queue.SimpleQueue[_Message]) -> None:
        s = self.settings
        while True:
            try:
                first = q.get(timeout=0.1)
            except queue.Empty:
                if self._stopping.is_set():
                    return
                continue
            batch = [first]
            deadline = time.monotonic() + s.batch_wait_s
            while len(batch) < s.batch_max:
                left = deadline - time.monotonic()
                try:
                    batch.append(q.get(timeout=left) if left > 0 else q.get_nowait())
                except queue.Empty:
                    break
            if not self._write(batch):
                # ClickHouse refused: nothing acknowledged; the broker sends the batch
                # again after a reconnect. Retry here while running, give up at stop.
                while not self._stopping.is_set() and not self._write(batch):
                    self._stopping.wait(2.0)
                if self._stopping.is_set():
                    return
            for m in batch:
                if m.qos > 0:
                    client.ack(m.mid, m.qos)
            with self._lock:
                self.stats.acked += len(batch)

    def _write(self, batch: list[_Message]) -> bool:
        """Insert the rows of ``batch``; count what it held. False if an INSERT failed
        (then nothing is counted, and it is written again later)."""
        by_table: dict[str, list[dict[str, Any]]] = {}
        rejected: list[Rejected] = []
        cleared = 0
        for m in batch:
            r = row_of(m.topic, m.payload, m.received_ns)
            if r is None:
                cleared += 1
            elif isinstance(r, Rejected):
                rejected.append(r)
            else:
                by_table.setdefault(r[0], []).append(r[1])
        t0 = time.perf_counter()
        try:
            for table, rows in by_table.items():
                self.store.insert(table, rows)
        except ChainStoreError as e:
            with self._lock:
                self.stats.insert_failures += 1
                self.stats.last_error = str(e)[:300]
            log.error("chain: insert failed, will retry: %s", str(e)[:300])
            return False
        dt = time.perf_counter() - t0
        with self._lock:
            st = self.stats
            st.received += len(batch)
            st.inserts += len(by_table)
            st.insert_s += dt
            st.cleared += cleared
            for table, rows in by_table.items():
                st.accepted[table] += len(rows)
            for r in rejected:
                st.rejected[r.reason] += 1
                first = r.reason not in self._logged_reasons
                self._logged_reasons.add(r.reason)
                if first:
                    log.warning("chain: rejected (%s): %s", r.reason, r.detail)
        return True

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            d = self.stats.as_dict()
        d["waiting"] = self.waiting
        return d


def progress_line(now: dict[str, Any], before: dict[str, Any] | None, dt_s: float | None) -> str:
    """One line of the consumer's progress log: counts and the rate since ``before``
    (no rate if ``dt_s`` is None).

    >>> progress_line({"accepted_total": 30, "accepted": {"footfall": 30}, "rejected_total": 1,
    ...   "rejected": {"schema": 1}, "cleared": 0, "waiting": 0, "insert_failures": 0},
    ...   {"accepted_total": 10}, 2.0)
    'chain: 30 written (footfall 30), 10.0/s; rejected 1 (schema 1); cleared 0; waiting 0'
    """
    rate = ""
    if dt_s is not None:
        n = now["accepted_total"] - (before or {}).get("accepted_total", 0)
        rate = f", {n / max(dt_s, 1e-9):.1f}/s"
    acc = ", ".join(f"{k} {v}" for k, v in sorted(now["accepted"].items())) or "none"
    rej = ", ".join(f"{k} {v}" for k, v in sorted(now["rejected"].items()))
    line = (
        f"chain: {now['accepted_total']} written ({acc}){rate}; "
        f"rejected {now['rejected_total']}{f' ({rej})' if rej else ''}; "
        f"cleared {now['cleared']}; waiting {now['waiting']}"
    )
    if now["insert_failures"]:
        line += f"; insert failures {now['insert_failures']}"
    return line


def retained_sweep(
    addr: BrokerAddress,
    store: ChainStore,
    store_filter: str = "+",
    quiet_s: float = 1.0,
    timeout_s: float = 600.0,
) -> ConsumerStats:
    """Read the broker's retained aggregates once (a plain, clean subscription: shared
    ones get no retained messages) and write them; done when none came for ``quiet_s``."""
    settings = ConsumerSettings(consumers=1, store_filter=store_filter)
    sweep = ChainConsumer(addr, store, settings)
    q: queue.SimpleQueue[_Message] = queue.SimpleQueue()
    sweep._queues.append(q)
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    last = [time.monotonic()]
    filters = [(f, 1) for f in plain_filters(store_filter)]

    def on_message(_cl: mqtt.Client, _u: object, msg: mqtt.MQTTMessage) -> None:
        if msg.retain:
            last[0] = time.monotonic()
            q.put(_Message(msg.topic, bytes(msg.payload), msg.mid, 0, time.time_ns()))

    def on_connect(cl: mqtt.Client, _u: object, _f: object, rc: Any, _p: object) -> None:
        cl.subscribe(filters)

    c.on_message = on_message
    c.on_connect = on_connect
    store.create_schema()
    sweep._connect(c, "", 10.0, persistent=False)
    end = time.monotonic() + timeout_s
    try:
        while time.monotonic() < end and time.monotonic() - last[0] < quiet_s:
            time.sleep(0.05)
            batch: list[_Message] = []
            while len(batch) < settings.batch_max:
                try:
                    batch.append(q.get_nowait())
                except queue.Empty:
                    break
            if batch and not sweep._write(batch):
                raise ChainStoreError(sweep.stats.last_error)
        rest: list[_Message] = []
        while True:
            try:
                rest.append(q.get_nowait())
            except queue.Empty:
                break
        if rest and not sweep._write(rest):
            raise ChainStoreError(sweep.stats.last_error)
    finally:
        c.disconnect()
        c.loop_stop()
    return sweep.stats
