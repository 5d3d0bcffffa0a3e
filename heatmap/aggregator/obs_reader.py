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

import dataclasses
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from heatmap.localizers.base import Windows, make_windows
from sensing.runtime.process_memory import release_free_memory
from sensing.wire.observation import KIND_MASK, KIND_SHIFT, DeviceKind, Flag

BATCH_ROWS = 50_000
SLAB_MS = 3_600_000
"""read_windows reads this much of the period at a time"""


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


class _NodeIndex(dict[str, int]):
    """Node id → index, -1 for ids the plan does not have (a C-level lookup in map())."""

    def __missing__(self, key: str) -> int:
        return -1


def read_observations(
    db: sqlite3.Connection,
    t0_ms: int,
    t1_ms: int,
    node_index: dict[str, int],
    batch_rows: int = BATCH_ROWS,
    beacons_only: bool = False,
    pid_codes: dict[str, int] | None = None,
) -> Observations:
    """Rows of ``obs`` with ``t0_ms <= t_ms < t1_ms``, streamed ``batch_rows`` at a time.

    ``beacons_only``: only rows that can be a node beacon (beacon kind, public
    address; :func:`heatmap.calibration.is_node_beacon_flags`), selected by SQLite.
    ``pid_codes``: pseudonym → code map to extend (codes then agree across calls);
    ``pids`` of the result lists every pseudonym in it, by code.
    """
    codes: dict[str, int] = {} if pid_codes is None else pid_codes
    band_code: dict[str, int] = {}
    nodes = _NodeIndex(node_index)
    cols: dict[str, list[NDArray[np.generic]]] = {
        k: [] for k in ("t", "node", "pid", "rssi", "band", "flags")
    }
    where = "t_ms >= ? AND t_ms < ?"
    args: tuple[int, ...] = (t0_ms, t1_ms)
    if beacons_only:
        where += " AND (flags & ?) = ? AND (flags & ?) = 0"
        args += (KIND_MASK, int(DeviceKind.BEACON) << KIND_SHIFT, int(Flag.BLE_RANDOM))
    cur = db.execute(f"SELECT t_ms, node, pid, rssi, band, flags FROM obs WHERE {where}", args)
    while True:
        rows = cur.fetchmany(batch_rows)
        if not rows:
            break
        t, node, pid, rssi, band, flags = zip(*rows, strict=True)
        del rows
        n = len(t)
        for p in dict.fromkeys(pid):  # distinct, in first-seen order (codes reproducible)
            if p not in codes:
                codes[p] = len(codes)
        for b in dict.fromkeys(band):
            if b not in band_code:
                band_code[b] = len(band_code)
        # map() over a dict's own __getitem__ stays in C: 3x a generator here
        cols["t"].append(np.fromiter(t, np.int64, n))
        cols["node"].append(np.fromiter(map(nodes.__getitem__, node), np.int16, n))
        cols["pid"].append(np.fromiter(map(codes.__getitem__, pid), np.int32, n))
        cols["rssi"].append(np.fromiter(rssi, np.float32, n))
        cols["band"].append(np.fromiter(map(band_code.__getitem__, band), np.int8, n))
        cols["flags"].append(np.fromiter(flags, np.int32, n))
    dtypes = {"t": np.int64, "node": np.int16, "pid": np.int32, "rssi": np.float32, "band": np.int8}
    out = {
        k: np.concatenate(v) if v else np.zeros(0, dtypes.get(k, np.int32)) for k, v in cols.items()
    }
    return Observations(
        out["t"],
        out["node"],
        out["pid"],
        out["rssi"],
        out["band"],
        out["flags"],
        np.array(list(codes), dtype=str) if codes else np.zeros(0, str),
        np.array(list(band_code), dtype=str) if band_code else np.zeros(0, str),
    )


def read_windows(
    db: sqlite3.Connection,
    t0_ms: int,
    t1_ms: int,
    node_index: dict[str, int],
    n_nodes: int,
    window_ms: int,
    pid_codes: dict[str, int],
    exclude: set[int] | None = None,
    slab_ms: int = SLAB_MS,
    progress: Callable[[float], None] | None = None,
    workers: int = 1,
) -> tuple[Windows, int]:
    """The period's windows (sorted by pid, then time), built one time slab at a time,
    and the number of observation rows read.

    Only a slab's rows are held at once (about 1M rows an hour in a busy store),
    so memory is the windows' own. ``pid_codes`` is extended across the slabs:
    ``Windows.pid`` holds codes into it. Rows of unknown nodes and of the pid
    codes in ``exclude`` (node beacons) are left out. Slabs are whole windows,
    so a window never straddles two. ``workers`` > 1 reads slabs in that many
    processes (each with its own read-only connection; turning rows into
    Python objects is the cost here, ~3 µs a row).
    """
    slab = max(slab_ms // window_ms, 1) * window_ms
    start = t0_ms - t0_ms % window_ms
    bounds = [(max(lo, t0_ms), min(lo + slab, t1_ms)) for lo in range(start, t1_ms, slab)]
    names = np.array(list(pid_codes), dtype=str) if pid_codes else np.zeros(0, str)
    drop = sorted(str(names[c]) for c in (exclude or ()))
    path = _file_of(db)
    jobs = [(lo, hi, node_index, n_nodes, window_ms, drop) for lo, hi in bounds]
    parts: list[Windows] = []
    n_rows = 0

    def absorb(res: tuple[Windows, NDArray[np.str_], int], span: int) -> None:
        nonlocal n_rows
        w, pids, n = res
        glob = np.array([pid_codes.setdefault(str(p), len(pid_codes)) for p in pids], np.int32)
        parts.append(dataclasses.replace(w, pid=glob[w.pid] if len(w) else w.pid.astype(np.int32)))
        n_rows += n
        if progress is not None:
            progress(span)

    if workers > 1 and path is not None and len(jobs) > 1:
        import concurrent.futures as cf
        import multiprocessing

        ctx = multiprocessing.get_context("spawn")
        with cf.ProcessPoolExecutor(workers, mp_context=ctx) as pool:
            futs: list[cf.Future[tuple[Windows, NDArray[np.str_], int]] | None] = [
                pool.submit(_slab_windows, path, *j) for j in jobs
            ]
            for i, (lo, hi) in enumerate(bounds):  # in slab order: stable codes
                f = futs[i]
                assert f is not None
                futs[i] = None  # the future holds its result: let it go once absorbed
                absorb(f.result(), hi - lo)
    else:
        for j, (lo, hi) in zip(jobs, bounds, strict=True):
            absorb(_slab_windows(db, *j), hi - lo)
    if not parts:
        z = np.zeros((0, n_nodes), np.float32)
        empty = Windows(
            np.zeros(0, np.int32),
            np.zeros(0, np.int64),
            np.zeros(0, str),
            z,
            z.astype(np.uint8),
            np.zeros(0, np.int64),
            window_ms,
        )
        return empty, n_rows
    # each column is written straight into its sorted place, one slab's piece at a
    # time, and the piece dropped once copied: the windows exist about once, not
    # three times (pieces, joined, sorted) — the read was the aggregator's peak
    cols = [{f.name: getattr(w, f.name) for f in dataclasses.fields(w)} for w in parts]
    parts.clear()
    order = np.lexsort(
        (np.concatenate([c["t_ms"] for c in cols]), np.concatenate([c["pid"] for c in cols]))
    )
    rank = np.empty(len(order), np.int64)
    rank[order] = np.arange(len(order))
    del order
    sizes = np.cumsum([0] + [len(c["t_ms"]) for c in cols])
    out: dict[str, NDArray[Any]] = {}
    for k in ("pid", "t_ms", "band", "rssi", "counts", "frames"):
        first = cols[0][k]
        dtype = (
            np.dtype(f"<U{max(c[k].dtype.itemsize for c in cols) // 4}")
            if first.dtype.kind == "U"
            else np.result_type(*(c[k].dtype for c in cols))  # counts: uint8 or wider
        )
        dest = np.empty((int(sizes[-1]), *first.shape[1:]), dtype)
        for i, c in enumerate(cols):
            dest[rank[sizes[i] : sizes[i + 1]]] = c.pop(k)
        out[k] = dest
    del cols
    release_free_memory()  # the slabs' pieces and the sort's temporaries
    return Windows(**out, window_ms=window_ms), n_rows


def _file_of(db: sqlite3.Connection) -> str | None:
    """The main database file of a connection (None for an in-memory one)."""
    for _, name, file in db.execute("PRAGMA database_list").fetchall():
        if name == "main":
            return str(file) or None
    return None


def _slab_windows(
    db: sqlite3.Connection | str,
    lo: int,
    hi: int,
    node_index: dict[str, int],
    n_nodes: int,
    window_ms: int,
    drop: list[str],
) -> tuple[Windows, NDArray[np.str_], int]:
    """One slab's windows with slab-local pid codes, those codes' pseudonyms, and rows read."""
    conn = (
        sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30.0) if isinstance(db, str) else db
    )
    try:
        o = read_observations(conn, lo, hi, node_index)
    finally:
        if isinstance(db, str):
            conn.close()
    dropped = np.flatnonzero(np.isin(o.pids, drop)).astype(np.int32)
    keep = (o.node >= 0) & ~np.isin(o.pid, dropped)
    w = make_windows(
        o.t_ms[keep],
        o.node[keep],
        o.pid[keep],
        o.rssi[keep],
        o.band[keep],
        n_nodes,
        window_ms,
        o.bands,
    )
    return w, o.pids, len(o)
