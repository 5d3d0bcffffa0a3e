"""The live aggregator's working state in the store database.

``track_windows(t_ms, pid, x, y, p_in, zone, cell)``
    every located BLE window: pseudonymous, so retention deletes it with the
    observations (a passerby's once the hour's aggregates hold it, a visitor's
    after ``retention_hours``); the sessions (visits, dwell, zone stays, moves)
    are read from it.
``live_intervals(t0_ms, t1_ms, processed_ms, windows, rf_inside_s, cells)``
    one row per processed interval: its RF device-seconds per grid cell (float32
    blob of the grid's cells) and inside. No pseudonyms, but figures of few devices: it
    is working state, never published or drawn as is; when the interval's hour closes
    its cells are k-guarded as the hour's heatmap (:func:`.k_guard.guard_intervals`),
    and retention deletes it with the rows.
``meta``: ``live_watermark`` (every interval before it is processed),
``live_scan_ms`` (batches received after it are checked for late rows).

Everything an interval writes goes in one transaction with the watermark, so a
crash leaves either the interval done or not started; writing it again replaces it.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from heatmap.aggregator.live.interval_pass import IntervalTracks

WATERMARK = "live_watermark"
SCAN = "live_scan_ms"


def get_meta_int(conn: sqlite3.Connection, key: str) -> int | None:
    row = conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
    return None if row is None else int(row[0])


def set_meta_int(conn: sqlite3.Connection, key: str, value: int) -> None:
    conn.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, str(int(value))))


def write_interval(
    conn: sqlite3.Connection, tr: IntervalTracks, processed_ms: int, windows: bool = True
) -> None:
    """Replace the interval's located windows (unless not ``windows``) and cells. The
    caller commits."""
    if windows:
        write_windows(conn, tr)
    conn.execute(
        "INSERT OR REPLACE INTO live_intervals VALUES (?,?,?,?,?,?)",
        (
            tr.t0_ms,
            tr.t1_ms,
            processed_ms,
            len(tr),
            tr.rf_inside_s,
            np.ascontiguousarray(tr.cells, np.float32).tobytes(),
        ),
    )


def write_windows(conn: sqlite3.Connection, tr: IntervalTracks) -> None:
    """Replace the interval's located windows. The caller commits."""
    conn.execute("DELETE FROM track_windows WHERE t_ms >= ? AND t_ms < ?", (tr.t0_ms, tr.t1_ms))
    conn.executemany(
        "INSERT INTO track_windows VALUES (?,?,?,?,?,?,?)",
        zip(
            tr.t_ms.tolist(),
            tr.pid.tolist(),
            np.round(tr.xy[:, 0], 2).tolist(),
            np.round(tr.xy[:, 1], 2).tolist(),
            np.round(tr.p_in, 3).tolist(),
            tr.zone.tolist(),
            tr.cell.tolist(),
            strict=True,
        ),
    )


@dataclass(frozen=True)
class TrackRows:
    """Located windows, sorted by pid then time."""

    pid: NDArray[np.str_]
    t_ms: NDArray[np.int64]
    xy: NDArray[np.float64]
    p_in: NDArray[np.float64]
    zone: NDArray[np.int64]
    cell: NDArray[np.int64]

    def __len__(self) -> int:
        return len(self.pid)


def read_tracks(
    conn: sqlite3.Connection, t0_ms: int, t1_ms: int, reach_ms: int, lookback_ms: int = 0
) -> TrackRows:
    """Every located window of each pseudonym located in [t0 - lookback, t1), from
    ``reach_ms`` before t0 to ``reach_ms`` after t1 (whole sessions of the period's
    devices, and of those that ended just before it)."""
    cur = conn.execute(
        "SELECT t.pid, t.t_ms, t.x, t.y, t.p_in, t.zone, t.cell FROM track_windows t "
        "WHERE t.t_ms >= ? AND t.t_ms < ? AND t.pid IN "
        "(SELECT DISTINCT pid FROM track_windows WHERE t_ms >= ? AND t_ms < ?) "
        "ORDER BY t.pid, t.t_ms",
        (t0_ms - reach_ms, t1_ms + reach_ms, t0_ms - lookback_ms, t1_ms),
    )
    # in chunks into arrays: a busy hour is ~1M windows at 1 s, too many as tuples
    cols: list[list[NDArray[Any]]] = [[] for _ in range(7)]
    while rows := cur.fetchmany(FETCH_ROWS):
        for i, col in enumerate(zip(*rows, strict=True)):
            cols[i].append(np.array(col, dtype=_TYPES[i]))
    if not cols[0]:
        e = np.zeros(0)
        return TrackRows(
            np.zeros(0, str),
            e.astype(np.int64),
            np.zeros((0, 2)),
            e,
            e.astype(np.int64),
            e.astype(np.int64),
        )
    pid, t, x, y, p, z, c = (np.concatenate(parts) for parts in cols)
    return TrackRows(pid, t, np.column_stack([x, y]), p, z, c)


FETCH_ROWS = 50_000
_TYPES: tuple[Any, ...] = (str, np.int64, float, float, float, np.int64, np.int64)


@dataclass(frozen=True)
class IntervalCells:
    t0_ms: list[int]
    rf_inside_s: NDArray[np.float64]
    """(I,) RF device-seconds inside per interval"""
    cells: NDArray[np.float64]
    """(cells,) device-seconds per cell summed over the intervals"""


def read_cells(conn: sqlite3.Connection, t0_ms: int, t1_ms: int, n_cells: int) -> IntervalCells:
    """The processed intervals in [t0, t1) and their cells summed."""
    total = np.zeros(n_cells)
    starts, inside = [], []
    for a, rf, blob in conn.execute(
        "SELECT t0_ms, rf_inside_s, cells FROM live_intervals WHERE t0_ms >= ? AND t0_ms < ? "
        "ORDER BY t0_ms",
        (t0_ms, t1_ms),
    ):
        c = np.frombuffer(blob, np.float32)
        if len(c) == n_cells:  # a grid of other dimensions (plan changed): left out
            total += c
        starts.append(int(a))
        inside.append(float(rf))
    return IntervalCells(starts, np.asarray(inside, float), total)
