"""Ground truth of a simulated day, written beside the captures.

Holds people (by index), positions, door crossings and zone visits — never an
address or SSID: the truth is for scoring, and is scanned for canaries like the
rest of the outputs.
"""

from __future__ import annotations

import csv
import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import shapely
from numpy.typing import NDArray

from heatmap.report.flows import zone_index
from heatmap.simulate.boards import Crossing
from heatmap.simulate.people import Person
from heatmap.simulate.phones import Phone
from heatmap.spatial.floorplan import FloorPlan


@dataclass(frozen=True)
class Truth:
    t: NDArray[np.int64]
    """seconds after the window start, one row per person-second"""
    person: NDArray[np.int64]
    xy: NDArray[np.float64]
    inside: NDArray[np.bool_]
    role: NDArray[np.str_]
    """per row: shopper | passerby | staff"""

    @classmethod
    def load(cls, truth_dir: Path) -> Truth:
        z = np.load(truth_dir / "positions.npz")
        return cls(z["t"], z["person"], z["xy"], z["inside"], z["role"])


def sample_positions(people: list[Person], plan: FloorPlan, duration_s: int) -> Truth:
    ts, ps, xys, roles = [], [], [], []
    for p in people:
        lo, hi = max(int(np.ceil(p.t_start)), 0), min(int(np.floor(p.t_end)), duration_s - 1)
        if hi < lo:
            continue
        t = np.arange(lo, hi + 1)
        ts.append(t)
        ps.append(np.full(len(t), p.id))
        xys.append(p.position(t.astype(float)))
        roles.append(np.full(len(t), p.role))
    xy = np.concatenate(xys)
    inside = shapely.contains(plan.outline_polygon, shapely.points(xy))
    return Truth(np.concatenate(ts), np.concatenate(ps), xy, inside, np.concatenate(roles))


def zone_visits(truth: Truth, plan: FloorPlan) -> list[tuple[int, str, int, int]]:
    """(person, zone, first second, last second) of each contiguous stay in a zone."""
    zi = zone_index(plan, truth.xy)
    out = []
    for k, z in enumerate(plan.zones):
        idx = np.flatnonzero(zi == k)
        if not len(idx):
            continue
        person, t = truth.person[idx], truth.t[idx]
        brk = np.flatnonzero((np.diff(person) != 0) | (np.diff(t) != 1)) + 1
        starts = np.concatenate([[0], brk])
        ends = np.concatenate([brk - 1, [len(idx) - 1]])
        out += [
            (int(person[s]), z.id, int(t[s]), int(t[e])) for s, e in zip(starts, ends, strict=True)
        ]
    return sorted(out)


def write(
    out: Path,
    truth: Truth,
    people: list[Person],
    phones: list[Phone],
    crossings: list[Crossing],
    visits: list[tuple[int, str, int, int]],
    meta: dict[str, object],
) -> None:
    out.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(
        out / "positions.npz",
        t=truth.t,
        person=truth.person,
        xy=truth.xy,
        inside=truth.inside,
        role=truth.role,
    )
    os_of = {ph.person: ph.os for ph in phones}
    with (out / "people.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["person", "role", "t_start_s", "t_end_s", "phone_os"])
        for p in people:
            w.writerow([p.id, p.role, f"{p.t_start:.1f}", f"{p.t_end:.1f}", os_of.get(p.id, "")])
    with (out / "door_crossings.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["t_s", "person", "direction"])
        for c in crossings:
            w.writerow([f"{c.t:.3f}", c.person, c.direction])
    with (out / "zone_visits.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["person", "zone", "t_start_s", "t_end_s"])
        w.writerows(visits)
    (out / "meta.json").write_text(json.dumps(meta, indent=1, default=str))


def scenario_meta(sc: object) -> dict[str, object]:
    d = asdict(sc)  # type: ignore[call-overload]
    return {k: v for k, v in d.items()}
