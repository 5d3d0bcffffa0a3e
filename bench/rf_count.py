"""RF-only visitors and passers-by per hour on the simulator, door data withheld.

For each seed, the simulator draws a store day (:mod:`heatmap.simulate`: the bundled
store, its people, phones and BLE adverts with resolvable private addresses
rotating about every 15 min, RSSI at every node), exactly as
:func:`heatmap.simulate.accuracy_harness.simulate_windows` draws them. The frames
heard (one row per frame and node, one pseudonym per address) go through the RF-only
count (:mod:`heatmap.aggregator.rf_count`); the door beams are never read. Each node
chains its adverts as a node does (:class:`sensing.capture.address_chain.AddressChainer`
over that node's frames in time order, the content the node's decoder gives each
phone's adverts) and each row carries its chain head (``chain``), which the aggregator
joins before its own linking; ``--no-node-chainer``: nodes that do not chain.

People per device come from **an installer's head count**
(:func:`heatmap.aggregator.rf_factor.headcount`): the customers inside (not the
staff: their all-day phones are static devices, out of the count) and the people
who walked past during 15 minutes at ``--at`` (local time) of the same day, taken
from the simulator's truth as an installer would count them; a second figure also
counts who walked in during those minutes (``--entered``). That one count sets the
factors for the whole day. Third, a factor fitted at the door of the first seed's
store (door ins per visitor device), used on the other seeds' stores.

Scored per local hour against the truth (hours with at least 10 people):

* visitors: shoppers whose first step inside the store falls in the hour;
* passers-by: passers-by whose walk starts in the hour.

Printed next to the naive count (distinct pseudonyms, i.e. addresses, first heard
in the hour: strong-span visitors and the rest, as the pseudonym rule of
:mod:`heatmap.aggregator.pid_class` splits them) and to the devices without the
factor. Goals: visitors and passers-by per hour MAPE ≤ 10 %.

Usage::

    python bench/rf_count.py [--seeds 1,2,3] [--hours 6] [--at 12:00] [--no-node-chainer]
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import shapely
from numpy.typing import NDArray

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from heatmap.aggregator.rf_count import CountSettings, count_devices
from heatmap.aggregator.rf_devices import Frames, chain_devices
from heatmap.aggregator.rf_factor import fit_door, headcount
from heatmap.simulate import frames as sim_frames
from heatmap.simulate.heard_ble import HeardBle, heard_ble
from heatmap.simulate.people import Person
from heatmap.simulate.scenario import Scenario
from heatmap.spatial.floorplan import FloorPlan, load_default
from sensing.capture.address_chain import AddressChainer, ble_content
from sensing.capture.ble_decode import BleDecoder
from sensing.wire.observation import Flag

F = NDArray[np.float64]
HOUR_MS = 3_600_000
GOAL_MAPE = 10.0
MIN_TRUTH = 10
FLAGS = int(Flag.RANDOMIZED | Flag.BLE_RANDOM)


@dataclass(frozen=True)
class SimDay:
    sc: Scenario
    frames: Frames
    frame_person: NDArray[np.int64]
    people: list[Person]
    first_inside_s: F
    """per person: first second inside the store (NaN: never)"""


def phone_content(h: HeardBle) -> list[bytes]:
    """Per phone: the chaining content a node's decoder gives its adverts (one advert
    of each phone, built as ``footfall simulate`` writes it, decoded)."""
    dec = BleDecoder()
    rnd = bytes(5)
    out = []
    first = {int(p): i for i, p in reversed(list(enumerate(h.em.phone.tolist())))}
    for k, ph in enumerate(h.phones):
        addr = h.em.addr[first[k]] if k in first else bytes.fromhex("400000000001")
        pdu = sim_frames.adv_pdu(addr, sim_frames.adv_data_for(ph.os, rnd))
        a = dec.decode(256, sim_frames.ble_frame(pdu, 37, -60), 0)
        out.append(b"" if a is None else ble_content(a.kind, a.addr_type, a.pdu_type))
    return out


def node_chains(f: Frames, frame_phone: NDArray[np.int64], content: list[bytes]) -> Frames:
    """``f`` with each row's chain head as each node's chainer gives it (one chainer per
    node, its frames in time order; RSSI rounded to dBm as a node reports it)."""
    chain = np.full(len(f), "", dtype=f.pid.dtype)
    for j in range(len(f.nodes)):
        c: AddressChainer[str] = AddressChainer()
        rows = np.flatnonzero(f.node == j)
        for i, t, pid, rssi, ph in zip(
            rows.tolist(), f.t_ms[rows].tolist(), f.pid[rows].tolist(),
            f.rssi[rows].tolist(), frame_phone[rows].tolist(), strict=True,
        ):  # fmt: skip
            head = c.ble(t, pid, int(rssi), content[ph], True)
            if head != pid:
                chain[i] = head
    return replace(f, chain=chain)


def draw(plan: FloorPlan, sc: Scenario, chained: bool = True) -> SimDay:
    """BLE frames heard and the people behind them (the draws of simulate_windows);
    ``chained``: with the nodes' chains."""
    h = heard_ble(plan, sc, np.random.default_rng(sc.seed))
    people, phone_list, em, rssi, code = h.people, h.phones, h.em, h.rssi, h.addr_code
    t_ms = sc.t0_ms + np.round(em.t * 1000).astype(np.int64)
    f, j = np.nonzero(~np.isnan(rssi))
    order = np.argsort(t_ms[f], kind="stable")
    f, j = f[order], j[order]
    node_ids = tuple(n.id for n in plan.nodes)
    frames = Frames(
        t_ms[f],
        j.astype(np.int64),
        np.char.add("a", code[f].astype(str)),
        np.round(rssi[f, j]),
        np.ones(len(f), bool),
        np.ones(len(f), bool),
        np.full(len(f), "", dtype=np.str_),
        node_ids,
    )
    if chained:
        frames = node_chains(frames, em.phone[f].astype(np.int64), phone_content(h))
    person_of_phone = np.array([ph.person for ph in phone_list], np.int64)
    return SimDay(sc, frames, person_of_phone[em.phone[f]], people, _first_inside(plan, people))


def _first_inside(plan: FloorPlan, people: list[Person]) -> F:
    out = np.full(len(people), np.nan)
    for p in people:
        if p.role != "shopper":
            continue
        t = np.arange(np.ceil(p.t_start), np.floor(p.t_end) + 1)
        if not len(t):
            continue
        inside = shapely.contains(plan.outline_polygon, shapely.points(p.position(t)))
        if inside.any():
            out[p.id] = t[np.argmax(inside)]
    return out


def hourly_truth(day: SimDay, t0_ms: int, n_hours: int) -> tuple[F, F]:
    vis = np.zeros(n_hours)
    pas = np.zeros(n_hours)
    for p in day.people:
        if p.role == "shopper" and np.isfinite(day.first_inside_s[p.id]):
            t = day.sc.t0_ms + day.first_inside_s[p.id] * 1000
            h = int((t - t0_ms) // HOUR_MS)
            if 0 <= h < n_hours:
                vis[h] += 1
        elif p.role == "passerby":
            h = int((day.sc.t0_ms + max(p.t_start, 0) * 1000 - t0_ms) // HOUR_MS)
            if 0 <= h < n_hours:
                pas[h] += 1
    return vis, pas


def installer_count(day: SimDay, at_ms: int, minutes: float) -> tuple[float, float, float]:
    """What an installer counts in [at, at + minutes): customers inside (mean of the
    count each minute), people who walked past and people who walked in."""
    t_s = (np.arange(at_ms, at_ms + int(minutes * 60_000), 60_000) - day.sc.t0_ms) / 1000
    plan_inside = []
    passed = 0
    for p in day.people:
        if (
            p.role == "passerby"
            and at_ms <= day.sc.t0_ms + p.t_start * 1000 < at_ms + minutes * 60e3
        ):
            passed += 1
    for t in t_s:
        n = 0
        for p in day.people:
            if p.role == "shopper" and p.t_start <= t <= p.t_end:
                xy = p.position(np.array([t]))
                n += bool(shapely.contains_xy(_OUTLINE[0], xy[0, 0], xy[0, 1]))
        plan_inside.append(n)
    t_in = day.sc.t0_ms + day.first_inside_s * 1000
    entered = float(np.sum((t_in >= at_ms) & (t_in < at_ms + minutes * 60e3)))
    return float(np.mean(plan_inside)), float(passed), entered


_OUTLINE: list[shapely.Polygon] = []


def mape(est: F, truth: F) -> float:
    keep = truth >= MIN_TRUTH
    return float(np.mean(np.abs(est[keep] - truth[keep]) / truth[keep]) * 100)


def chain_scores(day: SimDay, s: CountSettings) -> tuple[float, float]:
    """Link precision (links joining one phone's addresses) and recall (address changes
    of a phone that were linked), over the day."""
    d = chain_devices(day.frames, s.chain)
    pid_person = np.zeros(len(d.pids), np.int64)
    pid_person[d.frame_pid] = day.frame_person
    first = np.full(len(d.pids), np.iinfo(np.int64).max)
    np.minimum.at(first, d.frame_pid, day.frames.t_ms)
    order = np.lexsort((first, d.pid_device))
    dv, pp = d.pid_device[order], pid_person[order]
    link = dv[1:] == dv[:-1]
    good = int((link & (pp[1:] == pp[:-1])).sum())
    order2 = np.lexsort((first, pid_person))
    pp2 = pid_person[order2]
    changes = int((pp2[1:] == pp2[:-1]).sum())
    return good / max(int(link.sum()), 1), good / max(changes, 1)


def run_seed(
    plan: FloorPlan,
    sc: Scenario,
    at_local: str,
    s: CountSettings,
    minutes: float = 15.0,
    chained: bool = True,
) -> dict[str, object]:
    day = draw(plan, sc, chained)
    n_hours = int(sc.hours)
    t0 = sc.t0_ms
    c = count_devices(day.frames, t0, t0 + n_hours * HOUR_MS, replace(s, bin_ms=HOUR_MS))
    hh, mm = (int(x) for x in at_local.split(":"))
    at_dt = sc.start_local.replace(hour=hh, minute=mm)
    at_ms = t0 + int((at_dt - sc.start_local) / timedelta(milliseconds=1))
    inside, passed, entered = installer_count(day, at_ms, minutes)
    fac = headcount(day.frames, at_ms, minutes, inside, s, passersby=passed)
    fac_in = headcount(day.frames, at_ms, minutes, inside, s, passersby=passed, entered=entered)
    vis_t, pas_t = hourly_truth(day, t0, n_hours)
    # naive: addresses first heard in the hour, split by the pseudonym rule
    naive = count_devices(day.frames, t0, t0 + n_hours * HOUR_MS, replace(
        s, bin_ms=HOUR_MS, chain=replace(s.chain, link=False, node_chains=False)))  # fmt: skip
    prec, rec = chain_scores(day, s)
    return {
        "seed": sc.seed,
        "factor": fac,
        "visitors": mape(c.visitors * fac.visitors, vis_t),
        "visitors_entered": mape(c.visitors * fac_in.visitors, vis_t),
        "k_entered": fac_in.visitors,
        "passersby": mape(c.passersby * fac.passersby, pas_t),
        "visitors_devices": mape(c.visitors * 1.0, vis_t),
        "passersby_devices": mape(c.passersby * 1.0, pas_t),
        "naive_visitors": mape(naive.visitors * 1.0, vis_t),
        "naive_passersby": mape(naive.passersby * 1.0, pas_t),
        "static": c.static_devices,
        "staff": sum(p.role == "staff" for p in day.people),
        "truth": (vis_t, pas_t),
        "devices": (c.visitors * 1.0, c.passersby * 1.0),
        "est": (c.visitors * fac.visitors, c.passersby * fac.passersby),
        "chain": (prec, rec),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", default="1,2,3")
    ap.add_argument("--hours", type=float, default=6.0)
    ap.add_argument("--start", default="10:00", help="local start of the simulated window")
    ap.add_argument("--at", default="12:00", help="local start of the installer's count")
    ap.add_argument("--minutes", type=float, default=15.0, help="length of the count")
    ap.add_argument("--no-node-chainer", action="store_true", help="nodes that do not chain")
    a = ap.parse_args(argv)
    plan = load_default()
    _OUTLINE[:] = [plan.outline_polygon]
    s = CountSettings()
    hh, mm = (int(x) for x in a.start.split(":"))
    rows = []
    print(f"node chainer: {'no' if a.no_node_chainer else 'yes'}")
    for seed in (int(x) for x in a.seeds.split(",")):
        sc = Scenario(start_local=datetime(2026, 11, 20, hh, mm), hours=a.hours, seed=seed)
        t = time.perf_counter()
        r = run_seed(plan, sc, a.at, s, a.minutes, not a.no_node_chainer)
        r["s"] = time.perf_counter() - t
        rows.append(r)
        f = r["factor"]
        print(
            f"seed {seed}: visitors MAPE {r['visitors']:.1f} % "
            f"(with entries counted {r['visitors_entered']:.1f} at {r['k_entered']:.3f}; "
            f"devices {r['visitors_devices']:.1f}, naive {r['naive_visitors']:.1f}), "
            f"passers-by {r['passersby']:.1f} % (devices "
            f"{r['passersby_devices']:.1f}, naive {r['naive_passersby']:.1f}); people/device "
            f"visitors {f.visitors:.3f} passers-by {f.passersby:.3f}; static {r['static']} "
            f"(staff {r['staff']}); links precision {r['chain'][0]:.3f} recall "
            f"{r['chain'][1]:.3f}; {r['s']:.0f} s"
        )  # fmt: skip
        vt, pt = r["truth"]
        ve, pe = r["est"]
        print("   hour truth/rf visitors: " + " ".join(
            f"{int(x)}/{y:.0f}" for x, y in zip(vt, ve, strict=True)))  # fmt: skip
        print("   hour truth/rf passers-by: " + " ".join(
            f"{int(x)}/{y:.0f}" for x, y in zip(pt, pe, strict=True)))  # fmt: skip
    # a factor fitted at the door of the first seed's store, used on the others (a
    # chain's stores without beams): door ins per visitor device; passers-by as visitors
    r0 = rows[0]
    door = fit_door(r0["devices"][0], r0["truth"][0])  # type: ignore[index]
    others = rows[1:]
    if others:
        dv = [mape(r["devices"][0] * door.visitors, r["truth"][0]) for r in others]  # type: ignore[index]
        dp = [mape(r["devices"][1] * door.passersby, r["truth"][1]) for r in others]  # type: ignore[index]
        print(
            f"factor fitted at seed {r0['seed']}'s door ({door.visitors:.3f} people per device), "
            f"used on seeds {', '.join(str(r['seed']) for r in others)}: visitors per hour "
            f"MAPE {np.mean(dv):.1f} % ({', '.join(f'{x:.1f}' for x in dv)}), passers-by "
            f"{np.mean(dp):.1f} % ({', '.join(f'{x:.1f}' for x in dp)})"
        )
    ve = float(np.mean([r["visitors_entered"] for r in rows]))
    v = float(np.mean([r["visitors"] for r in rows]))
    p = float(np.mean([r["passersby"] for r in rows]))
    nv = float(np.mean([r["naive_visitors"] for r in rows]))
    np_ = float(np.mean([r["naive_passersby"] for r in rows]))

    def verdict(x: float) -> str:
        return "PASS" if x <= GOAL_MAPE else "FAIL"

    print(f"mean over {len(rows)} seeds, MAPE per hour (goal <= {GOAL_MAPE:g} %):")
    print(f"  head count of those inside: visitors {v:.1f} % ({verdict(v)}), "
          f"passers-by {p:.1f} % ({verdict(p)})")  # fmt: skip
    print(f"  head count and who walked in: visitors {ve:.1f} % ({verdict(ve)}), "
          f"passers-by {p:.1f} % ({verdict(p)})")  # fmt: skip
    print(f"  naive (distinct addresses): visitors {nv:.1f} %, passers-by {np_:.1f} %")
    return 0


if __name__ == "__main__":
    sys.exit(main())
