"""``footfall plan`` and ``footfall calibrate``: radio planning and calibration.

``plan`` draws the Cramér–Rao bound of a floor plan's node layout, prints the
expected median error per zone and suggests where N more nodes (or a layout
of N nodes) would lower it — before anyone drills. ``calibrate`` fits the radio
model from a store database (node-to-node beacons, the phone population) and,
optionally, a beacon walk at known points, and writes it as JSON for
``analyze``.

Light at import time: each handler imports the heavy modules it needs.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from firmware_bridge.errors import ConfigError
from sensing.cli import checks

MAX_NODES = 50
"""most nodes ``plan`` suggests adding (--add) or lays out (--layout)"""
MAX_FRAMES = 1000.0
"""most frames a phone can send in one window (--frames)"""


def cmd_plan(a: argparse.Namespace) -> int:
    from heatmap.report import placement_map, render
    from heatmap.spatial.floorplan import load, load_default
    from heatmap.spatial.node_placement import Layout
    from heatmap.spatial.radio_model import RadioModel
    from heatmap.spatial.shopper_area import ShopperArea, restrict
    from heatmap.spatial.walkable_grid import WalkableGrid
    from sensing.cli.report import load_radio

    if a.layout is not None:
        checks.within(a.layout, 1, MAX_NODES, "--layout", " nodes")
    else:
        checks.within(a.add, 1, MAX_NODES, "--add", " nodes")
    checks.within(a.frames, 0.1, MAX_FRAMES, "--frames")
    if not 0 < a.cell <= 5:  # NaN too
        raise ConfigError(f"--cell {a.cell:g}: a grid cell is between 0 and 5 m")
    picture = checks.output_file(a.out or _picture_path(a.floor), "--out")
    plan = load(a.floor) if a.floor else load_default()
    model = load_radio(a.radio, plan) if a.radio else RadioModel.from_plan(plan)
    grid = WalkableGrid.build(plan, cell_m=a.cell)
    area = ShopperArea.of(plan)
    if not len(area.shopper_rooms):
        raise ConfigError(
            f"{plan.source}: no room of the plan is reached by a door or holds a zone"
        )
    lay = restrict(Layout.build(plan, model, grid, frames=a.frames), area)
    if not len(lay.candidates) or not len(lay.cells):
        raise ConfigError(f"{plan.source}: the rooms shoppers reach are too small to place a node")
    now = lay.score(lay.fim)
    zones_now = lay.zone_median_errors(lay.fim)
    if a.layout:
        base = restrict(
            Layout.build(plan, _without_nodes(model), grid, a.frames, candidate_model=model), area
        )
        suggested, after = base.suggest(a.layout)
        fim_after = base.with_nodes(suggested)
        what = f"a layout of {a.layout} nodes from scratch"
        panels = [
            placement_map.Panel(f"a layout of {a.layout} nodes", base, fim_after, suggested, False)
        ]
    else:
        base = lay
        suggested, after = lay.suggest(a.add)
        fim_after = lay.with_nodes(suggested)
        what = f"{a.add} more node{'s' if a.add != 1 else ''}"
        panels = [
            placement_map.Panel(f"now: the plan's {len(plan.nodes)} nodes", lay, lay.fim),
            placement_map.Panel(f"with {what} (stars)", lay, fim_after, suggested),
        ]
    zones_after = base.zone_median_errors(fim_after)
    print(
        f"{plan.name}: {len(plan.nodes)} nodes; Cramér–Rao bound of one {a.frames:g}-frame "
        f"window, mean over the floor shoppers reach: RMSE {now:.2f} m"
    )
    print(f"  with {what}: RMSE {after:.2f} m ({100 * (1 - after / now):.0f} % lower)")
    print(f"\n  {'zone':18}{'expected median error, m':>26}   with the suggested nodes")
    for z, v in zones_now.items():
        print(f"  {z:18}{v:>26.2f}{zones_after[z]:>27.2f}")
    print("\n  suggested node positions (x, y in m):")
    for i, (x, y) in enumerate(suggested, start=1):
        print(f"    {i}: ({x:.1f}, {y:.1f})")
    for room in area.staff_rooms:
        rx0, ry0, rx1, ry1 = room.bounds
        print(
            f"  no node in the room at x {rx0:g}–{rx1:g}, y {ry0:g}–{ry1:g} m: "
            "no door opens into it and no zone is in it (staff only)"
        )
    print(
        "  (one window of a phone alone; tracks with a motion model do better — "
        "see bench/localize.py)"
    )
    fig = placement_map.figure(
        panels,
        f"{plan.name}: where to mount ceiling nodes",
        f"colour: the distance within which half of a phone's position estimates fall "
        f"(Cramér–Rao bound, one {a.frames:g}-frame window); mean RMSE {now:.2f} m now, "
        f"{after:.2f} m with {what}",
        area.staff_rooms,
    )
    path = render.save(fig, picture)
    print(f"  drawn: {path.resolve()}")
    return 0


def _picture_path(floor: str | None) -> Path:
    """Where ``plan`` draws without --out: beside the floor plan, ``{its name}-plan.png``
    (the bundled store's: ``demo-plan.png`` here)."""
    if floor is None:
        return Path("demo-plan.png")
    f = Path(floor)
    return f.with_name(f"{f.stem}-plan.png")


def _without_nodes(model: Any) -> Any:
    """``model`` with no nodes: the start of a layout from scratch."""
    import numpy as np

    return model.replace(
        node_ids=(),
        node_xyz=np.zeros((0, 3)),
        p0={b: v[:0] for b, v in model.p0.items()},
        exponent=model.exponent[:0],
    )


def cmd_calibrate(a: argparse.Namespace) -> int:
    import json
    import sqlite3

    import numpy as np

    from heatmap import calibration
    from heatmap.aggregator import store_db
    from heatmap.aggregator.db_migrations import DatabaseError
    from heatmap.report.store_report import check_plan_matches
    from heatmap.spatial.floorplan import load, load_default
    from heatmap.spatial.radio_model import RadioModel
    from heatmap.spatial.walkable_grid import WalkableGrid, samples_for
    from sensing.cli.report import load_radio

    if not a.db:
        raise ConfigError("calibrate needs --db (or: footfall calibrate headcount ...)")
    checks.output_file(a.out, "--out")
    if a.report:
        checks.output_file(a.report, "--report")
    if a.map is not None:
        checks.within(a.map, 0.1, 100, "--map", " m")
    plan = load(a.floor) if a.floor else load_default()
    model = load_radio(a.radio, plan) if a.radio else RadioModel.from_plan(plan)
    db_path = Path(a.db)
    t0, t1 = _time_ms(a.since, "--since", 0), _time_ms(a.until, "--until", checks.MAX_TIME_MS)
    if t1 <= t0:
        raise ConfigError("the period is empty: --until must come after --since")
    db = store_db.connect(db_path, readonly=True)
    try:
        check_plan_matches(plan, db, t0, t1)
        rows = db.execute(
            "SELECT t_ms, node, pid, rssi, band, flags FROM obs WHERE t_ms >= ? AND t_ms < ?",
            (t0, t1),
        ).fetchall()
    except sqlite3.Error as e:
        raise DatabaseError(f"{db_path}: {e}") from e
    finally:
        db.close()
    if not rows:
        raise ConfigError(f"{db_path}: no observations in that period")
    idx = {n: i for i, n in enumerate(model.node_ids)}
    t = np.array([r[0] for r in rows], np.int64)
    node = np.array([idx.get(r[1], -1) for r in rows], np.int64)
    pid = np.array([r[2] for r in rows])
    rssi = np.array([r[3] for r in rows], float)
    band = np.array([r[4] for r in rows])
    flags = np.array([r[5] for r in rows], np.int64)
    grid = WalkableGrid.build(plan, cell_m=1.0, samples=samples_for(1.0))
    cal = calibration.calibrate_store(
        model, grid, t, node, pid, rssi, band, flags, rng=np.random.default_rng(a.seed)
    )
    model = cal.model
    found = [model.node_ids[i] for i in sorted(cal.beacons.values())]
    print(f"node beacons found: {len(found)} of {model.n_nodes} ({', '.join(found) or 'none'})")
    if cal.links is not None:
        lk = cal.links
        print(
            f"  links: {lk.links} node pairs, {lk.frames} frames; exponent {lk.exponent:.2f}, "
            f"shadowing σ {lk.sigma_db:.1f} dB, residual RMS {lk.rms_db:.1f} dB"
        )
    pop = cal.population
    if pop.get("shift_db") is not None:
        print(
            f"  phone population: {pop['devices']:.0f} devices; BLE level shifted "
            f"{pop['shift_db']:+.1f} dB, offset spread {pop['offset_sigma_db']:.1f} dB"
        )
    summary: dict[str, Any] = {"store": cal.summary()}
    if a.walk:
        points = calibration.load_walk(a.walk)
        walk_pid = a.pid or calibration.find_walk_pid(points, t, pid, set(cal.beacons))
        if walk_pid is None:
            raise ConfigError(f"{a.walk}: no device was heard during the walk")
        xy, mean, k, s2, sent = calibration.walk_observations(
            points, t, node, pid, rssi, model.n_nodes, walk_pid, model.frame_loss
        )
        model, rep = calibration.fit_walk(model, xy, mean, counts=k, sumsq=s2, sent=sent)
        if a.map:
            rm = calibration.residual_map(
                model, xy, mean, counts=k, bandwidth_m=a.map, cell_m=0.5, bounds=plan.bounds
            )
            model = model.replace(correction=rm)
        print(
            f"  beacon walk: {len(points)} points, {int(k.sum())} frames; exponent "
            f"{rep.exponent:.2f}, σ {rep.sigma_db:.1f} dB, residual RMS {rep.rms_db:.1f} dB"
            + (f"; correction map (bandwidth {a.map:g} m)" if a.map else "")
        )
        summary["walk"] = {"points": len(points), "frames": int(k.sum()), "rms_db": rep.rms_db}
    out = model.save(a.out)
    print(f"radio model → {out.resolve()}  (footfall report --radio {a.out} …, footfall plan)")
    if a.report:
        Path(a.report).write_text(json.dumps(summary, indent=1, default=float))
    return 0


def _time_ms(v: str | None, option: str, default: int) -> int:
    """``v`` (ISO 8601 with zone, or epoch ms) as Unix ms; ``default`` when not given."""
    from heatmap import calibration

    if v is None:
        return default
    try:
        ms = calibration.parse_time_ms(v)
    except (ValueError, OverflowError, OSError) as e:
        raise ConfigError(
            f"{option} {v[:40]!r}: {e} (ISO 8601 with a UTC offset, or epoch ms)"
        ) from e
    return checks.time_ms(ms, option)


def register(sub: Any) -> None:
    p = sub.add_parser(
        "plan", help="Cramér–Rao bound of the node layout over the floor plan; where to add nodes"
    )
    p.add_argument("--floor", help="floor plan TOML (default: the bundled store)")
    p.add_argument("--radio", help="a calibrated radio model (footfall calibrate --out)")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--add", type=int, default=1, help="suggest this many more nodes (%(default)s)")
    g.add_argument("--layout", type=int, help="suggest a layout of this many nodes from scratch")
    p.add_argument("--frames", type=float, default=2.5, help="frames a phone sends per window")
    p.add_argument("--cell", type=float, default=1.0, help="grid cell, m (%(default)s)")
    p.add_argument(
        "--out", help="the map, a PNG (default: beside the floor plan, {its name}-plan.png)"
    )
    p.set_defaults(func=cmd_plan)

    c = sub.add_parser(
        "calibrate",
        help="fit the radio model from a store database (+ a walk); headcount: RF people/device",
    )
    c.add_argument("--db", help="the aggregator's store.db (required for the radio model)")
    c.add_argument("--floor", help="floor plan TOML (default: the bundled store)")
    c.add_argument("--radio", help="start from this radio model instead of the plan's defaults")
    c.add_argument("--since", help="first time to use (ISO 8601 with zone, or epoch ms)")
    c.add_argument("--until", help="end of the period")
    c.add_argument("--walk", help="beacon walk CSV: t_start,t_end,x,y")
    c.add_argument("--pid", help="pseudonym of the walk's transmitter (default: found)")
    c.add_argument("--map", type=float, nargs="?", const=1.0, help="learn a correction map")
    c.add_argument("--seed", type=int, default=0, help="sampling seed (%(default)s)")
    c.add_argument("--out", default="radio_model.json", help="(%(default)s)")
    c.add_argument("--report", help="also write what was fitted as JSON here")
    c.set_defaults(func=cmd_calibrate)
    from sensing.cli.calibrate_headcount import register_under

    register_under(c)  # footfall calibrate headcount (issue 20)
