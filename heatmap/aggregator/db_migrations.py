"""Versioned schema of the store database, and the migrations between versions.

The version lives in SQLite's ``PRAGMA user_version`` (and, for people reading
the file by hand, in ``meta.schema_version``). :func:`migrate` applies every
migration above the file's version, each in its own transaction, so a crash
mid-migration leaves the file at the last whole version. A file written by a
newer footfall than this one is refused, never downgraded.

Version 1 is the schema of the walking skeleton (``CREATE … IF NOT EXISTS``, so
it also adopts a file that skeleton wrote, whose ``user_version`` is 0).

>>> import sqlite3
>>> conn = sqlite3.connect(":memory:")
>>> migrate(conn)
(0, 5)
>>> migrate(conn)
(5, 5)
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

from firmware_bridge.errors import FootfallError


class DatabaseError(FootfallError, RuntimeError):
    """The store database cannot be used (newer schema, corrupt, not a database)."""


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    """schema version after this migration"""
    summary: str
    sql: str


MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        1,
        "walking skeleton: batches, obs, door and floor events, rejects, node status",
        """
        CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
        CREATE TABLE IF NOT EXISTS batches (
            kind TEXT NOT NULL, publisher TEXT NOT NULL, seq INTEGER NOT NULL,
            t0 INTEGER NOT NULL, n INTEGER NOT NULL, received_ms INTEGER NOT NULL,
            PRIMARY KEY (kind, publisher, seq)) WITHOUT ROWID;
        CREATE TABLE IF NOT EXISTS obs (
            t_ms INTEGER NOT NULL, node TEXT NOT NULL, pid TEXT NOT NULL,
            rssi INTEGER NOT NULL, band TEXT NOT NULL, flags INTEGER NOT NULL, sig TEXT);
        CREATE INDEX IF NOT EXISTS obs_pid_t ON obs (pid, t_ms);
        CREATE INDEX IF NOT EXISTS obs_t ON obs (t_ms);
        CREATE TABLE IF NOT EXISTS door_events (
            t_ms INTEGER NOT NULL, door TEXT NOT NULL, dir INTEGER NOT NULL);
        CREATE INDEX IF NOT EXISTS door_t ON door_events (t_ms);
        CREATE TABLE IF NOT EXISTS floor_events (
            t_ms INTEGER NOT NULL, array_id TEXT NOT NULL, tile INTEGER NOT NULL,
            state INTEGER NOT NULL);
        CREATE TABLE IF NOT EXISTS rejects (reason TEXT PRIMARY KEY, n INTEGER NOT NULL);
        CREATE TABLE IF NOT EXISTS node_status (
            node TEXT PRIMARY KEY, payload TEXT NOT NULL, received_ms INTEGER NOT NULL);
        """,
    ),
    Migration(
        2,
        "indexes for what analytics and retention ask; drop the (pid, t) index "
        "(no query uses it, and random-order inserts into it cost half the ingest rate); "
        "batch time span for late-data checks",
        """
        DROP INDEX IF EXISTS obs_pid_t;
        CREATE INDEX IF NOT EXISTS floor_t ON floor_events (t_ms);
        ALTER TABLE batches ADD COLUMN t1 INTEGER;
        UPDATE batches SET t1 = t0 WHERE t1 IS NULL;
        CREATE INDEX IF NOT EXISTS batches_t1 ON batches (kind, t1);
        """,
    ),
    Migration(
        3,
        "aggregates (kept), per-hour pseudonym classes and passerby purges (retention)",
        """
        CREATE TABLE IF NOT EXISTS aggregates (
            kind TEXT NOT NULL, period TEXT NOT NULL, entity TEXT NOT NULL,
            t0_ms INTEGER NOT NULL, t1_ms INTEGER NOT NULL,
            payload TEXT NOT NULL CHECK (json_valid(payload)),
            written_ms INTEGER NOT NULL,
            PRIMARY KEY (kind, period, entity)) WITHOUT ROWID;
        CREATE INDEX IF NOT EXISTS aggregates_t ON aggregates (t0_ms, t1_ms);
        CREATE TABLE IF NOT EXISTS pid_class (
            hour_ms INTEGER NOT NULL, pid TEXT NOT NULL,
            class TEXT NOT NULL CHECK (class IN ('visitor', 'passerby')),
            source TEXT NOT NULL,
            PRIMARY KEY (hour_ms, pid)) WITHOUT ROWID;
        CREATE TABLE IF NOT EXISTS hour_purges (
            hour_ms INTEGER PRIMARY KEY, purged_ms INTEGER NOT NULL);
        """,
    ),
    Migration(
        4,
        "live aggregator: located windows (pseudonymous, retained like obs) and the "
        "person-seconds per cell of each processed interval (working state)",
        """
        CREATE TABLE IF NOT EXISTS track_windows (
            t_ms INTEGER NOT NULL, pid TEXT NOT NULL, x REAL NOT NULL, y REAL NOT NULL,
            p_in REAL NOT NULL, zone INTEGER NOT NULL, cell INTEGER NOT NULL);
        CREATE INDEX IF NOT EXISTS track_windows_t ON track_windows (t_ms);
        CREATE INDEX IF NOT EXISTS track_windows_pid ON track_windows (pid, t_ms);
        CREATE TABLE IF NOT EXISTS live_intervals (
            t0_ms INTEGER PRIMARY KEY, t1_ms INTEGER NOT NULL, processed_ms INTEGER NOT NULL,
            windows INTEGER NOT NULL, rf_inside_s REAL NOT NULL, cells BLOB NOT NULL);
        CREATE INDEX IF NOT EXISTS batches_received ON batches (received_ms);
        """,
    ),
    Migration(
        5,
        "the node's address chain on each observation: the pid of the head of the chain "
        "the node put the address in, where that is another pid (NULL: none, or an older node)",
        """
        ALTER TABLE obs ADD COLUMN chain TEXT;
        """,
    ),
)

LATEST = MIGRATIONS[-1].version


def version(conn: sqlite3.Connection) -> int:
    """The schema version of the open database (0: empty or pre-versioning)."""
    return int(conn.execute("PRAGMA user_version").fetchone()[0])


def migrate(conn: sqlite3.Connection) -> tuple[int, int]:
    """Bring ``conn`` to :data:`LATEST`; returns (version before, version after).

    Raises
    ------
    DatabaseError
        if the file is newer than this code, or is not an SQLite database.
    """
    try:
        before = version(conn)
    except sqlite3.DatabaseError as e:
        raise DatabaseError(f"not a usable SQLite database: {e}") from e
    if before > LATEST:
        raise DatabaseError(
            f"database schema v{before} is newer than this footfall (v{LATEST}); "
            "upgrade footfall instead of opening it with an older one"
        )
    for m in MIGRATIONS:
        if m.version <= before:
            continue
        _apply(conn, m)
    return before, version(conn)


def _apply(conn: sqlite3.Connection, m: Migration) -> None:
    # executescript commits first and runs outside the module's implicit
    # transactions, so the BEGIN/COMMIT are explicit: the migration and its
    # version bump are one transaction.
    conn.commit()
    try:
        conn.executescript(
            "BEGIN IMMEDIATE;\n"
            + m.sql
            + f"\nINSERT OR REPLACE INTO meta VALUES ('schema_version', '{m.version}');"
            + f"\nPRAGMA user_version = {m.version};\nCOMMIT;"
        )
    except sqlite3.Error as e:
        if conn.in_transaction:
            conn.rollback()
        raise DatabaseError(f"migration to schema v{m.version} failed: {e}") from e
