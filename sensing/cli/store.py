"""``footfall`` subcommands of the store side: demo, simulate, floorplan.

Light at import time: each handler imports the heavy modules it needs.
"""

from __future__ import annotations

import argparse
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from firmware_bridge.errors import ConfigError
from sensing.cli import checks
from sensing.cli.progress_bar import progress_bar

HOURS = (0.1, 168.0)
"""store hours a simulation may cover (6 minutes to a week)"""


def _scenario(a: argparse.Namespace) -> Any:
    """The simulated day of ``--hours``, ``--seed``, ``--start``, checked."""
    from heatmap.simulate.demo import default_scenario

    checks.within(a.hours, *HOURS, "--hours", " h")
    if a.seed < 0:
        raise ConfigError(f"--seed {a.seed}: must be 0 or more")
    if a.start is not None:
        try:
            datetime.fromisoformat(a.start)
        except ValueError as e:
            raise ConfigError(
                f"--start {a.start!r}: not an ISO time (e.g. 2026-11-20T10:00)"
            ) from e
    return default_scenario(a.hours, a.seed, a.start)


def cmd_demo(a: argparse.Namespace) -> int:
    from heatmap.simulate.demo import run_demo
    from heatmap.spatial.floorplan import load_default
    from heatmap.spatial.walkable_grid import grid_shape

    scenario = _scenario(a)
    if not 0 < a.cell <= 5:  # NaN too
        raise ConfigError(f"--cell {a.cell:g}: a grid cell is between 0 and 5 m")
    grid_shape(load_default().bounds, a.cell)
    out_dir = checks.output_dir(a.out, "--out")
    t = time.monotonic()
    with progress_bar(not a.quiet) as prog:
        res = run_demo(out_dir, scenario, a.broker, prog, cell_m=a.cell)
    rep = res.report
    out = res.out.resolve()
    print(
        f"footfall demo: {a.hours:g} h of a simulated store ("
        + ", ".join(f"{n} {role}" for role, n in res.sim.people.items())
        + f") went through the real pipeline in {time.monotonic() - t:.0f} s"
    )
    print(
        f"  broker: {res.broker_kind} on loopback, "
        f"{sum(r.batches for r in res.replays)} obs batches from {len(res.replays)} nodes"
    )
    st = rep.store
    dwell = st.get("mean_dwell_s")
    r = res.truth.get("heatmap_pearson_r_1m")
    print(
        f"  live aggregator: {sum(rep.pieces.values())} stored aggregates make the report "
        f"({', '.join(f'{n} {u}s' for u, n in rep.pieces.items() if n)}; k = {rep.k})"
    )
    print(
        f"  visitors {_shown(st.get('visitors'))}, passersby ≈ {_shown(st.get('passersby'))}, "
        f"mean dwell {'suppressed' if dwell is None else f'{dwell / 60:.1f} min'}"
        + (f", heatmap r = {r:.2f} vs truth" if isinstance(r, float) else "")
    )
    v1 = [t for t in res.published_topics if t.startswith("footfall/")]
    store = v1[0].split("/")[2] if v1 else "?"
    levels = [t.split("/", 3)[3] for t in v1]
    zones = [lv for lv in levels if lv.startswith("zone/")]
    shown = sorted(lv for lv in levels if not lv.startswith("zone/"))
    shown += [f"zone/*/stats ({len(zones)} zones)"] if zones else []
    ha = " + Home Assistant discovery" if len(v1) < len(res.published_topics) else ""
    print(f"  published for BI (retained, QoS 1): footfall/v1/{store}/{{{', '.join(shown)}}}{ha}")
    print(f"  heatmaps: {out / 'report' / 'heatmap_total.png'} (+ per hour, vs truth)")
    print(f"  summary:  {out / 'report' / 'summary.txt'}")
    if (out / "report" / "report.html").exists():
        print(f"  the layout planner's page: {out / 'report' / 'report.html'}")
    print(f"  database: {out / 'aggregator' / 'store.db'};  captures + truth: {out / 'sim'}")
    print(
        f"  again, any period or cell size: footfall report --db {out / 'aggregator' / 'store.db'}"
        f" --truth {out / 'sim' / 'truth'} --out …"
    )
    return 0


def _shown(v: object) -> str:
    return "suppressed" if v is None else str(v)


def cmd_simulate(a: argparse.Namespace) -> int:
    from heatmap.simulate.store_day import simulate
    from heatmap.spatial.floorplan import load, load_default

    scenario = _scenario(a)
    out_dir = checks.output_dir(a.out, "--out")
    plan = load(a.floor) if a.floor else load_default()
    with progress_bar(not a.quiet) as prog:
        res = simulate(plan, scenario, out_dir, prog)
    print(
        f"simulated {a.hours:g} h: {res.people}, {res.phones} phones; "
        f"wifi frames {sum(res.wifi_frames.values())}, ble frames {sum(res.ble_frames.values())}, "
        f"door in/out {res.door_in_truth}/{res.door_out_truth} → {Path(a.out).resolve()}"
    )
    return 0


def cmd_floorplan(a: argparse.Namespace) -> int:
    from heatmap.spatial.floorplan import load

    plan = load(a.file)
    print(
        f"{a.file}: ok — store {plan.store_id!r}, {len(plan.nodes)} nodes, {len(plan.zones)} "
        f"zones, {len(plan.doors)} doors, {len(plan.walls)} walls, {len(plan.shelves)} shelves, "
        f"{len(plan.tiles)} tile arrays"
    )
    return 0


def register(sub: Any) -> None:
    d = sub.add_parser("demo", help="simulated store → real pipeline → heatmaps")
    d.add_argument("--out", default="footfall-out", help="output directory (default %(default)s)")
    d.add_argument("--hours", type=float, default=2.0, help="store hours to simulate (%(default)s)")
    d.add_argument("--seed", type=int, default=1)
    d.add_argument("--start", help="local start, ISO format (default 2026-11-20T10:00)")
    d.add_argument("--broker", choices=("auto", "mosquitto", "amqtt"), default="auto")
    d.add_argument(
        "--cell", type=float, default=1.0, help="localization grid cell, m (%(default)s)"
    )
    d.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    d.set_defaults(func=cmd_demo)

    s = sub.add_parser("simulate", help="write a simulated store day as capture files")
    s.add_argument("--out", required=True)
    s.add_argument("--floor", help="floor plan TOML (default: the bundled store)")
    s.add_argument("--hours", type=float, default=8.0)
    s.add_argument("--seed", type=int, default=1)
    s.add_argument("--start", help="local start, ISO format")
    s.add_argument("-q", "--quiet", action="store_true")
    s.set_defaults(func=cmd_simulate)

    f = sub.add_parser("floorplan", help="validate a floor plan TOML file")
    f.add_argument("file")
    f.set_defaults(func=cmd_floorplan)
