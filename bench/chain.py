"""The chain's centre: 1,000 stores' day of aggregates through Mosquitto into chDB.

Each store publishes what its aggregator does for a closed local day
(:mod:`heatmap.chain.simulated_stores`): 24 closed hours, the closed day, the zone
statistics of 6 zones (today so far), its occupancy and its aggregator's status: 33
messages, QoS 1, retained, as the stores' bridges carry them to the central broker.
``--publishers`` clients publish them all flat out (built before the clock starts).

Two figures per run, each on a fresh Mosquitto:

* baseline: the same messages to one plain MQTT 5 subscriber (QoS 1, acknowledged on
  receipt, nothing written): how fast the broker delivers them here;
* chain: ``footfall chain run`` (``--consumers`` clients in one shared subscription,
  chDB on a fresh directory, acknowledgement after the INSERT): from the first publish
  until every message is written (its ``--stats`` counters, read every 0.1 s).

Then, with the consumer stopped: the rows in chDB against what was published (lost =
published identities without a row, duplicated = rows read with FINAL beyond them),
and ``footfall chain report`` of the week over the 1,000 stores (its queries timed).
The median of ``--runs`` runs is printed and written to bench/baselines/chain.json
(``--save``).

``--example-week DIR`` instead writes the chain report of a simulated week of 12 stores
(one closed on its Sunday: suppressed) through the same path into DIR: the picture of
docs/chain.md.

Usage::

    python bench/chain.py [--stores 1000] [--runs 3] [--consumers 2] [--publishers 4] [--save]
    python bench/chain.py --example-week docs/img
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import date
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import paho.mqtt.client as mqtt
from rich.progress import Progress

from heatmap.aggregator.broker import (
    RunningBroker,
    free_port,
    mosquitto_config,
    start_mosquitto,
)
from heatmap.chain import chain_report
from heatmap.chain.clickhouse_store import ChainStore, ChdbBackend
from heatmap.chain.simulated_stores import store_day
from sensing.cli.progress_bar import RichProgress, progress_bar
from sensing.runtime.mqtt_link import Publisher, connect, make_client

DAY = date(2026, 11, 18)
WEEK = "2026-W47"
REPO = Path(__file__).resolve().parents[1]


MAX_INFLIGHT = [0]
"""Mosquitto's max_inflight_messages for the brokers started here (0: no limit)"""


def broker_at(workdir: Path) -> RunningBroker:
    """A fresh Mosquitto with the central broker's inflight limit (``--max-inflight``)."""
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    conf = mosquitto_config(port, workdir)
    text = conf.read_text().replace(
        "max_inflight_messages 0\n", f"max_inflight_messages {MAX_INFLIGHT[0]}\n"
    )
    conf.write_text(text)
    return start_mosquitto(workdir, conf=conf, port=port)


def build_messages(stores: int) -> list[list[tuple[str, bytes]]]:
    """Each store's day of messages."""
    return [store_day(f"store-{i:04d}", DAY, seed=i).messages for i in range(stores)]


def publish_all(
    broker: RunningBroker, per_store: list[list[tuple[str, bytes]]], publishers: int
) -> float:
    """Publish every store's messages from ``publishers`` clients at once (store i from
    client i mod publishers, in its order); the wall time until every PUBACK."""
    clients = []
    for p in range(publishers):
        c = make_client(broker.address, f"bridge-{p}", v5=True)
        connect(c, broker.address)
        clients.append(c)
    go = threading.Event()

    def run(p: int) -> None:
        pub = Publisher(clients[p], max_pending=2000)
        go.wait()
        for msgs in per_store[p::publishers]:
            for topic, payload in msgs:
                pub.publish(topic, payload, retain=True)
        pub.drain(300)

    threads = [threading.Thread(target=run, args=(p,)) for p in range(publishers)]
    for t in threads:
        t.start()
    t0 = time.perf_counter()
    go.set()
    for t in threads:
        t.join()
    dt = time.perf_counter() - t0
    for c in clients:
        c.disconnect()
        c.loop_stop()
    return dt


def baseline(
    work: Path, per_store: list[list[tuple[str, bytes]]], publishers: int, bar: Progress
) -> dict[str, float]:
    """Delivery to one plain subscriber that writes nothing."""
    n = sum(len(m) for m in per_store)
    broker = broker_at(work / "broker-baseline")
    got = [0]
    done = threading.Event()
    last = [0.0]
    task = bar.add_task("baseline: plain subscriber", total=n)

    def on_message(_c: mqtt.Client, _u: object, _m: mqtt.MQTTMessage) -> None:
        got[0] += 1
        if got[0] >= n:
            last[0] = time.perf_counter()
            done.set()

    sub = make_client(broker.address, "plain", v5=True)
    sub.on_message = on_message
    connect(sub, broker.address)
    sub.subscribe("footfall/v1/+/#", qos=1)
    time.sleep(0.3)
    try:
        t0 = time.perf_counter()
        threading.Thread(target=publish_all, args=(broker, per_store, publishers)).start()
        while not done.wait(0.1):
            bar.update(task, completed=got[0])
            if time.perf_counter() - t0 > 600:
                raise RuntimeError(f"baseline: {got[0]} of {n} in 600 s")
        bar.update(task, completed=n)
        dt = last[0] - t0
    finally:
        sub.disconnect()
        sub.loop_stop()
        broker.stop()
    return {"messages": n, "seconds": dt, "per_s": n / dt}


def chain_run(
    work: Path,
    per_store: list[list[tuple[str, bytes]]],
    publishers: int,
    consumers: int,
    bar: Progress,
) -> dict[str, Any]:
    """``footfall chain run`` into a fresh chDB; then the counts and the report."""
    n = sum(len(m) for m in per_store)
    broker = broker_at(work / "broker-chain")
    db = work / "db"
    stats = work / "stats.json"
    argv = [sys.executable, "-m", "sensing.cli.main", "chain", "run"]
    argv += ["--broker", f"127.0.0.1:{broker.address.port}", "--db", str(db)]
    argv += ["--consumers", str(consumers), "--log-every", "0.1", "--stats", str(stats)]
    err = (work / "chain.err").open("w")
    proc = subprocess.Popen(argv, stderr=err, env=dict(os.environ, MPLBACKEND="Agg"))
    task = bar.add_task(f"chain: {consumers} consumers → chDB", total=n)
    try:
        deadline = time.monotonic() + 60
        while not stats.exists():
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError(f"chain run did not start: {(work / 'chain.err').read_text()}")
            time.sleep(0.05)
        t0 = time.perf_counter()
        threading.Thread(target=publish_all, args=(broker, per_store, publishers)).start()
        s: dict[str, Any] = {}
        while True:
            with contextlib.suppress(OSError, ValueError):
                s = json.loads(stats.read_text())
            handled = s.get("accepted_total", 0) + s.get("rejected_total", 0)
            bar.update(task, completed=handled)
            if handled >= n:
                break
            if time.perf_counter() - t0 > 900:
                raise RuntimeError(f"chain: {handled} of {n} in 900 s")
            time.sleep(0.1)
        dt = time.perf_counter() - t0
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)
        err.close()
        broker.stop()
    store = ChainStore(ChdbBackend(db))
    try:
        counts = {t: store.count(t) for t in ("footfall", "zone_stats", "occupancy")}
        counts["store_status"] = store.count("store_status")
        stores = len(per_store)
        expected = {
            "footfall": stores * 25,
            "zone_stats": stores * 6,
            "occupancy": stores,
            "store_status": stores,
        }
        t1 = time.perf_counter()
        week, _paths = chain_report.report(store, WEEK, work / "report")
        report_s = time.perf_counter() - t1
    finally:
        store.close()
    return {
        "messages": n,
        "seconds": dt,
        "per_s": n / dt,
        "written": s.get("accepted_total"),
        "rejected": s.get("rejected_total"),
        "inserts": s.get("inserts"),
        "insert_s": s.get("insert_s"),
        "lost": sum(max(0, expected[t] - counts[t].rows) for t in expected),
        "duplicated": sum(max(0, counts[t].rows - expected[t]) for t in expected),
        "rows": {t: counts[t].rows for t in expected},
        "rows_stored": {t: counts[t].stored for t in expected},
        "report_query_s": week.query_s,
        "report_total_s": report_s,
        "report_stores": len(week.stores),
    }


EXAMPLE_STORES = (
    "amsterdam-centrum",
    "utrecht-hoog-catharijne",
    "rotterdam-zuidplein",
    "den-haag-spui",
    "eindhoven",
    "groningen",
    "zwolle",
    "maastricht",
    "breda",
    "nijmegen",
    "haarlem",
    "leiden",
)


def example_week(out: Path) -> Path:
    """The chain report of a simulated week of 12 stores (zwolle closed on Sunday)."""
    from datetime import timedelta

    monday = date(2026, 11, 16)
    per_store = []
    for i, s in enumerate(EXAMPLE_STORES):
        msgs = []
        for d in range(7):
            scale = 0.0 if (s == "zwolle" and d == 6) else 1.0 + 0.15 * i
            msgs += store_day(s, monday + timedelta(days=d), scale=scale).messages
        per_store.append(msgs)
    n = sum(len(m) for m in per_store)
    with tempfile.TemporaryDirectory(prefix="bench-chain-") as tmp:
        work = Path(tmp)
        broker = broker_at(work / "broker")
        stats = work / "stats.json"
        argv = [sys.executable, "-m", "sensing.cli.main", "chain", "run", "--db", str(work / "db")]
        argv += ["--broker", f"127.0.0.1:{broker.address.port}", "--log-every", "0.2"]
        proc = subprocess.Popen([*argv, "--stats", str(stats)], stderr=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 120
            while not stats.exists() and time.monotonic() < deadline:
                time.sleep(0.05)
            publish_all(broker, per_store, 2)
            while time.monotonic() < deadline:
                with contextlib.suppress(OSError, ValueError):
                    if json.loads(stats.read_text())["accepted_total"] >= n:
                        break
                time.sleep(0.1)
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(60)
            broker.stop()
        store = ChainStore(ChdbBackend(work / "db"))
        try:
            _week, paths = chain_report.report(store, WEEK, work / "report")
        finally:
            store.close()
        out.mkdir(parents=True, exist_ok=True)
        png = out / "chain_week.png"
        png.write_bytes(paths[-1].read_bytes())
    return png


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--stores", type=int, default=1000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--consumers", type=int, default=2)
    ap.add_argument("--publishers", type=int, default=4)
    ap.add_argument(
        "--max-inflight",
        type=int,
        default=100,
        help="Mosquitto's max_inflight_messages (%(default)s, as the central broker's "
        "config: sensing/provision/central_broker.py; 0: no limit)",
    )
    ap.add_argument("--save", action="store_true", help="write bench/baselines/chain.json")
    ap.add_argument("--example-week", help="write the example week's chain_week.png here")
    a = ap.parse_args()
    MAX_INFLIGHT[0] = a.max_inflight
    if a.example_week:
        print(f"wrote {example_week(Path(a.example_week))}")
        return 0
    t = time.perf_counter()
    per_store = build_messages(a.stores)
    print(
        f"{a.stores} stores × {len(per_store[0])} messages = "
        f"{sum(len(m) for m in per_store)} built in {time.perf_counter() - t:.1f} s",
        flush=True,
    )
    runs = []
    with progress_bar(True) as shown:
        assert isinstance(shown, RichProgress)
        bar = shown.bar  # the CLI's own rich bar
        for i in range(a.runs):
            with tempfile.TemporaryDirectory(prefix="bench-chain-") as tmp:
                base = baseline(Path(tmp), per_store, a.publishers, bar)
                ch = chain_run(Path(tmp), per_store, a.publishers, a.consumers, bar)
            runs.append({"baseline": base, "chain": ch})
            bar.console.print(
                f"run {i + 1}: baseline {base['per_s']:,.0f} msg/s, chain {ch['per_s']:,.0f} "
                f"aggregates/s ({ch['per_s'] / base['per_s']:.2f} of it), lost {ch['lost']}, "
                f"duplicated {ch['duplicated']}, report queries {ch['report_query_s'] * 1000:.0f}"
                f" ms (report {ch['report_total_s']:.1f} s)"
            )

    def med(f: Any) -> float:
        return float(statistics.median(f(r) for r in runs))

    code = subprocess.run(
        ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    summary = {
        "code": code,
        "stores": a.stores,
        "messages_per_store": len(per_store[0]),
        "messages": sum(len(m) for m in per_store),
        "consumers": a.consumers,
        "publishers": a.publishers,
        "max_inflight_messages": a.max_inflight,
        "cpus": os.cpu_count(),
        "runs": a.runs,
        "baseline_per_s": med(lambda r: r["baseline"]["per_s"]),
        "chain_per_s": med(lambda r: r["chain"]["per_s"]),
        "ratio": med(lambda r: r["chain"]["per_s"] / r["baseline"]["per_s"]),
        "lost": max(r["chain"]["lost"] for r in runs),
        "duplicated": max(r["chain"]["duplicated"] for r in runs),
        "report_query_s": med(lambda r: r["chain"]["report_query_s"]),
        "report_total_s": med(lambda r: r["chain"]["report_total_s"]),
        "each_run": runs,
    }
    print(
        f"median of {a.runs}: chain {summary['chain_per_s']:,.0f} aggregates/s, baseline "
        f"{summary['baseline_per_s']:,.0f} msg/s (ratio {summary['ratio']:.2f}); "
        f"lost={summary['lost']} duplicated={summary['duplicated']}; report queries "
        f"{summary['report_query_s'] * 1000:.0f} ms, report {summary['report_total_s']:.1f} s"
    )
    if a.save:
        out = REPO / "bench" / "baselines" / "chain.json"
        out.write_text(json.dumps(summary, indent=2) + "\n")
        print(f"saved {out}")
    return 0 if summary["lost"] == 0 and summary["duplicated"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
