"""The chain's ClickHouse: its tables, how rows go in, and the queries read from them.

One small interface, :class:`Backend`, over two ways to reach the same engine:
chDB, ClickHouse in this process on a directory (the embedded default; one process
owns the directory, so its threads share one session under a lock), or a ClickHouse
server through ``clickhouse-connect`` (then any number of consumer processes). Both
get the same SQL text, and both answer a query as ``JSONCompact``.

The tables (database ``footfall``) are ``ReplacingMergeTree(ver)`` ordered by the
identity of what they hold, so a redelivered or re-published aggregate replaces the
one before it (the higher ``ver`` wins, see :mod:`heatmap.chain.aggregate_rows`):

* ``footfall``: one row per (store, unit, period_start): the hour and the day in
  progress, then closed, share their identity, so a closed hour replaces the rows it
  was while in progress;
* ``zone_stats``: one row per (store, zone, unit, period_start), today so far;
* ``occupancy``: the latest estimate per store;
* ``store_status``: the latest aggregator status per store (``offline`` when the
  broker published the aggregator's last will);
* ``bridge_state``: whether each store's bridge is connected to the centre now (a
  store whose connection is down cannot send its aggregator's status).

Until ClickHouse merges the parts, a replaced row is still stored: every read of the
figures says ``FINAL``, so duplicates never add up.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from firmware_bridge.errors import FootfallError
from sensing.wire.topics import check_id

DATABASE = "footfall"


class ChainStoreError(FootfallError, RuntimeError):
    """ClickHouse refused a statement, or the database cannot be opened."""


_TS = "DateTime64(3, 'UTC')"
_PERIOD = f"""
    store LowCardinality(String),
    unit LowCardinality(String),
    period_start {_TS},
    period_end {_TS},
    utc_offset_min Int16,
    local_date Date,
    final Bool,
    as_of {_TS},
    k UInt16,
    suppressed Bool,"""
_TAIL = f"""
    raw String CODEC(ZSTD(3)),
    received_at {_TS},
    ver UInt128"""

SCHEMA: dict[str, str] = {
    "footfall": f"""CREATE TABLE IF NOT EXISTS {DATABASE}.footfall ({_PERIOD}
    local_hour UInt8,
    level String,
    source LowCardinality(Nullable(String)),
    door_in Nullable(Int64),
    door_out Nullable(Int64),
    in_implied Nullable(Int64),
    visitors Nullable(Int64),
    passersby Nullable(Int64),
    visits Nullable(Int64),
    capture_rate Nullable(Float64),
    occupancy_mean Nullable(Float64),
    occupancy_max Nullable(Float64),
    dwell_mean_s Nullable(Float64),
    dwell_p25 Nullable(Float64),
    dwell_p50 Nullable(Float64),
    dwell_p75 Nullable(Float64),
    dwell_p90 Nullable(Float64),
    not_measured Array(LowCardinality(String)),{_TAIL}
) ENGINE = ReplacingMergeTree(ver)
PARTITION BY toYYYYMM(period_start)
ORDER BY (store, unit, period_start)""",
    "zone_stats": f"""CREATE TABLE IF NOT EXISTS {DATABASE}.zone_stats ({_PERIOD}
    zone String,
    name Nullable(String),
    occupancy Nullable(Int64),
    occupancy_as_of Nullable({_TS}),
    visits Nullable(Int64),
    dwell_p50 Nullable(Float64),
    dwell_p90 Nullable(Float64),
    person_seconds Nullable(Float64),
    reach_share Nullable(Float64),{_TAIL}
) ENGINE = ReplacingMergeTree(ver)
PARTITION BY toYYYYMM(period_start)
ORDER BY (store, zone, unit, period_start)""",
    "occupancy": f"""CREATE TABLE IF NOT EXISTS {DATABASE}.occupancy (
    store LowCardinality(String),
    t {_TS},
    as_of {_TS},
    occupancy Nullable(Int64),
    low Nullable(Int64),
    high Nullable(Int64),
    confidence Float64,
    source LowCardinality(String),
    k UInt16,
    suppressed Bool,{_TAIL}
) ENGINE = ReplacingMergeTree(ver)
ORDER BY store""",
    "store_status": f"""CREATE TABLE IF NOT EXISTS {DATABASE}.store_status (
    store LowCardinality(String),
    state LowCardinality(String),
    t Nullable({_TS}),
    version Nullable(String),
    uptime_s Nullable(Float64),{_TAIL}
) ENGINE = ReplacingMergeTree(ver)
ORDER BY store""",
    "bridge_state": f"""CREATE TABLE IF NOT EXISTS {DATABASE}.bridge_state (
    store LowCardinality(String),
    connected Bool,
    received_at {_TS},
    ver UInt128
) ENGINE = ReplacingMergeTree(ver)
ORDER BY store""",
}
"""each table's DDL, the same text for chDB and a ClickHouse server"""

TABLES = tuple(SCHEMA)


class Backend(Protocol):
    """What the chain needs of ClickHouse: run a statement, read a query's rows."""

    name: str

    def execute(self, sql: str) -> None:
        """Run a statement (DDL, INSERT with its data inline); ChainStoreError if refused."""

    def rows(self, sql: str) -> list[list[Any]]:
        """The rows of a SELECT (the statement without a FORMAT clause)."""

    def close(self) -> None:
        """Release the session or connection."""


def _rows_of(raw: bytes) -> list[list[Any]]:
    data: list[list[Any]] = json.loads(raw)["data"]
    return data


class ChdbBackend:
    """ClickHouse in this process (chDB) on directory ``path``; statements from several
    threads are serialized by one lock."""

    name = "chdb"

    def __init__(self, path: Path) -> None:
        try:
            from chdb import session
        except ImportError as e:
            raise ChainStoreError("chdb is not installed (pip install 'footfall[chain]')") from e
        path.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        try:
            self._session = session.Session(str(path))
        except Exception as e:  # chdb raises its own types for a directory it cannot own
            raise ChainStoreError(f"cannot open chDB directory {path}: {e}") from e

    def execute(self, sql: str) -> None:
        self._run(sql, "CSV")

    def rows(self, sql: str) -> list[list[Any]]:
        return _rows_of(self._run(sql, "JSONCompact"))

    def _run(self, sql: str, fmt: str) -> bytes:
        with self._lock:
            try:
                res = self._session.query(sql, fmt)
            except Exception as e:  # chdb.ChdbError and RuntimeError, depending on version
                raise ChainStoreError(f"ClickHouse (chDB) refused: {str(e)[:300]}") from e
            out: bytes = res.bytes()
        return out

    def close(self) -> None:
        with self._lock:
            self._session.close()


class ServerBackend:
    """A ClickHouse server through ``clickhouse-connect`` (HTTP), ``url`` like
    ``http://user:password@host:8123``."""

    name = "clickhouse"

    def __init__(self, url: str) -> None:
        try:
            import clickhouse_connect
        except ImportError as e:
            raise ChainStoreError(
                "clickhouse-connect is not installed (pip install 'footfall[chain]')"
            ) from e
        self._lock = threading.Lock()
        try:
            self._client = clickhouse_connect.get_client(dsn=url)
        except Exception as e:  # connection refused, authentication, bad URL
            raise ChainStoreError(f"cannot connect to ClickHouse at {_redact(url)}: {e}") from e

    def execute(self, sql: str) -> None:
        with self._lock:
            try:
                self._client.command(sql)
            except Exception as e:
                raise ChainStoreError(f"ClickHouse refused: {str(e)[:300]}") from e

    def rows(self, sql: str) -> list[list[Any]]:
        with self._lock:
            try:
                raw = self._client.raw_query(sql, fmt="JSONCompact")
            except Exception as e:
                raise ChainStoreError(f"ClickHouse refused: {str(e)[:300]}") from e
        return _rows_of(raw)

    def close(self) -> None:
        self._client.close()


def _redact(url: str) -> str:
    """``url`` without a password."""
    head, sep, tail = url.rpartition("@")
    if not sep:
        return url
    scheme, _, user = head.partition("://")
    return f"{scheme}://{user.split(':')[0]}:***@{tail}"


def open_backend(db: Path | None = None, url: str | None = None) -> Backend:
    """chDB on directory ``db``, or the server at ``url`` (exactly one of the two)."""
    if (db is None) == (url is None):
        raise ChainStoreError("give one of a chDB directory (--db) or a server URL (--clickhouse)")
    if url is not None:
        return ServerBackend(url)
    assert db is not None
    return ChdbBackend(db)


@dataclass(frozen=True, slots=True)
class TableCount:
    """Rows of a table: as the figures read them (FINAL) and as stored (replaced
    rows not merged away yet)."""

    rows: int
    stored: int


class ChainStore:
    """The chain's tables over one :class:`Backend`."""

    def __init__(self, backend: Backend) -> None:
        self.backend = backend

    def create_schema(self) -> None:
        """Create the database and its tables if they are not there."""
        self.backend.execute(f"CREATE DATABASE IF NOT EXISTS {DATABASE}")
        for ddl in SCHEMA.values():
            self.backend.execute(ddl)

    def has_schema(self) -> bool:
        """Whether every table of the chain is there."""
        [[n]] = self.backend.rows(
            f"SELECT count() FROM system.tables WHERE database = '{DATABASE}' "
            f"AND name IN ({', '.join(repr(t) for t in SCHEMA)})"
        )
        return int(n) == len(SCHEMA)

    def insert(self, table: str, rows: Sequence[dict[str, Any]]) -> None:
        """Insert ``rows`` (dicts of column → value) into ``table`` in one statement."""
        if table not in SCHEMA:
            raise ChainStoreError(f"no table {table!r}")
        if not rows:
            return
        body = "\n".join(json.dumps(r, separators=(",", ":"), allow_nan=False) for r in rows)
        self.backend.execute(f"INSERT INTO {DATABASE}.{table} FORMAT JSONEachRow\n{body}")

    def count(self, table: str) -> TableCount:
        """How many rows ``table`` holds, read with FINAL and as stored."""
        if table not in SCHEMA:
            raise ChainStoreError(f"no table {table!r}")
        [[final, stored]] = self.backend.rows(
            f"SELECT (SELECT count() FROM {DATABASE}.{table} FINAL), "
            f"(SELECT count() FROM {DATABASE}.{table})"
        )
        return TableCount(int(final), int(stored))

    def rows(self, sql: str) -> list[list[Any]]:
        return self.backend.rows(sql)

    def close(self) -> None:
        self.backend.close()


# ------------------------------------------------------------------ the report's queries


def store_list(stores: Iterable[str] | None) -> str:
    """An SQL condition on ``store`` (ids checked, so they can be quoted as they are)."""
    if stores is None:
        return "1"
    ids = [check_id(s, "store") for s in stores]
    return "store IN (" + ", ".join(f"'{s}'" for s in ids) + ")"


def week_days_sql(first_day: str, last_day: str, stores: Iterable[str] | None) -> str:
    """Each store's local days from ``first_day`` to ``last_day`` (YYYY-MM-DD): visitors,
    passers-by, capture rate, mean dwell; NULL stays NULL (suppressed or not measured)."""
    return f"""SELECT store, toString(local_date), final, suppressed, visitors, passersby,
    capture_rate, dwell_mean_s, has(not_measured, 'visitors'), has(not_measured, 'passersby'),
    has(not_measured, 'dwell_mean_s')
FROM {DATABASE}.footfall FINAL
WHERE unit = 'day' AND local_date BETWEEN '{first_day}' AND '{last_day}'
    AND {store_list(stores)}
ORDER BY store, local_date"""


def week_hours_sql(first_day: str, last_day: str, stores: Iterable[str] | None) -> str:
    """Each store's local hours of those days: visitors per (day, hour of day)."""
    return f"""SELECT store, toString(local_date), local_hour, final, suppressed, visitors
FROM {DATABASE}.footfall FINAL
WHERE unit = 'hour' AND local_date BETWEEN '{first_day}' AND '{last_day}'
    AND {store_list(stores)}
ORDER BY store, local_date, local_hour, period_start"""
