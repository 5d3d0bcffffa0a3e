"""Two simulated weeks around a re-layout, stored the way the live aggregator stores them.

The week before, the promo table stands where the floor plan's ``promo`` zone is;
the week after, it stands elsewhere (:attr:`Relayout.promo_after`); everything else
(the crowd's rates, zones' appeal, phones, radio, seeds' use) is drawn the same way.
Each day is a short opening window (``hours`` from ``open_local``) with its own seed.

The path, the cheapest one that still goes through the live aggregator's
localization and aggregates: the simulator's people, phones and BLE adverts
(:mod:`heatmap.simulate.people`, :mod:`.phones`, :mod:`.radio`) and the nodes'
beacons to each other (:mod:`.node_beacons`, what the live radio calibration fits)
are written as rows straight into the store database's ``obs`` table, with the
people's true door crossings as ``door_events`` (perfect beams), as
``bench/live_day.py`` writes its batch report's copy. Nothing goes through capture
files, node daemons, MQTT or ingest (``footfall demo`` covers those); pseudonyms are
a hash of the day and the advert address's index, 16 hex characters like a node's.
Wi-Fi probes are not drawn (the live aggregator locates BLE; Wi-Fi adds little).
Then a real :class:`~heatmap.aggregator.live.processor.LiveProcessor` steps on the
store's clock through each day's window interval by interval and closes the day:
every 5-minute interval located, 15-minute, hourly and daily k-anonymous aggregates
written, passers-by's rows deleted, exactly as in a store.

>>> r = Relayout()
>>> [d.isoformat() for d in r.days()][:2], len(r.days())
(['2026-11-02', '2026-11-03'], 14)
>>> r.scenario(0).promo_table is None, r.scenario(7).promo_table
(True, (12.0, 18.5))
"""

from __future__ import annotations

import hashlib
import time as _time
from dataclasses import dataclass, replace
from datetime import date, datetime, time, timedelta
from pathlib import Path

import numpy as np
import shapely
from numpy.typing import NDArray

from heatmap.aggregator import store_db
from heatmap.aggregator.live import calibration_state, periods
from heatmap.aggregator.live.processor import LiveProcessor
from heatmap.aggregator.live.settings import LiveSettings
from heatmap.simulate import boards, node_beacons
from heatmap.simulate.heard_ble import heard_ble
from heatmap.simulate.people import populate
from heatmap.simulate.scenario import Point, Scenario
from heatmap.spatial.floorplan import FloorPlan
from heatmap.spatial.walkable_grid import WalkableGrid
from sensing.runtime.progress import NoProgress, Progress
from sensing.wire.observation import KIND_SHIFT, DeviceKind, Flag

I64 = NDArray[np.int64]
PHONE_FLAGS = int(Flag.BLE_RANDOM)
BEACON_FLAGS = int(DeviceKind.BEACON) << KIND_SHIFT
"""a node's beacon: a public address (no BLE_RANDOM)"""
BACK_AISLE: Point = (12.0, 18.5)
"""where the bundled store's promo table goes in the re-layout: the back aisle"""


@dataclass(frozen=True)
class Relayout:
    """Two periods of ``days_each`` days, one after the other; the promo table moves
    between them (``promo_after`` None: it stays, an unchanged store)."""

    first_day: date = date(2026, 11, 2)
    days_each: int = 7
    open_local: time = time(12, 0)
    hours: float = 0.5
    """of each day simulated (from ``open_local``)"""
    seed: int = 1
    shoppers_per_hour_peak: float = 140.0
    passersby_per_hour_peak: float = 200.0
    promo_after: Point | None = BACK_AISLE

    def days(self) -> list[date]:
        return [self.first_day + timedelta(days=d) for d in range(2 * self.days_each)]

    def periods(self) -> tuple[str, str]:
        """``footfall compare``'s --before and --after (local dates, inclusive)."""
        d = self.days()
        n = self.days_each
        return f"{d[0]}..{d[n - 1]}", f"{d[n]}..{d[-1]}"

    def scenario(self, i: int) -> Scenario:
        """Day ``i``'s scenario: its own seed, the promo table where it stands that day."""
        return Scenario(
            start_local=datetime.combine(self.days()[i], self.open_local),
            hours=self.hours,
            seed=self.seed * 1000 + i,
            shoppers_per_hour_peak=self.shoppers_per_hour_peak,
            passersby_per_hour_peak=self.passersby_per_hour_peak,
            promo_table=self.promo_after if i >= self.days_each else None,
        )


@dataclass
class DayRows:
    """One simulated day as the store database holds it."""

    obs: list[tuple[int, str, str, int, str, int, None]]
    doors: list[tuple[int, str, int]]
    shoppers: int


def draw_day(plan: FloorPlan, sc: Scenario) -> DayRows:
    """Every BLE frame a node heard (phones and the other nodes' beacons) and every door
    crossing of the scenario's day, as ``obs`` and ``door_events`` rows."""
    h = heard_ble(plan, sc, np.random.default_rng(sc.seed))
    people, em, rssi, code = h.people, h.em, h.rssi, h.addr_code
    f, j = np.nonzero(~np.isnan(rssi))
    t_ms = sc.t0_ms + np.round(em.t[f] * 1000).astype(np.int64)
    salt = sc.start_local.date().isoformat()
    names = [_pseudonym(salt, int(c)) for c in range(int(code.max(initial=-1)) + 1)]
    nodes = [n.id for n in plan.nodes]
    obs = [
        (int(t), nodes[jj], names[int(c)], int(r), "ble", PHONE_FLAGS, None)
        for t, jj, c, r in zip(t_ms, j, code[f], rssi[f, j], strict=True)
    ]
    brng = np.random.default_rng([sc.seed, node_beacons.RNG_STREAM])
    bt, tx = node_beacons.beacon_times(plan, sc.duration_s, brng)
    brssi = node_beacons.received(plan, sc, tx, brng)
    e, bj = np.nonzero(~np.isnan(brssi))
    beacon = [_pseudonym("node", i) for i in range(len(nodes))]
    obs += [
        (sc.t0_ms + round(float(bt[a]) * 1000), nodes[b], beacon[tx[a]], int(brssi[a, b]), "ble",
         BEACON_FLAGS, None)
        for a, b in zip(e, bj, strict=True)
    ]  # fmt: skip
    obs.sort(key=lambda r: r[0])
    doors = [
        (sc.t0_ms + round(c.t * 1000), d.id, c.direction)
        for d in plan.doors
        for c in boards.door_crossings(people, d, plan.outline_polygon)
        if 0 <= c.t < sc.duration_s
    ]
    return DayRows(obs, doors, sum(p.role == "shopper" for p in people))


def _pseudonym(salt: str, code: int) -> str:
    return hashlib.blake2b(f"{salt}/{code}".encode(), digest_size=8).hexdigest()


BATCH_MS = 60_000
"""data per obs batch row (a node publishes every few seconds; the live aggregator
reads batches only for where the data start, late rows and whether an hour is in)"""


def store_day(db: Path, rows: DayRows) -> None:
    """The day's rows into ``db``, with an obs batch row per node and minute as the
    ingest writer records them (seqs consecutive per node, received now)."""
    conn = store_db.connect(db)
    now = int(_time.time() * 1000)
    chunks: dict[tuple[str, int], list[int]] = {}
    for t, node, *_ in rows.obs:
        c = chunks.setdefault((node, t // BATCH_MS), [t, t, 0])
        c[1], c[2] = t, c[2] + 1
    try:
        with conn:
            seq = dict(
                conn.execute(
                    "SELECT publisher, MAX(seq) FROM batches WHERE kind = 'obs' GROUP BY publisher"
                ).fetchall()
            )
            batches = []
            for (node, _), (t0, t1, n) in sorted(chunks.items()):
                seq[node] = seq.get(node, -1) + 1
                batches.append(("obs", node, seq[node], t0, n, now, t1))
            conn.executemany(
                "INSERT INTO batches (kind, publisher, seq, t0, n, received_ms, t1) "
                "VALUES (?,?,?,?,?,?,?)",
                batches,
            )
            conn.executemany(
                "INSERT INTO obs (t_ms, node, pid, rssi, band, flags, sig) VALUES (?,?,?,?,?,?,?)",
                rows.obs,
            )
            conn.executemany("INSERT INTO door_events VALUES (?,?,?)", rows.doors)
    finally:
        conn.close()


def live_through(live: LiveProcessor, plan: FloorPlan, t0_ms: int, t1_ms: int) -> None:
    """Step ``live`` on the store's clock through [t0, t1), interval by interval, then
    to the close of that local day (its day aggregates written)."""
    s = live.s
    tz = plan.timezone
    day_end = periods.next_local(periods.floor_local(t1_ms - 1, "day", tz), "day", tz)
    stop = max(t1_ms + s.lag_ms + s.settle_ms + s.interval_ms, day_end + int(s.day_close_s * 1000))
    now = t0_ms
    while now < stop:
        now = now + s.interval_ms if now < t1_ms + 3_600_000 else stop
        rep = live.step(now)
        for _ in range(100):  # a long jump: catch up (bounded)
            if len(rep.intervals) < 48:
                break
            rep = live.step(now)


def simulate_days(
    plan: FloorPlan,
    r: Relayout,
    db: Path,
    days: range | None = None,
    settings: LiveSettings | None = None,
    progress: Progress | None = None,
    refit_daily: bool = False,
) -> list[int]:
    """Days ``days`` of ``r`` (default: both weeks) into the store database ``db``
    (created if new; a database with earlier days goes on from its live state). Returns
    the shoppers of each day. Without ``refit_daily`` the live calibration fitted on the
    first day is carried to the others (:func:`carry_calibration`)."""
    prog = progress or NoProgress()
    days = days if days is not None else range(2 * r.days_each)
    step = prog.task("simulated days: draw, locate, aggregate", len(days))
    db.parent.mkdir(parents=True, exist_ok=True)
    store_db.connect(db).close()
    live = LiveProcessor(db, plan, settings or LiveSettings())
    shoppers = []
    try:
        for i in days:
            sc = r.scenario(i)
            rows = draw_day(plan, sc)
            shoppers.append(rows.shoppers)
            store_day(db, rows)
            if not refit_daily:
                carry_calibration(db, sc.t0_ms)
            live_through(live, plan, sc.t0_ms, sc.t0_ms + sc.duration_s * 1000)
            step(1)
    finally:
        live.close()
    return shoppers


def carry_calibration(db: Path, t0_ms: int) -> bool:
    """Mark the stored live calibration (radio and motion model, the node beacons'
    pseudonyms) as fitted up to ``t0_ms``: the day starting then is located with the
    model the live aggregator fitted on the first day's rows, not refitted (a refit
    is due 6 h of data after the last; the simulated radio does not change from day to
    day, and a refit costs more than locating a simulated hour). False before a fit."""
    conn = store_db.connect(db)
    try:
        cal = calibration_state.load(conn)
        if cal is None or cal.fitted_to_ms is None:
            return False
        with conn:
            calibration_state.save(conn, replace(cal, fitted_to_ms=t0_ms))
        return True
    finally:
        conn.close()


def unchanged(r: Relayout) -> Relayout:
    """The same two weeks with the promo table staying where it is."""
    return replace(r, promo_after=None)


def true_zone_shares(plan: FloorPlan, sc: Scenario) -> dict[str, float]:
    """The simulator's truth of the day: each zone's share of the shoppers' time inside
    the store (sampled every second). The same people :func:`draw_day` draws: they are
    the first thing drawn from the day's generator (:func:`heard_ble`)."""
    people = populate(
        plan, WalkableGrid.build(plan, cell_m=0.5), sc, np.random.default_rng(sc.seed)
    )
    t = np.arange(0.0, sc.duration_s, 1.0)
    zone_s = dict.fromkeys((z.id for z in plan.zones), 0.0)
    inside_s = 0.0
    for p in people:
        if p.role != "shopper":
            continue
        on = (t >= p.t_start) & (t <= p.t_end)
        pts = shapely.points(p.position(t[on]))
        inside_s += float(shapely.contains(plan.outline_polygon, pts).sum())
        for z in plan.zones:
            zone_s[z.id] += float(shapely.contains(z.polygon, pts).sum())
    return {z: v / inside_s if inside_s else 0.0 for z, v in zone_s.items()}
