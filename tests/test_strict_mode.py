"""The ``strict`` privacy mode through the live pipeline: a simulated stretch of a store
(real nodes, broker and ingest build its rows) fed to the live processor as they would
arrive, a batch per node every 20 s; a scan every simulated minute, by the audit's own
retention check, finds no pseudonymous row older than 5 minutes on disk in ``strict``
mode, and finds them in ``standard`` mode on the same feed."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pytest

from heatmap.aggregator import retention, store_db
from heatmap.aggregator.live import settings as live_settings
from heatmap.aggregator.live import strict_memory
from heatmap.aggregator.live.processor import LiveProcessor
from heatmap.aggregator.live.settings import LiveSettings
from heatmap.privacy.store_audit import Limits, retention_findings
from heatmap.simulate.scenario import Scenario

from live_fixtures import StoreDay, aggregates, build_store_day

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]
STEP_MS = 20_000
"""the data clock advances 20 s per step (the daemon steps every 5 s of wall time)"""
DELAY_MS = 10_000
OBS_COLUMNS = "t_ms, node, pid, rssi, band, flags, sig, chain"
"""a row reaches the store database this long after it was heard (node batching)"""
SCAN_MS = 60_000


@pytest.fixture(scope="module")
def day(tmp_path_factory: pytest.TempPathFactory) -> StoreDay:
    # a quiet 21 minutes across an hour's end: the hour closes, no radio refit is due
    sc = Scenario(
        hours=0.35,
        seed=11,
        start_local=datetime(2026, 11, 20, 11, 45),
        shoppers_per_hour_peak=60,
        passersby_per_hour_peak=150,
        staff=2,
    )
    return build_store_day(tmp_path_factory.mktemp("strict"), sc, settle_s=0)


@dataclass
class Feed:
    """Copies the stretch's rows into a fresh store database as they would arrive: every
    step, each node's rows of the last step as one obs batch (consecutive seqs), and the
    door events."""

    src: sqlite3.Connection
    dst: sqlite3.Connection
    nodes: list[str]
    seq: int = 0
    fed_to: int = 0

    def to(self, now_ms: int) -> None:
        hi = now_ms - DELAY_MS
        lo = self.fed_to
        for node in self.nodes:
            rows = self.src.execute(
                f"SELECT {OBS_COLUMNS} FROM obs WHERE node = ? AND t_ms >= ? AND t_ms < ?",
                (node, lo, hi),
            ).fetchall()
            self.dst.executemany(f"INSERT INTO obs ({OBS_COLUMNS}) VALUES (?,?,?,?,?,?,?,?)", rows)
            ts = [r[0] for r in rows] or [lo]
            self.seq += 1
            self.dst.execute(
                "INSERT INTO batches (kind, publisher, seq, t0, n, received_ms, t1) "
                "VALUES ('obs', ?, ?, ?, ?, ?, ?)",
                (node, self.seq, min(ts), len(rows), now_ms, max(max(ts), hi - 1)),
            )
        self.dst.executemany(
            "INSERT INTO door_events VALUES (?,?,?)",
            self.src.execute(
                "SELECT * FROM door_events WHERE t_ms >= ? AND t_ms < ?", (lo, hi)
            ).fetchall(),
        )
        self.dst.commit()
        self.fed_to = hi


def _run(day: StoreDay, db: Path, mode: str) -> Iterator[tuple[int, list[str], LiveProcessor]]:
    """Step the live processor in ``mode`` over the stretch; yields (now, the audit's
    retention findings, processor) every simulated minute."""
    src = sqlite3.connect(f"file:{day.db}?mode=ro", uri=True)
    dst = store_db.connect(db)
    t0, t1 = src.execute("SELECT MIN(t_ms), MAX(t_ms) FROM obs").fetchone()
    nodes = [r[0] for r in src.execute("SELECT DISTINCT node FROM obs ORDER BY node")]
    feed = Feed(src, dst, nodes, fed_to=t0)
    s = LiveSettings()
    if mode == "strict":
        s = live_settings.strict(s)
    now = t0 + STEP_MS
    proc = LiveProcessor(db, day.plan, s, clock=lambda: now / 1000)
    limits = Limits(mode, 24.0, 300.0, s.k)
    end = t1 + 2 * 3_600_000 + 20 * 60_000  # the last hour closes (its grace) and settles
    next_scan = t0 + SCAN_MS
    audit = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        while now <= end:
            feed.to(now)
            proc.step(now)
            if now >= next_scan:
                next_scan += SCAN_MS
                audit.commit()  # a fresh read
                yield now, retention_findings(audit, now, limits, "scan")[0], proc
            now += STEP_MS if now < t1 + 10 * 60_000 else 5 * 60_000  # after the data: faster
    finally:
        proc.close()
        audit.close()
        dst.close()
        src.close()


def test_strict_mode_keeps_no_pseudonymous_row_older_than_5_minutes_on_disk(
    day: StoreDay, tmp_path: Path
) -> None:
    scans = 0
    moved = 0
    chained = 0
    for _now, findings, proc in _run(day, tmp_path / "strict.db", "strict"):
        assert findings == [], findings
        scans += 1
        moved = proc._mover.moved
        # the nodes' chains come along into memory (the RF count's device links)
        chained = max(chained, proc.ro.execute("SELECT COUNT(chain) FROM obs").fetchone()[0])
    assert scans >= 20 and moved > 1_000 and chained > 0
    db = tmp_path / "strict.db"
    aggs = aggregates(db)
    with sqlite3.connect(db) as c:
        for table in ("obs", "pid_class"):
            assert c.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0] == 0, table
        # the hours closed with their aggregates, written from memory
        hours = c.execute(
            "SELECT COUNT(*) FROM aggregates WHERE kind = 'footfall' AND t1_ms - t0_ms = 3600000"
        ).fetchone()[0]
    assert hours >= 1
    heat = [p for (k, _per, _e), p in aggs.items() if k == "heatmap" and p["unit"] == "hour"]
    assert heat and all(p["cells"] for p in heat)
    store = [p for (k, _per, _e), p in aggs.items() if k == "footfall" and p["unit"] == "hour"]
    assert any((p["door_in"] or 0) > 0 and p["rf"]["device_seconds_inside"] for p in store), store
    # the hourly retention job in strict mode keeps it so as well (and purges no class)
    with sqlite3.connect(db) as c:
        rep = retention.run(c, day.sc.t0_ms + 3 * 3_600_000, retention.RetentionPolicy(strict=True))
    assert rep.hours_purged == []


def test_standard_mode_on_the_same_feed_keeps_older_rows_the_scan_finds(
    day: StoreDay, tmp_path: Path
) -> None:
    """The same scan in ``standard`` mode's terms (5 minutes) fails: the check can fail."""
    old = 0
    for now, _findings, _proc in _run(day, tmp_path / "standard.db", "standard"):
        f, _ = retention_findings(
            sqlite3.connect(f"file:{tmp_path / 'standard.db'}?mode=ro", uri=True),
            now,
            Limits("strict", 24.0, 300.0, 5),
            "scan",
        )
        old += bool(f)
        if old >= 3:
            break
    assert old >= 3
    assert strict_memory.STRICT_MAX_AGE_MS == 300_000


def test_the_aggregator_takes_the_mode_from_store_toml_and_refuses_strict_without_live(
    tmp_path: Path,
) -> None:
    from firmware_bridge.errors import ConfigError
    from heatmap.aggregator import config as aggregator_config
    from heatmap.aggregator.daemon import AggregatorDaemon, privacy_mode

    toml = tmp_path / "store.toml"
    toml.write_text(
        '[aggregator]\nstore = "s1"\ndb = "store.db"\n[broker]\nhost = "127.0.0.1"\n'
        '[privacy]\nmode = "strict"\n'
    )
    cfg = aggregator_config.load(toml)
    assert privacy_mode(cfg) == "strict"
    with pytest.raises(ConfigError, match=r"privacy\.mode strict needs the live aggregator"):
        AggregatorDaemon(cfg)
    s = live_settings.strict(LiveSettings())
    assert (s.strict, s.interval_s) == (True, 60.0)
    with pytest.raises(ValueError, match="strict mode needs at most 200 s"):
        LiveSettings(strict=True)  # 5-minute intervals leave windows too old on disk
