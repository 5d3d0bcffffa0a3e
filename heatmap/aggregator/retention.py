"""Retention: which pseudonymous rows are due for deletion, and deleting them.

docs/architecture.md, "Storage and retention": a passerby's pseudonymous rows go as soon as
the hour's aggregates are written; a visitor's live ``retention_hours`` (default
24) and then go; only k-anonymous aggregates are kept.

The rule, exactly. At time ``now`` (Unix ms), with ``horizon = now -
retention_hours``, hours being UTC hours ``[H, H + 1 h)``:

1. **Expired** (:func:`expire`). Every ``obs`` row with ``t_ms < horizon`` is
   deleted, whatever its pseudonym's class; so are ``pid_class`` and
   ``hour_purges`` rows of hours that ended at or before the horizon
   (``H + 1 h <= horizon``), and the ``batches`` bookkeeping of batches whose
   newest row is older than the horizon (``t1 < horizon``; the aggregator
   refuses such batches at ingest, so dropping their dedup record loses nothing).
   Rows also age by when they arrived, whatever their timestamps say: an obs
   batch received before the horizon (``received_ms < horizon``) whose times
   claim to be younger has its node's rows in ``[t0, t1]`` deleted with it
   (ingest refuses times beyond its clock plus a skew allowance, so this only
   meets rows stored before it did, or a clock that was wrong).
2. **Aggregated** (:func:`hours_to_aggregate`, done by the daemon with
   :func:`heatmap.aggregator.hour_aggregates.aggregate_hour`). An hour with observations is
   aggregated once it has been over for ``aggregate_after_s`` (late batches
   within that grace are in its figures): ``H + 1 h + grace <= now`` and
   ``H + 1 h > horizon``, and no aggregate covers it yet.
3. **Passersby** (:func:`purge_passersby`). For every hour with
   ``H + 1 h <= now``, ``H + 1 h > horizon`` and an aggregate covering it
   (:func:`heatmap.aggregator.hour_aggregates.aggregated`) that was not purged yet, or
   that received an obs batch after its last purge (a late batch): every ``obs``
   row in ``[H, H + 1 h)`` whose pseudonym is a passerby of ``H``
   (:func:`heatmap.aggregator.pid_class.classify_hour`: the stored class, else the rule) is
   deleted, with the pseudonym's ``pid_class`` row; the purge is recorded in
   ``hour_purges``. A late pseudonym found to be a visitor gets its class stored.

Door and floor events (no pseudonyms, but one row per crossing or press) and the live
aggregator's per-interval cells (``live_intervals``, k-guarded when their hour closes)
go once they are older than the horizon and :data:`EVENTS_MIN_KEEP_H` (the day they
belong to is closed by then); aggregates, node status and rejects stay.

In the ``strict`` privacy mode (``policy.strict``) the live aggregator keeps the
pseudonymous rows in memory (:mod:`heatmap.aggregator.live.strict_memory`); this job
then also deletes every ``obs``, ``track_windows`` and ``pid_class`` row older than
``DISK_KEEP_MS`` that is on disk, and skips step 3 (the passers-by are purged from
memory when their hour closes, and no class is ever written to disk).

Every step is idempotent and commits on its own, so a crash between steps leaves a
consistent database that the next run finishes. The hours considered are those of
stored obs batches (the ``batches`` bookkeeping), not a scan of the observations.

The aggregator runs this at start and ``aggregate_after_s`` after every UTC hour
(:mod:`heatmap.aggregator.daemon`); ``footfall db retention`` runs it by hand.
Limitation: a batch arriving after its hour was aggregated is purged of
passersby, but does not change that hour's aggregate.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from heatmap.aggregator import hour_aggregates, pid_class
from heatmap.aggregator.live.strict_memory import DISK_KEEP_MS
from heatmap.aggregator.pid_class import HOUR_MS, ClassRule

DEFAULT_RETENTION_HOURS = 24.0
MAX_RETENTION_HOURS = 48.0
"""one key epoch (a day) plus a margin: the design caps visitors' rows at about a day"""
EVENTS_MIN_KEEP_H = 26.0
"""door and floor events and the live intervals are kept at least this long, h: their
day (closed 10 min after midnight, its hours within 2 h) is written by then"""


@dataclass(frozen=True, slots=True)
class RetentionPolicy:
    retention_hours: float = DEFAULT_RETENTION_HOURS
    """visitors' pseudonymous rows are kept this long, h"""
    aggregate_after_s: float = 300.0
    """an hour is aggregated this long after it ended (grace for late batches), s"""
    rule: ClassRule = field(default_factory=ClassRule)
    k: int = 5
    """k-anonymity threshold of the aggregates"""
    tz: str = "UTC"
    """time zone the aggregates' periods are written in"""
    strict: bool = False
    """the ``strict`` privacy mode (see the module doc)"""

    def horizon_ms(self, now_ms: int) -> int:
        """Rows older than this (Unix ms) are expired."""
        return now_ms - int(self.retention_hours * HOUR_MS)


@dataclass
class RetentionReport:
    """What one run did (or, dry, would do)."""

    now_ms: int
    horizon_ms: int
    hours_aggregated: list[int] = field(default_factory=list)
    hours_purged: list[int] = field(default_factory=list)
    passerby_obs: int = 0
    """passersby's observations deleted"""
    expired_obs: int = 0
    """observations older than the horizon deleted"""
    expired_classes: int = 0
    pruned_batches: int = 0


@dataclass(frozen=True, slots=True)
class Expired:
    obs: int
    classes: int
    batches: int


def expire(conn: sqlite3.Connection, now_ms: int, policy: RetentionPolicy) -> Expired:
    """Step 1: delete what is older than the horizon. The caller commits."""
    h = policy.horizon_ms(now_ms)
    obs = conn.execute("DELETE FROM obs WHERE t_ms < ?", (h,)).rowcount
    # the live aggregator's located windows and interval cells age with the rows
    conn.execute("DELETE FROM track_windows WHERE t_ms < ?", (h,))
    if policy.strict:  # the live aggregator keeps them in memory: none old on disk
        edge = now_ms - DISK_KEEP_MS
        obs += conn.execute("DELETE FROM obs WHERE t_ms < ?", (edge,)).rowcount
        conn.execute("DELETE FROM track_windows WHERE t_ms < ?", (edge,))
        conn.execute("DELETE FROM pid_class")
    # rows without pseudonyms but of few people: kept while their day may still be written
    ev = min(h, now_ms - int(EVENTS_MIN_KEEP_H * HOUR_MS))
    conn.execute("DELETE FROM live_intervals WHERE t1_ms <= ?", (ev,))
    conn.execute("DELETE FROM door_events WHERE t_ms < ?", (ev,))
    conn.execute("DELETE FROM floor_events WHERE t_ms < ?", (ev,))
    stale = conn.execute(
        "SELECT publisher, t0, t1 FROM batches WHERE kind = 'obs' AND received_ms < ? AND t1 >= ?",
        (h, h),
    ).fetchall()
    for node, t0, t1 in stale:
        obs += conn.execute(
            "DELETE FROM obs WHERE node = ? AND t_ms >= ? AND t_ms <= ?", (node, t0, t1)
        ).rowcount
    aged = conn.execute(
        "DELETE FROM batches WHERE kind IN ('obs', 'door', 'floor') AND received_ms < ? "
        "AND t1 >= ?",
        (h, h),
    ).rowcount
    classes = conn.execute("DELETE FROM pid_class WHERE hour_ms + ? <= ?", (HOUR_MS, h)).rowcount
    conn.execute("DELETE FROM hour_purges WHERE hour_ms + ? <= ?", (HOUR_MS, h))
    batches = conn.execute(
        "DELETE FROM batches WHERE kind IN ('obs', 'door', 'floor') AND t1 < ?", (h,)
    ).rowcount
    return Expired(obs, classes, batches + aged)


def _obs_hours(conn: sqlite3.Connection, since_ms: int) -> list[int]:
    """UTC hours holding observations of batches whose newest row is at or after ``since_ms``
    (from the batch bookkeeping, not a scan of the observations)."""
    hours: set[int] = set()
    for t0, t1 in conn.execute(
        "SELECT t0, t1 FROM batches WHERE kind = 'obs' AND n > 0 AND t1 >= ?", (since_ms,)
    ):
        hours.update(range(pid_class.hour_of(t0), pid_class.hour_of(t1) + 1, HOUR_MS))
    return sorted(hours)


def hours_to_aggregate(conn: sqlite3.Connection, now_ms: int, policy: RetentionPolicy) -> list[int]:
    """Step 2: complete hours with observations and no aggregate yet."""
    h = policy.horizon_ms(now_ms)
    grace = int(policy.aggregate_after_s * 1000)
    return [
        hr
        for hr in _obs_hours(conn, h - HOUR_MS)
        if hr + HOUR_MS > h
        and hr + HOUR_MS + grace <= now_ms
        and not hour_aggregates.aggregated(conn, hr)
    ]


def hours_to_purge(conn: sqlite3.Connection, now_ms: int, policy: RetentionPolicy) -> list[int]:
    """Step 3's hours: over, aggregated, and never purged or sent a batch since."""
    h = policy.horizon_ms(now_ms)
    out = []
    for hr in _obs_hours(conn, h - HOUR_MS):
        if hr + HOUR_MS <= h or hr + HOUR_MS > now_ms or not hour_aggregates.aggregated(conn, hr):
            continue
        row = conn.execute("SELECT purged_ms FROM hour_purges WHERE hour_ms = ?", (hr,)).fetchone()
        if row is None or _late_batch(conn, hr, row[0]):
            out.append(hr)
    return out


def _late_batch(conn: sqlite3.Connection, hour_ms: int, since_ms: int) -> bool:
    """An obs batch overlapping the hour was received after ``since_ms`` (a batch spans
    at most an hour, so its newest row lies within two hours of the hour's start)."""
    row = conn.execute(
        "SELECT 1 FROM batches WHERE kind = 'obs' AND t1 >= ? AND t1 < ? AND t0 < ? "
        "AND received_ms > ? LIMIT 1",
        (hour_ms, hour_ms + 2 * HOUR_MS, hour_ms + HOUR_MS, since_ms),
    ).fetchone()
    return row is not None


def purge_passersby(
    conn: sqlite3.Connection, hour_ms: int, now_ms: int, rule: ClassRule | None = None
) -> int:
    """Step 3 for one hour: delete the passersby's observations of the hour.

    Returns the number of observations deleted. The caller commits.
    """
    classes = pid_class.classify_hour(conn, hour_ms, rule)
    passersby = [(p,) for p, c in classes.items() if c == pid_class.PASSERBY]
    conn.execute("CREATE TEMP TABLE IF NOT EXISTS purge_pids (pid TEXT PRIMARY KEY)")
    conn.execute("DELETE FROM purge_pids")
    conn.executemany("INSERT INTO purge_pids VALUES (?)", passersby)
    n = conn.execute(
        "DELETE FROM obs WHERE t_ms >= ? AND t_ms < ? AND pid IN (SELECT pid FROM purge_pids)",
        (hour_ms, hour_ms + HOUR_MS),
    ).rowcount
    # and their located windows (the live aggregator's), which name them as well
    conn.execute(
        "DELETE FROM track_windows WHERE t_ms >= ? AND t_ms < ? "
        "AND pid IN (SELECT pid FROM purge_pids)",
        (hour_ms, hour_ms + HOUR_MS),
    )
    conn.execute(
        "DELETE FROM pid_class WHERE hour_ms = ? AND pid IN (SELECT pid FROM purge_pids)",
        (hour_ms,),
    )
    conn.execute("DELETE FROM purge_pids")
    visitors = {p: c for p, c in classes.items() if c == pid_class.VISITOR}
    pid_class.write_classes(conn, hour_ms, visitors, "rule", replace=False)
    conn.execute("INSERT OR REPLACE INTO hour_purges VALUES (?, ?)", (hour_ms, now_ms))
    return int(n)


Step = Callable[[sqlite3.Connection], Any]
"""one unit of work on the database; it does not commit"""


def run_steps(
    execute: Callable[[Step], Any],
    now_ms: int,
    policy: RetentionPolicy,
    aggregate: bool = True,
) -> RetentionReport:
    """All three steps in order, each handed to ``execute``, which runs it and
    commits (the daemon runs them on the ingest writer thread, between messages)."""
    rep = RetentionReport(now_ms, policy.horizon_ms(now_ms))
    e: Expired = execute(lambda c: expire(c, now_ms, policy))
    rep.expired_obs, rep.expired_classes, rep.pruned_batches = e.obs, e.classes, e.batches
    if aggregate:
        for hr in execute(lambda c: hours_to_aggregate(c, now_ms, policy)):
            execute(
                partial(
                    hour_aggregates.aggregate_hour,
                    hour_ms=hr,
                    k=policy.k,
                    rule=policy.rule,
                    tz=policy.tz,
                )
            )
            rep.hours_aggregated.append(hr)
    for hr in [] if policy.strict else execute(lambda c: hours_to_purge(c, now_ms, policy)):
        step = partial(purge_passersby, hour_ms=hr, now_ms=now_ms, rule=policy.rule)
        rep.passerby_obs += execute(step)
        rep.hours_purged.append(hr)
    return rep


def run(
    conn: sqlite3.Connection,
    now_ms: int,
    policy: RetentionPolicy,
    aggregate: bool = True,
    dry_run: bool = False,
) -> RetentionReport:
    """:func:`run_steps` on one connection, committing after each step.

    ``aggregate=False`` leaves aggregation to another step; ``dry_run`` reports
    exactly what a run would do and changes nothing (it runs the steps in one
    transaction that it rolls back, holding the write lock while it runs).
    """
    conn.commit()
    if dry_run:
        try:
            return run_steps(lambda f: f(conn), now_ms, policy, aggregate)
        finally:
            conn.rollback()

    def execute(f: Step) -> Any:
        try:
            out = f(conn)
        except BaseException:
            conn.rollback()
            raise
        conn.commit()
        return out

    return run_steps(execute, now_ms, policy, aggregate)
