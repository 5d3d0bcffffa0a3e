"""From the store database to what people look at: heatmaps, summary, zone table.

``analyze`` runs localization and analytics over a period and writes
``heatmap_total.png`` (+ one per hour), ``zones.csv``, ``flows.csv`` and
``flows.png`` (zone-to-zone flows, k-anonymous), ``summary.txt`` and
``summary.json``; with a simulator truth directory it also writes
``heatmap_vs_truth.png`` and puts truth beside every figure.
"""

from __future__ import annotations

import csv
import json
import sqlite3
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np

from firmware_bridge.errors import ConfigError
from heatmap.aggregator import store_db
from heatmap.aggregator.obs_reader import read_observations, read_windows
from heatmap.calibration import (
    StoreCalibration,
    calibrate_links,
    calibrate_motion,
    calibrate_phones,
)
from heatmap.localizers.localize import locate
from heatmap.report import analytics, flows, render, truth_compare
from heatmap.spatial.floorplan import FloorPlan
from heatmap.spatial.motion import MotionModel
from heatmap.spatial.radio_model import RadioModel
from heatmap.spatial.walkable_grid import WalkableGrid, samples_for
from sensing.runtime.progress import NoProgress, Progress

K_ANONYMITY = 5
PARALLEL_MIN_WINDOWS = 10_000
"""localize in two processes above this many windows (spawning costs a few seconds)"""
PARALLEL_MIN_ROWS = 2_000_000
"""read observations in two processes above this many rows (~6 s of reading)"""
HOUR_MS = 3_600_000
WINDOW_MS = 5000
"""localization window of the report"""
TOP_FLOWS = 10
"""zone-to-zone transitions listed in the summary"""


@dataclass
class Report:
    period: str
    door_in: int
    door_out: int
    visitors_est: int
    passersby_est: int
    capture_rate: float
    mean_dwell_s: float
    median_dwell_rf_s: float | None
    person_seconds_inside: float
    devices: dict[str, int]
    zone_person_seconds: dict[str, float]
    zone_devices: dict[str, int]
    """distinct pseudonyms whose windows were located (posterior mean) in each zone"""
    observations: int
    windows: int
    files: list[str] = field(default_factory=list)
    truth: dict[str, Any] | None = None
    flows: dict[str, Any] | None = None
    """zone-to-zone flows: the busiest k-anonymous transitions and how many were suppressed"""
    cell_m: float = 1.0
    """side of the localization grid's cells, m"""
    door_in_implied: int = 0
    """of ``door_in``: entries the beams missed, implied by the exits (analytics.door_flow)"""


def _local(t_ms: int, tz: str) -> datetime:
    return datetime.fromtimestamp(t_ms / 1000, ZoneInfo(tz))


def check_plan_matches(plan: FloorPlan, conn: sqlite3.Connection, t0_ms: int, t1_ms: int) -> None:
    """Raise ConfigError if no node that published observations in [t0, t1) (Unix ms)
    is a node of ``plan``: the floor plan is another store's (or the database is), and
    every observation would fall outside the radio model."""
    try:
        rows = conn.execute(
            "SELECT DISTINCT publisher FROM batches WHERE kind = 'obs' AND t1 >= ? AND t0 < ?",
            (t0_ms, t1_ms),
        ).fetchall()
    except sqlite3.OperationalError:  # a v1 file (no batches.t1): nothing to compare with
        return
    heard = sorted(r[0] for r in rows)
    ours = [n.id for n in plan.nodes]
    if heard and not set(heard) & set(ours):
        raise ConfigError(
            f"the floor plan of store {plan.store_id!r} (nodes {', '.join(ours[:8])}) has none "
            f"of the nodes in the database ({', '.join(heard[:8])}): another store's floor plan?"
        )


def analyze(
    plan: FloorPlan,
    db_path: Path,
    t0_ms: int,
    t1_ms: int,
    out: Path,
    truth_dir: Path | None = None,
    progress: Progress | None = None,
    cell_m: float = 1.0,
    radio: RadioModel | None = None,
) -> Report:
    prog = progress or NoProgress()
    check = store_db.connect(db_path, readonly=True)
    try:
        check_plan_matches(plan, check, t0_ms, t1_ms)
    finally:
        check.close()
    out.mkdir(parents=True, exist_ok=True)
    grid = WalkableGrid.build(plan, cell_m=cell_m, samples=samples_for(cell_m))
    model = radio or RadioModel.from_plan(plan)
    node_index = {n: i for i, n in enumerate(model.node_ids)}
    db = store_db.connect(db_path, readonly=True)
    # pseudonyms are read as integer codes (heatmap.aggregator.obs_reader), the same across reads
    pid_codes: dict[str, int] = {}
    # node beacons (few rows, picked out by SQLite) → radio model from their links,
    # unless a calibrated model was given (`footfall calibrate`, maybe with a beacon
    # walk that the links alone would undo): then they only tell beacons from phones
    bea = read_observations(db, t0_ms, t1_ms, node_index, beacons_only=True, pid_codes=pid_codes)
    ok = bea.node >= 0
    fitted, beacons, link_fit = calibrate_links(
        model, bea.pid[ok], bea.node[ok], bea.flags[ok], bea.rssi[ok]
    )
    if radio is None:
        model = fitted
    else:
        link_fit = None
    # the phones' windows, an hour of rows at a time (a busy store-day is ~12M rows)
    rows = db.execute(
        "SELECT COUNT(*) FROM obs WHERE t_ms >= ? AND t_ms < ?", (t0_ms, t1_ms)
    ).fetchone()[0]
    win_all, n_obs = read_windows(
        db,
        t0_ms,
        t1_ms,
        node_index,
        model.n_nodes,
        WINDOW_MS,
        pid_codes,
        set(beacons),
        workers=2 if rows > PARALLEL_MIN_ROWS else 1,
    )
    # then the phone population's level
    model, pop = calibrate_phones(model, win_all, grid, np.random.default_rng(0))
    # and how still its people stand (the motion model's dwelling mode)
    motion, motion_fit = calibrate_motion(model, win_all, grid, np.random.default_rng(0))
    cal = StoreCalibration(model, win_all, beacons, link_fit, pop, motion, motion_fit)
    # person-seconds and every RF figure come from BLE: phones advertise continuously,
    # while Wi-Fi probe bursts come minutes apart and say little about where people stay
    win = win_all.take(np.flatnonzero(win_all.band == "ble"))
    dur = np.full(len(win), win.window_ms / 1000)
    hour0 = t0_ms - t0_ms % HOUR_MS
    n_hours = int(-(-(t1_ms - hour0) // HOUR_MS))
    hour = np.clip((win.t_ms - hour0) // HOUR_MS, 0, n_hours - 1)
    loc = locate(
        win,
        model,
        grid,
        duration_s=dur,
        group=hour,
        n_groups=n_hours,
        progress=prog.task("localize devices", max(len(win), 1)),
        motion=MotionModel(grid, motion, min_gap_s=win.window_ms / 1000),
        workers=2 if len(win) > PARALLEL_MIN_WINDOWS else 1,
    )
    # counted from the local midnight before the period (the store empty), so people
    # inside at its start are in the occupancy and lost entries show (door_flow)
    midnight = _local(t0_ms, plan.timezone).replace(hour=0, minute=0, second=0, microsecond=0)
    midnight_ms = int(midnight.timestamp() * 1000)
    door = analytics.door_flow(db, t0_ms, t1_ms, empty_ms=midnight_ms)
    tracks = analytics.device_tracks(win, loc)
    rf = loc.person_seconds
    fusion = analytics.fuse(win, loc, door)
    scale = fusion.scale
    fused = rf * scale
    # devices seen walking in per door visitor: turns passer-by devices into people
    entered_per_visitor = tracks.entered / door.ins if door.ins else 0.0
    passersby = round(tracks.passersby / entered_per_visitor) if entered_per_visitor else 0
    capture = door.ins / (door.ins + passersby) if door.ins + passersby else 0.0
    zones = analytics.zone_person_seconds(plan, grid, fused)
    zone_devices = analytics.zone_devices(plan, win, loc)
    # flows along each device's posterior-mean path, not its Viterbi track: on the
    # simulator the mean gives the truer flows (TV 0.068 against 0.105 for the
    # Viterbi track, 20-node store; 0.21 against 0.23 for the demo's 6 nodes),
    # and the Viterbi pass costs ~20 % of the busy store-day's localization
    flow = flows.track_flows(plan, win, loc.mean_xy)
    tz = plan.timezone
    period = f"{_local(t0_ms, tz).isoformat()}/{_local(t1_ms, tz).isoformat()}"
    rep = Report(
        period,
        door.ins,
        door.outs,
        door.ins,
        passersby,
        capture,
        door.mean_dwell_s,
        float(np.median(tracks.dwell_s)) if len(tracks.dwell_s) else None,
        door.person_seconds,
        {
            "visitor_devices": tracks.visitors,
            "passerby_devices": tracks.passersby,
            "seen_entering": tracks.entered,
        },
        zones,
        zone_devices,
        n_obs,
        len(win_all),
        cell_m=grid.cell_m,
        door_in_implied=door.implied_ins,
    )
    span = f"{_local(t0_ms, tz):%Y-%m-%d %H:%M}–{_local(t1_ms, tz):%H:%M} ({tz})"
    fig = render.heatmap_figure(
        plan,
        grid,
        fused,
        f"{plan.name}: where people spent time, {span}",
        f"{door.ins} visitors counted by the door beams; positions from {len(model.node_ids)} "
        "ceiling nodes (BLE), scaled to people by the door counts (staff included)",
    )
    rep.files.append(str(render.save(fig, out / "heatmap_total.png")))
    (out / "radio_model.json").write_text(json.dumps(cal.summary(), indent=1, default=float))
    rep.files.append(str(out / "radio_model.json"))
    rep.files += _hourly(plan, grid, loc.by_group * scale, hour0, out, db, midnight_ms)
    rep.flows = _flows(plan, flow, out, span, rep)
    if truth_dir is not None:
        rep.truth = _compare(plan, grid, fused, rep, truth_dir, out, span, flow)
    _write_tables(rep, out)
    db.close()
    return rep


def _hourly(
    plan: FloorPlan,
    grid: WalkableGrid,
    per_hour: np.ndarray,
    hour0: int,
    out: Path,
    db: sqlite3.Connection,
    empty_ms: int,
) -> list[str]:
    """One heatmap per hour, all on the colour scale of the busiest; each says how many
    came in that hour (counted from ``empty_ms`` as the total is: analytics.door_flow)."""
    files = []
    dens = per_hour / grid.cell_m**2
    vmax = float(np.percentile(dens[dens > 0], 99)) if (dens > 0).any() else 1.0
    for h, ps in enumerate(per_hour):
        h0 = hour0 + h * HOUR_MS
        lt = _local(h0, plan.timezone)
        n_in = analytics.door_flow(db, h0, h0 + HOUR_MS, empty_ms=empty_ms).ins
        fig = render.heatmap_figure(
            plan,
            grid,
            ps,
            f"{plan.name}: {lt:%Y-%m-%d %H:00}–{(lt.hour + 1) % 24:02d}:00",
            f"{n_in} visitors came in this hour; same colour scale for every hour",
            vmax=vmax,
        )
        files.append(str(render.save(fig, out / f"heatmap_{lt:%H}00.png")))
    return files


def _compare(
    plan: FloorPlan,
    grid: WalkableGrid,
    fused: np.ndarray,
    rep: Report,
    truth_dir: Path,
    out: Path,
    span: str,
    flow: flows.FlowMatrix,
) -> dict[str, Any]:
    tf = truth_compare.load(truth_dir, grid)
    est1 = analytics.cell_sum(grid, fused * grid.inside, 1.0)
    tru1 = analytics.cell_sum(grid, tf.per_cell * grid.inside, 1.0)
    inside1 = analytics.cell_sum(grid, grid.inside.astype(float), 1.0) > 0
    r = truth_compare.pearson_r(est1[inside1], tru1[inside1])
    tz_ps = analytics.zone_person_seconds(plan, grid, tf.per_cell * grid.inside)
    fig = render.comparison_figure(
        plan,
        grid,
        fused,
        tf.per_cell,
        f"{plan.name}, {span}",
        f"Pearson r of person-seconds per 1 m cell inside the store: {r:.2f}",
    )
    rep.files.append(str(render.save(fig, out / "heatmap_vs_truth.png")))
    tfl = truth_compare.flows(truth_dir, plan)
    est_p, tru_p = flow.distribution(), tfl.distribution()
    zi = {z: i for i, z in enumerate(flow.zones)}
    flow_truth: dict[str, Any] = {
        "flow_tv_distance": flows.tv_distance(flow, tfl),
        "flow_tv_distance_phone_carriers": flows.tv_distance(
            flow, truth_compare.flows(truth_dir, plan, phones_only=True)
        ),
        "flow_transitions": tfl.total,
        "flow_share": {
            f"{c['from']}->{c['to']}": [
                float(est_p[zi[c["from"]], zi[c["to"]]]),
                float(tru_p[zi[c["from"]], zi[c["to"]]]),
            ]
            for c in (rep.flows or {}).get("top", [])
        },
    }
    return {
        "door_in": tf.door_in,
        "door_out": tf.door_out,
        "passersby": tf.passersby,
        "capture_rate": tf.visitors_entered / (tf.visitors_entered + tf.passersby)
        if tf.visitors_entered + tf.passersby
        else 0.0,
        "mean_dwell_s": tf.mean_dwell_s,
        "median_dwell_s": tf.median_dwell_s,
        "person_seconds_inside": tf.person_seconds_inside,
        "shopper_seconds_inside": tf.shopper_seconds_inside,
        "heatmap_pearson_r_1m": r,
        "zone_person_seconds": tz_ps,
        **flow_truth,
    }


def _flows(
    plan: FloorPlan, fm: flows.FlowMatrix, out: Path, span: str, rep: Report
) -> dict[str, Any]:
    """``flows.csv`` and ``flows.png`` (k-anonymous cells only), and the summary's part."""
    table = flows.write_csv(out / "flows.csv", fm, K_ANONYMITY)
    rep.files.append(str(out / "flows.csv"))
    shown = [c for c in table if not c.suppressed]
    fig = flows.flows_figure(
        plan,
        fm,
        K_ANONYMITY,
        f"{plan.name}: where people went next, {span}",
        f"moves between zones along each device's estimated path (stays of at least "
        f"{flows.MIN_DWELL_S:.0f} s); arrow width ∝ moves; arcs bow to the left of travel",
    )
    rep.files.append(str(render.save(fig, out / "flows.png")))
    return {
        "k": K_ANONYMITY,
        "min_dwell_s": flows.MIN_DWELL_S,
        "devices_with_stays": fm.entities,
        "cells_published": len(shown),
        "cells_suppressed": len(table) - len(shown),
        "top": [
            {
                "from": c.from_zone,
                "to": c.to_zone,
                "transitions": c.transitions,
                "devices": c.devices,
            }
            for c in shown[:TOP_FLOWS]
        ],
    }


def _pct(est: float, true: float) -> str:
    return f"{(est - true) / true * 100:+.1f} %" if true else "n/a"


def _write_tables(rep: Report, out: Path) -> None:
    t = rep.truth
    zone_total = sum(rep.zone_person_seconds.values()) or 1.0
    with (out / "zones.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["zone", "person_seconds", "share"] + (["truth_share"] if t else []))
        ttot = sum(t["zone_person_seconds"].values()) or 1.0 if t else 1.0
        for z, ps in rep.zone_person_seconds.items():
            row = [z, round(ps), round(ps / zone_total, 4)]
            if t:
                row.append(round(t["zone_person_seconds"][z] / ttot, 4))
            w.writerow(row)
    (out / "summary.json").write_text(json.dumps(asdict(rep), indent=1, default=float))
    lines = [f"footfall summary — {rep.period}", ""]
    head = f"{'':34}{'measured':>12}" + (f"{'truth':>12}{'error':>10}" if t else "")
    lines.append(head)

    def line(name: str, est: float, key: str | None, fmt: str = "{:.0f}") -> None:
        s = f"{name:34}{fmt.format(est):>12}"
        if t and key:
            s += f"{fmt.format(t[key]):>12}{_pct(est, t[key]):>10}"
        lines.append(s)

    line("visitors (door beams, in)", rep.door_in, "door_in")
    if rep.door_in_implied:
        n = rep.door_in_implied
        lines.append(f"  of which implied by the exits{n:>16}  (two crossing as one)")
    line("exits (door beams, out)", rep.door_out, "door_out")
    line("passersby (RF, door-calibrated)", rep.passersby_est, "passersby")
    line("capture rate", rep.capture_rate, "capture_rate", "{:.3f}")
    line("mean dwell, s (Little's law)", rep.mean_dwell_s, "mean_dwell_s")
    if rep.median_dwell_rf_s is not None:
        line("median dwell, s (RF tracks)", rep.median_dwell_rf_s, "median_dwell_s")
    line("visitor person-seconds inside", rep.person_seconds_inside, "shopper_seconds_inside")
    if t:
        lines.append(f"{'heatmap Pearson r (1 m cells)':34}{t['heatmap_pearson_r_1m']:>12.3f}")
        if "flow_tv_distance" in t:
            lines.append(f"{'zone flows, TV distance vs truth':34}{t['flow_tv_distance']:>12.3f}")
    lines += [
        "",
        f"observations {rep.observations}, device-windows {rep.windows}, devices: {rep.devices}",
        "",
        "zone share of person-seconds" + ("  (measured / truth)" if t else ""),
    ]
    ttot = sum(t["zone_person_seconds"].values()) or 1.0 if t else 1.0
    for z, ps in sorted(rep.zone_person_seconds.items(), key=lambda kv: -kv[1]):
        s = f"  {z:20}{ps / zone_total * 100:6.1f} %"
        if t:
            s += f"  /  {t['zone_person_seconds'][z] / ttot * 100:5.1f} %"
        lines.append(s)
    lines += _flow_lines(rep)
    (out / "summary.txt").write_text("\n".join(lines) + "\n")


def _flow_lines(rep: Report) -> list[str]:
    fl, t = rep.flows, rep.truth
    if fl is None:
        return []
    share = (t or {}).get("flow_share")
    lines = [
        "",
        f"zone-to-zone flows: top {len(fl['top'])} transitions (stays ≥ {fl['min_dwell_s']:.0f} s; "
        f"pairs of fewer than {fl['k']} devices suppressed)",
    ]
    if share:
        lines.append(f"{'':60}share of moves (measured / truth)")
    for c in fl["top"]:
        s = f"  {c['from']:>14} → {c['to']:14}{c['transitions']:6} moves {c['devices']:5} devices"
        if share:
            m, tr = share[f"{c['from']}->{c['to']}"]
            s += f"   {m * 100:5.1f} %  /  {tr * 100:5.1f} %"
        lines.append(s)
    lines.append(
        f"  {fl['cells_published']} zone pairs published, {fl['cells_suppressed']} suppressed"
    )
    if t and "flow_tv_distance" in t:
        lines.append(
            f"  total variation distance vs truth {t['flow_tv_distance']:.3f} "
            f"(vs the phone carriers only {t['flow_tv_distance_phone_carriers']:.3f})"
        )
    return lines
