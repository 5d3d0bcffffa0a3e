"""Door-count accuracy of the simulated store day: board counts vs ground truth.

Simulates a day (default 8 h), decodes every door board's UART stream with the
real bridge decoder and compares in/out counts per hour with the truth crossings;
then the footfall the report uses (:func:`heatmap.report.analytics.door_flow`: the same
events in a store database, counted from the empty store, entries the beams lost
implied by the exits). ``--second`` runs the benches' second layout.

    python bench/door_accuracy.py --hours 8 --seeds 1 2 3 [--second]
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import sqlite3
import sys
import tempfile
from collections import Counter
from pathlib import Path

from firmware_bridge.decoder import StreamDecoder
from firmware_bridge.protocol import DoorCrossing
from heatmap.aggregator.store_db import StoreDB
from heatmap.report.analytics import door_flow
from heatmap.simulate.scenario import Scenario
from heatmap.simulate.store_day import simulate
from heatmap.spatial.floorplan import load, load_default

sys.path.insert(0, str(Path(__file__).resolve().parent))


def hourly(sim_out: Path, t0_ms: int) -> tuple[Counter[tuple[int, int]], Counter[tuple[int, int]]]:
    truth: Counter[tuple[int, int]] = Counter()
    with (sim_out / "truth" / "door_crossings.csv").open() as f:
        for r in csv.DictReader(f):
            truth[int(float(r["t_s"]) // 3600), int(r["direction"])] += 1
    board: Counter[tuple[int, int]] = Counter()
    for t_ms, _door, d in board_events(sim_out):
        board[int((t_ms - t0_ms) // 3_600_000), d] += 1
    return truth, board


def board_events(sim_out: Path) -> list[tuple[int, str, int]]:
    """(t_ms, door, direction) of every crossing the door boards' UART streams report."""
    out = []
    for path in (sim_out / "capture").rglob("door-*.uart"):
        tick0 = json.loads(path.with_suffix(".uart.json").read_text())["tick0_epoch_ms"]
        for fr in StreamDecoder().feed(path.read_bytes()):
            if isinstance(fr.msg, DoorCrossing):
                out.append((tick0 + fr.msg.tick_ms, path.stem, fr.msg.direction))
    return out


def balanced_ins(sim_out: Path, t0_ms: int, hours: int) -> list[int]:
    """Entries per hour as the report counts them (door_flow over a store database)."""
    db = StoreDB(sim_out / "doors.db")
    with db.conn:
        db.conn.executemany("INSERT INTO door_events VALUES (?,?,?)", board_events(sim_out))
    db.close()
    conn = sqlite3.connect(sim_out / "doors.db")
    h = 3_600_000
    return [door_flow(conn, t0_ms + k * h, t0_ms + (k + 1) * h, t0_ms).ins for k in range(hours)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--hours", type=float, default=8.0)
    ap.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    ap.add_argument("--second", action="store_true", help="the benches' second layout")
    a = ap.parse_args()
    base = Scenario()
    if a.second:
        from second_layout import PLAN, SCENARIO

        plan, base = load(PLAN), SCENARIO
    else:
        plan = load_default()
    print(f"{plan.name}: doors {[d.id for d in plan.doors]}; {a.hours:g} h per seed")
    print(
        f"{'seed':>4} {'hour':>4} {'in truth':>8} {'in board':>8} {'err':>7} "
        f"{'balanced':>8} {'err':>7} {'out truth':>9} {'out board':>9} {'err':>7}"
    )
    errs, errs_bal = [], []
    for seed in a.seeds:
        sc = dataclasses.replace(base, hours=a.hours, seed=seed)
        with tempfile.TemporaryDirectory() as tmp:
            simulate(plan, sc, Path(tmp))
            truth, board = hourly(Path(tmp), sc.t0_ms)
            bal = balanced_ins(Path(tmp), sc.t0_ms, int(a.hours))
        for h in range(int(a.hours)):
            ti, bi, to, bo = truth[h, 1], board[h, 1], truth[h, -1], board[h, -1]
            ei = (bi - ti) / ti * 100 if ti else 0.0
            eb = (bal[h] - ti) / ti * 100 if ti else 0.0
            eo = (bo - to) / to * 100 if to else 0.0
            errs.append(abs(ei))
            errs_bal.append(abs(eb))
            print(
                f"{seed:>4} {h:>4} {ti:>8} {bi:>8} {ei:>+6.1f}% {bal[h]:>8} {eb:>+6.1f}% "
                f"{to:>9} {bo:>9} {eo:>+6.1f}%"
            )
        tot_t = sum(v for (_, d), v in truth.items() if d == 1)
        tot_b = sum(v for (_, d), v in board.items() if d == 1)
        print(
            f"{seed:>4}  day {tot_t:>8} {tot_b:>8} {(tot_b - tot_t) / tot_t * 100:>+6.1f}% "
            f"{sum(bal):>8} {(sum(bal) - tot_t) / tot_t * 100:>+6.1f}%"
        )
    for name, e in (("board", sorted(errs)), ("balanced (the report's)", sorted(errs_bal))):
        print(
            f"hourly |error| of 'in', {name}: median {e[len(e) // 2]:.1f} %, max {e[-1]:.1f} % "
            "(goal ≤ 2 %)"
        )


if __name__ == "__main__":
    main()
