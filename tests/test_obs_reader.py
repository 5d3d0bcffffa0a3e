"""Reading a period's observations out of a real store database into compact columns."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from heatmap.aggregator import store_db
from heatmap.aggregator.obs_reader import read_observations, read_windows
from heatmap.calibration import calibrate_store
from heatmap.localizers.base import make_windows
from heatmap.spatial.floorplan import load_default
from heatmap.spatial.radio_model import RadioModel
from heatmap.spatial.walkable_grid import WalkableGrid


def _fill(path: Path, n: int, seed: int = 0) -> list[tuple[int, str, str, int, str, int]]:
    rng = np.random.default_rng(seed)
    pids = [f"{rng.integers(0, 2**63):016x}" for _ in range(40)]
    rows = [
        (
            1_000_000 + int(rng.integers(0, 600_000)),
            f"n{int(rng.integers(1, 8))}",  # n7 is not in the plan
            pids[int(rng.integers(0, len(pids)))],
            int(rng.integers(-95, -40)),
            "ble" if rng.random() < 0.8 else "wifi24",
            0,
        )
        for _ in range(n)
    ]
    conn = store_db.connect(path)
    conn.executemany(
        "INSERT INTO obs (t_ms, node, pid, rssi, band, flags, sig) VALUES (?,?,?,?,?,?,NULL)", rows
    )
    conn.commit()
    conn.close()
    return rows


def test_columns_equal_the_rows_in_every_batch_size(tmp_path: Path) -> None:
    rows = _fill(tmp_path / "s.db", 5_000)
    node_index = {f"n{i}": i - 1 for i in range(1, 7)}
    conn = store_db.connect(tmp_path / "s.db", readonly=True)
    t0, t1 = 1_100_000, 1_500_000
    want = sorted(r for r in rows if t0 <= r[0] < t1)
    for batch in (1, 7, 1000, 1_000_000):
        o = read_observations(conn, t0, t1, node_index, batch_rows=batch)
        got = sorted(
            zip(
                o.t_ms.tolist(),
                o.node.tolist(),
                o.pids[o.pid].tolist(),
                o.rssi.tolist(),
                o.bands[o.band].tolist(),
                o.flags.tolist(),
                strict=True,
            )
        )
        expect = sorted(
            (r[0], node_index.get(r[1], -1), r[2], float(r[3]), r[4], r[5]) for r in want
        )
        assert got == expect
        assert o.pid.dtype == np.int32 and o.rssi.dtype == np.float32 and o.node.dtype == np.int16
        assert len(o.pids) == len(set(r[2] for r in want))


def test_empty_period(tmp_path: Path) -> None:
    _fill(tmp_path / "s.db", 10)
    conn = store_db.connect(tmp_path / "s.db", readonly=True)
    o = read_observations(conn, 0, 1, {"n1": 0})
    assert len(o) == 0 and len(o.pids) == 0 and o.t_ms.dtype == np.int64


def test_coded_observations_give_the_same_windows_as_strings(tmp_path: Path) -> None:
    """The report's path (codes) and the string path group the same windows."""
    _fill(tmp_path / "s.db", 20_000, seed=3)
    plan = load_default()
    model = RadioModel.from_plan(plan)
    node_index = {n: i for i, n in enumerate(model.node_ids)}
    conn = store_db.connect(tmp_path / "s.db", readonly=True)
    o = read_observations(conn, 0, 10**9, node_index)
    ok = o.node >= 0
    coded = make_windows(
        o.t_ms[ok], o.node[ok], o.pid[ok], o.rssi[ok], o.band[ok], model.n_nodes, 5000, o.bands
    )
    strings = make_windows(
        o.t_ms[ok],
        o.node[ok].astype(np.int64),
        o.pids[o.pid[ok]],
        o.rssi[ok].astype(float),
        o.band_name()[ok],
        model.n_nodes,
        5000,
    )

    # codes sort in first-seen order, strings alphabetically: compare as sets of windows
    def keyed(w, names):  # type: ignore[no-untyped-def]
        return {
            (str(names[i]), int(t), str(b)): (np.nan_to_num(r, nan=1.0).tolist(), c.tolist())
            for i, t, b, r, c in zip(w.pid, w.t_ms, w.band, w.rssi, w.counts, strict=True)
        }

    assert keyed(coded, o.pids) == keyed(strings, {p: p for p in o.pids})
    cal = calibrate_store(
        model,
        WalkableGrid.build(plan, cell_m=1.0),
        o.t_ms,
        o.node,
        o.pid,
        o.rssi,
        o.band,
        o.flags,
        population=False,
        band_names=o.bands,
    )
    assert len(cal.windows) == len(coded)
    assert set(np.unique(cal.windows.band)) <= {"ble", "wifi24"}


@pytest.mark.parametrize("workers", [1, 2])
def test_windows_read_by_slab_equal_the_windows_of_all_rows(tmp_path: Path, workers: int) -> None:
    """Hour slabs (here 7 s ones, so many windows sit at slab edges) lose nothing,
    read here or in worker processes."""
    _fill(tmp_path / "s.db", 20_000, seed=5)
    model = RadioModel.from_plan(load_default())
    node_index = {n: i for i, n in enumerate(model.node_ids)}
    conn = store_db.connect(tmp_path / "s.db", readonly=True)
    codes: dict[str, int] = {}
    o = read_observations(conn, 0, 10**9, node_index, pid_codes=codes)
    drop = {int(o.pid[0])}
    ok = (o.node >= 0) & (o.pid != o.pid[0])
    whole = make_windows(
        o.t_ms[ok], o.node[ok], o.pid[ok], o.rssi[ok], o.band[ok], model.n_nodes, 1000, o.bands
    )
    slabbed, n_rows = read_windows(
        conn, 0, 10**9, node_index, model.n_nodes, 1000, codes, drop, 60_000, None, workers
    )
    assert n_rows == len(o)
    assert len(slabbed) == len(whole)
    for a, b in zip(
        (whole.pid, whole.t_ms, whole.band, whole.counts, whole.frames),
        (slabbed.pid, slabbed.t_ms, slabbed.band, slabbed.counts, slabbed.frames),
        strict=True,
    ):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_allclose(np.nan_to_num(whole.rssi), np.nan_to_num(slabbed.rssi), atol=1e-4)
    assert int(o.pid[0]) not in set(slabbed.pid.tolist())


def test_frame_counts_keep_their_value_when_slabs_need_wider_types(tmp_path: Path) -> None:
    """Counts are stored in the smallest unsigned type per slab (uint8 at usual
    rates); a slab whose window holds 300 frames from one node must not wrap
    around when joined with uint8 slabs."""
    # the uint8 slab first: the joined column must take the wider type, not the first's
    rows = [(900_000 + 1000 * i, "n2", "bb" * 8, -70, "ble", 0) for i in range(5)]
    rows += [(1_000_000 + i, "n1", "aa" * 8, -60, "ble", 0) for i in range(300)]
    conn = store_db.connect(tmp_path / "s.db")
    conn.executemany(
        "INSERT INTO obs (t_ms, node, pid, rssi, band, flags, sig) VALUES (?,?,?,?,?,?,NULL)", rows
    )
    conn.commit()
    node_index = {"n1": 0, "n2": 1}
    w, n = read_windows(conn, 0, 2_000_000, node_index, 2, 60_000, {}, slab_ms=60_000)
    assert n == 305
    assert w.counts.dtype == np.uint16
    assert sorted(w.counts.sum(axis=1).tolist()) == [5, 300]
    assert w.frames.max() == 300
