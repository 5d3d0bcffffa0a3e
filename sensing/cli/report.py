"""``footfall report``: heatmaps, zone table, flows and summary of a store's own database.

What ``footfall demo`` writes for a simulated store, for a real one: the store
report (:func:`heatmap.report.store_report.analyze`) over a period of the aggregator's
``store.db``, read-only, so it can run beside the live aggregator. The
pseudonymous rows it localizes live only ``retention_hours`` (24 h by default;
passers-by's only until their hour is aggregated), so a store runs it for the
day before they go, e.g. nightly; what it writes is aggregate only.

From the stored aggregates (the default wherever the period has them) it also writes
the layout planner's page, ``report.html``, with its pictures and tables
(:mod:`heatmap.report.planner_report`, docs/report.md).

Light at import time: the handler imports the heavy modules it needs.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from firmware_bridge.errors import ConfigError
from sensing.cli import checks
from sensing.cli.progress_bar import progress_bar

HOUR_MS = 3_600_000
DEFAULT_K = 5
"""k of a report without --config (the aggregates carry their own)"""
MAX_PERIOD_DAYS = 31
"""longest period one report covers, days (its hourly pictures and per-window arrays
grow with it; the pseudonymous rows live a day or two anyway)"""


def parse_local_time_ms(v: str, tz: str) -> int:
    """Epoch ms of ``v``: epoch ms, or ISO 8601 (local time of the store when it has no
    UTC offset).

    >>> parse_local_time_ms("2026-11-18T09:00", "Europe/Amsterdam")
    1794988800000
    >>> parse_local_time_ms("2026-11-18T08:00Z", "Europe/Amsterdam")
    1794988800000
    """
    v = v.strip()
    if v.lstrip("-").isdigit():
        return checks.time_ms(int(v), f"time {v[:30]!r}")
    try:
        dt = datetime.fromisoformat(v)
    except ValueError as e:
        raise ConfigError(f"time {v!r}: not ISO 8601 (e.g. 2026-11-18T09:00)") from e
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=ZoneInfo(tz))
    try:
        ms = int(dt.timestamp() * 1000)
    except (OverflowError, ValueError, OSError) as e:
        raise ConfigError(f"time {v!r}: out of range") from e
    return checks.time_ms(ms, f"time {v!r}")


def day_ms(day: str, tz: str, now: datetime | None = None) -> tuple[int, int]:
    """The store's local calendar day ``day`` (YYYY-MM-DD, ``today`` or ``yesterday`` in
    the store's time zone) as [t0, t1) epoch ms (23 or 25 h on the days clocks change).

    >>> t0, t1 = day_ms("2026-10-25", "Europe/Amsterdam")
    >>> (t1 - t0) // 3_600_000
    25
    >>> now = datetime(2026, 11, 20, 23, 30, tzinfo=ZoneInfo("UTC"))  # 00:30 in Amsterdam
    >>> day_ms("yesterday", "Europe/Amsterdam", now) == day_ms("2026-11-20", "Europe/Amsterdam")
    True
    """
    z = ZoneInfo(tz)
    today = (now or datetime.now(z)).astimezone(z).date()
    if day in ("today", "yesterday"):
        d = today if day == "today" else today - timedelta(days=1)
    else:
        try:
            d = date.fromisoformat(day)
        except ValueError as e:
            raise ConfigError(f"day {day!r}: expected YYYY-MM-DD, today or yesterday") from e
    a = datetime(d.year, d.month, d.day, tzinfo=z)
    b = datetime.combine(d + timedelta(days=1), datetime.min.time(), tzinfo=z)
    return int(a.timestamp() * 1000), int(b.timestamp() * 1000)


def obs_extent_ms(conn: Any) -> tuple[int, int] | None:
    """First and last observation of the store database (None when it has none)."""
    lo, hi = conn.execute("SELECT MIN(t_ms), MAX(t_ms) FROM obs").fetchone()
    return None if lo is None else (int(lo), int(hi))


def whole_minutes(first_ms: int, last_ms: int) -> tuple[int, int]:
    """The whole minutes covering [first, last], as [t0, t1) epoch ms.

    >>> whole_minutes(90_500, 150_000)
    (60000, 180000)
    """
    return first_ms - first_ms % 60_000, last_ms - last_ms % 60_000 + 60_000


def load_radio(path: str, plan: Any) -> Any:
    """The radio model file ``path`` (``footfall calibrate --out``) for ``plan``; a file
    that is not one is a ConfigError naming it."""
    from heatmap.spatial.radio_model import RadioModel

    if not Path(path).is_file():
        raise ConfigError(f"--radio {path}: no such radio model file")
    try:
        return RadioModel.load(path, plan)
    except ConfigError:
        raise
    except (ValueError, KeyError, TypeError, AttributeError, IndexError, OSError) as e:
        raise ConfigError(
            f"--radio {path}: not a radio model file ({type(e).__name__}: {e})"
        ) from e


def cmd_report(a: argparse.Namespace) -> int:
    import sqlite3

    from heatmap.aggregator import store_db
    from heatmap.aggregator.db_migrations import DatabaseError
    from heatmap.spatial.floorplan import load, load_default
    from heatmap.spatial.walkable_grid import grid_shape

    floor, db_arg = a.floor, a.db
    k = DEFAULT_K
    if a.config:
        from heatmap.aggregator import config as aggregator_config

        cfg = aggregator_config.load(a.config)
        k = cfg.k
        db_arg = db_arg or str(cfg.db)
        floor = floor or (str(cfg.floor_plan) if cfg.floor_plan else None)
    if not db_arg:
        raise ConfigError("which store database? --db store.db, or --config store.toml")
    plan = load(floor) if floor else load_default()
    db = Path(db_arg)
    if not db.exists():
        raise ConfigError(f"{db}: no such store database")
    if not 0 < a.cell <= 5:  # NaN too
        raise ConfigError(f"--cell {a.cell:g}: a grid cell is between 0 and 5 m")
    grid_shape(plan.bounds, a.cell)
    checks.output_dir(a.out, "--out")
    if a.truth and not Path(a.truth).is_dir():
        raise ConfigError(f"--truth {a.truth}: no such simulator truth directory")
    tz = plan.timezone
    if a.day and a.until:
        raise ConfigError("--until goes with --since, not with --day")
    radio = load_radio(a.radio, plan) if a.radio else None
    conn = store_db.connect(db, readonly=True)
    try:
        extent = obs_extent_ms(conn)
        if a.source != "rows" and a.day and not a.radio:
            t0, t1 = day_ms(a.day, tz)
            if a.source == "aggregates" or has_aggregates(conn, t0, t1):
                return _from_aggregates(conn, plan, t0, t1, a)
        if a.day:
            t0, t1 = day_ms(a.day, tz)
        else:
            since = parse_local_time_ms(a.since, tz) if a.since else None
            until = parse_local_time_ms(a.until, tz) if a.until else None
            if since is None or until is None:
                if extent is None:
                    raise ConfigError(f"{db}: no observations")
                span = whole_minutes(*extent)
                since = span[0] if since is None else since
                until = span[1] if until is None else until
            t0, t1 = since, until
        if t1 <= t0:
            raise ConfigError("the period is empty: --until must come after --since")
        if a.source == "aggregates" or (
            a.source == "auto" and not a.radio and has_aggregates(conn, t0, t1)
        ):
            return _from_aggregates(conn, plan, t0, t1, a)
        if t1 - t0 > MAX_PERIOD_DAYS * 24 * HOUR_MS:
            raise ConfigError(
                f"the period {_span(t0, t1, tz)} is longer than {MAX_PERIOD_DAYS} days: "
                "report a day (--day) or a shorter --since/--until at a time"
            )
        n, devices = conn.execute(
            "SELECT COUNT(*), COUNT(DISTINCT pid) FROM obs WHERE t_ms >= ? AND t_ms < ?", (t0, t1)
        ).fetchone()
        purged = purged_hours(conn, t0, t1)
        if n:  # a wrong plan is an error, before a period of few devices is suppressed
            from heatmap.report.store_report import check_plan_matches

            check_plan_matches(plan, conn, t0, t1)
    except sqlite3.Error as e:
        raise DatabaseError(f"{db}: {e}") from e
    finally:
        conn.close()
    if not n:
        raise ConfigError(
            f"{db}: no observations in {_span(t0, t1, tz)} (pseudonymous rows live "
            "retention_hours, 24 h by default: report a day before they go)"
        )
    out = Path(a.out)
    if devices < k:  # fewer devices than k: fewer visitors too, nothing to locate
        _suppressed(plan, out, _span(t0, t1, tz), k, f"{devices} devices")
        _notes(extent, t0, tz, purged)
        return 0
    started = time.monotonic()
    out.mkdir(parents=True, exist_ok=True)
    # located into a private folder beside --out first: a period of fewer than k
    # visitors must leave no picture of them behind
    with (
        tempfile.TemporaryDirectory(prefix=".footfall-report-", dir=out.resolve().parent) as tmp,
        progress_bar(not a.quiet) as prog,
    ):
        try:
            from heatmap.report.store_report import analyze  # locating rows: heavy imports

            rep = analyze(
                plan,
                db,
                t0,
                t1,
                Path(tmp),
                truth_dir=Path(a.truth) if a.truth else None,
                progress=prog,
                cell_m=a.cell,
                radio=radio,
            )
        except sqlite3.Error as e:  # a file damaged past what opening it checks
            raise DatabaseError(f"{db}: {e}") from e
        visitors = rep.door_in or rep.visitors_est  # the door's count; RF's without beams
        if visitors < k:
            _suppressed(plan, out, _span(t0, t1, tz), k, f"{visitors} visitors")
            _notes(extent, t0, tz, purged)
            return 0
        quiet = suppress_quiet_hours(plan, db, t0, t1, k, Path(tmp))
        for f in Path(tmp).iterdir():
            os.replace(f, out / f.name)
        from heatmap.report import planner_report

        planner_report.remove(out)  # the planner's page is of the aggregates: none of rows
    print(
        f"footfall report: {plan.name}, {_span(t0, t1, tz)}: {n} observations "
        f"localized on {a.cell:g} m cells in {time.monotonic() - started:.0f} s"
    )
    print(
        f"  visitors {rep.door_in}, passersby ≈ {rep.passersby_est}, "
        f"capture rate {rep.capture_rate:.2f}, mean dwell {rep.mean_dwell_s / 60:.1f} min"
        + (f", heatmap r = {rep.truth['heatmap_pearson_r_1m']:.2f} vs truth" if rep.truth else "")
    )
    print(
        "  radio model: "
        + (f"{a.radio} (calibrated), phone level re-centred" if a.radio else "node links")
    )
    _notes(extent, t0, tz, purged)
    if quiet:
        print(f"  suppressed: the hourly heatmaps of {', '.join(quiet)} (fewer than k = {k})")
    print(f"  heatmaps: {out.resolve() / 'heatmap_total.png'} (+ per hour)")
    print(f"  summary:  {out.resolve() / 'summary.txt'};  zones.csv, flows.csv, flows.png")
    return 0


def _notes(extent: tuple[int, int] | None, t0: int, tz: str, purged: list[int]) -> None:
    """What the rows of the period lack: the database's start, hours retention purged."""
    if extent is not None and extent[0] - t0 > HOUR_MS:
        first = _span(extent[0], extent[0], tz)[:16]
        print(
            f"  note: the database holds no observation before {first}; "
            "earlier ones were never recorded or retention has deleted them"
        )
    if purged:
        print(
            f"  note: retention already deleted the passers-by of {len(purged)} of these hours; "
            "the passer-by figures count only what is left"
        )


def suppress_quiet_hours(plan: Any, db: Path, t0: int, t1: int, k: int, folder: Path) -> list[str]:
    """Redraw as "suppressed" the hourly heatmaps (``heatmap_HH00.png`` in ``folder``) of
    the hours of [t0, t1) with fewer than k visitors: door ins counted as the report counts
    them, or, in a store without beams, the distinct pseudonyms heard (more than the
    visitors, so it suppresses less than it should only where it has no door to count).
    Returns the hours suppressed (local ``HH:00``)."""
    from heatmap.aggregator import store_db
    from heatmap.report import analytics, render

    z = ZoneInfo(plan.timezone)
    midnight = datetime.fromtimestamp(t0 / 1000, z).replace(hour=0, minute=0, second=0)
    empty_ms = int(midnight.replace(microsecond=0).timestamp() * 1000)
    conn = store_db.connect(db, readonly=True)
    quiet: list[str] = []
    try:
        beams = conn.execute(
            "SELECT 1 FROM door_events WHERE t_ms >= ? AND t_ms < ? LIMIT 1", (t0, t1)
        ).fetchone()
        for h0 in range(t0 - t0 % HOUR_MS, t1, HOUR_MS):
            lt = datetime.fromtimestamp(h0 / 1000, z)
            pic = folder / f"heatmap_{lt:%H}00.png"
            if not pic.exists():
                continue
            if beams:
                n = analytics.door_flow(conn, h0, h0 + HOUR_MS, empty_ms=empty_ms).ins
            else:
                (n,) = conn.execute(
                    "SELECT COUNT(DISTINCT pid) FROM obs WHERE t_ms >= ? AND t_ms < ?",
                    (h0, h0 + HOUR_MS),
                ).fetchone()
            if n < k:
                title = f"{plan.name}: {lt:%Y-%m-%d %H:00}–{(lt.hour + 1) % 24:02d}:00"
                f = render.suppressed_figure(plan, title, f"fewer than k = {k} visitors this hour")
                render.save(f, pic)
                quiet.append(f"{lt:%H}:00")
    finally:
        conn.close()
    return quiet


def _suppressed(plan: Any, out: Path, span: str, k: int, found: str) -> int:
    """Write the report of a period of fewer than k visitors: nothing but "suppressed"."""
    from heatmap.report import aggregate_report, planner_report

    aggregate_report.write_suppressed(plan, out, span, k)
    planner_report.write_suppressed_html(f"{plan.name}: layout report", span, k, out)
    print(f"footfall report: {plan.name}, {span}: suppressed ({found}, fewer than k = {k})")
    print(f"  heatmap: {out.resolve() / 'heatmap_total.png'} (suppressed, no heat drawn)")
    return 0


def has_aggregates(conn: Any, t0: int, t1: int) -> bool:
    """Whether the live aggregator stored any aggregate within [t0, t1)."""
    row = conn.execute(
        "SELECT 1 FROM aggregates WHERE kind = 'footfall' AND t0_ms >= ? AND t1_ms <= ? LIMIT 1",
        (t0, t1),
    ).fetchone()
    return row is not None


def _from_aggregates(conn: Any, plan: Any, t0: int, t1: int, a: argparse.Namespace) -> int:
    """The report of [t0, t1) from the stored aggregates (no row is read)."""
    from heatmap.report import aggregate_report, planner_report

    started = time.monotonic()
    try:
        fig = aggregate_report.load_period(conn, plan, t0, t1)
        if not sum(fig.pieces.values()):
            raise ConfigError(f"no aggregates in {_span(t0, t1, plan.timezone)}")
        out = Path(a.out)
        if aggregate_report.too_few_visitors(fig.store.get("visitors"), fig.k):
            return _suppressed(
                plan, out, fig.period, fig.k, f"{_shown(fig.store.get('visitors'))} visitors"
            )
        truth_dir = Path(a.truth) if a.truth else None
        truth = aggregate_report.write(plan, fig, out, truth_dir)
        page = planner_report.write(conn, plan, fig, out, truth_dir)
    finally:
        conn.close()
    parts = ", ".join(f"{n} {u}s" for u, n in fig.pieces.items() if n)
    st = fig.store
    print(
        f"footfall report: {plan.name}, {_span(t0, t1, plan.timezone)}: from the stored "
        f"aggregates ({parts}; k = {fig.k}) in {time.monotonic() - started:.1f} s"
    )
    print(
        f"  visitors {_shown(st.get('visitors'))}, passersby ≈ {_shown(st.get('passersby'))}, "
        f"capture rate {_shown(st.get('capture_rate'))}"
        + (f", heatmap r = {truth['heatmap_pearson_r_1m']:.2f} vs truth" if truth else "")
    )
    for n in fig.notes:
        print(f"  note: {n}")
    print(f"  heatmap: {out.resolve() / 'heatmap_total.png'}")
    print(f"  summary: {out.resolve() / 'summary.txt'};  zones.csv, flows.csv")
    res = page.resolution
    print(
        f"  for the layout planner: {out.resolve() / planner_report.HTML} (the layout resolves "
        f"about {res.stated_m:g} m"
        + (
            f"; heatmap r = {page.truth['r_stated']:.2f} vs truth at {res.stated_m:g} m"
            if page.truth
            else ""
        )
        + "), plan_*.png, table_*.csv"
    )
    return 0


def _shown(v: object) -> str:
    return "suppressed" if v is None else str(v)


def purged_hours(conn: Any, t0: int, t1: int) -> list[int]:
    """Hours of [t0, t1) whose passers-by's rows retention has deleted (the hour was
    aggregated and purged: :mod:`heatmap.aggregator.retention`)."""
    rows = conn.execute(
        "SELECT hour_ms FROM hour_purges WHERE hour_ms >= ? AND hour_ms < ? ORDER BY hour_ms",
        (t0 - t0 % HOUR_MS, t1),
    ).fetchall()
    return [int(r[0]) for r in rows]


def _span(t0: int, t1: int, tz: str) -> str:
    z = ZoneInfo(tz)
    a = datetime.fromtimestamp(t0 / 1000, z)
    b = datetime.fromtimestamp(t1 / 1000, z)
    return f"{a:%Y-%m-%d %H:%M}–{b:%Y-%m-%d %H:%M} ({tz})"


def register(sub: Any) -> None:
    r = sub.add_parser(
        "report",
        help="heatmaps, zones, flows and summary of a period of the store database, and the "
        "layout planner's page (report.html, from the aggregates)",
    )
    r.add_argument("--db", help="the aggregator's store.db (opened read-only)")
    r.add_argument(
        "--from",
        dest="source",
        choices=("auto", "aggregates", "rows"),
        default="auto",
        help="aggregates: the live aggregator's stored aggregates (any period, also after "
        "retention); rows: locate the pseudonymous rows again (other --cell, a --radio model; "
        "while they exist); auto (default): aggregates where the period has them",
    )
    r.add_argument("--floor", help="floor plan TOML (default: the bundled store)")
    r.add_argument(
        "--config", help="the aggregator's store.toml: its db and floor plan (unless given)"
    )
    r.add_argument("--radio", help="a calibrated radio model (footfall calibrate --out)")
    when = r.add_mutually_exclusive_group()
    when.add_argument(
        "--day", help="the store's local day: YYYY-MM-DD, today or yesterday (store time)"
    )
    when.add_argument(
        "--since", help="start: ISO 8601 (store's local time unless it has an offset) or epoch ms"
    )
    r.add_argument("--until", help="end of the period (default: just after the last observation)")
    r.add_argument(
        "--cell", type=float, default=1.0, help="localization grid cell, m (%(default)s)"
    )
    r.add_argument("--out", default="footfall-report", help="output directory (%(default)s)")
    r.add_argument("--truth", help="simulator truth directory: compare every figure with it")
    r.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    r.set_defaults(func=cmd_report)
