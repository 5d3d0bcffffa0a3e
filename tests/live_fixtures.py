"""Helpers for the live aggregator's tests: store days built through the real pipeline,
database copies, the live processor on a data clock, and its aggregates read back.

A store day: :func:`heatmap.simulate.store_day.simulate` writes capture files, one
replaying node daemon per ceiling node publishes them (QoS 1) to a private
Mosquitto on loopback, and a real :class:`~heatmap.aggregator.ingest.Ingestor`
stores them in SQLite. One node's obs messages can be recorded on the way (the
exact bytes its daemon published), to be published again later as a spool would
after an outage.

Run as a script (``python live_fixtures.py DB T_FROM T_TO``) it steps a
:class:`LiveProcessor` over ``DB`` on the data clock: the kill -9 test's child.
"""

from __future__ import annotations

import concurrent.futures as cf
import json
import logging
import multiprocessing
import os
import shutil
import sqlite3
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # run as a script (the kill -9 test's child)
    sys.path.insert(0, str(REPO))

from heatmap.aggregator.broker import RunningBroker, start_mosquitto  # noqa: E402
from heatmap.aggregator.ingest import Ingestor  # noqa: E402
from heatmap.aggregator.live.processor import LiveProcessor  # noqa: E402
from heatmap.aggregator.live.settings import LiveSettings  # noqa: E402
from heatmap.simulate.demo import KEY_ROLL_HOUR, node_boards  # noqa: E402
from heatmap.simulate.scenario import Scenario  # noqa: E402
from heatmap.simulate.store_day import SimResult, simulate  # noqa: E402
from heatmap.spatial.floorplan import FloorPlan, load_default  # noqa: E402
from sensing.node.replay import replay_node  # noqa: E402
from sensing.privacy.key_file import KeyFile  # noqa: E402
from sensing.runtime.mqtt_link import BrokerAddress, connect, make_client  # noqa: E402
from sensing.wire import topics  # noqa: E402

STEP_MS = 300_000
"""the data clock advances one default interval per step (as a daemon polling every 5 min)"""
AggKey = tuple[str, str, str]
"""(kind, period, entity)"""


@dataclass
class StoreDay:
    db: Path
    plan: FloorPlan
    sc: Scenario
    sim: SimResult
    recorded: list[tuple[str, bytes]] = field(default_factory=list)
    """obs messages of the recorded node, (topic, payload), in the order published"""

    @property
    def t0_ms(self) -> int:
        return self.sc.t0_ms

    @property
    def t1_ms(self) -> int:
        return self.sc.t0_ms + self.sc.duration_s * 1000


class _Recorder:
    def __init__(self, addr: BrokerAddress, topic: str) -> None:
        self.messages: list[tuple[str, bytes]] = []
        self._lock = threading.Lock()
        self.client = make_client(addr, f"live-test-recorder-{os.getpid()}-{id(self)}")
        self.client.on_message = self._on_message
        subscribed = threading.Event()
        self.client.on_subscribe = lambda *_a: subscribed.set()
        connect(self.client, addr)
        self.client.subscribe(topic, qos=1)
        if not subscribed.wait(10):
            raise AssertionError(f"no SUBACK for {topic}")

    def _on_message(self, _c: Any, _u: object, m: Any) -> None:
        with self._lock:
            self.messages.append((m.topic, bytes(m.payload)))

    def settle(self, n: int, max_s: float = 30.0) -> list[tuple[str, bytes]]:
        """Wait (bounded) until ``n`` messages arrived, then stop listening."""
        deadline = time.monotonic() + max_s
        while time.monotonic() < deadline and len(self.messages) < n:
            time.sleep(0.05)
        self.client.loop_stop()
        self.client.disconnect()
        with self._lock:
            return list(self.messages)


def start_broker(workdir: Path) -> RunningBroker:
    """A private Mosquitto on a free loopback port (one per store day: no session of
    another test's aggregator is queued on it)."""
    return start_mosquitto(workdir)


IN_FLIGHT_S = 12.0
"""a batch received less than this before an interval is located counts as late for it
(``processor.IN_FLIGHT_MS``, 10 s): the store day is handed over only this long after
its last batch, so that every run over it sees the same batches as on time"""


def build_store_day(
    out: Path,
    sc: Scenario,
    record_node: str | None = None,
    workers: int = 2,
    settle_s: float = IN_FLIGHT_S,
) -> StoreDay:
    """Simulate ``sc`` in the bundled store and ingest it through the real pipeline
    into ``out/store.db`` (checkpointed: the file alone holds everything), and return
    ``settle_s`` after its last batch was received."""
    plan = load_default()
    out.mkdir(parents=True, exist_ok=True)
    sim = simulate(plan, sc, out / "sim")
    keyfile = out / "keys" / "store.key"
    keyfile.parent.mkdir()
    KeyFile.provision(keyfile, sc.start_local.date(), KEY_ROLL_HOUR, plan.timezone)
    db = out / "store.db"
    broker = start_broker(out / "broker")
    rec: _Recorder | None = None
    try:
        addr = broker.address
        ing = Ingestor(plan.store_id, str(db), addr, f"live-test-aggregator-{os.getpid()}")
        ing.start()
        if record_node is not None:
            rec = _Recorder(addr, topics.obs_topic(plan.store_id, record_node))
        capture = sim.out / "capture"
        ctx = multiprocessing.get_context("spawn")
        with cf.ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as pool:
            futs = {
                n.id: pool.submit(
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
            }
            results = {k: f.result(timeout=300) for k, f in futs.items()}
        if not ing.wait_complete({n.id for n in plan.nodes}, timeout_s=120):
            raise AssertionError("the aggregator did not receive every batch the nodes published")
        ing.stop()
        recorded: list[tuple[str, bytes]] = []
        if rec is not None and record_node is not None:
            recorded = rec.settle(results[record_node].batches)
            rec = None
            assert len(recorded) == results[record_node].batches, "recorder missed batches"
    finally:
        if rec is not None:
            rec.settle(0, 0)
        broker.stop()
        shutil.rmtree(keyfile.parent, ignore_errors=True)
    checkpoint(db)
    c = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        last_s = c.execute("SELECT MAX(received_ms) FROM batches").fetchone()[0] / 1000
    finally:
        c.close()
    time.sleep(min(max(last_s + settle_s - time.time(), 0.0), settle_s))
    return StoreDay(db, plan, sc, sim, recorded)


def checkpoint(db: Path) -> None:
    """Fold the WAL into the database file (no other connection open)."""
    c = sqlite3.connect(db)
    try:
        c.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        c.close()


def copy_db(src: Path, dst: Path) -> Path:
    """A private copy of a checkpointed store database."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    checkpoint(src)
    shutil.copyfile(src, dst)
    return dst


def run_live(
    db: Path,
    plan: FloorPlan,
    t_from_ms: int,
    t_to_ms: int,
    settings: LiveSettings | None = None,
    step_ms: int = STEP_MS,
    proc: LiveProcessor | None = None,
) -> LiveProcessor:
    """Step a live processor over ``db`` with the data clock going from ``t_from`` to
    ``t_to`` (inclusive) in ``step_ms`` steps; returns it (open: the caller closes)."""
    p = proc or LiveProcessor(db, plan, settings or LiveSettings())
    now = t_from_ms
    while now <= t_to_ms:
        p.step(now)
        now += step_ms
    return p


def live_to(
    db: Path, plan: FloorPlan, t_from_ms: int, t_to_ms: int, step_ms: int = STEP_MS
) -> float:
    """:func:`run_live` and close; the processor's CPU seconds."""
    p = run_live(db, plan, t_from_ms, t_to_ms, step_ms=step_ms)
    try:
        return p.cpu_s_total
    finally:
        p.close()


def aggregates(db: Path, unit: str | None = None) -> dict[AggKey, dict[str, Any]]:
    """Every stored aggregate's payload by (kind, period, entity); ``unit``: only those
    of slot, hour or day."""
    c = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        rows = c.execute("SELECT kind, period, entity, payload FROM aggregates").fetchall()
    finally:
        c.close()
    out = {(k, p, e): json.loads(j) for k, p, e, j in rows}
    return {key: v for key, v in out.items() if unit is None or v.get("unit") == unit}


def period_aggregates(db: Path, t0_ms: int, t1_ms: int) -> dict[tuple[str, str], dict[str, Any]]:
    """The aggregates of the period [t0, t1) by (kind, entity)."""
    c = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        rows = c.execute(
            "SELECT kind, entity, payload FROM aggregates WHERE t0_ms = ? AND t1_ms = ?",
            (t0_ms, t1_ms),
        ).fetchall()
    finally:
        c.close()
    return {(k, e): json.loads(j) for k, e, j in rows}


ONE_THREAD = {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
"""the processor locates on one thread (as the daemon's live thread should: OpenBLAS's own
threads spin against each other on a small machine, ×4 CPU measured on 2 cores)"""


def spawn_live(
    db: Path, t_from_ms: int, t_to_ms: int, step_ms: int = STEP_MS, log: Path | None = None
) -> subprocess.Popen[bytes]:
    """This file as a script in a child process: the live processor over ``db`` from
    ``t_from`` to ``t_to`` on the data clock (stdout: its CPU seconds)."""
    err = subprocess.DEVNULL if log is None else log.open("ab")
    return subprocess.Popen(
        [sys.executable, __file__, str(db), str(t_from_ms), str(t_to_ms), str(step_ms)],
        stdout=subprocess.PIPE,
        stderr=err,
        cwd=REPO,
        env={**os.environ, **ONE_THREAD, "PYTHONWARNINGS": "ignore"},
    )


def live_in_child(
    db: Path, t_from_ms: int, t_to_ms: int, step_ms: int = STEP_MS, timeout_s: float = 120.0
) -> float:
    """:func:`spawn_live` to its end (bounded); the processor's CPU seconds. Its log
    goes to ``live.log`` beside the database."""
    proc = spawn_live(db, t_from_ms, t_to_ms, step_ms, log=db.parent / "live.log")
    try:
        out, _ = proc.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        raise
    if proc.returncode != 0:
        tail = (db.parent / "live.log").read_text(errors="replace").splitlines()[-12:]
        raise AssertionError(f"live processor exited with {proc.returncode}:\n" + "\n".join(tail))
    return float(out.decode().strip() or 0.0)


def _main(argv: list[str]) -> int:
    """``live_fixtures.py DB T_FROM T_TO [STEP]``: the live processor over DB on the
    data clock; prints its CPU seconds."""
    db, t_from, t_to = Path(argv[0]), int(argv[1]), int(argv[2])
    step = int(argv[3]) if len(argv) > 3 else STEP_MS
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    logging.info("live processor over %s, data clock %d → %d", db, t_from, t_to)
    print(live_to(db, load_default(), t_from, t_to, step), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(_main(sys.argv[1:]))
