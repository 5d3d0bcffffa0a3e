"""Robustness of the aggregator's input path: structure-aware hostile MQTT payloads
through the real ingest code.

A seeded generator makes valid payloads of every inbound kind (obs batches, node
status, door and floor events) and mutates most of them the way an attacker or a
broken node would: nesting up to 100,000 deep, invalid UTF-8 (and a BOM, lone
surrogate escapes), numbers of up to 100,000 digits or beyond a double, ``NaN`` and
``Infinity`` tokens, times far in the future or before 2010, wrong types anywhere
(``1.0`` for an integer, ``true``, ``null``, objects), truncated and spliced JSON,
duplicate keys, missing and extra keys, giant arrays, oversize payloads, reused
sequence numbers, a payload's node differing from its topic's, and bad topics
(another store, outbound kinds, ids with a newline or a wildcard). About one
payload in five goes unmutated.

Each payload goes through :meth:`IngestWriter.handle` (validate, then store in a
real SQLite file, committed every 200 messages) exactly as the aggregator's ingest
threads call it. A *crash* is any exception out of ``handle`` or ``commit``. At the
end every payload must be accounted for (accepted, or rejected and counted by a
reason of ``REJECT_REASONS``), the rejects committed to the database must equal
those counted, and the aggregator status built from the counters must validate
against its schema (checked every 50,000 payloads too).

``--mqtt N`` also sends N payloads (topic mutations left out: a topic the
aggregator does not subscribe never reaches it) through a real Mosquitto into a
real :class:`~heatmap.aggregator.ingest.Ingestor`, which must handle all of them
and stay up.

Usage::

    python bench/hostile.py [--count 1000000] [--seed 1] [--mqtt 20000] [--json FILE]

Prints a table of outcomes by reason and the rate in payloads/s; exits 1 if
anything crashed or went unaccounted.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
import traceback
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hostile_generator import HOUR_MS, NODES, STORE, Generator

from heatmap.aggregator import store_db
from heatmap.aggregator.ingest_stats import REJECT_REASONS, IngestStats
from heatmap.aggregator.ingest_writer import IngestWriter
from heatmap.aggregator.status import StatusInputs, node_states, status_payload
from sensing.wire import payloads

COMMIT_EVERY = 200
STATUS_EVERY = 50_000


# ---------------------------------------------------------------- runs


def status_ok(w: IngestWriter, now_ms: int, queue_depth: int = 0) -> bool:
    """The aggregator status made from ``w``'s counters validates against its schema."""
    snap = w.snapshot()
    p = status_payload(
        StatusInputs(
            now_ms=now_ms,
            version="bench",
            uptime_s=1.0,
            stats=snap.stats,
            previous=IngestStats(),
            window_s=1.0,
            rejects=snap.rejects,
            nodes=node_states(snap.publishers, snap.node_status, NODES, now_ms, 60.0),
            queue_depth=queue_depth,
            db_bytes=0,
            wal_bytes=0,
            schema_version=store_db.SCHEMA_VERSION,
            retention_hours=24.0,
            retention=None,
            retention_ran_ms=None,
        )
    )
    try:
        payloads.validate(
            "aggregator_status", payloads.decode("aggregator_status", payloads.encode(p))
        )
    except Exception as e:
        print(f"status invalid: {e}", file=sys.stderr)
        return False
    return True


def run_direct(count: int, seed: int, db: Path) -> dict[str, Any]:
    """``count`` payloads through :meth:`IngestWriter.handle` into ``db``."""
    now_ms = int(time.time() * 1000)
    w = IngestWriter(STORE, str(db), expire_before=lambda: now_ms - 24 * HOUR_MS)
    gen = Generator(random.Random(seed), now_ms)
    by_mutation: dict[str, Counter[str]] = {}
    crashes: list[str] = []
    statuses_ok = True
    gen_s = 0.0
    t_start = time.perf_counter()
    for i in range(count):
        t = time.perf_counter()
        topic, raw, mname = gen.payload()
        gen_s += time.perf_counter() - t
        before = dict(w.rejects)
        try:
            w.handle(topic, raw)
            if (i + 1) % COMMIT_EVERY == 0:
                w.commit()
        except BaseException as e:
            if len(crashes) < 5:
                crashes.append(f"{mname} {topic!r} {raw[:80]!r}: {traceback.format_exc()}")
            else:
                crashes.append(repr(e))
        got = [r for r, n in w.rejects.items() if n != before.get(r, 0)]
        by_mutation.setdefault(mname, Counter())[got[0] if got else "accepted"] += 1
        if (i + 1) % STATUS_EVERY == 0:
            statuses_ok &= status_ok(w, now_ms)
            print(
                f"  {i + 1:>9,} payloads, {(i + 1) / (time.perf_counter() - t_start):,.0f}/s",
                flush=True,
            )
    w.commit()
    seconds = time.perf_counter() - t_start
    statuses_ok &= status_ok(w, now_ms)
    rejects = {r: n for r, n in sorted(w.rejects.items()) if n}
    db_rejects = w.db.rejects()
    stats = w.stats
    w.db.close()
    accepted = count - sum(rejects.values())
    return {
        "payloads": count,
        "seed": seed,
        "seconds": round(seconds, 2),
        "payloads_per_s": round(count / seconds),
        "handle_payloads_per_s": round(count / max(seconds - gen_s, 1e-9)),
        "crashes": len(crashes),
        "crash_samples": crashes[:5],
        "accepted": accepted,
        "stored_batches": stats.stored,
        "duplicates": stats.duplicates,
        "expired": stats.expired,
        "messages_counted": stats.messages,
        "rejects": rejects,
        "db_rejects": db_rejects,
        "unknown_reasons": sorted(set(rejects) - set(REJECT_REASONS)),
        "status_valid": statuses_ok,
        "by_mutation": {m: dict(c) for m, c in sorted(by_mutation.items())},
    }


def run_mqtt(count: int, seed: int, work: Path, timeout_s: float) -> dict[str, Any]:
    """``count`` payloads (no topic mutations) through a real Mosquitto into an Ingestor."""
    from heatmap.aggregator.broker import start_mosquitto
    from heatmap.aggregator.ingest import Ingestor
    from sensing.runtime.mqtt_link import connect, make_client

    now_ms = int(time.time() * 1000)
    gen = Generator(random.Random(seed + 1), now_ms, topic_mutations=False)
    broker = start_mosquitto(work / "broker")
    try:
        ing = Ingestor(STORE, str(work / "mqtt.db"), broker.address, "bench-hostile-aggregator")
        ing.start()
        pub = make_client(broker.address, "bench-hostile-publisher")
        connect(pub, broker.address)
        t_start = time.perf_counter()
        statuses_ok = True
        next_status = time.monotonic() + 1.0
        for i in range(count):
            topic, raw, _ = gen.payload()
            info = pub.publish(topic, raw, qos=1)
            if i % 500 == 499:
                info.wait_for_publish(timeout=60)
            if time.monotonic() >= next_status:
                statuses_ok &= status_ok(ing, now_ms, ing.queue_depth)
                next_status = time.monotonic() + 1.0
        deadline = time.monotonic() + timeout_s
        while ing.stats.committed_messages < count and time.monotonic() < deadline:
            if ing.error is not None:
                break
            time.sleep(0.05)
        seconds = time.perf_counter() - t_start
        statuses_ok &= status_ok(ing, now_ms)
        handled = ing.stats.committed_messages
        error = repr(ing.error) if ing.error is not None else None
        pub.disconnect()
        pub.loop_stop()
        ing.stop()
        rejects = {r: n for r, n in sorted(ing.rejects.items()) if n}
    finally:
        broker.stop()
    return {
        "payloads": count,
        "handled": handled,
        "seconds": round(seconds, 2),
        "payloads_per_s": round(handled / seconds),
        "error": error,
        "accepted": handled - sum(rejects.values()),
        "rejects": rejects,
        "status_valid": statuses_ok,
    }


def print_table(title: str, res: dict[str, Any]) -> None:
    n = res["payloads"]
    print(f"\n{title}: {n:,} payloads in {res['seconds']:.1f} s = {res['payloads_per_s']:,}/s")
    rows = [("accepted", res["accepted"]), *sorted(res["rejects"].items(), key=lambda x: -x[1])]
    print(f"  {'outcome':<16} {'payloads':>10} {'share':>7}")
    for name, k in rows:
        print(f"  {name:<16} {k:>10,} {k / max(n, 1):>7.2%}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--count", type=int, default=1_000_000, help="payloads through IngestWriter")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--mqtt", type=int, default=0, help="payloads also through Mosquitto")
    ap.add_argument("--mqtt-timeout", type=float, default=600.0, help="s")
    ap.add_argument("--db", help="database file (default: a temporary one)")
    ap.add_argument("--json", help="also write the results here")
    a = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="footfall-bench-hostile-") as tmp:
        work = Path(tmp)
        db = Path(a.db) if a.db else work / "direct.db"
        res = run_direct(a.count, a.seed, db)
        print_table("IngestWriter (validate + store, real SQLite)", res)
        print(
            f"  handle alone: {res['handle_payloads_per_s']:,} payloads/s; "
            f"batches stored {res['stored_batches']:,}, duplicates {res['duplicates']:,}, "
            f"expired {res['expired']:,}"
        )
        print(
            f"  crashes {res['crashes']}, status valid: {res['status_valid']}, "
            f"db rejects == counted: {res['db_rejects'] == res['rejects']}"
        )
        for c in res["crash_samples"]:
            print(c, file=sys.stderr)
        ok = (
            res["crashes"] == 0
            and res["status_valid"]
            and res["db_rejects"] == res["rejects"]
            and not res["unknown_reasons"]
            and res["messages_counted"] == a.count
        )
        if a.mqtt:
            m = run_mqtt(a.mqtt, a.seed, work, a.mqtt_timeout)
            print_table("Mosquitto → Ingestor", m)
            print(
                f"  handled {m['handled']:,}/{m['payloads']:,}, error: {m['error']}, "
                f"status valid: {m['status_valid']}"
            )
            res["mqtt"] = m
            ok = ok and m["error"] is None and m["handled"] == a.mqtt and m["status_valid"]
    res["ok"] = ok
    if a.json:
        Path(a.json).write_text(json.dumps(res, indent=1) + "\n")
    print("\nOK" if ok else "\nFAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
