"""The ``strict`` privacy mode's working memory: no pseudonymous row older than 5 minutes
on any disk, the live aggregator working from memory and writing only aggregates.

In ``strict`` mode (``[privacy] mode = "strict"``) the live processor's connection is
an in-memory SQLite database with the store database attached read-only as ``disk``
(:func:`connect`). The pseudonymous tables live in memory — ``obs``, ``track_windows``,
``pid_class``, ``hour_purges`` — and SQLite resolves an unqualified table name in
``main`` (memory) before ``disk``, so every query of the processor, the interval pass,
the calibration and the period figures reads the memory's rows unchanged; ``batches``,
``live_intervals``, ``aggregates``, ``meta`` and the door and floor events (no
pseudonyms) are read from disk.

What happens to a pseudonymous row, in order:

1. The ingest stores an obs batch on disk as in ``standard`` mode (deduplicated,
   committed, checkpointed, then acknowledged to its node: the end-to-end
   acknowledgement holds).
2. At its next step (every 5 s) the live processor **moves** every row on disk into
   memory (:func:`move_rows`: copied up to the highest rowid it saw, then deleted by
   that rowid on the writer): a row spends seconds on disk.
3. Intervals are located from memory (``interval_s`` 60 s in strict mode, so the
   periods close as in ``standard``); their windows go to memory, and the last
   interval's windows also to disk for BI's zone occupancy, deleted at the next
   interval (:func:`purge_disk`; at most ``interval + lag + a step`` old, and never
   more than :data:`DISK_KEEP_MS`).
4. Memory keeps the rows :data:`MEMORY_OBS_MS` (the radio model's refit needs 30 min;
   late rows reopen intervals as in ``standard``) and the windows
   :data:`MEMORY_WINDOWS_MS` (a day's visits and dwell); passers-by's rows and windows
   leave memory when their hour closes, as they leave the disk in ``standard``.

A crash (kill -9, power cut) loses the memory: the rows moved and not yet located (at
most an interval and its lag, about 2 min), and the sessions in progress, so the slot,
hour and day being worked on lack the visits, dwell and zone stays of the sessions
before the crash; door counts, and every period already written, are on disk. Deleted
rows are zeroed in the database file (``secure_delete``); their old WAL frames are
overwritten as the WAL is reused.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from heatmap.aggregator import store_db

STRICT_MAX_AGE_MS = 300_000
"""the promise: no pseudonymous row older than this on disk (what the audit checks)"""
DISK_KEEP_MS = 240_000
"""a pseudonymous row left on disk is deleted by this age whatever else (margin of a step)"""
MEMORY_OBS_MS = 35 * 60_000
"""rows stay in memory this long (the refit's 30 min of rows, and late rows' intervals)"""
MEMORY_WINDOWS_MS = 26 * 3_600_000
"""located windows stay in memory this long (the day's visits and dwell)"""

SCHEMA = """
CREATE TABLE obs (
    t_ms INTEGER NOT NULL, node TEXT NOT NULL, pid TEXT NOT NULL,
    rssi INTEGER NOT NULL, band TEXT NOT NULL, flags INTEGER NOT NULL, sig TEXT, chain TEXT);
CREATE INDEX obs_pid_t ON obs (pid, t_ms);
CREATE INDEX obs_t ON obs (t_ms);
CREATE TABLE track_windows (
    t_ms INTEGER NOT NULL, pid TEXT NOT NULL, x REAL NOT NULL, y REAL NOT NULL,
    p_in REAL NOT NULL, zone INTEGER NOT NULL, cell INTEGER NOT NULL);
CREATE INDEX track_windows_t ON track_windows (t_ms);
CREATE INDEX track_windows_pid ON track_windows (pid, t_ms);
CREATE TABLE pid_class (
    hour_ms INTEGER NOT NULL, pid TEXT NOT NULL,
    class TEXT NOT NULL CHECK (class IN ('visitor', 'passerby')),
    source TEXT NOT NULL,
    PRIMARY KEY (hour_ms, pid)) WITHOUT ROWID;
CREATE TABLE hour_purges (hour_ms INTEGER PRIMARY KEY, purged_ms INTEGER NOT NULL);
"""
MEMORY_TABLES = ("obs", "track_windows", "pid_class", "hour_purges")


def connect(db_path: str | Path, timeout_s: float = 30.0) -> sqlite3.Connection:
    """The in-memory working database with the store database attached read-only."""
    p = Path(db_path)
    store_db.connect(p, readonly=True, timeout_s=timeout_s).close()  # refused as usual
    conn = sqlite3.connect("file::memory:", uri=True, timeout=timeout_s)
    conn.executescript(SCHEMA)
    conn.execute("ATTACH DATABASE ? AS disk", (f"file:{p}?mode=ro",))
    conn.commit()
    return conn


@dataclass
class Mover:
    """Moves the disk's rows into memory; remembers what it copied until they are deleted."""

    copied_upto: int = 0
    """rowid up to which rows were copied but maybe not deleted yet (0: none pending)"""
    moved: int = 0
    """rows moved since start"""

    def copy(self, mem: sqlite3.Connection) -> int | None:
        """Copy the disk's rows into memory; returns the rowid bound to delete up to (None:
        nothing on disk). The caller deletes ``rowid <= bound`` on the writer, then calls
        :meth:`deleted`."""
        (top,) = mem.execute("SELECT MAX(rowid) FROM disk.obs").fetchone()
        if top is None:
            return None
        n = mem.execute(
            "INSERT INTO main.obs SELECT t_ms, node, pid, rssi, band, flags, sig, chain "
            "FROM disk.obs "
            "WHERE rowid > ? AND rowid <= ?",
            (self.copied_upto, top),
        ).rowcount
        mem.commit()
        self.copied_upto = int(top)
        self.moved += max(int(n), 0)
        return int(top)

    def deleted(self) -> None:
        """The writer deleted what was copied: rowids may be reused from now on."""
        self.copied_upto = 0


def delete_moved(conn: sqlite3.Connection, upto_rowid: int) -> int:
    """On the writer: the rows copied into memory leave the disk (zeroed: secure_delete)."""
    conn.execute("PRAGMA secure_delete = ON")
    return int(conn.execute("DELETE FROM obs WHERE rowid <= ?", (upto_rowid,)).rowcount)


def purge_disk(conn: sqlite3.Connection, now_ms: int, keep_windows_from_ms: int) -> int:
    """On the writer: located windows before ``keep_windows_from_ms`` (the last interval's
    start) or older than :data:`DISK_KEEP_MS`, any row older than that, and every class
    row leave the disk. Returns the rows deleted."""
    conn.execute("PRAGMA secure_delete = ON")
    edge = now_ms - DISK_KEEP_MS
    n = conn.execute(
        "DELETE FROM track_windows WHERE t_ms < ?", (max(keep_windows_from_ms, edge),)
    ).rowcount
    n += conn.execute("DELETE FROM obs WHERE t_ms < ?", (edge,)).rowcount
    n += conn.execute("DELETE FROM pid_class").rowcount
    return int(n)


def forget(mem: sqlite3.Connection, now_ms: int) -> None:
    """Memory's own retention: rows after :data:`MEMORY_OBS_MS`, windows, classes and
    purge marks after :data:`MEMORY_WINDOWS_MS`."""
    mem.execute("DELETE FROM main.obs WHERE t_ms < ?", (now_ms - MEMORY_OBS_MS,))
    old = now_ms - MEMORY_WINDOWS_MS
    mem.execute("DELETE FROM main.track_windows WHERE t_ms < ?", (old,))
    mem.execute("DELETE FROM main.pid_class WHERE hour_ms < ?", (old,))
    mem.execute("DELETE FROM main.hour_purges WHERE hour_ms < ?", (old,))
    mem.commit()


Write = Callable[[Callable[[sqlite3.Connection], Any]], Any]
"""runs a step on the writer's connection and commits (the live processor's ``write``)"""


def move_in(mover: Mover, mem: sqlite3.Connection, write: Write) -> None:
    """Start of a step: the rows the ingest stored are copied into memory, then deleted
    from disk on the writer."""
    upto = mover.copy(mem)
    if upto is None:
        return
    write(lambda c: delete_moved(c, upto))
    mover.deleted()


def end_step(mem: sqlite3.Connection, write: Write, now_ms: int, keep_from_ms: int) -> int:
    """End of a step: nothing pseudonymous stays on disk but the windows from
    ``keep_from_ms`` (the newest interval's; :func:`purge_disk`); memory forgets what
    it no longer needs (:func:`forget`). Returns the disk rows deleted."""
    n = int(write(lambda c: purge_disk(c, now_ms, keep_from_ms)))
    forget(mem, now_ms)
    return n
