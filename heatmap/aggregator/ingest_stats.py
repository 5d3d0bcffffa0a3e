"""What ingest counts: reject reasons, counters, each publisher's track, a snapshot.

Kept by the database writer (:class:`heatmap.aggregator.ingest_writer.IngestWriter`)
and read by the daemon's status (:mod:`heatmap.aggregator.status`) through
:meth:`~heatmap.aggregator.ingest_writer.IngestWriter.snapshot`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

REJECT_REASONS = (
    "too_large",
    "not_utf8",
    "not_json",
    "too_deep",
    "schema",
    "bad_topic",
    "node_mismatch",
    "time_future",
    "time_past",
    "seq_reused",
    "unexpected_kind",
    "undecodable",
)
"""why a message is rejected: payload checks (:func:`sensing.wire.payloads.decode`), a topic
that is not one of this store's inbound topics, an obs batch whose ``node`` differs
from its topic's, a batch whose rows lie later than the aggregator's clock plus
:data:`MAX_CLOCK_SKEW_MS` or before :data:`TIME_FLOOR_MS`, a (publisher, seq) already
stored with other content, and ``undecodable``: the decoder failed in a way it does not
name (a bug, logged; the message is still rejected, counted and acknowledged). Every
name matches the status schema's ``rejects`` keys (``^[a-z][a-z0-9_]{0,31}$``)."""

MAX_CLOCK_SKEW_MS = 10 * 60 * 1000
"""a batch whose newest row is later than the aggregator's clock plus this is rejected
(``time_future``), ms: nodes' clocks are NTP-synchronized, so more is a broken clock or
a forged payload, whose rows retention could not age out by their times"""
TIME_FLOOR_MS = 1_262_304_000_000
"""2010-01-01 00:00 UTC, Unix ms: a batch starting earlier is rejected (``time_past``), a
node's clock that was never set"""


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
    """A consistent copy of the counters, rejects by reason, publisher tracks and the
    last status payload of each node."""

    stats: IngestStats
    rejects: dict[str, int]
    publishers: dict[tuple[str, str], PublisherTrack]
    node_status: dict[str, dict[str, Any]]
