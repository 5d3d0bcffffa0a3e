"""``footfall calibrate headcount``: people per RF device from an installer's 15-minute count.

A store without door beams counts people from radio alone
(:mod:`heatmap.aggregator.rf_count`); how many people a device stands for comes from a
one-off manual count. The installer counts the customers inside (not the staff:
their all-day phones are static devices, taken out of the count) during
``--minutes`` from ``--at`` — the mean, if it changed — and, optionally, the
people who walked past outside (``--passersby``) and who walked in (``--entered``)
in the same minutes. This command
reads the devices the store's nodes heard in those minutes from the aggregator's
database and stores the factors **in that database** (``meta.rf_people_per_device``,
:mod:`heatmap.aggregator.rf_factor`), where the aggregator reads them for every period
it writes. Run it after the minutes are over and their rows are in.
"""

from __future__ import annotations

import argparse
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from sensing.cli import checks


def cmd_headcount(a: argparse.Namespace) -> int:
    import sqlite3

    from heatmap.aggregator import config as agg_config
    from heatmap.aggregator import rf_factor, rf_live, store_db
    from heatmap.aggregator.db_migrations import DatabaseError
    from heatmap.aggregator.rf_count import CountSettings
    from heatmap.spatial.floorplan import load as load_plan

    checks.within(a.people, 0, 100_000, "--people")
    checks.within(a.minutes, 1, 120, "--minutes", " min")
    if a.passersby is not None:
        checks.within(a.passersby, 0, 1_000_000, "--passersby")
    if a.entered is not None:
        checks.within(a.entered, 0, 1_000_000, "--entered")
    cfg = agg_config.load(a.config)
    at = checks.iso_time(a.at, "--at")
    zone = "UTC"
    if datetime.fromisoformat(a.at).tzinfo is None and cfg.floor_plan is not None:
        zone = load_plan(cfg.floor_plan).timezone  # the store's local time
        at = at.replace(tzinfo=ZoneInfo(zone))
    at_ms = int(at.timestamp() * 1000)
    s = CountSettings()
    reach = int(s.presence_gap_s * 1000)
    if not cfg.db.is_file():
        raise DatabaseError(f"{cfg.db}: no such database (is the aggregator running there?)")
    db = store_db.connect(cfg.db)
    try:
        # from static_min_s before: the staff's all-day phones show as static, out of the count
        before = max(reach, int(s.static_min_s * 1000))
        frames = rf_live.read_frames(db, at_ms - before, at_ms + int(a.minutes * 60_000) + reach)
        if not len(frames):
            raise DatabaseError(f"{cfg.db}: no observations around {at.isoformat()}")
        f = rf_factor.headcount(
            frames, at_ms, a.minutes, a.people, s, passersby=a.passersby, entered=a.entered
        )
        rf_factor.store(db, f)
        db.commit()
    except sqlite3.Error as e:
        raise DatabaseError(f"{cfg.db}: {e}") from e
    finally:
        db.close()
    d = f.detail
    print(
        f"{a.people:g} people inside {at.isoformat()} + {a.minutes:g} min ({zone}); "
        f"{d['devices_inside']:.1f} {d['band']} devices inside on average"
    )
    print(
        f"people per device: visitors {f.visitors:.3f}"
        + (" (from who walked in)" if a.entered is not None else " (as occupancy)")
        + f", passers-by {f.passersby:.3f}"
        + (" (from the passers-by count)" if a.passersby is not None else " (as visitors)")
        + f", occupancy {f.occupancy:.3f}; stored in {cfg.db} (meta.{rf_factor.META_KEY})"
    )
    if a.entered is None:
        # presence per device is not arrivals per device (docs/rf_count.md: about twice
        # the visitors-per-hour error on the simulator)
        print(
            "note: visitors per hour use the occupancy factor; count who walks in during "
            "the same minutes too (--entered) for visitors per hour"
        )
    return 0


def register_under(calibrate: argparse.ArgumentParser) -> None:
    """``headcount`` as a subcommand of ``footfall calibrate`` (whose own options stay)."""
    sub = calibrate.add_subparsers(dest="calibrate_what", metavar="{headcount}")
    h: Any = sub.add_parser(
        "headcount", help="people per RF device from a manual 15-minute count (no beams)"
    )
    h.add_argument("--config", required=True, help="the aggregator's store.toml")
    h.add_argument(
        "--at", required=True, help="start of the count, ISO 8601 (no offset: store local time)"
    )
    h.add_argument("--people", type=float, required=True, help="customers inside (not the staff)")
    h.add_argument("--minutes", type=float, default=15.0, help="length of the count (%(default)s)")
    h.add_argument("--passersby", type=float, help="people who walked past in those minutes")
    h.add_argument("--entered", type=float, help="people who walked in during those minutes")
    h.set_defaults(func=cmd_headcount)
