"""A period's observations out of the store database, as compact numpy arrays.

A busy store-day is some 12 million observation rows. Fetched as Python tuples
they take gigabytes; here they are streamed in batches into typed columns, and
the two string columns become small integer codes with a lookup table: the
pseudonym (16 hex characters, 64 bytes per row as a numpy string) and the band.
About 23 bytes a row in all.

>>> import sqlite3
>>> db = sqlite3.connect(":memory:")
>>> _ = db.execute("CREATE TABLE obs (t_ms, node, pid, rssi, band, flags, sig)")
>>> _ = db.executemany("INSERT INTO obs VALUES (?,?,?,?,?,?,NULL)", [
...     (1000, "n1", "aa", -60, "ble", 0), (1500, "n2", "bb", -71, "wifi24", 0),
...     (1800, "n9", "aa", -65, "ble", 0)])
>>> o = read_observations(db, 0, 2000, {"n1": 0, "n2": 1})
>>> o.pid.tolist(), o.pids.tolist(), o.node.tolist(), o.band_name().tolist()
([0, 1, 0], ['aa', 'bb'], [0, 1, -1], ['ble', 'wifi24', 'ble'])
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

BATCH_ROWS = 200_000


@dataclass(frozen=True)
class Observations:
    """Observation rows of a period; ``pid`` and ``band`` are codes into ``pids`` / ``bands``."""

    t_ms: NDArray[np.int64]
    node: NDArray[np.int16]
    """index of the node in the radio model, -1 for a node the plan does not have"""
    pid: NDArray[np.int32]
    rssi: NDArray[np.float32]
    band: NDArray[np.int8]
    flags: NDArray[np.int32]
    pids: NDArray[np.str_]
    """pseudonym of each pid code"""
    bands: NDArray[np.str_]
    """band name of each band code"""

    def __len__(self) -> int:
        return len(self.t_ms)

    def band_name(self) -> NDArray[np.str_]:
        """Band name per row (materialises one string per row: for small periods)."""
        return self.bands[self.band]

    @property
    def nbytes(self) -> int:
        return sum(
            a.nbytes
            for a in (self.t_ms, self.node, self.pid, self.rssi, self.band, self.flags, self.pids)
        )


def read_observations(
    db: sqlite3.Connection,
    t0_ms: int,
    t1_ms: int,
    node_index: dict[str, int],
    batch_rows: int = BATCH_ROWS,
) -> Observations:
    """Rows of ``obs`` with ``t0_ms <= t_ms < t1_ms``, streamed ``batch_rows`` at a time."""
    pid_code: dict[str, int] = {}
    band_code: dict[str, int] = {}
    cols: dict[str, list[NDArray[np.generic]]] = {
        k: [] for k in ("t", "node", "pid", "rssi", "band", "flags")
    }
    cur = db.execute(
        "SELECT t_ms, node, pid, rssi, band, flags FROM obs WHERE t_ms >= ? AND t_ms < ?",
        (t0_ms, t1_ms),
    )
    while True:
        rows = cur.fetchmany(batch_rows)
        if not rows:
            break
        t, node, pid, rssi, band, flags = zip(*rows, strict=True)
        del rows
        n = len(t)
        cols["t"].append(np.fromiter(t, np.int64, n))
        cols["node"].append(np.fromiter((node_index.get(x, -1) for x in node), np.int16, n))
        cols["pid"].append(
            np.fromiter((pid_code.setdefault(p, len(pid_code)) for p in pid), np.int32, n)
        )
        cols["rssi"].append(np.fromiter(rssi, np.float32, n))
        cols["band"].append(
            np.fromiter((band_code.setdefault(b, len(band_code)) for b in band), np.int8, n)
        )
        cols["flags"].append(np.fromiter(flags, np.int32, n))
    dtypes = {"t": np.int64, "node": np.int16, "pid": np.int32, "rssi": np.float32}
    out = {
        k: np.concatenate(v)
        if v
        else np.zeros(0, dtypes.get(k, np.int8 if k == "band" else np.int32))
        for k, v in cols.items()
    }
    return Observations(
        out["t"],
        out["node"],
        out["pid"],
        out["rssi"],
        out["band"],
        out["flags"],
        np.array(list(pid_code), dtype=str) if pid_code else np.zeros(0, str),
        np.array(list(band_code), dtype=str) if band_code else np.zeros(0, str),
    )
