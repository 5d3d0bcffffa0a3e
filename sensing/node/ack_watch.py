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
stored and deletes on the broker's PUBACK, as before (:mod:`sensing.node.delivery`);
:meth:`AckWatch.deliver` (the daemon's main loop) does that switch and hands every
acknowledgement to the delivery.

paho has one SUBACK callback per client: :class:`Subscriptions` owns it and tells
each subscriber (the acknowledgements, the store-wide opt-out list) which of *its*
topics the broker refused, by the SUBSCRIBE's message id.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import paho.mqtt.client as mqtt

from firmware_bridge.errors import PayloadError
from sensing.node import log as node_log
from sensing.wire import payloads, topics

if TYPE_CHECKING:
    from pathlib import Path

    from sensing.node.delivery import Delivery
    from sensing.privacy.optout import OptOutList
    from sensing.privacy.store_optout import StoreOptOutWatch

log = logging.getLogger(__name__)


class Subscriptions:
    """Owns ``client.on_subscribe``: each :meth:`subscribe` names the callback told
    which of its topics the broker refused (reason code >= 0x80) when the SUBACK comes."""

    def __init__(self, client: mqtt.Client) -> None:
        self.client = client
        self._lock = threading.Lock()
        self._pending: dict[int, tuple[list[str], Callable[[list[str]], None]]] = {}
        client.on_subscribe = self._on_subscribe

    def subscribe(self, topic_list: list[str], on_result: Callable[[list[str]], None]) -> None:
        """SUBSCRIBE to ``topic_list`` at QoS 1 in one packet."""
        if not topic_list:
            return
        # the lock makes a fast SUBACK wait until its message id is known
        with self._lock:
            _rc, mid = self.client.subscribe([(t, 1) for t in topic_list])
            self._pending[mid] = (topic_list, on_result)

    def _on_subscribe(self, _c: mqtt.Client, _u: object, mid: int, codes: Any, _p: object) -> None:
        with self._lock:
            got = self._pending.pop(mid, None)
        if got is None:
            return
        topic_list, on_result = got
        rcs = codes if isinstance(codes, list) else [codes]
        on_result(
            [
                f"{t} ({rc})"
                for t, rc in zip(topic_list, rcs, strict=False)
                if getattr(rc, "is_failure", False)
            ]
        )


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

    def __init__(self, subs: Subscriptions, store: str, node: str, streams: list[str]) -> None:
        client = subs.client
        self.client = client
        self._subs = subs
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

    def subscribe(self) -> None:
        """Subscribe (QoS 1) to every ack topic; call after each (re)connect (the
        link's session does not outlive a connection). The retained acknowledgement
        of each comes at once."""
        if self.by_topic:
            self.subscribed.clear()
            self._subs.subscribe(list(self.by_topic), self._on_result)

    def deliver(self, delivery: Delivery, logger: logging.Logger) -> None:
        """The daemon's main loop: every acknowledgement received goes to the delivery
        (which deletes what the store database has); refused subscriptions switch it
        to deleting on the broker's PUBACK, once, said in the log."""
        if self.refused and delivery.keep:
            delivery.stop_keeping()
            node_log.event(logger, 40, "ack_subscription_refused", topics=self.refused,
                           detail="deleting batches on the broker's PUBACK: regenerate the "
                           "ACL (footfall provision acl) and reload mosquitto")  # fmt: skip
        while True:
            try:
                ack = self.acks.get_nowait()
            except queue.Empty:
                return
            delivery.confirm(ack)

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

    def _on_result(self, refused: list[str]) -> None:
        if refused and refused != self.refused:
            log.error("the broker refused the ack subscriptions %s", ", ".join(refused))
        self.refused = refused
        self.subscribed.set()


class FromAggregator:
    """Everything a node receives from the aggregator, on the node's link: the
    acknowledgements of its streams (:class:`AckWatch`, when ``keep_acks``) and the
    store-wide opt-out list (:class:`~sensing.privacy.store_optout.StoreOptOutWatch`,
    when the node has an opt-out list: ``optout``; its copy of the last list is applied
    at once)."""

    def __init__(
        self,
        client: mqtt.Client,
        store: str,
        node: str,
        streams: list[str],
        keep_acks: bool,
        optout: OptOutList | None,
        copy: Path | None,
    ) -> None:
        from sensing.privacy.store_optout import StoreOptOutWatch

        subs = Subscriptions(client)
        self.acks = AckWatch(subs, store, node, streams) if keep_acks else None
        self.optout: StoreOptOutWatch | None = None
        if optout is not None:
            self.optout = StoreOptOutWatch(client, store, optout, copy, subs.subscribe)
            self.optout.load_copy()

    def subscribe(self) -> None:
        """After every (re)connect."""
        if self.acks is not None:
            self.acks.subscribe()
        if self.optout is not None:
            self.optout.subscribe()

    def take(self, delivery: Delivery, logger: logging.Logger) -> None:
        """The main loop, every turn: the newest store-wide list applied (before the next
        frame), the acknowledgements handed to the delivery."""
        if self.optout is not None:
            self.optout.apply()
        if self.acks is not None:
            self.acks.deliver(delivery, logger)

    def acknowledging(self, delivery: Delivery) -> bool:
        """The aggregator is heard acknowledging (and the delivery waits for it)."""
        return self.acks is not None and self.acks.received > 0 and delivery.keep
