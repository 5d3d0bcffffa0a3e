"""Aggregator ingest throughput: publisher processes → real Mosquitto → Ingestor → SQLite.

Each of ``--publishers`` processes plays one ceiling node: it builds ``--batches``
obs payloads of ``--rows`` observations each (pseudonyms from a pool of
``--devices``, RSSI, bands, flags, a quarter with an IE signature, one batch per
second of capture time) *before* the clock starts, then publishes them all at
QoS 1 as fast as the broker acknowledges. The aggregator's :class:`Ingestor`
subscribes with a persistent session and writes SQLite (WAL).

The clock runs from the start signal until the last batch is *committed* (read
from the database by a second connection, as analytics would). A run passes
only if nothing was lost or doubled: stored observations == published, batches
== published, no rejects. The table shows each run and the median.

Two ways to load it:

* flat out (default): the publishers are done in a fraction of a second, the
  broker queues the rest for the aggregator's session, and the figure is how
  fast the aggregator drains it: its capacity;
* ``--rate R``: the publishers together offer R observations/s, evenly paced;
  the aggregator keeps up if it stores them at that rate and is done (the last
  batch committed) shortly after the last one was published (``lag``).

``--full-schema`` validates obs batches with jsonschema instead of the
hand-written check (:func:`sensing.wire.payloads.check_obs`), to show what that costs.

Usage::

    python bench/ingest.py [--publishers 4] [--batches 250] [--rows 500] [--runs 5]
                           [--rate 50000] [--full-schema]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import random
import resource
import sqlite3
import statistics
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from multiprocessing.synchronize import Event
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from heatmap.aggregator.broker import free_port, mosquitto_config, start_mosquitto
from heatmap.aggregator.ingest import Ingestor
from sensing.runtime.mqtt_link import BrokerAddress, Publisher, connect, make_client
from sensing.wire import payloads, topics

T0_MS = 1_795_000_000_000
BANDS = ("ble", "ble", "ble", "wifi24", "wifi5")


def obs_batches(
    node: str, n_batches: int, rows: int, devices: int, seed: int, first_seq: int = 0
) -> list[bytes]:
    """``n_batches`` encoded obs payloads of node ``node``, one per second from T0_MS."""
    rng = random.Random(seed)
    pids = [f"{rng.getrandbits(64):016x}" for _ in range(devices)]
    out = []
    for b in range(n_batches):
        seq = first_seq + b
        obs: list[list[Any]] = []
        for i in range(rows):
            row: list[Any] = [
                i * 1000 // rows,
                rng.choice(pids),
                rng.randint(-95, -35),
                rng.choice(BANDS),
                rng.randint(0, 0xFF),
            ]
            if i % 4 == 0:
                row.append(f"{rng.getrandbits(32):08x}")
            obs.append(row)
        p = {"v": 1, "node": node, "seq": seq, "t0": T0_MS + seq * 1000, "epoch": 0, "obs": obs}
        out.append(payloads.encode(p))
    return out


def publisher(
    host: str,
    port: int,
    store: str,
    node: str,
    n_batches: int,
    rows: int,
    devices: int,
    seed: int,
    ready: Any,
    go: Event,
    done: Any,
    rate: float = 0.0,
) -> None:
    """One node process: build payloads, wait for ``go``, publish QoS 1 (``rate`` > 0:
    that many observations/s, evenly paced), drain."""
    addr = BrokerAddress(host, port)
    batches = obs_batches(node, n_batches, rows, devices, seed)
    c = make_client(addr, f"bench-pub-{store}-{node}")
    connect(c, addr)
    pub = Publisher(c)
    topic = topics.obs_topic(store, node)
    ready.put(node)
    go.wait(60)
    t = time.perf_counter()
    every = rows / rate if rate > 0 else 0.0
    for i, raw in enumerate(batches):
        if every:
            wait = t + i * every - time.perf_counter()
            if wait > 0:
                time.sleep(wait)
        pub.publish(topic, raw)
    pub.drain(120)
    done.put((node, len(batches), time.perf_counter() - t))
    c.loop_stop()
    c.disconnect()


@dataclass
class RunResult:
    obs_per_s: float
    msgs_per_s: float
    seconds: float
    publish_seconds: float
    lag_s: float
    """last batch committed minus last batch published, s"""
    cpu_us_per_obs: float
    """CPU time of the aggregator process (all its threads) per observation stored, µs"""
    observations: int
    stored: int
    batches: int
    batches_stored: int
    duplicates: int
    rejects: dict[str, int]

    @property
    def ok(self) -> bool:
        return (
            self.stored == self.observations
            and self.batches_stored == self.batches
            and self.duplicates == 0
            and not self.rejects
        )


def committed_batches(db_path: Path) -> int:
    try:
        db = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=5)
        try:
            return int(db.execute("SELECT COUNT(*) FROM batches").fetchone()[0])
        finally:
            db.close()
    except sqlite3.Error:
        return 0


def one_run(
    addr: BrokerAddress,
    workdir: Path,
    run: int,
    n_pub: int,
    n_batches: int,
    rows: int,
    devices: int,
    timeout_s: float,
    rate: float = 0.0,
) -> RunResult:
    store = f"bench{run}"
    db_path = workdir / f"run{run}.db"
    ing = Ingestor(store, str(db_path), addr, f"bench-aggregator-{run}")
    ing.start()
    ctx = mp.get_context("spawn")
    ready, done = ctx.Queue(), ctx.Queue()
    go = ctx.Event()
    procs = [
        ctx.Process(
            target=publisher,
            args=(addr.host, addr.port, store, f"n{i}", n_batches, rows, devices, run * 100 + i),
            kwargs={"ready": ready, "go": go, "done": done, "rate": rate / n_pub},
        )
        for i in range(n_pub)
    ]
    for p in procs:
        p.start()
    for _ in procs:
        ready.get(timeout=120)
    total_batches = n_pub * n_batches
    t0 = time.perf_counter()
    cpu0 = _cpu_s()
    go.set()
    deadline = t0 + timeout_s
    while time.perf_counter() < deadline and committed_batches(db_path) < total_batches:
        time.sleep(0.02)
    seconds = time.perf_counter() - t0
    cpu = _cpu_s() - cpu0
    pub_s = max(done.get(timeout=60)[2] for _ in procs)
    lag = max(seconds - pub_s, 0.0)
    for p in procs:
        p.join(timeout=30)
    ing.stop()
    db = sqlite3.connect(db_path)
    stored = int(db.execute("SELECT COUNT(*) FROM obs").fetchone()[0])
    nb = int(db.execute("SELECT COUNT(*) FROM batches").fetchone()[0])
    db.close()
    rejects = {k: v for k, v in ing.rejects.items() if v}
    rejects.update({k: v for k, v in _db_rejects(db_path).items() if v})
    total = total_batches * rows
    return RunResult(
        total / seconds,
        total_batches / seconds,
        seconds,
        pub_s,
        lag,
        cpu / (total_batches * rows) * 1e6,
        total,
        stored,
        total_batches,
        nb,
        ing.stats.duplicates,
        rejects,
    )


def _cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _db_rejects(db_path: Path) -> dict[str, int]:
    db = sqlite3.connect(db_path)
    try:
        return dict(db.execute("SELECT reason, n FROM rejects"))
    finally:
        db.close()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--publishers", type=int, default=4, help="publisher processes (nodes)")
    ap.add_argument("--batches", type=int, default=250, help="obs batches per publisher")
    ap.add_argument("--rows", type=int, default=500, help="observations per batch")
    ap.add_argument("--devices", type=int, default=3000, help="distinct pseudonyms")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--timeout", type=float, default=300.0, help="per run, s")
    ap.add_argument("--rate", type=float, default=0.0, help="offered obs/s (default: flat out)")
    ap.add_argument("--full-schema", action="store_true", help="obs through jsonschema")
    ap.add_argument(
        "--broker-inflight",
        type=int,
        default=0,
        help="mosquitto's max_inflight_messages (default 0: unlimited; mosquitto's own is 20)",
    )
    ap.add_argument("--json", help="also write the results here")
    a = ap.parse_args(argv)
    if a.full_schema:
        payloads.check_obs = lambda obj: payloads.validate("obs", obj)
    results: list[RunResult] = []
    with tempfile.TemporaryDirectory(prefix="footfall-bench-ingest-") as tmp:
        work = Path(tmp)
        conf = None
        port = free_port()
        if a.broker_inflight:
            (work / "broker").mkdir(parents=True)
            extra = f"max_inflight_messages {a.broker_inflight}\n"
            conf = mosquitto_config(port, work / "broker", extra=extra)
        broker = start_mosquitto(work / "broker", conf=conf, port=port)
        try:
            for run in range(a.runs):
                r = one_run(
                    broker.address,
                    work,
                    run,
                    a.publishers,
                    a.batches,
                    a.rows,
                    a.devices,
                    a.timeout,
                    a.rate,
                )
                results.append(r)
                print(
                    f"run {run}: {r.obs_per_s:>9,.0f} obs/s  {r.msgs_per_s:>6,.0f} batches/s  "
                    f"{r.seconds:5.2f} s (publishers done in {r.publish_seconds:5.2f} s, "
                    f"lag {r.lag_s:4.2f} s)  {r.cpu_us_per_obs:4.2f} µs CPU/obs  "
                    f"stored {r.stored:,}/{r.observations:,}  dup {r.duplicates}  "
                    f"rejects {r.rejects or 0}  {'ok' if r.ok else 'LOSS'}",
                    flush=True,
                )
                (work / f"run{run}.db").unlink(missing_ok=True)
        finally:
            broker.stop()
    med = statistics.median(r.obs_per_s for r in results)
    offered = f"offered {a.rate:,.0f} obs/s" if a.rate else "flat out"
    print(
        f"median over {len(results)} runs: {med:,.0f} observations/s stored, {offered}, "
        f"median lag {statistics.median(r.lag_s for r in results):.2f} s, "
        f"{statistics.median(r.cpu_us_per_obs for r in results):.2f} µs aggregator CPU/obs "
        f"({a.publishers} publishers × {a.batches} batches × {a.rows} rows"
        f"{', jsonschema' if a.full_schema else ''}); goal ≥ 50,000; "
        f"{'nothing lost' if all(r.ok for r in results) else 'LOSS IN SOME RUN'}"
    )
    if a.json:
        Path(a.json).write_text(
            json.dumps(
                {"args": vars(a), "median_obs_per_s": med, "runs": [asdict(r) for r in results]},
                indent=2,
            )
        )
    return 0 if all(r.ok for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
