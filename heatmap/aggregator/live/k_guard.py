"""k-anonymity of what is stored: a figure from fewer than k devices is stored as suppressed.

Counts of people or devices from 1 to k - 1 become ``None`` (JSON null, shown as
"suppressed"); 0 stays 0 (nobody is nobody). A figure derived from a group (a
percentile of dwell, a zone's person-seconds) is kept only if its group has at
least k members (or none: a figure of nobody, such as 0 visits, names no one).

>>> count(3, 5), count(0, 5), count(7, 5)
(None, 0, 7)
>>> figure(12.5, group=4, k=5) is None, figure(12.5, group=5, k=5), figure(0, group=0, k=5)
(True, 12.5, 0)
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from typing import TypeVar

import numpy as np

T = TypeVar("T")

SUPPRESSED = None


def count(n: int, k: int) -> int | None:
    return int(n) if n == 0 or n >= k else SUPPRESSED


def figure(value: T, group: int, k: int) -> T | None:
    return value if group == 0 or group >= k else SUPPRESSED


def guard_intervals(
    conn: sqlite3.Connection, a: int, b: int, kept_cells: Iterable[str | int], devices: int, k: int
) -> int:
    """When the hour [a, b) closes, its intervals' working state (``live_intervals``) is
    k-guarded like the hour's heatmap: device-seconds stay only in the cells the hour's
    heatmap kept (at least k devices in or next to them), and with fewer than k devices
    located in the hour, none stay (nor the device-seconds inside). The caller commits;
    returns the intervals guarded."""
    keep = np.zeros(0, np.int64) if devices < k else np.array(sorted(int(i) for i in kept_cells))
    rows = conn.execute(
        "SELECT t0_ms, rf_inside_s, cells FROM live_intervals WHERE t0_ms >= ? AND t0_ms < ?",
        (a, b),
    ).fetchall()
    for t0, inside, blob in rows:
        cells = np.frombuffer(blob, np.float32)
        out = np.zeros_like(cells)
        idx = keep[keep < len(cells)]
        out[idx] = cells[idx]
        conn.execute(
            "UPDATE live_intervals SET cells = ?, rf_inside_s = ? WHERE t0_ms = ?",
            (out.tobytes(), inside if devices >= k else 0.0, t0),
        )
    return len(rows)
