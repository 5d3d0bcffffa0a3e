"""Pseudonymous data on disk is private: the daemons' databases are 0600 in 0700 folders.

Issue 23: outside systemd (no StateDirectoryMode, no UMask) store.db and spool.db
were created 0644 in 0755 folders. Now the code that creates them makes them
private itself, and SQLite's -wal and -shm files follow the database's mode.
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from heatmap.aggregator import store_db
from sensing.node.spool import Spool
from sensing.runtime.private_files import private_dir, private_file


def _mode(p: Path) -> int:
    return stat.S_IMODE(p.stat().st_mode)


@pytest.fixture
def open_umask() -> Iterator[None]:
    """A permissive umask, as a daemon started by hand may have."""
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


@pytest.mark.usefixtures("open_umask")
def test_store_database_and_its_wal_are_private(tmp_path: Path) -> None:
    db = tmp_path / "var" / "footfall" / "store.db"
    conn = store_db.connect(db)
    try:
        conn.execute("CREATE TABLE IF NOT EXISTS t (x)")
        conn.execute("INSERT INTO t VALUES (1)")
        conn.commit()
        files = [db, db.with_name("store.db-wal"), db.with_name("store.db-shm")]
        assert all(f.exists() for f in files)
        assert {f.name: _mode(f) for f in files} == {f.name: 0o600 for f in files}
        assert _mode(db.parent) == 0o700 and _mode(db.parent.parent) == 0o700
    finally:
        conn.close()


@pytest.mark.usefixtures("open_umask")
def test_an_old_world_readable_database_is_tightened(tmp_path: Path) -> None:
    db = tmp_path / "store.db"
    store_db.connect(db).close()
    os.chmod(db, 0o644)
    store_db.connect(db).close()
    assert _mode(db) == 0o600


@pytest.mark.usefixtures("open_umask")
def test_node_spool_is_private(tmp_path: Path) -> None:
    path = tmp_path / "state" / "spool.db"
    sp = Spool(path)
    try:
        assert _mode(path) == 0o600
        assert _mode(path.parent) == 0o700
    finally:
        sp.close()


@pytest.mark.usefixtures("open_umask")
def test_backup_is_private(tmp_path: Path) -> None:
    db = tmp_path / "store.db"
    conn = store_db.connect(db)
    try:
        dest = tmp_path / "backups" / "b.db"
        store_db.backup(conn, dest)
    finally:
        conn.close()
    assert _mode(dest) == 0o600 and _mode(dest.parent) == 0o700


@pytest.mark.usefixtures("open_umask")
def test_existing_folders_are_left_alone(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o755)
    os.chmod(shared, 0o755)
    private_dir(shared / "a" / "b")
    assert _mode(shared) == 0o755
    assert _mode(shared / "a") == 0o700 and _mode(shared / "a" / "b") == 0o700
    f = private_file(shared / "x.db")
    assert _mode(f) == 0o600


def test_daemon_umask_makes_every_new_file_private(tmp_path: Path) -> None:
    code = (
        "import os, sys, stat; from sensing.runtime.private_files import private_umask; "
        "os.umask(0o022); private_umask(); p = sys.argv[1]; open(p, 'w').close(); "
        "print(oct(stat.S_IMODE(os.stat(p).st_mode)))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "f")],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert out.stdout.strip() == "0o600"
