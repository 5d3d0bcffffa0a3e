"""End-to-end acknowledgement: which seqs of each publisher the store database holds.

A broker's PUBACK only says the broker has a message; Mosquitto saves its queues
every ``autosave_interval`` and loses what came since when it dies, and a commit of
the store database in WAL mode with ``synchronous=NORMAL`` is only in its ``-wal``
file until a checkpoint copies it into the main file. So the aggregator tells each
publisher (a node's obs, a door, a floor array) on
``footfall/v1/{store}/aggregator/ack/{publisher}`` (retained, QoS 1) which of its
seqs are safe, and the node keeps every batch in its spool until they include it.

"Safe" means committed *and checkpointed*: :class:`AckRuns` takes the seqs of a
commit as *pending* and makes them *durable* only after a checkpoint that copied
the whole ``-wal`` into the main file (so a ``kill -9``, a power cut or a lost
``-wal`` file cannot take back what was acknowledged).

Publishers number their batches in order, but the committed seqs need not be
consecutive: the broker may have lost some (the node sends them again), the node
may have dropped its oldest at its spool bound (counted in its status), some may
still be on their way. The acknowledgement therefore says exactly what is stored:
the highest *runs* of consecutive committed seqs, ``[[first, last], ...]`` highest
first (at most :data:`RUNS_PUBLISHED`), and ``seq`` = the highest committed seq. A
seq between runs is not committed; the node still has it (and sends it again), or
dropped it. A seq below the lowest published run is committed or not: a node that
still has such a batch keeps it and sends it again, which the store drops by
``(publisher, seq)`` as a duplicate and so acknowledges.

>>> r = AckRuns()
>>> for s in (1, 2, 3, 5, 6, 9):
...     r.add("obs", "n1", s)
>>> r.runs("obs", "n1")
[[9, 9], [5, 6], [1, 3]]
>>> r.add("obs", "n1", 4); r.runs("obs", "n1")
[[9, 9], [1, 6]]
"""

from __future__ import annotations

import bisect
import sqlite3
import time

from sensing.wire import payloads, topics

RUNS_KEPT = 256
"""runs remembered per publisher (the lowest are forgotten beyond this: a
publisher that drops batches at its bound leaves one gap per drop)"""
RUNS_PUBLISHED = 16
"""runs in one acknowledgement, highest first"""
KINDS = ("obs", "door", "floor")
"""publisher kinds acknowledged (as the ``batches`` table names them)"""

_RUNS_SQL = """
SELECT MIN(seq), MAX(seq) FROM (
    SELECT seq, seq - ROW_NUMBER() OVER (ORDER BY seq) AS g
    FROM batches WHERE kind = ? AND publisher = ?)
GROUP BY g ORDER BY 2 DESC LIMIT ?
"""


class AckRuns:
    """Runs of consecutive stored seqs per publisher ``(kind, id)``; one thread only."""

    def __init__(self) -> None:
        self._lo: dict[tuple[str, str], list[int]] = {}
        self._hi: dict[tuple[str, str], list[int]] = {}
        """per publisher: the runs' first and last seqs, ascending, disjoint, not adjacent"""
        self.changed: set[tuple[str, str]] = set()
        """publishers whose runs changed since :meth:`take_changed`"""

    def load(self, conn: sqlite3.Connection) -> int:
        """The runs of every publisher the ``batches`` table holds (at start); all
        of them count as changed (to be published). Returns the publishers found."""
        pubs = conn.execute(
            "SELECT DISTINCT kind, publisher FROM batches WHERE kind IN (?,?,?)", KINDS
        ).fetchall()
        for kind, pub in pubs:
            rows = conn.execute(_RUNS_SQL, (kind, pub, RUNS_KEPT)).fetchall()
            key = (str(kind), str(pub))
            self._lo[key] = [int(r[0]) for r in reversed(rows)]
            self._hi[key] = [int(r[1]) for r in reversed(rows)]
            self.changed.add(key)
        return len(pubs)

    def add(self, kind: str, ident: str, seq: int) -> None:
        """``seq`` of ``(kind, ident)`` is stored (durably)."""
        key = (kind, ident)
        lo = self._lo.setdefault(key, [])
        hi = self._hi.setdefault(key, [])
        i = bisect.bisect_right(lo, seq)  # runs 0..i-1 start at or below seq
        if i > 0 and hi[i - 1] >= seq:
            return  # already inside run i-1
        joins_left = i > 0 and hi[i - 1] == seq - 1
        joins_right = i < len(lo) and lo[i] == seq + 1
        if joins_left and joins_right:
            hi[i - 1] = hi[i]
            del lo[i], hi[i]
        elif joins_left:
            hi[i - 1] = seq
        elif joins_right:
            lo[i] = seq
        else:
            lo.insert(i, seq)
            hi.insert(i, seq)
            if len(lo) > RUNS_KEPT:
                del lo[0], hi[0]
        self.changed.add(key)

    def runs(self, kind: str, ident: str, limit: int = RUNS_PUBLISHED) -> list[list[int]]:
        """The highest ``limit`` runs of ``(kind, ident)``, highest first."""
        lo, hi = self._lo.get((kind, ident), []), self._hi.get((kind, ident), [])
        return [[lo[k], hi[k]] for k in range(len(lo) - 1, max(len(lo) - 1 - limit, -1), -1)]

    def publishers(self) -> list[tuple[str, str]]:
        return [k for k, v in self._lo.items() if v]

    def take_changed(self) -> list[tuple[str, str]]:
        out = sorted(self.changed)
        self.changed.clear()
        return out

    def message(
        self, store: str, kind: str, ident: str, now_ms: int | None = None
    ) -> tuple[str, bytes]:
        """(topic, payload) of the acknowledgement of ``(kind, ident)``."""
        runs = self.runs(kind, ident)
        t = time.time_ns() // 1_000_000 if now_ms is None else now_ms
        body = {"v": 1, "seq": runs[0][1], "runs": runs, "t": t}
        return topics.ack_topic(store, kind, ident), payloads.encode(body)


def checkpointed(conn: sqlite3.Connection) -> bool:
    """Copy the ``-wal`` into the main file (PASSIVE: never waits for a reader);
    True if all of it was copied, so every commit so far is in the main file."""
    busy, log_frames, done = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
    return busy == 0 and (log_frames == -1 or done == log_frames)
