"""The centre away for ten minutes: what a store's bridge delivers when it comes back.

Two real Mosquitto brokers on loopback (tests/bridge_fixtures.py): a store broker with
the shipped ``deploy/mosquitto/footfall.conf`` and the stanza of ``footfall provision
bridge`` (its shipped ``restart_timeout 5 60``), and a central broker with the files of
``footfall provision central``; TLS and the generated ACLs on both.

1. The store's steady state crosses first: the retained set a running aggregator keeps
   (``--closed-hours`` closed hours and ``--closed-days`` closed days, the hour and the
   day in progress, ``--zones`` zone stats, occupancy, its status).
2. A chain consumer (certificate ``chain-main``) holds a persistent MQTT 5 session at
   the centre; once the centre has saved it to disk, the central broker is killed
   (SIGKILL).
3. For ``--outage-s`` the store publishes as its aggregator does (occupancy and status
   every 10 s; the hour, the day and the zones every 300 s; an hour closing every
   ``--hour-every-s``), every payload unique. Halfway, the store broker is restarted
   (SIGTERM, or ``--store-crash``: SIGKILL after an autosave).
4. The centre starts again; the consumer reconnects with its session.

Printed: published during the outage; arrived at the consumer (all copies); every one
of them arrived or which did not; duplicates (extra copies: the bridge re-queues the
retained message of every forwarded topic at every connection attempt, failed ones
included, and once connected); time from the centre's start to the bridge's reconnect
and to the last publication of the outage arriving; the bridge's connection attempts.
Saved to ``bench/baselines/bridge_outage.json`` with ``--save``.

    python bench/bridge_outage.py                  # the 10-minute outage
    python bench/bridge_outage.py --outage-s 60    # a quick look
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))

from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn  # noqa: E402

from sensing.provision.bridge_config import BridgeSettings  # noqa: E402
from sensing.provision.central_broker import AGGREGATE_READ_FILTERS  # noqa: E402

from bridge_fixtures import (  # noqa: E402
    Collector,
    Msg,
    _checked,
    _example,
    build_rig,
    footfall_msg,
    mosquitto_log_lines,
    publish,
    start_rig,
    wait_saved,
)
from broker_fixtures import wait_for  # noqa: E402

STORE = "s1"
BASE = f"footfall/v1/{STORE}"
T0 = 1_795_683_600_000


def _footfall(level: str, t: int) -> Msg:
    return footfall_msg(STORE, level, t)


def steady_state(closed_hours: int, closed_days: int, zones: int) -> list[Msg]:
    """The retained set of a store's aggregator that has run for a while."""
    day0 = dt.date(2026, 10, 1)
    out = [
        _footfall(f"2026-11-{1 + h // 24:02d}T{h % 24:02d}", T0 + h) for h in range(closed_hours)
    ]
    out += [_footfall(str(day0 + dt.timedelta(days=d)), T0 + d) for d in range(closed_days)]
    return out + tick(-300, zones, every_300=True)  # before the outage's first tick


def tick(t_s: int, zones: int, every_300: bool) -> list[Msg]:
    """What the aggregator publishes at second ``t_s`` of the outage."""
    t = T0 + 10_000_000 + t_s * 1000
    o = _example("occupancy")
    o.update(t=t, as_of=t)
    s = _example("aggregator_status")
    s["t"] = t
    out = [
        Msg(f"{BASE}/occupancy", _checked("occupancy", o), True),
        Msg(f"{BASE}/aggregator/status", _checked("aggregator_status", s), True),
    ]
    if every_300:
        out += [_footfall("hour", t), _footfall("today", t)]
        for z in range(zones):
            p = _example("zone_stats")
            p.update(zone=f"z{z}", as_of=t)
            out.append(Msg(f"{BASE}/zone/z{z}/stats", _checked("zone_stats", p), True))
    return out


def mosquitto_version() -> str:
    exe = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    r = subprocess.run([exe, "-h"], capture_output=True, text=True, timeout=10)
    return (r.stdout + r.stderr).splitlines()[0].strip()


def run(args: argparse.Namespace, root: Path) -> dict[str, object]:
    rig = start_rig(build_rig(root, store=STORE, restart=tuple(args.restart)))
    try:
        consumer = Collector(
            rig.central_addr("chain-main"), "chain-main-0", list(AGGREGATE_READ_FILTERS),
            persistent=True,
        )  # fmt: skip
        agg = rig.store_addr(f"aggregator-{STORE}")
        base = steady_state(args.closed_hours, args.closed_days, args.zones)
        publish(agg, f"aggregator-{STORE}", base)
        wait_for(
            lambda: len(consumer.messages()) >= len(base), 60, "the steady state at the centre"
        )
        retained_topics = len({m.topic for m in base})
        wait_saved(rig.central)
        before_outage = len(consumer.messages())
        rig.central.kill9()
        print(f"centre killed; {retained_topics} retained topics in the store", flush=True)

        sent: list[Msg] = []
        restarted = False
        hour = 0
        t_start = time.monotonic()
        with Progress(
            TextColumn("outage"), BarColumn(),
            TextColumn("{task.completed:.0f}/{task.total:.0f} s"),
            TextColumn("{task.fields[n]} published"), TimeRemainingColumn(),
        ) as bar:  # fmt: skip
            task = bar.add_task("outage", total=args.outage_s, n=0)
            for t_s in range(0, args.outage_s, 10):
                while time.monotonic() - t_start < t_s:
                    time.sleep(0.2)
                    bar.update(task, completed=time.monotonic() - t_start)
                msgs = tick(t_s, args.zones, every_300=t_s % 300 == 0)
                if t_s and t_s % args.hour_every_s == 0:
                    hour += 1
                    level = f"2026-11-{3 + hour // 24:02d}T{hour % 24:02d}"
                    msgs.append(_footfall(level, T0 + 20_000_000 + t_s))
                publish(agg, f"aggregator-{STORE}", msgs)
                sent += msgs
                bar.update(task, n=len(sent))
                if not restarted and t_s >= args.outage_s // 2:
                    restarted = True
                    if args.store_crash:
                        wait_saved(rig.store_broker)
                        rig.store_broker.kill9()
                    else:
                        rig.store_broker.stop()
                    rig.store_broker.start()
            while time.monotonic() - t_start < args.outage_s:
                time.sleep(0.2)
                bar.update(task, completed=time.monotonic() - t_start)
        attempts = mosquitto_log_lines(rig.store_broker, "Connecting bridge (step 1)")
        connected_before = rig.bridge_connected()

        rig.central.start()
        t_back = time.monotonic()
        want = Counter(sent)
        reconnect_s = None
        drained_s = None
        deadline = t_back + args.drain_timeout_s
        while time.monotonic() < deadline:
            if reconnect_s is None and rig.bridge_connected() > connected_before:
                reconnect_s = time.monotonic() - t_back
            if not want - Counter(consumer.messages()[before_outage:]):
                drained_s = time.monotonic() - t_back
                break
            time.sleep(0.05)
        # what else is still coming (the re-queued retained copies)
        n, quiet = -1, time.monotonic()
        while time.monotonic() - quiet < 5 and time.monotonic() < deadline + 30:
            if len(consumer.messages()) != n:
                n, quiet = len(consumer.messages()), time.monotonic()
            time.sleep(0.2)
        got = consumer.messages()[before_outage:]
        consumer.close()
        aggregates = [m for m in got if m.topic.startswith("footfall/v1/")]
        missing = sum((want - Counter(aggregates)).values())
        known = set(sent) | set(base)
        unknown = [m for m in aggregates if m not in known]
        return {
            "outage_s": args.outage_s,
            "store_restart": "SIGKILL after an autosave" if args.store_crash else "SIGTERM",
            "retained_topics": retained_topics,
            "published": len(sent),
            "arrived": len(aggregates),
            "arrived_unique_of_published": len(set(aggregates) & set(sent)),
            "missing": missing,
            "duplicates": len(aggregates) - len(set(aggregates) & set(sent)) - len(unknown),
            "duplicates_of_steady_state": sum(m in set(base) for m in aggregates),
            "unknown": len(unknown),
            "bridge_connection_attempts_during_outage": attempts,
            "bridge_reconnect_s": None if reconnect_s is None else round(reconnect_s, 2),
            "time_to_drain_s": None if drained_s is None else round(drained_s, 2),
            "last_per_topic_is_latest": all(
                {m.topic: m for m in aggregates}[m.topic] == m
                for m in {m.topic: m for m in sent}.values()
            ),
        }
    finally:
        rig.stop()


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--outage-s", type=int, default=600, help="how long the centre is away")
    p.add_argument("--closed-hours", type=int, default=48, help="closed hours kept retained")
    p.add_argument("--closed-days", type=int, default=35, help="closed days kept retained")
    p.add_argument("--zones", type=int, default=6)
    p.add_argument("--hour-every-s", type=int, default=300, help="an hour closes every … s")
    p.add_argument(
        "--restart",
        type=int,
        nargs=2,
        default=(BridgeSettings.restart_base_s, BridgeSettings.restart_cap_s),
        metavar=("BASE", "CAP"),
        help="the bridge's restart_timeout, s (default: as shipped, %(default)s)",
    )
    p.add_argument("--store-crash", action="store_true", help="SIGKILL the store broker")
    p.add_argument("--drain-timeout-s", type=int, default=300)
    p.add_argument("--save", action="store_true", help="write bench/baselines/bridge_outage.json")
    a = p.parse_args()
    if a.outage_s < 20 or a.outage_s % 10:
        p.error("--outage-s: a multiple of 10, at least 20")
    with tempfile.TemporaryDirectory(prefix="bridge-outage-") as d:
        res = run(a, Path(d))
    res["restart_timeout"] = list(a.restart)
    res["code"] = subprocess.run(
        ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    res["mosquitto"] = mosquitto_version()
    res["python"] = platform.python_version()
    for k, v in res.items():
        print(f"{k:<42} {v}")
    if a.save:
        out = REPO / "bench" / "baselines" / "bridge_outage.json"
        out.write_text(json.dumps(res, indent=2) + "\n")
        print(f"wrote {out}")
    ok = res["missing"] == 0 and res["last_per_topic_is_latest"]
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
