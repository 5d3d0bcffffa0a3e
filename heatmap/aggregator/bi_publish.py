"""What leaves the aggregator for BI: k-anonymous aggregates, retained, per v1.

Every figure is checked by :func:`k_anonymous` first: a figure computed from
fewer than ``k`` distinct pseudonyms (or, for door counts, fewer than ``k``
people) is published as ``{"suppressed": true}`` without numbers.
"""

from __future__ import annotations

from typing import Any

from sensing.runtime.mqtt_link import Publisher
from sensing.wire import payloads, topics


def k_anonymous(distinct: int, k: int) -> bool:
    return distinct >= k


def footfall_payload(
    period: str, k: int, ins: int, outs: int, passersby: int, dwell_mean_s: float
) -> dict[str, Any]:
    if not k_anonymous(ins, k):
        return {"v": 1, "period": period, "k": k, "suppressed": True}
    total = ins + passersby
    return {
        "v": 1,
        "period": period,
        "k": k,
        "suppressed": False,
        "in": ins,
        "out": outs,
        "visitors": ins,
        "passersby": passersby,
        "capture_rate": round(ins / total, 4) if total else 0.0,
        "dwell_mean_s": round(dwell_mean_s, 1),
    }


def zone_payload(period: str, k: int, distinct_pids: int, person_seconds: float) -> dict[str, Any]:
    if not k_anonymous(distinct_pids, k):
        return {"v": 1, "period": period, "k": k, "suppressed": True}
    return {
        "v": 1,
        "period": period,
        "k": k,
        "suppressed": False,
        "person_seconds": round(person_seconds, 1),
    }


def publish(
    pub: Publisher, store: str, kind: str, entity: str | None, payload: dict[str, Any]
) -> str:
    """Validate against the schema of ``kind`` and publish retained; returns the topic."""
    payloads.validate(kind, payload)
    topic = topics.build(kind, store, entity)
    pub.publish(topic, payloads.encode(payload), retain=True)
    return topic
