"""``footfall demo``: a simulated store day through the real pipeline.

simulate (capture files + truth) → one replaying node per ceiling node (real
decoders, pseudonymizer, batching, QoS 1 publishing) → private broker → aggregator
ingest (schema validation, dedup, SQLite WAL) → the live aggregator
(:mod:`heatmap.aggregator.live`: every 5-minute interval located, 15-minute, hourly
and daily k-anonymous aggregates, passers-by's rows deleted as their hour is held)
→ the report of the period from those aggregates (heatmap PNGs, summary, zones,
flows) → k-anonymous aggregates published back to the broker.

The replay runs faster than real time, so the live aggregator runs on the store's
clock (the simulated one) after it: it catches up interval by interval, exactly as
an aggregator that was away does, and closes the day.
"""

from __future__ import annotations

import concurrent.futures as cf
import multiprocessing
import os
import shutil
import tempfile
import time
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np

from firmware_bridge.errors import BrokerError
from heatmap.aggregator import store_db
from heatmap.aggregator.broker import RunningBroker, start_private_broker
from heatmap.aggregator.ingest import Ingestor
from heatmap.aggregator.live import periods
from heatmap.aggregator.live.occupancy_now import occupancy_payload
from heatmap.aggregator.live.processor import LiveProcessor
from heatmap.aggregator.live.settings import LiveSettings
from heatmap.aggregator.publish import ha_discovery
from heatmap.aggregator.publish.bi_publisher import BiPublisher
from heatmap.aggregator.publish.retained_state import RetainedState
from heatmap.report import aggregate_report
from heatmap.report.aggregate_report import PeriodFigures
from heatmap.simulate.scenario import Scenario
from heatmap.simulate.store_day import SimResult, simulate
from heatmap.spatial.floorplan import FloorPlan, load_default
from sensing.node.replay import ReplayResult, replay_node
from sensing.privacy.key_file import KeyFile
from sensing.runtime.mqtt_link import BrokerAddress, Publisher, connect, make_client
from sensing.runtime.progress import NoProgress, Progress
from sensing.runtime.version import __version__
from sensing.wire import topics

REPLAY_TIMEOUT_S = 900.0
KEY_ROLL_HOUR = 4
"""local hour the pseudonym key rolls (store closed)"""


@dataclass
class DemoResult:
    out: Path
    broker_kind: str
    sim: SimResult
    replays: list[ReplayResult]
    report: PeriodFigures
    truth: dict[str, object]
    """the report's figures against the simulator's truth"""
    observations: int
    """observation rows the aggregator stored (before retention deleted passers-by's)"""
    published_topics: list[str]
    seconds: dict[str, float]


def node_boards(plan: FloorPlan, capture: Path, node: str) -> dict[str, Path]:
    boards = {
        f"door/{d.id}": capture / node / f"door-{d.id}.uart" for d in plan.doors if d.node == node
    }
    boards.update(
        {
            f"floor/{t.id}": capture / node / f"tiles-{t.id}.uart"
            for t in plan.tiles
            if t.node == node
        }
    )
    return boards


def run_demo(
    out: Path,
    scenario: Scenario | None = None,
    broker: str = "auto",
    progress: Progress | None = None,
    plan: FloorPlan | None = None,
    workers: int = 2,
    external_broker: BrokerAddress | None = None,
    cell_m: float = 1.0,
) -> DemoResult:
    """Run the whole demo into ``out``; ``external_broker``: use that broker instead of
    starting a private one (the tests listen on it); ``cell_m``: the localization grid's
    cell."""
    prog = progress or NoProgress()
    plan = plan or load_default()
    sc = replace(scenario or Scenario(), timezone=plan.timezone)
    out.mkdir(parents=True, exist_ok=True)
    secs: dict[str, float] = {}
    t = time.monotonic()
    sim = simulate(plan, sc, out / "sim", prog)
    secs["simulate"] = time.monotonic() - t

    running: RunningBroker | None = None
    if external_broker is None:
        running = start_private_broker(out / "broker", prefer=broker)
        addr, kind = running.address, running.kind
    else:
        addr, kind = external_broker, "external"
    keydir = Path(tempfile.mkdtemp(prefix="footfall-node-keys-"))
    try:
        keyfile = keydir / "store.key"
        KeyFile.provision(keyfile, sc.start_local.date(), KEY_ROLL_HOUR, plan.timezone)
        db_path = out / "aggregator" / "store.db"
        if db_path.exists():
            for p in db_path.parent.glob("store.db*"):
                p.unlink()
        # a shared (external) broker may hold an old persistent session of this id
        client_id = None if running else f"footfall-aggregator-{plan.store_id}-{os.getpid()}"
        ing = Ingestor(plan.store_id, str(db_path), addr, client_id)
        ing.start()
        t = time.monotonic()
        replays = _replay_all(plan, sim, keyfile, addr, prog, ing, workers)
        secs["replay"] = time.monotonic() - t
        if not ing.wait_complete({n.id for n in plan.nodes}, timeout_s=120):
            raise BrokerError("aggregator did not receive every batch the nodes published")
        ing.stop()
        secs["ingest_wait"] = time.monotonic() - t - secs["replay"]
        t = time.monotonic()
        t1_ms = sc.t0_ms + sc.duration_s * 1000
        observations = _count_obs(db_path)
        _run_live(plan, db_path, sc.t0_ms, t1_ms, cell_m, prog)
        secs["live"] = time.monotonic() - t
        t = time.monotonic()
        report, truth = _write_report(plan, db_path, sc.t0_ms, t1_ms, out, prog)
        secs["report"] = time.monotonic() - t
        published = _publish_aggregates(plan, addr, db_path, t1_ms)
    finally:
        shutil.rmtree(keydir, ignore_errors=True)  # the simulated nodes are gone: so is their key
        if running is not None:
            running.stop()
    return DemoResult(out, kind, sim, replays, report, truth, observations, published, secs)


def _count_obs(db_path: Path) -> int:
    conn = store_db.connect(db_path, readonly=True)
    try:
        return int(conn.execute("SELECT COUNT(*) FROM obs").fetchone()[0])
    finally:
        conn.close()


def _run_live(
    plan: FloorPlan, db_path: Path, t0_ms: int, t1_ms: int, cell_m: float, prog: Progress
) -> None:
    """The live aggregator on the store's clock, from opening until the day is closed."""
    s = LiveSettings(cell_m=cell_m)
    day_end = periods.next_local(
        periods.floor_local(t1_ms - 1, "day", plan.timezone), "day", plan.timezone
    )
    stop = max(t1_ms + s.lag_ms + s.settle_ms + s.interval_ms, day_end + int(s.day_close_s * 1000))
    n_data = -(-(t1_ms - t0_ms) // s.interval_ms)
    advance = prog.task("live aggregator: locate every 5 min, aggregate", n_data)
    live = LiveProcessor(db_path, plan, s)
    done = 0
    try:
        now = t0_ms
        while now < stop:
            # through the store's hours interval by interval, then straight to the day's close
            now = now + s.interval_ms if now < t1_ms + 3_600_000 else stop
            rep = live.step(now)
            while len(rep.intervals) >= 48:  # a long jump: catch up
                rep = live.step(now)
            n = sum(1 for i in (live.last.intervals if live.last else []) if i < t1_ms)
            step = min(n, n_data - done)
            advance(step)
            done += step
    finally:
        live.close()
    advance(n_data - done)


def _write_report(
    plan: FloorPlan, db_path: Path, t0_ms: int, t1_ms: int, out: Path, prog: Progress
) -> tuple[PeriodFigures, dict[str, object]]:
    """The period's report from the aggregates, one heatmap per hour from the hours', and
    the layout planner's page."""
    from heatmap.report import planner_report, render

    conn = store_db.connect(db_path, readonly=True)
    try:
        fig = aggregate_report.load_period(conn, plan, t0_ms, t1_ms)
        truth = aggregate_report.write(plan, fig, out / "report", out / "sim" / "truth")
        if not aggregate_report.too_few_visitors(fig.store.get("visitors"), fig.k):
            # the layout planner's page (report.html) from the same aggregates
            planner_report.write(conn, plan, fig, out / "report", out / "sim" / "truth")
        hours = [
            aggregate_report.load_period(conn, plan, a, b)
            for a, b in periods.spans(t0_ms, t1_ms, "hour", plan.timezone)
        ]
    finally:
        conn.close()
    grid = aggregate_report.grid_for(plan, fig)
    dens = [h.cells / grid.cell_m**2 for h in hours]
    pos = [d[d > 0] for d in dens if (d > 0).any()]
    vmax = float(max(np.percentile(p, 99) for p in pos)) if pos else 1.0
    tz = ZoneInfo(plan.timezone)
    for h in hours:
        lt = datetime.fromtimestamp(h.t0_ms / 1000, tz)
        n_in = h.store.get("visitors")
        title = f"{plan.name}: {lt:%Y-%m-%d %H:00}–{(lt.hour + 1) % 24:02d}:00"
        if aggregate_report.too_few_visitors(n_in, h.k):  # a few people's heat: not drawn
            f = render.suppressed_figure(plan, title, f"fewer than {h.k} visitors this hour")
        else:
            f = render.heatmap_figure(
                plan,
                grid,
                h.cells,
                title,
                f"{n_in} visitors came in this hour; same colour scale for every hour",
                vmax=vmax,
            )
        render.save(f, out / "report" / f"heatmap_{lt:%H}00.png")
    return fig, truth


def _replay_all(
    plan: FloorPlan,
    sim: SimResult,
    keyfile: Path,
    addr: BrokerAddress,
    prog: Progress,
    ing: Ingestor,
    workers: int,
) -> list[ReplayResult]:
    capture = sim.out / "capture"
    total = sum(sim.wifi_frames.values()) + sum(sim.ble_frames.values())
    advance = prog.task("replay nodes → MQTT → SQLite", total)
    ctx = multiprocessing.get_context("spawn")
    results = []
    with cf.ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as pool:
        futs = [
            pool.submit(
                replay_node,
                plan.store_id,
                n.id,
                capture / n.id,
                keyfile,
                addr,
                None,
                node_boards(plan, capture, n.id),
            )
            for n in plan.nodes
        ]
        shown = 0
        deadline = time.monotonic() + REPLAY_TIMEOUT_S
        while time.monotonic() < deadline:
            _done, pending = cf.wait(futs, timeout=0.2)
            now = ing.stats.observations
            advance(now - shown)
            shown = now
            if not pending:
                break
        results = [f.result(timeout=max(deadline - time.monotonic(), 1.0)) for f in futs]
    advance(total - shown)
    return results


def _publish_aggregates(
    plan: FloorPlan, addr: BrokerAddress, db_path: Path, at_ms: int
) -> list[str]:
    """What a BI client sees at the end of the simulated opening hours: the aggregator's
    retained v1 state at that moment (closed hours, the day so far, zones, occupancy),
    published the way ``footfall aggregator`` publishes it."""
    client = make_client(addr, f"footfall-aggregator-{plan.store_id}-bi")
    connect(client, addr)
    pub = Publisher(client)
    state = RetainedState(pub)
    k = LiveSettings().k
    bi = BiPublisher(
        plan.store_id,
        plan,
        k,
        state,
        discovery=ha_discovery.for_plan(plan.store_id, plan, __version__),
    )
    bi.ha_previous(b"")  # a fresh broker holds no discovery: send it at the first tick
    conn = store_db.connect(db_path, readonly=True)
    try:
        occupancy = occupancy_payload(conn, plan, at_ms, k)
        bi.tick(conn, at_ms, occupancy)
    finally:
        conn.close()
    if bi.counts.error is not None:
        raise BrokerError(f"the aggregates were not published: {bi.counts.error}")
    pub.drain()
    client.loop_stop()
    client.disconnect()
    occupancy_topic = topics.build("occupancy", plan.store_id)
    sent = [*bi.counts.wanted, occupancy_topic, bi.discovery_topic]
    return sorted(t for t in sent if state.confirmed(t))


def default_scenario(hours: float, seed: int, start: str | None = None) -> Scenario:
    kw = {"hours": hours, "seed": seed}
    if start:
        kw["start_local"] = datetime.fromisoformat(start)  # type: ignore[assignment]
    return Scenario(**kw)  # type: ignore[arg-type]
