"""The live aggregator's working state without pseudonyms: ``live_intervals`` k-guarded
when their hour closes, and expired with the door and floor events (never before 26 h)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from heatmap.aggregator import retention, store_db
from heatmap.aggregator.live import k_guard

H = 3_600_000
T0 = 1_795_000_000_000 - 1_795_000_000_000 % H


def _intervals(conn: object, cells: np.ndarray) -> None:
    for i in range(12):
        a = T0 + i * 300_000
        conn.execute(  # type: ignore[attr-defined]
            "INSERT INTO live_intervals VALUES (?,?,?,?,?,?)",
            (a, a + 300_000, a, 10, 50.0, cells.astype(np.float32).tobytes()),
        )


def test_an_hours_intervals_keep_only_the_cells_its_heatmap_kept(tmp_path: Path) -> None:
    conn = store_db.connect(tmp_path / "s.db")
    _intervals(conn, np.arange(1, 9, dtype=float))
    assert k_guard.guard_intervals(conn, T0, T0 + H, {"2": 30.0, "5": 12.0}, devices=7, k=5) == 12
    for blob, inside in conn.execute("SELECT cells, rf_inside_s FROM live_intervals"):
        assert np.frombuffer(blob, np.float32).tolist() == [0, 0, 3, 0, 0, 6, 0, 0]
        assert inside == 50.0
    # an hour of fewer than k devices keeps nothing, not even the device-seconds inside
    assert k_guard.guard_intervals(conn, T0, T0 + H, {"2": 30.0}, devices=4, k=5) == 12
    for blob, inside in conn.execute("SELECT cells, rf_inside_s FROM live_intervals"):
        assert not np.frombuffer(blob, np.float32).any() and inside == 0.0
    conn.close()


def test_events_and_intervals_expire_after_26_h_at_least(tmp_path: Path) -> None:
    conn = store_db.connect(tmp_path / "s.db")
    _intervals(conn, np.ones(4))
    conn.executemany("INSERT INTO door_events VALUES (?, 'main', 1)", [(T0 + 1,), (T0 + 2 * H,)])
    conn.execute("INSERT INTO floor_events VALUES (?, 'tiles', 3, 1)", (T0 + 1,))
    conn.commit()
    policy = retention.RetentionPolicy(retention_hours=2.0)
    # 25 h later: the visitors' horizon (2 h) is long past, the events' 26 h not yet
    retention.run(conn, T0 + 25 * H, policy, aggregate=False)
    assert conn.execute("SELECT COUNT(*) FROM door_events").fetchone()[0] == 2
    assert conn.execute("SELECT COUNT(*) FROM live_intervals").fetchone()[0] == 12
    retention.run(conn, T0 + 27 * H, policy, aggregate=False)
    assert conn.execute("SELECT COUNT(*) FROM door_events").fetchone()[0] == 1  # the later one
    assert conn.execute("SELECT COUNT(*) FROM floor_events").fetchone()[0] == 0
    assert conn.execute("SELECT COUNT(*) FROM live_intervals").fetchone()[0] == 0
    conn.close()
