"""The v1 MQTT topic tree, built and parsed in this one module.

Ids (store, node, door, array, zone, period) are limited to ``[a-zA-Z0-9_-]``
(as Home Assistant discovery requires) so that a topic level never contains
``/``, ``+`` or ``#``.

>>> obs_topic("s1", "n1")
'footfall/v1/s1/node/n1/obs'
>>> parse("footfall/v1/s1/door/main/events")
Topic(kind='door_events', store='s1', entity='main')
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from firmware_bridge.errors import TopicError

ROOT = "footfall/v1"
_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")

# kind -> (pattern after "footfall/v1/{store}/", entity level name or None)
_KINDS: dict[str, tuple[str, ...]] = {
    "obs": ("node", "*", "obs"),
    "node_status": ("node", "*", "status"),
    "door_events": ("door", "*", "events"),
    "floor_events": ("floor", "*", "events"),
    "occupancy": ("occupancy",),
    "zone_stats": ("zone", "*", "stats"),
    "footfall": ("footfall", "*"),
    "aggregator_status": ("aggregator", "status"),
    "aggregator_ack": ("aggregator", "ack", "*"),
    "optout": ("privacy", "optout"),
}

ACK_PUBLISHER_KINDS: dict[str, str] = {"obs": "node", "door": "door", "floor": "floor"}
"""a publisher's kind (as the store database names it) → its prefix in an ack topic"""
_ACK_PUBLISHER = re.compile(r"(node|door|floor)-[A-Za-z0-9_-]{1,64}")


@dataclass(frozen=True, slots=True)
class Topic:
    """A parsed v1 topic: its kind, store id and entity id (node, door, zone…)."""

    kind: str
    store: str
    entity: str | None


def check_id(value: str, what: str = "id") -> str:
    """Return ``value`` if it is a valid topic-level id, else raise TopicError."""
    if not _ID.fullmatch(value):
        raise TopicError(f"{what} {value!r} must match [A-Za-z0-9_-]{{1,64}}")
    return value


def _check_entity(kind: str, entity: str) -> str:
    if kind == "aggregator_ack":
        if not _ACK_PUBLISHER.fullmatch(entity):
            raise TopicError(f"ack publisher {entity!r} must be node-, door- or floor- and an id")
        return entity
    return check_id(entity, "entity")


def build(kind: str, store: str, entity: str | None = None) -> str:
    """Build the topic of ``kind`` for ``store`` (and ``entity`` where it has one)."""
    try:
        parts = _KINDS[kind]
    except KeyError:
        raise TopicError(f"unknown topic kind {kind!r}") from None
    check_id(store, "store")
    levels = []
    for p in parts:
        if p == "*":
            if entity is None:
                raise TopicError(f"topic kind {kind!r} needs an entity id")
            levels.append(_check_entity(kind, entity))
        else:
            levels.append(p)
    return "/".join([ROOT, store, *levels])


def obs_topic(store: str, node: str) -> str:
    return build("obs", store, node)


def node_status_topic(store: str, node: str) -> str:
    return build("node_status", store, node)


def door_topic(store: str, door: str) -> str:
    return build("door_events", store, door)


def floor_topic(store: str, array: str) -> str:
    return build("floor_events", store, array)


def aggregator_status_topic(store: str) -> str:
    """The aggregator's retained status (ingest rate, rejects, nodes offline)."""
    return build("aggregator_status", store)


def ack_publisher(kind: str, ident: str) -> str:
    """The publisher level of an ack topic: ``node-{node}``, ``door-{door}`` or
    ``floor-{array}``, so a node and a door of the same id never share a mark.

    >>> ack_publisher("obs", "n1"), ack_publisher("door", "main")
    ('node-n1', 'door-main')
    >>> parse(ack_topic("s1", "floor", "tiles-1")).entity
    'floor-tiles-1'
    """
    try:
        prefix = ACK_PUBLISHER_KINDS[kind]
    except KeyError:
        raise TopicError(f"no ack for publisher kind {kind!r}") from None
    return f"{prefix}-{check_id(ident, kind)}"


def ack_topic(store: str, kind: str, ident: str) -> str:
    """The aggregator's retained acknowledgement of one publisher (``kind`` obs, door
    or floor): which of its seqs are committed to the store database."""
    return build("aggregator_ack", store, ack_publisher(kind, ident))


def optout_topic(store: str) -> str:
    """The store-wide opt-out list (retained): the aggregator writes it, the store's
    nodes read it (:mod:`sensing.wire.optout_list`)."""
    return build("optout", store)


def store_filter(store: str) -> str:
    """Subscription filter for everything of one store."""
    return f"{ROOT}/{check_id(store, 'store')}/#"


def inbound_filters(store: str) -> list[str]:
    """Subscription filters the aggregator needs for what nodes and boards publish."""
    base = f"{ROOT}/{check_id(store, 'store')}"
    return [
        f"{base}/node/+/obs",
        f"{base}/node/+/status",
        f"{base}/door/+/events",
        f"{base}/floor/+/events",
    ]


def parse(topic: str) -> Topic:
    """Parse a v1 topic into its kind, store and entity; TopicError if it is not one."""
    levels = topic.split("/")
    if len(levels) < 4 or "/".join(levels[:2]) != ROOT:
        raise TopicError(f"not a footfall v1 topic: {topic!r}")
    store, rest = levels[2], levels[3:]
    check_id(store, "store")
    for kind, parts in _KINDS.items():
        if len(parts) != len(rest):
            continue
        entity = None
        for p, r in zip(parts, rest, strict=True):
            if p == "*":
                entity = r
            elif p != r:
                break
        else:
            if entity is not None:
                _check_entity(kind, entity)
            return Topic(kind, store, entity)
    raise TopicError(f"not a footfall v1 topic: {topic!r}")


# ------------------------------------------------------------------ topic reference
# What each kind is for, who publishes it and how: the data the generated topic
# reference (docs/mqtt.md, sensing/wire/topic_reference.py) is made from.

ENTITY_NAMES: dict[str, str] = {
    "obs": "node",
    "node_status": "node",
    "door_events": "door",
    "floor_events": "array",
    "zone_stats": "zone",
    "footfall": "period",
    "aggregator_ack": "publisher",
}
"""name of the entity level of each kind that has one (placeholder in :func:`pattern`)"""


@dataclass(frozen=True, slots=True)
class TopicSpec:
    """How a topic kind is published (docs/architecture.md, "The v1 MQTT topic tree")."""

    kind: str
    direction: str
    """``inbound`` (to the aggregator) or ``outbound`` (from the aggregator to BI)"""
    publisher: str
    subscribers: str
    qos: int
    retained: bool
    summary: str
    last_will: str | None = None
    """payload the broker publishes (retained) when the publisher drops off"""


SPECS: dict[str, TopicSpec] = {
    s.kind: s
    for s in (
        TopicSpec(
            "obs",
            "inbound",
            "ceiling node",
            "aggregator",
            1,
            False,
            "A batch of pseudonymous radio observations. (node, seq) is unique, so "
            "redelivery is idempotent.",
        ),
        TopicSpec(
            "node_status",
            "inbound",
            "ceiling node",
            "aggregator, monitoring",
            1,
            True,
            "Node health: state, version, uptime, spool depth, dropped frames by reason, "
            "key epoch, last seq of each publisher on the node.",
            last_will='{"v":1,"state":"offline"}',
        ),
        TopicSpec(
            "door_events",
            "inbound",
            "ceiling node (for the door-beam board on its serial port)",
            "aggregator",
            1,
            False,
            "Direction-resolved door crossings. (door, seq) is unique.",
        ),
        TopicSpec(
            "floor_events",
            "inbound",
            "ceiling node (for the floor-tile board on its serial port)",
            "aggregator",
            1,
            False,
            "Floor tile state changes. (array, seq) is unique.",
        ),
        TopicSpec(
            "occupancy",
            "outbound",
            "aggregator",
            "BI, Home Assistant",
            1,
            True,
            "Current occupancy estimate with its confidence interval; published every 10 s "
            "when it changes, and at least every 5 min.",
        ),
        TopicSpec(
            "zone_stats",
            "outbound",
            "aggregator",
            "BI, Home Assistant",
            1,
            True,
            "Per zone: people in it now, visits, dwell and person-seconds today; k-anonymous.",
        ),
        TopicSpec(
            "footfall",
            "outbound",
            "aggregator",
            "BI, Home Assistant, the chain's centre",
            1,
            True,
            "Footfall of the hour and day in progress and of every closed hour and day: in, out, "
            "visitors, passersby, capture rate, occupancy, dwell; k-anonymous.",
        ),
        TopicSpec(
            "aggregator_status",
            "outbound",
            "aggregator",
            "monitoring, BI, Home Assistant (availability)",
            1,
            True,
            "Aggregator health: ingest rate, rejects by reason, lag and state per node, "
            "nodes offline, database size, last retention run.",
            last_will='{"v":1,"state":"offline"}',
        ),
        TopicSpec(
            "aggregator_ack",
            "outbound",
            "aggregator",
            "the node that publishes for that publisher (only its own)",
            1,
            True,
            "End-to-end acknowledgement: runs of the publisher's seqs committed (and "
            "checkpointed) to the store database, highest first; {publisher} is node-{node}, "
            "door-{door} or floor-{array}. A node keeps a batch in its spool, after the "
            "broker's PUBACK too, until a run holds its seq; published at most every 0.5 s "
            "per publisher, and for every publisher at start.",
        ),
        TopicSpec(
            "optout",
            "outbound",
            "aggregator",
            "every node of the store (nodes only: BI cannot read it)",
            1,
            True,
            "The store-wide opt-out list: keyed tags of opted-out addresses (never an "
            "address), signed with a key derived from the store's list key. Published at "
            "start and whenever `footfall privacy optout` changes it; a node applies the "
            "newest list it verifies from its next frame, besides its own list, and keeps "
            "a copy for its next start.",
        ),
    )
}
"""every topic kind of the v1 tree"""


def pattern(kind: str) -> str:
    """The topic of ``kind`` with placeholders, e.g. ``footfall/v1/{store}/node/{node}/obs``."""
    try:
        parts = _KINDS[kind]
    except KeyError:
        raise TopicError(f"unknown topic kind {kind!r}") from None
    levels = [f"{{{ENTITY_NAMES[kind]}}}" if p == "*" else p for p in parts]
    return "/".join([ROOT, "{store}", *levels])
