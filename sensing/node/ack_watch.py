"""The aggregator's acknowledgements of this node's publishers, as the node receives them.

The aggregator publishes, retained, on ``footfall/v1/{store}/aggregator/ack/{publisher}``
which seqs of each publisher the store database holds
(:mod:`heatmap.aggregator.ingest_ack`): ``node-{node}`` for the node's ``obs``,
``door-{id}`` and ``floor-{id}`` for the boards it hosts. :class:`AckWatch`
subscribes to exactly those (the broker's ACL grants a node no others), after every
(re)connect, and turns each valid message into an :class:`Ack` on a queue the
daemon's main loop drains (paho's thread only parses and enqueues). A message that
is not a valid acknowledgement is counted in :attr:`AckWatch.rejected` and ignored.

If the broker refuses the subscriptions (an ACL generated before acknowledgements
existed) :attr:`AckWatch.refused` says so: the node then cannot learn what is
stored and deletes on the broker's PUBACK, as before (:mod:`sensing.node.delivery`).
"""

from __future__ import annotations

import logging
import queue
import threading
from dataclasses import dataclass
from typing import Any

import paho.mqtt.client as mqtt

from firmware_bridge.errors import PayloadError
from sensing.wire import payloads, topics

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Ack:
    """One acknowledgement: ``stream``'s seqs in ``runs`` are stored."""

    stream: str
    """``obs``, ``door/{id}`` or ``floor/{id}``"""
    seq: int
    """highest stored seq"""
    runs: tuple[tuple[int, int], ...]
    """inclusive ranges of stored seqs, highest first"""


def stream_ack_topic(store: str, node: str, stream: str) -> str:
    """The ack topic of one of the node's streams.

    >>> stream_ack_topic("s1", "n1", "obs"), stream_ack_topic("s1", "n1", "door/main")
    ('footfall/v1/s1/aggregator/ack/node-n1', 'footfall/v1/s1/aggregator/ack/door-main')
    """
    if stream == "obs":
        return topics.ack_topic(store, "obs", node)
    kind, _, ident = stream.partition("/")
    return topics.ack_topic(store, kind, ident)


class AckWatch:
    """Receives the acknowledgements of ``streams`` (the node's stream names) on
    ``client`` (the node's link's paho client, MQTT 5)."""

    def __init__(self, client: mqtt.Client, store: str, node: str, streams: list[str]) -> None:
        self.client = client
        self.by_topic: dict[str, str] = {}
        for st in streams:
            self.by_topic[stream_ack_topic(store, node, st)] = st
        self.acks: queue.SimpleQueue[Ack] = queue.SimpleQueue()
        self.received = 0
        self.rejected = 0
        """messages on an ack topic that were not a valid acknowledgement"""
        self.refused: list[str] = []
        """topics whose subscription the broker refused (reason code >= 0x80)"""
        self.subscribed = threading.Event()
        """the broker answered the last SUBSCRIBE"""
        for t in self.by_topic:
            client.message_callback_add(t, self._on_message)
        client.on_subscribe = self._on_subscribe

    def subscribe(self) -> None:
        """Subscribe (QoS 1) to every ack topic; call after each (re)connect (the
        link's session does not outlive a connection). The retained acknowledgement
        of each comes at once."""
        if self.by_topic:
            self.subscribed.clear()
            self.client.subscribe([(t, 1) for t in self.by_topic])

    # paho's network thread: parse and enqueue only
    def _on_message(self, _c: mqtt.Client, _u: object, msg: mqtt.MQTTMessage) -> None:
        stream = self.by_topic.get(msg.topic)
        if stream is None or not msg.payload:
            return  # an emptied retained message: nothing acknowledged
        try:
            p = payloads.decode("aggregator_ack", bytes(msg.payload))
        except (PayloadError, ValueError, RecursionError):
            self.rejected += 1
            return
        runs = tuple((int(a), int(b)) for a, b in p["runs"] if a <= b)
        self.received += 1
        self.acks.put(Ack(stream, int(p["seq"]), runs))

    def _on_subscribe(self, _c: mqtt.Client, _u: object, _mid: int, codes: Any, _p: object) -> None:
        rcs = codes if isinstance(codes, list) else [codes]
        refused = [
            f"{t} ({rc})"
            for t, rc in zip(self.by_topic, rcs, strict=False)
            if getattr(rc, "is_failure", False)
        ]
        if refused and refused != self.refused:
            log.error("the broker refused the ack subscriptions %s", ", ".join(refused))
        self.refused = refused
        self.subscribed.set()
