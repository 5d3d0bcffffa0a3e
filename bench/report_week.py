"""A week's layout report from the stored aggregates: how long it takes (GOALS: ≤ 10 s),
the compare of two weeks (GOALS: ≤ 20 s), and the planner heatmap's Pearson r against
truth at the resolution the report states.

Input: a ``footfall demo`` output folder (``--demo DIR``; without it a ``footfall demo
--hours 2`` is run into a temporary folder first, about a minute). The week is the
demo's day as the live aggregator stored it (its day, hours and 15-minute slots, the
real payloads) copied onto the six days after it, periods and times shifted by whole
local days: seven stored days, every hour of them, the same figures each day. On a
copy of the database (the demo's own is not changed):

* ``footfall report --since DAY --until DAY+7`` in-process, best and median of
  ``--repeat`` runs: the composed week, the summary files, the planner's page with its
  pictures and tables (everything ``footfall report`` writes from aggregates); then
  once as a command in a fresh process (Python's start and the imports included);
* ``footfall compare`` of two such weeks (the demo's day on 14 days), as a command in
  a fresh process: the zone figures with their bootstrap intervals, the page, its
  pictures and table (identical weeks: a run time, not a verdict);
* the demo's own period with ``--truth``: r at 1 m cells and at the stated resolution
  (GOALS: ≥ 0.9 at the resolution the report states, on the bundled 6-node store).

    python bench/report_week.py [--demo footfall-out] [--repeat 3]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import resource
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from heatmap.spatial.floorplan import load_default
from sensing.cli.main import main

DAY_MS = 86_400_000


def shift_period(period: str, days: int, tz: str) -> str:
    """An ISO interval ``a/b`` moved by whole local days.

    >>> shift_period("2026-11-20T10:00:00+01:00/2026-11-20T11:00:00+01:00", 2, "Europe/Amsterdam")
    '2026-11-22T10:00:00+01:00/2026-11-22T11:00:00+01:00'
    """
    z = ZoneInfo(tz)

    def one(s: str) -> str:
        d = datetime.fromisoformat(s).astimezone(z)
        local = d.replace(tzinfo=None) + timedelta(days=days)
        return local.replace(tzinfo=z).isoformat()

    return "/".join(one(s) for s in period.split("/"))


def make_week(db: Path, tz: str, n_days: int = 7) -> tuple[str, str]:
    """Copy the first stored day's aggregates onto the ``n_days`` − 1 days after it; the
    first local day and the day after the last."""
    conn = sqlite3.connect(db)
    with conn:
        rows = conn.execute(
            "SELECT kind, period, entity, t0_ms, t1_ms, payload, written_ms FROM aggregates"
        ).fetchall()
        days = sorted(
            p.split("/")[0][:10]
            for k, p, _, _, _, pl, _ in rows
            if k == "footfall" and json.loads(pl).get("unit") == "day"
        )
        if not days:
            raise SystemExit(f"{db}: no stored day (run the demo to its day's close)")
        first = days[0]
        for d in range(1, n_days):
            for kind, period, ent, _, _, payload, written in rows:
                pl = json.loads(payload)
                moved = shift_period(period, d, tz)
                pl["period"] = moved
                a, b = (datetime.fromisoformat(s) for s in moved.split("/"))
                conn.execute(
                    "INSERT OR REPLACE INTO aggregates VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (
                        kind,
                        moved,
                        ent,
                        int(a.timestamp() * 1000),
                        int(b.timestamp() * 1000),
                        json.dumps(pl),
                        written + d * DAY_MS,
                    ),
                )
    conn.close()
    last = (datetime.fromisoformat(first) + timedelta(days=n_days)).date().isoformat()
    return first, last


def run_report(args: list[str]) -> tuple[float, float]:
    """Wall and CPU seconds of one ``footfall report`` run in this process."""
    out = io.StringIO()
    t, c = time.perf_counter(), time.process_time()
    with contextlib.redirect_stdout(out):
        rc = main(["report", *args, "-q"])
    took, cpu = time.perf_counter() - t, time.process_time() - c
    if rc != 0:
        raise SystemExit(f"footfall report {' '.join(args)}: exit {rc}\n{out.getvalue()}")
    return took, cpu


def main_bench() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--demo", help="a footfall demo output folder (default: run one, 2 h)")
    ap.add_argument("--repeat", type=int, default=3)
    a = ap.parse_args()
    tz = load_default().timezone
    with tempfile.TemporaryDirectory(prefix="report-week-") as tmp:
        work = Path(tmp)
        demo = Path(a.demo) if a.demo else work / "demo"
        if not a.demo:
            cmd = ["footfall", "demo", "--hours", "2", "--out", str(demo), "-q"]
            subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
        db = work / "week.db"
        shutil.copyfile(demo / "aggregator" / "store.db", db)
        first, last = make_week(db, tz)
        times, cpus = [], []
        for i in range(a.repeat):
            span = ["--since", f"{first}T00:00", "--until", f"{last}T00:00"]
            took, cpu = run_report(["--db", str(db), *span, "--out", str(work / f"week{i}")])
            times.append(took)
            cpus.append(cpu)
        # as a planner runs it: a fresh process, Python's start and the imports included
        t = time.perf_counter()
        subprocess.run(
            ["footfall", "report", "--db", str(db), *span, "--out", str(work / "cli"), "-q"],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        fresh = time.perf_counter() - t
        # the compare of two weeks (14 stored days), as a planner runs it
        db2 = work / "two-weeks.db"
        shutil.copyfile(demo / "aggregator" / "store.db", db2)
        d0, d14 = make_week(db2, tz, 14)
        mid = (datetime.fromisoformat(d0) + timedelta(days=7)).date()
        before = f"{d0}..{mid - timedelta(days=1)}"
        after = f"{mid}..{datetime.fromisoformat(d14).date() - timedelta(days=1)}"
        cmp_cmd = ["footfall", "compare", "--db", str(db2), "--before", before,
                   "--after", after, "--out", str(work / "compare")]  # fmt: skip
        ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        t = time.perf_counter()
        subprocess.run(cmp_cmd, check=True, stdout=subprocess.DEVNULL)
        cmp_s = time.perf_counter() - t
        ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        cmp_cpu = ru1.ru_utime + ru1.ru_stime - ru0.ru_utime - ru0.ru_stime
        week = json.loads((work / "week0" / "summary.json").read_text())
        page = json.loads((work / "week0" / "report.json").read_text())
        demo_db, truth = demo / "aggregator" / "store.db", demo / "sim" / "truth"
        rep_dir = work / "demo-report"
        run_report(["--db", str(demo_db), "--truth", str(truth), "--out", str(rep_dir)])
        demo_page = json.loads((work / "demo-report" / "report.json").read_text())
    t = demo_page["truth"]
    print(f"week {first} – {last}: pieces {week['pieces']}, visitors {week['store']['visitors']}")
    print(
        f"  footfall report of the week (from aggregates, planner page included): best "
        f"{min(times):.2f} s, median {statistics.median(times):.2f} s over {a.repeat} "
        f"(goal ≤ 10 s; CPU {min(cpus):.2f} s; the first run imports the libraries)"
    )
    print(f"  the command in a fresh process (start and imports included): {fresh:.2f} s")
    print(
        f"footfall compare of two weeks ({before} against {after}, the page, its pictures "
        f"and table), a fresh process: {cmp_s:.2f} s (CPU {cmp_cpu:.2f} s; goal ≤ 20 s)"
    )
    load = os.getloadavg()[0]
    print(f"  load average (1 min) after the runs: {load:.1f} on {os.cpu_count()} CPUs")
    print(f"  hours drawn: {[h['hour'] for h in page['hours_open']]}")
    print(
        f"demo period {demo_page['period']}: the layout resolves about "
        f"{demo_page['resolution_m']:g} m (median one-window CRB error "
        f"{demo_page['resolution_median_error_m']:.2f} m)"
    )
    print(
        f"  heatmap Pearson r vs truth ({t['of']}): {t['r_stated']:.3f} at "
        f"{demo_page['resolution_m']:g} m (goal ≥ 0.9), {t['r_1m']:.3f} at 1 m cells"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main_bench())
