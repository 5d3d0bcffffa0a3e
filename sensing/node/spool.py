"""The node's offline spool: a bounded on-disk queue of batches (SQLite).

Every batch is numbered and written here *before* it is published, and deleted
only when the aggregator says the store database holds it (:meth:`Spool.confirm`,
its retained acknowledgement; :mod:`sensing.node.delivery`), or, with
``keep_until_stored = false``, when the broker acknowledged it (PUBACK,
:meth:`Spool.ack`). So what is not acknowledged survives a broker restart (and a
broker crash inside its autosave window), a network outage, a ``kill -9`` and a
power cut:

* ``seq`` comes from a persisted per-stream counter, advanced in the same
  transaction that stores the batch, so it is monotonic across restarts and the
  aggregator can deduplicate redeliveries by ``(publisher, seq)``.
* Where a stream's counter starts is its *seq namespace*. A replay's starts at 0
  (the same files make the same batches, which the aggregator then stores once).
  A live node's starts at :func:`time_seq_base` of its first batch, the time in
  ms × 2^10: a re-imaged node (a new, empty spool) numbers above everything its
  old spool numbered, in a range no earlier spool reaches (that would take 1,024
  batches per ms of the time between them), so its batches are new to the
  aggregator, not reused seqs, while a redelivery of an old batch keeps its seq
  and is dropped as a duplicate. (A live node batches only on a synchronized
  clock unless ``[clock] require_sync = false``; with a clock set back, the
  namespaces stay disjoint but the new one may number below the old one.)
* The file runs in WAL mode with ``synchronous=FULL``: a committed batch is on
  disk when :meth:`Spool.put` returns (SQLite's atomic commit survives power loss).
* When the bound (batches or bytes) is hit the *oldest* batches not currently in
  flight are dropped; the batches and the items in them are counted, persisted,
  and reported in the node's status.
* A ``cursor`` per source (records consumed) can be stored with a batch, so a
  replay of capture files resumes where its last spooled batch ended.

Nothing in the spool is a raw identifier: payloads are already pseudonymous.

>>> import tempfile, pathlib
>>> with Spool(pathlib.Path(tempfile.mkdtemp()) / "spool.db") as sp:
...     row = sp.put("obs", "footfall/v1/s/node/n/obs", {"v": 1, "obs": [[0]]}, items=1)
...     (row.seq, sp.depth, [r.seq for r in sp.after(0, 10)])
(0, 1, [0])
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from firmware_bridge.errors import FootfallError
from sensing.runtime.private_files import private_file

SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS batches (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    stream TEXT NOT NULL, seq INTEGER NOT NULL, topic TEXT NOT NULL,
    payload BLOB NOT NULL, items INTEGER NOT NULL, created_ms INTEGER NOT NULL);
"""


SEQ_BASE_SHIFT = 10
"""a live stream's first seq is its first batch's Unix ms shifted by this (the
namespace of one spool holds 2^10 batches per ms before reaching a later one's;
the last first seq below the v1 contract's 2^53 is in the year 2248)"""


def time_seq_base(now_ms: int | None = None) -> int:
    """The first seq of a live node's stream in a fresh spool: Unix ms × 2^10.

    >>> time_seq_base(1_795_000_000_000)
    1838080000000000
    """
    t = time.time_ns() // 1_000_000 if now_ms is None else now_ms
    return int(t) << SEQ_BASE_SHIFT


class SpoolError(FootfallError, OSError):
    """The spool file cannot be opened or written (disk full, corrupt, read-only)."""


@dataclass(frozen=True, slots=True)
class SpooledBatch:
    """One batch waiting to be acknowledged."""

    id: int
    """spool row id: the publish order"""
    stream: str
    """``obs``, ``door/{id}`` or ``floor/{id}``"""
    seq: int
    topic: str
    payload: bytes
    items: int
    """observations or events in the batch"""


@dataclass(frozen=True, slots=True)
class SpoolStats:
    depth: int
    """batches waiting"""
    bytes: int
    """payload bytes waiting"""
    dropped_batches: int
    """batches dropped at the bound, since the spool file was created"""
    dropped_items: int
    """observations/events in those batches"""


class Spool:
    """A bounded, durable FIFO of MQTT batches. One thread uses it at a time.

    Parameters
    ----------
    path
        SQLite file (created with its directory).
    max_batches, max_bytes
        the bound: when a new batch would exceed either, the oldest batches not
        in flight are dropped and counted.
    seq_base
        where a stream's seq starts when the spool has no counter for it yet,
        asked at its first batch (a live node: :func:`time_seq_base`); None: 0.
    """

    def __init__(
        self,
        path: Path,
        max_batches: int = 50_000,
        max_bytes: int = 200 << 20,
        seq_base: Callable[[], int] | None = None,
    ) -> None:
        if max_batches < 1 or max_bytes < 1:
            raise ValueError("spool bounds must be positive")
        self.path = Path(path)
        self.max_batches = max_batches
        self.max_bytes = max_bytes
        try:
            private_file(self.path)  # 0600 in a 0700 folder; -wal and -shm inherit it
            self._db = sqlite3.connect(self.path, timeout=10, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.executescript(_SCHEMA)
            self._meta_init("schema_version", SCHEMA_VERSION)
            self._recount()
            self._dropped = [
                self._meta_get("dropped_batches", 0),
                self._meta_get("dropped_items", 0),
            ]
        except sqlite3.Error as e:
            raise SpoolError(f"cannot open spool {self.path}: {e}") from e
        self._next_seq: dict[str, int] = {}
        self._seq_base = seq_base

    # ------------------------------------------------------------------ writing

    def put(
        self,
        stream: str,
        topic: str,
        payload: dict[str, Any],
        items: int,
        cursor: tuple[str, int] | None = None,
        inflight: Collection[int] = (),
    ) -> SpooledBatch:
        """Number ``payload`` (sets ``payload["seq"]``), store it durably, return it.

        ``cursor`` = (source name, records consumed) is stored in the same
        transaction. ``inflight`` are row ids handed to the broker link and not
        yet acknowledged: the bound never drops those.
        """
        seq = self.next_seq(stream)
        payload["seq"] = seq
        raw = json.dumps(payload, separators=(",", ":"), allow_nan=False).encode()
        now = int(time.time() * 1000)
        try:
            with self._tx():
                self._make_room(len(raw), inflight)
                cur = self._db.execute(
                    "INSERT INTO batches (stream, seq, topic, payload, items, created_ms) "
                    "VALUES (?,?,?,?,?,?)",
                    (stream, seq, topic, raw, items, now),
                )
                self._meta_set(f"seq:{stream}", seq + 1)
                if cursor is not None:
                    self._meta_set(f"cursor:{cursor[0]}", cursor[1])
        except sqlite3.Error as e:
            self._recount()
            self._dropped = [
                self._meta_get("dropped_batches", 0),
                self._meta_get("dropped_items", 0),
            ]
            raise SpoolError(f"cannot write spool {self.path}: {e}") from e
        self._next_seq[stream] = seq + 1
        self._last_id = int(cur.lastrowid or 0)
        self._depth += 1
        self._bytes += len(raw)
        return SpooledBatch(int(cur.lastrowid or 0), stream, seq, topic, raw, items)

    def _make_room(self, new_bytes: int, inflight: Collection[int]) -> None:
        """Inside a transaction: drop oldest non-inflight batches until one more fits."""
        over_n = self._depth + 1 - self.max_batches
        over_b = self._bytes + new_bytes - self.max_bytes
        if over_n <= 0 and over_b <= 0:
            return
        drop: list[int] = []
        n_items = freed = 0
        rows = self._db.execute("SELECT id, LENGTH(payload), items FROM batches ORDER BY id")
        for rid, size, items in rows:
            if over_n <= 0 and over_b <= 0:
                break
            if rid in inflight:
                continue
            drop.append(rid)
            n_items += items
            freed += size
            over_n -= 1
            over_b -= size
        rows.close()
        if not drop:
            return
        self._db.executemany("DELETE FROM batches WHERE id = ?", [(i,) for i in drop])
        self._meta_add("dropped_batches", len(drop))
        self._meta_add("dropped_items", n_items)
        self._dropped = [self._dropped[0] + len(drop), self._dropped[1] + n_items]
        self._depth -= len(drop)
        self._bytes -= freed

    def ack(self, ids: Iterable[int]) -> int:
        """Delete acknowledged batches; returns how many were still there."""
        ids = list(ids)
        if not ids:
            return 0
        found = freed = 0
        try:
            # a delete lost to a power cut only means one more redelivery (which the
            # aggregator drops by seq): no fsync for it; the next put's fsync covers it
            self._db.execute("PRAGMA synchronous=NORMAL")
            with self._tx():
                for k in range(0, len(ids), 500):
                    chunk = ids[k : k + 500]
                    marks = ",".join("?" * len(chunk))
                    n, size = self._db.execute(
                        "SELECT COUNT(*), COALESCE(SUM(LENGTH(payload)), 0) FROM batches "
                        f"WHERE id IN ({marks})",
                        chunk,
                    ).fetchone()
                    self._db.execute(f"DELETE FROM batches WHERE id IN ({marks})", chunk)
                    found += n
                    freed += size
        except sqlite3.Error as e:
            raise SpoolError(f"cannot update spool {self.path}: {e}") from e
        finally:
            self._db.execute("PRAGMA synchronous=FULL")
        self._depth -= found
        self._bytes -= freed
        return int(found)

    def confirm(self, stream: str, runs: Iterable[tuple[int, int]]) -> list[int]:
        """Delete the batches of ``stream`` whose seq lies in one of ``runs``
        (inclusive ``(first, last)`` ranges the aggregator stored); returns their row ids."""
        gone: list[int] = []
        freed = 0
        try:
            # as in ack(): a delete lost to a power cut is one more redelivery
            self._db.execute("PRAGMA synchronous=NORMAL")
            with self._tx():
                for lo, hi in runs:
                    for rid, size in self._db.execute(
                        "DELETE FROM batches WHERE stream = ? AND seq BETWEEN ? AND ? "
                        "RETURNING id, LENGTH(payload)",
                        (stream, lo, hi),
                    ).fetchall():
                        gone.append(int(rid))
                        freed += int(size)
        except sqlite3.Error as e:
            raise SpoolError(f"cannot update spool {self.path}: {e}") from e
        finally:
            self._db.execute("PRAGMA synchronous=FULL")
        self._depth -= len(gone)
        self._bytes -= freed
        return gone

    def set_cursor(self, source: str, consumed: int) -> None:
        with self._tx():
            self._meta_set(f"cursor:{source}", consumed)

    # ------------------------------------------------------------------ reading

    def after(self, last_id: int, limit: int) -> list[SpooledBatch]:
        """Up to ``limit`` batches with id > ``last_id``, oldest first."""
        rows = self._db.execute(
            "SELECT id, stream, seq, topic, payload, items FROM batches WHERE id > ? "
            "ORDER BY id LIMIT ?",
            (last_id, limit),
        ).fetchall()
        return [SpooledBatch(r[0], r[1], r[2], r[3], bytes(r[4]), r[5]) for r in rows]

    def get(self, ids: Iterable[int]) -> list[SpooledBatch]:
        """The batches of row ``ids`` still in the spool, in id order."""
        out: list[SpooledBatch] = []
        ids = sorted(ids)
        for k in range(0, len(ids), 500):
            chunk = ids[k : k + 500]
            rows = self._db.execute(
                "SELECT id, stream, seq, topic, payload, items FROM batches "
                f"WHERE id IN ({','.join('?' * len(chunk))}) ORDER BY id",
                chunk,
            ).fetchall()
            out += [SpooledBatch(r[0], r[1], r[2], r[3], bytes(r[4]), r[5]) for r in rows]
        return out

    def present(self, ids: Iterable[int]) -> set[int]:
        """Which of row ``ids`` are still in the spool (the bound may have dropped some)."""
        out: set[int] = set()
        ids = list(ids)
        for k in range(0, len(ids), 500):
            chunk = ids[k : k + 500]
            out.update(
                int(r[0])
                for r in self._db.execute(
                    f"SELECT id FROM batches WHERE id IN ({','.join('?' * len(chunk))})", chunk
                )
            )
        return out

    def next_seq(self, stream: str) -> int:
        """The seq the next batch of ``stream`` will get (for a stream with no batch
        yet, its namespace's start as of now: see the module doc)."""
        if stream not in self._next_seq:
            n = self._meta_get(f"seq:{stream}", -1)
            if n < 0:
                return self._seq_base() if self._seq_base is not None else 0
            self._next_seq[stream] = n
        return self._next_seq[stream]

    def last_seq(self, stream: str) -> int | None:
        """seq of the last batch of ``stream`` ever spooled (None if none)."""
        if stream not in self._next_seq and self._meta_get(f"seq:{stream}", -1) < 0:
            return None
        return self.next_seq(stream) - 1

    def cursor(self, source: str) -> int:
        """Records of ``source`` consumed into spooled batches (0 if never set)."""
        return self._meta_get(f"cursor:{source}", 0)

    @property
    def depth(self) -> int:
        return int(self._depth)

    @property
    def last_id(self) -> int:
        """id of the newest batch waiting (0 if none was ever put since opening an
        empty spool); :meth:`after` with it returns nothing."""
        return int(self._last_id)

    def stats(self) -> SpoolStats:
        return SpoolStats(
            int(self._depth),
            int(self._bytes),
            self._dropped[0],
            self._dropped[1],
        )

    def integrity(self) -> str:
        """SQLite's quick_check: ``ok`` or the first problem found."""
        return str(self._db.execute("PRAGMA quick_check").fetchone()[0])

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> Spool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ meta

    def _recount(self) -> None:
        self._depth, self._bytes, self._last_id = self._db.execute(
            "SELECT COUNT(*), COALESCE(SUM(LENGTH(payload)), 0), COALESCE(MAX(id), 0) FROM batches"
        ).fetchone()
        self._dropped = [self._meta_get("dropped_batches", 0), self._meta_get("dropped_items", 0)]

    def _tx(self) -> _Tx:
        return _Tx(self._db)

    def _meta_init(self, key: str, value: int) -> None:
        self._db.execute("INSERT OR IGNORE INTO meta VALUES (?, ?)", (key, value))

    def _meta_get(self, key: str, default: int) -> int:
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return int(row[0]) if row else default

    def _meta_set(self, key: str, value: int) -> None:
        self._db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value))

    def _meta_add(self, key: str, n: int) -> None:
        self._db.execute(
            "INSERT INTO meta VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = value + ?",
            (key, n, n),
        )


class _Tx:
    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db

    def __enter__(self) -> None:
        self.db.execute("BEGIN IMMEDIATE")

    def __exit__(self, et: object, *exc: object) -> None:
        if et is None:
            self.db.execute("COMMIT")
        elif self.db.in_transaction:
            self.db.execute("ROLLBACK")
