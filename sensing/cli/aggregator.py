"""``footfall aggregator`` (the store aggregator daemon) and ``footfall db``
(stats, online backup, vacuum, retention of the store database).

Light at import time: each handler imports what it needs.
"""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sensing.cli import checks


def _fmt_ms(t: int | None) -> str:
    """A Unix ms time as UTC, or the number itself when no calendar date fits it
    (a database written before ingest checked times may hold any)."""
    if t is None:
        return "-"
    try:
        return datetime.fromtimestamp(t / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    except (ValueError, OverflowError, OSError):
        return f"{t} ms (no calendar date)"


def _mib(n: int) -> str:
    return f"{n / 2**20:,.1f} MiB"


def cmd_aggregator(a: argparse.Namespace) -> int:
    from sensing.runtime.blas_threads import single_blas_thread
    from sensing.runtime.service_process import log_to_stderr, stop_on_signals

    single_blas_thread()  # before numpy: the live aggregator is one thread's work

    from heatmap.aggregator import config as aggregator_config
    from heatmap.aggregator import db_migrations
    from heatmap.aggregator.daemon import AggregatorDaemon
    from sensing.runtime.private_files import private_umask

    cfg = aggregator_config.load(a.config)
    checks.tls_files(cfg.broker.tls, a.config)
    log_to_stderr(a.verbose)
    stop = stop_on_signals()
    private_umask()  # the store database and what it writes are private, systemd or not
    daemon = AggregatorDaemon(cfg)
    daemon.start()
    print(
        f"footfall aggregator: store {cfg.store}, broker {cfg.broker}, "
        f"database {cfg.db} (schema v{db_migrations.LATEST}), "
        f"retention {cfg.retention.retention_hours:g} h, k = {cfg.k}, "
        f"status on {daemon.status_topic}",
        flush=True,
    )
    try:
        daemon.run(stop)
    finally:
        daemon.stop()
    s = daemon.ingest.stats
    rejects = ", ".join(f"{k} {v}" for k, v in sorted(daemon.ingest.rejects.items())) or "none"
    print(
        f"footfall aggregator: stopped; {s.messages} messages, {s.observations} observations "
        f"stored, {s.duplicates} duplicates, {s.expired} expired; rejects: {rejects}",
        flush=True,
    )
    return 0


def _db_path(a: argparse.Namespace) -> Path:
    """The database a ``footfall db`` command works on: an existing store database of a
    schema this footfall reads (opened read-only once to check; see
    :func:`heatmap.aggregator.store_db.connect`)."""
    from heatmap.aggregator import store_db

    if a.db:
        path = Path(a.db)
    else:
        from heatmap.aggregator import config as aggregator_config

        path = aggregator_config.load(a.config).db
    store_db.connect(path, readonly=True).close()
    return path


def _sql_errors(path: Path) -> Any:
    """A context that turns SQLite's errors (a file corrupt beyond its header) into a
    DatabaseError naming ``path``."""
    import contextlib
    import sqlite3

    from heatmap.aggregator.db_migrations import DatabaseError

    @contextlib.contextmanager
    def ctx() -> Any:
        try:
            yield
        except sqlite3.Error as e:
            raise DatabaseError(f"{path}: {e}") from e

    return ctx()


def cmd_db_stats(a: argparse.Namespace) -> int:
    from heatmap.aggregator import store_db

    path = _db_path(a)
    conn = store_db.connect(path, readonly=True)
    try:
        with _sql_errors(path):
            st = store_db.stats(conn, path)
    finally:
        conn.close()
    print(f"{st.path}: schema v{st.schema_version}")
    print(
        f"  file {_mib(st.file_bytes)}, write-ahead log {_mib(st.wal_bytes)}, "
        f"free {_mib(st.free_bytes)}"
    )
    for table, n in st.rows.items():
        print(f"  {table:<13} {n:>12,} rows")
    print(f"  observations from {_fmt_ms(st.obs_span_ms[0])} to {_fmt_ms(st.obs_span_ms[1])}")
    if st.batches_by_kind:
        print("  batches: " + ", ".join(f"{k} {v:,}" for k, v in st.batches_by_kind.items()))
    if st.pid_classes:
        print("  pseudonym classes: " + ", ".join(f"{k} {v:,}" for k, v in st.pid_classes.items()))
    print("  rejects: " + (", ".join(f"{k} {v:,}" for k, v in st.rejects.items()) or "none"))
    return 0


def cmd_db_vacuum(a: argparse.Namespace) -> int:
    from heatmap.aggregator import store_db

    path = _db_path(a)
    before = path.stat().st_size
    conn = store_db.connect(path)
    try:
        with _sql_errors(path):
            store_db.vacuum(conn)
    finally:
        conn.close()
    print(f"{path}: vacuumed, {_mib(before)} → {_mib(path.stat().st_size)}")
    return 0


def cmd_db_backup(a: argparse.Namespace) -> int:
    import sqlite3

    from heatmap.aggregator import store_db
    from heatmap.aggregator.db_migrations import DatabaseError

    path = _db_path(a)
    checks.output_file(a.to, "--to")
    conn = sqlite3.connect(path, timeout=60)
    try:
        size = store_db.backup(conn, a.to)
    except sqlite3.Error as e:
        raise DatabaseError(f"backup of {path} failed: {e}") from e
    finally:
        conn.close()
    print(f"{path} → {a.to}: {_mib(size)}, integrity ok")
    return 0


def cmd_db_retention(a: argparse.Namespace) -> int:
    import dataclasses

    from firmware_bridge.errors import ConfigError
    from heatmap.aggregator import retention, store_db
    from heatmap.aggregator.retention import MAX_RETENTION_HOURS, RetentionPolicy

    path = _db_path(a)
    if a.config:
        from heatmap.aggregator import config as aggregator_config

        policy = aggregator_config.load(a.config).retention
    else:
        policy = RetentionPolicy()
    if a.retention_hours is not None:
        if not 1 <= a.retention_hours <= MAX_RETENTION_HOURS:
            raise ConfigError(f"--retention-hours must be in 1..{MAX_RETENTION_HOURS:g}")
        policy = dataclasses.replace(policy, retention_hours=a.retention_hours)
    now = datetime.now(UTC) if a.now is None else checks.iso_time(a.now, "--now")
    conn = store_db.connect(path)
    try:
        with _sql_errors(path):
            rep = retention.run(conn, int(now.timestamp() * 1000), policy, dry_run=a.dry_run)
    finally:
        conn.close()
    verb = "due" if a.dry_run else "done"
    print(
        f"{path}: retention {verb} at {_fmt_ms(rep.now_ms)} "
        f"(horizon {_fmt_ms(rep.horizon_ms)}, {policy.retention_hours:g} h)"
    )
    print(f"  hours aggregated: {', '.join(_fmt_ms(h) for h in rep.hours_aggregated) or 'none'}")
    print(f"  hours purged of passersby: {len(rep.hours_purged)}")
    print(f"  passersby's observations deleted: {rep.passerby_obs:,}")
    print(f"  observations past the horizon deleted: {rep.expired_obs:,}")
    return 0


def _db_source(p: argparse.ArgumentParser) -> None:
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--config", help="the aggregator's store.toml (its aggregator.db)")
    g.add_argument("--db", help="path of the store database")


def register(sub: Any) -> None:
    ag = sub.add_parser("aggregator", help="run the store aggregator (MQTT → SQLite, retention)")
    ag.add_argument("--config", required=True, help="store.toml")
    ag.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    ag.set_defaults(func=cmd_aggregator)

    db = sub.add_parser("db", help="store database: stats, backup, vacuum, retention")
    dsub = db.add_subparsers(dest="db_cmd", required=True)
    s = dsub.add_parser("stats", help="row counts, sizes, time span, rejects")
    _db_source(s)
    s.set_defaults(func=cmd_db_stats)
    b = dsub.add_parser("backup", help="online backup to a new file (safe while ingesting)")
    _db_source(b)
    b.add_argument("--to", required=True, help="new file to write")
    b.set_defaults(func=cmd_db_backup)
    v = dsub.add_parser("vacuum", help="give free pages back (pauses ingest while it runs)")
    _db_source(v)
    v.set_defaults(func=cmd_db_vacuum)
    r = dsub.add_parser("retention", help="run the retention job now (or --dry-run)")
    _db_source(r)
    r.add_argument("--dry-run", action="store_true", help="report what is due, delete nothing")
    r.add_argument("--now", help="ISO time to run as of (default now)")
    r.add_argument("--retention-hours", type=float, help="override retention_hours")
    r.set_defaults(func=cmd_db_retention)
