"""The aggregator's retained status payload (``footfall/v1/{store}/aggregator/status``),
built from a snapshot of the ingest counters. Pure functions: the daemon
supplies the clock and the numbers; ``sensing/wire/schemas/aggregator_status.schema.json``
is the contract.

A node's state: ``offline`` when its last status says so (the broker publishes
its last will when it drops off), ``done`` when a finite replay said it has
published everything, ``offline`` too when nothing came from it (obs or status)
for ``offline_after_s``, ``never_seen`` for a node of the floor plan that the
aggregator has not heard since it started, and ``online`` otherwise.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from heatmap.aggregator.ingest_stats import IngestStats, PublisherTrack
from heatmap.aggregator.retention import RetentionReport

ONLINE, DONE, OFFLINE, NEVER_SEEN = "online", "done", "offline", "never_seen"


def node_states(
    publishers: Mapping[tuple[str, str], PublisherTrack],
    node_status: Mapping[str, Mapping[str, Any]],
    plan_nodes: Iterable[str],
    now_ms: int,
    offline_after_s: float,
) -> dict[str, dict[str, Any]]:
    """State, last message, lag and last seq of every node heard or planned."""
    nodes = set(plan_nodes) | set(node_status)
    nodes |= {ident for kind, ident in publishers if kind in ("obs", "status")}
    out: dict[str, dict[str, Any]] = {}
    for node in sorted(nodes):
        obs = publishers.get(("obs", node))
        st = publishers.get(("status", node))
        seen = [t.last_seen_ms for t in (obs, st) if t is not None and t.last_seen_ms]
        if not seen:
            out[node] = {"state": NEVER_SEEN}
            continue
        last = max(seen)
        said = node_status.get(node, {}).get("state")
        if said == OFFLINE:
            state = OFFLINE
        elif said == DONE:
            state = DONE
        elif now_ms - last > offline_after_s * 1000:
            state = OFFLINE
        else:
            state = ONLINE
        out[node] = {
            "state": state,
            "last_seen_ms": last,
            "lag_s": round(obs.lag_ms / 1000, 3) if obs and obs.lag_ms is not None else None,
            "last_seq": obs.last_seq if obs else None,
            "batches": obs.batches if obs else 0,
        }
    return out


@dataclass(frozen=True)
class StatusInputs:
    """Everything one status payload is made of."""

    now_ms: int
    version: str
    uptime_s: float
    stats: IngestStats
    previous: IngestStats
    """counters at the previous status (rates are the difference)"""
    window_s: float
    rejects: Mapping[str, int]
    nodes: Mapping[str, Mapping[str, Any]]
    queue_depth: int
    db_bytes: int
    wal_bytes: int
    schema_version: int
    retention_hours: float
    retention: RetentionReport | None
    retention_ran_ms: int | None
    retention_error: str | None = None
    mqtt: Mapping[str, int] | None = None
    live: Mapping[str, Any] | None = None
    """the live aggregator's progress (None: not running)"""
    bi: Mapping[str, Any] | None = None
    """what the BI publisher did (None: not running)"""
    """the aggregator's own connection: publish_refused, publish_dropped,
    subscriptions_refused"""


def status_payload(i: StatusInputs, state: str = "online") -> dict[str, Any]:
    w = max(i.window_s, 1e-9)
    s, p = i.stats, i.previous
    r = i.retention
    out = {
        "v": 1,
        "state": state,
        "t": i.now_ms,
        "version": i.version,
        "uptime_s": round(i.uptime_s, 3),
        "ingest": {
            "window_s": round(i.window_s, 3),
            "messages_per_s": round(max(s.messages - p.messages, 0) / w, 3),
            "observations_per_s": round(max(s.observations - p.observations, 0) / w, 3),
            "messages": s.messages,
            "observations": s.observations,
            "batches": s.stored,
            "duplicates": s.duplicates,
            "expired": s.expired,
            "queue_depth": i.queue_depth,
        },
        "rejects": {k: v for k, v in sorted(i.rejects.items()) if v},
        "nodes": {n: dict(v) for n, v in i.nodes.items()},
        "nodes_offline": [n for n, v in i.nodes.items() if v["state"] in (OFFLINE, NEVER_SEEN)],
        "db": {
            "bytes": i.db_bytes,
            "wal_bytes": i.wal_bytes,
            "schema_version": i.schema_version,
        },
        "retention": {
            "retention_hours": i.retention_hours,
            "last_run_ms": i.retention_ran_ms,
            "hours_aggregated": len(r.hours_aggregated) if r else 0,
            "deleted_passerby_obs": r.passerby_obs if r else 0,
            "deleted_expired_obs": r.expired_obs if r else 0,
            "error": i.retention_error,
        },
    }
    if i.mqtt is not None:
        out["mqtt"] = {k: int(v) for k, v in i.mqtt.items()}
    if i.live is not None:
        out["live"] = dict(i.live)
    if i.bi is not None:
        out["bi"] = dict(i.bi)
    return out
