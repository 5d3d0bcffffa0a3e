"""Door-count accuracy of the simulated store day: board counts vs ground truth.

Simulates a day (default 8 h), decodes every door board's UART stream with the
real bridge decoder and compares in/out counts per hour with the truth crossings.

    python bench/door_accuracy.py --hours 8 --seeds 1 2 3
"""

from __future__ import annotations

import argparse
import csv
import json
import tempfile
from collections import Counter
from pathlib import Path

from firmware_bridge.decoder import StreamDecoder
from firmware_bridge.protocol import DoorCrossing
from heatmap.floorplan import load_default
from heatmap.simulate.scenario import Scenario
from heatmap.simulate.store_day import simulate


def hourly(sim_out: Path, t0_ms: int) -> tuple[Counter[tuple[int, int]], Counter[tuple[int, int]]]:
    truth: Counter[tuple[int, int]] = Counter()
    with (sim_out / "truth" / "door_crossings.csv").open() as f:
        for r in csv.DictReader(f):
            truth[int(float(r["t_s"]) // 3600), int(r["direction"])] += 1
    board: Counter[tuple[int, int]] = Counter()
    for path in (sim_out / "capture").rglob("door-*.uart"):
        tick0 = json.loads(path.with_suffix(".uart.json").read_text())["tick0_epoch_ms"]
        for fr in StreamDecoder().feed(path.read_bytes()):
            if isinstance(fr.msg, DoorCrossing):
                board[int((tick0 - t0_ms + fr.msg.tick_ms) // 3_600_000), fr.msg.direction] += 1
    return truth, board


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--hours", type=float, default=8.0)
    ap.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    a = ap.parse_args()
    plan = load_default()
    print(f"doors: {[d.id for d in plan.doors]}; {a.hours:g} h per seed")
    print(
        f"{'seed':>4} {'hour':>4} {'in truth':>8} {'in board':>8} {'err':>7} "
        f"{'out truth':>9} {'out board':>9} {'err':>7}"
    )
    errs = []
    for seed in a.seeds:
        sc = Scenario(hours=a.hours, seed=seed)
        with tempfile.TemporaryDirectory() as tmp:
            simulate(plan, sc, Path(tmp))
            truth, board = hourly(Path(tmp), sc.t0_ms)
        for h in range(int(a.hours)):
            ti, bi, to, bo = truth[h, 1], board[h, 1], truth[h, -1], board[h, -1]
            ei = (bi - ti) / ti * 100 if ti else 0.0
            eo = (bo - to) / to * 100 if to else 0.0
            errs.append(abs(ei))
            print(f"{seed:>4} {h:>4} {ti:>8} {bi:>8} {ei:>+6.1f}% {to:>9} {bo:>9} {eo:>+6.1f}%")
        tot_t = sum(v for (_, d), v in truth.items() if d == 1)
        tot_b = sum(v for (_, d), v in board.items() if d == 1)
        print(f"{seed:>4}  day {tot_t:>8} {tot_b:>8} {(tot_b - tot_t) / tot_t * 100:>+6.1f}%")
    errs.sort()
    print(
        f"hourly |error| of 'in': median {errs[len(errs) // 2]:.1f} %, max {errs[-1]:.1f} % "
        f"(goal ≤ 2 %)"
    )


if __name__ == "__main__":
    main()
