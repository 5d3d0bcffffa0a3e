"""``footfall demo``: a simulated store day through the real pipeline.

simulate (capture files + truth) → one replaying node per ceiling node (real
decoders, pseudonymizer, batching, QoS 1 publishing) → private broker → aggregator
ingest (schema validation, dedup, SQLite WAL) → localization and analytics →
heatmap PNGs, summary → k-anonymous aggregates published back to the broker.
"""

from __future__ import annotations

import concurrent.futures as cf
import multiprocessing
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from firmware_bridge.errors import BrokerError
from heatmap.aggregator import bi_publish
from heatmap.aggregator.broker import RunningBroker, start_private_broker
from heatmap.aggregator.ingest import Ingestor
from heatmap.report.store_report import Report, analyze
from heatmap.simulate.scenario import Scenario
from heatmap.simulate.store_day import SimResult, simulate
from heatmap.spatial.floorplan import FloorPlan, load_default
from sensing.node.replay import ReplayResult, replay_node
from sensing.privacy.key_file import KeyFile
from sensing.runtime.mqtt_link import BrokerAddress, Publisher, connect, make_client
from sensing.runtime.progress import NoProgress, Progress

REPLAY_TIMEOUT_S = 900.0
KEY_ROLL_HOUR = 4
"""local hour the pseudonym key rolls (store closed)"""


@dataclass
class DemoResult:
    out: Path
    broker_kind: str
    sim: SimResult
    replays: list[ReplayResult]
    report: Report
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
    sc = scenario or Scenario()
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
        report = analyze(
            plan,
            db_path,
            sc.t0_ms,
            t1_ms,
            out / "report",
            truth_dir=out / "sim" / "truth",
            progress=prog,
            cell_m=cell_m,
        )
        secs["analyze"] = time.monotonic() - t
        published = _publish_aggregates(plan, addr, report)
    finally:
        shutil.rmtree(keydir, ignore_errors=True)  # the simulated nodes are gone: so is their key
        if running is not None:
            running.stop()
    return DemoResult(out, kind, sim, replays, report, published, secs)


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


def _publish_aggregates(plan: FloorPlan, addr: BrokerAddress, rep: Report) -> list[str]:
    client = make_client(addr, f"footfall-aggregator-{plan.store_id}-bi")
    connect(client, addr)
    pub = Publisher(client)
    k = 5
    period = rep.period.split("/")[0][:13].replace(":", "")
    topics = [
        bi_publish.publish(
            pub,
            plan.store_id,
            "footfall",
            period,
            bi_publish.footfall_payload(
                rep.period, k, rep.door_in, rep.door_out, rep.passersby_est, rep.mean_dwell_s
            ),
        )
    ]
    for z in plan.zones:
        topics.append(
            bi_publish.publish(
                pub,
                plan.store_id,
                "zone_stats",
                z.id,
                bi_publish.zone_payload(
                    rep.period,
                    k,
                    rep.zone_devices.get(z.id, 0),
                    rep.zone_person_seconds.get(z.id, 0.0),
                ),
            )
        )
    pub.drain()
    client.loop_stop()
    client.disconnect()
    return topics


def default_scenario(hours: float, seed: int, start: str | None = None) -> Scenario:
    kw = {"hours": hours, "seed": seed}
    if start:
        kw["start_local"] = datetime.fromisoformat(start)  # type: ignore[assignment]
    return Scenario(**kw)  # type: ignore[arg-type]
