"""Busy store-day: localization + analytics time and memory (GOALS: ≤ 60 s, ≤ 400 MB).

The workload GOALS.md names: one store-day with 20 ceiling nodes, 3,000
visitors and 1 s windows. The store is the bundled 30 × 20 m plan with its six
nodes replaced by a 5 × 4 grid (6 m × 5 m pitch, the density GOALS assumes
for its CRB figures). The day (12 h, 08:00–20:00) is drawn by the simulator's
own code (people, phones, advertising events, received RSSI) through
:func:`heatmap.localizers.harness.simulate_windows`, which groups the received
frames per advertising address and 1 s window as the aggregator groups
pseudonyms. Drawing the day is not timed; what is timed is what the
aggregator's report does with it:

1. radio calibration (node-to-node links, then the phone population),
2. localization of every window (grid posterior + motion, 2 worker processes),
3. analytics (visitor/passer-by tracks, zone person-seconds).

Prints wall and CPU seconds per stage (median over ``--repeat`` runs), the
peak RSS of this process and of the workers, and the heatmap Pearson r against
the simulator's truth at 1 m cells.

    python bench/store_day.py            # the GOALS workload
    python bench/store_day.py --hours 2  # a shorter day (same rate)
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import resource
import statistics
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from heatmap import analytics, calibration
from heatmap.floorplan import FloorPlan, Node, load_default
from heatmap.localizers import grid_posterior, harness
from heatmap.localizers.base import Windows
from heatmap.radio_model import RadioModel
from heatmap.simulate.scenario import HOURLY_PROFILE, Scenario
from heatmap.walkable_grid import WalkableGrid

VISITORS_PER_DAY = 3000
DAY_START = datetime(2026, 11, 20, 8, 0)
CHANNELS = (1, 6, 11)


def twenty_node_plan(base: FloorPlan | None = None) -> FloorPlan:
    """The bundled store with a 5 × 4 grid of ceiling nodes (ids n1..n20; doors keep n1..)."""
    plan = base or load_default()
    (x0, y0), (x1, y1) = np.min(plan.outline, axis=0), np.max(plan.outline, axis=0)
    xs = x0 + (np.arange(5) + 0.5) * (x1 - x0) / 5
    ys = y0 + (np.arange(4) + 0.5) * (y1 - y0) / 4
    z = plan.nodes[0].z
    nodes = tuple(
        Node(f"n{k + 1}", float(x), float(y), z, CHANNELS[k % 3])
        for k, (y, x) in enumerate((y, x) for y in ys for x in xs)
    )
    return dataclasses.replace(plan, nodes=nodes, source=f"{plan.source} (20-node grid)")


def busy_scenario(hours: float, seed: int) -> Scenario:
    """3,000 visitors over 12 h (the hourly profile scaled so its sum is 3,000), 6 staff."""
    day = [HOURLY_PROFILE.get(h, 0.1) for h in range(DAY_START.hour, DAY_START.hour + 12)]
    return Scenario(
        start_local=DAY_START,
        hours=hours,
        seed=seed,
        shoppers_per_hour_peak=VISITORS_PER_DAY / sum(day),
        staff=6,
        # the plan's two tills serve about 90 buyers an hour: a quarter of 330
        # visitors an hour buy, or the simulated queue would grow without bound
        buy_share=0.25,
    )


def _rss_mib(who: int) -> float:
    return resource.getrusage(who).ru_maxrss / 1024


def run_once(
    plan: FloorPlan, win: Windows, links: Any, grid: WalkableGrid, workers: int
) -> dict[str, Any]:
    """Calibrate, localize, analyse; seconds per stage."""
    out: dict[str, Any] = {}
    t, c = time.perf_counter(), time.process_time()
    model, _ = calibration.fit_links(links, RadioModel.from_plan(plan))
    model, _ = calibration.calibrate_population(model, win, grid, rng=np.random.default_rng(0))
    out["calibrate"] = (time.perf_counter() - t, time.process_time() - c)
    t, c = time.perf_counter(), time.process_time()
    hour = ((win.t_ms - win.t_ms.min()) // 3_600_000).astype(np.int64)
    n_hours = int(hour.max()) + 1 if len(hour) else 1
    post = grid_posterior.locate(
        win, model, grid, group=hour, n_groups=n_hours, workers=workers, tracks=False
    )
    out["localize"] = (time.perf_counter() - t, time.process_time() - c)
    t, c = time.perf_counter(), time.process_time()
    tracks = analytics.device_tracks(win, post)
    zones = analytics.zone_person_seconds(plan, grid, post.person_seconds)
    analytics.zone_devices(plan, win, post)
    out["analytics"] = (time.perf_counter() - t, time.process_time() - c)
    out["visitor_devices"] = tracks.visitors
    out["zones"] = len(zones)
    out["post"] = post
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--hours", type=float, default=12.0)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--window-ms", type=int, default=1000)
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--json", type=Path, help="write the figures here")
    a = ap.parse_args(argv)

    plan = twenty_node_plan()
    sc = busy_scenario(a.hours, a.seed)
    t = time.perf_counter()
    sw = harness.simulate_windows(plan, sc, window_ms=a.window_ms)
    links = harness.simulate_links(plan, sc)
    t_sim = time.perf_counter() - t
    shoppers = int((np.unique(sw.person[sw.role == "shopper"])).size)
    print(
        f"store-day: {len(plan.nodes)} nodes, {a.hours:g} h, {len(sw.windows):,} windows of "
        f"{a.window_ms} ms, {shoppers:,} shoppers with a phone heard (drawn in {t_sim:.0f} s)",
        flush=True,
    )
    grid = WalkableGrid.build(plan, cell_m=1.0)
    rss_before = _rss_mib(resource.RUSAGE_SELF)
    runs = []
    for k in range(a.repeat):
        r = run_once(plan, sw.windows, links, grid, a.workers)
        stages = {s: r[s] for s in ("calibrate", "localize", "analytics")}
        total = sum(w for w, _ in stages.values())
        print(
            f"  run {k + 1}: "
            + ", ".join(f"{s} {w:.1f} s (cpu {c:.1f})" for s, (w, c) in stages.items())
            + f"; total {total:.1f} s",
            flush=True,
        )
        runs.append((stages, total, r["post"]))
    med = statistics.median(tot for _, tot, _ in runs)
    post = runs[-1][2]
    r1 = harness.heatmap_r(plan, sw, post.person_seconds)
    fig = {
        "nodes": len(plan.nodes),
        "hours": a.hours,
        "windows": len(sw.windows),
        "window_ms": a.window_ms,
        "walkable_cells": int(grid.walkable.sum()),
        "median_total_s": med,
        "stages_s": {s: statistics.median(st[s][0] for st, _, _ in runs) for s in runs[0][0]},
        "peak_rss_mib": {
            "before_localization": rss_before,
            "self": _rss_mib(resource.RUSAGE_SELF),
            "largest_worker": _rss_mib(resource.RUSAGE_CHILDREN),
        },
        "heatmap_r_1m": r1,
    }
    print(
        f"median total {med:.1f} s (goal ≤ 60 s on 2 cores); peak RSS: this process "
        f"{fig['peak_rss_mib']['self']:.0f} MiB (after drawing the day {rss_before:.0f}), "
        f"largest worker {fig['peak_rss_mib']['largest_worker']:.0f} MiB (goal ≤ 400 MB); "
        f"heatmap r (1 m cells) {r1:.3f}"
    )
    if a.json:
        a.json.write_text(json.dumps(fig, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
