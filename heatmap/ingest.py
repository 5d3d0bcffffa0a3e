"""Aggregator ingest: MQTT → validate → SQLite.

paho's network thread only enqueues; one writer thread validates each message
against its schema, rejects and counts what does not validate (never raises),
deduplicates by (publisher, seq) and commits in batched transactions.
"""

from __future__ import annotations

import queue
import threading
import time
from collections import Counter
from dataclasses import dataclass

import paho.mqtt.client as mqtt

from heatmap.store_db import StoreDB
from sensing import payloads, topics
from sensing.errors import PayloadError, TopicError
from sensing.mqtt_link import BrokerAddress, connect, make_client

COMMIT_EVERY_S = 0.25
COMMIT_EVERY_MSGS = 200


@dataclass
class IngestStats:
    messages: int = 0
    stored: int = 0
    duplicates: int = 0
    observations: int = 0


class Ingestor:
    """Subscribes to one store's inbound topics and writes them to ``db_path``."""

    def __init__(
        self, store: str, db_path: str, broker: BrokerAddress, client_id: str | None = None
    ) -> None:
        self.store = store
        self.db = StoreDB(db_path)
        self.broker = broker
        self.stats = IngestStats()
        self.rejects: Counter[str] = Counter()
        self.node_status: dict[str, dict[str, object]] = {}
        self._q: queue.Queue[tuple[str, bytes] | None] = queue.Queue()
        self._client = make_client(broker, client_id or f"footfall-aggregator-{store}", clean=False)
        self._client.on_message = self._on_message
        self._writer = threading.Thread(target=self._write_loop, name="ingest-writer", daemon=True)
        self._lock = threading.Lock()

    def start(self) -> None:
        self._writer.start()
        connect(self._client, self.broker)
        for f in topics.inbound_filters(self.store):
            self._client.subscribe(f, qos=1)

    def stop(self) -> None:
        self._client.loop_stop()
        self._client.disconnect()
        self._q.put(None)
        self._writer.join(timeout=60)
        self.db.close()

    def _on_message(self, _c: mqtt.Client, _u: object, msg: mqtt.MQTTMessage) -> None:
        self._q.put((msg.topic, bytes(msg.payload)))

    def _write_loop(self) -> None:
        pending = 0
        last_commit = time.monotonic()
        while True:
            try:
                item = self._q.get(timeout=COMMIT_EVERY_S)
            except queue.Empty:
                item = ()  # type: ignore[assignment]
            if item is None:
                self._commit()
                return
            if item:
                self.handle(*item)
                pending += 1
            if pending and (
                pending >= COMMIT_EVERY_MSGS or time.monotonic() - last_commit >= COMMIT_EVERY_S
            ):
                self._commit()
                pending, last_commit = 0, time.monotonic()

    def _commit(self) -> None:
        with self._lock:
            if self.rejects:
                self.db.add_rejects(dict(self.rejects))
                self.rejects.clear()
            self.db.commit()

    def handle(self, topic: str, raw: bytes) -> None:
        """Validate and store one message; rejects are counted, never raised."""
        self.stats.messages += 1
        try:
            t = topics.parse(topic)
            if t.store != self.store:
                raise TopicError(f"topic of another store: {topic}")
            p = payloads.decode(t.kind, raw)
        except TopicError:
            self.rejects["bad_topic"] += 1
            return
        except PayloadError as e:
            self.rejects[e.reason] += 1
            return
        entity = t.entity or ""
        with self._lock:
            if t.kind == "obs":
                if p["node"] != entity:
                    self.rejects["node_mismatch"] += 1
                    return
                fresh = self.db.add_obs(entity, p)
                if fresh:
                    self.stats.observations += len(p["obs"])
            elif t.kind == "door_events":
                fresh = self.db.add_door(entity, p)
            elif t.kind == "floor_events":
                fresh = self.db.add_floor(entity, p)
            elif t.kind == "node_status":
                self.db.set_status(entity, raw.decode())
                self.node_status[entity] = p
                return
            else:
                self.rejects["unexpected_kind"] += 1
                return
        if fresh:
            self.stats.stored += 1
        else:
            self.stats.duplicates += 1

    def complete(self) -> bool:
        """True when every node reported ``done`` and all its batches are stored."""
        statuses = dict(self.node_status)
        if not statuses:
            return False
        with self._lock:
            self.db.commit()
            for node, st in statuses.items():
                if st.get("state") != "done":
                    return False
                want = [("obs", node, st.get("last_seq"))]
                for name, b in dict(st.get("boards") or {}).items():  # type: ignore[call-overload]
                    kind, ident = name.split("/", 1)
                    want.append((kind, ident, b["last_seq"]))
                for kind, pub, last in want:
                    n, _ = self.db.stored_seqs(kind, pub)
                    if last is not None and last >= 0 and n < last + 1:
                        return False
        return True

    def wait_complete(self, nodes: set[str], timeout_s: float = 300.0) -> bool:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if nodes <= set(self.node_status) and self.complete():
                return True
            time.sleep(0.1)
        return False
