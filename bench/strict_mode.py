"""What the ``strict`` privacy mode costs: the same simulated day through the live
aggregator in ``standard`` and in ``strict`` mode, figures against the truth, side by side.

The day is :mod:`live_day`'s (the bundled 30 × 20 m store with a 5 × 4 grid of ceiling
nodes, the busy scenario of 3,000 visitors over 12 h, its node beacons and perfect door
beams), drawn once. Each mode gets a fresh store database fed as the ingest would fill
it: every ``--step-s`` of data, each node's rows of the last step as one obs batch
(consecutive seqs), 10 s after they were heard, and the door crossings; a
:class:`~heatmap.aggregator.live.processor.LiveProcessor` steps after each feed on the
data clock (``standard``: 5-minute intervals; ``strict``: 60-second intervals, the rows
moved into memory at every step, no pseudonymous row older than 5 min on disk). After
the data the clock runs on to the day's close, and the day's aggregates are read back.
Both modes run at once, one child process each.

Printed: heatmap Pearson r at 1 m cells (against the visitors' truth and everyone's),
zone dwell medians and stays (visits) against the truth, visitors (door ins against the
true entries), the oldest pseudonymous row seen on disk at any scan (every minute of
data), CPU seconds of each mode.

    python bench/strict_mode.py               # 1 h of the busy day (a few minutes)
    python bench/strict_mode.py --hours 12    # the whole day (long)
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import sqlite3
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from live_day import Day, draw_day, pearson, truth_figures

from heatmap.aggregator import store_db
from heatmap.aggregator.live import periods
from heatmap.aggregator.live import settings as live_settings
from heatmap.aggregator.live.processor import LiveProcessor
from heatmap.aggregator.live.settings import LiveSettings
from heatmap.privacy.store_audit import PSEUDONYMOUS_TABLES

DELAY_MS = 10_000
"""a row reaches the store database this long after it was heard"""
SCAN_MS = 60_000


def feed_and_run(day: Day, db: Path, mode: str, step_ms: int) -> dict[str, Any]:
    """Feed ``day`` into ``db`` step by step with the live processor in ``mode``; returns
    the day's aggregates, the oldest pseudonymous row seen on disk and the CPU seconds."""
    r, plan = day.rows, day.plan
    node_ids = np.array([n.id for n in plan.nodes])
    doors = sorted(
        (day.sc.t0_ms + round(c.t * 1000), d, c.direction)
        for d, cs in day.crossings.items()
        for c in cs
    )
    door_t = np.array([d[0] for d in doors], np.int64)
    conn = store_db.connect(db)
    s = live_settings.strict(LiveSettings()) if mode == "strict" else LiveSettings()
    now = day.sc.t0_ms + step_ms
    proc = LiveProcessor(db, plan, s, clock=lambda: now / 1000)
    t_end = int(r.t[-1]) + 1
    day0 = periods.floor_local(day.sc.t0_ms, "day", plan.timezone)
    close = periods.next_local(day0, "day", plan.timezone) + int(s.day_close_s * 1000) + 60_000
    fed, seq, next_scan, oldest_s = day.sc.t0_ms, 0, day.sc.t0_ms + SCAN_MS, 0.0
    scan = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    cpu = time.process_time()
    while now <= close:
        hi = min(now - DELAY_MS, t_end)
        if hi > fed:
            a, b = np.searchsorted(r.t, [fed, hi])
            sl = slice(int(a), int(b))
            by_node = r.node[sl]
            for j in range(len(plan.nodes)):
                m = by_node == j
                ts = r.t[sl][m]
                conn.executemany(
                    "INSERT INTO obs (t_ms, node, pid, rssi, band, flags, sig) "
                    "VALUES (?,?,?,?,'ble',?,NULL)",
                    zip(
                        ts.tolist(),
                        [node_ids[j]] * int(m.sum()),
                        r.names[r.pid[sl][m]].tolist(),
                        r.rssi[sl][m].tolist(),
                        r.flags[sl][m].tolist(),
                        strict=True,
                    ),
                )
                seq += 1
                conn.execute(
                    "INSERT INTO batches (kind, publisher, seq, t0, n, received_ms, t1) "
                    "VALUES ('obs', ?, ?, ?, ?, ?, ?)",
                    (node_ids[j], seq, int(ts.min()) if len(ts) else fed, int(m.sum()), now,
                     hi - 1),
                )  # fmt: skip
            da, dbi = np.searchsorted(door_t, [fed, hi])
            conn.executemany("INSERT INTO door_events VALUES (?,?,?)", doors[da:dbi])
            fed = hi
        elif fed >= t_end:  # after the data: every node still reports (empty batches)
            for j in range(len(plan.nodes)):
                seq += 1
                conn.execute(
                    "INSERT INTO batches (kind, publisher, seq, t0, n, received_ms, t1) "
                    "VALUES ('obs', ?, ?, ?, 0, ?, ?)",
                    (node_ids[j], seq, now - DELAY_MS - step_ms, now, now - DELAY_MS),
                )
        conn.commit()
        proc.step(now)
        if now >= next_scan:
            next_scan = now + SCAN_MS
            scan.commit()
            for table, col in PSEUDONYMOUS_TABLES:
                (lo,) = scan.execute(f"SELECT MIN({col}) FROM {table}").fetchone()
                if lo is not None:
                    oldest_s = max(oldest_s, (now - lo) / 1000)
        now += step_ms if fed < t_end else 5 * 60_000
    cpu = time.process_time() - cpu
    proc.close()
    scan.close()
    rows = conn.execute(  # the day's aggregates (a local day: 23 to 25 h)
        "SELECT kind, entity, payload FROM aggregates WHERE t0_ms = ? AND t1_ms - t0_ms > ?",
        (day0, 20 * 3_600_000),
    ).fetchall()
    conn.close()
    aggs = {f"{k}/{e}": json.loads(p) for k, e, p in rows}
    return {"aggregates": aggs, "oldest_disk_row_s": oldest_s, "cpu_s": cpu}


def _child(day: Day, db: str, mode: str, step_ms: int, out: str) -> None:
    res = feed_and_run(day, Path(db), mode, step_ms)
    Path(out).write_text(json.dumps(res))


def figures(res: dict[str, Any], tf: dict[str, Any], day: Day) -> dict[str, Any]:
    aggs = res["aggregates"]
    if "heatmap/store" not in aggs:
        raise SystemExit(f"no day aggregates were written: {sorted(aggs)}")
    heat = aggs["heatmap/store"]
    n = heat["grid"]["nx"] * heat["grid"]["ny"]
    cells = np.zeros(n)
    for i, v in heat["cells"].items():
        cells[int(i)] = v
    ins = tf["inside"]
    ids = [z.id for z in day.plan.zones]
    st = aggs["footfall/store"]
    return {
        "r_visitors": pearson(cells[ins], tf["cells_visitors"][ins]),
        "r_everyone": pearson(cells[ins], tf["cells_everyone"][ins]),
        "dwell": {z: aggs[f"zone/{z}"]["dwell_p50_s"] for z in ids},
        "visits": {z: aggs[f"zone/{z}"]["visits"] for z in ids},
        "door_in": st["door_in"],
        "visitors": st["visitors"],
        "visits_ended": st["visits_ended"],
        "dwell_p50_s": st["dwell_s"]["p50"] if st.get("dwell_s") else None,
        "oldest_s": res["oldest_disk_row_s"],
        "cpu_s": res["cpu_s"],
    }


def _f(v: Any, fmt: str = ".0f") -> str:
    return "supp." if v is None else format(v, fmt)


def print_table(f: dict[str, dict[str, Any]], tf: dict[str, Any], day: Day, hours: float) -> None:
    std, sct = f["standard"], f["strict"]
    print(f"\nstrict vs standard, the same {hours:g} h of the busy day (live aggregator)")
    print(f"  {'figure':46}{'truth':>10}{'standard':>12}{'strict':>12}")
    rows = [
        ("heatmap r, 1 m cells (vs visitors' truth)", "", std["r_visitors"], sct["r_visitors"]),
        ("heatmap r, 1 m cells (vs everyone's truth)", "", std["r_everyone"], sct["r_everyone"]),
    ]
    for label, t, a, b in rows:
        print(f"  {label:46}{t:>10}{a:>12.3f}{b:>12.3f}")
    print(
        f"  {'visitors (door in)':46}{tf['door_in']:>10}{_f(std['door_in']):>12}"
        f"{_f(sct['door_in']):>12}"
    )
    rf = (("RF visits seen whole", "visits_ended"), ("RF dwell p50, s", "dwell_p50_s"))
    for label, key in rf:
        print(f"  {label:46}{'':>10}{_f(std[key]):>12}{_f(sct[key]):>12}")
    print(
        f"  {'oldest pseudonymous row on disk, s':46}{'':>10}{std['oldest_s']:>12.0f}"
        f"{sct['oldest_s']:>12.0f}"
    )
    label = "CPU s (live processor and feed)"
    print(f"  {label:46}{'':>10}{std['cpu_s']:>12.0f}{sct['cpu_s']:>12.0f}")
    print(f"\n  zone dwell p50 s and stays: {'truth':>16}{'standard':>18}{'strict':>18}")
    for z in [z.id for z in day.plan.zones]:
        tv, ts = tf["zone_dwell_p50_s"][z], tf["zone_stays"][z]
        t = f"{_f(tv)} / {ts}"
        a = f"{_f(std['dwell'][z])} / {_f(std['visits'][z])}"
        b = f"{_f(sct['dwell'][z])} / {_f(sct['visits'][z])}"
        print(f"    {z:24}{t:>16}{a:>18}{b:>18}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--hours", type=float, default=1.0, help="hours of the busy day (1)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--step-s", type=float, default=20.0, help="data seconds per feed (20)")
    ap.add_argument("--json", help="also write the figures here")
    a = ap.parse_args(argv)
    t = time.monotonic()
    day = draw_day(a.hours, a.seed)
    tf = truth_figures(day)
    print(f"day drawn: {len(day.rows.t):,} rows in {time.monotonic() - t:.0f} s")
    step_ms = int(a.step_s * 1000)
    with tempfile.TemporaryDirectory(prefix="strict-bench-") as tmp:
        ctx = mp.get_context("fork")
        procs, outs = [], {}
        for mode in ("standard", "strict"):
            outs[mode] = Path(tmp) / f"{mode}.json"
            p = ctx.Process(
                target=_child, args=(day, str(Path(tmp) / f"{mode}.db"), mode, step_ms,
                                     str(outs[mode]))
            )  # fmt: skip
            p.start()
            procs.append(p)
        for p in procs:
            p.join()
            if p.exitcode:
                raise SystemExit(f"a mode's run failed (exit {p.exitcode})")
        res = {m: json.loads(o.read_text()) for m, o in outs.items()}
    print(f"both modes run in {time.monotonic() - t:.0f} s")
    f = {m: figures(r, tf, day) for m, r in res.items()}
    print_table(f, tf, day, a.hours)
    if a.json:
        Path(a.json).write_text(json.dumps(f, indent=1, default=float))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
