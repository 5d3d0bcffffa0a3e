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
    "schema",
    "bad_topic",
    "node_mismatch",
    "seq_reused",
    "unexpected_kind",
)
"""why a message is rejected: payload checks (:func:`sensing.wire.payloads.decode`), a topic
that is not one of this store's inbound topics, an obs batch whose ``node`` differs
from its topic's, a (publisher, seq) already stored with other content"""


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
