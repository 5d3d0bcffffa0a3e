"""What a running aggregator keeps retained on the broker for BI and Home Assistant.

Every tick (the daemon's occupancy interval, 10 s) :class:`BiPublisher` works out the
retained state the v1 tree should hold and hands it to
:class:`~heatmap.aggregator.publish.retained_state.RetainedState`, which publishes what
changed (QoS 1, retained, each payload validated against its schema first):

* ``occupancy``: when the figure, its interval, source or suppression changes, and at
  least every ``occupancy_refresh_s`` (300 s) so its ``t`` says the pipeline is alive;
* ``footfall/hour`` and ``footfall/today``: the hour and the day in progress, composed
  from the stored pieces (recomputed only when an aggregate was written, the live
  interval moved on, or the local hour changed);
* ``footfall/{YYYY-MM-DDTHH}`` and ``footfall/{YYYY-MM-DD}``: every closed hour of the last
  ``HOURS_KEPT_H`` (48 h) and closed day of the last ``DAYS_KEPT_D`` (35 days) as stored;
  older ones are cleared from the broker (a zero-length retained message, once per
  start) so retained state does not grow for ever — history is in the database and,
  for a chain, in ClickHouse;
* ``zone/{zone}/stats``: today so far and the people in the zone now;
* Home Assistant device discovery (``homeassistant/device/{store}/config``), again when
  Home Assistant announces itself online, with removed zones' entities removed.

Everything published has passed the k-anonymity guard of the stored aggregates
(:mod:`heatmap.aggregator.live.k_guard`); nothing is computed from a pseudonym.
"""

from __future__ import annotations

import json
import logging
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from heatmap.aggregator.publish import bi_payloads, ha_discovery
from heatmap.aggregator.publish.retained_state import RetainedState
from heatmap.spatial.floorplan import FloorPlan
from sensing.wire import payloads, topics

log = logging.getLogger(__name__)

HOURS_KEPT_H = 48
DAYS_KEPT_D = 35
CLEAR_SPAN_H = 24
"""closed hours up to this much older than kept are cleared (days: up to 5 days older)"""
HOUR_MS = 3_600_000
DAY_MS = 24 * HOUR_MS
OCCUPANCY_KEYS = ("occupancy", "low", "high", "source", "suppressed", "confidence")


@dataclass
class BiCounts:
    """What the publisher did since start (the aggregator's status carries it)."""

    ticks: int = 0
    recomputed: int = 0
    errors: int = 0
    error: str | None = None
    occupancy: dict[str, Any] | None = None
    wanted: dict[str, bytes] = field(default_factory=dict)


class BiPublisher:
    """The retained v1 state of one store.

    Parameters
    ----------
    store, plan, k
        the store id, its floor plan, the k-anonymity threshold.
    state
        publishes and confirms retained topics.
    window_s
        the live aggregator's window (for the people in a zone now).
    discovery
        builds the Home Assistant discovery payload from the payload the broker holds
        and whether Home Assistant has just announced itself
        (:func:`heatmap.aggregator.publish.ha_discovery.discovery_payload`; None: no
        discovery).
    """

    def __init__(
        self,
        store: str,
        plan: FloorPlan,
        k: int,
        state: RetainedState,
        window_s: float = 5.0,
        discovery: Callable[[dict[str, Any] | None, bool], dict[str, Any]] | None = None,
        occupancy_refresh_s: float = 300.0,
    ) -> None:
        self.store = store
        self.plan = plan
        self.k = k
        self.state = state
        self.window_s = window_s
        self.discovery = discovery
        self.occupancy_refresh_s = occupancy_refresh_s
        self.counts = BiCounts()
        self._fingerprint: tuple[Any, ...] | None = None
        self._occ_sent: tuple[tuple[Any, ...], int] | None = None
        self._ha_previous: dict[str, Any] | None = None
        self._ha_previous_seen = False
        self._ha_birth = False
        self._cleared: set[str] = set()

    # ---------------------------------------------------------------- Home Assistant

    def ha_previous(self, payload: bytes) -> None:
        """The retained discovery payload as the broker holds it (read back on subscribe)."""
        try:
            prev = json.loads(payload) if payload else None
        except ValueError:
            prev = None
        self._ha_previous = prev if isinstance(prev, dict) else None
        self._ha_previous_seen = True

    def ha_online(self) -> None:
        """Home Assistant (re)started: send the discovery again."""
        if self.discovery is not None:
            self._ha_birth = True
            self.state.forget(self.discovery_topic)

    @property
    def discovery_topic(self) -> str:
        return ha_discovery.discovery_topic(self.store)

    # ---------------------------------------------------------------- the tick

    def tick(self, conn: sqlite3.Connection, now_ms: int, occupancy: dict[str, Any] | None) -> None:
        """Publish what changed; a failure is logged and counted, never raised."""
        self.counts.ticks += 1
        try:
            if self.state.watch_connection():
                self._occ_sent = None  # the occupancy too
            if occupancy is not None:
                self._occupancy(occupancy, now_ms)
            fp = self._current_fingerprint(conn, now_ms)
            if fp != self._fingerprint:
                self.counts.wanted = self._desired(conn, now_ms)
                self._fingerprint = fp
                self.counts.recomputed += 1
            for topic, body in self.counts.wanted.items():
                self.state.want(topic, body)
            if self.discovery is not None and (self._ha_previous_seen or self.counts.ticks > 1):
                birth = self._ha_birth
                disc = self.discovery(self._ha_previous, birth)
                sent = self.state.want(self.discovery_topic, ha_discovery.encode(disc))
                if birth and sent:
                    self._ha_birth = False
            self.counts.error = None
        except Exception as e:  # a side output: logged and counted, the daemon goes on
            self.counts.errors += 1
            self.counts.error = f"{type(e).__name__}: {e}"
            log.warning("BI publishing failed: %s", self.counts.error)

    def _occupancy(self, p: dict[str, Any], now_ms: int) -> None:
        key = tuple(p.get(k) for k in OCCUPANCY_KEYS)
        if self._occ_sent is not None:
            last_key, last_ms = self._occ_sent
            if last_key == key and now_ms - last_ms < self.occupancy_refresh_s * 1000:
                return
        payloads.validate("occupancy", p)
        if self.state.want(topics.build("occupancy", self.store), payloads.encode(p)):
            self._occ_sent = (key, now_ms)
            self.counts.occupancy = p

    def _current_fingerprint(self, conn: sqlite3.Connection, now_ms: int) -> tuple[Any, ...]:
        (written,) = conn.execute("SELECT MAX(written_ms) FROM aggregates").fetchone()
        (interval,) = conn.execute("SELECT MAX(t0_ms) FROM live_intervals").fetchone()
        return written, interval, now_ms // HOUR_MS

    def _desired(self, conn: sqlite3.Connection, now_ms: int) -> dict[str, bytes]:
        """topic → payload of every retained aggregate topic (validated)."""
        plan, tz, out = self.plan, self.plan.timezone, {}

        def put(kind: str, entity: str, p: dict[str, Any]) -> None:
            payloads.validate(kind, p)
            out[topics.build(kind, self.store, entity)] = payloads.encode(p)

        clears = []
        for unit, keep_ms in (("hour", HOURS_KEPT_H * HOUR_MS), ("day", DAYS_KEPT_D * DAY_MS)):
            clear_ms = keep_ms + max(CLEAR_SPAN_H * HOUR_MS, 5 * DAY_MS if unit == "day" else 0)
            rows = conn.execute(
                "SELECT t0_ms, t1_ms, payload FROM aggregates WHERE kind = 'footfall' "
                "AND entity = 'store' AND t1_ms > ? AND t1_ms <= ? "
                "AND json_extract(payload, '$.unit') = ? ORDER BY t0_ms",
                (now_ms - clear_ms, now_ms, unit),
            ).fetchall()
            for t0, t1, body in rows:
                if now_ms - t1 <= keep_ms:
                    ident, p = bi_payloads.closed_period(t0, t1, unit, json.loads(body), plan)
                    put("footfall", ident, p)
                else:
                    ident = bi_payloads.period_id(t0, unit, tz)
                    clears.append(topics.build("footfall", self.store, ident))
        for unit, ident in (("hour", "hour"), ("day", "today")):
            p, zones, as_of = bi_payloads.in_progress(conn, plan, unit, now_ms, self.k)
            put("footfall", ident, p)
            if unit == "day":
                day_zones, day_as_of, day_period = zones, as_of, p["period"]
        ppd = self._people_per_device(conn, now_ms)
        occ, occ_as_of = bi_payloads.zone_occupancy_now(
            conn, plan, self.k, self.window_s, ppd, now_ms
        )
        for z in plan.zones:
            put(
                "zone_stats",
                z.id,
                bi_payloads.zone_payload(
                    z.id,
                    z.name,
                    day_zones.get(z.id, {}),
                    period=day_period,
                    as_of=day_as_of,
                    k=self.k,
                    occupancy=occ.get(z.id),
                    occupancy_as_of=occ_as_of,
                ),
            )
        for topic in clears:
            if topic not in self._cleared:
                out[topic] = b""
                self._cleared.add(topic)
        return out

    def _people_per_device(self, conn: sqlite3.Connection, now_ms: int) -> float:
        """People per RF device of the day's door fusion, from the latest stored aggregate."""
        row = conn.execute(
            "SELECT json_extract(payload, '$.rf.people_per_device') FROM aggregates "
            "WHERE kind = 'footfall' AND entity = 'store' AND t1_ms <= ? "
            "ORDER BY t1_ms DESC LIMIT 1",
            (now_ms,),
        ).fetchone()
        return float(row[0]) if row and row[0] else 1.0

    def status(self) -> dict[str, Any]:
        """The ``bi`` part of the aggregator's status."""
        s = self.state
        return {
            "published": s.published,
            "refused": s.refused,
            "not_handed": s.not_handed,
            "topics_confirmed": s.topics(),
            "errors": self.counts.errors,
            "error": self.counts.error,
        }
