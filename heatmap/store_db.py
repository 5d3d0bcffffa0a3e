"""The aggregator's SQLite store: one file, WAL mode, versioned schema.

Idempotency: every inbound batch is recorded in ``batches`` under
(kind, publisher, seq) in the same transaction as its rows, so a redelivered
batch is recognised and stored once.
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path
from typing import Any

SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS batches (
    kind TEXT NOT NULL, publisher TEXT NOT NULL, seq INTEGER NOT NULL,
    t0 INTEGER NOT NULL, n INTEGER NOT NULL, received_ms INTEGER NOT NULL,
    PRIMARY KEY (kind, publisher, seq)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS obs (
    t_ms INTEGER NOT NULL, node TEXT NOT NULL, pid TEXT NOT NULL, rssi INTEGER NOT NULL,
    band TEXT NOT NULL, flags INTEGER NOT NULL, sig TEXT);
CREATE INDEX IF NOT EXISTS obs_pid_t ON obs (pid, t_ms);
CREATE INDEX IF NOT EXISTS obs_t ON obs (t_ms);
CREATE TABLE IF NOT EXISTS door_events (
    t_ms INTEGER NOT NULL, door TEXT NOT NULL, dir INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS door_t ON door_events (t_ms);
CREATE TABLE IF NOT EXISTS floor_events (
    t_ms INTEGER NOT NULL, array_id TEXT NOT NULL, tile INTEGER NOT NULL, state INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS rejects (reason TEXT PRIMARY KEY, n INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS node_status (
    node TEXT PRIMARY KEY, payload TEXT NOT NULL, received_ms INTEGER NOT NULL);
"""


class StoreDB:
    """Thin, typed access to the store database. One writer thread at a time."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.conn = sqlite3.connect(self.path, timeout=30, check_same_thread=False)
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("PRAGMA synchronous=NORMAL")
        self.conn.executescript(_SCHEMA)
        with self.conn:
            self.conn.execute(
                "INSERT OR IGNORE INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),)
            )

    def close(self) -> None:
        self.conn.close()

    def _claim(self, kind: str, publisher: str, seq: int, t0: int, n: int) -> bool:
        cur = self.conn.execute(
            "INSERT OR IGNORE INTO batches VALUES (?,?,?,?,?,?)",
            (kind, publisher, seq, t0, n, int(time.time() * 1000)),
        )
        return cur.rowcount == 1

    def add_obs(self, node: str, p: dict[str, Any]) -> bool:
        """Store an obs batch; False if (node, seq) was already stored. Caller commits."""
        t0, rows = p["t0"], p["obs"]
        if not self._claim("obs", node, p["seq"], t0, len(rows)):
            return False
        self.conn.executemany(
            "INSERT INTO obs VALUES (?,?,?,?,?,?,?)",
            [(t0 + r[0], node, r[1], r[2], r[3], r[4], r[5] if len(r) > 5 else None) for r in rows],
        )
        return True

    def add_door(self, door: str, p: dict[str, Any]) -> bool:
        t0, rows = p["t0"], p["ev"]
        if not self._claim("door", door, p["seq"], t0, len(rows)):
            return False
        self.conn.executemany(
            "INSERT INTO door_events VALUES (?,?,?)", [(t0 + r[0], door, r[1]) for r in rows]
        )
        return True

    def add_floor(self, array: str, p: dict[str, Any]) -> bool:
        t0, rows = p["t0"], p["ev"]
        if not self._claim("floor", array, p["seq"], t0, len(rows)):
            return False
        self.conn.executemany(
            "INSERT INTO floor_events VALUES (?,?,?,?)",
            [(t0 + r[0], array, r[1], r[2]) for r in rows],
        )
        return True

    def set_status(self, node: str, payload: str) -> None:
        self.conn.execute(
            "INSERT OR REPLACE INTO node_status VALUES (?,?,?)",
            (node, payload, int(time.time() * 1000)),
        )

    def add_rejects(self, counts: dict[str, int]) -> None:
        self.conn.executemany(
            "INSERT INTO rejects VALUES (?, ?) "
            "ON CONFLICT(reason) DO UPDATE SET n = n + excluded.n",
            list(counts.items()),
        )

    def commit(self) -> None:
        self.conn.commit()

    # ---------------------------------------------------------------- queries

    def stored_seqs(self, kind: str, publisher: str) -> tuple[int, int | None]:
        """(number of batches stored, highest seq) of one publisher."""
        n, hi = self.conn.execute(
            "SELECT COUNT(*), MAX(seq) FROM batches WHERE kind=? AND publisher=?", (kind, publisher)
        ).fetchone()
        return int(n), hi

    def rejects(self) -> dict[str, int]:
        return dict(self.conn.execute("SELECT reason, n FROM rejects ORDER BY reason"))

    def count(self, table: str) -> int:
        if table not in ("obs", "door_events", "floor_events", "batches"):
            raise ValueError(table)
        return int(self.conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])
