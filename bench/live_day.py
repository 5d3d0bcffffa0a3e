"""Busy store-day through the live aggregator: lag, CPU, memory and figures against truth.

The workload of :mod:`store_day` (the bundled 30 × 20 m store with a 5 × 4 grid of
ceiling nodes, 3,000 visitors over 12 h, the simulator's own people, phones and RSSI
through :func:`heatmap.simulate.accuracy_harness.simulate_windows`), replayed through
a real Mosquitto into the real aggregator (:class:`heatmap.aggregator.daemon.AggregatorDaemon`:
ingest, live aggregator, retention, status) faster than real time, with the
aggregator's clock injected as the replay's data time.

What goes over MQTT, as the store's devices would publish it (QoS 1, v1 payloads of
:mod:`sensing.wire.payloads`, validated by the aggregator):

* **obs batches**: every BLE frame a node heard, one batch per node per
  ``--batch-s`` of data (pseudonyms: 16 hex characters, as the nodes' keyed ones);
* **node beacons**: each node advertises from a fixed public address every 10 s
  and the others hear it (:mod:`heatmap.simulate.node_beacons`, its own random
  stream); these rows go in the same obs batches and are what the radio model is
  fitted to, live and in the batch report alike;
* **door batches**: the harness draws no door events, so the crossings are the
  simulated people's true crossings of the two door lanes
  (:func:`heatmap.simulate.boards.door_crossings` on the same people: every
  time a path crosses a lane, +1 inwards), i.e. perfect beams, one batch per door
  per ``--batch-s`` with a crossing. The visitors figure therefore measures the
  aggregator's door arithmetic, not the beams' errors (``bench/door_accuracy.py``
  measures those). The floor tiles of the plan publish nothing here.

The replay advances the injected clock with the data (``--speed`` times real
time) and waits where the aggregator does not keep up: until its ingest has
stored every batch older than ``INGEST_SLACK_S`` of data, and while the live
watermark is more than ``--max-behind-min`` behind the interval that is due. When
the data end, the clock jumps to the day's close (midnight + ``day_close_s``)
and the replay waits for the day's aggregates.

The aggregator runs in a child process (its CPU and memory are its own). In the
same run, the batch report of the same day
(:func:`heatmap.report.store_report.analyze`, with the simulator's truth) runs in
another child process on a copy of the same rows written straight into a second
database. Printed:

* lag: data-time now minus the live watermark (max and median over the data),
  and how far the watermark was behind the interval due at that moment; the
  daemon's live thread wakes every 5 s of *wall* time, which at ``--speed`` S is
  5·S s of data: that part of the lag is the replay's, not the aggregator's, so
  the real-time equivalent is given too (interval + lag + tick + the longest step);
* CPU seconds of the aggregator process for the day (ingest, live, retention,
  status; and of the live thread alone) against the batch report's;
* peak RSS of the aggregator process tree (sampled) and its VmHWM;
* the day's figures from the stored day aggregates against the truth: heatmap
  Pearson r at 1 m cells (the live heatmap leaves the staff out: against the
  visitors' truth, and against everyone's), zone shares of person-seconds,
  zone dwell medians (truth: contiguous zone stays of the shoppers, the same
  minimum-dwell rule and merge as the live sessions), visitors (door ins against
  the true entries); the batch report's beside them.

    python bench/live_day.py                # the GOALS workload (12 h)
    python bench/live_day.py --hours 2      # a shorter day (same rate)
"""

from __future__ import annotations

import argparse
import contextlib
import json
import multiprocessing as mp
import os
import resource
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import psutil
import tomli_w
from numpy.typing import NDArray

sys.path.insert(0, str(Path(__file__).resolve().parent))

from store_day import busy_scenario, twenty_node_plan

from heatmap.aggregator import store_db
from heatmap.aggregator.broker import start_mosquitto
from heatmap.aggregator.live import periods
from heatmap.aggregator.live import tracks_table as tt
from heatmap.aggregator.live.settings import LiveSettings
from heatmap.report.truth_compare import zone_visits
from heatmap.simulate import accuracy_harness as harness
from heatmap.simulate import boards, node_beacons, phones, truth
from heatmap.simulate.boards import Crossing
from heatmap.simulate.people import Person, populate
from heatmap.simulate.scenario import Scenario
from heatmap.spatial.floorplan import FloorPlan
from heatmap.spatial.walkable_grid import WalkableGrid
from heatmap.spatial.zone_flows import MIN_DWELL_S
from heatmap.spatial.zones import zone_index
from sensing.runtime.blas_threads import BLAS_THREAD_VARS
from sensing.runtime.mqtt_link import BrokerAddress, Publisher, connect, make_client
from sensing.runtime.process_memory import peak_rss_mib
from sensing.wire import topics
from sensing.wire.observation import KIND_SHIFT, DeviceKind, Flag

I64 = NDArray[np.int64]
F = NDArray[np.float64]
REPO = Path(__file__).resolve().parents[1]
INGEST_SLACK_S = 20.0
"""the replay waits until the aggregator stored every batch older than this (data s)"""
POLL_S = 0.25
"""how often the replay reads the live database's watermark and batch count (wall s)"""
DAY_WAIT_S = 600.0
"""how long (wall) the replay waits for the day's aggregates after the data"""
PHONE_FLAGS = int(Flag.BLE_RANDOM)
BEACON_FLAGS = int(DeviceKind.BEACON) << KIND_SHIFT  # public address: no BLE_RANDOM


# ---------------------------------------------------------------- the day, drawn


@dataclass
class Rows:
    """Every observation row of the day, sorted by time."""

    t: I64
    node: I64
    pid: I64
    """index into ``names``"""
    rssi: I64
    flags: I64
    names: NDArray[np.str_]


@dataclass
class Day:
    plan: FloorPlan
    sc: Scenario
    sw: harness.SimWindows
    people: list[Person]
    phone_list: list[phones.Phone]
    rows: Rows
    crossings: dict[str, list[Crossing]]
    tr: truth.Truth


def _hex(codes: I64, salt: int) -> NDArray[np.str_]:
    v = (codes.astype(np.uint64) + np.uint64(salt)) * np.uint64(0x9E3779B97F4A7C15)
    return np.array([f"{int(x):016x}" for x in v.tolist()])


def draw_day(hours: float, seed: int) -> Day:
    plan = twenty_node_plan()
    sc = busy_scenario(hours, seed)
    sw = harness.simulate_windows(plan, sc, keep_observations=True)
    # the same people and phones again: simulate_windows draws them first, from the seed
    rng = np.random.default_rng(sc.seed)
    people = populate(plan, WalkableGrid.build(plan, cell_m=0.5), sc, rng)
    phone_list = phones.make_phones(people, sc, rng)
    assert sw.observations is not None
    t, j, code, rssi = sw.observations
    # node beacons: a fixed public address per node, heard by the others
    brng = np.random.default_rng([sc.seed, node_beacons.RNG_STREAM])
    bt, tx = node_beacons.beacon_times(plan, sc.duration_s, brng)
    brssi = node_beacons.received(plan, sc, tx, brng)
    e, bj = np.nonzero(~np.isnan(brssi))
    n_codes = int(code.max()) + 1 if len(code) else 0
    all_t = np.concatenate([t, sc.t0_ms + np.round(bt[e] * 1000).astype(np.int64)])
    all_j = np.concatenate([j, bj]).astype(np.int64)
    all_c = np.concatenate([code, n_codes + tx[e]]).astype(np.int64)
    all_r = np.concatenate([np.round(rssi), brssi[e, bj]]).astype(np.int64)
    all_f = np.concatenate(
        [np.full(len(t), PHONE_FLAGS, np.int64), np.full(len(e), BEACON_FLAGS, np.int64)]
    )
    order = np.argsort(all_t, kind="stable")
    names = _hex(np.arange(n_codes + len(plan.nodes), dtype=np.int64), 0)
    rows = Rows(all_t[order], all_j[order], all_c[order], all_r[order], all_f[order], names)
    crossings = {
        d.id: [
            c
            for c in boards.door_crossings(people, d, plan.outline_polygon)
            if 0 <= c.t < sc.duration_s
        ]
        for d in plan.doors
    }
    tr = truth.sample_positions(people, plan, sc.duration_s)
    return Day(plan, sc, sw, people, phone_list, rows, crossings, tr)


def write_plan_toml(plan: FloorPlan, path: Path) -> None:
    """The bundled plan's file with its [[nodes]] replaced by the 20-node grid."""
    from importlib import resources

    text = resources.files("heatmap.spatial.data").joinpath("default_store.toml").read_text()
    lines = text.splitlines()
    out: list[str] = []
    skip = False
    for ln in lines:
        s = ln.strip()
        if s.startswith("[["):
            skip = s == "[[nodes]]"
        elif s.startswith("[") and not s.startswith("[["):
            skip = False
        if not skip:
            out.append(ln)
    for n in plan.nodes:
        out += [
            "[[nodes]]",
            f'id = "{n.id}"',
            f"x = {n.x!r}",
            f"y = {n.y!r}",
            f"z = {n.z!r}",
            f"wifi_channel = {n.wifi_channel}",
        ]
    path.write_text("\n".join(out) + "\n")


def write_rows_db(path: Path, day: Day) -> None:
    """The same rows, straight into a store database (the batch report's copy)."""
    r, plan = day.rows, day.plan
    node_ids = np.array([n.id for n in plan.nodes])
    conn = store_db.connect(path)
    step = 500_000
    for lo in range(0, len(r.t), step):
        s = slice(lo, lo + step)
        conn.executemany(
            "INSERT INTO obs (t_ms, node, pid, rssi, band, flags, sig) "
            "VALUES (?,?,?,?,'ble',?,NULL)",
            zip(
                r.t[s].tolist(),
                node_ids[r.node[s]].tolist(),
                r.names[r.pid[s]].tolist(),
                r.rssi[s].tolist(),
                r.flags[s].tolist(),
                strict=True,
            ),
        )
        conn.commit()
    t0 = day.sc.t0_ms
    conn.executemany(
        "INSERT INTO door_events VALUES (?,?,?)",
        [
            (t0 + round(c.t * 1000), door, c.direction)
            for door, cs in day.crossings.items()
            for c in cs
        ],
    )
    conn.commit()
    conn.close()


# ---------------------------------------------------------------- truth


def truth_figures(day: Day) -> dict[str, Any]:
    plan, tr = day.plan, day.tr
    g1 = WalkableGrid.build(plan, cell_m=1.0)
    shopper = tr.role == "shopper"
    n = g1.nx * g1.ny
    cells_all = day.sw.truth_cells
    cells_vis = np.bincount(g1.cells_of(tr.xy[shopper]), minlength=n).astype(float)
    zi = zone_index(plan, tr.xy)
    ids = [z.id for z in plan.zones]

    def shares(sel: NDArray[np.bool_]) -> dict[str, float]:
        c = np.bincount(zi[sel & (zi >= 0)], minlength=len(ids)).astype(float)
        return {z: float(c[i] / c.sum()) for i, z in enumerate(ids)}

    # zone stays as the live sessions make them: runs ≥ MIN_DWELL_S, a zone twice in a row merged
    role = {p.id: p.role for p in day.people}
    visits = sorted(
        (v for v in zone_visits(tr, plan) if role[v[0]] == "shopper"), key=lambda v: (v[0], v[2])
    )
    stays: dict[str, list[float]] = {z: [] for z in ids}
    last: tuple[int, str] | None = None
    for person, zone, a, b in visits:
        dur = b - a + 1.0
        if dur < MIN_DWELL_S:
            continue
        if last == (person, zone):
            stays[zone][-1] += dur
        else:
            stays[zone].append(dur)
        last = (person, zone)
    entries = sum(c.direction > 0 for cs in day.crossings.values() for c in cs)
    entered = len(np.unique(tr.person[shopper & tr.inside]))
    return {
        "cells_visitors": cells_vis,
        "cells_everyone": cells_all,
        "inside": g1.inside,
        "grid": (g1.nx, g1.ny),
        "zone_share_visitors": shares(shopper),
        "zone_share_everyone": shares(np.ones(len(zi), bool)),
        "zone_dwell_p50_s": {z: float(np.median(v)) if v else None for z, v in stays.items()},
        "zone_stays": {z: len(v) for z, v in stays.items()},
        "door_in": int(entries),
        "shoppers_entered": int(entered),
    }


# ---------------------------------------------------------------- batch report (child)


def batch_child(db: Path, truth_dir: Path, out: Path, t0_ms: int, t1_ms: int) -> dict[str, Any]:
    from heatmap.report.store_report import analyze

    plan = twenty_node_plan()
    t, c = time.perf_counter(), time.process_time()
    rep = analyze(plan, db, t0_ms, t1_ms, out, truth_dir=truth_dir)
    wall = time.perf_counter() - t
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    assert rep.truth is not None
    return {
        "wall_s": wall,
        "cpu_s": own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime,
        "cpu_main_s": time.process_time() - c,
        "peak_rss_mib": peak_rss_mib(),
        "door_in": rep.door_in,
        "zone_person_seconds": rep.zone_person_seconds,
        "heatmap_r": rep.truth["heatmap_pearson_r_1m"],
        "truth_zone_person_seconds": rep.truth["zone_person_seconds"],
        "median_dwell_rf_s": rep.median_dwell_rf_s,
    }


def run_batch(day: Day, d: Path) -> dict[str, Any]:
    db = d / "batch.db"
    write_rows_db(db, day)
    visits = zone_visits(day.tr, day.plan)
    crossings = sorted((c for cs in day.crossings.values() for c in cs), key=lambda c: c.t)
    truth.write(
        d / "truth",
        day.tr,
        day.people,
        day.phone_list,
        crossings,
        visits,
        {"store": day.plan.store_id, "t0_ms": day.sc.t0_ms, "duration_s": day.sc.duration_s},
    )
    t0, t1 = day.sc.t0_ms, day.sc.t0_ms + day.sc.duration_s * 1000
    cmd = [sys.executable, __file__, "--batch-child", str(db), str(d / "truth"), str(d / "report")]
    cmd += [str(t0), str(t1)]
    res = subprocess.run(cmd, check=True, capture_output=True, text=True)
    out: dict[str, Any] = json.loads(res.stdout.strip().splitlines()[-1])
    return out


# ---------------------------------------------------------------- the aggregator (child)


def aggregator_child(store_toml: str, clock: Any, stop: Any, result_path: str, ready: Any) -> None:
    """The real daemon with the replay's clock; its figures into ``result_path``."""
    import logging

    from heatmap.aggregator import config as agg_config
    from heatmap.aggregator.daemon import AggregatorDaemon

    logging.basicConfig(level=logging.WARNING, format="aggregator: %(levelname)s %(message)s")
    cfg = agg_config.load(store_toml)
    daemon = AggregatorDaemon(cfg, clock=lambda: float(clock.value))
    live = daemon.live
    assert live is not None, "live aggregator off: store.toml needs a floor plan and [live]"
    steps: list[list[float]] = []
    real_step = live.step

    def timed_step(now_ms: int) -> Any:
        w, c = time.perf_counter(), time.thread_time()
        rep = real_step(now_ms)
        steps.append(
            [
                time.perf_counter() - w,
                time.thread_time() - c,
                len(rep.intervals),
                len(rep.periods),
                float(now_ms),
                float(rep.watermark_ms or 0),
            ]
        )
        return rep

    live.step = timed_step  # type: ignore[method-assign]
    # the live aggregator's writes run on the ingest writer thread: their CPU apart
    write_cpu = [0.0, 0]
    real_write = live._write

    def timed_write(fn: Any) -> Any:
        def job(c: Any) -> Any:
            t = time.thread_time()
            try:
                return fn(c)
            finally:
                write_cpu[0] += time.thread_time() - t
                write_cpu[1] += 1

        return real_write(job)

    live._write = timed_write
    close_errors: list[str] = []
    real_close = live.close

    def tolerant_close() -> None:
        # LiveProcessor.close runs on the daemon's main thread (AggregatorDaemon.stop), but
        # its read-only connection was made on the live thread: sqlite3 refuses to close
        # it there. Recorded and reported; the connection goes with the process.
        try:
            real_close()
        except sqlite3.ProgrammingError as e:
            close_errors.append(str(e))
            live._ro = live._own = None

    live.close = tolerant_close  # type: ignore[method-assign]
    daemon.start()
    ready.set()
    halt = threading.Event()
    threading.Thread(target=lambda: (stop.wait(), halt.set()), daemon=True).start()
    cpu0 = time.process_time()
    daemon.run(halt)
    threads: dict[str, float] = {}
    for th in threading.enumerate():  # CPU per thread, before stop() ends them
        with contextlib.suppress(OSError, TypeError):
            cid = time.pthread_getcpuclockid(th.ident)  # type: ignore[arg-type]
            name = "paho network" if th.name.startswith("paho") else th.name
            threads[name] = threads.get(name, 0.0) + time.clock_gettime(cid)
    daemon.stop()
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    Path(result_path).write_text(
        json.dumps(
            {
                "cpu_s": own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime,
                "cpu_run_s": time.process_time() - cpu0,
                "vmhwm_mib": peak_rss_mib(),
                "live_cpu_s_reported": live.cpu_s_total,
                "thread_cpu_s": threads,
                "live_writes_cpu_s": write_cpu[0],
                "live_writes": write_cpu[1],
                "live_errors": daemon.live_errors,
                "close_errors": close_errors,
                "live_error": daemon.live_error,
                "periods_written": live.periods_written,
                "steps": steps,
                "ingest": {
                    k: v
                    for k, v in vars(daemon.ingest.snapshot().stats).items()
                    if isinstance(v, int | float)
                },
            }
        )
    )


# ---------------------------------------------------------------- replay


@dataclass
class Schedule:
    """The day's batches in publishing order (each at the end of its span)."""

    end_ms: I64
    topic: list[str]
    kind: list[str]
    """obs | door"""
    lo: I64
    """obs: first row in Rows; door: index into that door's crossings"""
    hi: I64
    publisher: list[str]


def schedule(day: Day, batch_ms: int) -> Schedule:
    r, plan = day.rows, day.plan
    n_nodes = len(plan.nodes)
    key = (r.t // batch_ms) * n_nodes + r.node
    order = np.argsort(key, kind="stable")
    for a in ("t", "node", "pid", "rssi", "flags"):
        setattr(r, a, getattr(r, a)[order])  # rows grouped by batch, in time within it
    k = key[order]
    starts = np.flatnonzero(np.r_[True, k[1:] != k[:-1]]) if len(k) else np.zeros(0, np.int64)
    ends = np.r_[starts[1:], len(k)]
    ends_ms = (k[starts] // n_nodes + 1) * batch_ms
    ids = [n.id for n in plan.nodes]
    pubs = [ids[int(x)] for x in r.node[starts].tolist()]
    topic = [topics.obs_topic(plan.store_id, p) for p in pubs]
    kind = ["obs"] * len(starts)
    e_ms, lo, hi = ends_ms.tolist(), starts.tolist(), ends.tolist()
    t0 = day.sc.t0_ms
    for door, cs in day.crossings.items():
        ct = np.array([t0 + round(c.t * 1000) for c in cs], np.int64)
        b = ct // batch_ms
        s = np.flatnonzero(np.r_[True, b[1:] != b[:-1]]) if len(b) else np.zeros(0, np.int64)
        en = np.r_[s[1:], len(b)]
        e_ms += ((b[s] + 1) * batch_ms).tolist()
        lo += s.tolist()
        hi += en.tolist()
        topic += [topics.door_topic(plan.store_id, door)] * len(s)
        kind += ["door"] * len(s)
        pubs += [door] * len(s)
    o = np.argsort(np.array(e_ms), kind="stable")
    return Schedule(
        np.array(e_ms, np.int64)[o],
        [topic[i] for i in o],
        [kind[i] for i in o],
        np.array(lo, np.int64)[o],
        np.array(hi, np.int64)[o],
        [pubs[i] for i in o],
    )


class Replayer:
    def __init__(self, day: Day, sch: Schedule, batch_ms: int, addr: BrokerAddress) -> None:
        self.day, self.sch, self.batch_ms = day, sch, batch_ms
        self.client = make_client(addr, "live-day-replay")
        connect(self.client, addr)
        self.pub = Publisher(self.client, max_pending=2000)
        self.seq: dict[str, int] = {}
        self.next = 0
        self.rows_sent = 0
        self.ids = [n.id for n in day.plan.nodes]
        self.door_ms = {
            d: [day.sc.t0_ms + round(c.t * 1000) for c in cs] for d, cs in day.crossings.items()
        }
        self.door_dir = {d: [c.direction for c in cs] for d, cs in day.crossings.items()}

    def payload(self, i: int) -> bytes:
        s, r = self.sch, self.day.rows
        p = s.publisher[i]
        seq = self.seq.get(s.topic[i], 0)
        self.seq[s.topic[i]] = seq + 1
        lo, hi = int(s.lo[i]), int(s.hi[i])
        t0 = int(s.end_ms[i]) - self.batch_ms
        if s.kind[i] == "obs":
            t = (r.t[lo:hi] - t0).tolist()
            pid = r.names[r.pid[lo:hi]].tolist()
            body = ",".join(
                f'[{a},"{b}",{c},"ble",{d}]'
                for a, b, c, d in zip(
                    t, pid, r.rssi[lo:hi].tolist(), r.flags[lo:hi].tolist(), strict=True
                )
            )
            self.rows_sent += hi - lo
            return f'{{"v":1,"node":"{p}","seq":{seq},"t0":{t0},"obs":[{body}]}}'.encode()
        ms, dirs = self.door_ms[p][lo:hi], self.door_dir[p][lo:hi]
        ev = ",".join(f"[{m - t0},{dr}]" for m, dr in zip(ms, dirs, strict=True))
        return f'{{"v":1,"seq":{seq},"t0":{t0},"ev":[{ev}]}}'.encode()

    def publish_until(self, t_ms: int) -> None:
        s = self.sch
        while self.next < len(s.end_ms) and s.end_ms[self.next] <= t_ms:
            self.pub.publish(s.topic[self.next], self.payload(self.next))
            self.next += 1

    def close(self) -> None:
        self.pub.drain(120)
        self.client.disconnect()
        self.client.loop_stop()


def tree_rss_mib(pid: int) -> float:
    try:
        p = psutil.Process(pid)
        procs = [p, *p.children(recursive=True)]
    except psutil.Error:
        return 0.0
    total = 0
    for q in procs:
        with contextlib.suppress(psutil.Error):
            total += q.memory_info().rss
    return total / 2**20


def run_live(day: Day, d: Path, speed: float, batch_s: float, max_behind_min: float) -> dict:
    plan, sc = day.plan, day.sc
    plan_path = d / "floorplan.toml"
    write_plan_toml(plan, plan_path)
    from heatmap.spatial import floorplan

    loaded = floorplan.load(plan_path)
    assert [(n.id, n.x, n.y) for n in loaded.nodes] == [(n.id, n.x, n.y) for n in plan.nodes]
    broker = start_mosquitto(d / "mosquitto")
    db = d / "live.db"
    store_toml = d / "store.toml"
    store_toml.write_text(
        tomli_w.dumps(
            {
                "aggregator": {
                    "store": plan.store_id,
                    "db": str(db),
                    "floor_plan": str(plan_path),
                },
                "live": {"enabled": True},
                "broker": {"host": broker.address.host, "port": broker.address.port},
            }
        )
    )
    settings = LiveSettings()
    ctx = mp.get_context("spawn")
    clock = ctx.Value("d", (sc.t0_ms - 1000) / 1000, lock=False)
    stop, ready = ctx.Event(), ctx.Event()
    result_path = d / "aggregator.json"
    child = ctx.Process(
        target=aggregator_child,
        args=(str(store_toml), clock, stop, str(result_path), ready),
        name="aggregator",
    )
    batch_ms = round(batch_s * 1000)
    sch = schedule(day, batch_ms)
    n_sched = len(sch.end_ms)
    iv, lag = settings.interval_ms, settings.lag_ms
    max_behind = round(max_behind_min * 60_000)
    samples: list[tuple[float, int, int]] = []  # (wall, data now, watermark)
    peak_tree = 0.0
    paused = {"ingest": 0.0, "live": 0.0}
    # as `footfall aggregator` does (sensing.runtime.blas_threads): one BLAS thread, set
    # before numpy loads, i.e. in the environment the child starts with
    saved = {v: os.environ.get(v) for v in BLAS_THREAD_VARS}
    for v in BLAS_THREAD_VARS:
        os.environ.setdefault(v, "1")
    try:
        child.start()
    finally:
        for v, old in saved.items():
            if old is None:
                os.environ.pop(v, None)
            else:
                os.environ[v] = old
    rep: Replayer | None = None
    try:
        if not ready.wait(60):
            raise RuntimeError("the aggregator did not start in 60 s")
        rep = Replayer(day, sch, batch_ms, broker.address)
        ro = store_db.connect(db, readonly=True)
        t_start = int(sc.t0_ms)
        t_data_end = int(sch.end_ms[-1]) if n_sched else t_start
        t_now = t_start
        w0 = time.perf_counter()
        next_poll = next_print = w0
        stored = 0
        wm: int | None = None
        print(
            f"replay: {n_sched:,} batches ({len(day.rows.t):,} rows) at {speed:g}x real time "
            f"into the aggregator (pid {child.pid}), broker 127.0.0.1:{broker.address.port}",
            flush=True,
        )

        def poll() -> None:
            nonlocal stored, wm, peak_tree
            if not child.is_alive():
                raise RuntimeError("the aggregator process ended during the replay")
            ro.commit()
            stored = ro.execute("SELECT COUNT(*) FROM batches").fetchone()[0]
            wm = tt.get_meta_int(ro, tt.WATERMARK)
            peak_tree = max(peak_tree, tree_rss_mib(child.pid or 0))

        step_ms = 1000
        while t_now < t_data_end:
            if not child.is_alive():
                raise RuntimeError("the aggregator process ended during the replay")
            t_next = min(t_now + step_ms, t_data_end)
            # the ingest keeps up: every batch older than the slack is stored
            need = int(np.searchsorted(sch.end_ms, t_next - INGEST_SLACK_S * 1000, "right"))
            waited = time.perf_counter()
            while stored < need:
                time.sleep(0.05)
                poll()
            # and the live aggregator is not too far behind the interval due
            due = periods.floor_ms(t_next - lag, iv)
            paused["ingest"] += time.perf_counter() - waited
            waited = time.perf_counter()
            while wm is not None and due - wm > max_behind:
                time.sleep(0.05)
                poll()
            paused["live"] += time.perf_counter() - waited
            t_now = t_next
            rep.publish_until(t_now)
            clock.value = t_now / 1000
            target = w0 + sum(paused.values()) + (t_now - t_start) / 1000 / speed
            now = time.perf_counter()
            if target > now:
                time.sleep(target - now)
            now = time.perf_counter()
            if now >= next_poll:
                poll()
                if wm is not None:
                    samples.append((now, t_now, wm))
                next_poll = now + POLL_S
            if now >= next_print:
                lags = [(a - b) / 1000 for _, a, b in samples[-200:]]
                print(
                    f"  data {(t_now - t_start) / 3.6e6:5.2f} h of {sc.duration_s / 3600:g}; "
                    f"wall {now - w0:6.0f} s; batches stored {stored:,}/{rep.next:,}; "
                    f"lag now {lags[-1] if lags else float('nan'):5.0f} s "
                    f"(max {max(lags) if lags else float('nan'):5.0f} s lately); "
                    f"paused for ingest {paused['ingest']:.0f} s, for live {paused['live']:.0f} s; "
                    f"aggregator tree RSS {tree_rss_mib(child.pid or 0):.0f} MiB",
                    flush=True,
                )
                next_print = now + 20
        wall_data = time.perf_counter() - w0
        rep.close()
        # the day closes: the clock to midnight + day_close_s, the day aggregate awaited
        day0 = periods.floor_local(t_start, "day", plan.timezone)
        day1 = periods.next_local(day0, "day", plan.timezone)
        close_ms = day1 + round(settings.day_close_s * 1000) + settings.settle_ms + lag + iv
        clock.value = close_ms / 1000
        print(
            "  data replayed; clock to the day's close, waiting for the day aggregates", flush=True
        )
        deadline = time.perf_counter() + DAY_WAIT_S
        have = None
        while time.perf_counter() < deadline and child.is_alive():
            poll()
            have = ro.execute(
                "SELECT 1 FROM aggregates WHERE kind = 'footfall' AND entity = 'store' "
                "AND t0_ms = ? AND t1_ms = ?",
                (day0, day1),
            ).fetchone()
            if have:
                break
            time.sleep(0.25)
        if not have:
            raise RuntimeError(f"no day aggregate within {DAY_WAIT_S:.0f} s after the data")
        wall_all = time.perf_counter() - w0
        aggs = {
            (k, e): json.loads(p)
            for k, e, p in ro.execute(
                "SELECT kind, entity, payload FROM aggregates WHERE t0_ms = ? AND t1_ms = ?",
                (day0, day1),
            )
        }
        n_obs_left = ro.execute("SELECT COUNT(*) FROM obs").fetchone()[0]
        ro.close()
    finally:
        stop.set()
        child.join(120)
        if child.is_alive():
            child.terminate()
            child.join(10)
        broker.stop()
    res: dict[str, Any] = json.loads(result_path.read_text())
    res.update(
        samples=samples,
        peak_tree_rss_mib=peak_tree,
        paused=paused,
        wall_data_s=wall_data,
        wall_all_s=wall_all,
        aggregates={f"{k}/{e}": v for (k, e), v in aggs.items()},
        obs_rows_left=n_obs_left,
        rows_sent=rep.rows_sent if rep else 0,
        batches=n_sched,
        t_data_end=t_data_end,
    )
    return res


# ---------------------------------------------------------------- figures


def mx(xs: list[float]) -> float:
    return max(xs) if xs else float("nan")


def med(xs: list[float]) -> float:
    return statistics.median(xs) if xs else float("nan")


def pearson(a: F, b: F) -> float:
    return float(np.corrcoef(a, b)[0, 1])


def live_figures(res: dict[str, Any], tf: dict[str, Any], plan: FloorPlan) -> dict[str, Any]:
    aggs = res["aggregates"]
    heat = aggs["heatmap/store"]
    nx, ny = heat["grid"]["nx"], heat["grid"]["ny"]
    assert (nx, ny) == tf["grid"], f"live grid {nx}x{ny} is not the truth's {tf['grid']}"
    cells = np.zeros(nx * ny)
    for i, v in heat["cells"].items():
        cells[int(i)] = v
    ins = tf["inside"]
    ids = [z.id for z in plan.zones]
    zps = {z: float(aggs[f"zone/{z}"]["person_seconds"]) for z in ids}
    tot = sum(zps.values()) or 1.0
    store = aggs["footfall/store"]
    return {
        "heatmap_r_visitors": pearson(cells[ins], tf["cells_visitors"][ins]),
        "heatmap_r_everyone": pearson(cells[ins], tf["cells_everyone"][ins]),
        "cells_kept": len(heat["cells"]),
        "cells_suppressed": heat["cells_suppressed"],
        "staff_removed": heat["staff_removed"],
        "zone_share": {z: v / tot for z, v in zps.items()},
        "zone_dwell_p50_s": {z: aggs[f"zone/{z}"]["dwell_p50_s"] for z in ids},
        "zone_visits": {z: aggs[f"zone/{z}"]["visits"] for z in ids},
        "door_in": store["door_in"],
        "visitors": store["visitors"],
        "store": store,
    }


def print_table(
    live: dict[str, Any], batch: dict[str, Any] | None, tf: dict[str, Any], plan: FloorPlan
) -> dict[str, Any]:
    ids = [z.id for z in plan.zones]
    out: dict[str, Any] = {}
    print("\nday figures against truth (GOALS: live vs batch)")
    print(f"  {'figure':44}{'goal':>12}{'live':>16}{'batch':>16}")
    r_b = batch["heatmap_r"] if batch else float("nan")
    print(
        f"  {'heatmap r, 1 m cells (vs visitors truth)':44}{'≥ 0.90':>12}"
        f"{live['heatmap_r_visitors']:>16.3f}{'n/a':>16}"
    )
    print(
        f"  {'heatmap r, 1 m cells (vs everyone truth)':44}{'≥ 0.90':>12}"
        f"{live['heatmap_r_everyone']:>16.3f}{r_b:>16.3f}"
    )
    # zone shares against both truths: the live heatmap takes the staff out when it finds
    # them (then the visitors' truth is its own), the batch report keeps them in
    b_ps = batch["zone_person_seconds"] if batch else None
    b_tot = (sum(b_ps.values()) or 1.0) if b_ps else 1.0

    def err(share: dict[str, float] | None, basis: str) -> dict[str, float]:
        if share is None:
            return {}
        return {z: (share[z] - tf[f"zone_share_{basis}"][z]) * 100 for z in ids}

    b_share = {z: b_ps[z] / b_tot for z in ids} if b_ps else None
    errs = {
        (who, basis): err(sh, basis)
        for who, sh in (("live", live["zone_share"]), ("batch", b_share))
        for basis in ("visitors", "everyone")
    }

    def worst(e: dict[str, float | None]) -> str:
        v = {z: abs(x) for z, x in e.items() if x is not None}
        if not v:
            return "n/a"
        z = max(v, key=lambda k: v[k])
        return f"{v[z]:.1f} {z}"

    for basis in ("visitors", "everyone"):
        label = f"zone share, worst |error| pts (vs {basis})"
        print(
            f"  {label:44}{'≤ 2':>12}{worst(errs[('live', basis)]):>16}"
            f"{worst(errs[('batch', basis)]):>16}"
        )
    dw: dict[str, float | None] = {}
    for z in ids:
        est, tru = live["zone_dwell_p50_s"][z], tf["zone_dwell_p50_s"][z]
        dw[z] = None if est is None or not tru else (est - tru) / tru * 100
    rest = [abs(v) for z, v in dw.items() if v is not None and z != "entrance"]
    print(f"  {'zone dwell median, worst |error| %':44}{'≤ 15':>12}{worst(dw):>16}{'n/a':>16}")
    print(
        f"  {'  same, zones but the entrance':44}{'≤ 15':>12}"
        f"{max(rest, default=float('nan')):>16.1f}{'n/a':>16}"
    )
    dl, db_ = errs[("live", "visitors")], errs[("batch", "everyone")]
    vis_l = live["door_in"]
    vis_err = (vis_l - tf["door_in"]) / tf["door_in"] * 100 if vis_l is not None else float("nan")
    vis_b = (batch["door_in"] - tf["door_in"]) / tf["door_in"] * 100 if batch else float("nan")
    print(
        f"  {'visitors (door in vs true entries), error %':44}{'≤ 2':>12}"
        f"{vis_err:>16.2f}{vis_b:>16.2f}"
    )
    print(
        f"    door in: live {vis_l}, batch {batch['door_in'] if batch else 'n/a'}, "
        f"true entries {tf['door_in']} (shoppers who entered {tf['shoppers_entered']})"
    )
    st = live["store"]
    print(
        f"    live day heatmap: {live['cells_kept']} cells kept, {live['cells_suppressed']} "
        f"suppressed, staff removed {live['staff_removed']} (staff devices "
        f"{st.get('staff_devices')}, people per device {st['rf'].get('people_per_device')})"
    )
    print(
        "\n  per zone: share % live / visitors' truth  |  batch / everyone's truth  |  "
        "dwell p50 s live / truth  |  stays live / truth"
    )
    for z in ids:
        b = f"{b_share[z] * 100:5.1f}" if b_share else "  n/a"
        lv = live["zone_dwell_p50_s"][z]
        tv = tf["zone_dwell_p50_s"][z]
        lvs = "supp." if lv is None else f"{lv:6.0f}"
        tvs = "n/a" if tv is None else f"{tv:6.0f}"
        print(
            f"    {z:14}{live['zone_share'][z] * 100:6.1f} / "
            f"{tf['zone_share_visitors'][z] * 100:5.1f}"
            f"   |  {b} / {tf['zone_share_everyone'][z] * 100:5.1f}   |  {lvs} / {tvs}"
            f"  |  {live['zone_visits'][z]} / {tf['zone_stays'][z]}"
        )
    out.update(
        heatmap_r_live_visitors=live["heatmap_r_visitors"],
        heatmap_r_live_everyone=live["heatmap_r_everyone"],
        heatmap_r_batch=r_b,
        zone_share_err_points_live=dl,
        zone_share_err_points_batch=db_,
        zone_dwell_p50_err_pct_live=dw,
        visitors_err_pct_live=vis_err,
        visitors_err_pct_batch=vis_b,
        door_in_live=vis_l,
        door_in_truth=tf["door_in"],
    )
    return out


def code_version() -> str:
    """The commit measured, and whether the aggregator's code differed from it."""
    try:
        head = subprocess.run(
            ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(REPO), "status", "--porcelain", "heatmap", "sensing"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + (" (heatmap/ or sensing/ modified)" if dirty else "")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--hours", type=float, default=12.0)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--speed", type=float, default=150.0, help="times real time (at most)")
    ap.add_argument("--batch-s", type=float, default=2.0, help="data per obs batch, s")
    ap.add_argument("--max-behind-min", type=float, default=30.0)
    ap.add_argument("--no-batch", action="store_true", help="skip the batch report")
    ap.add_argument("--json", type=Path, help="write the figures here")
    ap.add_argument("--keep", type=Path, help="work in this directory and keep it")
    ap.add_argument("--batch-child", nargs=5, help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.batch_child:
        db, tdir, out, t0, t1 = a.batch_child
        print(json.dumps(batch_child(Path(db), Path(tdir), Path(out), int(t0), int(t1))))
        return 0

    code = code_version()
    print(f"code: {code}", flush=True)
    with contextlib.ExitStack() as stack:
        if a.keep:
            a.keep.mkdir(parents=True, exist_ok=True)
            d = a.keep
        else:
            d = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="footfall-live-day-")))
        t = time.perf_counter()
        day = draw_day(a.hours, a.seed)
        tf = truth_figures(day)
        shoppers = int(np.unique(day.sw.person[day.sw.role == "shopper"]).size)
        print(
            f"live store-day: {len(day.plan.nodes)} nodes, {a.hours:g} h, {shoppers:,} shoppers "
            f"with a phone heard, {len(day.rows.t):,} observation rows (node beacons included), "
            f"{tf['door_in']:,} entries through {len(day.plan.doors)} door lanes "
            f"(drawn in {time.perf_counter() - t:.0f} s, not timed)",
            flush=True,
        )
        batch = None
        if not a.no_batch:
            t = time.perf_counter()
            batch = run_batch(day, d)
            print(
                f"batch report of the same day (child process, its own rows copy): "
                f"wall {batch['wall_s']:.1f} s, CPU {batch['cpu_s']:.1f} s, "
                f"peak RSS {batch['peak_rss_mib']:.0f} MiB (+ workers); "
                f"heatmap r {batch['heatmap_r']:.3f} "
                f"({time.perf_counter() - t:.0f} s with writing the rows)",
                flush=True,
            )
        res = run_live(day, d, a.speed, a.batch_s, a.max_behind_min)
    # lag over the data
    settings = LiveSettings()
    iv, lag = settings.interval_ms, settings.lag_ms
    smp = [(n, w) for _, n, w in res["samples"] if n <= res["t_data_end"]]
    lags = [(n - w) / 1000 for n, w in smp]
    behind = [(periods.floor_ms(n - lag, iv) - w) / 1000 for n, w in smp]
    # steps while the data came (the day's close is one catch-up over the empty evening)
    steps = [s for s in res["steps"] if s[4] <= res["t_data_end"]]
    busy = [s for s in steps if s[2] > 0 or s[3] > 0]
    per_iv = [s[0] / s[2] for s in steps if s[2] > 0]
    longest = max((s[0] for s in steps), default=0.0)
    tick = min(5.0, settings.interval_s / 10)
    real_eq = settings.interval_s + settings.lag_s + tick + longest
    cpu_live_thread = sum(s[1] for s in steps)
    speed_eff = (res["t_data_end"] - day.sc.t0_ms) / 1000 / res["wall_data_s"]
    print(
        f"\nreplay: {res['rows_sent']:,} rows in {res['batches']:,} batches, data replayed in "
        f"{res['wall_data_s']:.0f} s wall ({speed_eff:.0f}x real time on average; paused "
        f"{res['paused']['ingest']:.0f} s for ingest, {res['paused']['live']:.0f} s for live), "
        f"day aggregates {res['wall_all_s'] - res['wall_data_s']:.0f} s later; "
        f"{res['periods_written']} periods written, live errors {res['live_errors']} "
        f"{res['live_error'] or ''}; obs rows left {res['obs_rows_left']:,}"
    )
    for e in res["close_errors"]:
        print(f"aggregator stop: LiveProcessor.close failed: {e}")
    print(
        f"lag (data now - live watermark, {len(lags)} samples): max {mx(lags):.0f} s, median "
        f"{med(lags):.0f} s (goal ≤ {settings.interval_s + 60:.0f} s); watermark "
        f"behind the interval due: max {mx(behind):.0f} s, median {med(behind):.0f} s "
        f"(the live thread wakes every {tick:g} s wall = {tick * speed_eff:.0f} s of data here)"
    )
    print(
        f"live steps: {len(steps)} ({len(busy)} with work); wall per interval located: median "
        f"{med(per_iv):.2f} s, max {max(per_iv, default=0):.2f} s; "
        f"longest step {longest:.1f} s wall -> at real time the lag stays within interval + lag + "
        f"tick + longest step = {real_eq:.0f} s"
    )
    cpu = res["cpu_s"]
    ratio = cpu / batch["cpu_s"] if batch else float("nan")
    print(
        f"CPU: aggregator process {cpu:.1f} s for the day (live thread {cpu_live_thread:.1f} s, "
        f"ingest/MQTT/status/retention the rest; processor's own cpu_s_total "
        f"{res['live_cpu_s_reported']:.1f} s); batch report "
        f"{batch['cpu_s'] if batch else float('nan'):.1f} s: live/batch {ratio:.2f} (goal ≤ 1.5); "
        f"live thread/batch {cpu_live_thread / batch['cpu_s'] if batch else float('nan'):.2f}"
    )
    th = res.get("thread_cpu_s", {})
    print(
        "  aggregator CPU by thread (up to the stop): "
        + ", ".join(f"{k} {v:.1f} s" for k, v in sorted(th.items(), key=lambda kv: -kv[1]))
        + f"; of the writer's, the live aggregator's {res['live_writes']} writes "
        f"{res['live_writes_cpu_s']:.1f} s"
    )
    print(
        f"peak RSS: aggregator tree {res['peak_tree_rss_mib']:.0f} MiB sampled, VmHWM "
        f"{res['vmhwm_mib']:.0f} MiB (goal ≤ 400 MB)"
    )
    live = live_figures(res, tf, day.plan)
    figs = print_table(live, batch, tf, day.plan)
    if a.json:
        fig = {
            "code": code,
            "hours": a.hours,
            "seed": a.seed,
            "batch_s": a.batch_s,
            "speed_target": a.speed,
            "speed_effective": speed_eff,
            "rows": res["rows_sent"],
            "batches": res["batches"],
            "lag_max_s": mx(lags),
            "lag_median_s": med(lags),
            "behind_due_max_s": mx(behind),
            "longest_step_wall_s": longest,
            "real_time_lag_bound_s": real_eq,
            "cpu_aggregator_s": cpu,
            "cpu_live_thread_s": cpu_live_thread,
            "cpu_by_thread_s": res.get("thread_cpu_s"),
            "cpu_live_writes_s": res.get("live_writes_cpu_s"),
            "cpu_batch_s": batch["cpu_s"] if batch else None,
            "cpu_ratio": ratio,
            "peak_rss_tree_mib": res["peak_tree_rss_mib"],
            "vmhwm_mib": res["vmhwm_mib"],
            "batch_peak_rss_mib": batch["peak_rss_mib"] if batch else None,
            **figs,
        }
        a.json.write_text(json.dumps(fig, indent=2, default=float))
    return 0


if __name__ == "__main__":
    sys.exit(main())
