"""The store database: migrations from every earlier version, refusal of newer or
foreign files, indexes behind the queries analytics and retention make, online
backup while writing, vacuum, stats, and the ``footfall db`` commands."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest

from heatmap.aggregator import db_migrations, store_db
from heatmap.aggregator.db_migrations import DatabaseError
from heatmap.aggregator.store_db import Claim, StoreDB
from sensing.cli.main import main as footfall

from ingest_fixtures import T0, obs_payload

LEGACY_SKELETON_SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE batches (
    kind TEXT NOT NULL, publisher TEXT NOT NULL, seq INTEGER NOT NULL,
    t0 INTEGER NOT NULL, n INTEGER NOT NULL, received_ms INTEGER NOT NULL,
    PRIMARY KEY (kind, publisher, seq)) WITHOUT ROWID;
CREATE TABLE obs (
    t_ms INTEGER NOT NULL, node TEXT NOT NULL, pid TEXT NOT NULL, rssi INTEGER NOT NULL,
    band TEXT NOT NULL, flags INTEGER NOT NULL, sig TEXT);
CREATE INDEX obs_pid_t ON obs (pid, t_ms);
CREATE INDEX obs_t ON obs (t_ms);
CREATE TABLE door_events (t_ms INTEGER NOT NULL, door TEXT NOT NULL, dir INTEGER NOT NULL);
CREATE INDEX door_t ON door_events (t_ms);
CREATE TABLE floor_events (
    t_ms INTEGER NOT NULL, array_id TEXT NOT NULL, tile INTEGER NOT NULL, state INTEGER NOT NULL);
CREATE TABLE rejects (reason TEXT PRIMARY KEY, n INTEGER NOT NULL);
CREATE TABLE node_status (
    node TEXT PRIMARY KEY, payload TEXT NOT NULL, received_ms INTEGER NOT NULL);
INSERT INTO meta VALUES ('schema_version', '1');
INSERT INTO batches VALUES ('obs', 'n1', 0, 1000, 2, 5000);
INSERT INTO obs VALUES (1000, 'n1', '0123456789abcdef', -60, 'ble', 0, NULL);
INSERT INTO obs VALUES (1010, 'n1', '0123456789abcdef', -61, 'ble', 0, NULL);
INSERT INTO rejects VALUES ('schema', 3);
"""
"""what the walking skeleton's StoreDB wrote (user_version 0, meta says 1)"""


def _indexes(conn: sqlite3.Connection, table: str) -> set[str]:
    return {r[1] for r in conn.execute(f"PRAGMA index_list({table})")}


def test_walking_skeleton_file_is_migrated_in_place(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    old = sqlite3.connect(path)
    old.executescript(LEGACY_SKELETON_SCHEMA)
    old.close()
    db = StoreDB(path)
    conn = db.conn
    assert db_migrations.version(conn) == db_migrations.LATEST
    assert conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()[0] == str(
        db_migrations.LATEST
    )
    assert conn.execute("SELECT COUNT(*) FROM obs").fetchone()[0] == 2
    assert conn.execute("SELECT t0, t1, n FROM batches").fetchone() == (1000, 1000, 2)
    assert db.rejects() == {"schema": 3}
    assert "obs_pid_t" not in _indexes(conn, "obs") and "obs_t" in _indexes(conn, "obs")
    # the same batch again is recognised; new ones go in
    again = {**obs_payload(0), "t0": 1000, "obs": [[0, "0" * 16, -1, "ble", 0]] * 2}
    assert db.add_obs("n1", again) is Claim.DUPLICATE
    assert db.add_obs("n1", obs_payload(1)) is Claim.NEW
    db.commit()
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    db.close()


@pytest.mark.parametrize("start", range(db_migrations.LATEST + 1))
def test_every_version_migrates_to_the_latest(tmp_path: Path, start: int) -> None:
    conn = sqlite3.connect(tmp_path / "x.db")
    for m in db_migrations.MIGRATIONS:
        if m.version <= start:
            db_migrations._apply(conn, m)
    assert db_migrations.migrate(conn) == (start, db_migrations.LATEST)
    fresh = sqlite3.connect(":memory:")
    db_migrations.migrate(fresh)
    schema = "SELECT type, name, tbl_name FROM sqlite_master ORDER BY name"
    assert conn.execute(schema).fetchall() == fresh.execute(schema).fetchall()


def test_newer_or_foreign_files_are_refused(tmp_path: Path) -> None:
    newer = tmp_path / "newer.db"
    c = sqlite3.connect(newer)
    c.execute(f"PRAGMA user_version = {db_migrations.LATEST + 1}")
    c.close()
    with pytest.raises(DatabaseError, match="newer than this footfall"):
        StoreDB(newer)
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"this is not a database at all" * 200)
    with pytest.raises(DatabaseError):
        StoreDB(junk)
    with pytest.raises(RuntimeError):  # DatabaseError is also a RuntimeError
        store_db.connect(tmp_path / "missing.db", readonly=True)


def _plan(conn: sqlite3.Connection, sql: str, *args: object) -> str:
    return " ".join(r[3] for r in conn.execute(f"EXPLAIN QUERY PLAN {sql}", args))


def test_the_queries_analytics_and_retention_make_use_indexes(tmp_path: Path) -> None:
    conn = store_db.connect(tmp_path / "s.db")
    analytics = "SELECT t_ms, node, pid, rssi, band FROM obs WHERE t_ms >= ? AND t_ms < ?"
    assert "USING INDEX obs_t" in _plan(conn, analytics, 0, 1)
    doors = "SELECT t_ms, dir FROM door_events WHERE t_ms >= ? AND t_ms < ? ORDER BY t_ms"
    assert "USING INDEX door_t" in _plan(conn, doors, 0, 1)
    tiles = "SELECT * FROM floor_events WHERE t_ms >= ? AND t_ms < ?"
    assert "USING INDEX floor_t" in _plan(conn, tiles, 0, 1)
    dedup = "SELECT t0, n FROM batches WHERE kind=? AND publisher=? AND seq=?"
    assert "USING PRIMARY KEY" in _plan(conn, dedup, "obs", "n1", 1)
    late = "SELECT 1 FROM batches WHERE kind='obs' AND t1 >= ? AND t1 < ? AND t0 < ?"
    assert "batches_t1" in _plan(conn, late, 0, 1, 0)
    recent = "SELECT t0, t1 FROM batches WHERE kind = 'obs' AND n > 0 AND t1 >= ?"
    assert "batches_t1" in _plan(conn, recent, 0)
    old = "DELETE FROM batches WHERE kind IN ('obs', 'door', 'floor') AND t1 < ?"
    assert "batches_t1" in _plan(conn, old, 0)
    classify = "SELECT pid, MAX(rssi) FROM obs WHERE t_ms >= ? AND t_ms < ? GROUP BY pid"
    assert "USING INDEX obs_t" in _plan(conn, classify, 0, 1)
    covered = "SELECT 1 FROM aggregates WHERE t0_ms <= ? AND t1_ms >= ?"
    assert "aggregates_t" in _plan(conn, covered, 0, 1)
    conn.close()


def test_online_backup_while_ingest_writes(tmp_path: Path) -> None:
    db = StoreDB(tmp_path / "live.db")
    stop = threading.Event()
    written: list[int] = []

    def writer() -> None:
        seq = 0
        while not stop.is_set():
            db.add_obs("n1", obs_payload(seq, rows=200))
            db.commit()
            written.append(seq)
            seq += 1

    t = threading.Thread(target=writer)
    t.start()
    try:
        while len(written) < 50:
            stop.wait(0.01)
        reader = sqlite3.connect(tmp_path / "live.db")
        size = store_db.backup(reader, tmp_path / "copy.db")
        reader.close()
        n_after = len(written)
    finally:
        stop.set()
        t.join(10)
        db.close()
    assert n_after > 50  # ingest went on during the backup
    copy = sqlite3.connect(tmp_path / "copy.db")
    assert size > 0 and copy.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert copy.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
    n_batches, n_rows = copy.execute("SELECT COUNT(*), SUM(n) FROM batches").fetchone()
    assert n_batches >= 50 and copy.execute("SELECT COUNT(*) FROM obs").fetchone()[0] == n_rows
    with pytest.raises(DatabaseError, match="exists"):
        store_db.backup(copy, tmp_path / "copy.db")


def test_footfall_db_commands(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "s.db"
    db = StoreDB(path)
    for seq in range(40):
        db.add_obs("n1", obs_payload(seq, rows=500))
    db.commit()
    db.conn.execute("DELETE FROM obs WHERE t_ms < ?", (T0 + 30_000,))
    db.commit()
    db.close()
    assert footfall(["db", "stats", "--db", str(path)]) == 0
    out = capsys.readouterr().out
    assert f"schema v{db_migrations.LATEST}" in out
    assert "5,000 rows" in out and "batches: obs 40" in out
    before = path.stat().st_size
    assert footfall(["db", "vacuum", "--db", str(path)]) == 0
    assert path.stat().st_size < before
    assert footfall(["db", "backup", "--db", str(path), "--to", str(tmp_path / "b.db")]) == 0
    assert "integrity ok" in capsys.readouterr().out
    assert footfall(["db", "stats", "--db", str(tmp_path / "nope.db")]) == 1
    assert "no such database" in capsys.readouterr().err


@pytest.mark.parametrize(
    "module",
    [
        "heatmap.aggregator.db_migrations",
        "heatmap.aggregator.hour_aggregates",
        "heatmap.aggregator.daemon",
    ],
)
def test_docstring_examples(module: str) -> None:
    import doctest
    import importlib

    result = doctest.testmod(importlib.import_module(module))
    assert result.attempted > 0 and result.failed == 0


def test_rows_read_by_sqlite_from_the_text_equal_rows_bound_one_by_one(tmp_path: Path) -> None:
    """The fast path (SQLite's JSON reader on the validated text) stores exactly what
    binding the parsed rows stores, escapes and optional items included; a text that
    does not match its parsed rows falls back to binding them."""
    from sensing.wire import payloads

    texts = [
        payloads.encode(obs_payload(0, rows=50)).decode(),
        '{"v":1,"node":"n1","seq":1,"t0":5,"obs":[[0,"\\u0030123456789abcdef",-60,"ble",0],'
        ' [ 7 , "fedcba9876543210" , -127 , "wifi6" , 65535 , "00ff00ff" ] ]}',
        '{"v":1,"node":"n1","seq":2,"t0":9007199254740000,"obs":[[3600000,"0000000000000000",20,"wifi5",1]]}',
        '{"v":1,"node":"n1","seq":3,"t0":0,"obs":[]}',
    ]
    fast, slow = StoreDB(tmp_path / "fast.db"), StoreDB(tmp_path / "slow.db")
    for text in texts:
        p = payloads.decode("obs", text.encode())
        assert fast.add_obs("n1", p, 1, text) is Claim.NEW
        assert slow.add_obs("n1", p, 1) is Claim.NEW
    q = "SELECT t_ms, node, pid, rssi, band, flags, sig, typeof(sig) FROM obs ORDER BY rowid"
    assert fast.conn.execute(q).fetchall() == slow.conn.execute(q).fetchall()
    mismatch = obs_payload(9, rows=3)
    assert fast.add_obs("n1", mismatch, 1, payloads.encode(obs_payload(9, rows=4)).decode())
    assert fast.conn.execute("SELECT COUNT(*) FROM obs WHERE pid LIKE '00000009%'").fetchone() == (
        3,
    )
    assert fast.add_obs("n1", obs_payload(10, rows=2), 1, "not json at all") is Claim.NEW
    fast.commit()
    assert fast.count("obs") == 50 + 2 + 1 + 3 + 2
    fast.close()
    slow.close()


def test_a_key_given_twice_is_refused() -> None:
    """Python's JSON reader keeps the last of two equal keys and SQLite's the first:
    such a payload could be validated as one batch and stored as another."""
    from firmware_bridge.errors import PayloadError
    from sensing.wire import payloads

    good = payloads.encode(obs_payload(0, rows=2)).decode()
    evil = good[:-1] + ',"obs":[[0,"AA:BB:CC:DD:EE:FF",-60,"ble",0]]}'
    with pytest.raises(PayloadError, match="'obs' given twice") as e:
        payloads.decode("obs", evil.encode())
    assert e.value.reason == "schema"
    with pytest.raises(PayloadError, match="given twice"):
        payloads.decode("node_status", b'{"v":1,"state":"online","state":"done"}')
